"""Stage-noise covariance (docs/algorithms/seeds.md §1.5, §2.1, §6.1, §6.3): Ito isometry, Cholesky = OU recursion,
rule B."""

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import quad

from diffsolve.symbolic import covariance as cv
from diffsolve.symbolic import symbols as sy

h, eta, c1, c2 = sy.h, sy.eta, sy.c1, sy.c2

# docs/algorithms/seeds.md §6.3: h = 0.7, r = 0.3, eta = 1: Var N_1, Var N_t, Cov exact (A), Cov mirrored (B)
REFERENCE = {"data": (0.342953, 0.753403, 0.210102, 0.375187), "eps": (0.521962, 3.055200, 0.852006, 1.149893)}


@pytest.mark.parametrize("prediction", ["data", "eps"])
def test_reference_numbers(prediction):
    at = {h: sp.Rational(7, 10), eta: 1}
    exact = cv.cholesky_factor((sp.Rational(3, 10), 1), prediction)
    mirrored = cv.mirrored_factor((sp.Rational(3, 10), 1), prediction)
    cov = cv.ito_covariance((sp.Rational(3, 10), 1), prediction)
    se, sm = ((m * m.T).subs(at) for m in (exact, mirrored))
    sc = cov.subs(at)
    v1, vt, cov_a, cov_b = REFERENCE[prediction]
    for got, want in ((se[0, 0], v1), (se[1, 1], vt), (se[0, 1], cov_a), (sm[0, 1], cov_b), (sc[0, 1], cov_a)):
        assert abs(float(got) - want) < 5e-7
    assert abs(float(sm[1, 1]) - vt) < 5e-7 and abs(float(sm[0, 0]) - v1) < 5e-7


@pytest.mark.parametrize("prediction", ["data", "eps"])
@pytest.mark.parametrize("fractions", [(c1, 1), (c1, c2, 1), (sp.Rational(3, 10), 1)])
def test_cholesky_is_ou_recursion(prediction, fractions):
    cv.check_cholesky_is_ou(fractions, prediction)
    L = cv.cholesky_factor(fractions, prediction)
    n = len(fractions)
    assert all(L[i, j] == 0 for i in range(n) for j in range(i + 1, n))


@pytest.mark.parametrize("prediction", ["data", "eps"])
def test_ito_isometry_against_quadrature(prediction):
    f, hv, ev = (0.25, 0.6, 1.0), 0.9, 0.5
    cov = cv.ito_covariance((sp.Rational(1, 4), sp.Rational(3, 5), 1), prediction)
    mu = sp.Symbol("mu", real=True)
    for i in range(3):
        for j in range(3):
            ki = sp.lambdify(mu, cv.node_kernel(prediction, f[i] * h, mu).subs({h: hv, eta: ev}))
            kj = sp.lambdify(mu, cv.node_kernel(prediction, f[j] * h, mu).subs({h: hv, eta: ev}))
            ref, _ = quad(lambda m: ki(m) * kj(m), 0, min(f[i], f[j]) * hv, epsabs=0, epsrel=1e-13)
            assert abs(float(cov[i, j].subs({h: hv, eta: ev})) - ref) <= 1e-13 * abs(ref)


@pytest.mark.parametrize("prediction", ["data", "eps"])
def test_mirrored_equals_exact_for_equal_subintervals(prediction):
    at = {h: sp.Rational(13, 10), eta: sp.Rational(3, 4)}
    for fr in ((sp.Rational(1, 2), 1), (sp.Rational(1, 3), sp.Rational(2, 3), 1)):
        a = np.array(cv.cholesky_factor(fr, prediction).subs(at).evalf(30), dtype=float)
        b = np.array(cv.mirrored_factor(fr, prediction).subs(at).evalf(30), dtype=float)
        assert np.allclose(a @ a.T, b @ b.T, rtol=1e-14, atol=0)


def test_variance_telescoping_and_marginals():
    # docs/algorithms/seeds.md §6.1: the OU transfer composes the variances exactly; marginals 1 - e^{-2 eta f h},
    # eta (e^{2 f h} - 1)
    marginals = {"data": lambda f: 1 - sp.exp(-2 * eta * f * h), "eps": lambda f: eta * (sp.exp(2 * f * h) - 1)}
    for prediction, marginal in marginals.items():
        cov = cv.ito_covariance((c1, 1), prediction)
        for i, f in enumerate((c1, 1)):
            assert sp.simplify(cov[i, i] - marginal(f)) == 0
        ou = cv.ou_recursion((c1, 1), prediction)
        assert sp.simplify(sp.expand(ou[1, 0] ** 2 + ou[1, 1] ** 2 - marginal(1))) == 0


def test_input_validation():
    with pytest.raises(ValueError, match="must end with 1"):
        cv.ito_covariance((sp.Rational(1, 2),), "data")
    with pytest.raises(ValueError, match="increase"):
        cv.ito_covariance((sp.Rational(1, 2), sp.Rational(1, 3), 1), "data")
    with pytest.raises(ValueError, match="prediction must be one of"):
        cv.node_kernel("v", h)
