"""Targets and prediction conversions: exact marginals, denoisers, scores, round trips."""

import numpy as np
import pytest
from scipy import stats

import diffsolve as ds
from diffsolve import predictions
from diffsolve.targets import Gaussian, GaussianMixture, from_spec
from helpers import CONTINUOUS_SCHEDULES, VP

SCHEDULES = CONTINUOUS_SCHEDULES


@pytest.fixture(scope="module")
def gmm():
    return from_spec("gmm:d=3,k=4,seed=1")


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("kind", predictions.PREDICTIONS)
def test_conversions_round_trip_exactly(name, kind):
    s = ds.get_schedule(name)
    t = 0.5 * (s.t_min + s.t_max)
    rng = np.random.default_rng(0)
    x, D = rng.standard_normal((50, 3)), rng.standard_normal((50, 3))
    value = predictions.convert(D, x, t, s, "data", kind)
    for other in predictions.PREDICTIONS:
        via = predictions.convert(predictions.convert(value, x, t, s, kind, other), x, t, s, other, kind)
        np.testing.assert_allclose(via, value, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(predictions.convert(value, x, t, s, kind, "data"), D, rtol=1e-10, atol=1e-10)


def test_conversion_formulas_flow_schedule():
    """Flow schedule: u = eps - D, D = x - t u, eps = x + (1 - t) u
    (docs/algorithms/exponential_integrators.md §1.3)."""
    s = ds.get_schedule("flow")
    t = 0.3
    rng = np.random.default_rng(1)
    x, D = rng.standard_normal((10, 2)), rng.standard_normal((10, 2))
    eps = predictions.convert(D, x, t, s, "data", "eps")
    u = predictions.convert(D, x, t, s, "data", "flow")
    np.testing.assert_allclose(u, eps - D, rtol=1e-12)
    np.testing.assert_allclose(x - t * u, D, rtol=1e-12)
    np.testing.assert_allclose(x + (1 - t) * u, eps, rtol=1e-12)


def test_pf_ode_drift_equals_flow_prediction(gmm):
    """f x - 1/2 g^2 score = alpha' D + sigma' eps = u (docs/algorithms/exponential_integrators.md §1.3)."""
    s = VP
    x = gmm.sample(20, seed=3, t=0.4, schedule=s)
    drift = s.f(0.4) * x - 0.5 * s.g2(0.4) * gmm.predict(x, 0.4, s, "score")
    np.testing.assert_allclose(drift, gmm.predict(x, 0.4, s, "flow"), rtol=1e-10)


@pytest.mark.parametrize("name", ["vp-linear", "edm", "flow"])
def test_denoiser_is_tweedie(gmm, name):
    """D(x) = (x + sigma^2 grad log p_t(x)) / alpha with the score by finite differences of logpdf."""
    s = ds.get_schedule(name)
    t = 0.5 * (s.t_min + s.t_max)
    x = gmm.sample(5, seed=2, t=t, schedule=s)
    eps = 1e-5
    grad = np.stack([(gmm.logpdf(x + eps * e, t, s) - gmm.logpdf(x - eps * e, t, s)) / (2 * eps) for e in np.eye(3)], 1)
    a, sig = s.alpha(t), s.sigma(t)
    np.testing.assert_allclose(gmm.denoise(x, t, s), (x + sig**2 * grad) / a, rtol=1e-6, atol=1e-7)


def test_marginal_matches_monte_carlo(gmm):
    """Exact marginal density vs a histogram of forward-noised data samples (1-D projections, KS test)."""
    s = VP
    t = 0.3
    x0 = gmm.sample(200_000, seed=5)
    rng = np.random.default_rng(6)
    xt = s.alpha(t) * x0 + s.sigma(t) * rng.standard_normal(x0.shape)
    # the exact marginal's first coordinate is a 1-D mixture; compare CDFs by KS
    a = s.alpha(t)
    means = a * gmm.means[:, 0]
    sds = np.sqrt(a * a * gmm.variances[:, 0] + s.sigma(t) ** 2)
    cdf = lambda z: np.sum(gmm.weights * stats.norm.cdf((np.asarray(z)[..., None] - means) / sds), -1)  # noqa: E731
    assert stats.kstest(xt[:, 0], cdf).pvalue > 1e-3
    # and the mean log density agrees with the sampled one
    np.testing.assert_allclose(np.mean(gmm.logpdf(xt[:20000], t, s)),
                               np.mean(gmm.logpdf(gmm.sample(20000, seed=9, t=t, schedule=s), t, s)), atol=0.03)


def test_logpdf_normalised_1d():
    g = GaussianMixture([0.3, 0.7], [[-1.0], [2.0]], [0.2, 0.5])
    s = VP
    z = np.linspace(-12, 12, 20001)[:, None]
    for t in (None, 0.5):
        p = np.exp(g.logpdf(z, t, s if t else None))
        assert np.trapezoid(p, z[:, 0]) == pytest.approx(1.0, abs=1e-9)


def test_gaussian_affine_prediction_matches_denoiser():
    g = from_spec("gaussian:d=5,seed=3")
    s = ds.get_schedule("vp-cosine")
    x = np.random.default_rng(0).standard_normal((7, 5))
    for kind in predictions.PREDICTIONS:
        G, c = g.affine_prediction(0.4, s, kind)
        np.testing.assert_allclose(G * x + c, g.predict(x, 0.4, s, kind), rtol=1e-12, atol=1e-12)


def test_gaussian_marginal_moments_and_mc():
    g = Gaussian([1.0, -2.0], [0.25, 2.0])
    s = ds.get_schedule("ve")
    m, v = g.marginal_moments(0.7, s)
    xs = g.sample(400_000, seed=0, t=0.7, schedule=s)
    assert np.all(np.abs(xs.mean(0) - m) < 4 * np.sqrt(v / 400_000))
    np.testing.assert_allclose(xs.var(0), v, rtol=0.01)


def test_specs():
    g = from_spec("gaussian:d=16")
    assert isinstance(g, Gaussian) and g.dim == 16 and len(set(np.round(g.var, 12))) == 16  # anisotropic
    m = from_spec("gmm:d=2,k=8,seed=0")
    assert m.components == 8 and m.dim == 2 and np.allclose(m.variances, 0.05)
    assert np.allclose(from_spec("gaussian:d=4,var=0.3").var, 0.3)
