"""Moment functions psi_q (data side) and psi~_q (noise side) as opaque SymPy functions
(docs/algorithms/exponential_integrators.md §3.2).

    psi_q(z)  = z * Integral_0^1 exp(-z (1-u)) u^q/q! du = z phi_{q+1}(-z)
    psi~_q(z) = z * Integral_0^1 exp(+z (1-u)) u^q/q! du = z phi_{q+1}(z)

Both are written ``Moment(s)`` with s = -1 (``Psi``) or s = +1 (``PsiTilde``):
psi^s_q(z) = z * Integral_0^1 exp(s z (1-u)) u^q/q! du.  They stay unevaluated inside derivations; each offers

- ``closed_form()`` / ``rewrite(sp.exp)``: psi^s_0 = s (exp(s z) - 1), psi^s_q = s (psi^s_{q-1}/z - 1/q!);
- ``series_poly(n)``: z * sum_{m<n} (s z)^m / (m+q+1)!  (the first n terms);
- ``defining_integral()``: the unevaluated SymPy Integral above;
- ``evalf`` through mpmath: psi^s_q(z) = z 1F1(1; q+2; s z) / (q+1)!;
- ``diff``: d/dz psi^s_q = psi^s_q / z + s psi^s_q - s (q+1) psi^s_{q+1}.
"""

from __future__ import annotations

import mpmath
import sympy as sp

__all__ = ["Psi", "PsiTilde", "moment", "psi_series", "MOMENT_OF_PREDICTION"]

_U = sp.Dummy("u")


class _Moment(sp.Function):
    """psi^s_q(z); subclasses fix the sign s of the exponent."""

    nargs = 2
    sign: int = 0
    latex_name = ""

    @classmethod
    def eval(cls, q, z):
        if not (q.is_Integer and q >= 0):
            raise ValueError(f"{cls.__name__}(q, z) needs a non-negative integer order q, got q = {q!r}")
        if z.is_zero:
            return sp.S.Zero
        return None

    @property
    def q(self) -> int:
        return int(self.args[0])

    @property
    def z(self) -> sp.Expr:
        return self.args[1]

    def closed_form(self) -> sp.Expr:
        """The exponential closed form by upward recursion (catastrophic cancellation for small z)."""
        s, z = self.sign, self.z
        value = s * (sp.exp(s * z) - 1)
        for m in range(1, self.q + 1):
            value = s * (value / z - sp.Rational(1, sp.factorial(m)))
        return value

    def _eval_rewrite_as_exp(self, q, z, **kwargs):
        return self.closed_form()

    def series_poly(self, n: int) -> sp.Expr:
        """The first ``n`` terms z * sum_{m<n} (s z)^m / (m+q+1)!  (a polynomial in z of degree n)."""
        s, z, q = self.sign, self.z, self.q
        return sp.Add(*[z * (s * z) ** m / sp.factorial(m + q + 1) for m in range(n)])

    def defining_integral(self) -> sp.Integral:
        s, z, q = self.sign, self.z, self.q
        return z * sp.Integral(sp.exp(s * z * (1 - _U)) * _U**q / sp.factorial(q), (_U, 0, 1))

    def fdiff(self, argindex=2):
        if argindex != 2:
            raise sp.ArgumentIndexError(self, argindex)
        s, q, z = self.sign, self.q, self.z
        return self / z + s * self - s * (q + 1) * type(self)(q + 1, z)

    def _eval_evalf(self, prec):
        z = self.z.evalf(prec)
        if not z.is_Number:
            return None
        with mpmath.workprec(prec + 20):
            zz = mpmath.mpf(z._to_mpmath(prec + 20))
            value = zz * mpmath.hyp1f1(1, self.q + 2, self.sign * zz) / mpmath.factorial(self.q + 1)
        return sp.Float._new(value._mpf_, prec)

    def _latex(self, printer):
        return rf"{self.latex_name}_{{{self.q}}}\left({printer._print(self.z)}\right)"


class Psi(_Moment):
    """psi_q(z) = z Integral_0^1 exp(-z(1-u)) u^q/q! du, the data-prediction moment (psi_q -> 1/q! as z -> oo)."""

    sign = -1
    latex_name = r"\psi"


class PsiTilde(_Moment):
    """psi~_q(z) = z Integral_0^1 exp(z(1-u)) u^q/q! du, the noise-prediction moment."""

    sign = 1
    latex_name = r"\tilde{\psi}"


MOMENT_OF_PREDICTION = {"data": Psi, "eps": PsiTilde}


def moment(prediction: str):
    """The moment function class of a parameterisation ("data" -> Psi, "eps" -> PsiTilde)."""
    try:
        return MOMENT_OF_PREDICTION[prediction]
    except KeyError:
        raise ValueError(f"prediction must be one of {sorted(MOMENT_OF_PREDICTION)}, got {prediction!r}") from None


def psi_series(expr: sp.Expr, n: int) -> sp.Expr:
    """Replace every Psi/PsiTilde in ``expr`` by the first ``n`` terms of its series."""
    return expr.replace(lambda e: isinstance(e, _Moment), lambda e: e.series_poly(n))
