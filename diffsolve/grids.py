"""Step grids: decreasing times t_0 = t_max (noisiest) ... t_N = t_min (cleanest)
(docs/algorithms/exponential_integrators.md §6)."""

from __future__ import annotations

import math

import numpy as np

from .errors import DiffsolveError
from .schedules import Schedule

__all__ = ["time_grid", "validate_grid", "SPACINGS"]


def _pin(t, t_max, t_min):
    t[0], t[-1] = t_max, t_min  # exact end points whatever the rounding of the formula
    return t


def _time(schedule, n, t_max, t_min, **_):
    return _pin(t_max + np.arange(n + 1) / n * (t_min - t_max), t_max, t_min)


def _logsnr(schedule, n, t_max, t_min, lam_min=None, **_):
    lam_a = _finite_lam(schedule, t_max, lam_min, "lam_min")
    lam_b = float(schedule.lam(t_min))
    lam = lam_a + np.arange(n + 1) / n * (lam_b - lam_a)
    return _pin(schedule.t_of_lam(lam), t_max, t_min)


def _karras(schedule, n, t_max, t_min, rho=7.0, sigma_max=None, sigma_min=None, **_):
    rho = float(rho)
    if not rho > 0:
        raise DiffsolveError(f"karras spacing needs rho > 0, got rho={rho}")
    smax = float(sigma_max) if sigma_max is not None else math.exp(-_finite_lam(schedule, t_max, None, "sigma_max"))
    smin = float(sigma_min) if sigma_min is not None else math.exp(-float(schedule.lam(t_min)))
    ramp = np.arange(n + 1) / n
    sig = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    t = schedule.t_of_lam(-np.log(sig))
    if sigma_max is None:
        t[0] = t_max
    if sigma_min is None:
        t[-1] = t_min
    return t


def _quadratic(schedule, n, t_max, t_min, **_):
    return _pin((math.sqrt(t_max) + np.arange(n + 1) / n * (math.sqrt(t_min) - math.sqrt(t_max))) ** 2, t_max, t_min)


SPACINGS = {"time": _time, "logsnr": _logsnr, "karras": _karras, "quadratic": _quadratic}
OPTIONS = {"time": (), "logsnr": ("lam_min",), "karras": ("rho", "sigma_max", "sigma_min"), "quadratic": ()}


def _finite_lam(schedule, t, override, name):
    if override is not None:
        return float(override)
    lam = float(schedule.lam(t))
    if not math.isfinite(lam):
        raise DiffsolveError(
            f"lam(t_max = {t}) is infinite for schedule {schedule.name!r}; this spacing needs a finite start: "
            f"pass {name}=... or a smaller t_max"
        )
    return lam


def time_grid(schedule: Schedule, steps: int, spacing="logsnr", *, t_max: float | None = None,
              t_min: float | None = None, **options) -> np.ndarray:
    """N+1 strictly decreasing times from ``t_max`` to ``t_min`` (defaults: the schedule's range).

    ``spacing``: ``"time"`` (uniform in t), ``"logsnr"`` (uniform in lam; all history ratios r = 1),
    ``"karras"`` (rho-spaced in sigma/alpha; option ``rho=7``, ``sigma_max``, ``sigma_min``), ``"quadratic"``,
    or an explicit array of times (validated and returned as float64).
    """
    if not isinstance(schedule, Schedule):
        raise DiffsolveError(
            f"time_grid needs a Schedule as first argument, got {type(schedule).__name__}; "
            "use ds.get_schedule('vp-linear') or ds.Schedule.from_expr(...)"
        )
    if not isinstance(spacing, str):
        return validate_grid(schedule, spacing)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise DiffsolveError(f"steps must be a positive integer, got {type(steps).__name__} {steps!r}")
    if steps < 1:
        raise DiffsolveError(f"steps must be >= 1, got {steps}; a grid of N steps has N + 1 times")
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
    t_max = schedule.t_max if t_max is None else float(t_max)
    t_min = schedule.t_min if t_min is None else float(t_min)
    if not t_max > t_min:
        raise DiffsolveError(f"need t_max > t_min, got t_max={t_max}, t_min={t_min}")
    schedule._check_t(np.array([t_min, t_max]), "grid end points")
    grid = rule(schedule, int(steps), t_max, t_min, **options)
    return validate_grid(schedule, grid)


def validate_grid(schedule: Schedule, grid) -> np.ndarray:
    """Check an explicit grid: 1-D, >= 2 finite times, strictly decreasing, inside the schedule's domain."""
    try:
        arr = np.array(grid, dtype=np.float64)
    except (TypeError, ValueError):
        raise DiffsolveError(
            f"a time grid must be a 1-D array of real numbers, got {type(grid).__name__}; use ds.time_grid(...)"
        ) from None
    if arr.ndim != 1 or arr.size < 2:
        raise DiffsolveError(
            f"a time grid must be 1-D with at least 2 times (1 step), got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise DiffsolveError(f"the time grid contains non-finite values at positions {np.flatnonzero(~np.isfinite(arr)).tolist()}")
    diffs = np.diff(arr)
    if np.any(diffs >= 0):
        i = int(np.flatnonzero(diffs >= 0)[0])
        raise DiffsolveError(
            f"the time grid must be strictly decreasing (noisiest first), but t[{i}] = {arr[i]!r} <= "
            f"t[{i + 1}] = {arr[i + 1]!r}; reverse it or remove repeated times"
        )
    lo, hi = schedule.domain
    if arr[-1] < lo or arr[0] > hi:
        raise DiffsolveError(
            f"the time grid spans [{arr[-1]!r}, {arr[0]!r}], outside the domain [{lo}, {hi}] of schedule "
            f"{schedule.name!r}; clip it to the domain"
        )
    lam = schedule.lam(arr)
    if np.any(np.diff(lam) <= 0):
        i = int(np.flatnonzero(np.diff(lam) <= 0)[0])
        raise DiffsolveError(
            f"log-SNR does not increase between t[{i}] = {arr[i]!r} and t[{i + 1}] = {arr[i + 1]!r} "
            f"(lam = {lam[i]!r}, {lam[i + 1]!r}); the times are closer than float64 resolves for this schedule"
        )
    arr.setflags(write=False)
    return arr
