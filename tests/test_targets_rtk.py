"""Full-covariance mixtures, time-t marginals and the exact reverse transition kernel (law of X_s | X_{s+eta}).

The kernel is the target of the inner samplers of the reverse-transition-kernel framework (Huang, Zou, Dong, Ma,
Zhang 2024, NeurIPS): pi(x | y) proportional to p_s(x) N(y; a x, q I) with a = alpha(s+eta) / alpha(s) and
q = sigma(s+eta)^2 - a^2 sigma(s)^2 (on the OU process: proportional to p_s(x) N(x; e^eta y, (e^{2 eta} - 1) I)).
"""

import numpy as np
import pytest
from scipy import stats

import diffsolve as ds
import diffsolve.sampling as sampling
from diffsolve.errors import DiffsolveError
from diffsolve.kernels import plan
from diffsolve.stepper import prepare_run
from diffsolve.targets import FullGaussianMixture, Gaussian, GaussianMixture, KernelLaw

OU = ds.get_schedule("ou")
VP = ds.get_schedule("vp-linear")

WEIGHTS = [0.3, 0.7]
MEANS = [[-2.0, 0.0], [2.0, 1.0]]
COVS = [np.diag([0.3, 0.5]), [[0.5, 0.2], [0.2, 0.4]]]


@pytest.fixture(scope="module")
def mix2():
    """The 2-D two-component reference mixture (one diagonal, one correlated component)."""
    return FullGaussianMixture(WEIGHTS, MEANS, COVS)


@pytest.fixture(scope="module")
def diag_pair():
    """A 3-D, 4-component anisotropic diagonal mixture and the same law as a FullGaussianMixture."""
    rng = np.random.default_rng(11)
    gm = GaussianMixture(rng.uniform(0.5, 1.5, 4), 2.0 * rng.standard_normal((4, 3)), rng.uniform(0.05, 0.8, (4, 3)))
    return gm, FullGaussianMixture(gm.weights, gm.means, gm.covariances)


def _assert_cov_close(x, cov, k=8.0):
    """Sample covariance of x within k Gaussian standard errors sqrt((C_ii C_jj + C_ij^2) / n) of ``cov``."""
    n = x.shape[0]
    d = np.diag(cov)
    se = np.sqrt((np.outer(d, d) + cov**2) / n)
    assert np.all(np.abs(np.cov(x.T) - cov) < k * se), (np.cov(x.T), cov)


def _corr_mix3():
    """3-D, 3 components with random correlated covariances (for the score / Tweedie checks)."""
    rng = np.random.default_rng(4)
    covs = []
    for _ in range(3):
        A = rng.standard_normal((3, 3))
        covs.append(0.2 * A @ A.T + 0.05 * np.eye(3))
    return FullGaussianMixture([0.2, 0.5, 0.3], 1.5 * rng.standard_normal((3, 3)), covs)


