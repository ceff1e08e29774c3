"""Bad input: every public entry point rejects it with a DiffsolveError (or a subclass) whose message names what
was received and/or what was expected (and the fix, where it gives one), quickly and without executing code.

Cases that currently fail in the package are written as they SHOULD behave and marked ``xfail(strict=True)``;
the package owner removes the mark with the fix.
"""

from __future__ import annotations

import contextlib
import re
import time

import numpy as np
import pytest

import diffsolve as ds
from diffsolve.errors import DiffsolveError, ModelOutputError
from diffsolve.predictions import convert
from diffsolve.symbolic.safe_parse import ExpressionError

GOOD_ALPHA = "exp(-t)"
GOOD_SIGMA = "sqrt(1 - exp(-2*t))"
HANG_GUARD_S = 5.0  # not a benchmark: a bound that only a hang or an exponential blow-up would exceed


def _re(*parts: str) -> str:
    """A regex matching the literal ``parts`` in order (anything in between)."""
    return ".*".join(re.escape(p) for p in parts)


@contextlib.contextmanager
def _quick(limit: float = HANG_GUARD_S):
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        assert elapsed < limit, f"took {elapsed:.2f} s (hang guard {limit} s)"


@pytest.fixture(scope="module")
def gauss4():
    return ds.targets.from_spec("gaussian:d=4")


@pytest.fixture(scope="module")
def grid5(vp):
    return ds.time_grid(vp, 5)


# ================================================================================================================
# Schedule.from_expr: malicious or malformed expression strings (ExpressionError, never evaluated)
# "MARKER" is replaced by a tmp_path file that must not exist afterwards.

ALLOWED_TAIL = "allowed: numbers, t, pi, e"

EXPRESSION_CASES = [
    ("import-system", "__import__('os').system('touch MARKER')",
     ["__import__('os').system(", "not allowed", ALLOWED_TAIL]),
    ("import-bare", "__import__('os')", ["unknown function '__import__'", "not allowed", ALLOWED_TAIL]),
    ("attribute-call", "np.exp(t)", ["'np.exp(t)'", "not allowed", "write exp(t), not math.exp(t) or np.exp(t)"]),
    ("attribute", "t.real", ["'t.real'", "Attribute", "not allowed", "write exp(t)"]),
    ("sandbox-escape", "().__class__.__bases__[0].__subclasses__()", ["__subclasses__", "not allowed"]),
    ("caret-power", "t^2", ["'t^2'", "BitXor", "use ** for powers, not ^"]),
    ("lambda", "lambda t: t", ["'lambda t: t'", "Lambda", "lambdas are not allowed"]),
    ("lambda-call", "(lambda: __import__('os').system('touch MARKER'))()", ["lambda", "lambdas are not allowed"]),
    ("subscript", "t[0]", ["'t[0]'", "Subscript", "indexing is not allowed"]),
    ("list-comprehension", "[__import__('os').system('touch MARKER') for t in [1]]", ["ListComp", "not allowed"]),
    ("generator", "sum(t for t in [1])", ["unknown function 'sum'", "not allowed"]),
    ("f-string", "f'{t}'", ["JoinedStr", "not allowed"]),
    ("unknown-name", "exp(-x*t)", ["'exp(-x*t)'", "unknown name 'x'", ALLOWED_TAIL]),
    ("dunder-name", "__builtins__", ["unknown name '__builtins__'"]),
    ("unknown-function", "erf(t)", ["unknown function 'erf'", "the functions acos"]),
    ("function-without-call", "exp", ["function name 'exp' without a call"]),
    ("keyword-arg", "exp(x=t)", ["'exp(x=t)'", "keyword argument", "keyword arguments are not allowed"]),
    ("two-args", "exp(t, t)", ["exp() with 2 arguments", "expected exactly one"]),
    ("string-literal", "'abc'", ["the literal 'abc'"]),
    ("bool-literal", "True", ["the literal True"]),
    ("comparison", "t < 1", ["'t < 1'", "Compare"]),
    ("walrus", "(k := t)", ["NamedExpr"]),
    ("syntax-error", "exp(-t", ["cannot parse schedule expression", "'exp(-t'", "such as 'sqrt(1 - exp(-t**2))'"]),
    ("10000-chars", "t+" * 4999 + "22",  # 10,000 characters
     ["10000 characters", "limit 1000", "simplify it"]),
    ("deep-nesting", "-" * 999 + "t", ["nested deeper than 60 levels", "simplify it"]),
    ("power-tower-literal", "((2**64)**64)**64", ["'((2**64)**64)**64'", "literal power larger than 2**4096"]),
    ("power-right-assoc", "9**9**9", ["'9**9**9'", "exponent 387420489", "|exponent| must be <= 64"]),
    ("huge-base-power", "(10**30)**64", ["literal power larger than 2**4096"]),
    ("symbolic-huge-exponent", "t**1000", ["exponent 1000", "|exponent| must be <= 64"]),
    ("huge-integer", "1" + "0" * 40, ["integer literal", "larger than 1e30"]),
    ("non-finite-literal", "1e999", ["non-finite literal inf"]),
    ("division-by-zero", "1/0", ["'1/0'", "division by zero"]),
    ("division-by-zero-expr", "t/(1-1)", ["'t/(1-1)'", "division by zero"]),
    ("empty", "", ["schedule expression is empty", "pass e.g. alpha='exp(-t)'"]),
    ("blank", "   ", ["schedule expression is empty", "pass e.g. alpha='exp(-t)'"]),
]


