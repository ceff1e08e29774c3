"""Step grids: decreasing times t_0 = t_max (noisiest) ... t_N = t_min (cleanest)
(docs/algorithms/exponential_integrators.md §6; limits and their reasons: docs/limits.md).

Every end point the library computes itself (lam(t_max), lam(t_min), the default Karras sigmas) is clamped into
the schedule's log-SNR range before it is inverted, so that a one-ulp round-off overshoot never refuses a valid
request; the user's own options are checked, not clamped.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import DiffsolveError
from .errors import plain as _plain
from .schedules import Schedule

__all__ = ["time_grid", "validate_grid", "SPACINGS", "MAX_STEPS", "LAM_FLOOR", "RHO_RANGE"]

MAX_STEPS = 1_000_000  # steps of a generated grid (8 MB of times; samplers use <= 1000)
LAM_FLOOR = -20.0  # alpha/sigma = 2.1e-9: below it x_t is pure noise to float64 precision
RHO_RANGE = (0.1, 1000.0)  # Karras rho: below, all nodes but the last crowd at sigma_max; above, log-uniform


def _pin(t, t_max, t_min):
    t[0], t[-1] = t_max, t_min  # exact end points whatever the rounding of the formula
    return t


def _time(schedule, n, t_max, t_min, **_):
    return _pin(t_max + np.arange(n + 1) / n * (t_min - t_max), t_max, t_min)


def _real(value, name: str, what: str) -> float:
    """A finite real number for option ``name`` (a DiffsolveError naming it otherwise)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DiffsolveError(f"{what} {name} must be a real number, got {type(value).__name__} {_plain(value)}")
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v):
        raise DiffsolveError(f"{what} {name} must be finite, got {name}={_plain(value)}; pass a finite number")
    return v


def _lam_at(schedule, t):
    with np.errstate(all="ignore"):
        return float(np.asarray(schedule.lam(t)).ravel()[0])


def _start_lam(schedule, t_max, option):
    lam = _lam_at(schedule, t_max)
    if not math.isfinite(lam):
        raise DiffsolveError(
            f"lam(t_max = {t_max}) is infinite for schedule {schedule.name!r}; this spacing needs a finite start: "
            f"pass {option}=... or a smaller t_max"
        )
    return lam


def _end_lam(schedule, t_min, spacing, option=None):
    lam = _lam_at(schedule, t_min)
    if not math.isfinite(lam):
        other = f" or {option}=..." if option else ""
        raise DiffsolveError(
            f"t_min = {t_min} gives lam(t_min) = {lam} for schedule {schedule.name!r} (sigma = 0 there); the "
            f"{spacing} spacing needs a finite log-SNR at the clean end: pass t_min > {t_min}{other} (the schedule's "
            f"default is t_min = {schedule.t_min})"
        )
    return lam


def _clamp_lam(schedule, lam):
    lo, hi = schedule.lam_range
    return np.clip(lam, lo, hi)


def _logsnr(schedule, n, t_max, t_min, lam_min=None, **_):
    lam_b = _end_lam(schedule, t_min, "logsnr")
    if lam_min is None:
        lam_a = _start_lam(schedule, t_max, "lam_min")
    else:
        lam_a = _real(lam_min, "lam_min", "logsnr option")
        lam_t_max = _lam_at(schedule, t_max)
        if not lam_t_max <= lam_a < lam_b:
            raise DiffsolveError(
                f"logsnr option lam_min = {lam_a} must lie in [lam(t_max), lam(t_min)) = [{lam_t_max:.6g}, "
                f"{lam_b:.6g}) for schedule {schedule.name!r} (the grid runs from t_max = {t_max} to t_min = {t_min}); "
                "pass lam_min inside it, or move t_max / t_min"
            )
    lam = _clamp_lam(schedule, np.clip(lam_a + np.arange(n + 1) / n * (lam_b - lam_a), lam_a, lam_b))
    return _pin(schedule.t_of_lam(lam), t_max, t_min)


def _sigma_option(schedule, value, name):
    """log of an explicit Karras sigma (sigma/alpha), checked against the range the schedule covers."""
    v = _real(value, name, "karras option")
    lam_lo, lam_hi = schedule.lam_range
    s_lo, s_hi = math.exp(-lam_hi) if lam_hi < 745 else 0.0, math.exp(-lam_lo) if lam_lo > -709 else math.inf
    if not v > 0 or not lam_lo <= -math.log(v) <= lam_hi:
        raise DiffsolveError(
            f"karras option {name} = {v!r} is outside the range [{s_lo:.6g}, {s_hi:.6g}] of sigma/alpha that schedule "
            f"{schedule.name!r} covers on its domain {_plain(schedule.domain)}; pass {name} inside it (or omit it to "
            f"use the grid's {'t_max' if name == 'sigma_max' else 't_min'})"
        )
    return math.log(v), v


