"""Joint law of the stochastic integrals at the stage nodes of one step (docs/algorithms/seeds.md §1.5, §2.1).

Over a step lam_s -> lam_s + h, the noise that reaches node j (at lam_s + f_j h, 0 < f_1 < ... < f_J = 1) is
sigma_j N_j with the node-normalised

    N_j = Integral_0^{f_j h} k_j(mu) dW(mu),   k_j(mu) = Phi(lam_j, lam_s + mu) sigma(lam_s + mu) sqrt(2 eta) / sigma_j

(``Form.propagator``; data: sqrt(2 eta) e^{-eta (f_j h - mu)}, noise: sqrt(2 eta) e^{f_j h - mu}).  The Ito isometry
gives Cov(N_i, N_j) = Integral_0^{min(f_i, f_j) h} k_i k_j dmu; SymPy integrates it here.  Its Cholesky factor L
(computed as L' sqrt(D) from the rational LDL^T factorisation in the variables y_i = exp(kappa f_i h)) is, by
uniqueness of the Cholesky factor, the exact OU recursion of docs/algorithms/seeds.md §2.1 (A);
``check_cholesky_is_ou`` verifies that.  Rule (B) ("mirrored segments") is available through ``mirrored_factor``.

All functions take the fractions as SymPy expressions (symbols such as c1, c2, or numbers) and return
matrices in h, eta and the fractions.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import sympy as sp

from .forms import form, sigma_of
from .symbols import eta as ETA
from .symbols import h as H

__all__ = [
    "node_kernel",
    "ito_covariance",
    "cholesky_factor",
    "ou_recursion",
    "mirrored_factor",
    "noise_factor",
    "check_cholesky_is_ou",
    "NOISE_RULES",
]

_MU = sp.Symbol("mu", real=True)
_LAM_S = sp.Symbol("lambda_s", real=True)


@lru_cache(maxsize=None)
def node_kernel(prediction: str, node: sp.Expr, mu: sp.Expr = _MU, eta: sp.Expr = ETA) -> sp.Expr:
    """k(mu): integrand of the node-normalised stochastic integral at offset ``node`` (= f h) from lam_s."""
    fm = form(prediction)
    lam_node, lam_mu = _LAM_S + node, _LAM_S + mu
    kernel = fm.propagator(lam_node, lam_mu, eta) * sigma_of(lam_mu) * sp.sqrt(2 * eta) / sigma_of(lam_node)
    kernel = sp.powsimp(sp.simplify(kernel), combine="exp")
    if kernel.has(_LAM_S) or kernel.has(sigma_of(_LAM_S)):
        raise AssertionError(f"node kernel of {prediction} depends on the schedule: {kernel}")
    return kernel


def _check_fractions(fractions: Sequence[sp.Expr]) -> tuple[sp.Expr, ...]:
    fractions = tuple(sp.sympify(f) for f in fractions)
    if not fractions or fractions[-1] != 1:
        raise ValueError(f"stage-node fractions must end with 1 (the step end), got {fractions}")
    numeric = [f for f in fractions if f.is_number]
    if any(a >= b for a, b in zip(numeric, numeric[1:])) or any(f <= 0 for f in numeric):
        raise ValueError(f"stage-node fractions must increase in (0, 1], got {fractions}")
    return fractions


def ito_covariance(fractions: Sequence[sp.Expr], prediction: str, eta: sp.Expr = ETA) -> sp.ImmutableMatrix:
    """Cov(N_i, N_j) by integrating k_i k_j over the common part [0, f_min h] (SymPy ``integrate``)."""
    return _ito_covariance(_check_fractions(fractions), prediction, sp.sympify(eta))


@lru_cache(maxsize=None)
def _ito_covariance(fractions: tuple, prediction: str, eta: sp.Expr) -> sp.ImmutableMatrix:
    n = len(fractions)
    kernels = [node_kernel(prediction, f * H, _MU, eta) for f in fractions]
    cov = sp.zeros(n, n)
    for i in range(n):
        for j in range(i, n):
            value = sp.integrate(sp.expand(kernels[i] * kernels[j]), (_MU, 0, fractions[i] * H))
            cov[i, j] = cov[j, i] = sp.powsimp(sp.expand(value), combine="exp")
    return sp.ImmutableMatrix(cov)


@lru_cache(maxsize=None)
def _exponent_rate(prediction: str, eta: sp.Expr) -> sp.Expr:
    """kappa with k(mu) proportional to exp(-kappa mu): the kernel's decay rate in mu."""
    kernel = node_kernel(prediction, H, _MU, eta)
    rate = -sp.diff(sp.log(kernel), _MU)
    return sp.simplify(rate)


