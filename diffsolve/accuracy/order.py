"""Order studies: error of a solver's exact output law against the exact marginal, over refined grids."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import DiffsolveError
from ..grids import time_grid
from ..plots import plot_into
from ..progress import Progress
from ..schedules import Schedule
from ..solvers import get_solver
from ..solvers.registry import build_program, trim_final
from ..targets import Gaussian, Target
from .gaussian_law import initial_law, propagate
from .metrics import METRICS

__all__ = ["OrderStudy", "order_study", "exact_error", "plot_studies"]


@dataclass
class OrderStudy:
    """Errors of one solver at several step counts, and the fitted order (slope of log error vs log h)."""

    solver: str
    metric: str
    steps: list
    h_max: list
    errors: list
    declared_order: float
    nfe: list = field(default_factory=list)
    spacing: str = "logsnr"

    @property
    def order(self) -> float:
        """Least-squares slope of log(error) against log(h_max) over all points."""
        x, y = np.log(self.h_max), np.log(self.errors)
        return float(np.polyfit(x, y, 1)[0])

    slope = order

    @property
    def local_orders(self) -> list:
        x, y = np.log(self.h_max), np.log(self.errors)
        return [float(v) for v in np.diff(y) / np.diff(x)]

    def to_dict(self) -> dict:
        return {"solver": self.solver, "metric": self.metric, "spacing": self.spacing, "steps": self.steps,
                "nfe": self.nfe, "h_max": self.h_max, "errors": self.errors, "order": self.order,
                "local_orders": self.local_orders, "declared_order": self.declared_order}

    def table(self) -> str:
        lines = [f"{self.solver}  ({self.metric}, {self.spacing} grid; declared order {self.declared_order})",
                 f"{'steps':>7} {'NFE':>6} {'h_max':>10} {'error':>12} {'local order':>12}"]
        local = [math.nan] + self.local_orders
        for n, nfe, h, e, p in zip(self.steps, self.nfe, self.h_max, self.errors, local):
            lines.append(f"{n:>7d} {nfe:>6d} {h:>10.4g} {e:>12.4e} {'' if math.isnan(p) else f'{p:12.3f}':>12}")
        lines.append(f"fitted order: {self.order:.3f}")
        return "\n".join(lines)

    def plot(self, path=None, ax=None):
        """Log-log plot of error vs h_max with a reference slope of the declared order: into ``ax`` (returned) when
        given, else saved as PNG to ``path`` (returned), else a new pyplot figure (its Axes returned)."""
        return plot_studies([self], path, ax)

    def __repr__(self):
        return f"OrderStudy({self.solver!r}, metric={self.metric!r}, order={self.order:.3f})"


def plot_studies(studies, path=None, ax=None):
    """:meth:`OrderStudy.plot` of several studies on one log-log plot (same arguments and return value)."""
    studies = list(studies)
    if not studies:
        raise DiffsolveError("plot_studies needs at least one OrderStudy, got none; pass [ds.order_study(...), ...]")

    def draw(ax):
        for st in studies:
            line, = ax.loglog(st.h_max, st.errors, "o-", label=f"{st.solver} (fitted {st.order:.2f})")
            h = np.asarray(st.h_max)
            ref = st.errors[-1] * (h / h[-1]) ** st.declared_order
            ax.loglog(h, ref, ":", color=line.get_color(), alpha=0.7, label=f"slope {st.declared_order:g} reference")
        ax.set_xlabel("largest log-SNR step h_max")
        ax.set_ylabel(f"error ({studies[0].metric}, exact law)")
        ax.set_title("empirical order of convergence")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)

    return plot_into(draw, path, ax, figsize=(6, 4.5), dpi=120)


def exact_error(solver, target: Gaussian, schedule: Schedule, grid, metric: str = "w2", exact_history: bool = True,
                final: str = "solver") -> float:
    """Distance between the solver's exact output law and the exact marginal at grid[-1], from an exact start
    (``final``: the end-point policy of :func:`~diffsolve.solvers.registry.build_program`)."""
    solver = get_solver(solver)
    M = solver.history if exact_history else 0
    grid = trim_final(schedule, grid, final, M)
    if grid.size - 1 <= M:
        raise DiffsolveError(f"{solver.name} needs more than {M} steps on this grid, got {grid.size - 1}")
    mean, cov = initial_law(target, schedule, grid, M, solver.prediction, solver.eta)
    if not exact_history and solver.history:
        mean = np.concatenate([mean, np.zeros((target.dim, solver.history))], axis=1)
        pad = np.zeros((target.dim, 1 + solver.history, 1 + solver.history))
        pad[:, 0, 0] = cov[:, 0, 0]
        cov = pad
    program = build_program(solver, schedule, grid, start=M, exact_history=exact_history, final=final)
    mean, cov = propagate(program, target, schedule, solver.prediction, mean, cov)
    m_ref, v_ref = target.marginal_moments(grid[-1], schedule)
    return METRICS[metric](mean[:, 0], cov[:, 0, 0], m_ref, v_ref)


def order_study(solver, target: Target, schedule: Schedule, steps=(8, 16, 32, 64), metric: str = "w2",
                spacing: str = "logsnr", exact_history: bool = True, progress: bool = False, **grid_options) -> OrderStudy:
    """Measure the empirical order of ``solver`` on an exact Gaussian law.

    For each step count a grid is built (``spacing``), the initial law is the exact marginal (and, for
    multistep solvers, exact history from the reverse process at the first M nodes, which are counted in the
    grid), the output law is propagated exactly, and ``metric`` (``w2``, ``kl``, ``tv-bound``, ``hellinger``)
    compares it with the exact marginal at the last time.  ``progress=True``: one count per grid on stderr
    (:class:`diffsolve.progress.Progress`: a bar on a terminal, a line every 30 s in a log).
    """
    solver = get_solver(solver)
    if not isinstance(target, Gaussian):
        raise DiffsolveError(
            f"order_study computes exact laws and needs a Gaussian target (ds.targets.Gaussian or 'gaussian:d=8'), "
            f"got {target!r}; mixtures need density propagation, which this harness does not do yet"
        )
    if metric not in METRICS:
        raise DiffsolveError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    try:
        if isinstance(steps, (str, bytes)):
            raise TypeError
        steps = list(steps)
    except TypeError:
        raise DiffsolveError(f"steps must be a list of positive integers, got {steps!r}") from None
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in steps):
        raise DiffsolveError(f"steps must be a list of positive integers, got {steps!r}")
    steps = [int(s) for s in steps]
    if len(steps) < 2 or min(steps) < 1 or len(set(steps)) != len(steps):
        raise DiffsolveError(f"steps must hold at least two distinct positive step counts, got {steps}")
    steps = sorted(steps)
    errors, h_max, nfe = [], [], []
    with Progress(len(steps), f"order study {solver.name}", enabled=progress, unit="grids") as bar:
        for n in steps:
            bar.note(f"{n} steps")
            grid = time_grid(schedule, n, spacing, **grid_options)
            err = exact_error(solver, target, schedule, grid, metric, exact_history)
            if not np.isfinite(err) or err <= 0:
                raise DiffsolveError(f"{solver.name}: error {err!r} at {n} steps is not a positive finite number")
            lam = schedule.lam(grid)
            h = np.diff(lam)
            errors.append(err)
            h_max.append(float(np.max(h[np.isfinite(h)])))
            nfe.append(n * solver.nfe_per_step)
            bar.update(1)
    label = solver.name + ("" if solver.variant == "exact" else f":{solver.variant}")
    return OrderStudy(label, metric, steps, h_max, errors, float(solver.order), nfe,
                      spacing if isinstance(spacing, str) else "explicit")
