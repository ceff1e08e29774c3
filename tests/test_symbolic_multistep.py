"""Multistep derivation (docs/algorithms/exponential_integrators.md §3, §8): exactness for k = 1..6, closed forms
k = 2, 3, published differences (V-06a/b/c), derivative form (V-05), reductions (V-03, V-10c), self-checks that fail when they should."""

import pytest
import sympy as sp

from diffsolve.symbolic import symbols as sy
from diffsolve.symbolic.checks import (
    SymbolicCheckError,
    check_history_limit,
    check_series,
    check_structure,
    check_weights,
)
from diffsolve.symbolic.multistep import derive_multistep, history_nodes, multistep_weights
from diffsolve.symbolic.psi import Psi, PsiTilde
from diffsolve.symbolic.tableau import SymbolicTableau

h, eta, r1, r2 = sy.h, sy.eta, sy.r(1), sy.r(2)
F = sp.symbols("F_0:6")  # F_n, F_{n-1}, ...


def _same(a, b):
    return sp.cancel(sp.expand(a - b)) == 0


def _moments(M, z, n=6):
    return [M(q, z) for q in range(n)]


@pytest.mark.parametrize("k", range(1, 7))
def test_data_sde_exactness_any_k(k):
    tab = derive_multistep(k, "data", sde=True)
    assert tab.checked[:2] == ("form", "weights") and "series" in tab.checked
    assert (tab.stages, tab.history, tab.noises, tab.params) == (1, k - 1, 1, (eta,))
    # independent re-check: sum_j W_j u_j^q = q! psi_q((1+eta)h) at a rational point, for q < k
    z = (1 + eta) * h
    nodes = history_nodes(k)
    point = {sy.r(j): sp.Rational(3 + j, 4 + 2 * j) for j in range(1, k)}
    weights = multistep_weights(k, "data", True)
    for q in range(k):
        total = sum(w * u**q for w, u in zip(weights, nodes)).xreplace(point)
        assert _same(total, sp.factorial(q) * Psi(q, z)), q


@pytest.mark.parametrize("k", range(1, 5))
def test_eps_exactness(k):
    tab = derive_multistep(k, "eps", sde=k <= 2)
    assert tab.order == (min(k, 2) if k <= 2 else k)
    weights = multistep_weights(k, "eps")
    check_weights(history_nodes(k), weights, PsiTilde, h, k, k)


def test_closed_forms_k2_k3():
    P = _moments(Psi, h)
    W = multistep_weights(2)
    assert _same(W[0], P[0] + P[1] / r1) and _same(W[1], -P[1] / r1)
    rho = r1 + r2
    W = multistep_weights(3)
    refs = (
        P[0] + (2 * r1 + r2) / (r1 * rho) * P[1] + 2 / (r1 * rho) * P[2],
        -rho / (r1 * r2) * P[1] - 2 / (r1 * r2) * P[2],
        r1 / (r2 * rho) * P[1] + 2 / (r2 * rho) * P[2],
    )
    for w, ref in zip(W, refs):
        assert _same(w, ref)
    uniform = {r1: 1, r2: 1}
    for w, ref in zip(W, (P[0] + sp.Rational(3, 2) * P[1] + P[2], -2 * P[1] - 2 * P[2], P[1] / 2 + P[2])):
        assert _same(w.subs(uniform), ref)
    # noise side: the same rational coefficients on psi~_q(h)
    Wt = multistep_weights(3, "eps")
    for w, wt in zip(W, Wt):
        assert _same(w.xreplace({Psi(q, h): PsiTilde(q, h) for q in range(3)}), wt)


