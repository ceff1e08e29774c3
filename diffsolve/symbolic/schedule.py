"""Schedule calculus: everything a sampler needs, derived by SymPy from log alpha(t) and log sigma(t).

lam = log alpha - log sigma, dlam/dt, the drift f = d log alpha/dt and the diffusion g^2 = -2 sigma^2 dlam/dt
(docs/algorithms/exponential_integrators.md §1.2), an inverse t(lam) in closed form where one is found, and NumPy
functions printed with expm1/log1p/logaddexp rewrites so that ratios and small arguments keep full precision.

User expressions (:func:`derive_user`) run with a bounded cost (docs/limits.md): an AST screen before SymPy sees
the string (:func:`screen_expression`: polynomial degree, constants beyond float64), size limits before every
``expand`` of ours (:func:`expansion_size`), and a wall-clock budget for the whole derivation
(:data:`SYMBOLIC_BUDGET_S`, a clear error) and for the closed-form inverse search (:data:`INVERSE_BUDGET_S`, then the
numerical Newton inverse).
"""

from __future__ import annotations

import ast
import dataclasses
import math
import threading
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..errors import DiffsolveError

__all__ = ["ScheduleCalculus", "derive", "stable", "numpy_function", "numpy_functions", "log_of", "quadratic_inverse",
           "QUANTITIES", "screen_expression", "expansion_size", "bounded", "parse_user", "derive_user",
           "closed_form_inverses", "with_inverse", "MAX_POLY_DEGREE", "MAX_EXPAND_WORK", "SYMBOLIC_BUDGET_S",
           "INVERSE_BUDGET_S"]

T = sp.Symbol("t", positive=True)
LAM = sp.Symbol("lam", real=True)

# ------------------------------------------------------------------------------ limits (docs/limits.md)
MAX_POLY_DEGREE = 32  # degree in t of any polynomial sub-expression (with a sum) of a user string
MAX_EXPAND_WORK = 2000  # terms one of our own expand() calls may generate (multinomial count)
INVERSE_MAX_DEGREE = 4  # structural degree up to which the quadratic-inverse search expands log alpha / log sigma
REWRITE_MAX_DEGREE = 8  # exponents up to this degree get the expm1 rewrites (which expand exponent differences)
SYMBOLIC_BUDGET_S = 5.0  # wall clock for parsing + deriving + printing one user schedule
INVERSE_BUDGET_S = 2.0  # wall clock for the closed-form inverse search (then Newton)


def stable(expr: sp.Expr) -> sp.Expr:
    """Rewrite for floating point: merge exponentials, then the code printer's expm1/log1p rewrites.

    The rewrites expand differences of exponents; an expression whose exponents are polynomials of degree above
    :data:`REWRITE_MAX_DEGREE` (or whose expansion is larger than :data:`MAX_EXPAND_WORK`) keeps the merged form.
    """
    from ..codegen.printer import stable as rewrite

    merged = sp.powsimp(expr, combine="exp", deep=True)
    for e in merged.atoms(sp.exp):
        degree, work = expansion_size(e.args[0])
        if degree > REWRITE_MAX_DEGREE or work > MAX_EXPAND_WORK:
            return merged
    return rewrite(merged)


def log_of(expr: sp.Expr) -> sp.Expr:
    """log(expr) expanded so that log(exp(x)) = x, log(a b) = log a + log b and log(b**e) = e log b (alpha and
    sigma are positive on the domain); a factor that is a negative or non-real constant keeps log(expr) as it is
    (never through log(-1): SymPy's own ``expand_log(force=True)`` loops forever on e.g. log(-tan(3)))."""
    expanded = _expand_log(expr)
    return sp.log(expr) if expanded is None or expanded.has(sp.I) else expanded


def _expand_log(e):
    if isinstance(e, sp.exp):
        return e.args[0]
    if e.is_Pow:
        if e.exp.is_even and not e.base.is_positive:  # log((t - 2)**2) is not 2 log(t - 2)
            return sp.log(e)
        inner = _expand_log(e.base)
        return None if inner is None else e.exp * inner
    if e.is_Mul:
        parts = [_expand_log(f) for f in e.args]
        return None if any(p is None for p in parts) else sp.Add(*parts)
    if not e.free_symbols:
        try:
            value = complex(e.evalf(15))
        except (TypeError, ValueError, OverflowError):
            return None
        return sp.log(e) if value.imag == 0 and value.real > 0 else None
    return sp.log(e)


