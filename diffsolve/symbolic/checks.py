"""Symbolic checks of derived tableaux (docs/algorithms/exponential_integrators.md §8 step 5 and
Appendix A V-04, V-06, V-07, V-10; docs/algorithms/seeds.md §2.1).

- ``check_weights``: exactness sum_j W_j u_j^q = q! M_q(z) for q below the exactness degree (a rational-function
  identity, decided exactly in a polynomial ring), the order conditions sum_j W_j u_j^q - q! M_q(z) = O(z^{p+1-q})
  for q <= p, and sharpness (some condition fails at p + 1: the defect of
  docs/algorithms/exponential_integrators.md §8 step 5b).
- ``check_history_limit``: r_last -> oo removes the oldest node (docs/algorithms/exponential_integrators.md §5.3,
  V-10c).
- ``check_first_order``: k = 1 is DDIM / the first-order SDE step of docs/algorithms/exponential_integrators.md
  §2.5 (V-03).
- ``check_form``: the Form's propagator, linear factor and moment representation solve the lambda-time SDE.
- ``check_series``: the step applied to a nonlinear test problem, expanded in h, against the Taylor series of the
  exact solution of the eta-ODE (noise-free part) to the declared order, and not beyond.
- ``check_noise``: the noise coefficients reproduce the Ito-isometry covariance sigma_i sigma_j Cov(N_i, N_j).
- ``check_structure``: symbols, log-space rule (la/ls only inside exp), explicit stages, no division by h.

Every check raises ``SymbolicCheckError`` with what failed; ``check_tableau`` runs the tableau-level ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import sympy as sp
from sympy.polys.rings import ring

from . import symbols as sy
from .covariance import _rational_in_exponentials, ito_covariance
from .forms import SIGMA, form
from .psi import _Moment
from .series import Series, coefficient_field, taylor

__all__ = [
    "SymbolicCheckError",
    "rational_sum_is_zero",
    "check_weights",
    "check_history_limit",
    "check_first_order",
    "check_form",
    "check_series",
    "check_noise",
    "check_structure",
    "check_tableau",
    "SeriesProblem",
    "DEFAULT_PROBLEM",
    "series_defect",
]


class SymbolicCheckError(AssertionError):
    """A derived tableau failed a symbolic check (the message names the check and the failing term)."""


# ----------------------------------------------------------------------------------------------- rational identities
def _flatten_sum(terms) -> list:
    out = []
    for t in terms:
        t = sp.sympify(t)
        out.extend(sp.Add.make_args(t) if isinstance(t, sp.Add) else [t])
    return [t for t in out if t != 0]


class RationalSpace:
    """Rational functions over one common denominator: ``numerator(expr)`` is the ring element N with
    expr = N / L, L the product of all distinct denominator factors of ``exprs`` (a common multiple).

    History ratios r_j are written through the nodes u_j = -(r_1 + ... + r_j) (r_j = u_{j-1} - u_j), in which
    the Lagrange identities are sparse.  Zero tests are then exact comparisons in a sparse polynomial ring.
    """

    def __init__(self, exprs):
        flat = _flatten_sum(exprs)
        symbols = set().union(set(), *(t.free_symbols for t in flat))
        rsyms = [s for s in symbols if s.name.startswith("r_")]
        m = max((int(s.name[2:]) for s in rsyms), default=0)
        us = sp.symbols(f"u_1:{m + 1}") if m else ()
        self._sub = {sy.r(j): (us[j - 2] if j > 1 else 0) - us[j - 1] for j in range(1, m + 1)}
        others = sorted((s for s in symbols if s not in set(rsyms)), key=lambda s: s.name)
        gens = tuple(us) + tuple(others) or (sp.Dummy("none"),)
        self.ring = ring(gens, sp.QQ)[0]
        self._common: dict = {}
        for t in flat:
            for base, exp in self._factors(t).items():
                self._common[base] = max(self._common.get(base, 0), exp)
        self._bases = {b: self._conv(b) for b in self._common}

    def _conv(self, e):
        return self.ring.from_expr(sp.sympify(e).xreplace(self._sub))

    @staticmethod
    def _factors(term) -> dict:
        factors: dict = {}
        for f in sp.Mul.make_args(sp.fraction(term)[1]):
            base, exp = f.as_base_exp()
            factors[base] = factors.get(base, 0) + int(exp)
        return factors

    def numerator(self, expr):
        total = self.ring(0)
        for t in _flatten_sum([expr]):
            factors = self._factors(t)
            cofactor = self.ring(1)
            for base, exp in self._common.items():
                extra = exp - factors.get(base, 0)
                if extra < 0:
                    raise ValueError(f"denominator factor {base} of {t} is not in the common denominator")
                if extra:
                    cofactor *= self._bases[base] ** extra
            total += self._conv(sp.fraction(t)[0]) * cofactor
        return total

    @property
    def denominator(self):
        return self.numerator(sp.Integer(1))


def rational_sum_is_zero(terms: Sequence[sp.Expr]) -> bool:
    """Decide exactly whether a sum of rational functions vanishes identically."""
    terms = _flatten_sum(terms)
    space = RationalSpace(terms)
    return sum((space.numerator(t) for t in terms), space.ring(0)) == 0


# ----------------------------------------------------------------------------------------------- weights
def _moment_symbols(weights, moment, z, n):
    """Replace moment(q, z) by symbols P_q; raise if other moment atoms remain."""
    ps = sp.symbols(f"P_0:{n}")
    sub = {moment(q, z): ps[q] for q in range(n)}
    out = [sp.sympify(w).xreplace(sub) for w in weights]
    for w in out:
        if w.atoms(_Moment):
            raise SymbolicCheckError(f"weights contain moments other than {moment.__name__}(q, {z}): {w}")
    return out, ps


def _series_coefficient(moment, q: int, m: int) -> sp.Rational:
    """[z^m] moment(q, z)."""
    t = sp.Dummy("t")
    return sp.Poly(moment(q, t).series_poly(m + 1), t).coeff_monomial(t**m)


def check_weights(nodes, weights, moment, z, order: int, exact_degree: int, label: str = "") -> None:
    """Exactness below ``exact_degree``, order conditions up to ``order``, and sharpness at ``order`` + 1.

    With E_q = sum_j W_j u_j^q - q! M_q(z) = sum_q' A[q, q'] M_q'(z) (A rational in the nodes):
    exactness is A[q, .] = 0; the order condition is [z^m] E_q = sum_q' A[q, q'] [z^m] M_q' = 0 for
    1 <= m <= order - q; sharpness is that some [z^{order+1-q}] E_q does not vanish.
    """
    k = len(nodes)
    n = max(k, order + 2)
    ws, ps = _moment_symbols(weights, moment, z, n)
    coeff = [[sp.diff(ws[j], ps[qp]) for qp in range(n)] for j in range(k)]
    terms = {(j, q, qp): coeff[j][qp] * nodes[j] ** q for j in range(k) for q in range(order + 2) for qp in range(n)}
    space = RationalSpace(list(terms.values()))
    L = space.denominator

    def A(q, qp):
        total = sum((space.numerator(terms[j, q, qp]) for j in range(k)), space.ring(0))
        return total - (int(sp.factorial(q)) * L if q == qp else 0)

    table = {(q, qp): A(q, qp) for q in range(order + 2) for qp in range(n)}
    for q in range(exact_degree):
        for qp in range(n):
            if table[q, qp] != 0:
                raise SymbolicCheckError(
                    f"{label}: exactness fails: sum_j W_j u_j^{q} - {q}! M_{q} has a non-zero {ps[qp]} coefficient"
                )

    def condition(q, m):  # numerator of [z^m] E_q
        terms = (sp.QQ.convert(_series_coefficient(moment, qp, m)) * table[q, qp] for qp in range(n))
        return sum(terms, space.ring(0))

    for q in range(order + 1):
        for m in range(1, order - q + 1):
            if condition(q, m) != 0:
                raise SymbolicCheckError(f"{label}: order condition q = {q} fails at z^{m} (declared order {order})")
    if all(condition(q, order + 1 - q) == 0 for q in range(order + 1)):
        raise SymbolicCheckError(f"{label}: no defect at order {order} + 1: the declared order is too low")


def check_history_limit(weights, reduced, moment, z, var: sp.Symbol, label: str = "") -> None:
    """As the last history ratio ``var`` -> oo the weights tend to ``reduced`` (one node fewer) and the last
    weight to 0 (docs/algorithms/exponential_integrators.md §5.3, V-10c).  Decided in the ring: with coefficient
    N/L, the limit is LC(N)/LC(L) in the last node variable (0 when deg N < deg L)."""
    n = len(weights) + 1
    ws, ps = _moment_symbols(weights, moment, z, n)
    rs, _ = _moment_symbols(tuple(reduced) + (0,), moment, z, n)
    pairs = [(sp.diff(w, p), sp.diff(t, p)) for w, t in zip(ws, rs) for p in ps]
    space = RationalSpace([x for pair in pairs for x in pair])
    L = space.denominator
    last = space.ring.gens[int(var.name[2:]) - 1]  # u_{k-1} moves to -oo when r_{k-1} -> oo
    dL, lcL = L.degree(last), L.coeff_wrt(last, L.degree(last))
    for index, (coeff, target) in enumerate(pairs):
        num, tnum = space.numerator(coeff), space.numerator(target)
        if num.degree(last) > dL:
            raise SymbolicCheckError(f"{label}: a weight coefficient diverges as {var} -> oo")
        lead = num.coeff_wrt(last, dL) if num.degree(last) == dL else space.ring(0)
        if lead * L != tnum * lcL:
            j, q = divmod(index, n)
            raise SymbolicCheckError(f"{label}: W_{j} does not reduce as {var} -> oo ({ps[q]} coefficient)")


# ----------------------------------------------------------------------------------------------- reductions
# Independent, hand-typed references (docs/algorithms/exponential_integrators.md §2.5): DDIM / DDPM posterior
# (data), SDE-DPM-Solver-1 (noise); the entries are (a, b, c) of the output row as functions of eta.
_FIRST_ORDER_REFERENCE = {
    "data": lambda eta: (
        sp.exp(sy.ls(1)) / sp.exp(sy.ls(0)) * sp.exp(-eta * sy.h),
        sp.exp(sy.la(1)) * (1 - sp.exp(-(1 + eta) * sy.h)),
        sp.exp(sy.ls(1)) * sp.sqrt(1 - sp.exp(-2 * eta * sy.h)),
    ),
    "eps": lambda eta: (
        sp.exp(sy.la(1)) / sp.exp(sy.la(0)),
        -(1 + eta) * sp.exp(sy.ls(1)) * (sp.exp(sy.h) - 1),
        sp.exp(sy.ls(1)) * sp.sqrt(eta * (sp.exp(2 * sy.h) - 1)),
    ),
}


def _same(expr, ref) -> bool:
    diff = sp.sympify(expr).rewrite(sp.exp) - ref
    return sp.simplify(sp.powsimp(sp.expand(diff), combine="exp")) == 0


def check_first_order(tab) -> None:
    """A one-stage tableau without history is DDIM (eta = 0) / the first-order SDE step of
    docs/algorithms/exponential_integrators.md §2.5."""
    eta = sy.eta if tab.sde else sp.Integer(0)
    a, b, c = _FIRST_ORDER_REFERENCE[tab.prediction](eta)
    noise = tab.c[1, 0] if tab.noises else sp.Integer(0)
    for name, expr, ref in (("a", tab.a[1], a), ("b", tab.b[1, 0], b), ("c", noise, c)):
        if not _same(expr, ref):
            raise SymbolicCheckError(f"{tab.name}: first-order {name} = {expr} differs from the reference {ref}")


# ----------------------------------------------------------------------------------------------- forms
@lru_cache(maxsize=None)
def check_form(prediction: str) -> None:
    """The Form solves dx = [L x + K F] dlam + sigma sqrt(2 eta) dW (generic schedule, symbolic eta):
    d/dt log Phi(t, s) = L(t), Phi(s, s) = 1; the log-space linear factor equals Phi between the nodes; and
    frac h Phi(lam_p, lam_0 + frac h v) K(lam_0 + frac h v) = prefactor * z * exp(s z (1 - v)) (the moment kernel).
    """
    fm = form(prediction)
    t, s, v, lam0, frac = sp.symbols("t s v lambda_0 f", real=True)
    eta = sy.eta
    phi = fm.propagator(t, s, eta)
    if sp.simplify(sp.diff(sp.log(phi), t) - fm.drift(t, eta)) != 0 or sp.simplify(phi.subs(t, s) - 1) != 0:
        raise SymbolicCheckError(f"{prediction}: propagator {phi} does not solve the linear part")
    # log space: sigma(lam_0) -> exp(ls_0), sigma(lam_0 + f h) -> exp(ls_1), and la = ls + lam.
    lam1 = lam0 + frac * sy.h
    to_logs = {SIGMA(lam0): sp.exp(sy.ls(0)), SIGMA(lam1): sp.exp(sy.ls(1))}
    la_to_ls = {sy.la(0): sy.ls(0) + lam0, sy.la(1): sy.ls(1) + lam1}
    lin = fm.linear_factor(1, frac, eta).subs(la_to_ls)
    if sp.simplify(phi.subs({t: lam1, s: lam0}).subs(to_logs) - lin) != 0:
        raise SymbolicCheckError(f"{prediction}: linear factor {lin} != Phi between the nodes")
    mu = lam0 + frac * sy.h * v
    integrand = frac * sy.h * phi.subs({t: lam1, s: mu}) * fm.model_coefficient(mu, eta)
    z = fm.argument(frac, eta)
    kernel = fm.prefactor(1, eta).subs(la_to_ls) * z * sp.exp(fm.moment.sign * z * (1 - v))
    if sp.simplify(sp.powsimp(integrand.subs(to_logs) / kernel, combine="exp")) != 1:
        raise SymbolicCheckError(f"{prediction}: model integral kernel does not match the moment representation")


# ----------------------------------------------------------------------------------------------- test problem
@dataclass(frozen=True)
class SeriesProblem:
    """A smooth schedule (log alpha polynomial in lam) and a nonlinear model F(x, lam), started at lam = 0."""

    log_alpha: Callable[[sp.Expr], sp.Expr]
    model: Callable[[sp.Expr, sp.Expr], sp.Expr]
    x0: sp.Expr


DEFAULT_PROBLEM = SeriesProblem(
    log_alpha=lambda l: -l / 4 - l**2 / 6 + l**3 / 10,
    model=lambda x, l: x**2 / 5 - x / 2 + l / 3 - l**2 / 7 + sp.Rational(1, 4),
    x0=sp.Rational(1, 2),
)

_HISTORY_RATIOS = (sp.Rational(7, 10), sp.Rational(13, 10), sp.Rational(9, 10), sp.Rational(6, 5), sp.Rational(4, 5))


def _history_ratio(j: int) -> sp.Rational:
    """Fixed, unequal history ratios for the series test (r_j beyond the table repeat with a shift)."""
    return _HISTORY_RATIOS[(j - 1) % len(_HISTORY_RATIOS)] + (j - 1) // len(_HISTORY_RATIOS)


def _exact_solution(tab, problem: SeriesProblem, n: int, K) -> Series:
    """Taylor series in tau of the eta-ODE dx/dlam = L x + K F(x, lam), x(0) = x0 (Picard iteration)."""
    fm = form(tab.prediction)
    eta = sy.eta if tab.sde else sp.Integer(0)
    tau, l = sp.Symbol("tau", real=True), sp.Dummy("lam", real=True)
    sigma = sp.Lambda(l, sp.exp(problem.log_alpha(l) - l))
    drift = fm.drift(tau, eta).replace(SIGMA, sigma).doit()
    coefficient = fm.model_coefficient(tau, eta).replace(SIGMA, sigma).doit()
    env = {tau: Series.var(n, K)}
    Ls, Ks = taylor(drift, env, n, K), taylor(coefficient, env, n, K)
    x0 = Series.const(problem.x0, n, K)
    x, X = x0, sp.Symbol("X")
    for _ in range(n + 1):
        F = taylor(problem.model(X, tau), {**env, X: x}, n, K)
        x = x0 + (Ls * x + Ks * F).integrate()
    return x


def series_defect(tab, problem: SeriesProblem = DEFAULT_PROBLEM, n: int | None = None, ratios=None) -> Series:
    """Series in h of (noise-free step - exact solution of the eta-ODE) on ``problem``, with exact history.

    History ratios r_j take fixed unequal rational values unless ``ratios`` maps them to others; every other
    parameter (eta, stage fractions) stays symbolic: the coefficients lie in QQ(params).
    """
    n = tab.deterministic_order + 1 if n is None else n
    K = coefficient_field(set(tab.params) | {sy.eta})
    exact = _exact_solution(tab, problem, n, K)
    hh = Series.var(n, K)
    X = sp.Symbol("X")

    def model(x_series, frac):
        return taylor(problem.model(X, sy.h * frac), {sy.h: hh, X: x_series}, n, K)

    env = {sy.h: hh}
    ratios = {sy.r(j): _history_ratio(j) for j in range(1, tab.history + 1)} | dict(ratios or {})
    fractions = tuple(sp.sympify(f).xreplace(ratios) for f in tab.fractions)  # -r_1: the previous node
    for p, frac in enumerate(fractions + (sp.Integer(1),)):
        env[sy.la(p)] = taylor(problem.log_alpha(sy.h * frac), {sy.h: hh}, n, K)
        env[sy.ls(p)] = taylor(problem.log_alpha(sy.h * frac) - sy.h * frac, {sy.h: hh}, n, K)
    u, history = sp.Integer(0), []
    for m in range(1, tab.history + 1):
        u -= ratios[sy.r(m)]
        history.append(model(exact.at(u), u))
    x0 = Series.const(problem.x0, n, K)
    stages = []
    for i in range(tab.stages + 1):
        value = taylor(tab.a[i], env, n, K) * x0
        for j in range(min(i, tab.stages)):
            value = value + taylor(tab.b[i, j].xreplace(ratios), env, n, K) * stages[j]
        for m in range(tab.history):
            value = value + taylor(tab.e[i, m].xreplace(ratios), env, n, K) * history[m]
        if i < tab.stages:
            stages.append(model(value, fractions[i]))
    return value - exact


def check_series(tab, problem: SeriesProblem = DEFAULT_PROBLEM) -> None:
    """Local error O(h^{p+1}) on the test problem with every parameter symbolic: p = ``generic_order``; then,
    under ``order_condition``, p = ``deterministic_order`` and sharp (the h^{p+1} term does not vanish)."""
    p = tab.deterministic_order
    generic = tab.generic_order or p
    if generic < p:
        defect = series_defect(tab, problem, n=generic + 1)
        for m, coeff in enumerate(defect.c[: generic + 1]):
            if coeff != 0:
                raise SymbolicCheckError(f"{tab.name}: local error has an h^{m} term {coeff.as_expr()} "
                                         f"for general stage fractions (order {generic} claimed)")
        if not tab.order_condition:
            raise SymbolicCheckError(f"{tab.name}: order {p} > generic order {generic} needs an order_condition")
        tab = tab.substitute(dict(tab.order_condition))
    defect = series_defect(tab, problem, n=p + 1)
    for m, coeff in enumerate(defect.c[: p + 1]):
        if coeff != 0:
            raise SymbolicCheckError(f"{tab.name}: local error has an h^{m} term {coeff.as_expr()} (order {p} claimed)")
    if defect.c[p + 1] == 0:
        raise SymbolicCheckError(f"{tab.name}: local error vanishes at h^{p + 1}: declared order {p} is too low")


# ----------------------------------------------------------------------------------------------- noise
def noise_nodes(tab) -> tuple:
    """The stage rows that receive noise and their fractions: rows 1..S (stage nodes and the step end)."""
    rows = tuple(range(1, tab.stages + 1))
    fracs = tuple(tab.fractions[1:]) + (sp.Integer(1),)
    return rows, fracs


def check_noise(tab) -> None:
    """C C^T = sigma_i sigma_j Cov(N_i, N_j) (full matrix for the exact rule, diagonal for "mirrored")."""
    if not tab.noises:
        return
    rows, fracs = noise_nodes(tab)
    if any(tab.c[0, q] != 0 for q in range(tab.noises)):
        raise SymbolicCheckError(f"{tab.name}: stage 0 (u_0 = x_n) must not receive noise")
    cov = ito_covariance(fracs, tab.prediction)
    mirrored = "mirrored" in tab.variant
    for a, i in enumerate(rows):
        for b, j in enumerate(rows):
            if mirrored and a != b:
                continue
            gram = sp.Add(*[tab.c[i, q] * tab.c[j, q] for q in range(tab.noises)])
            target = sp.exp(sy.ls(i)) * sp.exp(sy.ls(j)) * cov[a, b]
            diff = _rational_in_exponentials(gram - target, fracs, tab.prediction, sy.eta)
            if sp.cancel(sp.expand(diff)) != 0:
                raise SymbolicCheckError(f"{tab.name}: noise covariance of rows {i}, {j} differs by {diff}")


# ----------------------------------------------------------------------------------------------- structure
def check_structure(tab) -> None:
    allowed = set(tab.step_symbols)
    logs = {sy.la(p) for p in range(tab.stages + 1)} | {sy.ls(p) for p in range(tab.stages + 1)}
    for name, index, expr in tab.entries():
        extra = expr.free_symbols - allowed
        if extra:
            raise SymbolicCheckError(f"{tab.name}: {name}{list(index)} uses unknown symbols {extra}")
        outside = expr.replace(lambda e: isinstance(e, sp.exp), lambda e: sp.Integer(1))
        if outside.free_symbols & logs:
            raise SymbolicCheckError(f"{tab.name}: {name}{list(index)} uses log alpha/sigma outside exp: {expr}")
        no_moments = expr.replace(lambda e: isinstance(e, _Moment), lambda e: sp.Integer(1))
        for pw in no_moments.atoms(sp.Pow):
            if pw.exp.is_negative and pw.base.has(sy.h):
                raise SymbolicCheckError(f"{tab.name}: {name}{list(index)} divides by {pw.base} (h) outside psi")
    for i in range(tab.stages):
        for j in range(i, tab.stages):
            if tab.b[i, j] != 0:
                raise SymbolicCheckError(f"{tab.name}: stage {i} uses F_{j} (stages must be explicit)")
    row0 = [tab.a[0] - 1] + [tab.b[0, j] for j in range(tab.stages)] + [tab.e[0, m] for m in range(tab.history)]
    if any(x != 0 for x in row0):
        raise SymbolicCheckError(f"{tab.name}: stage 0 must be u_0 = x_n")
    if not 0 <= tab.keep < tab.stages:
        raise SymbolicCheckError(f"{tab.name}: keep = {tab.keep} is not a stage")


def check_tableau(tab) -> list[str]:
    """Run the tableau-level checks; return the names of those that ran."""
    done = []
    for name, fn in (("structure", check_structure), ("series", check_series)):
        fn(tab)
        done.append(name)
    if tab.noises:
        check_noise(tab)
        done.append("noise-covariance")
    if tab.stages == 1 and tab.history == 0:
        check_first_order(tab)
        done.append("first-order")
    return done
