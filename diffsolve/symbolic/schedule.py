"""Schedule calculus: everything a sampler needs, derived by SymPy from log alpha(t) and log sigma(t).

lam = log alpha - log sigma, dlam/dt, the drift f = d log alpha/dt and the diffusion g^2 = -2 sigma^2 dlam/dt
(docs/algorithms/exponential_integrators.md §1.2), an inverse t(lam) in closed form where one is found, and NumPy
functions printed with expm1/log1p/logaddexp rewrites so that ratios and small arguments keep full precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

__all__ = ["ScheduleCalculus", "derive", "stable", "numpy_function", "numpy_functions", "log_of", "quadratic_inverse",
           "QUANTITIES"]

T = sp.Symbol("t", positive=True)
LAM = sp.Symbol("lam", real=True)


def stable(expr: sp.Expr) -> sp.Expr:
    """Rewrite for floating point: merge exponentials, then the code printer's expm1/log1p rewrites."""
    from ..codegen.printer import stable as rewrite

    return rewrite(sp.powsimp(expr, combine="exp", deep=True))


def log_of(expr: sp.Expr) -> sp.Expr:
    """log(expr) expanded so that log(exp(x)) = x and log(sqrt(y)) = log(y)/2 (never through log(-1))."""
    expanded = sp.expand_log(sp.log(expr), force=True)
    return sp.log(expr) if expanded.has(sp.I) else expanded


def numpy_function(expr: sp.Expr, symbol: sp.Symbol):
    """A vectorised NumPy function of one argument printed from ``expr`` (no SymPy at call time)."""
    fn = sp.lambdify(symbol, stable(expr), modules="numpy")
    if not expr.free_symbols:
        value = float(expr)
        return lambda x: np.full(np.shape(x), value)
    return fn


QUANTITIES = ("log_alpha", "log_sigma", "dlam_dt", "f", "dlog_sigma_dt", "dalpha_dt", "t_of_lam")


@dataclass(frozen=True)
class ScheduleCalculus:
    """The derived SymPy expressions of one schedule (all in the symbol ``t``; ``t_of_lam`` in ``lam``)."""

    log_alpha: sp.Expr
    log_sigma: sp.Expr
    lam: sp.Expr
    dlam_dt: sp.Expr
    f: sp.Expr
    g2: sp.Expr
    dlog_sigma_dt: sp.Expr
    t_of_lam: sp.Expr | None

    @property
    def dalpha_dt(self) -> sp.Expr:
        """d alpha/dt itself (finite where alpha = 0, unlike alpha * f)."""
        return sp.diff(sp.exp(self.log_alpha), T)

    def expression(self, quantity: str):
        """The expression of one of :data:`QUANTITIES` (``t_of_lam`` in LAM, the others in T)."""
        return getattr(self, quantity)


def numpy_functions(calculus: ScheduleCalculus) -> dict:
    """NumPy functions of every quantity (``t_of_lam`` is None without a closed-form inverse)."""
    out = {}
    for q in QUANTITIES:
        expr = calculus.expression(q)
        out[q] = None if expr is None else numpy_function(expr, LAM if q == "t_of_lam" else T)
    return out


def derive(log_alpha: sp.Expr, log_sigma: sp.Expr, t_of_lam: sp.Expr | None = None) -> ScheduleCalculus:
    """Derive lam, dlam/dt, f and g^2 from log alpha(t), log sigma(t) (symbol ``T``)."""
    lam = log_alpha - log_sigma
    dlam = sp.diff(lam, T)
    f = sp.diff(log_alpha, T)
    dls = sp.diff(log_sigma, T)
    g2 = -2 * sp.exp(2 * log_sigma) * dlam
    return ScheduleCalculus(log_alpha, log_sigma, lam, dlam, f, g2, dls, t_of_lam)


def quadratic_inverse(log_alpha: sp.Expr, log_sigma: sp.Expr, vp: bool):
    """Candidate closed-form inverses t(lam) when the equation lam(t) = lam is a quadratic in t.

    VP schedules (alpha^2 + sigma^2 = 1) satisfy log alpha = -L with L = logaddexp(0, -2 lam)/2; schedules with
    alpha = 1 satisfy log sigma = -lam.  When the relevant log is a polynomial of degree <= 2 in t, both roots
    are returned in cancellation-free form (q = -(b + sign(b) sqrt(disc))/2; roots q/a and c/q); the caller
    keeps the one that inverts lam(t) numerically.  Returns [] when no such form applies.
    """
    from sympy.codegen.numpy_nodes import logaddexp

    if vp:
        rhs, poly_expr = -sp.Rational(1, 2) * logaddexp(0, -2 * LAM), log_alpha
    elif log_alpha == 0:
        rhs, poly_expr = -LAM, log_sigma
    else:
        return []
    try:
        poly = sp.Poly(sp.expand(poly_expr), T)
    except sp.PolynomialError:
        return []
    if poly.degree() < 1 or poly.degree() > 2:
        return []
    coeffs = poly.all_coeffs()
    if poly.degree() == 1:
        b, c = coeffs
        return [(rhs - c) / b]
    a, b, c = coeffs
    c = c - rhs
    if not (a.is_number and b.is_number) or b == 0:
        return []
    disc = b**2 - 4 * a * c
    q = -(b + sp.sign(b) * sp.sqrt(disc)) / 2
    return [q / a, c / q]