def numpy_function(expr: sp.Expr, symbol: sp.Symbol):
    """A vectorised NumPy function of one argument printed from ``expr`` (no SymPy at call time).

    Integers and rationals beyond 2**53 are printed as the nearest float64 (NumPy cannot take a Python int above
    2**63, and a float64 schedule cannot use more digits)."""
    if not expr.free_symbols:
        value = float(expr)
        return lambda x: np.full(np.shape(x), value)
    return sp.lambdify(symbol, _float_literals(stable(expr)), modules="numpy")


def _float_literals(expr: sp.Expr) -> sp.Expr:
    from fractions import Fraction

    big = {}
    for r in expr.atoms(sp.Rational):
        if abs(r.p) >= 2**53 or r.q >= 2**53:
            try:
                big[r] = sp.Float(float(Fraction(int(r.p), int(r.q))))
            except OverflowError:  # beyond float64: what NumPy would compute anyway
                big[r] = sp.Float("1e400") * (1 if r.p > 0 else -1)
    return expr.xreplace(big) if big else expr


QUANTITIES = ("log_alpha", "log_sigma", "dlam_dt", "f", "dlog_sigma_dt", "dalpha_dt", "t_of_lam")


@dataclass(frozen=True)
class ScheduleCalculus:
    """The derived SymPy expressions of one schedule (all in the symbol ``t``; ``t_of_lam`` in ``lam``)."""

    log_alpha: sp.Expr
    log_sigma: sp.Expr
    lam: sp.Expr
    dlam_dt: sp.Expr
    f: sp.Expr
    g2: sp.Expr
    dlog_sigma_dt: sp.Expr
    t_of_lam: sp.Expr | None

    @property
    def dalpha_dt(self) -> sp.Expr:
        """d alpha/dt itself (finite where alpha = 0, unlike alpha * f)."""
        return sp.diff(sp.exp(self.log_alpha), T)

    def expression(self, quantity: str):
        """The expression of one of :data:`QUANTITIES` (``t_of_lam`` in LAM, the others in T)."""
        return getattr(self, quantity)


def numpy_functions(calculus: ScheduleCalculus) -> dict:
    """NumPy functions of every quantity (``t_of_lam`` is None without a closed-form inverse)."""
    out = {}
    for q in QUANTITIES:
        expr = calculus.expression(q)
        out[q] = None if expr is None else numpy_function(expr, LAM if q == "t_of_lam" else T)
    return out


def derive(log_alpha: sp.Expr, log_sigma: sp.Expr, t_of_lam: sp.Expr | None = None) -> ScheduleCalculus:
    """Derive lam, dlam/dt, f and g^2 from log alpha(t), log sigma(t) (symbol ``T``)."""
    lam = log_alpha - log_sigma
    dlam = sp.diff(lam, T)
    f = sp.diff(log_alpha, T)
    dls = sp.diff(log_sigma, T)
    g2 = -2 * sp.exp(2 * log_sigma) * dlam
    return ScheduleCalculus(log_alpha, log_sigma, lam, dlam, f, g2, dls, t_of_lam)


def quadratic_inverse(log_alpha: sp.Expr, log_sigma: sp.Expr, vp: bool):
    """Candidate closed-form inverses t(lam) when the equation lam(t) = lam is a quadratic in t.

    VP schedules (alpha^2 + sigma^2 = 1) satisfy log alpha = -L with L = logaddexp(0, -2 lam)/2; schedules with
    alpha = 1 satisfy log sigma = -lam.  When the relevant log is a polynomial of degree <= 2 in t, both roots
    are returned in cancellation-free form (q = -(b + sign(b) sqrt(disc))/2; roots q/a and c/q); the caller
    keeps the one that inverts lam(t) numerically.  Returns [] when no such form applies, and without expanding
    when the log is not structurally a polynomial of degree <= :data:`INVERSE_MAX_DEGREE` (bounded cost).
    """
    from sympy.codegen.numpy_nodes import logaddexp

    if vp:
        rhs, poly_expr = -sp.Rational(1, 2) * logaddexp(0, -2 * LAM), log_alpha
    elif log_alpha == 0:
        rhs, poly_expr = -LAM, log_sigma
    else:
        return []
    if not poly_expr.is_polynomial(T):
        return []
    degree, work = expansion_size(poly_expr)
    if degree > INVERSE_MAX_DEGREE or work > MAX_EXPAND_WORK:
        return []
    try:
        poly = sp.Poly(sp.expand(poly_expr), T)
    except sp.PolynomialError:
        return []
    if poly.degree() < 1 or poly.degree() > 2:
        return []
    coeffs = poly.all_coeffs()
    if poly.degree() == 1:
        b, c = coeffs
        return [(rhs - c) / b]
    a, b, c = coeffs
    c = c - rhs
    if not (a.is_number and b.is_number) or b == 0:
        return []
    disc = b**2 - 4 * a * c
    q = -(b + sp.sign(b) * sp.sqrt(disc)) / 2
    return [q / a, c / q]