def _exp_text(x: float) -> str:
    return f"{math.exp(x):.6g}" if x < 709 else f"exp({x:.6g})"


def _karras(schedule, n, t_max, t_min, rho=7.0, sigma_max=None, sigma_min=None, **_):
    rho = _real(rho, "rho", "karras option")
    if not rho > 0:
        raise DiffsolveError(f"karras spacing needs rho > 0, got rho={rho}; the EDM value is rho=7")
    if not RHO_RANGE[0] <= rho <= RHO_RANGE[1]:
        raise DiffsolveError(
            f"karras option rho = {rho} is outside [{RHO_RANGE[0]:g}, {RHO_RANGE[1]:g}] (docs/limits.md): below, all "
            "nodes but the last crowd at sigma_max; above, the grid is log-uniform (use spacing='logsnr'); the EDM "
            "value is rho=7"
        )
    if sigma_max is None:
        lam_a = _start_lam(schedule, t_max, "sigma_max")
        ls_max, smax = -lam_a, (math.exp(-lam_a) if lam_a > -709 else math.inf)
    else:
        ls_max, smax = _sigma_option(schedule, sigma_max, "sigma_max")
    if sigma_min is None:
        lam_b = _end_lam(schedule, t_min, "karras", "sigma_min")
        ls_min, smin = -lam_b, (math.exp(-lam_b) if lam_b < 745 else 0.0)
    else:
        ls_min, smin = _sigma_option(schedule, sigma_min, "sigma_min")
    if not ls_max > ls_min:
        raise DiffsolveError(
            f"karras spacing needs sigma_max > sigma_min, got sigma_max = {_exp_text(ls_max)}"
            f"{'' if sigma_max is not None else f' (= sigma/alpha at t_max = {t_max})'} and sigma_min = "
            f"{_exp_text(ls_min)}{'' if sigma_min is not None else f' (at t_min = {t_min})'}; swap or fix them"
        )
    ramp = np.arange(n + 1) / n
    sig = None
    if rho >= 1 and smax < math.inf and smin > 0:  # the published formula, where it neither overflows nor cancels
        with np.errstate(all="ignore"):
            sig = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
        if not (np.all(np.isfinite(sig)) and np.all(sig > 0)):
            sig = None
    if sig is not None:
        lam = -np.log(sig)
    else:  # the same grid in log space: log sigma_i = log sigma_max + rho log(1 + (i/N) expm1(d)), d = log ratio / rho
        d = (ls_min - ls_max) / rho
        if d > -1:
            u = np.log1p(ramp * math.expm1(d))
        else:
            i = np.arange(n + 1, dtype=np.float64)
            with np.errstate(divide="ignore"):
                u = np.logaddexp(np.log(n - i), np.log(i) + d) - math.log(n)
        lam = -(ls_max + rho * u)
    lam[0], lam[-1] = -ls_max, -ls_min
    lam = _clamp_lam(schedule, np.clip(lam, -ls_max, -ls_min))
    t = schedule.t_of_lam(lam)
    if sigma_max is None:
        t[0] = t_max
    if sigma_min is None:
        t[-1] = t_min
    return t


def _quadratic(schedule, n, t_max, t_min, **_):
    return _pin((math.sqrt(t_max) + np.arange(n + 1) / n * (math.sqrt(t_min) - math.sqrt(t_max))) ** 2, t_max, t_min)


SPACINGS = {"time": _time, "logsnr": _logsnr, "karras": _karras, "quadratic": _quadratic}
OPTIONS = {"time": (), "logsnr": ("lam_min",), "karras": ("rho", "sigma_max", "sigma_min"), "quadratic": ()}


def _bytes(n: int) -> str:
    unit = next(u for u, k in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10), ("B", 0)) if n >= 2**k or k == 0)
    k = {"TiB": 40, "GiB": 30, "MiB": 20, "KiB": 10, "B": 0}[unit]
    return f"{n / 2**k:.3g} {unit}"


def _end_point(value, name, schedule):
    if value is None:
        return float(getattr(schedule, name))
    v = _real(value, name, "time_grid")
    lo, hi = schedule.domain
    if not lo <= v <= hi:
        raise DiffsolveError(
            f"grid end points: {name} = {v!r} is outside the domain [{lo}, {hi}] of schedule {schedule.name!r}; pass "
            f"{name} inside it"
        )
    return v