@pytest.mark.parametrize("template, fragments", [c[1:] for c in EXPRESSION_CASES], ids=[c[0] for c in EXPRESSION_CASES])
def test_schedule_expression_rejected(tmp_path, template, fragments):
    marker = tmp_path / "pwned"
    expr = template.replace("MARKER", str(marker))
    with _quick(), pytest.raises(ExpressionError, match=_re(*fragments)):
        ds.Schedule.from_expr(alpha=expr, sigma=GOOD_SIGMA)
    assert not marker.exists(), "the expression was executed"


def test_schedule_expression_rejected_in_sigma_too(tmp_path):
    marker = tmp_path / "pwned"
    with _quick(), pytest.raises(ExpressionError, match=_re("__import__('os').system(", "not allowed")):
        ds.Schedule.from_expr(alpha=GOOD_ALPHA, sigma=f"__import__('os').system('touch {marker}')")
    assert not marker.exists()


def test_expression_error_is_a_diffsolve_error_and_a_value_error():
    assert issubclass(ExpressionError, DiffsolveError) and issubclass(DiffsolveError, ValueError)


@pytest.mark.parametrize("value, received", [(1.0, "float 1.0"), (None, "NoneType None"), (b"exp(-t)", "bytes b'exp(-t)'"),
                                             (["exp(-t)"], "list ['exp(-t)']")],
                         ids=["float", "None", "bytes", "list"])
def test_schedule_expression_not_a_string(value, received):
    with pytest.raises(ExpressionError, match=_re("must be a string, got " + received, "pass e.g. alpha='exp(-t)'")):
        ds.Schedule.from_expr(alpha=value, sigma=GOOD_SIGMA)


# complex or undefined constants inside otherwise whitelisted syntax: should be an ExpressionError/DiffsolveError
# naming the expression, not a SymPy TypeError/KeyError from deep inside
COMPLEX_CASES = [
    ("complex-exponent", "t**sqrt(-1)"),
    ("complex-root", "(-8)**(1/3)"),
    ("acos-out-of-range", "acos(2)"),
    ("log-of-zero", "log(0)"),
]


@pytest.mark.parametrize("expr", [c[1] for c in COMPLEX_CASES], ids=[c[0] for c in COMPLEX_CASES])
def test_schedule_expression_complex_or_undefined_constant(expr):
    with _quick(), pytest.raises(DiffsolveError, match=_re(repr(expr))):
        ds.Schedule.from_expr(alpha=expr, sigma=GOOD_SIGMA)


def test_schedule_constants_are_not_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}') or 1"
    try:
        # either "constant 'k' must be a number" or the safe parser's "... not allowed" for the payload
        with pytest.raises(DiffsolveError, match=r"(?i)constant.*'k'|not allowed"):
            ds.Schedule.from_expr(alpha="exp(-k*t)", sigma="sqrt(1 - exp(-2*k*t))", constants={"k": payload})
    finally:
        assert not marker.exists(), "the constant was executed as code"


def test_schedule_constant_clashing_with_reserved_name():
    with pytest.raises(ExpressionError, match=_re("constant name 'exp' is not a free identifier", "rename it")):
        ds.Schedule.from_expr(alpha=GOOD_ALPHA, sigma=GOOD_SIGMA, constants={"exp": 1})


# -- expressions that parse but do not define a schedule on the domain ---------------------------------------------
DOMAIN_CASES = [
    ("alpha-negative", "-exp(-t)", GOOD_SIGMA,
     ["alpha(t) = '-exp(-t)'", "inside the domain", "alpha must be finite and positive there", "adjust the expression"]),
    ("alpha-zero-inside", "1 - 2*t", "t", ["alpha(t) = '1 - 2*t'", "at t = 0.5", "alpha must be finite and positive"]),
    ("alpha-identically-zero", "0*t", GOOD_SIGMA, ["alpha(t) = '0*t'", "alpha must be finite and positive"]),
    ("alpha-nan", "sqrt(t - 0.5)", GOOD_SIGMA, ["alpha(t) = 'sqrt(t - 0.5)'", "nan", "finite and positive"]),
    ("alpha-overflow", "exp(exp(exp(exp(exp(t)))))", GOOD_SIGMA, ["inf", "finite and positive"]),
    ("sigma-zero", GOOD_ALPHA, "0*t", ["sigma(t) = '0*t'", "sigma must be finite and positive"]),
    ("sigma-negative", GOOD_ALPHA, "-t", ["sigma(t) = '-t'", "sigma must be finite and positive"]),
    ("sigma-decreasing", "1", "exp(-t)",
     ["must be strictly decreasing", "alpha='1', sigma='exp(-t)'", "check that sigma/alpha increases with t"]),
    ("snr-not-monotone", "exp(t)", "sqrt(t)",
     ["must be strictly decreasing", "at t = 0.5", "alpha='exp(t)', sigma='sqrt(t)'", "sigma/alpha increases"]),
    ("snr-constant", "1", "1", ["must be strictly decreasing", "dlam/dt = 0"]),
]