# ------------------------------------------------------------------------------ size of an expansion
def expansion_size(expr: sp.Expr) -> tuple[int, int]:
    """(degree, work) of ``expr`` before any ``expand``: the largest structural polynomial degree in t of a
    sub-expression (other t-dependent atoms count as degree 1) and the largest number of terms a full expansion
    of a sub-expression generates (multinomial counts, capped at 10**12).  Linear in the size of the tree."""
    cap = 10**12
    memo: dict = {}
    worst = [0, 1]

    def visit(e):
        key = id(e)
        if key in memo:
            return memo[key]
        if e.is_Symbol:
            out = (1, 1) if e == T else (0, 1)
        elif e.is_Atom:
            out = (0, 1)
        elif e.is_Add:
            parts = [visit(a) for a in e.args]
            out = (max(p[0] for p in parts), min(cap, sum(p[1] for p in parts)))
        elif e.is_Mul:
            deg, terms = 0, 1
            for a in e.args:
                d, n = visit(a)
                deg, terms = deg + d, min(cap, terms * n)
            out = (deg, terms)
        elif e.is_Pow and e.exp.is_Rational:
            d, n = visit(e.base)
            k = int(abs(e.exp))
            out = (k * d, _multinomial_terms(n, k, cap))
        else:  # functions, symbolic exponents: an atom for the enclosing polynomial, its arguments on their own
            for a in e.args:
                visit(a)
            out = (1 if e.has(T) else 0, 1)
        worst[0], worst[1] = max(worst[0], out[0]), max(worst[1], out[1])
        memo[key] = out
        return out

    visit(expr)
    return worst[0], worst[1]


def _multinomial_terms(n: int, k: int, cap: int) -> int:
    """C(n + k - 1, k), the terms of (a_1 + ... + a_n)**k before collecting, or ``cap`` if that is smaller."""
    c = 1
    for i in range(1, k + 1) if n > 1 else ():
        c = c * (n - 1 + i) // i
        if c >= cap:
            return cap
    return c


# ------------------------------------------------------------------------------ screen of a user string
_REFUSE_HUGE = {"exp", "expm1", "sinh", "cosh", "tanh", "sigmoid", "sin", "cos", "tan"}
_LOG_LIKE = {"log", "log1p", "asinh", "acosh"}
_FLOAT_FUNCTIONS = {
    "exp": math.exp, "log": math.log, "sqrt": math.sqrt, "sin": math.sin, "cos": math.cos, "tan": math.tan,
    "asin": math.asin, "acos": math.acos, "atan": math.atan, "arcsin": math.asin, "arccos": math.acos,
    "arctan": math.atan, "sinh": math.sinh, "cosh": math.cosh, "tanh": math.tanh, "asinh": math.asinh,
    "acosh": math.acosh, "atanh": math.atanh, "expm1": math.expm1, "log1p": math.log1p,
    "sigmoid": lambda x: 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0,
}