@lru_cache(maxsize=None)
def _cholesky_cached(fractions: tuple, prediction: str, eta: sp.Expr) -> sp.ImmutableMatrix:
    n = len(fractions)
    cov = ito_covariance(fractions, prediction, eta)
    kappa = _exponent_rate(prediction, eta)
    # exp(kappa f_i h) -> y_i: every entry of cov is then a Laurent polynomial in the y's.
    ys = sp.symbols(f"y_1:{n + 1}", positive=True)
    to_y = {sp.exp(kappa * f * H): y for f, y in zip(fractions, ys)}
    back = {y: sp.exp(kappa * f * H) for f, y in zip(fractions, ys)}
    cov_y = cov.applyfunc(lambda e: sp.cancel(sp.expand(e, power_exp=True).subs(to_y)))
    if any(e.has(sp.exp) for e in cov_y):
        raise AssertionError(f"covariance is not rational in exp(kappa f h): {cov_y}")
    unit, diag = sp.Matrix(cov_y).LDLdecomposition(hermitian=False)
    factor = sp.zeros(n, n)
    for j in range(n):
        d = sp.powsimp(sp.expand(sp.cancel(diag[j, j])).subs(back), combine="exp")
        root = sp.sqrt(sp.factor_terms(d))
        for i in range(j, n):
            lij = sp.powsimp(sp.cancel(unit[i, j]).subs(back), combine="exp")
            factor[i, j] = lij * root
    return sp.ImmutableMatrix(factor)


def _symbolic_fractions(fractions):
    """Replace numeric interior fractions by symbols (so exp(kappa f h) stay independent), return the map back."""
    fractions = _check_fractions(fractions)
    placeholders = sp.symbols(f"f_1:{len(fractions)}", positive=True)
    sym = tuple(f if not f.is_number or f == 1 else p for f, p in zip(fractions, placeholders + (1,)))
    back = {p: f for f, p in zip(fractions, placeholders) if f.is_number and f != 1}
    return sym, back


def cholesky_factor(fractions: Sequence[sp.Expr], prediction: str, eta: sp.Expr = ETA) -> sp.ImmutableMatrix:
    """Lower-triangular L with L L^T = ito_covariance(fractions) (positive diagonal)."""
    sym, back = _symbolic_fractions(fractions)
    return _cholesky_cached(sym, prediction, sp.sympify(eta)).subs(back)


def ou_recursion(fractions: Sequence[sp.Expr], prediction: str, eta: sp.Expr = ETA) -> sp.ImmutableMatrix:
    """Rule (A): N_j = (k_j / k_{j-1}) N_{j-1} + sqrt(Integral_{f_{j-1} h}^{f_j h} k_j^2) z_j as a matrix N = L z.

    The transfer k_j(mu)/k_{j-1}(mu) does not depend on mu (the node noise is Markov); the fresh part is the
    Ito isometry over the new sub-interval only.
    """
    fractions = _check_fractions(fractions)
    n = len(fractions)
    mat = sp.zeros(n, n)
    prev = sp.Integer(0)
    kernel_prev = None
    for j, f in enumerate(fractions):
        kernel = node_kernel(prediction, f * H, _MU, eta)
        if kernel_prev is not None:
            transfer = sp.powsimp(sp.simplify(kernel / kernel_prev), combine="exp")
            if transfer.has(_MU):
                raise AssertionError(f"node noise of {prediction} is not Markov: transfer {transfer}")
            mat[j, :] = transfer * mat[j - 1, :]
        fresh = sp.integrate(sp.expand(kernel**2), (_MU, prev * H, f * H))
        mat[j, j] = sp.sqrt(sp.factor_terms(sp.powsimp(sp.expand(fresh), combine="exp")))
        prev, kernel_prev = f, kernel
    return sp.ImmutableMatrix(mat)