@pytest.mark.parametrize("alpha, sigma, fragments", [c[1:] for c in DOMAIN_CASES], ids=[c[0] for c in DOMAIN_CASES])
def test_schedule_expression_invalid_on_domain(alpha, sigma, fragments):
    with _quick(), pytest.raises(DiffsolveError, match=_re(*fragments)):
        ds.Schedule.from_expr(alpha=alpha, sigma=sigma)


def test_schedule_expression_range_inverted():
    with pytest.raises(DiffsolveError, match=_re("need 0 <= t_min < t_max", "got t_min=1.0, t_max=0.5")):
        ds.Schedule.from_expr(alpha=GOOD_ALPHA, sigma=GOOD_SIGMA, t_min=1.0, t_max=0.5)


def test_schedule_expression_domain_not_covering_range():
    with pytest.raises(DiffsolveError, match=_re("[t_min, t_max] = [0.001, 1.0] must lie inside the schedule's domain [0.5, 1.0]", "pass t_min/t_max")):
        ds.Schedule.from_expr(alpha=GOOD_ALPHA, sigma=GOOD_SIGMA, domain=(0.5, 1.0))


@pytest.mark.parametrize("kw", [{"t_min": "abc"}, {"t_max": None}], ids=["t_min-str", "t_max-None"])
def test_schedule_expression_range_not_a_number(kw):
    (name, value), = kw.items()
    with pytest.raises(DiffsolveError, match=_re(name, repr(value))):
        ds.Schedule.from_expr(alpha=GOOD_ALPHA, sigma=GOOD_SIGMA, **kw)


# ================================================================================================================
# Catalog schedules: names and parameters

def test_unknown_schedule_name_with_hint():
    with pytest.raises(DiffsolveError, match=_re("unknown schedule 'vp-lienar'", "expected one of", "vp-linear",
                                                 "Schedule.from_expr", "Did you mean 'vp-linear'?")):
        ds.get_schedule("vp-lienar")


SCHEDULE_PARAM_CASES = [
    ("beta_min-negative", "vp-linear", {"beta_min": -1}, ["beta_min must be a positive finite number, got -1"]),
    ("beta_min-nan", "vp-linear", {"beta_min": float("nan")}, ["beta_min must be a positive finite number, got nan"]),
    ("beta_min-str", "vp-linear", {"beta_min": "abc"}, ["beta_min must be a positive number, got 'abc'"]),
    ("beta_max-below-beta_min", "vp-linear", {"beta_min": 5.0, "beta_max": 1.0},
     ["vp-linear needs beta_max > beta_min", "got beta_min=5.0, beta_max=1.0"]),
    ("beta_max-equal", "vp-linear", {"beta_min": 5.0, "beta_max": 5.0}, ["needs beta_max > beta_min"]),
    ("unknown-keyword", "vp-linear", {"beta_mx": 3},
     ["bad parameters {'beta_mx': 3} for schedule 'vp-linear'", "unexpected keyword argument 'beta_mx'"]),
    ("unknown-keyword-flow", "flow", {"beta_min": 1}, ["schedule 'flow'", "unexpected keyword argument 'beta_min'"]),
    ("ve-reversed", "ve", {"sigma_min": 10, "sigma_max": 1}, ["ve needs sigma_max > sigma_min", "sigma_min=10.0"]),
    ("edm-zero", "edm", {"sigma_min": 0}, ["sigma_min must be a positive finite number, got 0"]),
    ("cosine-s-negative", "vp-cosine", {"s": -1}, ["s must be a positive finite number, got -1"]),
    ("cosine-t_max", "vp-cosine", {"t_max": 1.5}, ["vp-cosine needs 0 < t_max <= 1, got t_max=1.5"]),
    ("discrete-betas", "discrete", {"beta_end": 1.5}, ["every beta must lie in (0, 1)", "linspace(1e-4, 0.02, 1000)"]),
    ("discrete-one-beta", "discrete", {"n": 1}, ["needs at least 2 betas, got 1"]),
]


@pytest.mark.parametrize("name, params, fragments", [c[1:] for c in SCHEDULE_PARAM_CASES],
                         ids=[c[0] for c in SCHEDULE_PARAM_CASES])
def test_schedule_bad_parameters(name, params, fragments):
    with pytest.raises(DiffsolveError, match=_re(*fragments)):
        ds.get_schedule(name, **params)