def test_written_out_k2_and_sde_factors():
    # docs/algorithms/exponential_integrators.md §3.4: ODE W_0 = (1 - e^-h) + (h - 1 + e^-h)/(h r_1); reverse SDE
    # (eta = 1) with Z = 2h
    W = multistep_weights(2)
    assert sp.simplify(W[0].rewrite(sp.exp) - ((1 - sp.exp(-h)) + (h - 1 + sp.exp(-h)) / (h * r1))) == 0
    Ws = [w.subs(eta, 1) for w in multistep_weights(2, "data", True)]
    assert sp.simplify(Ws[1].rewrite(sp.exp) + (1 - (1 - sp.exp(-2 * h)) / (2 * h)) / r1) == 0
    tab = derive_multistep(2, "data", True)
    assert tab.a[1] == sp.exp(sy.ls(1) - sy.ls(0) - eta * h)
    assert _same(tab.c[1, 0] ** 2, sp.exp(2 * sy.ls(1)) * (1 - sp.exp(-2 * eta * h)))
    tab = derive_multistep(2, "eps", True)
    assert tab.a[1] == sp.exp(sy.la(1) - sy.la(0))
    assert _same(tab.c[1, 0] ** 2, sp.exp(2 * sy.ls(1)) * eta * (sp.exp(2 * h) - 1))
    assert _same(tab.b[1, 0], -(1 + eta) * sp.exp(sy.ls(1)) * (PsiTilde(0, h) + PsiTilde(1, h) / r1))


def _model_part(weights):
    return sum(w * f for w, f in zip(weights, F))


def _differences():
    d10 = (F[0] - F[1]) / r1
    d11 = (F[1] - F[2]) / r2
    return d10, (d10 - d11) / (r1 + r2)


def test_derivative_form_v05():
    P = _moments(Psi, h)
    d10, d2 = _differences()
    taylor_form = P[0] * F[0] + P[1] * (d10 + r1 * d2) + P[2] * 2 * d2
    assert _same(_model_part(multistep_weights(3)), taylor_form)


def test_published_differences_v06():
    P = _moments(Psi, h)
    # V-06a: exact - published = (psi_1 - psi_0/2)(F_n - F_{n-1})/r_1, psi_1 - psi_0/2 = h^2/12 - h^3/24 + h^4/80 - ...
    diff2 = _model_part(multistep_weights(2)) - _model_part(multistep_weights(2, variant="published"))
    assert _same(diff2, (P[1] - P[0] / 2) * (F[0] - F[1]) / r1)
    series = sp.series((P[1] - P[0] / 2).rewrite(sp.exp), h, 0, 5).removeO()
    assert sp.expand(series - (h**2 / 12 - h**3 / 24 + h**4 / 80)) == 0
    # V-06b: exact - published = psi_2 * delta2 (3M); published with 2 delta2 is exact
    d10, d2 = _differences()
    diff3 = _model_part(multistep_weights(3)) - _model_part(multistep_weights(3, variant="published"))
    assert _same(diff3, P[2] * d2)
    # V-06c: published 3M is exact for degree <= 1 and has error -psi_2 on u^2
    W = multistep_weights(3, variant="published")
    nodes = history_nodes(3)
    for q, err in ((0, 0), (1, 0), (2, -P[2])):
        assert _same(sum(w * u**q for w, u in zip(W, nodes)) - sp.factorial(q) * P[q], err)
    # the SDE published forms use the same rule with Z = (1 + eta) h
    Z = (1 + eta) * h
    exact, published = multistep_weights(2, "data", True), multistep_weights(2, "data", True, "published")
    diff = _model_part(exact) - _model_part(published)
    assert _same(diff, (Psi(1, Z) - Psi(0, Z) / 2) * (F[0] - F[1]) / r1)


def test_declared_orders_and_names():
    assert derive_multistep(3, variant="published").order == 2
    assert derive_multistep(2, variant="published").order == 2
    assert derive_multistep(5).order == 5
    sde = derive_multistep(3, "data", True)
    assert (sde.order, sde.deterministic_order, sde.strong_order) == (2, 3, 1)
    assert derive_multistep(1, "data", True).order == 1
    assert [derive_multistep(2, p, s).name for p, s in (("data", False), ("data", True), ("eps", False))] == [
        "dpmpp-2m",
        "dpmpp-2m-sde",
        "dpm-solver-2m",
    ]
    with pytest.raises(ValueError, match="variant 'published' exists for k in"):
        derive_multistep(4, variant="published")
    with pytest.raises(ValueError, match="variant must be one of"):
        derive_multistep(2, variant="midpoint")
    with pytest.raises(ValueError, match="k must be an integer"):
        derive_multistep(0)


