"""Print the underdamped-Langevin (ULD) step coefficients of :mod:`diffsolve.symbolic.langevin` as the plain-Python
module ``diffsolve/_generated/uld.py``.

    python -m diffsolve.codegen            # regenerate it (with every other generated file; byte-identical reruns)
    python -m diffsolve.codegen --check    # exit 1 when a checked-in file is stale

The module has one helper per function of x = gamma tau in ``HELPERS`` -- a closed form in a = -expm1(-x) at and
above ``X_SWITCH`` and, for the helpers that cancel as x -> 0 (``SERIES_HELPERS``), the weighted series
exp(-k x) x^j P(x) below it (Horner, coefficients the floats nearest to the exact rationals; ``SERIES_TERMS``
terms, the fewest whose omitted tail is <= 2^-54 of the sum at ``X_SWITCH``) -- and ``uld_coefficients(gamma,
tau)``, which validates its input and assembles the seven coefficients from the helpers (``assembly``).
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

from ..symbolic import langevin as uld
from .emit import CATALOG_COMMAND, HEADER
from .printer import INDENT, _float_literal, _StepPrinter

__all__ = ["NAME", "X_SWITCH", "X_MIN", "X_MAX", "series_terms", "module_source"]

NAME = "uld.py"
#: the switch point between the series branch (x < X_SWITCH) and the closed form (x >= X_SWITCH)
X_SWITCH = Fraction(3)
#: the accepted range of x = gamma tau (a normal float; below 2^1000 no closed-form numerator overflows)
X_MIN = "2.2250738585072014e-308"
X_MAX = "2.0 ** 1000"


def series_terms() -> dict:
    """{part: N}: the number of series terms kept for each part of the series helpers."""
    return {name: uld.series_terms(name, X_SWITCH) for name in uld.series_parts()}


class _Printer(_StepPrinter):
    """Step printer with quotients printed as n / d (no reciprocal) and the helper symbols as local names."""

    def _print_Mul(self, expr):
        num, den = sp.fraction(expr)
        if den == 1:
            return super()._print_Mul(expr)
        n = self._print(num) if num.is_Atom or isinstance(num, (sp.Function, sp.Pow)) else f"({self._print(num)})"
        d = self._print(den) if den.is_Atom or isinstance(den, (sp.Function, sp.Pow)) else f"({self._print(den)})"
        return f"{n} / {d}"


def _printer() -> _Printer:
    names = {uld.x: "x", uld.a: "a", uld.tau: "tau", uld.gamma: "gamma"}
    names.update({sym: name for name, sym in uld.helper_symbols().items()})
    return _Printer(names)


def _horner(name: str, variable: str, coeffs) -> list[str]:
    """Lines computing ``variable`` = sum_i coeffs[i] x^i by Horner's rule."""
    lines = [f"{INDENT * 2}{variable} = {_float_literal(coeffs[-1])}"]
    for c in reversed(coeffs[:-1]):
        lines.append(f"{INDENT * 2}{variable} = {_float_literal(c)} + x * {variable}")
    return lines


def _weight(rate: int, shift: int) -> list[str]:
    """Factors exp(-rate x) and x^shift of a series branch (shift may be negative)."""
    out = []
    if rate:
        out.append("math.exp(-x)" if rate == 1 else f"math.exp({_float_literal(Fraction(-rate))} * x)")
    return out + ["x"] * max(shift, 0)


def _closed_lines(name: str, printer: _Printer) -> list[str]:
    num, den, p = uld.closed_form_in_a(name)
    coeff, power = num.as_coeff_exponent(uld.a)
    if den == 1 and coeff.is_Rational and power.is_Integer and power >= p > 0:
        # c a^k / x^p as c (a / x)^p a^(k - p): no underflow of a^k when this closed form is used at tiny x
        factors = ([] if coeff == 1 else [printer.doprint(coeff)]) + ["(a / x)"] * p + ["a"] * int(power - p)
        value = " * ".join(factors)
    else:
        value = printer.doprint(num)
        if den != 1:
            value = f"({value}) / ({printer.doprint(den)})"
        elif not (num.is_Atom or num.is_Pow) and p:
            value = f"({value})"
        value += " / x" * max(p, 0) + " * x" * max(-p, 0)
    lines = []
    if num.has(uld.a) or den.has(uld.a):
        lines.append(f"{INDENT}a = -math.expm1(-x)")
    return lines + [f"{INDENT}return {value}"]