# --------------------------------------------------------------------------- full covariance == diagonal
def test_covariances_property_is_diagonal(diag_pair):
    gm, full = diag_pair
    assert gm.covariances.shape == (4, 3, 3)
    np.testing.assert_array_equal(np.diagonal(gm.covariances, axis1=1, axis2=2), gm.variances)
    np.testing.assert_array_equal(gm.covariances.sum(axis=(1, 2)), gm.variances.sum(axis=1))
    assert not isinstance(full, GaussianMixture)
    assert full.components == 4 and full.dim == 3 and repr(full) == "FullGaussianMixture(K=4, d=3)"
    np.testing.assert_allclose(full.mean(), gm.mean(), rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", ["vp-linear", "edm", "flow", "ou"])
def test_full_with_diagonal_covariances_equals_gaussian_mixture(diag_pair, name):
    gm, full = diag_pair
    s = ds.get_schedule(name)
    t = 0.5 * (s.t_min + s.t_max)
    x = gm.sample(300, seed=1, t=t, schedule=s)
    tol = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(full.denoise(x, t, s), gm.denoise(x, t, s), **tol)
    np.testing.assert_allclose(full.logpdf(x, t, s), gm.logpdf(x, t, s), **tol)
    np.testing.assert_allclose(full.logpdf(x), gm.logpdf(x), **tol)
    scale = np.abs(gm.score(x, t, s)).max()
    np.testing.assert_allclose(full.score(x, t, s), gm.score(x, t, s), rtol=1e-12, atol=1e-12 * scale)
    for kind in ("eps", "v", "flow"):
        np.testing.assert_allclose(full.predict(x, t, s, kind), gm.predict(x, t, s, kind), **tol)
    mg, mf = gm.marginal(t, s), full.marginal(t, s)
    assert type(mg) is GaussianMixture and type(mf) is FullGaussianMixture
    np.testing.assert_allclose(mf.weights, mg.weights, **tol)
    np.testing.assert_allclose(mf.means, mg.means, **tol)
    np.testing.assert_allclose(mf.covariances, mg.covariances, **tol)
    np.testing.assert_allclose(mf.logpdf(x), mg.logpdf(x), **tol)
    np.testing.assert_allclose(mg.logpdf(x), gm.logpdf(x, t, s), **tol)  # the marginal's data law is p_t
    np.testing.assert_allclose(full.sample(50, seed=3, t=t, schedule=s), gm.sample(50, seed=3, t=t, schedule=s), **tol)


def test_gaussian_marginal_is_gaussian():
    g = Gaussian([1.0, -0.5], [0.2, 0.7])
    m = g.marginal(0.4, VP)
    assert type(m) is Gaussian
    mean, var = g.marginal_moments(0.4, VP)
    np.testing.assert_allclose(m.mean_vector, mean, rtol=1e-15)
    np.testing.assert_allclose(m.var, var, rtol=1e-15)
    a = np.exp(-1.0)
    np.testing.assert_allclose(g.marginal(1.0).var, a * a * g.var + 1 - a * a, rtol=1e-14)  # default: OU


def test_rtk_kernel_full_equals_diagonal(diag_pair):
    gm, full = diag_pair
    y = gm.sample(40, seed=2, t=0.55, schedule=OU)
    kg, kf = gm.rtk_kernel(y, 0.3, 0.25), full.rtk_kernel(y, 0.3, 0.25)
    for a, b in zip(kg, kf):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- full covariance: exactness
@pytest.mark.parametrize("name", ["vp-linear", "edm", "flow"])
def test_full_score_is_gradient_of_logpdf_and_denoise_is_tweedie(name):
    tgt = _corr_mix3()
    s = ds.get_schedule(name)
    t = 0.5 * (s.t_min + s.t_max)
    x = tgt.sample(8, seed=5, t=t, schedule=s)
    h = 1e-5
    grad = np.stack([(tgt.logpdf(x + h * e, t, s) - tgt.logpdf(x - h * e, t, s)) / (2 * h) for e in np.eye(3)], 1)
    score = tgt.score(x, t, s)
    np.testing.assert_allclose(score, grad, rtol=1e-6, atol=1e-6)
    a, sig = float(s.alpha(t)), float(s.sigma(t))
    np.testing.assert_allclose(tgt.denoise(x, t, s), (x + sig**2 * score) / a, rtol=1e-10, atol=1e-10)
    # the data law: grad of logpdf(t=None) is the score of the covariance factors directly
    x0 = tgt.sample(4, seed=6)
    g0 = np.stack([(tgt.logpdf(x0 + h * e) - tgt.logpdf(x0 - h * e)) / (2 * h) for e in np.eye(3)], 1)
    resp = np.exp(np.stack([np.log(w) + stats.multivariate_normal(m, c).logpdf(x0)
                            for w, m, c in zip(tgt.weights, tgt.means, tgt.covariances)], 1))
    resp /= resp.sum(1, keepdims=True)
    direct = -sum(resp[:, [k]] * np.linalg.solve(c, (x0 - m).T).T
                  for k, (m, c) in enumerate(zip(tgt.means, tgt.covariances)))
    np.testing.assert_allclose(g0, direct, rtol=1e-6, atol=1e-6)


def test_full_logpdf_matches_scipy():
    tgt = _corr_mix3()
    t = 0.4
    x = tgt.sample(20, seed=7, t=t, schedule=VP)
    a, sig = float(VP.alpha(t)), float(VP.sigma(t))
    dens = sum(w * stats.multivariate_normal(a * m, a * a * c + sig * sig * np.eye(3)).pdf(x)
               for w, m, c in zip(tgt.weights, tgt.means, tgt.covariances))
    np.testing.assert_allclose(tgt.logpdf(x, t, VP), np.log(dens), rtol=1e-12, atol=1e-12)


def test_full_sample_moments():
    tgt = _corr_mix3()
    x = tgt.sample(200_000, seed=8)
    mean = tgt.mean()
    dev = tgt.means - mean
    cov = np.einsum("k,kij->ij", tgt.weights, tgt.covariances) + np.einsum("k,ki,kj->ij", tgt.weights, dev, dev)
    se = np.sqrt(np.diag(cov) / x.shape[0])
    assert np.all(np.abs(x.mean(0) - mean) < 5 * se)
    _assert_cov_close(x, cov)


# --------------------------------------------------------------------------- kernel vs a grid integral
def _grid_posterior(y, s, eta, schedule, h=0.03, half=9.0):
    """Mean, covariance and normaliser of p_s(x) N(y; a x, q I) on a fine grid (SciPy densities, naive a, q)."""
    a_s, sig_s = float(schedule.alpha(s)), float(schedule.sigma(s))
    a_t, sig_t = float(schedule.alpha(s + eta)), float(schedule.sigma(s + eta))
    a = a_t / a_s
    q = sig_t**2 - a * a * sig_s**2
    u = np.arange(-half, half + h / 2, h)
    X = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    ps = sum(w * stats.multivariate_normal(a_s * np.asarray(m), a_s**2 * np.asarray(c) + sig_s**2 * np.eye(2)).pdf(X)
             for w, m, c in zip(WEIGHTS, MEANS, COVS))
    lik = np.exp(-0.5 * np.sum((y - a * X) ** 2, axis=1) / q) / (2 * np.pi * q)
    dens = ps * lik
    Z = dens.sum()
    mean = dens @ X / Z
    D = X - mean
    cov = (dens[:, None] * D).T @ D / Z
    return mean, cov, Z * h * h, X, dens / (Z * h * h)


@pytest.mark.parametrize("schedule, s, eta", [(OU, 0.3, 0.25), (VP, 0.3, 0.1), (OU, 0.0, 0.25)],
                         ids=["ou", "vp-linear", "ou-s0"])
def test_rtk_kernel_matches_grid_integral(mix2, schedule, s, eta):
    ys = np.array([[0.5, -0.3], [1.0, 0.0], [-1.2, 0.4], [0.1, 1.3]])
    law = mix2.rtk_kernel(ys, s, eta, schedule)
    assert isinstance(law, KernelLaw)
    assert law.weights.shape == (4, 2) and law.means.shape == (4, 2, 2) and law.covariances.shape == (2, 2, 2)
    np.testing.assert_allclose(law.weights.sum(1), 1.0, rtol=1e-14)
    for i, y in enumerate(ys):
        mean, cov, _, X, dens = _grid_posterior(y, s, eta, schedule)
        np.testing.assert_allclose(law.mean()[i], mean, rtol=0, atol=1e-7)
        np.testing.assert_allclose(law.cov()[i], cov, rtol=0, atol=1e-7)
        # the kernel's density at a few points is the normalised grid density there
        pick = np.argsort(dens)[-1::-20000][:5]
        pts = X[pick]
        lp = mix2.rtk_kernel(np.repeat(y[None], len(pick), 0), s, eta, schedule).logpdf(pts)
        np.testing.assert_allclose(lp, np.log(dens[pick]), rtol=0, atol=1e-7)


def test_rtk_kernel_default_schedule_is_ou(mix2):
    y = np.array([[0.5, -0.3]])
    for a, b in zip(mix2.rtk_kernel(y, 0.3, 0.25), mix2.rtk_kernel(y, 0.3, 0.25, OU)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("eta", [0.25, 1e-6])
def test_rtk_kernel_ou_closed_form(mix2, eta):
    """On OU the component precision is C_s^{-1} + c_eta I, c_eta = 1/(e^{2 eta} - 1), and the mean
    P^{-1} (C_s^{-1} alpha_s m + c_eta e^eta y) (Huang et al. 2024); also at a tiny eta (no cancellation)."""
    s = 0.3
    y = np.array([[0.5, -0.3], [2.0, 2.0]])
    law = mix2.rtk_kernel(y, s, eta)
    c = 1.0 / np.expm1(2 * eta)
    a_s, sig2_s = np.exp(-s), -np.expm1(-2 * s)
    for k, (m, C) in enumerate(zip(mix2.means, mix2.covariances)):
        Cs = a_s**2 * C + sig2_s * np.eye(2)
        P = np.linalg.inv(Cs) + c * np.eye(2)
        np.testing.assert_allclose(law.covariances[k], np.linalg.inv(P), rtol=1e-12, atol=1e-14)
        for i in range(2):
            mk = np.linalg.solve(P, np.linalg.solve(Cs, a_s * m) + c * np.exp(eta) * y[i])
            np.testing.assert_allclose(law.means[i, k], mk, rtol=1e-12, atol=1e-13)
    resp = np.stack([mix2.weights[k] * stats.multivariate_normal(np.exp(-(s + eta)) * m, C2).pdf(y)
                     for k, (m, C2) in enumerate(zip(mix2.means, mix2.marginal(s + eta).covariances))], 1)
    np.testing.assert_allclose(law.weights, resp / resp.sum(1, keepdims=True), rtol=1e-12)


def test_rtk_reference_numbers(mix2):
    """The reference figures (OU, s = 0.3, eta = 0.25) are the kernel at the single point y = (0.5, -0.3)."""
    law = mix2.rtk_kernel(np.array([[0.5, -0.3]]), 0.3, 0.25)
    np.testing.assert_allclose(law.mean()[0], [0.8217, 0.0975], rtol=0, atol=5e-5)
    np.testing.assert_allclose(law.cov()[0], [[0.5593, 0.0751], [0.0751, 0.3419]], rtol=0, atol=5e-5)


def test_kernel_law_score_and_sample(mix2):
    s, eta = 0.3, 0.25
    y = np.array([[0.5, -0.3], [-1.0, 0.5], [1.5, 1.0]])
    law = mix2.rtk_kernel(y, s, eta)
    x = law.mean() + 0.3
    h = 1e-5
    grad = np.stack([(law.logpdf(x + h * e) - law.logpdf(x - h * e)) / (2 * h) for e in np.eye(2)], 1)
    np.testing.assert_allclose(law.score(x), grad, rtol=1e-6, atol=1e-7)
    # Monte Carlo: many draws for one y reproduce its mean and covariance
    n = 100_000
    big = mix2.rtk_kernel(np.repeat(y[:1], n, 0), s, eta)
    z = big.sample(seed=3)
    assert z.shape == (n, 2)
    m, C = law.mean()[0], law.cov()[0]
    assert np.all(np.abs(z.mean(0) - m) < 4 * np.sqrt(np.diag(C) / n))
    _assert_cov_close(z, C)
    np.testing.assert_array_equal(big.sample(seed=3), z)  # seeded


def test_kernel_draws_over_y_reproduce_p_s(mix2):
    """y ~ p_{s+eta}, then x ~ kernel(y): x ~ p_s."""
    s, eta, n = 0.3, 0.25, 200_000
    y = mix2.marginal(s + eta).sample(n, seed=1)
    x = mix2.rtk_kernel(y, s, eta).sample(seed=2)
    ps = mix2.marginal(s)
    dev = ps.means - ps.mean()
    cov = np.einsum("k,kij->ij", ps.weights, ps.covariances) + np.einsum("k,ki,kj->ij", ps.weights, dev, dev)
    assert np.all(np.abs(x.mean(0) - ps.mean()) < 4 * np.sqrt(np.diag(cov) / n))
    _assert_cov_close(x, cov)


def test_outer_loop_reaches_the_data_law():
    """p_T start, K = 5 exact kernel segments of eta = T/K at s = T - (k+1) eta: the output is the data law
    N(1.5, 0.16) (an off-by-one in s would leave it contracted towards 0 by e^{-eta})."""
    target = Gaussian(1.5, 0.16)
    T, K, n = 4.0, 5, 400_000
    eta = T / K
    x = target.marginal(T).sample(n, seed=0)
    for k in range(K):
        s = max(T - (k + 1) * eta, 0.0)
        x = target.rtk_kernel(x, s, eta).sample(seed=k + 1)
    assert s == 0.0
    mean, var = x.mean(), x.var(ddof=1)
    assert abs(mean - 1.5) < 4 * np.sqrt(0.16 / n)
    assert abs(var - 0.16) < 4 * 0.16 * np.sqrt(2.0 / (n - 1))


# --------------------------------------------------------------------------- generic sampling path
def test_ddpm_on_full_mixture_takes_the_stepper_path(monkeypatch):
    gm = GaussianMixture([0.4, 0.6], [[-1.0, 0.5], [1.0, -0.5]], [[0.1, 0.3], [0.2, 0.05]])
    full = FullGaussianMixture(gm.weights, gm.means, gm.covariances)
    corr = FullGaussianMixture(WEIGHTS, MEANS, COVS)
    grid = ds.time_grid(VP, 20)
    calls, original = [], sampling.Stepper

    class Spy(original):
        @classmethod
        def from_run(cls, *args, **kwargs):
            calls.append(1)
            return original.from_run(*args, **kwargs)

    monkeypatch.setattr(sampling, "Stepper", Spy)
    out = ds.sample("ddpm", corr, VP, grid, n=100, backend="cpu")
    assert out.shape == (100, 2) and np.isfinite(out).all() and calls == [1]
    a = ds.sample("ddpm", full, VP, grid, n=100, seed=3, backend="cpu")
    b = ds.sample("ddpm", gm, VP, grid, n=100, seed=3, backend="numpy")
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    program = prepare_run("ddpm", VP, grid).program
    assert not plan.fusable(corr, program) and not plan.fusable(full, program) and plan.fusable(gm, program)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("covs, match", [
    (np.ones((2, 2)), r"covariances must have shape \(2, 2, 2\)"),
    (np.stack([np.eye(2)] * 3), r"covariances must have shape \(2, 2, 2\)"),
    (np.stack([np.eye(2), [[1.0, 0.5], [0.1, 1.0]]]), r"covariances\[1\] is not symmetric"),
    (np.stack([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]]), r"covariances\[1\] is not positive definite"),
    (np.stack([np.eye(2), np.diag([1.0, np.nan])]), "covariances contains NaN"),
])
def test_bad_covariances(covs, match):
    with pytest.raises(DiffsolveError, match=match):
        FullGaussianMixture(WEIGHTS, MEANS, covs)


def test_bad_weights_and_means():
    with pytest.raises(DiffsolveError, match="weights must have shape"):
        FullGaussianMixture([1.0], MEANS, COVS)
    with pytest.raises(DiffsolveError, match="weights must be positive"):
        FullGaussianMixture([1.0, -0.1], MEANS, COVS)
    with pytest.raises(DiffsolveError, match="means must be an array"):
        FullGaussianMixture(WEIGHTS, "nope", COVS)


@pytest.mark.parametrize("kwargs, match", [
    (dict(eta=0.0), "eta must be > 0"),
    (dict(eta=-0.1), "eta must be > 0"),
    (dict(eta=np.inf), "eta must be finite"),
    (dict(eta=True), "eta must be a real number"),
    (dict(s=-0.1), "s must be >= 0"),
    (dict(s=np.nan), "s must be finite"),
    (dict(s=[0.1, 0.2]), "s must be a single number"),
    (dict(y=np.zeros(2)), r"y must have shape \(n, 2\).*y\[None\]"),
    (dict(y=np.zeros((3, 3))), r"y must have shape \(n, 2\)"),
    (dict(y=np.array([[0.0, 1.0], [np.nan, 0.0]])), "y contains NaN or inf"),
    (dict(s=0.95, eta=0.1, schedule=VP), r"s \+ eta = 1\.0\d* inside the domain \[0\.0, 1\.0\]"),
])
def test_bad_rtk_inputs(mix2, kwargs, match):
    args = dict(y=np.zeros((2, 2)), s=0.3, eta=0.25, schedule=None)
    args.update(kwargs)
    with pytest.raises(DiffsolveError, match=match):
        mix2.rtk_kernel(args["y"], args["s"], args["eta"], args["schedule"])


def test_bad_kernel_law_and_target_calls(mix2):
    law = mix2.rtk_kernel(np.zeros((2, 2)), 0.3, 0.25)
    with pytest.raises(DiffsolveError, match="x has 3 rows"):
        law.logpdf(np.zeros((3, 2)))
    with pytest.raises(DiffsolveError, match=r"x must have shape \(n, 2\)"):
        mix2.denoise(np.zeros((4, 3)), 0.3, VP)
    with pytest.raises(DiffsolveError, match="pass the schedule"):
        mix2.logpdf(np.zeros((1, 2)), 0.3)
    with pytest.raises(DiffsolveError, match="n must be a positive integer"):
        mix2.sample(0)
    with pytest.raises(DiffsolveError, match="t must be >= 0"):
        mix2.marginal(-1.0)
