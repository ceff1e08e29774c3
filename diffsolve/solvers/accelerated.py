"""The accelerated samplers (:mod:`diffsolve.symbolic.accelerated`):

    accel-ddim, accel-ddpm   Li, Huang, Efimov, Wei, Chi, Chen, Accelerating Convergence of Score-Based Diffusion
                             Models, Provably, ICML 2024 (arXiv 2403.03852); docs/algorithms/accelerated.md Part A
    accel-sde                diffsolve's reconstruction following Li & Cai's description (arXiv 2410.23285);
                             docs/algorithms/accelerated.md B.2 -- never cite its numbers as Li & Cai's

Every name and variant is in SOLVERS (``diffsolve._generated``): its warm-up levels (accel-ddim form (b) starts
with DDIM, form (a) with DPM-Solver-2; accel-sde with its a = 1/2 start-up step) and, for accel-sde, the
momentum correction that the runtime adds with its norm capped.  Orders, NFE/step, references and the
uncertainty flags (form (a) and accel-sde are reconstructions) are the generated modules'.  Variants are chosen by
``get_solver(name, variant=...)``; accel-sde's parameters ``a`` and ``c`` by keyword.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import DiffsolveError
from .modules import module_key, solver_from_modules, solver_from_table, split_name, table
from .registry import Builder, MomentumClip, Solver

__all__ = ["FAMILY", "ACCEL_DDIM_VARIANTS", "ACCEL_DDPM_VARIANTS", "ACCEL_SDE_MOMENTA", "CLIP_DEFAULT",
           "accel_ddim_solver", "accel_ddpm_solver", "accel_sde_solver", "build", "from_table"]

FAMILY = "accelerated"
CLIP_DEFAULT = 2.0  # accel-sde: the momentum's norm in eps units is capped at c sqrt(d) (runtime parameter c)

_DDIM_WHAT = {"repo": "2-step exponential integrator in abar",
              "phi-psi": "Phi/Psi form with the auxiliary point on the previous node"}


def _variants(base: str, clip: bool = False) -> dict:
    """derivation variant (of the full method, or of the clip term's momentum rule) -> registered name, default
    first, from SOLVERS."""
    out = {}
    for name, (family, levels, clip_key) in table("SOLVERS").items():
        if split_name(name)[0] == base:
            out[clip_key[4].removeprefix("correction-") if clip else levels[-1][4]] = name
    return dict(sorted(out.items(), key=lambda item: ":" in item[1]))


ACCEL_DDIM_VARIANTS = tuple(_variants("accel-ddim"))  # ("repo", "phi-psi")
ACCEL_DDPM_VARIANTS = tuple(_variants("accel-ddpm"))  # ("readme", "ddpm-type")
ACCEL_SDE_MOMENTA = tuple(_variants("accel-sde", clip=True))  # ("ratio", "constant")


def build(name: str, variant: str, modules, clip=None) -> Solver:
    full = modules[-1]
    nfe, order = full.NFE_PER_STEP, full.ORDER
    if name == "accel-ddim":
        what = _DDIM_WHAT.get(full.VARIANT, full.VARIANT)
        return solver_from_modules(name, modules, family=FAMILY, variant=variant,
                                   description=f"accelerated DDIM ({what}, {nfe} NFE/step), ODE order {order}")
    if name == "accel-ddpm":
        what = ("accelerated DDPM (split noise around the score call)" if full.VARIANT == "readme" else
                "DDPM-type score-form Euler-Maruyama baseline")
        return solver_from_modules(name, modules, family=FAMILY, variant=variant,
                                   description=f"{what}, {nfe} NFE/step, weak order {order}")
    momentum = clip.VARIANT.removeprefix("correction-")
    solver = solver_from_modules(
        name, modules, family=FAMILY, variant=variant,
        corrections=(MomentumClip(Builder(clip.fill, clip.fractions), "c"),),
        description=f"accel-sde (reconstruction following Li & Cai's description): DDPM-type step with a clipped "
                    f"{momentum!r} momentum, {nfe} NFE/step, weak order {order} (Gaussian-derived)",
        extra={"reconstruction": True, "momentum": momentum, "bounds": {"a": (0.0, 0.5), "c": (0.0, np.inf)},
               "clip_key": module_key(clip)},
    )
    return replace(solver, param_names=solver.param_names + ("c",), params=solver.params + (CLIP_DEFAULT,))


def from_table(name: str) -> Solver:
    return solver_from_table(name, build)


def _solver(base: str, variants: dict, variant: str | None, what: str) -> Solver:
    """The registered solver of ``base`` whose derivation variant is ``variant`` (None / "" / "exact": the
    default), labelled with the variant as given (as ``get_solver`` would for a registered name)."""
    v = next(iter(variants)) if variant in (None, "", "exact") else variant
    if v not in variants:
        raise DiffsolveError(f"{base} variants are {list(variants)} (default {next(iter(variants))!r}{what}); "
                             f"got {variant!r}")
    solver = from_table(variants[v])
    return solver if variant in (None, "", "exact") else replace(solver, variant=variant)


def accel_ddim_solver(variant: str | None = None) -> Solver:
    """``accel-ddim``: accelerated deterministic sampler of Li et al. (ICML 2024, arXiv 2403.03852), ODE order 2,
    any schedule (docs/algorithms/accelerated.md A.6).

    ``variant="repo"`` (default; form (b) of the authors' code): 2-step exponential integrator in abar (eps linear in
    abar, arcsin weight derived in SymPy), 1 NFE/step; the first step is DDIM.
    ``variant="phi-psi"`` (form (a), the paper's Phi/Psi form; coefficients a reconstruction): the point pulled
    back to the previous grid node, a backward drift difference with weight beta_t^2/(4 beta_{t+1}), 2 NFE/step;
    the first step (no previous node) is DPM-Solver-2 with its midpoint stage."""
    return _solver("accel-ddim", _variants("accel-ddim"), variant, ", form (b)")


def accel_ddpm_solver(variant: str | None = None) -> Solver:
    """``accel-ddpm``: accelerated stochastic sampler of Li et al. (ICML 2024, arXiv 2403.03852), README form:
    score at Y + sqrt(beta/2) Z, second half-noise after the 1/sqrt(alpha) scaling; 1 NFE/step, weak order 1
    (2-8x smaller constant than DDPM).  ``variant="ddpm-type"``: the score-form DDPM baseline of the paper."""
    return _solver("accel-ddpm", _variants("accel-ddpm"), variant, "")


def accel_sde_solver(variant: str | None = None) -> Solver:
    """``accel-sde`` (reconstruction following Li & Cai's description, arXiv 2410.23285;
    docs/algorithms/accelerated.md B.2): DDPM-type step with a clipped momentum from the previous rescaled score,
    1 NFE/step, declared weak order 2 (derived on Gaussians).  Never cite its numbers as Li & Cai's.

    ``variant``: the momentum rule, "ratio" (default: derived, order 2 on any grid) or "constant" (1/2 - a; smooth
    grids only).  Parameters: ``a`` (pre-score noise fraction in [0, 1/2], default 0; the start-up step always
    uses 1/2), ``c`` (clip constant, default 2: the momentum's norm in eps units is capped at c sqrt(d);
    ``c=inf`` never clips)."""
    return _solver("accel-sde", _variants("accel-sde", clip=True), variant, ", momentum rules")