def test_history_limit_matches_sympy_limit():
    # V-10c with SymPy's own limit as the independent reference
    W3, W2 = multistep_weights(3), multistep_weights(2)
    for w, ref in zip(W3, tuple(W2) + (0,)):
        assert _same(sp.limit(w, r2, sp.oo), ref)
    W2, W1 = multistep_weights(2), multistep_weights(1)
    assert _same(sp.limit(W2[0], r1, sp.oo), W1[0]) and sp.limit(W2[1], r1, sp.oo) == 0


def test_first_order_is_ddpm_posterior():
    # docs/algorithms/seeds.md §6.2(1): VP, alpha_s = 0.3, alpha_t = 0.8, eta = 1: x-coefficient 0.148352,
    # D-coefficient 0.755495, variance 0.339973 (the DDPM posterior q(x_t | x_s, x0))
    tab = derive_multistep(1, "data", True)
    a_s, a_t = sp.Float("0.3", 30), sp.Float("0.8", 30)
    s_s, s_t = sp.sqrt(1 - a_s**2), sp.sqrt(1 - a_t**2)
    vals = {sy.la(0): sp.log(a_s), sy.la(1): sp.log(a_t), sy.ls(0): sp.log(s_s), sy.ls(1): sp.log(s_t), eta: 1}
    vals[h] = sp.log(a_t / s_t) - sp.log(a_s / s_s)
    got = [sp.N(x.rewrite(sp.exp).subs(vals), 15) for x in (tab.a[1], tab.b[1, 0], tab.c[1, 0] ** 2)]
    assert [round(float(g), 6) for g in got] == [0.148352, 0.755495, 0.339973]
    # the posterior formulas: x_s = (a_s/a_t) x_t + s_st eps, s_st^2 = s_s^2 - (a_s/a_t)^2 s_t^2
    s_st2 = s_s**2 - (a_s / a_t) ** 2 * s_t**2
    post = ((a_s / a_t) * s_t**2 / s_s**2, a_t * s_st2 / s_s**2, s_st2 * s_t**2 / s_s**2)
    for g, p in zip(got, post):
        assert abs(g - p) < 1e-14


def test_checks_fail_on_wrong_claims():
    nodes, W = history_nodes(3), multistep_weights(3)
    # perturbed weight: exactness fails
    bad = (W[0] + Psi(2, h) / 100,) + W[1:]
    with pytest.raises(SymbolicCheckError, match="exactness"):
        check_weights(nodes, bad, Psi, h, 3, 3)
    # published 3M claimed as third order
    Wp = multistep_weights(3, variant="published")
    with pytest.raises(SymbolicCheckError, match="order condition"):
        check_weights(nodes, Wp, Psi, h, 3, 2)
    # exact 3M claimed as second order: the defect check notices the order is higher
    with pytest.raises(SymbolicCheckError, match="too low"):
        check_weights(nodes, W, Psi, h, 2, 2)
    # a wrong reduced set
    with pytest.raises(SymbolicCheckError, match="does not reduce"):
        check_history_limit(W, multistep_weights(2, variant="published"), Psi, h, r2)
    # tableau claiming a higher order than it has
    tab = derive_multistep(2)
    liar = SymbolicTableau(**{**tab.__dict__, "order": 3, "deterministic_order": 3, "checked": ()})
    with pytest.raises(SymbolicCheckError, match="h\\^3"):
        check_series(liar)
    # log alpha outside exp
    leaky = SymbolicTableau(**{**tab.__dict__, "a": sp.ImmutableMatrix([1, sy.ls(1) - sy.ls(0)]), "checked": ()})
    with pytest.raises(SymbolicCheckError, match="outside exp"):
        check_structure(leaky)
