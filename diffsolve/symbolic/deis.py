"""DEIS weights in SymPy (docs/algorithms/deis.md): the log-rho form, proved to be DPM-Solver multistep in noise
prediction, and the closed-form tAB weights where SymPy integrates a schedule.

DEIS (Zhang & Chen, ICLR 2023, arXiv 2204.13902) writes the probability-flow ODE as d(x/alpha) = eps d(rho),
rho = sigma/alpha, and integrates it exactly against the Lagrange polynomial of eps in a variable v through the
last k nodes:

    x_{n+1} = alpha_{n+1} (x_n/alpha_n + sum_{j<k} C_j eps_{n-j}),      C_j = int_{rho_n}^{rho_{n+1}} L_j(v) d rho

* :func:`logrho_weights`: v = log rho (the form of diffusers' ``DEISMultistepScheduler``), in the per-step
  variables h, r_j, la_0, ls_0 of :mod:`diffsolve.symbolic.symbols`;
* :func:`check_logrho`: C_j = -(sigma_{n+1}/alpha_{n+1}) W_j with W_j the exact dpm-solver-{k}m weights
  (:func:`diffsolve.symbolic.multistep.multistep_weights` in noise prediction): log rho = -lam, so the two
  interpolate the same polynomial and integrate it exactly;
* :func:`tab_weights`: v = t (the paper's tAB), C_j = int_{t_n}^{t_end} L_j(t) rho'(t) dt for given nodes, or
  None where SymPy leaves an integral (vp-linear, vp-cosine, ou).  The runtime integrates numerically
  (:func:`diffsolve.solvers.deis.tab_weights`); these closed forms are its references.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from . import symbols as sy
from .checks import SymbolicCheckError
from .multistep import history_nodes, multistep_weights
from .quadrature import lagrange_coefficients
from .schedule import T

__all__ = ["logrho_weights", "check_logrho", "lagrange_basis", "tab_weights"]

_U = sp.Dummy("u")


@lru_cache(maxsize=None)
def logrho_weights(k: int) -> tuple:
    """C_0..C_{k-1} of k-step DEIS in log rho: with u = log rho - log rho_n the nodes are u_j = h (r_1 + ... + r_j)
    (= lam_n - lam_{n-j}), the step ends at u = -h, and C_j = rho_n int_0^{-h} e^u l_j(u) du."""
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    nodes = [-sy.h * u for u in history_nodes(k)]
    moments = [sp.integrate(sp.exp(_U) * _U**q, (_U, 0, -sy.h)) for q in range(k)]
    rho_n = sp.exp(sy.ls(0) - sy.la(0))
    return tuple(rho_n * sum(c * m for c, m in zip(row, moments)) for row in lagrange_coefficients(nodes))


def check_logrho(k: int, variant: str = "exact") -> None:
    """Raise :class:`SymbolicCheckError` unless the log-rho DEIS weights are -rho_{n+1} times the dpm-solver-{k}m
    weights of ``variant`` (rho_{n+1} = rho_n e^{-h}): an identity in exp(h) and the ratios r_j.  It holds for
    "exact"; the published DPM-Solver forms (variant "published", k = 2, 3) fail it."""
    y = sp.Symbol("y", positive=True)  # e^h
    rho_n = sp.exp(sy.ls(0) - sy.la(0))
    for j, (c, w) in enumerate(zip(logrho_weights(k), multistep_weights(k, "eps", variant=variant))):
        diff = (c / rho_n + sp.exp(-sy.h) * w.rewrite(sp.exp))
        diff = sp.expand(diff, power_exp=True).subs(sp.exp(sy.h), y)
        if sp.cancel(sp.together(diff)) != 0:
            raise SymbolicCheckError(f"DEIS log-rho weight C_{j} (k = {k}) is not -rho_(n+1) W_{j} of dpm-solver-{k}m "
                                     f"({variant}): C_{j}/rho_n + e^(-h) W_{j} = {sp.simplify(diff)} (y = e^h)")


def lagrange_basis(nodes, var=T) -> tuple:
    """The Lagrange basis polynomials in ``var`` through ``nodes``."""
    nodes = [sp.sympify(v) for v in nodes]
    return tuple(sp.Mul(*[(var - m) / (v - m) for m in nodes if m is not v]) for v in nodes)


def tab_weights(log_alpha: sp.Expr, log_sigma: sp.Expr, nodes, t_end):
    """The tAB weights C_j = int_{t_n}^{t_end} L_j(t) rho'(t) dt (rho = exp(log_sigma - log_alpha), expressions in
    :data:`diffsolve.symbolic.schedule.T`; ``nodes`` = (t_n, t_{n-1}, ...), numbers or symbols), or None when SymPy
    cannot integrate them in closed form."""
    rho = sp.exp(log_sigma - log_alpha)
    slope = sp.diff(rho, T)
    out = []
    for basis in lagrange_basis(nodes):
        value = sp.integrate(sp.expand(basis * slope), (T, nodes[0], t_end))
        if value.has(sp.Integral):
            return None
        out.append(value)
    return tuple(out)
