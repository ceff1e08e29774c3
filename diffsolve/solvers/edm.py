"""EDM's samplers (Karras, Aittala, Aila, Laine, "Elucidating the Design Space of Diffusion-Based Generative
Models", NeurIPS 2022, arXiv 2206.00364, Algorithms 1 and 2): ``euler`` (order 1, 1 NFE/step) and ``heun``
(order 2, 2 NFE/step; Euler on a last step to sigma = 0), data prediction, with EDM's churn (docs/algorithms/edm.md).

On any schedule they integrate the probability-flow ODE of y = x/alpha in rho = sigma/alpha (EDM's sigma; the
edm schedule has rho = t), dy/drho = (y - D)/rho, D the data prediction:

* churn: gamma_n = min(s_churn/N, sqrt(2) - 1) where s_tmin <= rho_n <= s_tmax (else 0), N the grid's step count;
  rho_hat = rho_n (1 + gamma_n) and y_hat = y_n + s_noise sqrt(rho_hat^2 - rho_n^2) xi (the forward process from
  rho_n to rho_hat); the model is called at t_hat, rho(t_hat) = rho_hat;
* Euler from rho_hat to rho_{n+1}: y = q y_hat + (1 - q) D(t_hat), q = rho_{n+1}/rho_hat (without churn this is
  DDIM, ``ddim``);
* Heun: the explicit trapezoid rule, a second call at the Euler point at t_{n+1}, unless sigma_{n+1} = 0.

k-diffusion's ``sample_euler`` / ``sample_heun`` are this on the edm schedule.  The stage time t_hat lies above
the step's start node and depends on the grid's step count, so the registry's generated builders (stage 0 at the
start node, fractions from the per-step variables) cannot express it: :class:`EdmSolver` fills its table in
closed form from the schedule (:func:`edm_table`); every backend, the Stepper and the exact-law harnesses run it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import DiffsolveError
from ..errors import plain as _plain
from ..program import Program, Segment
from ..tableau import StepTable
from .registry import Builder, Solver, register_pattern

__all__ = ["FAMILY", "REFERENCE", "EdmSolver", "edm_table", "churn_levels", "edm_solver"]

FAMILY = "edm"
REFERENCE = ("Karras, Aittala, Aila, Laine, Elucidating the Design Space of Diffusion-Based Generative Models, "
             "NeurIPS 2022 (arXiv 2206.00364), Alg. 1-2; docs/algorithms/edm.md")
PARAMS = ("s_churn", "s_tmin", "s_tmax", "s_noise")
DEFAULTS = (0.0, 0.0, np.inf, 1.0)
BOUNDS = {name: (0.0, np.inf) for name in PARAMS}
GAMMA_MAX = np.sqrt(2.0) - 1.0  # EDM's cap on gamma (Alg. 2): at most doubles the noise variance


def churn_levels(solver: Solver, schedule, grid, start: int = 0, stop: int | None = None):
    """``(gamma, t_hat, log_alpha_hat, log_rho_hat)`` of the steps ``start..stop-1`` of ``grid``: EDM's gamma_n
    (Alg. 2) from the solver's ``s_churn`` (over the grid's N steps), ``s_tmin`` and ``s_tmax`` (compared with
    rho_n = sigma_n/alpha_n; a node at rho = inf, alpha = 0, is not churned), and the raised noise level there."""
    t = np.asarray(grid, dtype=np.float64)
    stop = t.size - 1 if stop is None else stop
    t0 = t[start:stop]
    la0 = schedule.log_alpha(t0)
    with np.errstate(invalid="ignore"):
        lr0 = schedule.log_sigma(t0) - la0
    rho0 = np.exp(lr0)
    p = dict(zip(solver.param_names, solver.params))
    inside = np.isfinite(lr0) & (p["s_tmin"] <= rho0) & (rho0 <= p["s_tmax"])
    gamma = np.where(inside, min(p["s_churn"] / (t.size - 1), GAMMA_MAX), 0.0)
    lrh = lr0 + np.log1p(gamma)
    churned = gamma > 0
    lam_lo = schedule.lam_range[0]
    beyond = np.flatnonzero(churned & (-lrh < lam_lo))
    if beyond.size:
        i = int(beyond[0])
        raise DiffsolveError(
            f"solver {solver.name!r}: churn (s_churn = {_plain(p['s_churn'])}) raises rho = sigma/alpha at grid[{start + i}]"
            f" = {_plain(float(t0[i]))} from {rho0[i]:.6g} to {np.exp(lrh[i]):.6g}, beyond the largest rho "
            f"{np.exp(-lam_lo):.6g} that schedule {schedule.name!r} covers; pass s_tmax below {rho0[i]:.6g} or start "
            "the grid at a smaller time")
    t_hat = t0.copy()
    if churned.any():
        t_hat[churned] = schedule.t_of_lam(-lrh[churned])
    lah = np.where(churned, schedule.log_alpha(t_hat), la0)
    return gamma, t_hat, lah, lrh


def edm_table(solver: Solver, schedule, grid, start: int, stop: int, stages: int) -> StepTable:
    """The table of steps ``start..stop-1`` of ``grid``: Euler (``stages=1``) or Heun (``stages=2``, every step
    must end at sigma > 0) from the churned level rho_hat (module docstring), in x = alpha y:

    stage 0   x_hat = (alpha_hat/alpha_n) x_n + alpha_hat rho_n s_noise sqrt(gamma (2 + gamma)) xi      at t_hat
    Euler     x_e   = (sigma_{n+1}/sigma_hat) x_hat + alpha_{n+1} p D_0,   p = 1 - q, q = rho_{n+1}/rho_hat
    Heun      x'    = (sigma_{n+1}/sigma_hat) x_hat + alpha_{n+1} (p (1 - 2p) D_0 + p D_1)/(2q),  D_1 at (x_e, t_{n+1})
    """
    t = np.asarray(grid, dtype=np.float64)
    gamma, t_hat, lah, lrh = churn_levels(solver, schedule, t, start, stop)
    t0, t1 = t[start:stop], t[start + 1:stop + 1]
    la0, la1 = schedule.log_alpha(t0), schedule.log_alpha(t1)
    with np.errstate(invalid="ignore", divide="ignore"):
        lr0 = schedule.log_sigma(t0) - la0
        lr1 = schedule.log_sigma(t1) - la1
        gap = lr1 - lrh  # log q < 0; -inf on a step to sigma = 0
        q, p = np.exp(gap), -np.expm1(gap)
        a0 = np.exp(lah - la0)
        c0 = np.where(gamma > 0, np.exp(lah + lr0) * np.sqrt(gamma * (2.0 + gamma)), 0.0) * solver.param("s_noise")
        kx = np.exp(la1 + lr1 - lah - lrh)  # sigma_{n+1}/sigma_hat
    if stages > 1 and np.any(q == 0):
        raise DiffsolveError(f"solver {solver.name!r}: a Heun step cannot end at sigma = 0; the last step to sigma = 0 "
                             "is an Euler step (solver.program(schedule, grid) builds it)")
    table = StepTable.empty(t0.size, stages, 0, solver.noises)
    table.tau[:, 0] = t_hat
    table.A[:, 0] = a0
    table.A[:, 1:] = (kx * a0)[:, None]
    table.B[:, 1:, 0] = (np.exp(la1) * p)[:, None]
    if solver.noises:
        table.C[:, 0, 0] = c0
        table.C[:, 1:, 0] = (kx * c0)[:, None]
    if stages > 1:
        table.tau[:, 1] = t1
        table.B[:, 2, 0] = np.exp(la1) * p * (1.0 - 2.0 * p) / (2.0 * q)
        table.B[:, 2, 1] = np.exp(la1) * p / (2.0 * q)
    return StepTable(A=table.A, B=table.B, E=table.E, C=table.C, tau=table.tau)


def _schedule_only(*args):
    raise DiffsolveError("EDM's churned stage time depends on the schedule and the grid's step count, not only on the "
                         "per-step variables: build the table with solver.program(schedule, grid)")


def _fractions(stages):
    nominal = (0.0, 1.0)[:stages]  # without churn: stage 0 at the step's start, Heun's second at its end
    return lambda params, r: nominal


@dataclass(frozen=True, repr=False)
class EdmSolver(Solver):
    """EDM's Euler (``stages=1``) or Heun (``stages=2``) sampler with churn: a history-free data-prediction Solver
    whose table is filled in closed form from the schedule and grid (:func:`edm_table`) instead of by a generated
    builder.  A grid may end at sigma = 0: Heun takes its last step as an Euler step (a second segment)."""

    def with_params(self, **params) -> "EdmSolver":
        """A copy with ``s_churn``, ``s_tmin``, ``s_tmax``, ``s_noise`` changed; a positive churn makes the solver
        stochastic (one normal per step)."""
        out = super().with_params(**params)
        if out.param("s_tmin") > out.param("s_tmax"):
            raise DiffsolveError(f"solver {self.name!r}: s_tmin = {_plain(out.param('s_tmin'))} is above s_tmax = "
                                 f"{_plain(out.param('s_tmax'))}, so no step would be churned; pass s_tmin <= s_tmax")
        noisy = out.param("s_churn") > 0 and out.param("s_noise") > 0
        return replace(out, stochastic=noisy, noises=int(noisy))

    PEER_FINAL = "solver"  # k-diffusion's sample_euler / sample_heun end with this Euler step (churned)

    def takes_final_step(self) -> bool:
        """A step to sigma = 0 is EDM's Euler step (q = 0: the data prediction at t_hat)."""
        return True

    def program(self, schedule, grid, *, start: int = 0, exact_history: bool = False) -> Program:
        """One segment of :func:`edm_table` for the steps ``start..N-1``; for Heun on a grid that ends at sigma = 0,
        the last step is a second, Euler segment (k-diffusion's ``sample_heun`` takes that step so)."""
        t = np.asarray(grid, dtype=np.float64)
        N = t.size - 1
        split = N - 1 if self.stages > 1 and N > start and schedule.sigma(t[-1]) == 0 else N
        parts = [(start, split, self.stages), (max(start, split), N, 1)]
        return Program(tuple(Segment(edm_table(self, schedule, t, a, b, s)) for a, b, s in parts if b > a))

    def table(self, schedule, grid, *, start: int = 0, exact_history: bool = False) -> StepTable:
        """The coefficient table of :meth:`program`, where that is one segment (Heun on a grid ending at sigma = 0
        is two: use :meth:`program`)."""
        segments = self.program(schedule, grid, start=start).segments
        if len(segments) != 1:
            raise DiffsolveError(f"solver {self.name!r} on a grid ending at sigma = 0 takes its last step as an Euler "
                                 "step, a second segment: use solver.program(schedule, grid)")
        return segments[0].table


