"""DEIS, the diffusion exponential integrator sampler (Zhang & Chen, "Fast Sampling of Diffusion Models with
Exponential Integrator", ICLR 2023, arXiv 2204.13902): ``deis-{k}`` for any k >= 1, 1 NFE/step, noise prediction,
ODE order k (docs/algorithms/deis.md).

In x/alpha the probability-flow ODE is d(x/alpha) = eps d(rho), rho = sigma/alpha.  A k-step DEIS integrates it
exactly against a polynomial through the last k model outputs:

    x_{n+1} = alpha_{n+1} (x_n/alpha_n + sum_{j<k} C_j eps_{n-j})

Variants (``get_solver("deis-3", variant=...)``):

* ``"logrho"`` (the default): the Lagrange polynomial in log rho = -lam, integrated exactly in rho, as diffusers'
  ``DEISMultistepScheduler`` (``solver_type="logrho"``) does.  That is DPM-Solver multistep in noise prediction
  with exact weights, ``dpm-solver-{k}m`` (Lu et al. 2022a; :func:`diffsolve.symbolic.deis.check_logrho` proves
  the identity), so this variant runs its generated tables.
* ``"tab"``: the paper's tAB-DEIS, eps extrapolated by the Lagrange polynomial L_j in t through t_n, ...,
  t_{n-k+1}, so C_j = int_{t_n}^{t_{n+1}} L_j(t(rho)) d rho.  These weights are integrals over the schedule, not
  expressions of the per-step variables a generated builder receives: :class:`TabSolver` fills its table from the
  schedule by Gauss-Legendre quadrature in rho (:func:`tab_weights`).

The default is measured (docs/algorithms/deis.md §5): on exact Gaussian laws logrho has the smaller error on
log-SNR, Karras and quadratic grids and on edm; tab only on grids uniform in t.  The first k - 1 steps warm up
with the lower-order formulas of the same variant, as diffusers does with ``lower_order_final=False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import DiffsolveError
from ..errors import plain as _plain
from ..schedules import DiscreteSchedule
from ..tableau import StepTable, StepVariables
from .modules import solver_from_modules, tableau_module
from .multistep import MAX_ORDER, multistep_levels
from .registry import Builder, Solver, register_pattern

__all__ = ["FAMILY", "VARIANTS", "DEFAULT_VARIANT", "REFERENCE", "TabSolver", "deis_solver", "tab_weights"]

FAMILY = "deis"
REFERENCE = "Zhang & Chen, DEIS, ICLR 2023 (arXiv 2204.13902); docs/algorithms/deis.md"
DEFAULT_VARIANT = "logrho"  # the smaller exact-law error on most grids (docs/algorithms/deis.md §5)

GAUSS_NODES = 16  # Gauss-Legendre points per panel
PANEL_WIDTH = 0.5  # largest panel in log rho (= the log-SNR width): rho_hi / rho_lo <= e^0.5
TAIL_WIDTHS = 80  # a step to rho = 0 (sigma = 0): panels down to rho_hi e^{-40}, then [0, rho_hi e^{-40}]
_X, _W = np.polynomial.legendre.leggauss(GAUSS_NODES)


def _kinks(schedule, t_lo: float, t_hi: float) -> np.ndarray:
    """Times strictly inside (t_lo, t_hi) where t(rho) is not smooth: the nodes of a discrete schedule (log alpha
    piecewise linear in t); none for the others."""
    if not isinstance(schedule, DiscreteSchedule):
        return np.empty(0)
    nodes = schedule.t_nodes
    return nodes[(nodes > t_lo) & (nodes < t_hi)]


def _panels(schedule, t_lo: float, t_hi: float, rho_lo: float, rho_hi: float) -> np.ndarray:
    """Panel edges in rho, increasing from rho_lo to rho_hi: the schedule's kinks, and geometric panels of width
    at most PANEL_WIDTH in log rho between them (rho_lo = 0: geometric down to rho_hi e^{-40}, then to 0)."""
    inner = _kinks(schedule, t_lo, t_hi)
    with np.errstate(divide="ignore"):
        rho_inner = np.exp(schedule.log_sigma(inner) - schedule.log_alpha(inner))
    cuts = np.concatenate([[rho_lo], np.sort(rho_inner), [rho_hi]])
    edges = [cuts[:1]]
    for a, b in zip(cuts[:-1], cuts[1:]):
        if a > 0:
            m = max(1, int(np.ceil(np.log(b / a) / PANEL_WIDTH)))
            edges.append(a * (b / a) ** (np.arange(1, m + 1) / m))
        else:
            edges.append(b * np.exp(-PANEL_WIDTH * np.arange(TAIL_WIDTHS, -1, -1)))
    return np.concatenate(edges)


def tab_weights(schedule, nodes, t_end) -> np.ndarray:
    """C[n, j] = int_{t_n}^{t_end[n]} L_j(t) d rho(t), rho = sigma/alpha, for the Lagrange basis L_j in t through
    ``nodes[n]`` = (t_n, t_{n-1}, ...) (shape (N, J)); ``t_end[n]`` < t_n, sigma = 0 allowed there.

    Gauss-Legendre quadrature in rho, GAUSS_NODES points on panels at most PANEL_WIDTH wide in log rho, split at
    the kinks of a discrete schedule; t(rho) = t_of_lam(-log rho).  Exact (to rounding) where t is a polynomial
    in rho (edm); ~1e-15 relative where t(rho) is analytic on the panels (docs/algorithms/deis.md §3)."""
    nodes = np.atleast_2d(np.asarray(nodes, dtype=np.float64))
    t_end = np.asarray(t_end, dtype=np.float64).reshape(-1)
    n_steps, J = nodes.shape
    if t_end.size != n_steps or not np.all(t_end < nodes[:, 0]):
        raise DiffsolveError(f"t_end must hold one end time below each step's start nodes[:, 0], got t_end = "
                             f"{_plain(t_end)} for nodes[:, 0] = {_plain(nodes[:, 0])}; pass t_end[n] < nodes[n, 0]")
    if J > 1 and np.any(np.diff(np.sort(nodes, axis=1), axis=1) == 0):
        raise DiffsolveError(f"the interpolation nodes of a step must be distinct times, got nodes = {_plain(nodes)}")
    with np.errstate(divide="ignore"):
        rho_start = np.exp(schedule.log_sigma(nodes[:, 0]) - schedule.log_alpha(nodes[:, 0]))
        rho_end = np.exp(schedule.log_sigma(t_end) - schedule.log_alpha(t_end))
    owner, rho, weight = [], [], []
    for n in range(n_steps):
        edges = _panels(schedule, t_end[n], nodes[n, 0], rho_end[n], rho_start[n])
        mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
        rho.append((mid[:, None] + half[:, None] * _X).ravel())
        weight.append((half[:, None] * _W).ravel())
        owner.append(np.full(rho[-1].size, n))
    owner, rho, weight = np.concatenate(owner), np.concatenate(rho), np.concatenate(weight)
    tau = schedule.t_of_lam(-np.log(rho))
    diff = tau[:, None] - nodes[owner]  # (P, J): tau - T_m
    out = np.empty((n_steps, J))
    for j in range(J):
        others = [m for m in range(J) if m != j]
        scale = weight / np.prod(nodes[:, [j]] - nodes[:, others], axis=1)[owner]
        # minus: the step runs from rho_start down to rho_end, the panels upwards
        out[:, j] = -np.bincount(owner, weights=scale * np.prod(diff[:, others], axis=1), minlength=n_steps)
    return out


def _schedule_only(*args):
    raise DiffsolveError("the tAB-DEIS weights are integrals over the schedule between the grid nodes, not a "
                         "function of the per-step variables: build the table with solver.program(schedule, grid)")


def _start_node(params, r):
    return (0.0,)  # one stage, at the step's start


@dataclass(frozen=True, repr=False)
class TabSolver(Solver):
    """tAB-DEIS of order ``history + 1``: a one-stage noise-prediction multistep Solver whose coefficient table is
    integrated over the schedule (:func:`tab_weights`) instead of filled by a generated builder.

    Warm-up: step n uses every earlier grid node up to k - 1 of them (the Lagrange basis in t needs no finite
    log-SNR there); a step may end at sigma = 0 (rho = 0), none may start at alpha = 0."""

    def takes_final_step(self) -> bool:
        """A step to sigma = 0 (rho = 0) is an ordinary step of the tAB table (finite weights, full order)."""
        return True

    def levels(self, schedule, grid, start: int = 0, exact_history: bool = False) -> np.ndarray:
        n = np.asarray(grid).size - 1 - start
        if exact_history:
            return np.full(n, self.history, dtype=np.int64)
        return np.minimum(np.arange(start, start + n), self.history).astype(np.int64)

    def _fill(self, v: StepVariables, available, schedule, grid, start) -> StepTable:
        t = np.asarray(grid, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(v.log_alpha[:, 0]))
        if bad.size:
            i = int(bad[0]) + start
            raise DiffsolveError(f"solver {self.name!r} (noise prediction) cannot start a step at alpha = 0: grid[{i}] "
                                 f"= {_plain(float(t[i]))} has alpha = 0 on schedule {schedule.name!r}; start the "
                                 "grid at a time with alpha > 0")
        n = v.h.size
        table = StepTable.empty(n, 1, self.history, 0)
        table.tau[:] = v.t[:, :1]
        table.A[:, 0] = 1.0
        table.A[:, 1] = np.exp(v.log_alpha[:, 1] - v.log_alpha[:, 0])
        alpha_end = np.exp(v.log_alpha[:, 1])
        for level in np.unique(available):
            rows = np.flatnonzero(available == level)
            g = start + rows  # the steps' start nodes in the grid
            nodes = t[g[:, None] - np.arange(level + 1)[None, :]]
            weights = alpha_end[rows, None] * tab_weights(schedule, nodes, t[g + 1])
            table.B[rows, 1, 0] = weights[:, 0]
            table.E[rows, 1, :level] = weights[:, 1:]
        return table


def _check_order(k) -> int:
    k = int(k)
    if not 1 <= k <= MAX_ORDER:
        raise DiffsolveError(f"deis-{k}: the order k must be between 1 and {MAX_ORDER}, got {k}; pass e.g. deis-3")
    return k


def _tab(k: int) -> Solver:
    return TabSolver(
        name=f"deis-{k}", family=FAMILY, order=k, nfe_per_step=1, prediction="eps", stochastic=False, stages=1,
        history=k - 1, noises=0, fills=(Builder(_schedule_only, _start_node),) * k,
        reference=f"{REFERENCE} (tAB-DEIS: Lagrange extrapolation of eps in t)", variant="tab",
        description=f"{k}-step tAB-DEIS: eps extrapolated in t, weights integrated over the schedule",
        extra={"declared_order": k, "generic_order": k, "order_condition": ()},
    )


def _logrho(k: int) -> Solver:
    modules = [tableau_module(*key) for key in multistep_levels(k, "exact", "eps", False)]
    return solver_from_modules(
        f"deis-{k}", modules, family=FAMILY, variant="logrho",
        description=f"{k}-step DEIS in log rho (diffusers' DEISMultistepScheduler) = dpm-solver-{k}m",
        cite=f"{REFERENCE} (log-rho form of diffusers' DEISMultistepScheduler, identical to dpm-solver-{k}m)")


VARIANTS = {"logrho": _logrho, "tab": _tab}


def deis_solver(k, variant: str = "exact") -> Solver:
    """``deis-{k}`` of ``variant`` ("logrho", "tab"; the registry's "exact" is the default, "logrho")."""
    k = _check_order(k)
    chosen = DEFAULT_VARIANT if variant == "exact" else variant
    if not isinstance(chosen, str) or chosen not in VARIANTS:
        raise DiffsolveError(f"deis-{k} has variants {', '.join(map(repr, VARIANTS))}, got variant = "
                             f"{_plain(variant)}; pass e.g. variant='tab' (the paper's tAB-DEIS)")
    return _built(k, chosen)


@lru_cache(maxsize=None)
def _built(k: int, variant: str) -> Solver:
    return VARIANTS[variant](k)


register_pattern(r"deis-(?P<k>\d+)", lambda k, variant: deis_solver(int(k), variant), "deis-{k}")