def time_grid(schedule: Schedule, steps: int, spacing="logsnr", *, t_max: float | None = None,
              t_min: float | None = None, to_zero: bool = False, **options) -> np.ndarray:
    """N+1 strictly decreasing times from ``t_max`` to ``t_min`` (defaults: the schedule's range).

    ``to_zero=True``: N - 1 steps of the spacing to ``t_min``, then one step to the clean end (sigma = 0, the
    start of the schedule's domain), the k-diffusion / EDM convention; how a sampler takes that last step is its
    ``final`` policy (:func:`diffsolve.sample`).

    ``spacing``: ``"time"`` (uniform in t), ``"logsnr"`` (uniform in lam; all history ratios r = 1; option
    ``lam_min``), ``"karras"`` (rho-spaced in sigma/alpha; options ``rho=7``, ``sigma_max``, ``sigma_min``),
    ``"quadratic"``, or an explicit array of times (validated and returned as float64).  At most
    :data:`MAX_STEPS` steps; a generated grid whose nodes after the first fall below lam = :data:`LAM_FLOOR` is
    refused (docs/limits.md; an explicit array is the way to keep such nodes).
    """
    if not isinstance(schedule, Schedule):
        raise DiffsolveError(
            f"time_grid needs a Schedule as first argument, got {type(schedule).__name__}; "
            "use ds.get_schedule('vp-linear') or ds.Schedule.from_expr(...)"
        )
    if not isinstance(spacing, str):
        return validate_grid(schedule, spacing)
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)):
        raise DiffsolveError(f"steps must be a positive integer, got {type(steps).__name__} {_plain(steps)}")
    if steps < 1:
        raise DiffsolveError(f"steps must be >= 1, got {int(steps)}; a grid of N steps has N + 1 times")
    if steps > MAX_STEPS:
        raise DiffsolveError(
            f"steps = {int(steps)} is more than the limit {MAX_STEPS} of a generated grid (docs/limits.md: "
            f"{int(steps) + 1} times would need {_bytes(8 * (int(steps) + 1))} per array); pass steps <= {MAX_STEPS}"
        )
    rule = SPACINGS.get(spacing)
    if rule is None:
        raise DiffsolveError(
            f"unknown spacing {spacing!r}; expected one of {', '.join(SPACINGS)} or an explicit array of times"
        )
    unknown = sorted(set(options) - set(OPTIONS[spacing]))
    if unknown:
        raise DiffsolveError(
            f"unknown option(s) {unknown} for spacing {spacing!r}; it accepts {list(OPTIONS[spacing]) or 'none'}"
        )
    options = {k: v for k, v in options.items() if v is not None}
    t_max = _end_point(t_max, "t_max", schedule)
    t_min = _end_point(t_min, "t_min", schedule)
    if not t_max > t_min:
        raise DiffsolveError(f"need t_max > t_min, got t_max={t_max}, t_min={t_min}")
    if not isinstance(to_zero, (bool, np.bool_)):
        raise DiffsolveError(f"to_zero must be True or False, got {type(to_zero).__name__} {_plain(to_zero)}; pass "
                             "to_zero=True to end the grid with a step to sigma = 0, or leave it out")
    if to_zero:
        t_zero = _clean_end(schedule, t_min)
        if steps == 1:
            return validate_grid(schedule, [t_max, t_zero])
        head = time_grid(schedule, int(steps) - 1, spacing, t_max=t_max, t_min=t_min, **options)
        return validate_grid(schedule, np.append(head, t_zero))
    grid = rule(schedule, int(steps), t_max, t_min, **options)
    try:
        grid = validate_grid(schedule, grid)
    except DiffsolveError as exc:  # nodes float64 (or the schedule's inverse t(lam)) cannot separate
        raise DiffsolveError(
            f"the {spacing!r} grid of steps={int(steps)} from t_max={t_max} to t_min={t_min} on schedule "
            f"{schedule.name!r} is not usable: {exc}; use fewer steps, or move t_min / t_max away from the ends of "
            "the domain where the schedule's log-SNR is too steep for float64 (docs/limits.md)"
        ) from None
    _check_noise_floor(schedule, grid, spacing, options)
    return grid


def _clean_end(schedule, t_min) -> float:
    """The time of sigma = 0 (lam = +inf) at the start of the schedule's domain, below ``t_min``."""
    t_zero = float(schedule.domain[0])
    if not np.isposinf(_lam_at(schedule, t_zero)):
        raise DiffsolveError(f"to_zero=True needs a schedule that reaches sigma = 0, but {schedule.name!r} has "
                             f"lam = {_lam_at(schedule, t_zero):.6g} at the start t = {t_zero} of its domain; end "
                             "the grid at t_min instead (to_zero=False)")
    if not t_min > t_zero:
        raise DiffsolveError(f"to_zero=True adds a last node at sigma = 0 (t = {t_zero}), but t_min = {t_min} is "
                             "already there; pass to_zero=False or a t_min > 0")
    return t_zero