@pytest.mark.parametrize("name, params", [("vp-linear", {"t_min": 0.9, "t_max": 0.5}), ("flow", {"t_max": 1.5})],
                         ids=["vp-linear-inverted", "flow-t_max-beyond-1"])
def test_schedule_bad_time_range(name, params):
    with pytest.raises(DiffsolveError, match=r"t_max"):
        ds.get_schedule(name, **params)


# ================================================================================================================
# time_grid

@pytest.mark.parametrize("steps, fragments", [
    (0, ["steps must be >= 1, got 0", "N + 1 times"]),
    (-3, ["steps must be >= 1, got -3"]),
    (2.5, ["steps must be a positive integer, got float 2.5"]),
    (True, ["steps must be a positive integer, got bool True"]),
    ("10", ["steps must be a positive integer, got str '10'"]),
    (None, ["steps must be a positive integer, got NoneType None"]),
], ids=["zero", "negative", "float", "bool", "str", "None"])
def test_time_grid_bad_steps(vp, steps, fragments):
    with pytest.raises(DiffsolveError, match=_re(*fragments)):
        ds.time_grid(vp, steps=steps)


def test_time_grid_unknown_spacing(vp):
    with pytest.raises(DiffsolveError, match=_re("unknown spacing 'logsrn'", "expected one of time, logsnr, karras, "
                                                 "quadratic", "explicit array")):
        ds.time_grid(vp, 10, spacing="logsrn")


EXPLICIT_GRID_CASES = [
    ("increasing", np.linspace(0.01, 1.0, 5), ["strictly decreasing", "t[0] = ", "0.01", "<= t[1]", "reverse it"]),
    ("non-monotone", np.array([1.0, 0.5, 0.7, 0.1]), ["strictly decreasing", "t[1] = ", "0.5", "t[2] = ", "0.7"]),
    ("repeated", np.array([1.0, 0.5, 0.5, 0.1]), ["strictly decreasing", "remove repeated times"]),
    ("nan", np.array([1.0, np.nan, 0.1]), ["non-finite values at positions [1]"]),
    ("inf", np.array([np.inf, 0.5, 0.1]), ["non-finite values at positions [0]"]),
    ("2-D", np.array([[1.0, 0.5], [0.3, 0.1]]), ["1-D with at least 2 times", "got shape (2, 2)"]),
    ("single-point", np.array([0.5]), ["at least 2 times", "got shape (1,)"]),
    ("empty", np.array([]), ["at least 2 times", "got shape (0,)"]),
    ("outside-high", np.array([2.0, 0.5, 0.1]), ["spans", "2.0", "outside the domain [0.0, 1.0]", "'vp-linear'",
                                                 "clip it"]),
    ("outside-low", np.array([1.0, 0.5, -0.1]), ["-0.1", "outside the domain [0.0, 1.0]"]),
    ("strings", ["a", "b"], ["must be a 1-D array of real numbers, got list"]),
]


@pytest.mark.parametrize("grid, fragments", [c[1:] for c in EXPLICIT_GRID_CASES], ids=[c[0] for c in EXPLICIT_GRID_CASES])
def test_time_grid_bad_explicit_array(vp, grid, fragments):
    with pytest.raises(DiffsolveError, match=_re(*fragments)):
        ds.time_grid(vp, 10, spacing=grid)


def test_sample_validates_grid_too(vp, gauss4):
    with pytest.raises(DiffsolveError, match=_re("strictly decreasing", "reverse it")):
        ds.sample("ddim", gauss4, vp, np.array([0.1, 0.5, 1.0]), n=4)


@pytest.mark.parametrize("t_max, t_min", [(0.5, 0.5), (0.2, 0.5)], ids=["equal", "inverted"])
def test_time_grid_t_max_not_above_t_min(vp, t_max, t_min):
    with pytest.raises(DiffsolveError, match=_re(f"need t_max > t_min, got t_max={t_max}, t_min={t_min}")):
        ds.time_grid(vp, 10, t_max=t_max, t_min=t_min)


def test_time_grid_end_point_outside_domain(vp):
    with pytest.raises(DiffsolveError, match=_re("grid end points", "2.0", "outside the domain [0.0, 1.0]")):
        ds.time_grid(vp, 10, t_max=2.0)


def test_time_grid_karras_bad_rho(vp):
    with pytest.raises(DiffsolveError, match=_re("karras spacing needs rho > 0, got rho=-1.0")):
        ds.time_grid(vp, 10, spacing="karras", rho=-1)


def test_time_grid_needs_a_schedule():
    with pytest.raises(DiffsolveError, match=_re("needs a Schedule as first argument, got str", "ds.get_schedule(")):
        ds.time_grid("vp-linear", 10)


def test_time_grid_unknown_option(vp):
    with pytest.raises(DiffsolveError, match=r"rh0"):
        ds.time_grid(vp, 10, spacing="karras", rh0=5)


# ================================================================================================================
# unknown names: solver, backend, metric, prediction type, target specs

