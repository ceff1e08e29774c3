"""Moment functions psi_q / psi~_q as SymPy objects (docs/algorithms/exponential_integrators.md §3.2, V-04a, V-09)."""

import mpmath
import pytest
import sympy as sp

from diffsolve.symbolic.psi import Psi, PsiTilde, moment, psi_series

z = sp.Symbol("z", positive=True)
h = sp.Symbol("h", positive=True)


@pytest.mark.parametrize("M", [Psi, PsiTilde])
@pytest.mark.parametrize("q", [0, 1, 2, 3])
def test_closed_form_equals_defining_integral(M, q):
    expr = M(q, z)
    assert sp.simplify(expr.defining_integral().doit() - expr.closed_form()) == 0
    assert sp.simplify(expr.rewrite(sp.exp) - expr.closed_form()) == 0


def test_closed_forms_of_the_spec():
    # hand-typed references of docs/algorithms/exponential_integrators.md §3.2
    refs = {
        Psi(0, z): 1 - sp.exp(-z),
        Psi(1, z): 1 - (1 - sp.exp(-z)) / z,
        Psi(2, z): sp.Rational(1, 2) - 1 / z + (1 - sp.exp(-z)) / z**2,
        PsiTilde(0, z): sp.exp(z) - 1,
        PsiTilde(1, z): (sp.exp(z) - 1 - z) / z,
        PsiTilde(2, z): (sp.exp(z) - 1 - z - z**2 / 2) / z**2,
    }
    for expr, ref in refs.items():
        assert sp.simplify(expr.closed_form() - ref) == 0, expr


def test_code_names_of_peers():
    # docs/algorithms/exponential_integrators.md §3.6: phi_1 = expm1(-h) = -psi_0, phi_2 = expm1(-h)/h + 1 = psi_1,
    # phi_2/h - 1/2 = -psi_2 (data side)
    phi1 = sp.exp(-h) - 1
    phi2 = phi1 / h + 1
    assert sp.simplify(phi1 + Psi(0, h).closed_form()) == 0
    assert sp.simplify(phi2 - Psi(1, h).closed_form()) == 0
    assert sp.simplify(phi2 / h - sp.Rational(1, 2) + Psi(2, h).closed_form()) == 0
    t1 = sp.exp(h) - 1
    t2 = t1 / h - 1
    assert sp.simplify(t1 - PsiTilde(0, h).closed_form()) == 0
    assert sp.simplify(t2 - PsiTilde(1, h).closed_form()) == 0
    assert sp.simplify(t2 / h - sp.Rational(1, 2) - PsiTilde(2, h).closed_form()) == 0


@pytest.mark.parametrize("M", [Psi, PsiTilde])
def test_recursion_series_derivative_limit(M):
    for q in range(1, 5):
        # recursion psi_q = s (psi_{q-1}/z - 1/q!)
        rec = M.sign * (M(q - 1, z).closed_form() / z - sp.Rational(1, sp.factorial(q)))
        assert sp.simplify(rec - M(q, z).closed_form()) == 0
        # series
        ser = sp.series(M(q, z).closed_form(), z, 0, 7).removeO()
        assert sp.expand(ser - M(q, z).series_poly(6)) == 0
        # derivative
        assert sp.simplify(M(q, z).diff(z).rewrite(sp.exp) - M(q, z).closed_form().diff(z)) == 0
    for q in range(4):
        if M is Psi:
            assert sp.limit(M(q, z).closed_form(), z, sp.oo) == sp.Rational(1, sp.factorial(q))


@pytest.mark.parametrize("M", [Psi, PsiTilde])
def test_evalf_matches_quadrature(M):
    with mpmath.workdps(50):
        for q in range(4):
            for value in ("1e-6", "0.3", "2.5", "17"):
                zz = mpmath.mpf(value)
                ref = zz * mpmath.quad(lambda u: mpmath.exp(M.sign * zz * (1 - u)) * u**q, [0, 1]) / mpmath.factorial(q)
                got = M(q, sp.Float(value, 60)).evalf(50)
                assert abs(mpmath.mpf(str(got)) - ref) <= mpmath.mpf("1e-45") * abs(ref)


def test_helpers_and_errors():
    assert moment("data") is Psi and moment("eps") is PsiTilde
    with pytest.raises(ValueError, match="prediction must be one of"):
        moment("v")
    with pytest.raises(ValueError, match="non-negative integer order"):
        Psi(-1, z)
    assert Psi(2, 0) == 0
    assert psi_series(Psi(1, h) + PsiTilde(0, h), 2) == sp.expand(h / 2 - h**2 / 6 + h + h**2 / 2)
    assert sp.latex(PsiTilde(2, z)) == r"\tilde{\psi}_{2}\left(z\right)"
