"""The solver registry: name -> :class:`Solver` (tableau builders + declared orders + metadata).

Tests and benchmarks iterate :func:`list_solvers`, so a newly registered solver is order-tested and
backend-tested automatically.  Names with a parameter (``dpmpp-{k}m``) are resolved by pattern factories.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, NamedTuple, Sequence

import numpy as np

from ..corrections import ClippedMomentum
from ..errors import DiffsolveError, DiffsolveWarning
from ..errors import plain as _plain
from ..predictions import coefficients
from ..program import Program, Segment
from ..tableau import StepTable, StepVariables

__all__ = ["Builder", "FINALS", "MomentumClip", "Sampler", "Solver", "build_program", "register", "register_pattern",
           "get_solver", "list_solvers", "solver_names"]

WARM_DOWN = 2.0  # a level may amplify its history at most this much more than on a uniform grid (measured)
WARM_DOWN_SPAN = 4.0  # ... and its nodes and the step may span at most this much log-SNR (measured)
# the families whose multistep levels warm down; the accelerated samplers keep their papers' start-up rules
WARM_DOWN_FAMILIES = ("exponential-multistep", "unipc", "deis")


class Sampler:
    """Base of every registry entry: ``name``, ``prediction``, ``history``, ``program(schedule, grid, ...)``,
    ``with_params(**params)`` and ``metadata()``.  :class:`Solver` (one generated table per warm-up level) and
    :class:`~diffsolve.solvers.langevin.LangevinSampler` (programs built from parameters) are the two kinds."""


class Builder(NamedTuple):
    """A coefficient builder ``fill(h, r, log_alpha, log_sigma, params, A, B, E, C)`` and its stage fractions
    ``fractions(params, r)`` (plain Python from a generated module: a table is filled once per run)."""

    py: Callable[..., None]
    fractions: Callable[..., Sequence[float]]


@dataclass(frozen=True)
class MomentumClip:
    """Builds the :class:`~diffsolve.corrections.ClippedMomentum` of a solver's program: the momentum K is the
    output row of the generated ``fill`` (its B and E coefficients), the cap ``param * |B[n, S, 0]|`` (the
    solver's parameter ``param`` times the model coefficient of the step) on the steps of the full method; warm-up
    steps get no momentum."""

    fill: Builder
    param: str

    def __call__(self, solver: "Solver", v: StepVariables, levels: np.ndarray, table: StepTable) -> ClippedMomentum:
        n, S = v.h.size, solver.stages
        KB, KE, bound = np.zeros((n, S)), np.zeros((n, solver.history)), np.full(n, np.inf)
        rows = np.flatnonzero(levels == solver.history)
        if rows.size:
            sub = StepTable.empty(rows.size, S, solver.history, solver.noises)
            self.fill.py(v.h[rows], np.ascontiguousarray(v.r[rows]), v.log_alpha[rows], v.log_sigma[rows],
                         solver.param_array, sub.A, sub.B, sub.E, sub.C)
            KB[rows], KE[rows] = sub.B[:, S], sub.E[:, S]
            bound[rows] = solver.param(self.param) * np.abs(table.B[rows, S, 0])
        return ClippedMomentum(B=KB, E=KE, bound=bound)


@dataclass(frozen=True)
class Solver(Sampler):
    """One registered solver.

    ``fills[j]`` is the coefficient builder (with its stage fractions) used when ``j`` history values are
    available (warm-up: ``j < history``); ``fills[-1]`` is the full method.  ``order`` is the declared ODE
    global order, or the weak order for stochastic solvers; ``params`` holds runtime parameters such as ``eta``;
    ``corrections`` builds the per-sample corrections of its program (:meth:`program`).
    """

    name: str
    family: str
    order: int
    nfe_per_step: int
    prediction: str
    stochastic: bool
    stages: int
    history: int
    noises: int
    fills: tuple
    param_names: tuple = ()
    params: tuple = ()
    strong_order: float | None = None
    reference: str = ""
    variant: str = "exact"
    uncertain: bool = False
    description: str = ""
    keep: int = 0
    corrections: tuple = ()
    extra: dict = field(default_factory=dict)
    warm_down: float = WARM_DOWN  # math.inf: the plain warm-up of the peers (see levels)
    PEER_FINAL = "denoise"  # the end-point policy under which a step to sigma = 0 is the peers' (peer_conventions)

    # -- parameters ------------------------------------------------------------------------------------
    def with_params(self, **params) -> "Solver":
        """A copy with runtime parameters changed (e.g. ``eta=0.5``); ``warm_down`` sets the multistep warm-down
        bound of :func:`warm_down` (``math.inf``: none, the lower-order steps only while history is missing, as
        diffusers with ``lower_order_final=False`` and k-diffusion step)."""
        if "warm_down" in params:
            params = dict(params)
            kappa = params.pop("warm_down")
            if isinstance(kappa, bool) or not isinstance(kappa, (int, float, np.integer, np.floating)) or not kappa >= 1:
                raise DiffsolveError(f"solver {self.name!r}: warm_down must be a number >= 1 (how much more a "
                                     f"multistep level may amplify its history than on a uniform grid; inf: never "
                                     f"warm down), got {_plain(kappa)}; the default is {WARM_DOWN:g}")
            return replace(self, warm_down=float(kappa)).with_params(**params)
        values = dict(zip(self.param_names, self.params))
        for key, value in params.items():
            if key not in values:
                raise DiffsolveError(
                    f"solver {self.name!r} has no parameter {key!r}; its parameters are {list(self.param_names) or 'none'}"
                )
            try:
                values[key] = float(value)
            except (TypeError, ValueError):
                raise DiffsolveError(f"solver {self.name!r}: parameter {key} must be a number, got {value!r}") from None
            lo, hi, *open_lo = self.extra.get("bounds", {}).get(key, PARAM_BOUNDS.get(key, (-np.inf, np.inf)))
            inside = lo < values[key] <= hi if open_lo else lo <= values[key] <= hi  # also refuses NaN
            if not inside:
                raise DiffsolveError(f"solver {self.name!r}: parameter {key} = {_plain(value)} is outside its range "
                                     f"{'(' if open_lo else '['}{lo:g}, {hi:g}]; pass a value in that range")
        fractions = [values[k] for k in ("c1", "c2") if k in values]
        if len(fractions) == 2 and not fractions[0] < fractions[1]:
            raise DiffsolveError(f"solver {self.name!r}: the stage fractions must increase, got c1 = {fractions[0]:g} "
                                 f">= c2 = {fractions[1]:g}; pass e.g. c1=1/3, c2=2/3")
        order = self.order
        condition = self.extra.get("order_condition", ())
        if condition:  # e.g. 3S is third order only for c2 = 2/3; other fractions give the generic order
            met = all(abs(values[name] - target) <= 1e-12 for name, target in condition)
            order = self.extra["declared_order"] if met else self.extra["generic_order"]
        return replace(self, params=tuple(values[k] for k in self.param_names), order=order)

    @property
    def eta(self) -> float:
        """Stochasticity of the reverse process the solver discretises (0 = probability-flow ODE)."""
        return float(dict(zip(self.param_names, self.params)).get("eta", self.extra.get("eta", 0.0)))

    def param(self, name: str) -> float:
        """The value of runtime parameter ``name``."""
        return float(dict(zip(self.param_names, self.params))[name])

    @property
    def param_array(self) -> np.ndarray:
        return np.asarray(self.params, dtype=np.float64)

    def metadata(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "order": self.order,
            "strong_order": self.strong_order,
            "stochastic": self.stochastic,
            "nfe_per_step": self.nfe_per_step,
            "prediction": self.prediction,
            "history": self.history,
            "variant": self.variant,
            "params": dict(zip(self.param_names, self.params)),
            "uncertain": self.uncertain,
            "reference": self.reference,
        }

    # -- coefficient tables ----------------------------------------------------------------------------
    def stage_fractions(self, r=None, level: int | None = None) -> np.ndarray:
        """Stage fractions c_0 = 0, c_1, ... (stage node lam_n + c_p h) of the warm-up ``level`` (default: the
        full method) for a step with history ratios ``r`` (default all 1); a fraction -r_1 is the previous node."""
        level = self.history if level is None else int(level)
        r = np.ones(level) if r is None else np.asarray(r, dtype=np.float64)
        return np.asarray(self.fills[level].fractions(self.param_array, r), dtype=np.float64)

    def levels(self, schedule, grid, start: int = 0, exact_history: bool = False) -> np.ndarray:
        """The warm-up level (history values available) of every step ``start..N-1``.

        Without ``exact_history`` a multistep method warms up with the lower-order formulas while fewer history
        values exist, and warms down where the step is long against the history it would extrapolate
        (:func:`warm_down`); infinite steps (to sigma = 0) fill their row from the first-order formula
        (docs/algorithms/exponential_integrators.md §3.8).
        """
        available = self.history_available(schedule, grid, start, exact_history)
        lam = schedule.lam(np.asarray(grid, dtype=np.float64))
        if not exact_history and self.family in WARM_DOWN_FAMILIES and self.warm_down < np.inf:
            available = warm_down(lam, start, available, self.warm_down)
        available[~np.isfinite(np.diff(lam)[start:])] = 0
        return available

    def history_available(self, schedule, grid, start: int = 0, exact_history: bool = False) -> np.ndarray:
        """The history values (at most ``history``) the steps ``start..N-1`` can use: with ``exact_history`` all,
        else those of the earlier grid nodes with a finite log-SNR (nodes at lam = -inf drop out)."""
        lam = schedule.lam(np.asarray(grid, dtype=np.float64))
        n = lam.size - 1 - start
        if exact_history:
            return np.full(n, self.history, dtype=np.int64)
        finite_before = np.concatenate([[0], np.cumsum(np.isfinite(lam))[:-1]])
        return np.minimum(finite_before[start:start + n], self.history).astype(np.int64)

    def step_variables(self, schedule, grid, start: int = 0, levels=None) -> StepVariables:
        """Per-step variables for the steps ``start .. N-1`` of ``grid`` (history from earlier nodes); the stage
        nodes of step n follow the fractions of its warm-up level ``levels[n]`` (default: the full method)."""
        t = np.asarray(grid, dtype=np.float64)
        lam = schedule.lam(t)
        n_steps = t.size - 1 - start
        levels = np.full(n_steps, self.history) if levels is None else np.asarray(levels)
        h = np.diff(lam)[start:]
        r = np.full((n_steps, self.history), np.nan)
        for j in range(self.history):
            for n in range(n_steps):
                g = start + n  # global index of the step's start node
                if g - j - 1 >= 0 and np.isfinite(lam[g - j - 1]):
                    r[n, j] = (lam[g - j] - lam[g - j - 1]) / h[n]
        nodes_t = np.empty((n_steps, self.stages + 1))
        nodes_t[:, 0] = t[start:-1]
        nodes_t[:, -1] = t[start + 1:]
        if self.stages > 1:
            c = np.array([self.stage_fractions(r[n, :levels[n]], levels[n]) for n in range(n_steps)])
            stage_lam = lam[start:-1, None] + c[:, 1:] * h[:, None]
            if not np.isfinite(stage_lam).all():
                raise DiffsolveError(
                    f"solver {self.name!r} has intermediate stages, which cannot sit on a step with an infinite "
                    "log-SNR end point (sigma = 0); its program ends such a grid with a separate step "
                    "(solver.program(schedule, grid), or ds.sample), or end the grid at a small positive sigma"
                )
            lo, hi = schedule.lam_range  # a stage on the first grid node (fraction -r_1) may round past its lam
            slack = 1e-12 * (1.0 + np.abs(stage_lam))
            stage_lam = np.where((stage_lam < lo) & (stage_lam >= lo - slack), lo, stage_lam)
            nodes_t[:, 1:-1] = schedule.t_of_lam(stage_lam)
            if self.history:  # a stage on the previous grid node (fraction -r_1) takes that node's time exactly
                rows, cols = np.nonzero(np.isclose(c[:, 1:], -r[:, :1], rtol=0, atol=1e-15))
                nodes_t[rows, cols + 1] = t[start + rows - 1]
        return StepVariables(h=h, r=r, log_alpha=schedule.log_alpha(nodes_t), log_sigma=schedule.log_sigma(nodes_t),
                             t=nodes_t)

    def takes_final_step(self) -> bool:
        """Whether the solver's own table takes a step to sigma = 0 (lam = +inf): a deterministic solver without
        stages (its :meth:`final_row`), or a stochastic data-prediction one whose first-order builder has a finite
        limit there (probed once; docs/algorithms/exponential_integrators.md §3.8).  For the others (stages: they
        would sit at lam = +inf; noise-prediction SDE steps: coefficients 0 * inf; Euler-Maruyama: explicit in lam)
        that last step is a second segment: a Runge-Kutta step in u with :attr:`final_stages` calls
        (:func:`rk_u_to_zero`) for a deterministic solver, the denoising step (:func:`denoise_to_zero`) for a
        stochastic one."""
        return self.has_final_row() or _finite_final_step(self)

    def program(self, schedule, grid, *, start: int = 0, exact_history: bool = False) -> Program:
        """The program for ``grid`` (steps ``start..N-1``): the coefficient table (warm-up levels from
        :meth:`levels`; a step to sigma = 0 at the end as :meth:`final_row` where the solver has one) and the
        solver's corrections, one segment, and where the grid ends at sigma = 0 and the solver cannot take that
        step itself (:meth:`takes_final_step`), a second segment (:func:`rk_u_to_zero` or
        :func:`denoise_to_zero`).  A stochastic solver whose stability depends on eta * h is checked first
        (:meth:`check_stability`)."""
        grid = np.asarray(grid, dtype=np.float64)
        if self.has_final_row() and grid.size - start >= 2 and ends_at_zero(schedule, grid):
            return Program((Segment(self.table(schedule, grid, start=start, exact_history=exact_history)),))
        if grid.size - start >= 2 and not self.takes_final_step() and not np.isfinite(schedule.lam(grid[-1])):
            if self.deterministic and fits_to_zero(float(schedule.lam(grid[-2]))):
                tail = Segment(rk_u_to_zero(schedule, grid[-2], grid[-1], self.prediction, self.final_stages))
            else:
                tail = Segment(denoise_to_zero(schedule, grid[-2], grid[-1], self.prediction))
            if grid.size - start == 2:
                return Program((tail,))
            return Program(self.program(schedule, grid[:-1], start=start, exact_history=exact_history).segments
                           + (tail,))
        available = self.levels(schedule, grid, start, exact_history)
        v = self.step_variables(schedule, grid, start, available)
        table = self._fill(v, available, schedule, grid, start)
        program = Program((Segment(table, tuple(build(self, v, available, table) for build in self.corrections)),))
        if start == 0 and not exact_history:
            self.check_stability(program, schedule, grid, v.h)
        return program

    @property
    def conditionally_stable(self) -> bool:
        """Whether the solver can amplify errors for large eta * h (h the log-SNR step): the noise-prediction SDE
        integrators (their noise term carries e^{eta h}), Euler-Maruyama (explicit in the drift) and the
        data-prediction multistep SDE integrators (their history polynomial is extrapolated to the step end where
        the weight e^{-(1+eta)(lam_t - lam)} concentrates); docs/algorithms/exponential_integrators.md, "Stability
        in eta"."""
        if "eta" not in self.param_names or self.eta == 0:
            return False
        return self.prediction != "data" or self.history > 0 or self.family == "euler-maruyama"

    def check_stability(self, program, schedule, grid, h) -> None:
        """Check a conditionally stable run on Gaussian data of the variances ``PROBE_VARIANCES`` (the model is
        then affine, so the output law propagates exactly): an output variance above ``STABILITY_FACTOR`` times the
        data's is warned about (:class:`~diffsolve.errors.DiffsolveWarning`); above ``DIVERGENCE_FACTOR`` a run with
        eta > 1 (beyond the published methods' eta in [0, 1]) is refused, one with eta <= 1 (the method as
        published, run as asked) is warned about as diverging."""
        if not self.conditionally_stable:
            return
        from ..accuracy.gaussian_law import initial_law, propagate
        from ..targets import Gaussian

        probe = Gaussian(np.zeros(PROBE_VARIANCES.size), PROBE_VARIANCES)  # one coordinate per data variance
        mean, cov = initial_law(probe, schedule, grid, 0, self.prediction, self.eta)
        with np.errstate(all="ignore"):
            mean, cov = propagate(program, probe, schedule, self.prediction, mean, cov)
        growth = np.where(np.isfinite(cov[:, 0, 0]), cov[:, 0, 0] / PROBE_VARIANCES, np.inf)
        worst = float(growth.max())
        if worst <= STABILITY_FACTOR:
            return
        finite = h[np.isfinite(h)]
        eta_h = self.eta * float(finite.max()) if finite.size else float("nan")
        what = (f"solver {self.name!r} with eta = {self.eta:g} {{}} on this grid: its largest step has eta * h = "
                f"{eta_h:.3g} (h the log-SNR step), and on Gaussian data the exact law of its output has up to "
                f"{worst:.3g} times the data's variance")
        fix = ("use more steps (or logsnr spacing), a smaller eta, or an unconditionally stable solver (the one-step "
               "data-prediction ones: ddpm, dpmpp-1m-sde, seeds-*; dpmpp-*-sde rather than dpm-solver-*-sde)")
        if worst > DIVERGENCE_FACTOR and self.eta > 1:
            raise DiffsolveError(what.format("diverges") + f" (errors grow geometrically); {fix}")
        verdict = "diverges" if worst > DIVERGENCE_FACTOR else "amplifies errors"
        warnings.warn(what.format(verdict) + f"; its samples are inaccurate: {fix}", DiffsolveWarning, stacklevel=4)

    def table(self, schedule, grid, *, start: int = 0, exact_history: bool = False) -> StepTable:
        """The coefficient table of :meth:`program`, for solvers without corrections (a solver with corrections
        refuses: its table alone is not the method)."""
        if self.corrections:
            raise DiffsolveError(f"solver {self.name!r} applies corrections after its rows (e.g. a clipped momentum): "
                                 "its table alone is not the method; use solver.program(schedule, grid)")
        grid = np.asarray(grid, dtype=np.float64)
        final = self.has_final_row() and grid.size - start >= 2 and ends_at_zero(schedule, grid)
        head = grid[:-1] if final else grid
        parts = []
        if head.size - start >= 2:
            available = self.levels(schedule, head, start, exact_history)
            parts.append(self._fill(self.step_variables(schedule, head, start, available), available, schedule,
                                    head, start))
        if final:
            parts.append(self.final_row(schedule, grid, start, exact_history))
        return parts[0] if len(parts) == 1 else StepTable.concat(parts)

    @property
    def deterministic(self) -> bool:
        """Whether the solver integrates the probability-flow ODE (no noise, eta = 0)."""
        return not self.stochastic and self.eta == 0 and not self.corrections

    @property
    def final_stages(self) -> int:
        """Model calls of the Runge-Kutta step in u that ends a deterministic stage solver's grid at sigma = 0
        (:func:`rk_u_to_zero`): the fewest whose error O(u^{stages + 1}) is at the solver's order, order - 1 (at
        least 1, at most 3 and the solver's stages).  Measured: a call spent there is a step missing elsewhere, and
        with as many calls as stages the error at equal NFE was 1.1-2.4x larger on logsnr, karras and quadratic
        grids (docs/benchmarks.md, "End-point policy")."""
        return max(1, min(self.order - 1, self.stages, 3))

    def has_final_row(self) -> bool:
        """Whether the solver's own step to sigma = 0 is :meth:`final_row` (a deterministic data- or
        noise-prediction solver without stages: its history holds the model outputs at the previous grid nodes)."""
        return self.stages == 1 and self.keep == 0 and self.deterministic and self.prediction in ("data", "eps")

    def final_row(self, schedule, grid, start: int = 0, exact_history: bool = False) -> StepTable:
        """The one-step table of the step to sigma = 0 at the end of ``grid``, from the state and the model outputs
        at the last p = min(order, history available + 1) grid nodes: in data prediction the fit of
        :func:`final_weights`, in noise prediction the Adams rule in u of :func:`final_weights_eps`; error
        O(u^{p+1}) at u = (sigma / alpha)^2 of the last positive node (docs/algorithms/exponential_integrators.md
        §3.8)."""
        grid = np.asarray(grid, dtype=np.float64)
        lam = schedule.lam(grid)
        held = int(self.history_available(schedule, grid, start, exact_history)[-1])
        nodes = lam[lam.size - 2 - np.arange(min(self.order, held + 1))]
        a_end, a_n = float(schedule.alpha(grid[-1])), float(schedule.alpha(grid[-2]))
        if not fits_to_zero(nodes[0]):  # the denoising step, in the solver's prediction
            w_x, w = (0.0, np.ones(1)) if self.prediction == "data" else (1.0, -np.exp(-nodes[:1]))
        elif self.prediction == "data":
            w_x, w = final_weights(nodes)
        else:
            w_x, w = 1.0, final_weights_eps(nodes)
        row = StepTable.empty(1, 1, self.history, self.noises)
        row.A[0] = (1.0, a_end * w_x / a_n)
        row.B[0, 1, 0] = a_end * w[0]
        row.E[0, 1, : w.size - 1] = a_end * w[1:]
        row.tau[0, 0] = grid[-2]
        return row

    def _fill(self, v: StepVariables, available, schedule, grid, start) -> StepTable:
        n = v.h.size
        table = StepTable.empty(n, self.stages, self.history, self.noises)
        table.tau[:] = v.t[:, : self.stages]
        table = replace(table, keep=self.keep)
        infinite = ~np.isfinite(v.h)
        if infinite.any() and self.prediction != "data":
            raise DiffsolveError(
                f"solver {self.name!r} uses {self.prediction!r} prediction, whose step formula is singular on a step "
                "to sigma = 0 (lam = +inf); its program ends such a grid with a separate step "
                "(solver.program(schedule, grid), or ds.sample), or end the grid at a small positive sigma"
            )
        params = self.param_array
        for level in np.unique(available):
            rows = np.flatnonzero(available == level)
            sub = StepTable.empty(rows.size, self.stages, int(level), self.noises)
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # NaNs are reported below
                self.fills[level].py(v.h[rows], np.ascontiguousarray(v.r[rows, :level]), v.log_alpha[rows],
                                     v.log_sigma[rows], params, sub.A, sub.B, sub.E, sub.C)
            table.A[rows], table.B[rows], table.C[rows] = sub.A, sub.B, sub.C
            table.E[rows, :, :level] = sub.E
        for name in ("A", "B", "E", "C"):
            arr = getattr(table, name)
            if np.isnan(arr).any():
                row = int(np.argwhere(np.isnan(arr))[0][0]) + start
                raise DiffsolveError(
                    f"solver {self.name!r} produced NaN coefficients at step {row} (t = {float(grid[row])!r} -> "
                    f"{float(grid[row + 1])!r}); the grid may contain a step the solver cannot take (a step to "
                    "sigma = 0 needs a data-prediction solver without stages: end the grid at a small positive sigma)"
                )
        return table

    def __repr__(self):
        return f"Solver({self.name!r}, order={self.order}, nfe_per_step={self.nfe_per_step}, prediction={self.prediction!r})"




def extrapolation_growth(nodes, at: float) -> np.ndarray:
    """Lebesgue constant sum_i |l_i(at)| of the Lagrange basis on ``nodes`` (the last axis; leading axes are
    independent node sets) at the point ``at``: how much the interpolating polynomial can amplify errors in the
    values it extrapolates."""
    nodes = np.asarray(nodes, dtype=np.float64)
    return np.abs(_lagrange(nodes, np.full(nodes.shape[:-1] + (1,), float(at)))[..., 0]).sum(axis=-1)


def warm_down(lam: np.ndarray, start: int, levels, kappa: float = WARM_DOWN) -> np.ndarray:
    """The levels (history values used) of the steps ``start..N-1`` on a grid of log-SNRs ``lam``, at most
    ``levels``: for the step from node g the largest j whose interpolation nodes lam_g, lam_{g-1}, ..., lam_{g-j},
    extrapolated over the step to lam_{g+1}, amplify errors at most ``kappa`` times as much as uniform nodes do
    (2^{j+1} - 1) and span at most ``WARM_DOWN_SPAN`` in log-SNR (lam_{g+1} - lam_{g-j} <= 4: along a trajectory D
    saturates in lam over a few units, and a polynomial through nodes farther apart extrapolates it badly); steps to
    sigma = 0 keep theirs.

    On a log-SNR grid every level passes; where a step is much longer than the ones before (the last step of a
    time-uniform grid that ends at a small sigma: h = 2.9 after 0.67) the high-order extrapolation is what blew up
    (dpmpp-4m 17-57 against 0.3-1.1 at 8 NFE), and the lower-order formula is used instead, as the published
    ``lower_order_final`` does for the last steps (docs/algorithms/exponential_integrators.md §3.8)."""
    levels = np.asarray(levels, dtype=np.int64)
    g = start + np.arange(levels.size)
    h = lam[g + 1] - lam[g]
    finite = np.isfinite(h)
    out = np.where(finite, 0, levels)
    for j in range(1, int(levels.max(initial=0)) + 1):
        rows = np.flatnonzero(finite & (levels >= j) & (lam[g + 1] - lam[np.maximum(g - j, 0)] <= WARM_DOWN_SPAN))
        nodes = (lam[g[rows, None] - np.arange(j + 1)] - lam[g[rows, None]]) / h[rows, None]
        out[rows[extrapolation_growth(nodes, 1.0) <= kappa * (2 ** (j + 1) - 1)]] = j
    return out


_FINAL_PROBES: dict = {}


def _finite_final_step(solver: Solver) -> bool:
    """Whether the first-order builder of ``solver`` gives finite coefficients on a step to sigma = 0 (cached by
    solver identity and parameters)."""
    key = (solver.name, solver.variant, tuple(np.asarray(solver.param_array, dtype=np.float64).ravel()))
    if key not in _FINAL_PROBES:
        ok = solver.prediction == "data" and solver.stages == 1
        if ok:
            sub = StepTable.empty(1, 1, 0, solver.noises)
            half = 0.5 * np.log(0.5)  # the step's start at alpha^2 = sigma^2 = 1/2, its end at sigma = 0
            with np.errstate(all="ignore"):
                solver.fills[0].py(np.array([np.inf]), np.zeros((1, 0)), np.array([[half, 0.0]]),
                                   np.array([[half, -np.inf]]), solver.param_array, sub.A, sub.B, sub.E, sub.C)
            ok = all(np.isfinite(getattr(sub, k)).all() for k in "ABEC")
        _FINAL_PROBES[key] = ok
    return _FINAL_PROBES[key]


FINALS = ("solver", "denoise", "none")  # end-point policies (build_program)


def check_final(final) -> str:
    """``final`` as one of :data:`FINALS` (a DiffsolveError naming the value otherwise)."""
    if not isinstance(final, str) or final not in FINALS:
        raise DiffsolveError(f"final must be one of {', '.join(map(repr, FINALS))} (how a grid that ends at "
                             f"sigma = 0 takes its last step), got {_plain(final)}; the default is 'solver'")
    return final


def ends_at_zero(schedule, grid) -> bool:
    """Whether ``grid`` ends at sigma = 0 (lam = +inf)."""
    return bool(np.isposinf(schedule.lam(np.asarray(grid, dtype=np.float64)[-1:])).all())


def trim_final(schedule, grid, final: str, start: int = 0) -> np.ndarray:
    """``grid`` without its node at sigma = 0 under ``final="none"`` (the run ends at the last positive sigma)."""
    grid = np.asarray(grid, dtype=np.float64)
    if check_final(final) != "none" or not ends_at_zero(schedule, grid):
        return grid
    if grid.size - 1 - start < 2:
        raise DiffsolveError(f"final='none' drops the grid's step to sigma = 0, and this grid (t = "
                             f"{_plain(grid.tolist())}) has no other step to take; pass a longer grid or final='solver'")
    return grid[:-1]


def build_program(solver: Sampler, schedule, grid, *, start: int = 0, exact_history: bool = False,
                  final: str = "solver") -> Program:
    """The program of ``solver`` on ``grid`` under the end-point policy ``final`` (what a grid ending at sigma = 0
    does with its last step; docs/algorithms/exponential_integrators.md §3.8):

    ``"solver"``  the solver's own step: a deterministic solver without stages fits its state and the model
                  outputs it holds in u = (sigma / alpha)^2 (:meth:`Solver.final_row`), the other deterministic
                  ones a Runge-Kutta step in u of their order (:func:`rk_u_to_zero`), the stochastic ones denoise;
    ``"denoise"`` the one-call denoising step :func:`denoise_to_zero` (first order: x_0 = alpha(0) D) for every
                  solver, as k-diffusion and diffusers' ``lower_order_final`` do;
    ``"none"``    no step to sigma = 0: the run ends at the grid's last positive sigma (:func:`trim_final`).

    A grid that ends at sigma > 0 runs as it is under every policy."""
    grid = trim_final(schedule, grid, final, start)
    if final != "denoise" or not ends_at_zero(schedule, grid) or grid.size - start < 2:
        return solver.program(schedule, grid, start=start, exact_history=exact_history)
    tail = Segment(denoise_to_zero(schedule, grid[-2], grid[-1], solver.prediction))
    if grid.size - start == 2:
        return Program((tail,))
    return Program(solver.program(schedule, grid[:-1], start=start, exact_history=exact_history).segments + (tail,))


FIT_LAM_MIN = 0.0  # the fits to sigma = 0 need lam > this at the last positive node (u = (sigma/alpha)^2 < 1)


def fits_to_zero(lam_n: float) -> bool:
    """Whether a step to sigma = 0 from log-SNR ``lam_n`` is the fit in u (:func:`final_weights`): u_n < 1, i.e.
    signal above noise.  Measured on the quality benchmark's mixtures (docs/benchmarks.md, "End-point policy"):
    from u_n >= 1 the fit is 1.6-1.8x worse than the denoising step (the state is mostly noise there and the
    posterior mean D_n the better estimate), below 1 it is as good or better (0.64-1.0x)."""
    return lam_n > FIT_LAM_MIN


def final_weights(lam_nodes) -> tuple[float, np.ndarray]:
    """Weights (w_x, w) of the step to sigma = 0 from the state x~_n = x_n / alpha_n and the data predictions D_i
    at the log-SNRs ``lam_nodes`` (newest first, lam_nodes[0] = lam_n): x_0 = alpha(0) (w_x x~_n + sum_i w_i D_i).

    In u = (sigma / alpha)^2 = e^{-2 lam} the probability-flow ODE is dx~/du = (x~ - D) / (2u), and along a
    trajectory x~ = P(u) is a smooth function of u (its marginal is the data law convolved with N(0, u I)), so
    D = P - 2u P' =: (L P)(u) with L u^j = (1 - 2j) u^j, and x~_0 = P(0) = (L P)(0).  With P of degree p, Q = L P
    is the degree p - 1 interpolant Q_p of the D_i plus c omega (omega = prod_i (u - u_i)), and c follows from
    P(u_n) = (L^-1 Q)(u_n) = x~_n: x~_0 = Q_p(0) + c omega(0), error O(u^{p+1}).  One node gives (1/2, 1/2), Euler's
    step in u (x~_0 = (x~_n + D_n) / 2, error O(u^2)), against the O(u) of the denoising step x~_0 = D_n.

    Computed in the Lagrange basis on r = u / u_n (nodes r_i >= 1, points in [0, 1]) with
    (L^-1 f)(1) = f(0) - int_0^1 (f(t^2) - f(0)) / t^2 dt by p-point Gauss-Legendre (exact for degree p): no
    monomial system, whose conditioning grows like (u_old / u_n)^p; the weights sum to 1 to rounding."""
    lam = np.asarray(lam_nodes, dtype=np.float64)
    r = np.exp(-2.0 * (lam - lam[0]))
    t, g = _gauss01(lam.size)
    points = np.concatenate([[0.0], t * t])

    def inverse_at_one(values):  # (L^-1 f)(1) from f at the points
        return values[..., 0] - ((values[..., 1:] - values[..., :1]) / (t * t)) @ g

    basis = _lagrange(r, points)
    omega = np.prod(points[None, :] / r[:, None] - 1.0, axis=0)  # omega / prod(u_i), at the points
    w_x = omega[0] / inverse_at_one(omega)
    return float(w_x), basis[:, 0] - w_x * inverse_at_one(basis)


def final_weights_eps(lam_nodes) -> np.ndarray:
    """Weights k_i of the step to sigma = 0 from the state x~_n and the noise predictions eps_i at the log-SNRs
    ``lam_nodes`` (newest first): x_0 = alpha(0) (x~_n + sum_i k_i eps_i).

    In u = (sigma / alpha)^2, dx~/du = g / 2 with g = eps / s (s = sigma / alpha = sqrt(u)) smooth in u along a
    trajectory (:func:`final_weights`), so x~_0 = x~_n - (1/2) int_0^{u_n} g du; g is replaced by its interpolating
    polynomial through (u_i, eps_i / s_i), integrated exactly (Gauss-Legendre with p points):
    k_i = -(u_n / 2) c_i / s_i, c_i = int_0^1 l_i(x) dx on the nodes u_i / u_n.  Error O(u^{p+1}); one node is
    Euler's step in u, x~_0 = x~_n - s_n eps_n / 2."""
    lam = np.asarray(lam_nodes, dtype=np.float64)
    x, weight = _gauss01(lam.size)
    c = _lagrange(np.exp(-2.0 * (lam - lam[0])), x) @ weight
    return -0.5 * c * np.exp(lam - 2.0 * lam[0])


def _gauss01(n: int):
    """Gauss-Legendre points and weights on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w


def _lagrange(nodes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The Lagrange basis l_i(x) on ``nodes`` (..., J) at the points ``x`` (..., P), in product form: shape
    (..., J, P) (leading axes broadcast: independent node sets)."""
    nodes, x = np.asarray(nodes, dtype=np.float64), np.asarray(x, dtype=np.float64)
    J = nodes.shape[-1]
    out = np.ones(np.broadcast_shapes(nodes.shape[:-1], x.shape[:-1]) + (J, x.shape[-1]))
    for i in range(J):
        for m in range(J):
            if m != i:
                out[..., i, :] *= (x - nodes[..., m, None]) / (nodes[..., i, None] - nodes[..., m, None])
    return out


def denoise_to_zero(schedule, t: float, t_end: float, prediction: str) -> StepTable:
    """The one-step table from t to t_end at sigma = 0: one model call F at (x, t), then x_end = alpha(t_end) D with
    D = (F - c_x x)/c_D the data prediction (:mod:`diffsolve.predictions`): the limit of every solver's first-order
    step as lam_end -> +inf (DDIM's, and the reverse SDE's posterior mean, whose variance vanishes there)."""
    c_x, c_D = (float(v) for v in coefficients(prediction, schedule, t))
    a_end = float(schedule.alpha(t_end))
    table = StepTable.empty(1, 1, 0, 0)
    table.A[0] = (1.0, -a_end * c_x / c_D)
    table.B[0, 1, 0] = a_end / c_D
    table.tau[0, 0] = t
    return table


# explicit Runge-Kutta tableaux (c, a, b) in u with every stage at u > 0: Euler; Ralston's second order; Heun's
# third order (Butcher 2016, Numerical Methods for ODEs, §23 and §232)
RK_U = {1: ((0.0,), (), (1.0,)),
        2: ((0.0, 2 / 3), ((2 / 3,),), (0.25, 0.75)),
        3: ((0.0, 1 / 3, 2 / 3), ((1 / 3,), (0.0, 2 / 3)), (0.25, 0.0, 0.75))}


def rk_u_to_zero(schedule, t: float, t_end: float, prediction: str, stages: int = 1) -> StepTable:
    """The step from t to t_end at sigma = 0 of an explicit Runge-Kutta method in u = (sigma / alpha)^2 with
    ``stages`` model calls (:data:`RK_U`: order ``stages``), on dx~/du = (x~ - D) / (2u), whose right side is smooth
    in u along a trajectory (:func:`final_weights`); its stages sit at u_n (1 - c_i) > 0.  Error O(u_n^{stages + 1});
    one stage is Euler's step in u, x_end = alpha(t_end) (x / alpha(t) + D) / 2."""
    c, a, b = RK_U[stages]
    lam_n = float(schedule.lam(t))
    u_n = math.exp(-2.0 * lam_n)
    lam = lam_n - 0.5 * np.log1p(-np.asarray(c))  # the stages' log-SNRs, u_i = u_n (1 - c_i)
    tau = np.concatenate([[t], np.atleast_1d(schedule.t_of_lam(lam[1:]))]) if stages > 1 else np.array([t])
    alpha = np.asarray(schedule.alpha(tau), dtype=np.float64).ravel()
    table = StepTable.empty(1, stages, 0, 0)
    # every quantity as coefficients over (x_n, F_0, ..., F_{S-1}); x~_n = x_n / alpha_n
    x_tilde = [np.eye(stages + 1)[0] / alpha[0]]
    slopes = []
    for i in range(stages):
        if i:
            x_tilde.append(x_tilde[0] - u_n * sum(a[i - 1][j] * slopes[j] for j in range(i)))
        state = alpha[i] * x_tilde[i]  # the model's input x_i
        table.A[0, i], table.B[0, i, :] = state[0], state[1:]
        c_x, c_D = (float(v) for v in coefficients(prediction, schedule, tau[i]))
        data = (np.eye(stages + 1)[1 + i] - c_x * state) / c_D
        slopes.append((x_tilde[i] - data) / (2.0 * u_n * (1.0 - c[i])))
        table.tau[0, i] = tau[i]
    out = float(schedule.alpha(t_end)) * (x_tilde[0] - u_n * sum(b[i] * slopes[i] for i in range(stages)))
    table.A[0, stages], table.B[0, stages, :] = out[0], out[1:]
    return table


# admissible ranges of runtime parameters by name, unless a solver declares its own (extra["bounds"]); a third
# element True makes the lower end open.  eta >= 0 (0: the probability-flow ODE; large eta is checked against the
# grid, see Solver.check_stability); stage fractions c in (0, 1] (the stage node lam_n + c h within the step).
PARAM_BOUNDS = {"eta": (0.0, np.inf), "c1": (0.0, 1.0, True), "c2": (0.0, 1.0, True)}


STABILITY_FACTOR = 4.0  # output / data variance on Gaussian data above which a run is warned about ...
DIVERGENCE_FACTOR = 1e4  # ... and above which it diverges (spread 100x the data's): refused for eta > 1
PROBE_VARIANCES = np.array([1.0, 0.3, 0.1, 0.03, 0.01, 1e-3])  # the data variances it is checked on

_REGISTRY: dict[str, Sampler | Callable[[], Sampler]] = {}
_PATTERNS: list[tuple[re.Pattern, Callable[..., Solver], str]] = []


def register(name: str, solver: Solver | Callable[[], Solver]) -> None:
    """Register a solver (or a zero-argument factory, built on first use)."""
    _REGISTRY[name] = solver


def register_pattern(pattern: str, factory: Callable[..., Solver], example: str) -> None:
    """Register a name pattern, e.g. ``r"dpmpp-(?P<k>\\d+)m"``; groups are passed to ``factory`` as strings."""
    _PATTERNS.append((re.compile(pattern + r"\Z"), factory, example))


def solver_names() -> list[str]:
    return sorted(_REGISTRY)


def get_solver(name, variant: str | None = None, **params) -> Solver:
    """A registered solver by name (``"name:variant"`` also selects a variant), optionally a ``variant`` and
    runtime parameters (``eta=...``)."""
    if isinstance(name, Sampler):
        return name.with_params(**params) if params else name
    if not isinstance(name, str):
        raise DiffsolveError(f"solver must be a name (str) or a Solver, got {type(name).__name__} {name!r}")
    if ":" in name and variant in (None, "exact") and name not in _REGISTRY:  # "name:variant" spelled in one string
        name, _, variant = name.partition(":")
    key = name if variant in (None, "exact") else f"{name}:{variant}"
    entry = _REGISTRY.get(key)
    if entry is None:
        for pattern, factory, _ in _PATTERNS:
            match = pattern.match(name)
            if match:
                entry = factory(**match.groupdict(), variant=variant or "exact")
                break
    if entry is None and variant not in (None, "exact") and (name in _REGISTRY or any(p.match(name) for p, _, _ in _PATTERNS)):
        variants = sorted({k.split(":")[1] for k in _REGISTRY if k.startswith(name + ":")} | {"exact"})
        raise DiffsolveError(f"solver {name!r} has no variant {variant!r}; available variants: {', '.join(variants)}")
    if entry is None:
        from difflib import get_close_matches

        known = solver_names() + [example for _, _, example in _PATTERNS]
        close = get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        what = f"solver {name!r}" + (f" with variant {variant!r}" if variant not in (None, "exact") else "")
        raise DiffsolveError(f"unknown {what}; known solvers: {', '.join(known)} (see `diffsolve solvers`).{hint}")
    if callable(entry) and not isinstance(entry, Sampler):
        entry = entry()
        _REGISTRY[key] = entry
    return entry.with_params(**params) if params else entry


def peer_conventions(solver, variant: str | None = None) -> tuple[dict, str]:
    """(solver parameters, end-point policy) that make ``solver`` step as the peer packages do (the interop
    modules' defaults): no multistep warm-down (diffusers with ``lower_order_final=False``, k-diffusion), and the
    step to sigma = 0 the peers take (:attr:`Solver.PEER_FINAL`: the denoising step, EDM's own Euler step)."""
    sampler = get_solver(solver, variant=variant)
    if not isinstance(sampler, Solver):
        return {}, "solver"
    params = {"warm_down": np.inf} if sampler.family in WARM_DOWN_FAMILIES and sampler.history else {}
    return params, sampler.PEER_FINAL


def list_solvers() -> list[dict]:
    """Metadata rows of every registered solver (name, order, nfe_per_step, prediction, ...)."""
    return [get_solver(name.split(":")[0], variant=(name.split(":") + ["exact"])[1]).metadata() for name in solver_names()]