class _Screen:
    """One pass over the AST of a user expression: (degree in t, float value or None) of every node.

    Nodes the safe parser refuses are passed over (value None, degree 0): its own message reports them.
    A float value of +-inf stands for a constant beyond the float64 range.
    """

    def __init__(self, text, variable, constants, label):
        from .safe_parse import MAX_DEPTH, MAX_LITERAL_EXPONENT

        self.text, self.variable, self.label = text, variable, label
        self.max_depth, self.max_exponent = MAX_DEPTH, MAX_LITERAL_EXPONENT
        self.values = {"pi": math.pi, "e": math.e, "E": math.e}
        for key, value in (constants or {}).items():
            if isinstance(key, str) and isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    self.values.setdefault(key, float(value))
                except OverflowError:
                    pass

    def fail(self, message):
        raise DiffsolveError(f"{self.label} expression {self.text!r} {message} (limits: docs/limits.md)")

    def visit(self, node, depth=0):
        """(degree, value, has_sum): value None for t-dependent or unknown nodes; has_sum when the polynomial in t
        has more than one term (monomials such as t**64 cost nothing)."""
        if depth > self.max_depth:
            return 0, None, False
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return 0, None, False
            try:
                v = float(v)
            except OverflowError:
                return 0, None, False
            return 0, (v if math.isfinite(v) else None), False
        if isinstance(node, ast.Name):
            return (1, None, False) if node.id == self.variable else (0, self.values.get(node.id), False)
        if isinstance(node, ast.UnaryOp):
            d, v, s = self.visit(node.operand, depth + 1)
            return d, (None if v is None else (-v if isinstance(node.op, ast.USub) else v)), s
        if isinstance(node, ast.BinOp):
            return self.binop(node, depth)
        if isinstance(node, ast.Call):
            args = [self.visit(a, depth + 1) for a in node.args]
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in _FLOAT_FUNCTIONS or len(args) != 1:
                return 0, None, False
            d, v, _ = args[0]
            if d or v is None:
                return 0, None, False
            if not math.isfinite(v):
                if name in _REFUSE_HUGE:
                    self.fail(f"applies {name}() to the constant {ast.unparse(node.args[0])[:60]}, which exceeds the "
                              "float64 range (about 1.8e308): SymPy cannot evaluate it in bounded time and float64 "
                              "cannot represent it; use constants within the float64 range")
                if name in _LOG_LIKE:
                    return 0, 1e308, False  # an upper bound: every huge constant here is at most exp(1.8e308)
                return 0, (v if name == "sqrt" else None), False
            try:
                return 0, float(_FLOAT_FUNCTIONS[name](v)), False
            except OverflowError:
                return 0, math.inf, False
            except (ValueError, ZeroDivisionError):
                return 0, None, False
        for child in ast.iter_child_nodes(node):  # a construct the parser refuses: still look inside
            self.visit(child, depth + 1)
        return 0, None, False

    def binop(self, node, depth):
        (dl, vl, sl), (dr, vr, sr) = self.visit(node.left, depth + 1), self.visit(node.right, depth + 1)
        op = node.op
        if isinstance(op, ast.Pow):
            degree = 0
            if dr == 0 and vr is not None and math.isfinite(vr) and abs(vr) <= self.max_exponent:
                degree = dl * math.ceil(abs(vr))
            self.check_degree(degree, sl, node)
            return degree, self.constant(lambda a, b: math.pow(a, b), vl, vr), sl and degree > 0
        if isinstance(op, (ast.Add, ast.Sub)):
            degree, has_sum = max(dl, dr), (dl > 0 or dr > 0) and (vl != 0 and vr != 0)
        elif isinstance(op, (ast.Mult, ast.Div)):
            degree, has_sum = (dl + dr if isinstance(op, ast.Mult) else max(dl, dr)), sl or sr
        else:
            return 0, None, False
        self.check_degree(degree, has_sum, node)
        fn = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
              ast.Div: lambda a, b: a / b}[type(op)]
        return degree, self.constant(fn, vl, vr), has_sum

    @staticmethod
    def constant(fn, a, b):
        """fn(a, b) for constants a, b (inf: beyond float64; None: t-dependent or unknown)."""
        if a is None or b is None:
            return math.inf if (a is not None and math.isinf(a)) or (b is not None and math.isinf(b)) else None
        if math.isinf(a) or math.isinf(b):
            return math.inf
        try:
            v = fn(a, b)
        except OverflowError:
            return math.inf
        except (ValueError, ZeroDivisionError, TypeError):
            return None
        if isinstance(v, complex):
            return None
        return v if math.isfinite(v) else math.inf

    def check_degree(self, degree, has_sum, node):
        if has_sum and degree > MAX_POLY_DEGREE:
            self.fail(f"contains {ast.unparse(node)[:60]!r}, a polynomial of degree {degree} in {self.variable}, more "
                      f"than the limit {MAX_POLY_DEGREE} (exact algebra on it would not finish in bounded time); "
                      f"simplify it, e.g. write exp(k*log(1 + {self.variable})) instead of (1 + {self.variable})**k")