def _check_noise_floor(schedule, grid, spacing, options):
    """Refuse a generated grid whose nodes after the first lie below lam = LAM_FLOOR (docs/limits.md)."""
    with np.errstate(all="ignore"):
        lam = np.asarray(schedule.lam(grid))
    below = int(np.count_nonzero(lam[1:] < LAM_FLOOR))
    if not below:
        return
    lam_lo, lam_hi = schedule.lam_range
    fixes = []
    if lam_lo <= LAM_FLOOR <= lam_hi:
        t_floor = float(np.asarray(schedule.t_of_lam(LAM_FLOOR)).ravel()[0])
        if t_floor > grid[-1]:
            fixes.append(f"t_max={t_floor:.6g} (where lam = {LAM_FLOOR:g})")
    if spacing == "logsnr":
        fixes.append(f"lam_min={LAM_FLOOR:g}")
    elif spacing == "karras":
        fixes.append(f"sigma_max={math.exp(-LAM_FLOOR):.6g}")
    raise DiffsolveError(
        f"{below} of the {grid.size} nodes of this {spacing!r} grid lie below lam = {LAM_FLOOR:g} (alpha/sigma < "
        f"{math.exp(LAM_FLOOR):.2g}: x_t is pure noise to float64 precision there, so those steps resolve nothing); "
        f"schedule {schedule.name!r} reaches lam(t_max = {float(grid[0]):.6g}) = {float(lam[0]):.6g}"
        f"{f' (options {_plain(options)})' if options else ''}; start the grid where lam >= {LAM_FLOOR:g}: pass "
        f"{' or '.join(fixes) if fixes else 'a smaller t_max'}, or an explicit array of times to keep these nodes "
        "(docs/limits.md)"
    )


def validate_grid(schedule: Schedule, grid) -> np.ndarray:
    """Check an explicit grid: 1-D, >= 2 finite times, strictly decreasing, inside the schedule's domain."""
    raw = None if isinstance(grid, (str, bytes)) else grid
    try:
        kind = np.asarray(raw).dtype.kind if raw is not None else "U"
    except (TypeError, ValueError):
        kind = "O"
    if kind not in "iufO":
        dtype = "" if isinstance(grid, (str, bytes)) else f" of dtype {np.asarray(raw).dtype}"
        raise DiffsolveError(
            f"a time grid must be a 1-D array of real numbers, got {type(grid).__name__}{dtype} {_plain(grid)}; use "
            "ds.time_grid(...)"
        )
    try:
        arr = np.array(grid, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise DiffsolveError(
            f"a time grid must be a 1-D array of real numbers, got {type(grid).__name__}; use ds.time_grid(...)"
        ) from None
    if arr.ndim != 1 or arr.size < 2:
        raise DiffsolveError(
            f"a time grid must be 1-D with at least 2 times (1 step), got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr)).tolist()[:10]
        raise DiffsolveError(f"the time grid contains non-finite values at positions {bad}")
    diffs = np.diff(arr)
    if np.any(diffs >= 0):
        i = int(np.flatnonzero(diffs >= 0)[0])
        raise DiffsolveError(
            f"the time grid must be strictly decreasing (noisiest first), but t[{i}] = {_plain(arr[i])} <= "
            f"t[{i + 1}] = {_plain(arr[i + 1])}; reverse it or remove repeated times"
        )
    lo, hi = schedule.domain
    if arr[-1] < lo or arr[0] > hi:
        raise DiffsolveError(
            f"the time grid spans [{_plain(arr[-1])}, {_plain(arr[0])}], outside the domain [{lo}, {hi}] of schedule "
            f"{schedule.name!r}; clip it to the domain"
        )
    lam = schedule.lam(arr)
    if np.any(np.diff(lam) <= 0):
        i = int(np.flatnonzero(np.diff(lam) <= 0)[0])
        raise DiffsolveError(
            f"log-SNR does not increase between t[{i}] = {_plain(arr[i])} and t[{i + 1}] = {_plain(arr[i + 1])} "
            f"(lam = {_plain(lam[i])}, {_plain(lam[i + 1])}); the times are closer than float64 resolves for this "
            "schedule"
        )
    arr.setflags(write=False)
    return arr