def _definition(name: str) -> str:
    num, den = uld.HELPER_PARTS[name]
    return sp.sstr(uld.helpers()[name]) if den is None else f"{num}(x) / {den}(x)"


def _helper_source(name: str, printer: _Printer, terms: dict) -> str:
    num_part, den_part = uld.HELPER_PARTS[name]
    lines = [f"def _{name}(x):"]
    text = _definition(name)
    if name not in uld.SERIES_HELPERS:
        lines.append(f'{INDENT}"""{name}(x) = {text} (closed form)."""')
        return "\n".join(lines + _closed_lines(name, printer))
    sn = uld.part_series(num_part)
    if den_part is None:
        count = f"{terms[num_part]}-term series"
    else:
        count = f"{terms[num_part]}- / {terms[den_part]}-term series quotient"
    lines.append(f'{INDENT}"""{name}(x) = {text}:\n{INDENT}{count} below X_SWITCH, closed form at and above."""')
    lines.append(f"{INDENT}if x < X_SWITCH:")
    lines += _horner(num_part, "p", sn.coefficients(terms[num_part]))
    rate, shift = sn.rate, sn.shift
    factors = ["p"]
    if den_part is not None:
        sd = uld.part_series(den_part)
        lines += _horner(den_part, "q", sd.coefficients(terms[den_part]))
        rate, shift = rate - sd.rate, shift - sd.shift
        if rate < 0 or shift < 0:
            raise AssertionError(f"{name}: quotient series with negative weight (rate {rate}, shift {shift})")
    value = " * ".join(_weight(rate, shift)[::-1] + factors)
    if den_part is not None:
        value = f"{value} / q"
    lines.append(f"{INDENT * 2}return {value}")
    return "\n".join(lines + _closed_lines(name, printer))


_CHECK_SOURCE = '''def _check(name, value, meaning):
    """float(value), or DiffsolveError unless it is a finite number > 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DiffsolveError(
            f"uld_coefficients: {name} must be a finite number > 0 ({meaning}), got {name} = {value!r}; "
            f"pass a positive float"
        ) from None
    if not (math.isfinite(number) and number > 0.0):
        raise DiffsolveError(
            f"uld_coefficients: {name} must be a finite number > 0 ({meaning}), got {name} = {value!r}; "
            f"pass a positive finite {meaning}"
        )
    return number'''


def _function_source(printer: _Printer) -> str:
    order = ", ".join(uld.COEFFICIENTS)
    lines = [
        "def uld_coefficients(gamma, tau):",
        f'{INDENT}"""The ULD step coefficients ({order}) for friction gamma > 0 and step tau > 0.',
        "",
        f"{INDENT}z' = z + c_zv v + c_zG G + l11 n1 and v' = c_vv v + c_vG G + l21 n1 + l22 n2 per coordinate (G the",
        f"{INDENT}gradient frozen at the step start, n1, n2 independent standard normals).  Raises DiffsolveError",
        f"{INDENT}unless gamma and tau are finite and > 0 and X_MIN <= gamma * tau <= X_MAX.",
        f'{INDENT}"""',
        f'{INDENT}gamma = _check("gamma", gamma, "the friction")',
        f'{INDENT}tau = _check("tau", tau, "the step length")',
        f"{INDENT}x = gamma * tau",
        f"{INDENT}if not X_MIN <= x <= X_MAX:",
        f"{INDENT * 2}raise DiffsolveError(",
        f'{INDENT * 3}f"uld_coefficients: gamma * tau must lie in [X_MIN, X_MAX] = [{{X_MIN!r}}, {{X_MAX!r}}], got "',
        f'{INDENT * 3}f"gamma * tau = {{x!r}} (gamma = {{gamma!r}}, tau = {{tau!r}}); use a friction and a "',
        f'{INDENT * 3}f"step whose product is a normal float below 2^1000"',
        f"{INDENT * 2})",
    ]
    used = sorted({s for _, r in uld.assembly().values() for s in r.free_symbols} - {uld.x}, key=lambda s: s.name)
    for name in uld.HELPERS:
        if uld.helper_symbols()[name] in used:
            lines.append(f"{INDENT}{name} = _{name}(x)")
    for name in uld.COEFFICIENTS:
        m, r = uld.assembly()[name]
        value = printer.doprint(r)
        if isinstance(r, sp.Add):
            value = f"({value})"
        lines.append(f"{INDENT}{name} = {value}" + " * tau" * m)
    lines.append(f"{INDENT}return ({order})")
    return "\n".join(lines)


