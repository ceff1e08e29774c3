"""Bad input for schedules, grids and target specs (docs/limits.md): every case either raises a DiffsolveError (no
other type) whose message names the parameter (and has no NumPy repr), or returns a correct result; each case runs
in a thread with a deadline, so a hang fails the case instead of the suite.

Regression tests for the audit findings of issue 11 are at the end (one section per finding).
"""

from __future__ import annotations

import itertools
import math
import threading
import time

import numpy as np
import pytest

import diffsolve as ds
from diffsolve.errors import DiffsolveError
from diffsolve.grids import LAM_FLOOR, MAX_STEPS, RHO_RANGE
from diffsolve.schedules import MAX_BETAS
from diffsolve.symbolic import schedule as calc

DEADLINE_S = 20.0  # per case: the 5 s + 2 s symbolic budgets plus a loaded machine; only a hang exceeds it
GOOD_ALPHA, GOOD_SIGMA = "exp(-t)", "sqrt(1 - exp(-2*t))"
NUMPY_REPRS = ("np.float64", "np.int64", "np.float32", "np.bool", "array(", "dtype=")
AUDIT_HANG = "exp(1e-30*((1+t/1000)**64+1)**64)"


def _run(fn, deadline=DEADLINE_S):
    """fn() in a daemon thread: {'value': ...} or {'error': ...}; fails the test if it does not return in time."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 -- inspected by the caller
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    start = time.perf_counter()
    worker.start()
    worker.join(deadline)
    assert not worker.is_alive(), f"no result within {deadline} s (a hang)"
    box["seconds"] = time.perf_counter() - start
    return box


def expect_error(fn, *fragments):
    """A DiffsolveError (not any other type) whose message contains every fragment and no NumPy repr."""
    box = _run(fn)
    assert "error" in box, f"expected a DiffsolveError, got the result {box.get('value')!r}"
    err = box["error"]
    assert isinstance(err, DiffsolveError), f"{type(err).__name__} instead of a DiffsolveError: {err}"
    message = str(err)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in the message: {message}"
    for r in NUMPY_REPRS:
        assert r not in message, f"NumPy repr {r!r} in the message: {message}"
    return message


def expect_value(fn):
    box = _run(fn)
    assert "error" not in box, f"{type(box['error']).__name__}: {box['error']}"
    return box["value"]


def _finite_schedule(s):
    t = np.linspace(s.t_min, s.t_max, 65)[1:-1]
    for method in ("lam", "alpha", "sigma", "dlam_dt", "f", "g2"):
        assert np.isfinite(getattr(s, method)(t)).all(), method
    assert np.all(np.diff(s.lam(t)) < 0)
    np.testing.assert_allclose(s.t_of_lam(s.lam(t)), t, rtol=1e-9)


def _valid_grid(s, g, n):
    lo, hi = s.domain
    assert g.shape == (n + 1,) and np.isfinite(g).all() and np.all(np.diff(g) < 0)
    assert lo <= g[-1] and g[0] <= hi


# ================================================================================================================
# Schedule.from_expr: hostile strings (the message quotes the expression that was refused)

EXPRESSION_CASES = [  # (id, alpha, sigma, fragments)
    ("audit-hang-35-chars", "1", AUDIT_HANG, ["sigma expression", "degree 64", "limit 32", "docs/limits.md"]),
    ("tower-in-alpha", "exp(-((1+t)**64+1)**64)", "t", ["alpha expression", "degree 64"]),
    ("tower-4", "1", "((((1+t)**8)**8)**8)**8", ["degree 64"]),
    ("tower-under-log", "1", "log(((1+t)**8+1)**8)", ["degree 64"]),
    ("tower-under-log-log", "1", "log(log(((1+t)**8+1)**8))", ["degree 64"]),
    ("dense-power-of-sum", "1", "(1+t+t**2+t**3+t**4+t**5+t**6+t**7+t**8)**64", ["degree 512"]),
    ("product-of-powers", "1", "1+(t/3+2)**16*(t/7+1)**16*(t/5+3)**16", ["degree 48"]),
    ("degree-33", "1", "(1+t)**33", ["degree 33", "exp(k*log(1 + t))"]),
    ("sparse-high-degree", "1", "t**64+t**63", ["degree 64"]),
    ("power-of-t-product", "1", "t*t*t*t*t*t*t*t*t*t*(1+t)**30", ["degree 40"]),
    ("exp-exp-exp-100", GOOD_ALPHA, "exp(exp(exp(100)))*t", ["applies exp()", "exceeds the float64 range"]),
    ("exp-exp-1e10", GOOD_ALPHA, "t*exp(exp(exp(1e10)))", ["exceeds the float64 range"]),
    ("sin-of-huge", GOOD_ALPHA, "t + sin(1e300*1e300)", ["applies sin()", "float64 range"]),
    ("exp-of-exp-800", GOOD_ALPHA, "t + sin(exp(exp(800)))", ["applies exp()", "float64 range"]),
    ("tanh-of-huge", GOOD_ALPHA, "t*tanh(exp(1e300))", ["applies tanh()"]),
    ("sigmoid-of-huge", GOOD_ALPHA, "t*sigmoid(-exp(1000))", ["applies sigmoid()"]),
    ("huge-plus-undefined", GOOD_ALPHA, "t*exp(exp(exp(100)) + acos(2))", ["exceeds the float64 range"]),
    ("constant-overflow-float64", "1", "t*exp(800)", ["inf"]),
    ("g2-overflow", "1", "t*exp(700)", ["g^2(t)", "inf"]),
    ("g2-overflow-1e300", "1", "1e300*t", ["g^2(t)", "inf", "1e300*t"]),
    ("nan-inside", "sqrt(t - 0.5)", GOOD_SIGMA, ["alpha(t) = 'sqrt(t - 0.5)'", "nan"]),
    ("log-negative", "1", "log(t - 2)", ["sigma(t) = 'log(t - 2)'", "nan"]),
    ("zero-alpha", "0*t", GOOD_SIGMA, ["alpha(t) = '0*t'", "finite and positive"]),
    ("negative-sigma", GOOD_ALPHA, "-t", ["sigma(t) = '-t'"]),
    ("alpha-underflow", "exp(-1000*t)", GOOD_SIGMA, ["alpha(t) = 'exp(-1000*t)'", "0.0"]),
    ("increasing-snr", "1", "exp(-t)", ["strictly decreasing"]),
    ("constant-snr", "2", "3", ["strictly decreasing", "dlam/dt = 0"]),
    ("big-integer-literal", "1", "t*2**4000", ["exponent 4000"]),
    ("import", "__import__('os').system('true')", GOOD_SIGMA, ["not allowed"]),
    ("lambda", GOOD_ALPHA, "lambda: t", ["lambdas are not allowed"]),
    ("attribute", "t.real", GOOD_SIGMA, ["write exp(t)"]),
    ("caret", GOOD_ALPHA, "t^2", ["use ** for powers"]),
    ("non-finite-literal", GOOD_ALPHA, "1e999*t", ["non-finite literal inf"]),
    ("unknown-name-nan", GOOD_ALPHA, "nan*t", ["unknown name 'nan'"]),
    ("unknown-name-inf", GOOD_ALPHA, "inf", ["unknown name 'inf'"]),
    ("nul-byte", GOOD_ALPHA, "t\x00", ["cannot parse"]),
    ("statement", GOOD_ALPHA, "t; import os", ["cannot parse"]),
    ("exponent-65", GOOD_ALPHA, "t**65", ["exponent 65"]),
    ("power-tower-literal", GOOD_ALPHA, "t*9**9**9", ["exponent 387420489"]),
    ("deep-nesting", GOOD_ALPHA, "sqrt(" * 61 + "t" + ")" * 61, ["nested deeper than 60"]),
    ("too-long", GOOD_ALPHA, "t+" * 600 + "t", ["characters", "limit 1000"]),
    ("empty", "", GOOD_SIGMA, ["empty"]),
    ("complex", GOOD_ALPHA, "t**sqrt(-1)", ["non-real exponent"]),
    ("complex-constant", GOOD_ALPHA, "t*acos(2)", ["not a finite real number"]),
    ("complex-constant-squared", "1", "((acos(709))**2)**32", ["sigma expression", "not a finite real number"]),
    ("complex-constant-power", "(asin(709))**32", "t", ["alpha expression", "not a finite real number"]),
]


@pytest.mark.parametrize("alpha, sigma, fragments", [c[1:] for c in EXPRESSION_CASES],
                         ids=[c[0] for c in EXPRESSION_CASES])
def test_from_expr_hostile_strings(alpha, sigma, fragments):
    message = expect_error(lambda: ds.Schedule.from_expr(alpha=alpha, sigma=sigma), *fragments)
    bad = sigma if alpha in (GOOD_ALPHA, "1") and sigma not in (GOOD_SIGMA,) else alpha
    # the message quotes the refused expression (or says which rule a string of that size broke)
    assert bad[:20] in message or repr(bad)[1:21] in message or any(k in message for k in ("nested deeper", "characters", "empty")), message


ACCEPTED_EXPRESSIONS = [  # hostile-looking but valid: a working, finite schedule
    ("degree-32", "1", "exp(1e-12*(t/3+2)**32) + t"),
    ("monomial-64", "1", "t*exp(t**64)"),
    ("fullwidth-t-is-t", GOOD_ALPHA, "\uff54"),  # NFKC: Python reads it as t
    ("parentheses-are-not-nesting", GOOD_ALPHA, "(" * 61 + "t" + ")" * 61),
    ("nested-power-64-of-monomial", "exp(-t**64)", "t"),
    ("tiny-perturbation", "1", "exp(1e-30*(1+t/1000)**32)*t"),
    ("negative-constant-factor-ok", "1", "-tan(3)*t"),
    ("huge-exact-cancels", "1", "t*(2**64)**8/(2**64)**8"),
    ("constant-within-float64", "1", "t*exp(300)"),
    ("even-power-of-negative-base", "(t - 2)**2/4", "t"),
    ("vp-degree-3", "exp(-t**3 - t/20)", "sqrt(1 - exp(-2*t**3 - t/10))"),
]


@pytest.mark.parametrize("alpha, sigma", [c[1:] for c in ACCEPTED_EXPRESSIONS], ids=[c[0] for c in ACCEPTED_EXPRESSIONS])
def test_from_expr_hostile_looking_but_valid(alpha, sigma):
    _finite_schedule(expect_value(lambda: ds.Schedule.from_expr(alpha=alpha, sigma=sigma)))


FROM_EXPR_KEYWORD_CASES = [  # (id, kwargs, fragments)
    ("t_min-nan", {"t_min": math.nan}, ["t_min=nan"]),
    ("t_max-inf", {"t_max": math.inf}, ["t_max=inf"]),
    ("t_min-negative", {"t_min": -1.0}, ["t_min=-1.0"]),
    ("t_max-str", {"t_max": "1"}, ["t_max must be a real number", "str '1'"]),
    ("t_min-bool", {"t_min": True}, ["t_min must be a real number", "bool True"]),
    ("t_max-np-nan", {"t_max": np.float64("nan")}, ["t_max=nan"]),
    ("t_max-array", {"t_max": np.array([1.0])}, ["t_max must be a real number", "[1.0]"]),
    ("domain-infinite", {"domain": (0.0, math.inf)}, ["domain", "inf"]),
    ("domain-nan", {"domain": (math.nan, 1.0)}, ["domain", "nan"]),
    ("domain-str", {"domain": "01"}, ["domain must be a pair", "'01'"]),
    ("domain-triple", {"domain": (0.0, 1.0, 2.0)}, ["domain must be a pair", "(0.0, 1.0, 2.0)"]),
    ("domain-reversed", {"domain": (1.0, 0.0)}, ["domain"]),
    ("domain-not-covering", {"domain": (0.5, 1.0)}, ["[t_min, t_max]", "domain [0.5, 1.0]"]),
    ("domain-np-array", {"domain": np.array([0.5, 1.0])}, ["[t_min, t_max]", "[0.5, 1.0]"]),
    ("domain-bools", {"domain": (False, True)}, ["domain must be a pair"]),
    ("constants-nan", {"constants": {"k": math.nan}}, ["constant 'k'", "nan"]),
    ("constants-inf", {"constants": {"k": math.inf}}, ["constant 'k'", "inf"]),
    ("constants-str", {"constants": {"k": "1"}}, ["constant 'k'", "str"]),
    ("constants-bool", {"constants": {"k": True}}, ["constant 'k'", "bool"]),
    ("constants-reserved", {"constants": {"exp": 1.0}}, ["constant name 'exp'"]),
    ("constants-non-identifier", {"constants": {"1k": 1.0}}, ["constant name '1k'"]),
    ("constants-list", {"constants": [("k", 1.0)]}, ["constants must be a dict", "list"]),
    ("constants-str-whole", {"constants": "k=1"}, ["constants must be a dict", "'k=1'"]),
    ("name-int", {"name": 3}, ["name must be a string", "int 3"]),
]


@pytest.mark.parametrize("kwargs, fragments", [c[1:] for c in FROM_EXPR_KEYWORD_CASES],
                         ids=[c[0] for c in FROM_EXPR_KEYWORD_CASES])
def test_from_expr_bad_keywords(kwargs, fragments):
    alpha, sigma = ("exp(-k*t)", "sqrt(1 - exp(-2*k*t))") if "constants" in kwargs else (GOOD_ALPHA, GOOD_SIGMA)
    expect_error(lambda: ds.Schedule.from_expr(alpha=alpha, sigma=sigma, **kwargs), *fragments)


@pytest.mark.parametrize("value", [None, 1.0, b"exp(-t)", ["exp(-t)"], {"t": 1}, np.str_("exp(-t)")],
                         ids=["None", "float", "bytes", "list", "dict", "np-str"])
def test_from_expr_not_a_string(value):
    if isinstance(value, np.str_):  # a str subclass: accepted
        _finite_schedule(expect_value(lambda: ds.Schedule.from_expr(alpha=value, sigma=GOOD_SIGMA)))
    else:
        expect_error(lambda: ds.Schedule.from_expr(alpha=value, sigma=GOOD_SIGMA), "must be a string")


# ================================================================================================================
# get_schedule with parameters

BAD_NUMBERS = [("nan", math.nan, "nan"), ("inf", math.inf, "inf"), ("negative", -1.0, "-1.0"), ("zero", 0, "0"),
               ("str", "1.5", "'1.5'"), ("bool", True, "True"), ("None", None, "None"), ("list", [1.0], "[1.0]"),
               ("np-nan", np.float64("nan"), "nan"), ("np-negative", np.float32(-2.0), "-2.0")]
CATALOG_PARAMS = [("vp-linear", "beta_min"), ("vp-linear", "beta_max"), ("ve", "sigma_min"), ("ve", "sigma_max"),
                  ("edm", "sigma_min"), ("edm", "sigma_max"), ("vp-cosine", "s")]


@pytest.mark.parametrize("kind, param", CATALOG_PARAMS, ids=[f"{k}-{p}" for k, p in CATALOG_PARAMS])
@pytest.mark.parametrize("label, value, shown", BAD_NUMBERS, ids=[b[0] for b in BAD_NUMBERS])
def test_catalog_parameter_not_a_positive_finite_number(kind, param, label, value, shown):
    expect_error(lambda: ds.get_schedule(kind, **{param: value}), param, shown)


SCHEDULE_CASES = [  # (id, name, params, fragments)
    ("vp-linear-order", "vp-linear", {"beta_min": 5.0, "beta_max": 1.0}, ["beta_max > beta_min"]),
    ("ve-order", "ve", {"sigma_min": 10.0, "sigma_max": 1.0}, ["sigma_max > sigma_min"]),
    ("edm-order", "edm", {"sigma_min": 80.0, "sigma_max": 0.002}, ["sigma_max > sigma_min"]),
    ("cosine-t_max-above-1", "vp-cosine", {"t_max": 1.5}, ["t_max=1.5"]),
    ("cosine-t_max-str", "vp-cosine", {"t_max": "0.9"}, ["t_max must be a real number", "'0.9'"]),
    ("cosine-t_max-nan", "vp-cosine", {"t_max": math.nan}, ["t_max=nan"]),
    ("ou-t_max-zero", "ou", {"t_max": 0.0}, ["t_max must be a positive finite number, got 0.0"]),
    ("ou-t_max-inf", "ou", {"t_max": math.inf}, ["t_max", "inf"]),
    ("flow-t_max-beyond", "flow", {"t_max": 1.5}, ["t_max", "1.5"]),
    ("flow-t_min-negative", "flow", {"t_min": -0.1}, ["t_min=-0.1"]),
    ("vp-linear-range-inverted", "vp-linear", {"t_min": 0.9, "t_max": 0.5}, ["t_min=0.9, t_max=0.5"]),
    ("discrete-n-float", "discrete", {"n": 10.5}, ["n must be an integer", "10.5"]),
    ("discrete-n-str", "discrete", {"n": "1000"}, ["n must be an integer", "'1000'"]),
    ("discrete-n-huge", "discrete", {"n": 10**12}, ["n = 1000000000000", f"{MAX_BETAS}"]),
    ("discrete-n-one", "discrete", {"n": 1}, ["needs at least 2 betas, got 1"]),
    ("discrete-n-negative", "discrete", {"n": -5}, ["needs at least 2 betas, got 0"]),
    ("discrete-beta_end-1", "discrete", {"beta_end": 1.0}, ["beta_end = 1.0", "every beta must lie in (0, 1)"]),
    ("discrete-beta_start-nan", "discrete", {"beta_start": math.nan}, ["beta_start", "nan"]),
    ("discrete-beta_start-zero", "discrete", {"beta_start": 0.0}, ["beta_start", "0.0"]),
    ("unknown-keyword", "vp-linear", {"beta_mx": 3}, ["beta_mx", "'vp-linear'"]),
    ("unknown-keyword-np", "ve", {"foo": np.float64(1.0)}, ["foo", "1.0"]),
]


@pytest.mark.parametrize("name, params, fragments", [c[1:] for c in SCHEDULE_CASES], ids=[c[0] for c in SCHEDULE_CASES])
def test_get_schedule_bad_parameters(name, params, fragments):
    expect_error(lambda: ds.get_schedule(name, **params), *fragments)


@pytest.mark.parametrize("name", [None, 3, "VP-LINEAR", "vp_linear", "", ["vp-linear"]],
                         ids=["None", "int", "upper", "underscore", "empty", "list"])
def test_get_schedule_unknown_name(name):
    expect_error(lambda: ds.get_schedule(name), "unknown schedule", "Schedule.from_expr")


# ================================================================================================================
# Schedule.discrete

DISCRETE_CASES = [  # (id, betas, fragments)
    ("strings", ["a", "b"], ["betas must be a real number", "'a'"]),
    ("numeric-strings", np.array(["0.1", "0.2"]), ["betas must be a real number", "dtype <U3"]),
    ("bools", np.array([True, True]), ["betas must be", "dtype bool"]),
    ("complex", np.array([0.1 + 0j, 0.2]), ["betas must be", "complex"]),
    ("2-D", np.full((2, 3), 0.1), ["betas must be a 1-D array", "(2, 3)"]),
    ("empty", [], ["needs at least 2 betas, got 0"]),
    ("one", [0.1], ["needs at least 2 betas, got 1"]),
    ("scalar", 0.1, ["needs at least 2 betas, got 1"]),
    ("nan", [0.1, math.nan], ["betas contains NaN"]),
    ("inf", [0.1, math.inf], ["betas[1] = inf", "(0, 1)"]),
    ("zero", [0.0, 0.1], ["betas[0] = 0.0"]),
    ("one-value", [0.1, 1.0], ["betas[1] = 1.0"]),
    ("negative", [0.1, -0.1], ["betas[1] = -0.1"]),
    ("too-small-to-count", [0.5, 1e-300, 0.1], ["betas[1] = 1e-300", "float64"]),
    ("ragged", [[0.1], [0.1, 0.2]], ["betas must be a real number"]),
    ("object-none", np.array([0.1, None], dtype=object), ["betas contains NaN"]),
    ("dict", {"a": 0.1}, ["betas must be a real number", "dict"]),
    ("huge-int", [10**400, 1], ["betas must be a real number"]),
    ("too-many", np.full(MAX_BETAS + 1, 1e-4), [f"at most {MAX_BETAS} betas", f"{MAX_BETAS + 1}"]),
]


@pytest.mark.parametrize("betas, fragments", [c[1:] for c in DISCRETE_CASES], ids=[c[0] for c in DISCRETE_CASES])
def test_discrete_bad_betas(betas, fragments):
    expect_error(lambda: ds.Schedule.discrete(betas), *fragments)


def test_discrete_name_must_be_a_string():
    expect_error(lambda: ds.Schedule.discrete(np.linspace(1e-4, 0.02, 10), name=5), "name must be a string", "int 5")


def test_discrete_accepts_lists_ints_float32():
    for betas in ([0.1, 0.2, 0.3], np.array([0.1, 0.2], dtype=np.float32), np.linspace(1e-4, 0.05, 1000)):
        s = expect_value(lambda: ds.Schedule.discrete(betas))
        _valid_grid(s, ds.time_grid(s, 10), 10)


# ================================================================================================================
# time_grid: every spacing and keyword

VP = ds.get_schedule("vp-linear")
EDM = ds.get_schedule("edm")
FLOW1 = ds.get_schedule("flow", t_max=1.0)
SPACINGS = ["time", "logsnr", "karras", "quadratic"]

STEPS_CASES = [  # (id, steps, fragments)
    ("zero", 0, ["steps must be >= 1, got 0"]),
    ("negative", -3, ["steps must be >= 1, got -3"]),
    ("2**40", 2**40, ["steps = 1099511627776", f"limit {MAX_STEPS}", "8 TiB", f"steps <= {MAX_STEPS}"]),
    ("above-bound", MAX_STEPS + 1, [f"steps = {MAX_STEPS + 1}", f"limit {MAX_STEPS}"]),
    ("np-int64-huge", np.int64(2**40), ["steps = 1099511627776"]),
    ("float", 2.5, ["steps must be a positive integer", "float 2.5"]),
    ("np-float", np.float64(3.0), ["steps must be a positive integer", "3.0"]),
    ("str", "10", ["steps must be a positive integer", "str '10'"]),
    ("None", None, ["steps must be a positive integer", "None"]),
    ("bool", True, ["steps must be a positive integer", "bool True"]),
    ("np-bool", np.bool_(True), ["steps must be a positive integer", "True"]),
]


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("steps, fragments", [c[1:] for c in STEPS_CASES], ids=[c[0] for c in STEPS_CASES])
def test_time_grid_bad_steps(spacing, steps, fragments):
    expect_error(lambda: ds.time_grid(VP, steps, spacing), *fragments)


END_POINT_CASES = [  # (id, kwargs, fragments)
    ("t_max-nan", {"t_max": math.nan}, ["t_max must be finite", "nan"]),
    ("t_min-inf", {"t_min": math.inf}, ["t_min must be finite", "inf"]),
    ("t_max-str", {"t_max": "1.0"}, ["t_max must be a real number", "'1.0'"]),
    ("t_min-bool", {"t_min": False}, ["t_min must be a real number", "bool False"]),
    ("t_max-list", {"t_max": [1.0]}, ["t_max must be a real number", "[1.0]"]),
    ("t_max-outside", {"t_max": 2.0}, ["grid end points", "t_max = 2.0", "outside the domain [0.0, 1.0]"]),
    ("t_min-outside", {"t_min": -0.5}, ["t_min = -0.5", "outside the domain"]),
    ("equal", {"t_max": 0.5, "t_min": 0.5}, ["need t_max > t_min, got t_max=0.5, t_min=0.5"]),
    ("inverted", {"t_max": 0.2, "t_min": 0.5}, ["need t_max > t_min"]),
    ("np-nan", {"t_min": np.float64("nan")}, ["t_min must be finite", "nan"]),
]


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("kwargs, fragments", [c[1:] for c in END_POINT_CASES], ids=[c[0] for c in END_POINT_CASES])
def test_time_grid_bad_end_points(spacing, kwargs, fragments):
    expect_error(lambda: ds.time_grid(VP, 10, spacing, **kwargs), *fragments)


OPTION_CASES = [  # (id, schedule, spacing, kwargs, fragments)
    ("rho-1e-3", VP, "karras", {"rho": 1e-3}, ["rho = 0.001", "[0.1, 1000]", "rho=7"]),
    ("rho-1e5", VP, "karras", {"rho": 1e5}, ["rho = 100000.0", "[0.1, 1000]", "logsnr"]),
    ("rho-zero", VP, "karras", {"rho": 0}, ["rho > 0", "rho=0.0"]),
    ("rho-negative", VP, "karras", {"rho": -1}, ["rho > 0, got rho=-1.0"]),
    ("rho-nan", VP, "karras", {"rho": math.nan}, ["rho must be finite", "nan"]),
    ("rho-inf", VP, "karras", {"rho": math.inf}, ["rho must be finite", "inf"]),
    ("rho-str", VP, "karras", {"rho": "7"}, ["rho must be a real number", "'7'"]),
    ("rho-bool", VP, "karras", {"rho": True}, ["rho must be a real number", "True"]),
    ("sigma_max-negative", EDM, "karras", {"sigma_max": -80.0}, ["sigma_max = -80.0", "outside the range"]),
    ("sigma_max-zero", EDM, "karras", {"sigma_max": 0.0}, ["sigma_max = 0.0"]),
    ("sigma_max-nan", EDM, "karras", {"sigma_max": math.nan}, ["sigma_max must be finite", "nan"]),
    ("sigma_max-inf", EDM, "karras", {"sigma_max": math.inf}, ["sigma_max must be finite"]),
    ("sigma_max-beyond", EDM, "karras", {"sigma_max": 1e10}, ["sigma_max = 10000000000.0", "outside the range",
                                                               "'edm'"]),
    ("sigma_max-str", EDM, "karras", {"sigma_max": "80"}, ["sigma_max must be a real number"]),
    ("sigma_min-negative", EDM, "karras", {"sigma_min": -1.0}, ["sigma_min = -1.0"]),
    ("sigma_min-nan", EDM, "karras", {"sigma_min": math.nan}, ["sigma_min must be finite"]),
    ("sigma-order", EDM, "karras", {"sigma_max": 1.0, "sigma_min": 10.0}, ["sigma_max > sigma_min",
                                                                           "sigma_max = 1", "sigma_min = 10"]),
    ("sigma_max-below-default-min", EDM, "karras", {"sigma_max": 1e-3}, ["sigma_max > sigma_min", "t_min"]),
    ("vp-sigma_max-beyond", VP, "karras", {"sigma_max": 1e6}, ["sigma_max = 1000000.0", "outside the range"]),
    ("lam_min-nan", VP, "logsnr", {"lam_min": math.nan}, ["lam_min must be finite", "nan"]),
    ("lam_min-minus-inf", VP, "logsnr", {"lam_min": -math.inf}, ["lam_min must be finite", "-inf"]),
    ("lam_min-above-end", VP, "logsnr", {"lam_min": 10.0}, ["lam_min = 10.0", "[lam(t_max), lam(t_min))"]),
    ("lam_min-below-start", VP, "logsnr", {"lam_min": -1e9}, ["lam_min = -1000000000.0", "lam(t_max)"]),
    ("lam_min-str", VP, "logsnr", {"lam_min": "-5"}, ["lam_min must be a real number"]),
    ("t_min-zero-logsnr", VP, "logsnr", {"t_min": 0.0}, ["t_min = 0.0", "lam(t_min) = inf", "t_min > 0.0"]),
    ("t_min-zero-karras", VP, "karras", {"t_min": 0.0}, ["t_min = 0.0", "sigma_min="]),
    ("edm-t_min-zero", EDM, "logsnr", {"t_min": 0.0}, ["t_min = 0.0"]),
    ("flow-t_max-1-logsnr", FLOW1, "logsnr", {}, ["lam(t_max = 1.0) is infinite", "lam_min="]),
    ("flow-t_max-1-karras", FLOW1, "karras", {}, ["lam(t_max = 1.0) is infinite", "sigma_max="]),
    ("unknown-option", VP, "karras", {"rh0": 5}, ["unknown option(s) ['rh0']", "'karras'"]),
    ("option-of-other-spacing", VP, "time", {"rho": 7.0}, ["unknown option(s) ['rho']", "'time'"]),
    ("lam_min-on-karras", VP, "karras", {"lam_min": -3.0}, ["unknown option(s) ['lam_min']"]),
    ("unknown-spacing", VP, "logsrn", {}, ["unknown spacing 'logsrn'"]),
]


@pytest.mark.parametrize("schedule, spacing, kwargs, fragments", [c[1:] for c in OPTION_CASES],
                         ids=[c[0] for c in OPTION_CASES])
def test_time_grid_bad_options(schedule, spacing, kwargs, fragments):
    expect_error(lambda: ds.time_grid(schedule, 12, spacing, **kwargs), *fragments)


EXPLICIT_CASES = [  # (id, grid, fragments)
    ("complex", np.array([1.0 + 1j, 0.5]), ["1-D array of real numbers", "dtype complex128"]),
    ("bools", np.array([True, False]), ["1-D array of real numbers"]),
    ("numeric-strings", ["1.0", "0.5"], ["1-D array of real numbers", "list"]),
    ("bytes", b"1.0 0.5", ["1-D array of real numbers", "bytes"]),
    ("datetime", np.array(["2020-01-02", "2020-01-01"], dtype="datetime64[D]"), ["1-D array of real numbers"]),
    ("ragged", [[1.0], [0.5, 0.1]], ["1-D array of real numbers"]),
    ("None-inside", [1.0, None], ["non-finite values at positions [1]"]),
    ("nan", [1.0, math.nan, 0.1], ["non-finite values at positions [1]"]),
    ("2-D", np.array([[1.0, 0.5]]), ["1-D with at least 2 times", "(1, 2)"]),
    ("increasing-np", np.array([0.1, 0.5]), ["strictly decreasing", "t[0] = 0.1 <= t[1] = 0.5"]),
    ("outside", np.array([2.0, 0.5]), ["spans [0.5, 2.0]", "outside the domain"]),
    ("too-close", np.array([0.5, 0.5 - 1e-17 * 0.5 + 0.0, 0.1]), ["strictly decreasing"]),
]


@pytest.mark.parametrize("grid, fragments", [c[1:] for c in EXPLICIT_CASES], ids=[c[0] for c in EXPLICIT_CASES])
def test_time_grid_bad_explicit_array(grid, fragments):
    expect_error(lambda: ds.time_grid(VP, None, grid), *fragments)


def test_time_grid_needs_a_schedule():
    expect_error(lambda: ds.time_grid("vp-linear", 10), "needs a Schedule as first argument, got str")


# ================================================================================================================
# targets.from_spec and the target constructors

SPEC_CASES = [  # (id, spec, fragments)
    ("duplicate-d", "gaussian:d=2,d=3", ["option 'd' is given twice", "d=2 and d=3"]),
    ("duplicate-seed", "gmm:d=2,seed=1,k=3,seed=1", ["option 'seed' is given twice"]),
    ("duplicate-spaced", "gaussian: d = 2 , d=2", ["option 'd' is given twice"]),
    ("empty-value", "gaussian:d=", ["'d='", "empty value"]),
    ("empty-key", "gaussian:=3", ["'=3'", "no name"]),
    ("no-equals", "gaussian:d", ["'d'", "must be key=value"]),
    ("inf", "gaussian:scale=inf", ["'scale=inf'", "finite number"]),
    ("nan", "gaussian:var=nan", ["'var=nan'", "finite number"]),
    ("overflow", "gaussian:scale=1e999", ["'scale=1e999'", "finite number", "got inf"]),
    ("minus-inf", "gaussian:scale=-Infinity", ["'scale=-Infinity'", "finite number"]),
    ("hex", "gaussian:d=0x10", ["'d=0x10'", "needs a number"]),
    ("underscore", "gaussian:d=5_000", ["'d=5_000'", "needs a number"]),
    ("fullwidth-digit", "gaussian:d=\uff15", ["needs a number"]),
    ("python-expr", "gaussian:d=2**10", ["'d=2**10'", "needs a number"]),
    ("too-long-number", "gaussian:d=" + "9" * 50, ["needs a number of at most 40 characters"]),
    ("d-float", "gaussian:d=1e3", ["target option d must be a positive integer, got 1000.0", "d=1000"]),
    ("d-zero", "gaussian:d=0", ["target option d must be a positive integer, got 0"]),
    ("d-huge", "gaussian:d=10000000", ["target option d", "<= 1048576", "10000000"]),
    ("k-huge", "gmm:d=1,k=100000", ["target option k", "<= 65536", "100000"]),
    ("k-times-d", "gmm:d=4096,k=8192", ["k * d", "33554432", "16777216"]),
    ("k-negative", "gmm:k=-1", ["target option k must be a positive integer, got -1"]),
    ("seed-negative", "gaussian:seed=-1", ["seed", "-1"]),
    ("seed-2**64", f"gaussian:seed={2**64}", ["seed", "below 2**64", str(2**64)]),
    ("seed-float", "gaussian:seed=1.5", ["seed", "1.5"]),
    ("var-zero", "gaussian:var=0", ["target option var must be positive, got 0"]),
    ("var-negative", "gmm:var=-0.05", ["var", "-0.05"]),
    ("unknown-option", "gaussian:d=4,k=2", ["unknown option(s) ['k']", "'gaussian'"]),
    ("unknown-kind", "gauss:d=2", ["unknown target kind 'gauss'"]),
    ("empty-kind", ":d=2", ["unknown target kind ''"]),
    ("no-colon", "gaussian", ["must look like 'gaussian:d=16'"]),
    ("empty", "", ["must look like"]),
    ("None", None, ["must look like", "None"]),
    ("int", 3, ["must look like", "got 3"]),
    ("bytes", b"gaussian:d=2", ["must look like", "b'gaussian:d=2'"]),
    ("second-colon", "gaussian:d=2:k=3", ["'d=2:k=3'", "needs a number"]),
]


@pytest.mark.parametrize("spec, fragments", [c[1:] for c in SPEC_CASES], ids=[c[0] for c in SPEC_CASES])
def test_from_spec_bad(spec, fragments):
    expect_error(lambda: ds.targets.from_spec(spec), *fragments)


@pytest.mark.parametrize("spec, dim", [("gaussian:", 8), ("gaussian: d = 3 ", 3), ("gaussian:d=2,,", 2),
                                       ("gmm:d=3,k=2,scale=-1.5,var=.5", 3), ("gaussian:d=+4,seed=0", 4),
                                       ("gaussian:d=2,scale=2E-3", 2)],
                         ids=["defaults", "spaces", "empty-items", "negative-scale", "plus-sign", "upper-E"])
def test_from_spec_valid_variants(spec, dim):
    tgt = expect_value(lambda: ds.targets.from_spec(spec))
    assert tgt.dim == dim and np.isfinite(tgt.mean()).all()


def test_from_spec_values_are_unchanged_for_existing_specs():
    """The strict grammar parses the documented specs to the same types (same targets bit for bit)."""
    a = ds.targets.from_spec("gmm:d=3,k=4,seed=1")
    assert a.means.shape == (4, 3) and a.components == 4
    b = ds.targets.from_spec("gaussian:d=8")
    assert b.dim == 8


CONSTRUCTOR_CASES = [  # (id, factory, fragments)
    ("gauss-str-mean", lambda: ds.targets.Gaussian(["a", "b"], [1.0, 1.0]), ["mean"]),
    ("gauss-nan-var", lambda: ds.targets.Gaussian([0.0], [math.nan]), ["variances contains NaN or inf"]),
    ("gauss-inf-mean", lambda: ds.targets.Gaussian([math.inf], [1.0]), ["means contains NaN or inf"]),
    ("gauss-negative-var", lambda: ds.targets.Gaussian([0.0, 1.0], -1.0), ["variances must be positive"]),
    ("gauss-shape", lambda: ds.targets.Gaussian([0.0, 0.0], [1.0, 1.0, 1.0]), ["(3,)", "(2,)"]),
    ("gauss-empty", lambda: ds.targets.Gaussian([], []), ["means"]),
    ("gmm-ragged-means", lambda: ds.targets.GaussianMixture([1, 1], [[0.0], [1.0, 2.0]], [1, 1]), ["means"]),
    ("gmm-str-weights", lambda: ds.targets.GaussianMixture("ab", [[0.0], [1.0]], [1, 1]), ["weights"]),
    ("gmm-inf-weight", lambda: ds.targets.GaussianMixture([math.inf, 1], [[0.0], [1.0]], [1, 1]), ["weights"]),
    ("gmm-zero-weight", lambda: ds.targets.GaussianMixture([0.0, 1], [[0.0], [1.0]], [1, 1]), ["weights"]),
    ("gmm-var-3-D", lambda: ds.targets.GaussianMixture([1, 1], [[0.0], [1.0]], np.ones((2, 1, 1))), ["variances"]),
    ("gmm-3-D-means", lambda: ds.targets.GaussianMixture([1, 1], np.zeros((2, 2, 2)), [1, 1]), ["means"]),
    ("full-not-pd", lambda: ds.targets.FullGaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]]),
     ["covariances[0] is not positive definite"]),
    ("full-asymmetric", lambda: ds.targets.FullGaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]]),
     ["covariances[0] is not symmetric"]),
    ("full-nan", lambda: ds.targets.FullGaussianMixture([1.0], [[0.0, 0.0]], [[[math.nan, 0], [0, 1.0]]]),
     ["covariances contains NaN or inf"]),
    ("full-shape", lambda: ds.targets.FullGaussianMixture([1.0], [[0.0, 0.0]], [[1.0, 0], [0, 1.0]]),
     ["covariances must have shape (1, 2, 2)"]),
    ("full-str", lambda: ds.targets.FullGaussianMixture([1.0], [[0.0, 0.0]], "ab"), ["covariances"]),
    pytest.param("gauss-complex-mean", lambda: ds.targets.Gaussian(np.array([1 + 1j, 0]), [1.0, 1.0]), ["mean"]),
    pytest.param("gauss-bool-mean", lambda: ds.targets.Gaussian(np.array([True, False]), [1.0, 1.0]), ["mean"]),
    pytest.param("gmm-complex-weights", lambda: ds.targets.GaussianMixture(np.array([1 + 0j, 1]), [[0.0], [1.0]],
                                                                            [1, 1]), ["weights"]),
    pytest.param("gmm-weights-overflow", lambda: ds.targets.GaussianMixture([1e308, 1e308], [[0.0], [1.0]], [1, 1]),
                 ["weights"]),
    pytest.param("full-complex-cov", lambda: ds.targets.FullGaussianMixture(
        [1.0], [[0.0, 0.0]], np.array([[[1.0, 0], [0, 1.0]]], dtype=complex)), ["covariances"]),
    pytest.param("gauss-None", lambda: ds.targets.Gaussian(None, None), ["mean", "None"]),
]


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning", "ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize("case_id, factory, fragments", CONSTRUCTOR_CASES,
                         ids=[c.values[0] if hasattr(c, "marks") else c[0] for c in CONSTRUCTOR_CASES])
def test_target_constructors_bad(case_id, factory, fragments):
    expect_error(factory, *fragments)


# ================================================================================================================
# Finding 1: hang in the schedule calculus -> bounded cost, documented limits

def test_audit_hang_string_is_refused_quickly():
    box = _run(lambda: ds.Schedule.from_expr(alpha="1", sigma=AUDIT_HANG))
    assert isinstance(box.get("error"), DiffsolveError) and "degree 64" in str(box["error"])
    assert box["seconds"] < 3.0


def test_symbolic_budget_gives_a_clear_error(monkeypatch):
    monkeypatch.setattr(calc, "SYMBOLIC_BUDGET_S", 0.0)
    expect_error(lambda: ds.Schedule.from_expr(alpha="exp(-t**2/3)", sigma="sqrt(1 - exp(-2*t**2/3))"),
                 "did not finish within 0 s", "alpha='exp(-t**2/3)'", "docs/limits.md")


def test_inverse_budget_falls_back_to_newton(monkeypatch):
    monkeypatch.setattr(calc, "INVERSE_BUDGET_S", 0.0)
    s = expect_value(lambda: ds.Schedule.from_expr(alpha="exp(-t**2 - t/7)", sigma="sqrt(1 - exp(-2*t**2 - 2*t/7))"))
    assert not s.has_closed_form_inverse
    _finite_schedule(s)


def test_inverse_search_still_finds_closed_forms():
    s = ds.Schedule.from_expr(alpha="exp(-t**2 - t/7)", sigma="sqrt(1 - exp(-2*t**2 - 2*t/7))")
    assert s.has_closed_form_inverse
    cancel = ds.Schedule.from_expr(alpha="1", sigma="exp((t+1)**2*t - t**3)")  # degree 3 as written, 2 expanded
    assert cancel.has_closed_form_inverse


def test_bounded_interrupts_a_runaway_computation():
    def forever():
        while True:
            sum(range(100))

    start = time.perf_counter()
    finished, value = calc.bounded(forever, 0.2)
    assert not finished and value is None and time.perf_counter() - start < 2.0
    assert calc.bounded(lambda: 42, 5.0) == (True, 42)
    with pytest.raises(KeyError):
        calc.bounded(lambda: {}["x"], 5.0)


def test_expansion_size_and_quadratic_guard():
    import sympy as sp

    t = calc.T
    assert calc.expansion_size((1 + t) ** 2) == (2, 3)
    deg, work = calc.expansion_size(((1 + t / 1000) ** 64 + 1) ** 64)
    assert deg == 4096 and work == 10**12
    start = time.perf_counter()
    assert calc.quadratic_inverse(sp.Integer(0), 10**-30 * ((1 + t / 1000) ** 64 + 1) ** 64, False) == []
    assert time.perf_counter() - start < 1.0


def test_limits_doc_states_the_bounds():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "limits.md").read_text(encoding="utf-8")
    for fragment in ("1,000,000", "−20", "0.1 ≤ rho ≤ 1000", "degree ≤ 32", "5 s", "2 s", "2²⁰"):
        assert fragment in text, fragment


# ================================================================================================================
# Findings 2-4: step bound, Karras / log-SNR parameters, the noise floor

def test_time_grid_2_to_40_steps_names_the_bound():
    message = expect_error(lambda: ds.time_grid(VP, 2**40), "steps = 1099511627776", f"{MAX_STEPS}", "8 TiB")
    assert "pass steps <=" in message


def test_max_steps_is_accepted():
    g = expect_value(lambda: ds.time_grid(VP, MAX_STEPS, "time"))
    _valid_grid(VP, g, MAX_STEPS)


@pytest.mark.parametrize("rho", [RHO_RANGE[0], 0.5, 1.0, 7.0, 100.0, RHO_RANGE[1]])
@pytest.mark.parametrize("schedule", [VP, EDM, ds.get_schedule("ve"), ds.get_schedule("discrete")],
                         ids=["vp", "edm", "ve", "discrete"])
def test_karras_whole_rho_range(schedule, rho):
    """Valid across the admissible range, in log space where the published formula would overflow."""
    g = expect_value(lambda: ds.time_grid(schedule, 40, "karras", rho=rho))
    _valid_grid(schedule, g, 40)
    inner = np.exp(-schedule.lam(g) / rho)
    if rho >= 1:
        np.testing.assert_allclose(np.diff(inner), np.diff(inner)[0], rtol=1e-6)


@pytest.mark.parametrize("rho", [0.1, 0.5, 7.0, 1000.0])
def test_karras_nodes_match_a_high_precision_reference(rho):
    """sigma_i = (smax^(1/rho) + i/N (smin^(1/rho) - smax^(1/rho)))^rho to ~1e-13, also where the published form
    would overflow (rho = 0.1: 80^10 and 0.002^10) and where it cancels (rho >= 1000)."""
    import mpmath as mp

    n = 30
    g = ds.time_grid(EDM, n, "karras", rho=rho, sigma_max=80.0, sigma_min=0.002)
    with mp.workdps(80):
        a, b = mp.mpf(80) ** (1 / mp.mpf(rho)), mp.mpf("0.002") ** (1 / mp.mpf(rho))
        ref = np.array([float((a + mp.mpf(i) / n * (b - a)) ** mp.mpf(rho)) for i in range(n + 1)])
    np.testing.assert_allclose(g, ref, rtol=2e-13)


def test_karras_explicit_sigmas_hit_their_ends():
    g = ds.time_grid(EDM, 18, "karras", sigma_max=50.0, sigma_min=0.01, rho=0.2)
    np.testing.assert_allclose([g[0], g[-1]], [50.0, 0.01], rtol=1e-13)


def test_negative_sigma_max_is_refused_not_a_complex_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expect_error(lambda: ds.time_grid(EDM, 10, "karras", sigma_max=-80.0), "sigma_max = -80.0")


@pytest.mark.parametrize("spacing, steps, below", [("logsnr", 20, 19), ("time", 20, 18), ("karras", 20, 19),
                                                   ("quadratic", 20, 14)])
def test_beta_max_1e4_grid_collapse_is_refused_with_fixes(spacing, steps, below):
    s = ds.get_schedule("vp-linear", beta_max=1e4)
    message = expect_error(lambda: ds.time_grid(s, steps, spacing), f"{below} of the {steps + 1} nodes",
                           f"lam = {LAM_FLOOR:g}", "t_max=0.0894", "explicit array")
    t_fix = float(message.split("t_max=")[1].split(" ")[0])
    g = ds.time_grid(s, steps, spacing, t_max=t_fix)
    _valid_grid(s, g, steps)
    assert np.all(s.lam(g[1:]) >= LAM_FLOOR)


def test_noise_floor_fixes_and_escape_hatch():
    s = ds.get_schedule("vp-linear", beta_max=1e4)
    g = ds.time_grid(s, 20, "logsnr", lam_min=LAM_FLOOR)
    assert g[0] == 1.0 and np.all(s.lam(g[1:]) >= LAM_FLOOR - 1e-9)
    explicit = np.linspace(1.0, 1e-3, 21)
    np.testing.assert_array_equal(ds.time_grid(s, None, explicit), explicit)  # explicit arrays: no floor


# ================================================================================================================
# Finding 5: the library's own end points overshoot the domain by one ulp

END_POINTS = ["default", "t_max=domain", "t_min=domain", "both=domain"]
STEP_COUNTS = [1, 7, 20, 1000]


def _ends(s, which):
    lo, hi = s.domain
    return {"default": {}, "t_max=domain": {"t_max": hi}, "t_min=domain": {"t_min": lo},
            "both=domain": {"t_max": hi, "t_min": lo}}[which]


DISCRETE_SCHEDULES = {
    "linspace-1e-4-0.5-100": lambda: ds.Schedule.discrete(np.linspace(1e-4, 0.5, 100)),
    "ddpm-linear-1000": lambda: ds.Schedule.discrete(np.linspace(1e-4, 0.02, 1000)),
    "two-betas": lambda: ds.Schedule.discrete([0.1, 0.9]),
    "cosine-like": lambda: ds.Schedule.discrete(np.clip(np.linspace(1e-3, 0.999, 50) ** 2, 1e-5, 0.999)),
}


@pytest.mark.parametrize("name", list(DISCRETE_SCHEDULES))
def test_discrete_every_end_point_n_spacing_combination(name):
    """All 64 combinations of end points x N x spacing give a valid grid pinned to the requested ends; at the clean
    end of the domain (t = 0, sigma = 0, lam = +inf) the lam-based spacings refuse with a message naming t_min."""
    s = DISCRETE_SCHEDULES[name]()
    assert s.domain == (0.0, 1.0) and s.t_min == 1.0 / s.params["N"]
    failures = []
    for which, n, spacing in itertools.product(END_POINTS, STEP_COUNTS, SPACINGS):
        kw = _ends(s, which)
        if "t_min" in kw and spacing in ("logsnr", "karras"):
            assert "t_min" in expect_error(lambda: ds.time_grid(s, n, spacing, **kw))
            kw["t_min"] = s.t_min  # the last table node instead
        try:
            g = ds.time_grid(s, n, spacing, **kw)
            _valid_grid(s, g, n)
            assert g[0] == kw.get("t_max", s.t_max) and g[-1] == kw.get("t_min", s.t_min)
        except (DiffsolveError, AssertionError) as exc:
            failures.append((which, n, spacing, str(exc)[:100]))
    assert not failures, failures


@pytest.mark.parametrize("name", ["vp-linear", "vp-cosine", "ve", "edm", "flow", "ou"])
def test_catalog_every_end_point_n_spacing_combination(name):
    """Valid grids, except where the domain's end has lam = +-inf and a spacing needs a finite one: then a
    DiffsolveError naming that end point."""
    s = ds.get_schedule(name)
    lam_lo, lam_hi = s.lam_range
    for which, n, spacing in itertools.product(END_POINTS, STEP_COUNTS, SPACINGS):
        kw = _ends(s, which)
        infinite_end = (("t_min" in kw and not math.isfinite(lam_hi)) or ("t_max" in kw and not math.isfinite(lam_lo)))
        if infinite_end and spacing in ("logsnr", "karras"):
            message = expect_error(lambda: ds.time_grid(s, n, spacing, **kw))
            assert "t_min" in message or "t_max" in message, message
            continue
        box = _run(lambda: ds.time_grid(s, n, spacing, **kw))
        if "error" in box:  # only the documented noise floor may refuse (OU and flow reach lam << -20 at the domain's end)
            assert isinstance(box["error"], DiffsolveError) and "below lam = -20" in str(box["error"]), box["error"]
            continue
        _valid_grid(s, box["value"], n)


# ================================================================================================================
# Finding 7: values are printed plainly

def test_messages_print_numpy_values_plainly():
    expect_error(lambda: ds.get_schedule("vp-linear", beta_min=np.float64(-1.0)), "got -1.0")
    expect_error(lambda: VP.lam(np.float64(2.0)), "t = 2.0 is outside")
    expect_error(lambda: VP.t_of_lam(np.float64(-1e3)), "lam = -1000.0 is outside")
    expect_error(lambda: ds.time_grid(VP, None, np.array([0.5, 0.7])), "t[0] = 0.5 <= t[1] = 0.7")
    expect_error(lambda: ds.Schedule.discrete(np.array([0.5, 2.0])), "betas[1] = 2.0")
    expect_error(lambda: ds.Schedule.from_expr(alpha="-exp(-t)", sigma=GOOD_SIGMA), "is -0.999999999 at t = 1e-09")