def test_unknown_solver_did_you_mean():
    with pytest.raises(DiffsolveError, match=_re("unknown solver 'ddmp'", "known solvers:", "ddim", "diffsolve solvers",
                                                 "Did you mean 'ddpm'?")):
        ds.get_solver("ddmp")


def test_unknown_solver_variant():
    with pytest.raises(DiffsolveError, match=_re("solver 'ddim' has no variant 'nonexistent'", "available variants")):
        ds.get_solver("ddim", variant="nonexistent")


def test_solver_not_a_name():
    with pytest.raises(DiffsolveError, match=_re("solver must be a name (str) or a Solver, got int 3")):
        ds.get_solver(3)


def test_solver_unknown_parameter():
    with pytest.raises(DiffsolveError, match=_re("solver 'ddim' has no parameter 'foo'", "its parameters are")):
        ds.get_solver("ddim").with_params(foo=1)


def test_sample_unknown_solver_parameter(vp, gauss4, grid5):
    with pytest.raises(DiffsolveError, match=_re("solver 'ddim' has no parameter 'foo'")):
        ds.sample("ddim", gauss4, vp, grid5, n=4, foo=1)


def test_unknown_backend(vp, gauss4, grid5):
    with pytest.raises(DiffsolveError, match=_re("unknown backend 'torch'", "expected one of", "numpy")):
        ds.sample("ddim", gauss4, vp, grid5, n=4, backend="torch")


def test_unknown_metric(vp, gauss4):
    with pytest.raises(DiffsolveError, match=_re("unknown metric 'gaussian-kl'", "expected one of", "w2", "kl")):
        ds.order_study("ddim", gauss4, vp, steps=[8, 16], metric="gaussian-kl")


def test_unknown_prediction_type(vp, grid5):
    with pytest.raises(DiffsolveError, match=_re("unknown prediction type 'noise'",
                                                 "expected one of data, eps, v, score, flow")):
        ds.sample("ddim", lambda x, t: x, vp, grid5, x_init=np.zeros((3, 4)), prediction="noise")


TARGET_SPEC_CASES = [
    ("d-zero", "gaussian:d=0", ["target option d must be a positive integer, got 0"]),
    ("k-negative", "gmm:k=-1", ["target option k must be a positive integer, got -1"]),
    ("k-zero", "gmm:d=2,k=0", ["target option k must be a positive integer, got 0"]),
    ("d-float", "gaussian:d=2.5", ["target option d must be a positive integer, got 2.5"]),
    ("unknown-kind", "foo:d=2", ["unknown target kind 'foo' in 'foo:d=2'", "expected one of gaussian, gmm"]),
    ("not-a-number", "gaussian:d=abc", ["option 'd=abc' in 'gaussian:d=abc' needs a number"]),
    ("no-colon", "gaussian", ["must look like 'gaussian:d=16'", "got 'gaussian'"]),
    ("no-equals", "gaussian:d", ["option 'd' in 'gaussian:d' must be key=value"]),
    ("unknown-option", "gaussian:d=4,bar=2", ["unknown option(s) ['bar'] for target 'gaussian'", "allowed: ['d'"]),
    ("var-zero", "gaussian:var=0", ["target option var must be positive, got 0"]),
    ("not-a-string", 3, ["must look like 'gaussian:d=16'", "got 3"]),
]


@pytest.mark.parametrize("spec, fragments", [c[1:] for c in TARGET_SPEC_CASES], ids=[c[0] for c in TARGET_SPEC_CASES])
def test_bad_target_spec(spec, fragments):
    with pytest.raises(DiffsolveError, match=_re(*fragments)):
        ds.targets.from_spec(spec)


def test_bad_target_spec_negative_seed():
    with pytest.raises(DiffsolveError, match=_re("seed", "-1")):
        ds.targets.from_spec("gaussian:d=4,seed=-1")


# ================================================================================================================
# model outputs on ds.sample with a callable model (ModelOutputError, naming the step and what was returned)

def _run_model(vp, grid, model, prediction="eps", x_init=None):
    x_init = np.zeros((3, 4)) if x_init is None else x_init
    return ds.sample("ddim", model, vp, grid, x_init=x_init, prediction=prediction)


MODEL_OUTPUT_CASES = [
    ("nan", lambda x, t: np.full_like(x, np.nan), ["returned 12 NaN/inf value(s)", "at t = 1.0 (step 0)",
                                                    "check the model"]),
    ("inf", lambda x, t: np.full_like(x, np.inf), ["NaN/inf value(s)", "(step 0)"]),
    ("wrong-shape", lambda x, t: x[:, :2], ["returned shape (3, 2)", "for an input of shape (3, 4)", "same shape as x"]),
    ("transposed", lambda x, t: x.T, ["returned shape (4, 3)", "input of shape (3, 4)"]),
    ("int-dtype", lambda x, t: np.zeros(x.shape, dtype=np.int64), ["returned dtype int64", "floating-point values"]),
    ("bool-dtype", lambda x, t: np.zeros(x.shape, dtype=bool), ["returned dtype bool", "floating-point"]),
    ("complex-dtype", lambda x, t: np.zeros(x.shape, dtype=complex), ["returned dtype complex128", "floating-point"]),
    ("scalar", lambda x, t: 0.0, ["returned shape ()", "same shape as x"]),
]


