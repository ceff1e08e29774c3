"""Multistep exponential integrators (:mod:`diffsolve.symbolic.multistep`): ``dpmpp-{k}m[-sde]`` (data
prediction), ``dpm-solver-{k}m[-sde]`` (noise prediction), and their first-order aliases ``ddim`` and ``ddpm``.

A k-step solver uses the generated modules of orders 1..k as its warm-up levels: the catalog keys of a shipped
name come from SOLVERS (``diffsolve._generated``), those of any other order k <= MAX_ORDER from
MULTISTEP_VARIANTS (the variant's tableau where it exists for that order, "exact" below it).  Orders, NFE/step
and references are the generated modules' (Lu et al., DPM-Solver++, arXiv 2211.01095;
docs/algorithms/exponential_integrators.md §3).  ddim and ddpm live here because they are the k = 1 steps
(Euler-Maruyama, the explicit SDE step, is :mod:`diffsolve.solvers.euler`).
"""

from __future__ import annotations

from ..errors import DiffsolveError
from .modules import shipped, solver_from_modules, solver_from_table, table, tableau_module
from .registry import Solver, register_pattern

__all__ = ["FAMILY", "MAX_ORDER", "ALIASES", "multistep_name", "multistep_levels", "multistep_solver", "build",
           "from_table"]

FAMILY = "exponential-multistep"
MAX_ORDER = 12
_PREFIX = {"data": "dpmpp", "eps": "dpm-solver"}

# alias -> (citation of the alias' own paper, description); the tableau is the k = 1 multistep step
ALIASES = {
    "ddim": ("Song, Meng, Ermon, DDIM, ICLR 2021 (arXiv 2010.02502)",
             "DDIM = DPM-Solver-1: exact linear part, model held constant over the step"),
    "ddpm": ("Ho, Jain, Abbeel, DDPM, NeurIPS 2020 (arXiv 2006.11239)",
             "ancestral step = posterior q(x_t | x_s, x_0 = D) at eta = 1, any schedule"),
}


def multistep_name(k: int, prediction: str = "data", sde: bool = False) -> str:
    return f"{_PREFIX[prediction]}-{k}m" + ("-sde" if sde else "")


def multistep_levels(k: int, variant: str = "exact", prediction: str = "data", sde: bool = False) -> tuple:
    """The catalog keys of the warm-up levels 1..k (from MULTISTEP_VARIANTS of the shipped catalog)."""
    variants = table("MULTISTEP_VARIANTS")
    orders = variants.get(variant, ())
    if orders is not None and k not in orders:
        have = [v for v, o in variants.items() if o is None or k in o]
        raise DiffsolveError(f"{multistep_name(k, prediction, sde)} has variants {', '.join(map(repr, have))}, "
                             f"got {variant!r}")
    return tuple(("multistep", j, prediction, sde, variant if orders is None or j in orders else "exact")
                 for j in range(1, k + 1))


def build(name: str, variant: str, modules, clip=None) -> Solver:
    """The Solver of a multistep name (or alias) from its level modules."""
    full = modules[-1]
    cite, description = ALIASES.get(name, ("", None))
    if description is None:
        description = (f"{full.K}-step exponential integrator in {full.PREDICTION} prediction"
                       + (", reverse SDE (eta)" if full.SDE else ""))
    return solver_from_modules(name, modules, family=FAMILY, variant=variant, description=description, cite=cite)


def from_table(name: str) -> Solver:
    return solver_from_table(name, build)


def multistep_solver(k, variant: str = "exact", prediction: str = "data", sde: bool = False) -> Solver:
    """``dpmpp-{k}m`` (ODE) / ``dpmpp-{k}m-sde``: k-step exponential integrator, 1 NFE/step; the declared orders
    are the generated modules' (ODE order k for "exact"; the published 3M is order 2; SDE weak order 2 for k >= 2,
    measured and flagged uncertain, strong order 1)."""
    k = int(k)
    if not 1 <= k <= MAX_ORDER:
        raise DiffsolveError(f"multistep order k must be between 1 and {MAX_ORDER}, got {k}")
    name = multistep_name(k, prediction, sde)
    registered = name if variant == "exact" else f"{name}:{variant}"
    if shipped(registered) is not None:
        return from_table(registered)
    levels = multistep_levels(k, variant, prediction, sde)
    return build(name, variant, [tableau_module(*key) for key in levels])


register_pattern(r"dpmpp-(?P<k>\d+)m", lambda k, variant: multistep_solver(k, variant), "dpmpp-{k}m")
register_pattern(r"dpmpp-(?P<k>\d+)m-sde", lambda k, variant: multistep_solver(k, variant, sde=True), "dpmpp-{k}m-sde")
register_pattern(r"dpm-solver-(?P<k>\d+)m", lambda k, variant: multistep_solver(k, variant, prediction="eps"),
                 "dpm-solver-{k}m")
register_pattern(r"dpm-solver-(?P<k>\d+)m-sde",
                 lambda k, variant: multistep_solver(k, variant, prediction="eps", sde=True), "dpm-solver-{k}m-sde")
