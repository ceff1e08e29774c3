"""Print a :class:`SymbolicTableau` as plain Python source (docs/algorithms/exponential_integrators.md §3.7,
§8 steps 6-7).

- ``stable``: exp(x) - 1 -> expm1(x), c exp(x) - c -> c expm1(x), exp(a) - exp(b) -> exp(a) expm1(b - a) (times
  -1 as needed), log(1 + x) -> log1p(x); applied bottom-up, so the noise coefficients print as
  sigma * sqrt(-expm1(-2 eta h)) and sigma * sqrt(eta) * sqrt(expm1(2 h)).
- ``psi_helper_source(moment, q)``: the psi_q / psi~_q helper with the branch of
  docs/algorithms/exponential_integrators.md §3.7: psi_0 = -expm1(-z), psi~_0 = expm1(z) always; for q >= 1 a
  Horner series with N_q terms below z*_q = max(1, (q+1)/2) (coefficients the float literals nearest to
  1/(n+q+1)!) and the upward recursion above.
- ``print_step(tab)``: the body of ``fill`` -- loads, one common-subexpression pass with fixed names x0, x1, ...,
  psi calls, and the stores A/B/E/C -- deterministic for a given tableau.
- eta * h is printed through ``_mul0(eta, h)`` (0 when eta == 0), so a final step with h = inf stays finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import factorial

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.printing.pycode import PythonCodePrinter

from ..symbolic import symbols as sy
from ..symbolic.psi import Psi, PsiTilde, _Moment

__all__ = [
    "stable",
    "psi_threshold",
    "psi_terms",
    "psi_helper_name",
    "psi_helper_source",
    "print_step",
    "PrintedStep",
]

HELPER_NAMES = {Psi: "_psi", PsiTilde: "_psit"}
INDENT = "    "


# ------------------------------------------------------------------------------------------------ rewrites
def _exp_terms(add: sp.Add):
    """(index, coefficient, exponent) of the terms c * exp(x) of a sum (c free of exp)."""
    out = []
    for i, term in enumerate(add.args):
        coeff, rest = term.as_independent(sp.exp, as_Add=False)
        if isinstance(rest, sp.exp):
            out.append((i, coeff, rest.args[0]))
    return out


def _rewrite_add(add: sp.Add) -> sp.Expr:
    terms = list(add.args)
    exps = _exp_terms(add)
    for i, coeff, x in exps:  # c exp(x) - c -> c expm1(x)
        if -coeff in terms and terms.index(-coeff) != i:
            rest = [t for j, t in enumerate(terms) if j not in (i, terms.index(-coeff))]
            return sp.Add(coeff * expm1(x), *rest)
    for (i, ci, xi), (j, cj, xj) in zip(exps, exps[1:]):  # c exp(a) - c exp(b) -> c exp(a) (-expm1(b - a))
        if ci == -cj:
            rest = [t for m, t in enumerate(terms) if m not in (i, j)]
            return sp.Add(-ci * sp.exp(xi) * expm1(sp.expand(xj - xi)), *rest)
    return add


def stable(expr: sp.Expr) -> sp.Expr:
    """expm1/log1p rewrites of docs/algorithms/exponential_integrators.md §1.4 / §3.7 (bottom-up, deterministic)."""
    expr = expr.replace(lambda e: isinstance(e, sp.Add) and e.has(sp.exp), _rewrite_add)
    return expr.replace(
        lambda e: isinstance(e, sp.log) and isinstance(e.args[0], sp.Add) and sp.S.One in e.args[0].args,
        lambda e: log1p(e.args[0] - 1),
    )


# ------------------------------------------------------------------------------------------------ psi helpers
def psi_threshold(q: int) -> Fraction:
    """z*_q = max(1, (q+1)/2)."""
    return max(Fraction(1), Fraction(q + 1, 2))


def psi_terms(q: int) -> int:
    """N_q: the smallest N with (z*_q)^N (q+1)!/(N+q+1)! <= 2^-53 (first omitted term vs the leading one)."""
    zstar, n = psi_threshold(q), 1
    while zstar**n * factorial(q + 1) / factorial(n + q + 1) > Fraction(1, 2**53):
        n += 1
    return n


def psi_helper_name(moment: type, q: int) -> str:
    return f"{HELPER_NAMES[moment]}_{q}"


def _float_literal(value: Fraction) -> str:
    """The nearest float to ``value``, as a literal that round-trips (Fraction -> float rounds correctly)."""
    return repr(float(value))


def psi_helper_source(moment: type, q: int) -> str:
    """Source of ``_psi_q(z)`` / ``_psit_q(z)`` (plain Python; the generated ``fill`` functions call it)."""
    s = moment.sign  # -1 data, +1 noise
    name = psi_helper_name(moment, q)
    symbol = "psi" if moment is Psi else "psi~"
    first = "-math.expm1(-z)" if s < 0 else "math.expm1(z)"
    lines = [f"def {name}(z):"]
    if q == 0:
        lines.append(f'{INDENT}"""{symbol}_0(z) = {first}."""')
        lines.append(f"{INDENT}return {first}")
        return "\n".join(lines)
    zstar, n_terms = psi_threshold(q), psi_terms(q)
    doc = (f"{symbol}_{q}(z): {n_terms}-term series below z* = {float(zstar)!r}, upward recursion above\n"
           f"{INDENT}(docs/algorithms/exponential_integrators.md §3.7).")
    lines.append(f'{INDENT}"""{doc}"""')
    coeffs = [Fraction(1, factorial(m + q + 1)) for m in range(n_terms)]
    op = "-" if s < 0 else "+"
    lines.append(f"{INDENT}if z < {float(zstar)!r}:")
    lines.append(f"{INDENT * 2}s = {_float_literal(coeffs[-1])}")
    for c in reversed(coeffs[:-1]):
        lines.append(f"{INDENT * 2}s = {_float_literal(c)} {op} z * s")
    lines.append(f"{INDENT * 2}return z * s")
    lines.append(f"{INDENT}p = {first}")
    for m in range(1, q + 1):
        inv = _float_literal(Fraction(1, factorial(m)))
        lines.append(f"{INDENT}p = {inv} - p / z" if s < 0 else f"{INDENT}p = p / z - {inv}")
    lines.append(f"{INDENT}return p")
    return "\n".join(lines)


MUL0_SOURCE = '''def _mul0(a, b):
    """a * b, but 0 when a == 0 (so eta = 0 with h = inf gives 0, not nan)."""
    return 0.0 if a == 0.0 else a * b'''


# ------------------------------------------------------------------------------------------------ expressions
class _StepPrinter(PythonCodePrinter):
    """Python source for step expressions: math functions, float literals, helper calls."""

    def __init__(self, names):
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})
        self._names = names

    def _print_Symbol(self, expr):
        return self._names.get(expr, expr.name)

    def _print_Rational(self, expr):
        return _float_literal(Fraction(int(expr.p), int(expr.q)))

    def _print_Integer(self, expr):
        return repr(float(int(expr)))

    _print_Half = _print_Rational
    _print_Zero = _print_Integer
    _print_One = _print_Integer
    _print_NegativeOne = _print_Integer

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_expm1(self, expr):
        return f"math.expm1({self._print(expr.args[0])})"

    def _print_log1p(self, expr):
        return f"math.log1p({self._print(expr.args[0])})"

    def _print_Infinity(self, expr):
        return "math.inf"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.as_base_exp()
        if exp == sp.S.Half:
            return f"math.sqrt({self._print(base)})"
        if exp == -sp.S.Half:
            return f"(1.0 / math.sqrt({self._print(base)}))"
        if exp.is_Integer and exp < 0:
            return f"(1.0 / ({self._print(sp.Pow(base, -exp))}))"
        if exp.is_Integer:
            return f"{self.parenthesize(base, 60)}**{int(exp)}"
        return super()._print_Pow(expr, rational=rational)


# ------------------------------------------------------------------------------------------------ the step
def _variable_names(tab) -> dict:
    names = {sy.h: "hn"}
    names.update({sy.r(j): f"r{j}" for j in range(1, tab.history + 1)})
    names.update({sy.la(p): f"la{p}" for p in range(tab.stages + 1)})
    names.update({sy.ls(p): f"ls{p}" for p in range(tab.stages + 1)})
    names.update({p: sy.NAMES[p] for p in tab.params})
    return names


@dataclass(frozen=True)
class PrintedStep:
    """The printed pieces of one tableau: helper sources, the per-row body of ``fill``, the parameter loads."""

    helpers: tuple[str, ...]
    param_lines: tuple[str, ...]
    row_lines: tuple[str, ...]
    fraction_lines: tuple[str, ...]


def _moment_key(m: _Moment):
    return (m.sign, sp.default_sort_key(m.z), m.q)


def print_step(tab) -> PrintedStep:
    """Print the coefficient expressions of ``tab`` (one grid row, index ``n``)."""
    names = _variable_names(tab)
    entries = list(tab.entries())
    exprs = [e for _, _, e in entries]

    safe = {}
    if sy.eta in tab.params:  # eta*h -> _mul0(eta, h)
        eh = sp.Symbol("eh")
        names[eh] = "eh"
        exprs = [e.subs(sy.eta * sy.h, eh) for e in exprs]
        if any(e.has(eh) for e in exprs):
            safe[eh] = "_mul0(eta, hn)"

    moments = sorted({m for e in exprs for m in e.atoms(_Moment)}, key=_moment_key)
    psi_symbols = {m: sp.Symbol(f"p{i}") for i, m in enumerate(moments)}
    names.update({s: s.name for s in psi_symbols.values()})
    exprs = [stable(e.xreplace(psi_symbols)) for e in exprs]

    printer = _StepPrinter(names)
    counter = iter(range(10**6))
    lines: list[str] = [f"{names[s]} = {expr}" for s, expr in safe.items()]

    # 1) psi arguments (one CSE pass), 2) psi calls, 3) the coefficients (second CSE pass, continued numbering).
    args = [stable(m.z) for m in moments]
    if args:
        repl, args = sp.cse(args, symbols=(sp.Symbol(f"x{i}") for i in counter), order="canonical")
        for sym, value in repl:
            names[sym] = sym.name
            lines.append(f"{sym.name} = {printer.doprint(value)}")
    for m, arg in zip(moments, args):
        lines.append(f"{psi_symbols[m].name} = {psi_helper_name(type(m), m.q)}({printer.doprint(arg)})")
    nonzero = [i for i, e in enumerate(exprs) if e != 0]
    repl, reduced = sp.cse(
        [exprs[i] for i in nonzero], symbols=(sp.Symbol(f"x{i}") for i in counter), order="canonical"
    )
    for sym, value in repl:
        names[sym] = sym.name
        lines.append(f"{sym.name} = {printer.doprint(value)}")
    values = dict(zip(nonzero, reduced))
    for i, (array, index, _) in enumerate(entries):
        target = f"{array}[n, {', '.join(str(x) for x in index)}]"
        lines.append(f"{target} = {printer.doprint(values.get(i, sp.Integer(0)))}")

    helpers = [psi_helper_source(moment, q) for moment, q in sorted({(type(m), m.q) for m in moments},
                                                                     key=lambda mq: (mq[0].sign, mq[1]))]
    if safe:
        helpers.append(MUL0_SOURCE)
    param_lines = tuple(f"{sy.NAMES[p]} = params[{i}]" for i, p in enumerate(tab.params))
    fraction_lines = tuple(printer.doprint(sp.sympify(f)) for f in tab.fractions)
    return PrintedStep(tuple(helpers), param_lines, tuple(lines), fraction_lines)
