"""Exponential quadrature: integrate exp(s z (1-u)) times the Lagrange interpolant of model outputs exactly.

For nodes u_0, ..., u_{k-1} (normalised so that the integration interval is u in [0, 1]) the Lagrange basis is
l_j(u) = sum_q c_jq u^q, and

    z * Integral_0^1 exp(s z (1-u)) l_j(u) du = sum_q c_jq q! psi^s_q(z)  =: W_j

(docs/algorithms/exponential_integrators.md §3.3, §8 steps 3-4)

This one rule gives the multistep weights (nodes 0, -r_1, -(r_1+r_2), ...) and every row of the singlestep
solvers (nodes = the stage fractions available to that row, divided by the row's own fraction).
A *rule* replaces psi_q by another expression in the derivative form sum_q psi_q P^(q)(0)
(docs/algorithms/exponential_integrators.md §3.5); the published solvers are defined that way (e.g.
DPM-Solver++(2M): psi_1 -> psi_0/2).
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable, Mapping, Sequence

import sympy as sp

__all__ = ["lagrange_coefficients", "quadrature_weights", "Rule"]

Rule = Mapping[int, Callable[[type, sp.Expr], sp.Expr]]

_U = sp.Dummy("u")


def lagrange_coefficients(nodes: Sequence[sp.Expr]) -> tuple[tuple[sp.Expr, ...], ...]:
    """c[j][q]: the coefficient of u^q in the Lagrange basis polynomial l_j through ``nodes``.

    l_j(u) = prod_{m != j} (u - u_m) / (u_j - u_m), so c[j][q] = e_{k-1-q}(-u_m, m != j) / prod (u_j - u_m)
    (e_d the elementary symmetric polynomial).  Every factor is kept unexpanded with its sign pulled out (for
    history nodes a partial sum of ratios), so the denominator is a product of partial sums -- the factored
    form of docs/algorithms/exponential_integrators.md §8 step 3 without calling ``factor``, which is slow beyond
    k = 5.  For history nodes (u_m <= 0) every term of the numerator has the same sign: no cancellation at run time.
    """
    nodes = [sp.sympify(v) for v in nodes]
    if len(set(nodes)) != len(nodes):
        raise ValueError(f"interpolation nodes must be distinct, got {nodes}")
    k = len(nodes)
    rows = []
    for j, uj in enumerate(nodes):
        others = [um for m, um in enumerate(nodes) if m != j]
        sign, denominator = 1, sp.Integer(1)
        for um in others:
            s, d = _sign_and_magnitude(uj - um)
            sign, denominator = sign * s, denominator * d
        negated = [_sign_and_magnitude(-um) for um in others]
        negated = [s * d for s, d in negated]  # -u_m, written as a positive sum where possible
        row = []
        for q in range(k):
            elementary = sp.Add(*[sp.Mul(*combo) for combo in combinations(negated, k - 1 - q)])
            row.append(sign * elementary / denominator)
        rows.append(tuple(row))
    return tuple(rows)


def _sign_and_magnitude(expr: sp.Expr) -> tuple[int, sp.Expr]:
    """(s, m) with expr = s * m and m free of an extractable minus sign (-(r_1 + r_2) -> (-1, r_1 + r_2))."""
    expr = sp.expand(expr)
    if expr.could_extract_minus_sign():
        return -1, -expr
    return 1, expr


def quadrature_weights(nodes: Sequence[sp.Expr], moment: type, z: sp.Expr, rule: Rule | None = None):
    """W_j = sum_q c_jq q! M_q(z) for the moment function class ``moment`` (Psi or PsiTilde).

    ``rule`` maps q to a function (moment, z) -> expression used in place of M_q(z).
    """
    rule = rule or {}
    coeffs = lagrange_coefficients(nodes)
    k = len(coeffs)
    basis = [rule[q](moment, z) if q in rule else moment(q, z) for q in range(k)]
    return tuple(sp.Add(*[coeffs[j][q] * sp.factorial(q) * basis[q] for q in range(k)]) for j in range(k))