def screen_expression(text, variable: str = "t", constants: dict | None = None, label: str = "schedule") -> None:
    """Refuse, before SymPy sees it, a user string whose exact algebra has no bounded cost: a polynomial
    sub-expression of degree above :data:`MAX_POLY_DEGREE` in ``variable``, or exp/sin/cosh/... of a constant beyond
    the float64 range (mpmath would need astronomically many digits).  Anything the safe parser refuses is left
    to it (its message is the more precise one)."""
    from .safe_parse import MAX_LENGTH

    if not isinstance(text, str) or not text.strip() or len(text) > MAX_LENGTH:
        return
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return
    try:
        _Screen(text, variable, constants, label).visit(tree.body)
    except RecursionError:
        return


# ------------------------------------------------------------------------------ wall-clock budget
class _Abandoned(BaseException):
    """Raised asynchronously inside a worker thread that ran past its budget; never leaves that thread."""


def _set_async_exc(ident: int, exc) -> bool:
    try:
        import ctypes

        return ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident),
                                                         None if exc is None else ctypes.py_object(exc)) == 1
    except (ImportError, AttributeError, OSError):  # not CPython: the worker runs on, unobserved
        return False


def bounded(fn, seconds: float):
    """``(True, fn())`` if ``fn`` finishes within ``seconds`` (wall clock), else ``(False, None)``.

    ``fn`` runs in a daemon worker thread; on time-out the caller returns at once and the worker is interrupted
    with an asynchronous exception (pure-Python SymPy stops within milliseconds), after which SymPy's caches are
    cleared.  The interrupt is only ever sent while the worker is inside ``fn``'s guarded region, and withdrawn if
    it has not landed when ``fn`` returns.  Exceptions of ``fn`` are re-raised in the caller.
    """
    lock = threading.Lock()
    state = {"started": False, "cancelled": False, "done": False, "sent": False}
    box: dict = {}

    def target():
        try:
            with lock:
                if state["cancelled"]:
                    return
                state["started"] = True
            try:
                box["value"] = fn()
            finally:
                with lock:
                    state["done"] = True
                    if state["sent"]:  # an interrupt that has not landed yet: withdraw it
                        _set_async_exc(threading.get_ident(), None)
        except _Abandoned:
            box.clear()
            sp.core.cache.clear_cache()
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller
            box["error"] = exc

    worker = threading.Thread(target=target, name="diffsolve-symbolic", daemon=True)
    worker.start()
    worker.join(seconds)
    with lock:
        if not state["started"]:
            state["cancelled"] = True
            return False, None
        if not state["done"]:
            state["sent"] = True
            _set_async_exc(worker.ident, _Abandoned)
            return False, None
    worker.join()
    if "error" in box:
        raise box["error"]
    return True, box["value"]


_WARM = []


def _warm_up():
    """Import everything the derivation imports lazily, outside any budget (an interrupted import would leave
    half-initialised modules behind)."""
    if _WARM:
        return
    from sympy.codegen.cfunctions import expm1, log1p  # noqa: F401
    from sympy.codegen.numpy_nodes import logaddexp  # noqa: F401

    from ..codegen import printer  # noqa: F401
    from . import safe_parse  # noqa: F401

    # one small user schedule end to end: parser, sign analysis (real_roots), Poly, printer and lambdify
    a = safe_parse.parse_expression("exp(-t**2/2 - t/3)")
    s = safe_parse.parse_expression("sqrt(1 - exp(-t**2 - 2*t/3))")
    calculus = derive(log_of(a), log_of(s))
    numpy_functions(calculus)
    for candidate in quadratic_inverse(calculus.log_alpha, calculus.log_sigma, True):
        numpy_function(candidate, LAM)
    sp.log(1 + T / 3 + T**2 / 7).is_positive
    sp.lambdify(T, sp.acos(T) + sp.sign(T) + sp.atanh(T), modules="numpy")
    _WARM.append(True)


# ------------------------------------------------------------------------------ user schedules
@dataclass(frozen=True)
class UserExpressions:
    """What :func:`parse_user` returns: the parsed alpha(t), sigma(t), their NumPy functions and the deadline
    (``time.monotonic()``) that :func:`derive_user` must meet."""

    alpha_text: str
    sigma_text: str
    alpha: sp.Expr
    sigma: sp.Expr
    alpha_fn: object
    sigma_fn: object
    deadline: float