@pytest.mark.parametrize("model, fragments", [c[1:] for c in MODEL_OUTPUT_CASES], ids=[c[0] for c in MODEL_OUTPUT_CASES])
def test_model_output_rejected(vp, grid5, model, fragments):
    with _quick(), pytest.raises(ModelOutputError, match=_re(*fragments)):
        _run_model(vp, grid5, model)


def test_model_output_nan_at_a_later_step_names_that_step(vp, grid5):
    def model(x, t):
        return np.full_like(x, np.nan) if t < 0.5 else np.zeros_like(x)

    k = int(np.flatnonzero(grid5 < 0.5)[0])
    with pytest.raises(ModelOutputError, match=_re("NaN/inf", f"at t = {float(grid5[k])!r} (step {k})")):
        _run_model(vp, grid5, model)


def test_model_returning_none(vp, grid5):
    with pytest.raises(ModelOutputError, match=_re("None")):
        _run_model(vp, grid5, lambda x, t: None)


def test_model_without_declared_prediction(vp, grid5):
    with pytest.raises(DiffsolveError, match=_re("needs a declared prediction type", "pass prediction='eps'",
                                                 ".prediction attribute")):
        ds.sample("ddim", lambda x, t: x, vp, grid5, x_init=np.zeros((3, 4)))


def test_model_invalid_declared_prediction(vp, grid5):
    with pytest.raises(DiffsolveError, match=_re("unknown prediction type 'x0'", "expected one of data, eps")):
        _run_model(vp, grid5, lambda x, t: x, prediction="x0")


def test_model_invalid_prediction_attribute(vp, grid5):
    class Model:
        prediction = "noise"

        def __call__(self, x, t):
            return x

    with pytest.raises(DiffsolveError, match=_re("unknown prediction type 'noise'")):
        ds.sample("ddim", Model(), vp, grid5, x_init=np.zeros((3, 4)))


def test_model_not_callable(vp, grid5):
    with pytest.raises(DiffsolveError, match=_re("model must be a diffsolve target or a callable", "got int")):
        _run_model(vp, grid5, 42)


# ================================================================================================================
# ds.sample inputs

X_INIT_CASES = [
    ("1-D", np.zeros(4), ["batch axis first", "got shape (4,)", "use x[None]"]),
    ("empty-batch", np.zeros((0, 4)), ["x_init is empty (shape (0, 4))"]),
    ("empty-dim", np.zeros((3, 0)), ["x_init is empty (shape (3, 0))"]),
    ("nan", np.full((3, 4), np.nan), ["x_init contains NaN or inf"]),
    ("inf", np.full((3, 4), np.inf), ["x_init contains NaN or inf"]),
    ("int-dtype", np.zeros((3, 4), dtype=np.int64), ["floating dtype", "got int64", "astype(np.float64)"]),
    ("wrong-dim", np.zeros((3, 5)), ["x_init has shape (3, 5)", "4-dimensional", "expected (n, 4)"]),
    ("3-D", np.zeros((3, 4, 1)), ["x_init has shape (3, 4, 1)", "expected (n, 4)"]),
    ("str", "abc", ["x_init must be a NumPy array", "got str"]),
]


@pytest.mark.parametrize("x_init, fragments", [c[1:] for c in X_INIT_CASES], ids=[c[0] for c in X_INIT_CASES])
def test_sample_bad_x_init(vp, gauss4, grid5, x_init, fragments):
    with pytest.raises(DiffsolveError, match=_re(*fragments)):
        ds.sample("ddim", gauss4, vp, grid5, x_init=x_init)


@pytest.mark.parametrize("n", [0, -5, 2.5, True, None], ids=["zero", "negative", "float", "bool", "None"])
def test_sample_bad_n(vp, gauss4, grid5, n):
    with pytest.raises(DiffsolveError, match=_re("pass n (a positive number of samples) or x_init", f"got n={n!r}")):
        ds.sample("ddim", gauss4, vp, grid5, n=n)


def test_sample_n_disagrees_with_x_init(vp, gauss4, grid5):
    with pytest.raises(DiffsolveError, match=_re("n=4 disagrees with x_init's batch size 3")):
        ds.sample("ddim", gauss4, vp, grid5, n=4, x_init=np.zeros((3, 4)))


def test_sample_callable_without_x_init(vp, grid5):
    with pytest.raises(DiffsolveError, match=_re("with a model callable, pass x_init")):
        ds.sample("ddim", lambda x, t: x, vp, grid5, n=5, prediction="eps")


@pytest.mark.parametrize("solver", ["ddim", "ddpm"])
def test_sample_negative_seed(vp, gauss4, grid5, solver):
    with pytest.raises(DiffsolveError, match=_re("seed must be an integer in [0, ", "got -1", "non-negative integer")):
        ds.sample(solver, gauss4, vp, grid5, n=5, seed=-1)


