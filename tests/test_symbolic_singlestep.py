"""Singlestep tableaux vs the tables of docs/algorithms/exponential_integrators.md §4 (V-07a-e), order conditions,
SEEDS reductions (docs/algorithms/seeds.md §6.2)."""

import pytest
import sympy as sp

from diffsolve.symbolic import symbols as sy
from diffsolve.symbolic.checks import SymbolicCheckError, check_series, series_defect
from diffsolve.symbolic.multistep import derive_multistep
from diffsolve.symbolic.psi import Psi, PsiTilde
from diffsolve.symbolic.singlestep import derive_singlestep

h, c1, c2, eta = sy.h, sy.c1, sy.c2, sy.eta
la, ls = sy.la, sy.ls


def _same(a, b):
    return sp.cancel(sp.expand(a - b)) == 0


def _spec_tables(prediction):
    """Hand-typed §4.2 (data) tables; §4.3 noise side: alpha_i psi -> -sigma_i psi~, a_i = alpha_i/alpha_0."""
    M = Psi if prediction == "data" else PsiTilde
    node = (lambda p: sp.exp(la(p))) if prediction == "data" else (lambda p: -sp.exp(ls(p)))

    def lin(p):
        return sp.exp(ls(p) - ls(0)) if prediction == "data" else sp.exp(la(p) - la(0))

    def m(q, z):
        return M(q, z)

    two_stage1 = {"a": lin(1), (0,): node(1) * m(0, c1 * h)}
    two = {
        "published": {"a": lin(2), (0,): node(2) * m(0, h) * (1 - 1 / (2 * c1)), (1,): node(2) * m(0, h) / (2 * c1)},
        "interp": {"a": lin(2), (0,): node(2) * (m(0, h) - m(1, h) / c1), (1,): node(2) * m(1, h) / c1},
    }
    three_stage2 = {
        "a": lin(2),
        (0,): node(2) * (m(0, c2 * h) - c2 / c1 * m(1, c2 * h)),
        (1,): node(2) * c2 / c1 * m(1, c2 * h),
    }
    three = {
        "published": {"a": lin(3), (0,): node(3) * (m(0, h) - m(1, h) / c2), (1,): 0, (2,): node(3) * m(1, h) / c2},
        "interp": {
            "a": lin(3),
            (0,): node(3) * (m(0, h) - (c1 + c2) / (c1 * c2) * m(1, h) + 2 / (c1 * c2) * m(2, h)),
            (1,): node(3) * (c2 * m(1, h) - 2 * m(2, h)) / (c1 * (c2 - c1)),
            (2,): node(3) * (2 * m(2, h) - c1 * m(1, h)) / (c2 * (c2 - c1)),
        },
    }
    return two_stage1, two, three_stage2, three


def _assert_row(tab, row, ref):
    assert tab.a[row] == ref["a"]
    for j in range(tab.stages):
        assert _same(tab.b[row, j], ref.get((j,), 0)), (tab.name, row, j)


@pytest.mark.parametrize("prediction", ["data", "eps"])
@pytest.mark.parametrize("variant", ["published", "interp"])
def test_tables_match_spec_v07(prediction, variant):
    stage1, two, stage2, three = _spec_tables(prediction)
    t2 = derive_singlestep(2, prediction, variant)
    _assert_row(t2, 1, stage1)
    _assert_row(t2, 2, two[variant])
    t3 = derive_singlestep(3, prediction, variant)
    _assert_row(t3, 1, stage1)
    _assert_row(t3, 2, stage2)
    _assert_row(t3, 3, three[variant])
    assert t2.fractions == (0, c1) and t3.fractions == (0, c1, c2)
    assert t2.defaults == (sp.Rational(1, 2),) and t3.defaults == (sp.Rational(1, 3), sp.Rational(2, 3))
    assert (t2.order, t3.order, t3.generic_order, t2.nfe_per_step, t3.nfe_per_step) == (2, 3, 2, 2, 3)


