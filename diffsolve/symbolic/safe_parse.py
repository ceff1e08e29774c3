"""Parse user schedule expressions into SymPy without ever evaluating them as code.

The string is parsed by Python's ``ast`` module and every node is checked against a whitelist of
operators, functions and names before it is turned into a SymPy expression.  Nothing is ``eval``-ed,
no attribute access, subscripts, comprehensions, lambdas or keyword arguments exist in the grammar.
"""

from __future__ import annotations

import ast
import math

import sympy as sp

from ..errors import DiffsolveError

__all__ = ["parse_expression", "ALLOWED_FUNCTIONS", "ExpressionError"]

MAX_LENGTH = 1000
MAX_DEPTH = 60
MAX_LITERAL_EXPONENT = 64


class ExpressionError(DiffsolveError):
    """A user expression was rejected; the message says what and how to fix it."""


ALLOWED_FUNCTIONS = {
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "asin": sp.asin,
    "acos": sp.acos,
    "atan": sp.atan,
    "arcsin": sp.asin,
    "arccos": sp.acos,
    "arctan": sp.atan,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "asinh": sp.asinh,
    "acosh": sp.acosh,
    "atanh": sp.atanh,
    "expm1": lambda x: sp.exp(x) - 1,
    "log1p": lambda x: sp.log(1 + x),
    "sigmoid": lambda x: 1 / (1 + sp.exp(-x)),
}

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}

_HINTS = {
    ast.BitXor: "use ** for powers, not ^",
    ast.Attribute: "write exp(t), not math.exp(t) or np.exp(t)",
    ast.Subscript: "indexing is not allowed",
    ast.Lambda: "lambdas are not allowed",
    ast.keyword: "keyword arguments are not allowed",
}


def parse_expression(text, variable: str = "t", constants: dict | None = None) -> sp.Expr:
    """Parse ``text`` (e.g. ``"exp(-5*t**2 - t/20)"``) into a SymPy expression in the symbol ``variable``.

    Allowed: numbers, the variable, ``pi``, ``e``, the names in ``constants`` (mapped to numbers),
    ``+ - * / **``, unary minus, and the functions in :data:`ALLOWED_FUNCTIONS`.
    """
    if not isinstance(text, str):
        raise ExpressionError(
            f"schedule expression must be a string, got {type(text).__name__} {text!r}; "
            "pass e.g. alpha='exp(-t)'"
        )
    if not text.strip():
        raise ExpressionError("schedule expression is empty; pass e.g. alpha='exp(-t)'")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"schedule expression has {len(text)} characters, more than the limit {MAX_LENGTH}; simplify it"
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(
            f"cannot parse schedule expression {text!r}: {exc.msg} at column {exc.offset}; "
            "write an arithmetic expression in t such as 'sqrt(1 - exp(-t**2))'"
        ) from None
    symbol = sp.Symbol(variable, positive=True)
    names = {variable: symbol, "pi": sp.pi, "e": sp.E, "E": sp.E}
    for key, value in (constants or {}).items():
        if not isinstance(key, str) or not key.isidentifier() or key in names or key in ALLOWED_FUNCTIONS:
            raise ExpressionError(f"constant name {key!r} is not a free identifier (reserved or invalid); rename it")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ExpressionError(
                f"constant {key!r} must be a finite int or float, got {type(value).__name__} {value!r}; "
                "constants are numbers, never expressions"
            )
        names[key] = sp.Integer(value) if isinstance(value, int) else sp.Rational(repr(float(value)))
    expr = _Converter(text, names).visit(tree.body, 0)
    _check_real(expr, text)
    return expr


def _check_real(expr, text):
    """Reject expressions with complex, infinite or undefined constant parts (e.g. log(0), acos(2), (-8)**(1/3))."""
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan, sp.I):
        raise ExpressionError(f"schedule expression {text!r} contains an infinite, undefined or complex value; fix it")
    for sub in sp.preorder_traversal(expr):
        if isinstance(sub, sp.Expr) and sub.is_number and not sub.is_Atom:
            value = complex(sp.N(sub, 20))
            if value.imag != 0 or not math.isfinite(value.real):
                raise ExpressionError(
                    f"schedule expression {text!r} contains {sub} = {value}, which is not a finite real number; fix it"
                )


class _Converter:
    def __init__(self, text, names):
        self.text = text
        self.names = names

    def fail(self, node, what):
        hint = _HINTS.get(type(node), "")
        allowed = ", ".join(sorted(ALLOWED_FUNCTIONS))
        raise ExpressionError(
            f"schedule expression {self.text!r} contains {what}, which is not allowed"
            + (f" ({hint})" if hint else "")
            + f"; allowed: numbers, t, pi, e, + - * / **, and the functions {allowed}"
        )

    def visit(self, node, depth):
        if depth > MAX_DEPTH:
            raise ExpressionError(
                f"schedule expression {self.text[:60]!r}... is nested deeper than {MAX_DEPTH} levels; simplify it"
            )
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(node, f"the literal {value!r}")
            if isinstance(value, float):
                if value != value or value in (float("inf"), float("-inf")):
                    self.fail(node, f"the non-finite literal {value!r}")
                return sp.Rational(repr(value))  # the exact decimal the user wrote
            if abs(value) > 10**30:
                self.fail(node, f"the integer literal {value} (larger than 1e30)")
            return sp.Integer(value)
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return self.names[node.id]
            if node.id in ALLOWED_FUNCTIONS:
                self.fail(node, f"the function name {node.id!r} without a call")
            self.fail(node, f"the unknown name {node.id!r}")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.visit(node.operand, depth + 1)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            left = self.visit(node.left, depth + 1)
            right = self.visit(node.right, depth + 1)
            if isinstance(node.op, ast.Pow):
                return self.power(node, left, right)
            op = _BINOPS.get(type(node.op))
            if op is None:
                self.fail(node.op, f"the operator {type(node.op).__name__}")
            if isinstance(node.op, ast.Div) and right == 0:
                self.fail(node, "a division by zero")
            return op(left, right)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                self.fail(node.func, "a call of something other than a plain function name")
            func = ALLOWED_FUNCTIONS.get(node.func.id)
            if func is None:
                self.fail(node, f"a call of the unknown function {node.func.id!r}")
            if node.keywords:
                self.fail(node.keywords[0], "a keyword argument")
            if any(isinstance(a, ast.Starred) for a in node.args):
                self.fail(node, f"a starred argument in {node.func.id}()")
            if len(node.args) != 1:
                self.fail(node, f"{node.func.id}() with {len(node.args)} arguments (expected exactly one)")
            return func(self.visit(node.args[0], depth + 1))
        kind = type(node).__name__
        self.fail(node, f"{'an' if kind[0] in 'AEIOU' else 'a'} {kind} construct")

    def power(self, node, base, exponent):
        if exponent.is_number and exponent.is_real is not True:
            self.fail(node, f"the non-real exponent {exponent}")
        if exponent.is_number and abs(float(exponent)) > MAX_LITERAL_EXPONENT:
            self.fail(node, f"the exponent {exponent} (|exponent| must be <= {MAX_LITERAL_EXPONENT})")
        if base.is_number and exponent.is_number:
            # both literal: bound the size of the number SymPy would compute (no 2**64**64-style blow-ups)
            try:
                bits = abs(float(exponent)) * abs(math.log2(abs(float(base)))) if base != 0 else 0.0
            except (OverflowError, ValueError):
                bits = float("inf")
            if bits > 4096:
                self.fail(node, "a literal power larger than 2**4096")
        return sp.Pow(base, exponent)
