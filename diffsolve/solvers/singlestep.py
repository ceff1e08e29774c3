"""Singlestep exponential integrators (:mod:`diffsolve.symbolic.singlestep`): ``dpm-solver-{1,2,3}`` (noise
prediction; Lu et al., DPM-Solver, NeurIPS 2022, arXiv 2206.00927) and ``dpmpp-{2,3}s`` (data prediction;
DPM-Solver++, arXiv 2211.01095); docs/algorithms/exponential_integrators.md §4.

Every shipped name is in SOLVERS (``diffsolve._generated``): variant "exact" is the derivation variant "interp"
(the interpolant of the stage outputs integrated exactly), "published" the papers' algorithm.  Stage fractions are
the parameters ``c1`` (, ``c2``); 3S is third order only for c2 = 2/3 (``ORDER_CONDITION`` of the module, applied
by :meth:`Solver.with_params`).  The first-order step is the k = 1 multistep step (DDIM).
"""

from __future__ import annotations

from ..errors import DiffsolveError
from .modules import shipped, solver_from_modules, solver_from_table, tableau_module
from .multistep import multistep_levels
from .registry import Solver, register_pattern

__all__ = ["FAMILY", "singlestep_name", "singlestep_solver", "build", "from_table"]

FAMILY = "exponential-singlestep"
VARIANTS = ("exact", "published")


def singlestep_name(order: int, prediction: str = "eps") -> str:
    return f"dpm-solver-{order}" if prediction == "eps" else f"dpmpp-{order}s"


def build(name: str, variant: str, modules, clip=None) -> Solver:
    full = modules[-1]
    return solver_from_modules(name, modules, family=FAMILY, variant=variant,
                               description=f"{full.K}-stage singlestep exponential integrator, "
                                           f"{full.PREDICTION} prediction")


def from_table(name: str) -> Solver:
    return solver_from_table(name, build)


def singlestep_solver(order, variant: str = "exact", prediction: str = "eps") -> Solver:
    """``dpm-solver-{1,2,3}`` (noise prediction) / ``dpmpp-{2,3}s`` (data): ``order`` NFE/step, order ``order``
    (declared by the generated module).  ``variant="exact"`` integrates the interpolant of the stage outputs
    exactly (derivation variant ``interp``); ``"published"`` is the papers' algorithm."""
    order = int(order)
    if order not in (1, 2, 3):
        raise DiffsolveError(f"singlestep DPM-Solver orders are 1, 2 and 3, got {order}")
    if variant not in VARIANTS:
        raise DiffsolveError(f"singlestep solvers have variants 'exact' (interpolant) and 'published', got {variant!r}")
    name = singlestep_name(order, prediction)
    registered = name if variant == "exact" else f"{name}:{variant}"
    if shipped(registered) is not None:
        return from_table(registered)
    if order == 1:  # DPM-Solver-1 = DDIM: the k = 1 multistep step, whatever the variant
        return build(name, variant, [tableau_module(*key) for key in multistep_levels(1, "exact", prediction)])
    raise DiffsolveError(f"{registered} is not in the shipped catalog")  # every order 2, 3 variant ships


register_pattern(r"dpm-solver-(?P<order>[123])", lambda order, variant: singlestep_solver(order, variant, "eps"),
                 "dpm-solver-{1,2,3}")
register_pattern(r"dpmpp-(?P<order>[23])s", lambda order, variant: singlestep_solver(order, variant, "data"),
                 "dpmpp-{2,3}s")