def test_sample_seed_too_large(vp, gauss4, grid5):
    with pytest.raises(DiffsolveError, match=_re("seed must be an integer", f"got {2**64}", "below 2**64")):
        ds.sample("ddim", gauss4, vp, grid5, n=5, seed=2**64)


def test_sample_float_seed_is_a_type_error(vp, gauss4, grid5):
    # the noise module raises TypeError on purpose for a non-integer seed
    with pytest.raises(TypeError, match=_re("seed must be an integer", "got 1.5 of type float")):
        ds.sample("ddim", gauss4, vp, grid5, n=5, seed=1.5)


def test_sample_negative_sample_offset(vp, gauss4, grid5):
    with pytest.raises(DiffsolveError, match=r"sample_offset must be a non-negative integer .*got -1"):
        ds.sample("ddim", gauss4, vp, grid5, n=5, sample_offset=-1)


def test_sample_schedule_not_a_schedule(gauss4, grid5):
    with pytest.raises(DiffsolveError, match=_re("schedule must be a diffsolve Schedule, got str", "ds.get_schedule")):
        ds.sample("ddim", gauss4, "vp-linear", grid5, n=5)


# ================================================================================================================
# targets

GMM_CASES = [
    ("negative-weight", ([-1.0, 2.0], [[0.0], [1.0]], [1.0, 1.0]), ["weights must be positive, got [-1.0, 2.0]"]),
    ("zero-weight", ([0.0, 1.0], [[0.0], [1.0]], [1.0, 1.0]), ["weights must be positive, got [0.0, 1.0]"]),
    ("zero-variance", ([1.0, 1.0], [[0.0], [1.0]], [0.0, 1.0]), ["variances must be positive", "e.g. 1e-4, not 0"]),
    ("negative-variance", ([1.0, 1.0], [[0.0], [1.0]], [-1.0, 1.0]), ["variances must be positive"]),
    ("weights-shape", ([1.0, 1.0, 1.0], [[0.0], [1.0]], [1.0, 1.0]),
     ["weights must have shape (2,) to match means (2, 1), got (3,)"]),
    ("variances-shape", ([1.0, 1.0], [[0.0, 0.0], [1.0, 1.0]], [1.0, 1.0, 1.0]),
     ["variances must have shape (2,) or (2, 2), got (3,)"]),
    ("nan-mean", ([1.0, 1.0], [[np.nan], [1.0]], [1.0, 1.0]), ["means contains NaN or inf"]),
    ("inf-variance", ([1.0], [[0.0]], [np.inf]), ["variances contains NaN or inf"]),
    ("nan-weight", ([np.nan, 1.0], [[0.0], [1.0]], [1.0, 1.0]), ["weights contains NaN or inf"]),
]


@pytest.mark.parametrize("args, fragments", [c[1:] for c in GMM_CASES], ids=[c[0] for c in GMM_CASES])
def test_gaussian_mixture_bad_parameters(args, fragments):
    with pytest.raises(DiffsolveError, match=_re(*fragments)):
        ds.targets.GaussianMixture(*args)


@pytest.mark.parametrize("mean, var, fragments", [
    ([0.0, 0.0], [1.0, -1.0], ["variances must be positive"]),
    ([0.0, np.nan], 1.0, ["means contains NaN or inf"]),
], ids=["negative-variance", "nan-mean"])
def test_gaussian_bad_parameters(mean, var, fragments):
    with pytest.raises(DiffsolveError, match=_re(*fragments)):
        ds.targets.Gaussian(mean, var)


def test_gaussian_mean_var_shape_mismatch():
    with pytest.raises(DiffsolveError, match=_re("(3,)", "(2,)")):
        ds.targets.Gaussian([0.0, 0.0], [1.0, 1.0, 1.0])


@pytest.mark.parametrize("means", [np.zeros((2, 2, 2)), "ab"], ids=["3-D-means", "str-means"])
def test_gaussian_mixture_bad_means(means):
    with pytest.raises(DiffsolveError, match=r"means"):
        ds.targets.GaussianMixture([1.0, 1.0], means, [1.0, 1.0])


def test_gaussian_mixture_no_components():
    with pytest.raises(DiffsolveError, match=r"(?i)component"):
        ds.targets.GaussianMixture([], np.zeros((0, 2)), [])


# ================================================================================================================
# order_study

def test_order_study_needs_gaussian(vp):
    gmm = ds.targets.from_spec("gmm:d=2,k=3")
    with pytest.raises(DiffsolveError, match=_re("needs a Gaussian target", "'gaussian:d=8'",
                                                 "got GaussianMixture(K=3, d=2)")):
        ds.order_study("ddim", gmm, vp, steps=[8, 16])


