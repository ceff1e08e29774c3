"""Generated psi / psi~ helpers vs 50-digit mpmath (docs/algorithms/exponential_integrators.md §3.7;
docs/verification.md) and the printer's rewrites."""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from diffsolve.codegen.printer import psi_helper_name, psi_helper_source, psi_terms, psi_threshold, stable
from diffsolve.symbolic.psi import Psi, PsiTilde

QS = range(8)
HELPERS = {}
for _M in (Psi, PsiTilde):
    for _q in QS:
        _ns = {"math": math}
        exec(psi_helper_source(_M, _q), _ns)
        HELPERS[_M, _q] = _ns[psi_helper_name(_M, _q)]


def _reference(M, q, z):
    with mpmath.workdps(50):
        zz = mpmath.mpf(z)
        return zz * mpmath.hyp1f1(1, q + 2, M.sign * zz) / mpmath.factorial(q + 1)


def _points(q):
    zs = list(np.geomspace(1e-14, 50.0, 600))
    zstar = float(psi_threshold(q))
    zs += [zstar, np.nextafter(zstar, 0), np.nextafter(zstar, 10), zstar * (1 - 1e-12), zstar * (1 + 1e-12)]
    return zs


def test_thresholds_and_terms_match_the_documented_table():
    assert [float(psi_threshold(q)) for q in range(1, 8)] == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert [psi_terms(q) for q in range(1, 8)] == [17, 19, 20, 21, 22, 23, 24]


@pytest.mark.parametrize("M", [Psi, PsiTilde])
@pytest.mark.parametrize("q", QS)
def test_helper_accuracy(M, q):
    f = HELPERS[M, q]
    worst = 0.0
    for z in _points(q):
        ref = _reference(M, q, z)
        worst = max(worst, float(abs((f(float(z)) - ref) / ref)))
    assert worst <= 4e-15, worst


@pytest.mark.parametrize("M", [Psi, PsiTilde])
def test_helper_continuity_at_threshold(M):
    for q in range(1, 8):
        f = HELPERS[M, q]
        zstar = float(psi_threshold(q))
        below, above = f(np.nextafter(zstar, 0)), f(zstar)
        assert abs(below - above) <= 4e-15 * abs(above)


def test_shipped_helpers_are_the_printed_ones():
    """diffsolve/_generated/psi.py carries exactly these helper sources (plain Python, no decorator)."""
    from diffsolve._generated import psi

    for (M, q), f in HELPERS.items():
        assert getattr(psi, psi_helper_name(M, q)).__doc__ == f.__doc__
        assert getattr(psi, psi_helper_name(M, q))(0.75) == f(0.75)


def test_limits():
    assert HELPERS[Psi, 0](math.inf) == 1.0 and HELPERS[Psi, 3](math.inf) == pytest.approx(1 / 6, rel=1e-15)
    assert HELPERS[Psi, 2](0.0) == 0.0 and HELPERS[PsiTilde, 2](0.0) == 0.0


def test_stable_rewrites():
    x, y, c = sp.symbols("x y c", positive=True)
    assert stable(1 - sp.exp(-x)) == -expm1(-x)
    assert stable(sp.exp(x) - 1) == expm1(x)
    assert stable(c * sp.exp(2 * x) - c) == c * expm1(2 * x)
    assert stable(sp.log(1 + x)) == log1p(x)
    e = stable(sp.exp(-x) - sp.exp(-y))
    assert e.has(expm1) and sp.simplify(e.rewrite(sp.exp) - (sp.exp(-x) - sp.exp(-y))) == 0
    assert stable(sp.sqrt(1 - sp.exp(-2 * x))) == sp.sqrt(-expm1(-2 * x))
