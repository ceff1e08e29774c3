"""Truncated power series in one variable with coefficients in a rational-function field, and a Taylor
evaluator for tableau expressions.

Used by the checks to expand a step in h without calling ``sympy.series`` on large expressions: a series is a
tuple of coefficients (c_0, ..., c_N) in a field K = QQ(eta, c1, ...) (exact and canonical, so a zero test is
``c == 0``); products are truncated at N.  ``taylor(expr, env, n, K)`` walks an expression tree (Add, Mul,
integer Pow, exp, Psi/PsiTilde, symbols) with the series of the leaf symbols given in ``env``.
"""

from __future__ import annotations

from typing import Mapping

import sympy as sp
from sympy.polys.fields import field

from .psi import _Moment

__all__ = ["Series", "taylor", "coefficient_field"]


def coefficient_field(symbols):
    """QQ(symbols) (a dummy generator when there is none), sorted by name for determinism."""
    gens = sorted(set(symbols), key=lambda s: s.name) or [sp.Dummy("none")]
    return field(gens, sp.QQ)[0]


class Series:
    """c_0 + c_1 t + ... + c_N t^N with coefficients in the field ``K``."""

    __slots__ = ("c", "K")

    def __init__(self, coeffs, K):
        self.K = K
        self.c = tuple(coeffs)

    @property
    def n(self) -> int:
        return len(self.c) - 1

    @classmethod
    def const(cls, value, n: int, K) -> "Series":
        value = value if isinstance(value, type(K.one)) else K.from_expr(sp.sympify(value))
        return cls((value,) + (K.zero,) * n, K)

    @classmethod
    def var(cls, n: int, K) -> "Series":
        return cls(((K.zero, K.one) + (K.zero,) * (n - 1))[: n + 1], K)

    def __add__(self, other: "Series") -> "Series":
        return Series([a + b for a, b in zip(self.c, other.c)], self.K)

    def __sub__(self, other: "Series") -> "Series":
        return Series([a - b for a, b in zip(self.c, other.c)], self.K)

    def scale(self, value) -> "Series":
        value = value if isinstance(value, type(self.K.one)) else self.K.from_expr(sp.sympify(value))
        return Series([value * a for a in self.c], self.K)

    def __mul__(self, other: "Series") -> "Series":
        n, zero = self.n, self.K.zero
        out = []
        for m in range(n + 1):
            acc = zero
            for i in range(m + 1):
                if self.c[i] and other.c[m - i]:
                    acc += self.c[i] * other.c[m - i]
            out.append(acc)
        return Series(out, self.K)

    def exp(self) -> "Series":
        """exp of a series with zero constant term: e_m = (1/m) sum_k k r_k e_{m-k}."""
        if self.c[0] != 0:
            raise ValueError(f"exp of a series with non-zero constant term {self.c[0]} is not in the field")
        e = [self.K.one]
        for m in range(1, self.n + 1):
            acc = self.K.zero
            for k in range(1, m + 1):
                acc += k * self.c[k] * e[m - k]
            e.append(acc / m)
        return Series(e, self.K)

    def inverse(self) -> "Series":
        c0 = self.c[0]
        if c0 == 0:
            raise ZeroDivisionError("series with zero constant term has no inverse")
        inv = [1 / c0]
        for m in range(1, self.n + 1):
            acc = self.K.zero
            for k in range(1, m + 1):
                acc += self.c[k] * inv[m - k]
            inv.append(-acc / c0)
        return Series(inv, self.K)

    def __pow__(self, p) -> "Series":
        if not sp.sympify(p).is_Integer:
            raise ValueError(f"only integer powers of a series are supported, got {p}")
        p = int(p)
        base = self if p >= 0 else self.inverse()
        out = Series.const(1, self.n, self.K)
        for _ in range(abs(p)):
            out = out * base
        return out

    def compose_poly(self, poly_coeffs) -> "Series":
        """sum_k poly_coeffs[k] * self^k (Horner)."""
        out = Series.const(0, self.n, self.K)
        for coeff in reversed(poly_coeffs):
            out = out * self + Series.const(coeff, self.n, self.K)
        return out

    def integrate(self) -> "Series":
        """Integral_0^t, truncated at the same length."""
        return Series([self.K.zero] + [self.c[m] / (m + 1) for m in range(self.n)], self.K)

    def at(self, scale) -> "Series":
        """The series of s(scale * t)."""
        s = self.K.from_expr(sp.sympify(scale))
        return Series([self.c[m] * s**m for m in range(self.n + 1)], self.K)

    def as_exprs(self) -> tuple:
        return tuple(x.as_expr() for x in self.c)


def taylor(expr: sp.Expr, env: Mapping[sp.Symbol, Series], n: int, K) -> Series:
    """The truncated series of ``expr`` where each symbol in ``env`` is replaced by its series.

    Other symbols must be generators of ``K``.  Psi/PsiTilde(q, z) use the first n+1 terms of their series
    (z must have zero constant term).
    """
    cache: dict = {}
    keys = set(env)

    def walk(e: sp.Expr) -> Series:
        if e in cache:
            return cache[e]
        if not (e.free_symbols & keys):
            out = Series.const(e, n, K)
        elif e in env:
            out = env[e]
        elif isinstance(e, sp.Add):
            out = Series.const(0, n, K)
            for arg in e.args:
                out = out + walk(arg)
        elif isinstance(e, sp.Mul):
            out = Series.const(1, n, K)
            for arg in e.args:
                out = out * walk(arg)
        elif isinstance(e, sp.Pow):
            out = walk(e.base) ** e.exp
        elif isinstance(e, sp.exp):
            out = walk(e.args[0]).exp()
        elif isinstance(e, _Moment):
            z = walk(e.z)
            if z.c[0] != 0:
                raise ValueError(f"{e}: the moment argument must vanish at t = 0 for a Taylor expansion")
            t = sp.Dummy("t")
            poly = sp.Poly(type(e)(e.q, t).series_poly(n + 1), t)
            out = z.compose_poly(poly.all_coeffs()[::-1])
        else:
            raise TypeError(f"taylor: unsupported node {type(e).__name__} in {e}")
        cache[e] = out
        return out

    return walk(sp.sympify(expr))