SAMPLERS = {  # name: (stages, order, description)
    "euler": (1, 1, "EDM's Euler sampler with churn (Karras et al. 2022, Alg. 2 without the correction); "
                    "without churn = ddim"),
    "heun": (2, 2, "EDM's Heun sampler with churn (Karras et al. 2022, Alg. 1-2): trapezoid in rho = sigma/alpha"),
}


def edm_solver(name: str, variant: str = "exact") -> EdmSolver:
    """``euler`` or ``heun`` (one variant, the registry's "exact")."""
    if variant != "exact":
        raise DiffsolveError(f"solver {name!r} has no variants, got variant = {_plain(variant)}; omit variant")
    stages, order, description = SAMPLERS[name]
    return EdmSolver(
        name=name, family=FAMILY, order=order, nfe_per_step=stages, prediction="data", stochastic=False,
        stages=stages, history=0, noises=0, fills=(Builder(_schedule_only, _fractions(stages)),),
        param_names=PARAMS, params=DEFAULTS, reference=REFERENCE, description=description,
        extra={"bounds": BOUNDS, "declared_order": order, "generic_order": order, "order_condition": ()},
    )


_BUILT = {name: edm_solver(name) for name in SAMPLERS}
for _name in SAMPLERS:
    register_pattern(_name, lambda variant, _name=_name: _BUILT[_name] if variant == "exact"
                     else edm_solver(_name, variant), _name)