def _docstring(terms: dict) -> list[str]:
    printer_lines = []
    for name in uld.COEFFICIENTS:
        m, r = uld.assembly()[name]
        scale = "" if m == 0 else (" tau" if m == 1 else f" tau^{m}")
        printer_lines.append(f"    {name} = {sp.sstr(r)}{scale}")
    helper_lines = [f"    {name}(x) = {_definition(name)}" for name in uld.HELPERS]
    helper_lines += [f"    {p}(x) = {sp.sstr(uld.parts()[p][1])}"
                     for p in uld.series_parts() if p not in uld.HELPERS]
    parts = ", ".join(f"{p}: {n}" for p, n in terms.items())
    return [
        '"""Underdamped-Langevin (ULD) step with a frozen gradient, exact for dz = v dt,',
        "dv = -gamma v dt - G dt + sqrt(2 gamma) dB_t (unit mass, friction gamma, G the gradient at the step start;",
        "Cheng, Chatterji, Bartlett & Jordan 2018, Underdamped Langevin MCMC: a non-asymptotic analysis, §3 /",
        "Lemma 11; Huang et al. 2024, Reverse Transition Kernel, Algorithm 3).  Derived by",
        "diffsolve.symbolic.langevin (mean by the matrix exponential, covariance by the Ito isometry, 2x2 Cholesky",
        "factor); docs/derivations/uld.md.",
        "",
        "uld_coefficients(gamma, tau) returns the tuple COEFFICIENTS = " + repr(uld.COEFFICIENTS) + ":",
        "",
        "    z' = z + c_zv v + c_zG G + zeta,   v' = c_vv v + c_vG G + omega,",
        "    zeta = l11 n1,   omega = l21 n1 + l22 n2   (n1, n2 independent standard normals),",
        "",
        "assembled with x = gamma tau from the helpers below:",
        "",
        *printer_lines,
        "",
        *helper_lines,
        "",
        "(var_v_z = Var(v | z) = l22^2, det = (Var_z Var_v - Cov_zv^2) / tau^2).  phi2, var_z and det cancel as",
        "x -> 0: below X_SWITCH each is exp(-k x) x^j P(x), P the Taylor polynomial of exp(k x) F(x) / x^j (all",
        "coefficients positive), with SERIES_TERMS = {" + parts + "} terms.  At and above X_SWITCH",
        "the closed forms in a = -expm1(-x).",
        'Plain Python (math only)."""',
    ]


def module_source() -> str:
    """The text of ``diffsolve/_generated/uld.py``."""
    printer = _printer()
    terms = series_terms()
    lines = [
        HEADER,
        f"# Regenerate: {CATALOG_COMMAND}",
        f"# SymPy version: {sp.__version__}",
        *_docstring(terms),
        "",
        "import math",
        "",
        "from diffsolve.errors import DiffsolveError",
        "",
        f"COEFFICIENTS = {uld.COEFFICIENTS!r}",
        f"X_SWITCH = {_float_literal(X_SWITCH)}",
        f"X_MIN = {X_MIN}",
        f"X_MAX = {X_MAX}",
        f"SERIES_TERMS = {terms!r}",
        "",
        "",
    ]
    for name in uld.HELPERS:
        lines += [_helper_source(name, printer, terms), "", ""]
    lines += [_CHECK_SOURCE, "", "", _function_source(printer), ""]
    return "\n".join(lines)
