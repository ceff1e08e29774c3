"""Property-based fuzzing (hypothesis) of the schedule parser and of time grids (docs/limits.md).

* ``Schedule.from_expr`` on expression strings built from a small grammar plus random junk: either a schedule
  whose lam, alpha, sigma, dlam/dt, f and g^2 are finite inside its range, or a DiffsolveError; never another
  exception, never longer than the documented budget.
* ``time_grid`` on random catalog schedules, step counts, spacings, options and end points: either a strictly
  decreasing finite grid inside the schedule's domain (pinned to t_max / t_min unless an option moves an end) or a
  DiffsolveError naming a parameter.

Each property is time-boxed (``max_examples``, ``deadline``) to stay well under 20 s on a loaded 2-core machine.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diffsolve as ds
from diffsolve.errors import DiffsolveError
from diffsolve.grids import LAM_FLOOR, MAX_STEPS
from diffsolve.symbolic import schedule as calc

# ------------------------------------------------------------------------------------------- the grammar
FUNCTIONS = ["exp", "log", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh",
             "acosh", "atanh", "expm1", "log1p", "sigmoid"]
NUMBERS = ["0", "1", "2", "3", "7", "0.5", "1e-3", "1e-30", "1e30", "1e300", "199/40", "pi", "e", "64", "1000"]
EXPONENTS = ["2", "3", "-1", "-2", "1/2", "(1/3)", "8", "16", "33", "64", "0.5", "t"]
JUNK = ["__import__('os')", "lambda: 0", "t[0]", "t^2", "t.real", "'s'", "1/0", "1e999", "exp", ")", "((", "t t",
        "-" * 70 + "t", "t+" * 600 + "1", "9**9**9", "x", "exp(t, t)", "", "   ", "t ** 1000", "(-8)**(1/3)"]

atoms = st.sampled_from(["t", "t", "t"] + NUMBERS)


def _extend(children):
    return st.one_of(
        st.builds(lambda a, b, op: f"({a}){op}({b})", children, children, st.sampled_from(["+", "-", "*", "/"])),
        st.builds(lambda a, k: f"({a})**{k}", children, st.sampled_from(EXPONENTS)),
        st.builds(lambda f, a: f"{f}({a})", st.sampled_from(FUNCTIONS), children),
        st.builds(lambda a: f"-({a})", children),
    )


grammar = st.recursive(atoms, _extend, max_leaves=10)
# realistic shapes: VP-like alpha = exp(-poly), sigma = sqrt(1 - alpha^2), and flow/EDM-like pairs
poly = st.builds(lambda a, b, k: f"{a}*t**{k} + {b}*t", st.sampled_from(["5", "0.5", "1e-3", "20", "1e4"]),
                 st.sampled_from(["0.05", "1", "0"]), st.sampled_from(["1", "2", "3", "33"]))
vp_pairs = poly.map(lambda p: (f"exp(-({p}))", f"sqrt(1 - exp(-2*({p})))"))
junk = st.one_of(st.sampled_from(JUNK), st.text(alphabet="t0123456789.+-*/()e ^,_[]'ablmnopqrsx", max_size=40))
expression = st.one_of(grammar, grammar, junk)
pairs = st.one_of(st.tuples(expression, expression), st.tuples(st.just("1"), grammar), vp_pairs)

BUDGET_S = calc.SYMBOLIC_BUDGET_S + calc.INVERSE_BUDGET_S + 3.0  # + the numeric checks on a loaded machine


def _probe_times(s):
    lo, hi = s.t_min, s.t_max
    t = np.unique(np.concatenate([np.linspace(lo, hi, 41), lo + (hi - lo) * np.geomspace(1e-6, 1, 20)]))
    return t[(t > s.domain[0]) & (t < s.domain[1])]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
          derandomize=True)
@given(pair=pairs)
def test_from_expr_gives_a_finite_schedule_or_a_diffsolve_error(pair):
    alpha, sigma = pair
    start = time.perf_counter()
    try:
        s = ds.Schedule.from_expr(alpha=alpha, sigma=sigma)
    except DiffsolveError as exc:
        assert str(exc)
    else:
        t = _probe_times(s)
        with np.errstate(all="ignore"):
            for method in ("lam", "alpha", "sigma", "dlam_dt", "f", "g2"):
                values = getattr(s, method)(t)
                assert np.isfinite(values).all(), (alpha, sigma, method)
            assert np.all(s.dlam_dt(t) < 0)
            back = s.t_of_lam(s.lam(t))
        assert np.isfinite(back).all() and np.all((back >= s.domain[0]) & (back <= s.domain[1]))
    elapsed = time.perf_counter() - start
    assert elapsed < BUDGET_S, (alpha, sigma, elapsed)


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(text=st.one_of(grammar, junk, st.text(max_size=60)))
def test_screen_never_raises_anything_but_a_diffsolve_error(text):
    """The AST screen alone (cheap): many more strings than the full derivation can afford."""
    start = time.perf_counter()
    try:
        calc.screen_expression(text)
    except DiffsolveError as exc:
        assert "docs/limits.md" in str(exc)
    assert time.perf_counter() - start < 0.5


# ------------------------------------------------------------------------------------------- grids
PARAMETERS = ("steps", "t_max", "t_min", "rho", "lam_min", "sigma_max", "sigma_min", "spacing")


@st.composite
def schedules(draw):
    name = draw(st.sampled_from(["vp-linear", "vp-cosine", "ve", "edm", "flow", "ou", "discrete"]))
    params = {}
    if name == "vp-linear" and draw(st.booleans()):
        params = {"beta_min": draw(st.sampled_from([0.01, 0.1, 1.0])),
                  "beta_max": draw(st.sampled_from([5.0, 20.0, 200.0, 1e4]))}
    elif name == "ve" and draw(st.booleans()):
        params = {"sigma_min": draw(st.sampled_from([1e-3, 0.01])), "sigma_max": draw(st.sampled_from([1.0, 50.0, 1e3]))}
    elif name == "flow" and draw(st.booleans()):
        params = {"t_max": draw(st.sampled_from([0.9, 0.999, 1.0]))}
    elif name == "discrete" and draw(st.booleans()):
        n = draw(st.sampled_from([2, 10, 100, 1000]))
        hi = draw(st.sampled_from([0.02, 0.5, 0.999]))
        return ds.Schedule.discrete(np.linspace(1e-4, hi, n))
    return ds.get_schedule(name, **params)


def _end(draw, s, which):
    lo, hi = s.domain
    choice = draw(st.sampled_from(["default", "domain", "inside", "outside", "nan"]))
    if choice == "default":
        return None
    if choice == "domain":
        return lo if which == "t_min" else hi
    if choice == "inside":
        return float(lo + (hi - lo) * draw(st.floats(0, 1)))
    if choice == "outside":
        return float(hi + 1.0) if which == "t_max" else float(lo - 1.0)
    return math.nan


@st.composite
def grid_requests(draw):
    s = draw(schedules())
    spacing = draw(st.sampled_from(["time", "logsnr", "karras", "quadratic"]))
    steps = draw(st.one_of(st.integers(1, 64), st.sampled_from([1000, MAX_STEPS + 1, 0, -1])))
    kw = {"t_max": _end(draw, s, "t_max"), "t_min": _end(draw, s, "t_min")}
    if spacing == "karras":
        if draw(st.booleans()):
            kw["rho"] = draw(st.sampled_from([1e-3, 0.1, 0.5, 1.0, 3.0, 7.0, 100.0, 1e4, -1.0, math.inf, math.nan]))
        for key in ("sigma_max", "sigma_min"):
            if draw(st.integers(0, 3)) == 0:
                kw[key] = draw(st.sampled_from([1e-6, 2e-3, 0.1, 1.0, 80.0, 1e3, 1e10, -1.0, 0.0, math.nan]))
    if spacing == "logsnr" and draw(st.booleans()):
        kw["lam_min"] = draw(st.sampled_from([-30.0, -20.0, -5.0, -2.5, 0.0, 3.0, 50.0, -math.inf, math.nan]))
    return s, steps, spacing, {k: v for k, v in kw.items() if v is not None}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(request=grid_requests())
def test_time_grid_is_valid_or_a_diffsolve_error_naming_a_parameter(request):
    s, steps, spacing, kw = request
    start = time.perf_counter()
    try:
        g = ds.time_grid(s, steps, spacing, **kw)
    except DiffsolveError as exc:
        message = str(exc)
        assert any(p in message for p in PARAMETERS), message
        assert "np.float64" not in message, message
    else:
        lo, hi = s.domain
        assert g.shape == (steps + 1,) and g.dtype == np.float64
        assert np.isfinite(g).all() and np.all(np.diff(g) < 0)
        assert lo <= g[-1] and g[0] <= hi
        if "sigma_max" not in kw:
            assert g[0] == kw.get("t_max", s.t_max)
        if "sigma_min" not in kw:
            assert g[-1] == kw.get("t_min", s.t_min)
        with np.errstate(all="ignore"):
            assert np.all(s.lam(g[1:]) >= LAM_FLOOR)
    assert time.perf_counter() - start < 5.0


def test_fuzz_budgets_are_the_documented_ones():
    """docs/limits.md quotes these numbers."""
    assert (calc.SYMBOLIC_BUDGET_S, calc.INVERSE_BUDGET_S, calc.MAX_POLY_DEGREE) == (5.0, 2.0, 32)
    assert (MAX_STEPS, LAM_FLOOR) == (1_000_000, -20.0)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