def test_interp_rows_integrate_the_interpolant_v07a():
    # 3S interp output = alpha_e * h-integral of exp(-h(1-u)) * (quadratic through (0, F0), (c1, F1), (c2, F2))
    u = sp.Symbol("u")
    F0, F1, F2 = sp.symbols("F0 F1 F2")
    poly = sp.interpolate([(0, F0), (c1, F1), (c2, F2)], u)
    point = {c1: sp.Rational(1, 4), c2: sp.Rational(3, 5), h: sp.Rational(7, 10)}
    exact = (h * sp.integrate(sp.exp(-h * (1 - u)) * poly, (u, 0, 1))).subs(point)
    tab = derive_singlestep(3, "data", "interp")
    got = sum(tab.b[3, j] * f for j, f in enumerate((F0, F1, F2))) * sp.exp(-la(3))
    assert sp.simplify(sp.expand(got.rewrite(sp.exp).subs(point) - exact)) == 0


def test_published_minus_interp_2s_v07d():
    F0, F1 = sp.symbols("F0 F1")
    pub, itp = derive_singlestep(2, "data", "published"), derive_singlestep(2, "data", "interp")
    diff = ((pub.b[2, 0] - itp.b[2, 0]) * F0 + (pub.b[2, 1] - itp.b[2, 1]) * F1) * sp.exp(-la(2))
    series = sp.series(diff.rewrite(sp.exp), h, 0, 4).removeO()
    assert _same(series, h**2 * (h - 2) / (24 * c1) * (F1 - F0))


@pytest.mark.parametrize("prediction", ["data", "eps"])
@pytest.mark.parametrize("variant", ["published", "interp"])
def test_third_order_condition_v07e(prediction, variant):
    tab = derive_singlestep(3, prediction, variant)
    assert tab.order_condition == ((c2, sp.Rational(2, 3)),)
    assert "order-condition" in tab.checked
    # at c2 = 1/2 the h^3 term of the local error does not vanish
    off = tab.substitute({c2: sp.Rational(1, 2)})
    assert series_defect(off, n=3).c[3] != 0
    # the 2S solvers are second order for every c1 (c1 stays symbolic in the series check)
    assert series_defect(derive_singlestep(2, prediction, variant), n=2).c == (0, 0, 0)


def test_wrong_order_claim_is_caught():
    tab = derive_singlestep(3, "data", "published")
    liar = tab.substitute({c2: sp.Rational(1, 2)})
    liar = type(tab)(**{**liar.__dict__, "generic_order": None, "order_condition": ()})
    with pytest.raises(SymbolicCheckError, match="h\\^3"):
        check_series(liar)


def test_order_one_is_ddim():
    for prediction in ("data", "eps"):
        s1, m1 = derive_singlestep(1, prediction), derive_multistep(1, prediction)
        assert s1.a == m1.a and s1.b == m1.b
        assert s1.name in ("ddim", "dpm-solver-1")


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("prediction", ["data", "eps"])
def test_seeds_reduces_to_ode_at_eta_zero(order, prediction):
    # docs/algorithms/seeds.md §6.2(4): with eta = 0 SEEDS-k is DPM-Solver(++) kS; the noise rows have the exact
    # covariance
    sde = derive_singlestep(order, prediction, "published", sde=True)
    ode = derive_singlestep(order, prediction, "published")
    zero = sde.substitute({eta: 0})
    for row in range(order + 1):
        assert sp.simplify(zero.a[row] - ode.a[row]) == 0
        for j in range(order):
            assert _same(zero.b[row, j], ode.b[row, j])
    assert "noise-covariance" in sde.checked and sde.noises == order
    assert (sde.order, sde.strong_order) == (2, 1)
    assert all(sp.simplify(x) == 0 for x in zero.c)


def test_seeds_mirrored_noise():
    tab = derive_singlestep(2, "data", "interp", sde=True, noise="mirrored")
    assert tab.variant == "interp-mirrored"
    # rule (B): the newest normal gets the first piece; the output row's marginal variance is exact
    assert _same(tab.c[2, 1] ** 2, sp.exp(2 * ls(2)) * (1 - sp.exp(-2 * c1 * eta * h)))
    with pytest.raises(ValueError, match="noise rule"):
        derive_singlestep(2, "data", "interp", sde=True, noise="fancy")