def mirrored_factor(fractions: Sequence[sp.Expr], prediction: str, eta: sp.Expr = ETA) -> sp.ImmutableMatrix:
    """Rule (B), the authors' code: N_j = sum_{i<=j} c_i z_{j+1-i}, c_i^2 the isometry integral of k_j over the
    i-th sub-interval of the time-reflected partition of [0, f_j h] (equal to (A) for equal sub-intervals)."""
    fractions = _check_fractions(fractions)
    n = len(fractions)
    bounds = (sp.Integer(0),) + fractions
    mat = sp.zeros(n, n)
    for j, f in enumerate(fractions):
        kernel = node_kernel(prediction, f * H, _MU, eta)
        for i in range(1, j + 2):
            # distance back from the node: nu = f h - mu in [bounds[i-1] h, bounds[i] h]
            piece = sp.integrate(
                sp.expand(kernel**2), (_MU, (f - bounds[i]) * H, (f - bounds[i - 1]) * H)
            )
            mat[j, j + 1 - i] = sp.sqrt(sp.factor_terms(sp.powsimp(sp.expand(piece), combine="exp")))
    return sp.ImmutableMatrix(mat)


NOISE_RULES = {"exact": cholesky_factor, "mirrored": mirrored_factor}


def noise_factor(fractions, prediction: str, rule: str = "exact", eta: sp.Expr = ETA) -> sp.ImmutableMatrix:
    """The node-noise coefficient matrix L (N = L z) of rule "exact" (Cholesky = OU recursion) or "mirrored"."""
    try:
        builder = NOISE_RULES[rule]
    except KeyError:
        raise ValueError(f"noise rule must be one of {sorted(NOISE_RULES)}, got {rule!r}") from None
    return builder(fractions, prediction, eta)


def _rational_in_exponentials(expr: sp.Expr, fractions, prediction, eta) -> sp.Expr:
    """expr with exp(kappa f_i h) replaced by positive symbols and squared out (for identity checks)."""
    kappa = _exponent_rate(prediction, eta)
    ys = sp.symbols(f"y_1:{len(fractions) + 1}", positive=True)
    to_y = {sp.exp(kappa * f * H): y for f, y in zip(fractions, ys)}
    return sp.expand(expr, power_exp=True).subs(to_y)


def check_cholesky_is_ou(fractions: Sequence[sp.Expr], prediction: str, eta: sp.Expr = ETA) -> None:
    """Raise unless cholesky_factor == ou_recursion and L L^T == ito_covariance (identities in exp(kappa f h))."""
    sym, _ = _symbolic_fractions(fractions)
    cov = ito_covariance(sym, prediction, eta)
    chol = cholesky_factor(sym, prediction, eta)
    ou = ou_recursion(sym, prediction, eta)
    n = len(sym)
    for name, mat in (("Cholesky factor", chol), ("OU recursion", ou)):
        gram = mat * mat.T
        for i in range(n):
            for j in range(n):
                diff = _rational_in_exponentials(gram[i, j] - cov[i, j], sym, prediction, eta)
                if sp.cancel(sp.expand(diff)) != 0:
                    raise AssertionError(f"{name} of {prediction} noise at {sym}: (L L^T - Cov)[{i},{j}] = {diff}")
        if any(mat[i, j] != 0 for i in range(n) for j in range(i + 1, n)):
            raise AssertionError(f"{name} is not lower triangular: {mat}")
    # Both are lower triangular with positive diagonals and the same Gram matrix: by uniqueness they agree.
    for i in range(n):
        for j in range(i + 1):
            diff = _rational_in_exponentials(chol[i, j] ** 2 - ou[i, j] ** 2, sym, prediction, eta)
            if sp.cancel(sp.expand(diff)) != 0:
                raise AssertionError(f"Cholesky factor != OU recursion at [{i},{j}]: {chol[i, j]} vs {ou[i, j]}")
