"""``derive(...)``: a solver of any order, derived by SymPy, generated, cached on disk and registered.

Shipped orders load from ``diffsolve/_generated``; any other order is derived and symbolically checked
(:mod:`diffsolve.symbolic`), printed to a content-hashed module in the user cache (``DIFFSOLVE_CACHE_DIR``) and
imported; a second call with the same key reuses the cached file.  The weights never depend on the schedule
(docs/algorithms/exponential_integrators.md §8): a schedule enters only through log alpha and log sigma at the
step's nodes, evaluated when a grid is tabulated, so ``schedule=`` is validated and recorded, and the returned solver samples on any schedule.
"""

from __future__ import annotations

from .errors import DiffsolveError
from .predictions import check_prediction
from .progress import Progress
from .schedules import Schedule
from .solvers.multistep import multistep_solver
from .solvers.singlestep import singlestep_solver
from .solvers.registry import Solver, register

__all__ = ["derive", "FAMILIES"]

FAMILIES = {
    "dpmpp-multistep": ("multistep", "data"),
    "dpm-solver-multistep": ("multistep", "eps"),
    "dpmpp-singlestep": ("singlestep", "data"),
    "dpm-solver-singlestep": ("singlestep", "eps"),
}


def _resolve(family: str, prediction: str | None):
    if family not in FAMILIES:
        raise DiffsolveError(f"unknown solver family {family!r}; expected one of {', '.join(FAMILIES)}")
    kind, default = FAMILIES[family]
    return kind, check_prediction(prediction or default)


def derive(family: str, order: int, prediction: str | None = None, sde: bool = False, variant: str = "exact",
           schedule: Schedule | None = None, progress: bool = True) -> Solver:
    """Derive (or load) the ``family`` solver of ``order`` and register it under its name.

    ``family``: ``dpmpp-multistep`` (data prediction), ``dpm-solver-multistep`` (noise prediction),
    ``dpmpp-singlestep`` / ``dpm-solver-singlestep`` (orders 1-3).  ``sde=True`` gives the reverse-SDE
    (eta) version of the multistep families.  Returns a :class:`Solver` usable by :func:`diffsolve.sample`.
    ``progress``: the elapsed time on stderr when the derivation lasts over a second (a new order, derived by
    SymPy; a shipped or cached one loads at once and shows nothing; :class:`diffsolve.progress.Progress`).
    """
    kind, prediction = _resolve(family, prediction)
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise DiffsolveError(f"order must be a positive integer, got {order!r}")
    if schedule is not None and not isinstance(schedule, Schedule):
        raise DiffsolveError(f"schedule must be a diffsolve Schedule, got {type(schedule).__name__}")
    if kind != "multistep" and sde:
        raise DiffsolveError("the singlestep families are ODE solvers here; use sde=False (SEEDS covers SDE stages)")
    label = f"diffsolve: deriving {family} order {order}{' (SDE)' if sde else ''} with SymPy"
    with Progress(None, label, progress, unit="", delay=1.0):
        if kind == "multistep":
            solver = multistep_solver(order, variant, prediction, sde)
        else:
            solver = singlestep_solver(order, variant, prediction)
    register(solver.name if variant == "exact" else f"{solver.name}:{variant}", solver)
    return solver