@pytest.mark.parametrize("steps, fragments", [
    ([8], ["at least two distinct positive step counts, got [8]"]),
    ([8, 8], ["at least two distinct positive step counts, got [8, 8]"]),
    ([0, 8], ["positive step counts, got [0, 8]"]),
    ([-8, 16], ["positive step counts, got [-8, 16]"]),
    ("8,16", ["steps must be a list of positive integers, got '8,16'"]),
    (None, ["steps must be a list of positive integers, got None"]),
], ids=["one", "duplicates", "zero", "negative", "str", "None"])
def test_order_study_bad_steps(vp, gauss4, steps, fragments):
    with pytest.raises(DiffsolveError, match=_re(*fragments)):
        ds.order_study("ddim", gauss4, vp, steps=steps)


def test_order_study_fractional_steps(vp, gauss4):
    with pytest.raises(DiffsolveError, match=_re("8.5")):
        ds.order_study("ddim", gauss4, vp, steps=[8.5, 16])


# ================================================================================================================
# prediction conversion at singular points: raise, never return inf/nan

@pytest.mark.parametrize("t, frm, to, fragments", [
    (1.0, "eps", "data", ["cannot convert a 'eps' prediction to 'data' at t = ", "1.0", "alpha = 0", "singular",
                          "use a 'data', 'v' or 'flow' model at alpha = 0"]),
    (1.0, "score", "data", ["cannot convert a 'score' prediction to 'data'", "singular"]),
    (0.0, "score", "data", ["cannot convert a 'score' prediction", "sigma = 0", "stop the grid before sigma = 0"]),
    (0.0, "data", "eps", ["cannot convert a 'data' prediction to 'eps'", "sigma = 0"]),
], ids=["eps-at-alpha0", "score-at-alpha0", "score-at-sigma0", "to-eps-at-sigma0"])
def test_convert_at_singular_point(t, frm, to, fragments):
    flow = ds.get_schedule("flow")
    x = np.ones((2, 3))
    with np.errstate(all="ignore"), pytest.raises(DiffsolveError, match=_re(*fragments)):
        convert(np.ones((2, 3)), x, t, flow, frm, to)


@pytest.mark.parametrize("frm", ["flow", "v", "data"])
def test_convert_at_alpha_zero_is_fine_for_data_v_flow(frm):
    """docs/algorithms/exponential_integrators.md §1.3: at alpha = 0 only data, v and flow outputs determine D
    (flow: D = x - u; v: D = -v)."""
    flow = ds.get_schedule("flow")
    x, out = np.full((2, 3), 0.7), np.full((2, 3), 0.2)
    expected = {"flow": x - out, "v": -out, "data": out}[frm]
    np.testing.assert_allclose(convert(out, x, 1.0, flow, frm, "data"), expected, rtol=1e-14)


@pytest.mark.parametrize("name", ["vp-linear", "vp-cosine", "discrete", "edm", "flow"])
def test_conversions_over_an_array_are_the_scalar_ones(name):
    """``conversions`` (one schedule evaluation for a whole run's stage times) gives every time the bits of the
    coefficients evaluated at that time alone, and raises at the first singular time, naming it."""
    from diffsolve.predictions import coefficients, conversions

    sch = ds.get_schedule(name)
    grid = np.asarray(ds.time_grid(sch, 20, "logsnr"))[:-1]
    times = np.stack([grid, 0.5 * (grid + np.append(grid[1:], 0.0))], axis=1)  # (steps, stages), like a table
    for frm, to in [("eps", "data"), ("v", "eps"), ("flow", "score"), ("data", "v")]:
        convs = conversions(sch, times, frm, to)
        assert len(convs) == times.size
        for t, c in zip(times.ravel(), convs):
            want = (*coefficients(frm, sch, float(t)), *coefficients(to, sch, float(t)))
            assert c[:4] == tuple(float(v) for v in want) and not c.identity
    flow = ds.get_schedule("flow")
    with np.errstate(all="ignore"), pytest.raises(DiffsolveError, match=_re("prediction to 'data' at t = 1.0")):
        conversions(flow, np.array([0.5, 1.0, 0.0]), "eps", "data")


def test_sample_eps_model_from_alpha_zero_raises(tmp_path):
    flow = ds.get_schedule("flow")
    with np.errstate(all="ignore"), pytest.raises(DiffsolveError, match=_re("cannot convert a 'eps' prediction",
                                                                             "singular")):
        ds.sample("ddim", lambda x, t: np.zeros_like(x), flow, np.array([1.0, 0.5, 0.1]), x_init=np.ones((3, 2)),
                  prediction="eps")


def test_convert_unknown_kind():
    flow = ds.get_schedule("flow")
    with pytest.raises(DiffsolveError, match=_re("unknown prediction type 'x0'")):
        convert(np.ones((2, 3)), np.ones((2, 3)), 0.5, flow, "eps", "x0")


def test_convert_time_outside_domain():
    flow = ds.get_schedule("flow")
    with pytest.raises(DiffsolveError, match=_re("t = ", "1.5", "outside the domain [0.0, 1.0] of schedule 'flow'")):
        convert(np.ones((2, 3)), np.ones((2, 3)), 1.5, flow, "eps", "data")
