"""Adaptive step size: an embedded pair of singlestep exponential integrators under a PID step-size controller
(docs/algorithms/adaptive.md).

    res = ds.sample_adaptive(target_or_model, schedule, t_start, t_end, n=1000, order=3, rtol=1e-3, atol=1e-3)
    res.x, res.stats.nfe, res.stats.n_accept, res.stats.n_reject, res.stats.grid

A trial step from lam to lam + h runs the pair's two registered solvers on the one-step grid [t, t_next]
(:meth:`Solver.table`), each in a :class:`~diffsolve.stepper.Stepper` on the chosen backend; the low member's
model calls are the first calls of the high member (checked on the tables), so each call is made once and fed to
both.  Order 2 is DPM-Solver-12 (DPM-Solver-1 inside DPM-Solver-2, r1 = 1/2), order 3 DPM-Solver-23
(DPM-Solver-2 with r1 = 1/3 inside DPM-Solver-3, r1 = 1/3, r2 = 2/3): Lu et al., DPM-Solver (NeurIPS 2022,
arXiv 2206.00927) §4, Algorithm 4; ``prediction="data"`` uses the DPM-Solver++ singlestep members instead.
One step size serves the whole batch (the error norm is taken over all samples, as k-diffusion's
``sample_dpm_adaptive`` does).  ``eta > 0`` is k-diffusion's ancestral variant: the pair steps the ODE to a
lower noise level and fresh noise brings the state back to the trial's end (:func:`ancestral_step`).

There is no fixed grid, so the sampler is no registry entry; the name ``dpm-adaptive`` is registered only to
explain that (``ds.get_solver("dpm-adaptive")`` raises, pointing here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from . import backends
from .errors import DiffsolveError, DiffsolveTypeError
from .grids import validate_grid
from .models import ModelAdapter
from .program import Program, Segment
from .sampling import prior_sample
from .schedules import Schedule
from .solvers.registry import Solver, register_pattern
from .solvers.singlestep import singlestep_solver
from .stepper import Run, Stepper
from .tableau import StepTable

__all__ = ["AdaptiveResult", "AdaptiveStats", "EmbeddedPair", "PIDController", "ancestral_step", "embedded_pair",
           "error_norm", "sample_adaptive"]


class PIDController:
    """Söderlind's PID step-size controller in k-diffusion's form (``PIDStepSizeController``): with inverse errors
    e_n = 1 / (E_n + eps) of the current and the last two accepted trials, the factor
    f = L(e_n^{b1} e_{n-1}^{b2} e_{n-2}^{b3}), b1 = (p + i + d)/k, b2 = -(p + 2d)/k, b3 = d/k (k the order),
    L(x) = 1 + atan(x - 1) the smooth limiter (bounded in (0.21, 2.57)); the trial is accepted when
    f >= ``accept_safety``; h <- f h either way.  pcoeff = dcoeff = 0, icoeff = 1 is the plain (integral)
    controller h <- h E^{-1/k}."""

    def __init__(self, h: float, pcoeff: float, icoeff: float, dcoeff: float, order: float,
                 accept_safety: float = 0.81, eps: float = 1e-8):
        self.h = float(h)
        self.b = ((pcoeff + icoeff + dcoeff) / order, -(pcoeff + 2 * dcoeff) / order, dcoeff / order)
        self.accept_safety, self.eps = float(accept_safety), float(eps)
        self.inv = []  # inverse errors: the current trial, then the last two accepted ones

    def propose(self, error: float) -> bool:
        """Update ``h`` from the error of a trial step; returns whether that step is accepted."""
        inv = 1.0 / (float(error) + self.eps)
        if not self.inv:
            self.inv = [inv, inv, inv]
        self.inv[0] = inv
        factor = self.inv[0] ** self.b[0] * self.inv[1] ** self.b[1] * self.inv[2] ** self.b[2]
        factor = 1.0 + math.atan(factor - 1.0)
        accept = factor >= self.accept_safety
        if accept:
            self.inv[2], self.inv[1] = self.inv[1], self.inv[0]
        self.h *= factor
        return accept


def error_norm(x_low, x_high, x_prev, rtol: float, atol: float) -> float:
    """E = ||(x_low - x_high) / delta||_2 / sqrt(size), delta = max(atol, rtol max(|x_low|, |x_prev|)) elementwise
    over the whole batch (DPM-Solver §4; k-diffusion's norm): x_prev is the low member's value at the last
    accepted step (the initial state before the first)."""
    delta = np.maximum(atol, rtol * np.maximum(np.abs(x_low), np.abs(x_prev)))
    return float(np.linalg.norm(((x_low - x_high) / delta).ravel()) / math.sqrt(x_low.size))


class EmbeddedPair(NamedTuple):
    """A low- and a high-order registered solver whose model calls are shared: the low member's calls are the
    first calls of the high member's step."""

    low: Solver
    high: Solver
    order: int  # the high member's order (the controller's exponent)

    @property
    def prediction(self) -> str:
        return self.high.prediction

    @property
    def nfe_per_trial(self) -> int:
        return self.high.nfe_per_step

    def tables(self, schedule: Schedule, t: float, t_next: float):
        """The one-step tables (low, high) from ``t`` to ``t_next``; refuses a pair whose shared stages differ."""
        grid = np.array([t, t_next], dtype=np.float64)
        low, high = self.low.table(schedule, grid), self.high.table(schedule, grid)
        S = low.stages
        shared = (np.allclose(low.tau[0], high.tau[0, :S], rtol=1e-12, atol=0)
                  and np.allclose(low.A[0, :S], high.A[0, :S], rtol=1e-12, atol=1e-15)
                  and np.allclose(low.B[0, :S, :S], high.B[0, :S, :S], rtol=1e-12, atol=1e-15))
        if not shared:
            raise DiffsolveError(f"{self.low.name} and {self.high.name} do not share their first {S} stage(s) on the "
                                 f"step t = {t!r} -> {t_next!r}; an embedded pair needs the same stage fractions")
        return low, high


def ancestral_step(lam: float, lam_next: float, lam_end: float, eta: float) -> tuple[float, float]:
    """k-diffusion's ``get_ancestral_step`` in rho = sigma / alpha = e^{-lam} (x / alpha is the variance-exploding
    state): rho_up = min(rho_t, eta rho_t sqrt(1 - rho_t^2 / rho_s^2)), rho_down = sqrt(rho_t^2 - rho_up^2), the
    ODE target lam_down = min(lam_end, -log rho_down) and the noise rho_up = sqrt(rho_t^2 - rho(lam_down)^2) that
    brings x / alpha from lam_down back to lam_next.  Returns (lam_down, rho_up)."""
    rho_s, rho_t = math.exp(-lam), math.exp(-lam_next)
    up = min(rho_t, eta * math.sqrt(rho_t**2 * (rho_s**2 - rho_t**2) / rho_s**2))
    down = math.sqrt(rho_t**2 - up**2)
    lam_down = min(lam_end, -math.log(down)) if down > 0 else lam_end
    return lam_down, math.sqrt(max(rho_t**2 - math.exp(-2 * lam_down), 0.0))


def _noisy(table: StepTable, scale: float, noise: float) -> StepTable:
    """``table``'s step followed by x <- scale x + noise xi (one fresh normal): its output row scaled, one noise
    column added (the tableau form, so every engine draws xi from its keyed stream)."""
    S = table.stages
    out = StepTable.empty(1, S, table.history, 1)
    out.A[:], out.B[:], out.E[:], out.tau[:] = table.A, table.B, table.E, table.tau
    out.A[0, S] *= scale
    out.B[0, S] *= scale
    out.E[0, S] *= scale
    out.C[0, S, 0] = noise
    return out


PAIR_PREDICTIONS = ("eps", "data")
PAIR_VARIANTS = ("exact", "published")


def embedded_pair(order: int = 3, prediction: str = "eps", variant: str = "exact") -> EmbeddedPair:
    """The pair of order 2 (DPM-Solver-1 in DPM-Solver-2, r1 = 1/2) or 3 (DPM-Solver-2 with r1 = 1/3 in
    DPM-Solver-3, r1 = 1/3, r2 = 2/3); ``prediction="data"``: the DPM-Solver++ singlestep members; ``variant``
    ``"exact"`` (interpolant integrated exactly) or ``"published"`` (the papers' formulas, k-diffusion's)."""
    if isinstance(order, bool) or order not in (2, 3):
        raise DiffsolveError(f"order must be 2 (DPM-Solver-12) or 3 (DPM-Solver-23), got {order!r}; pass order=2 "
                             "or order=3")
    if prediction not in PAIR_PREDICTIONS:
        raise DiffsolveError(f"prediction (of the pair) must be 'eps' (DPM-Solver) or 'data' (DPM-Solver++), got "
                             f"{prediction!r}")
    if variant not in PAIR_VARIANTS:
        raise DiffsolveError(f"variant must be 'exact' or 'published', got {variant!r}")
    high = singlestep_solver(order, variant, prediction)
    low = singlestep_solver(order - 1, variant, prediction)
    if order == 3:
        low = low.with_params(c1=high.param("c1"))
    return EmbeddedPair(low, high, int(order))


@dataclass
class AdaptiveStats:
    """What an adaptive run reports: ``nfe`` (model calls made), ``n_accept`` / ``n_reject`` (trial steps),
    ``grid`` (the accepted times, from t_start), ``errors`` (the error norm of every trial) and ``h`` (the log-SNR
    step of every trial)."""

    nfe: int = 0
    n_accept: int = 0
    n_reject: int = 0
    grid: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    h: list = field(default_factory=list)

    @property
    def trials(self) -> int:
        return self.n_accept + self.n_reject

    def info(self) -> dict:
        """k-diffusion's info dict: ``steps`` (trials), ``nfe``, ``n_accept``, ``n_reject``."""
        return {"steps": self.trials, "nfe": self.nfe, "n_accept": self.n_accept, "n_reject": self.n_reject}


class AdaptiveResult(NamedTuple):
    x: object  # the samples at the final time, in x_init's kind (NumPy array or torch tensor)
    stats: AdaptiveStats


def _copy(arr):
    return arr.clone() if hasattr(arr, "clone") else np.array(arr, copy=True)


def _positive(name, value, fix, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DiffsolveTypeError(f"{name} must be a number, got {type(value).__name__} {value!r}; {fix}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise DiffsolveError(f"{name} must be a finite {'non-negative' if allow_zero else 'positive'} number, got "
                             f"{value!r}; {fix}")
    return v


def sample_adaptive(model, schedule: Schedule, t_start: float, t_end: float, *, n: int | None = None, x_init=None,
                    order: int = 3, prediction: str | None = None, pair: str = "eps", variant: str = "exact",
                    rtol: float = 0.05, atol: float = 0.0078, h_init: float = 0.05, pcoeff: float = 0.0,
                    icoeff: float = 1.0, dcoeff: float = 0.0, accept_safety: float = 0.81, eta: float = 0.0,
                    s_noise: float = 1.0, backend="numpy", seed: int = 0, model_kwargs=None, max_trials: int = 10_000,
                    callback: Callable | None = None) -> AdaptiveResult:
    """Adaptive-step sampling from ``t_start`` to ``t_end`` (both at sigma > 0) with the embedded pair of ``order``
    2 or 3 (:func:`embedded_pair`; ``pair`` its prediction ``"eps"`` / ``"data"``, ``variant`` ``"exact"`` /
    ``"published"``); 2 or 3 NFE per trial step.  ``model``, ``prediction``, ``n``, ``x_init``, ``backend``,
    ``seed`` and ``model_kwargs`` as in :func:`diffsolve.sample`.  The controller (:class:`PIDController`) and the
    tolerances follow k-diffusion's ``sample_dpm_adaptive``: ``rtol``, ``atol``, ``h_init`` (the first log-SNR
    step), ``pcoeff``, ``icoeff``, ``dcoeff``, ``accept_safety``; ``eta`` 0 is the probability-flow ODE, > 0
    ancestral steps (:func:`ancestral_step`; the controller's order is then 1.5) with noise scaled by ``s_noise``
    and keyed by (seed, sample, accepted step, draw).  After a rejected trial the model output at the step's
    start is reused (one call saved per rejection).  ``callback(record)`` runs after every trial with ``x`` (the
    state after it), ``i``, ``t``, ``t_next``, ``h``, ``h_next`` (the controller's next step), ``error``,
    ``accepted``, ``model_output`` (the trial's first output) and ``stats``.  Returns :class:`AdaptiveResult`
    (``x``, ``stats``)."""
    if not isinstance(schedule, Schedule):
        raise DiffsolveError(f"schedule must be a diffsolve Schedule, got {type(schedule).__name__}; use "
                             "ds.get_schedule(...)")
    span = validate_grid(schedule, [t_start, t_end])
    pair_ = embedded_pair(order, pair, variant)
    rtol = _positive("rtol", rtol, "pass e.g. rtol=1e-3")
    atol = _positive("atol", atol, "pass e.g. atol=1e-3 (the error scale near zero; it must be positive)")
    h = _positive("h_init", h_init, "pass e.g. h_init=0.05 (the first log-SNR step)")
    for name, value in (("pcoeff", pcoeff), ("icoeff", icoeff), ("dcoeff", dcoeff)):
        _positive(name, value, "pass e.g. pcoeff=0, icoeff=1, dcoeff=0 (the integral controller)", allow_zero=True)
    if not 0 < _positive("accept_safety", accept_safety, "pass e.g. 0.81") <= 1:
        raise DiffsolveError(f"accept_safety must be in (0, 1], got {accept_safety!r}; pass e.g. 0.81")
    eta = _positive("eta", eta, "pass eta=0 (the ODE) or e.g. eta=1 (ancestral steps)", allow_zero=True)
    s_noise = _positive("s_noise", s_noise, "pass e.g. s_noise=1", allow_zero=True)
    if isinstance(max_trials, bool) or not isinstance(max_trials, (int, np.integer)) or max_trials < 1:
        raise DiffsolveError(f"max_trials must be a positive integer, got {max_trials!r}; pass e.g. 10000")
    if callback is not None and not callable(callback):
        raise DiffsolveTypeError(f"callback must be callable (or None), got {type(callback).__name__}")
    lam_end = float(schedule.lam(span[1]))
    if not math.isfinite(lam_end):
        raise DiffsolveError(f"t_end = {t_end!r} is at sigma = 0; the pair has intermediate stages: end at a small "
                             "positive sigma")
    adapter = ModelAdapter(model, schedule, pair_.prediction, prediction, model_kwargs)
    if x_init is None:
        if adapter.target is None or isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise DiffsolveError(f"pass x_init (the states at t_start, shape (n, ...)), or a target and n (a positive "
                                 f"number of samples); got n={n!r}")
        x_init = prior_sample(schedule, span[0], int(n), model.dim, seed)
    engine = backends.engine(backend)
    pid = PIDController(h, pcoeff, icoeff, dcoeff, 1.5 if eta else pair_.order, accept_safety)
    stats = AdaptiveStats(grid=[float(span[0])])
    t, lam = float(span[0]), float(schedule.lam(span[0]))
    x, first = x_init, None  # the state, and the model output at (x, t) when a rejected trial left it
    x_prev = None
    while lam < lam_end - 1e-5:
        if stats.trials >= max_trials:
            raise DiffsolveError(f"the adaptive sampler took {max_trials} trial steps without reaching t_end = "
                                 f"{t_end!r} (at t = {t!r}, h = {pid.h:.3g}); loosen rtol / atol or raise max_trials")
        lam_next = min(lam_end, lam + pid.h)
        t_next = float(span[1]) if lam_next == lam_end else float(schedule.t_of_lam(lam_next))
        lam_down, rho_up = ancestral_step(lam, lam_next, lam_end, eta) if eta else (lam_next, 0.0)
        t_down = t_next if lam_down == lam_next else float(schedule.t_of_lam(lam_down))
        tables = pair_.tables(schedule, t, t_down)
        if rho_up > 0:  # x_next / alpha_next = x_down / alpha_down + s_noise rho_up xi
            a_next, a_down = float(schedule.alpha(t_next)), float(schedule.alpha(t_down))
            tables += (_noisy(tables[1], a_next / a_down, a_next * s_noise * rho_up),)
        # history=n_accept: noise step keys count the accepted steps (the adaptive grid's nodes)
        runs = [Stepper.from_run(Run.for_program(Program((Segment(tab),)), schedule, prediction=pair_.prediction,
                                                 name=pair_.high.name, seed=seed, history=stats.n_accept),
                                 x, adapter.native, engine) for tab in tables]
        low, high, last = runs[0], runs[1], runs[-1]
        if x_prev is None:
            x_prev = np.array(low.host_x(), copy=True)
        out0 = None
        while not high.done:  # the low member's calls are the high member's first ones (EmbeddedPair.tables)
            if first is not None and high.nfe == 0:
                out = first
            else:
                out = adapter.fn(high.x_model, high.t_model)
                stats.nfe += 1
            if out0 is None:
                out0 = out
            for st in runs:
                if not st.done:
                    st.step(out)
        x_low, x_high = low.host_x(), high.host_x()
        error = error_norm(x_low, x_high, x_prev, rtol, atol)
        stats.errors.append(error)
        stats.h.append(lam_next - lam)
        accepted = pid.propose(error)
        if accepted:
            x_prev, x, first = np.array(x_low, copy=True), last.x, None
            t, lam = t_next, lam_next
            stats.n_accept += 1
            stats.grid.append(t)
        else:
            first = _copy(out0)
            stats.n_reject += 1
        if callback is not None:
            callback({"x": x, "i": stats.trials - 1, "t": t, "t_next": t_next, "h": stats.h[-1], "h_next": pid.h,
                      "error": error, "accepted": accepted, "model_output": out0, "stats": stats})
    return AdaptiveResult(_copy(x), stats)


def _no_grid(variant="exact"):
    raise DiffsolveError("'dpm-adaptive' chooses its own steps and has no fixed grid, so it is not a grid solver for "
                         "ds.sample / ds.Stepper; use ds.sample_adaptive(model, schedule, t_start, t_end, order=3, "
                         "rtol=..., atol=...) (or diffsolve.interop.kdiffusion.sample_dpm_adaptive); "
                         "docs/algorithms/adaptive.md")


register_pattern(r"dpm-adaptive", _no_grid, "dpm-adaptive")