def _budgeted(work, seconds, alpha, sigma):
    """``work()`` within ``seconds`` or a DiffsolveError naming the expressions (SymPy failures included)."""
    try:
        finished, result = bounded(work, max(seconds, 0.0))
    except DiffsolveError:
        raise
    except Exception as exc:  # SymPy's own failure on a whitelisted expression
        raise DiffsolveError(
            f"SymPy could not derive the schedule alpha={alpha!r}, sigma={sigma!r}: {type(exc).__name__}: "
            f"{str(exc)[:200]}; simplify the expressions"
        ) from None
    if not finished:
        raise DiffsolveError(
            f"deriving the schedule alpha={alpha!r}, sigma={sigma!r} did not finish within {SYMBOLIC_BUDGET_S:g} s "
            "(the limit on symbolic work for one user schedule, docs/limits.md); simplify the expressions, e.g. "
            "avoid powers of long sums"
        )
    return result


def parse_user(alpha: str, sigma: str, constants: dict | None = None) -> UserExpressions:
    """Screen and parse a user schedule and print alpha(t), sigma(t) (module docstring, docs/limits.md).

    Raises the parser's ExpressionError for a refused string and DiffsolveError when the screen refuses it, when
    SymPy fails on it, or when parsing and :func:`derive_user` together take more than :data:`SYMBOLIC_BUDGET_S`.
    """
    import time

    from .safe_parse import parse_expression

    _warm_up()
    for label, text in (("alpha", alpha), ("sigma", sigma)):
        screen_expression(text, "t", constants, label)
    deadline = time.monotonic() + SYMBOLIC_BUDGET_S

    def printed(expr, label, text):
        try:
            return numpy_function(expr, T)
        except TypeError:  # a constant that is not real
            raise DiffsolveError(
                f"{label}(t) = {text!r} is the constant {str(expr)[:60]}, which is not a finite real number; fix it"
            ) from None

    def parsed(text, label):
        try:
            return parse_expression(text, "t", constants)
        except TypeError:  # the parser's float() of a complex constant, e.g. (acos(709))**2
            raise DiffsolveError(
                f"{label} expression {text!r} contains a constant that is not a finite real number (acos and "
                "asin of numbers beyond [-1, 1] are complex); fix it"
            ) from None

    def work():
        a_expr, s_expr = parsed(alpha, "alpha"), parsed(sigma, "sigma")
        return a_expr, s_expr, printed(a_expr, "alpha", alpha), printed(s_expr, "sigma", sigma)

    a_expr, s_expr, a_fn, s_fn = _budgeted(work, SYMBOLIC_BUDGET_S, alpha, sigma)
    return UserExpressions(alpha, sigma, a_expr, s_expr, a_fn, s_fn, deadline)


def derive_user(parsed: UserExpressions) -> tuple[ScheduleCalculus, dict]:
    """The calculus of a parsed user schedule and its NumPy functions, within what is left of the budget."""
    import time

    def work():
        calculus = derive(log_of(parsed.alpha), log_of(parsed.sigma))
        try:
            return calculus, numpy_functions(calculus)
        except TypeError:  # float() of a constant that is not real
            raise DiffsolveError(
                f"the schedule alpha={parsed.alpha_text!r}, sigma={parsed.sigma_text!r} has a derived constant that is "
                "not a finite real number (a complex constant such as acos(2) inside); fix the expressions"
            ) from None

    return _budgeted(work, parsed.deadline - time.monotonic(), parsed.alpha_text, parsed.sigma_text)


def closed_form_inverses(log_alpha: sp.Expr, log_sigma: sp.Expr, vp: bool) -> list:
    """(expression, NumPy function) of every candidate closed-form inverse t(lam), found within
    :data:`INVERSE_BUDGET_S` seconds; [] when there is none or the search ran out of time (Newton then)."""

    def work():
        return [(c, numpy_function(c, LAM)) for c in quadratic_inverse(log_alpha, log_sigma, vp)]

    try:
        finished, result = bounded(work, INVERSE_BUDGET_S)
    except Exception:  # noqa: BLE001 -- no closed form: the Newton inverse is always there
        return []
    return result if finished else []


def with_inverse(calculus: ScheduleCalculus, t_of_lam: sp.Expr) -> ScheduleCalculus:
    """``calculus`` with the closed-form inverse ``t_of_lam`` (nothing re-derived)."""
    return dataclasses.replace(calculus, t_of_lam=t_of_lam)
