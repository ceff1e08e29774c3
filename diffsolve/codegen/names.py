"""The solver names of the shipped catalog: name <-> catalog key <-> variant, written next to the catalog INDEX.

The runtime (:mod:`diffsolve.solvers`) reads these tables from ``diffsolve/_generated/__init__.py`` and keeps no
copy of them, so looking a solver up never imports SymPy:

    SOLVERS             "name" or "name:variant" -> (registry family, levels, clip): ``levels`` are the catalog
                        keys of the warm-up levels 0..M (the last is the full method, whose module declares the
                        solver's orders, NFE/step, reference); ``clip`` the key of the norm-capped correction term
                        (accel-sde) or None.  Every registered solver name is here.
    SEEDS_VARIANTS      (k, combine, prediction, stage noise) -> catalog key of SEEDS-k; per k the paper's combine
                        form first (diffsolve.symbolic.seeds.COMBINES / DEFAULT_COMBINE / NOISE_RULES)
    MULTISTEP_VARIANTS  multistep variant -> the orders k it exists for (None: every k); a multistep solver of
                        order k with variant v warms up with the order-j tableaux of variant v where those exist
                        and "exact" otherwise (diffsolve.symbolic.multistep.VARIANTS)

Names follow the derivations' own names (``SymbolicTableau.name``); besides them the catalog registers the
aliases ddim = dpmpp-1m, ddpm = dpmpp-1m-sde and dpm-solver-1 = dpm-solver-1m (the first-order singlestep step is
the k = 1 multistep step).  Singlestep tableaux of derivation variant "interp" are the registry's "exact" variant.
"""

from __future__ import annotations

from ..solvers.unipc import registered as unipc_registered
from ..symbolic import accelerated as acc
from ..symbolic.multistep import NAMES as MULTISTEP_NAMES
from ..symbolic.multistep import VARIANTS as _MULTISTEP_RULES
from ..symbolic.seeds import COMBINES, DEFAULT_COMBINE, NOISE_RULES
from ..symbolic.singlestep import NAMES as SINGLESTEP_NAMES

__all__ = ["MIRRORED", "MULTISTEP", "SINGLESTEP", "EULER", "SEEDS", "ACCELERATED", "multistep_variants",
           "multistep_levels", "seeds_variants", "solvers"]

MIRRORED = "-mirrored"  # variant suffix of the stochastic singlestep (SEEDS) tableaux with the authors' noise rule

# registry families (the ``family`` of a registered Solver)
MULTISTEP, SINGLESTEP, EULER = "exponential-multistep", "exponential-singlestep", "euler-maruyama"
SEEDS, ACCELERATED = "seeds", "accelerated"

# registry variant of a singlestep derivation variant
_SINGLESTEP_NAME_VARIANT = {"interp": "exact", "published": "published"}


def multistep_variants() -> dict:
    """MULTISTEP_VARIANTS: variant -> sorted tuple of the orders it exists for, or None (every order)."""
    return {v: None if rule is None else tuple(sorted(rule)) for v, rule in _MULTISTEP_RULES.items()}


def multistep_levels(k: int, prediction: str, sde: bool, variant: str) -> tuple:
    """The catalog keys of the warm-up levels 1..k of the order-k multistep solver of ``variant``."""
    orders = multistep_variants()[variant]
    return tuple(("multistep", j, prediction, sde, variant if orders is None or j in orders else "exact")
                 for j in range(1, k + 1))


def seeds_variants() -> dict:
    """SEEDS_VARIANTS: (k, combine, prediction, noise) -> catalog key, the default combine of each k first."""
    out = {}
    for k in sorted(COMBINES):
        combines = [DEFAULT_COMBINE[k]] + [c for c in COMBINES[k] if c != DEFAULT_COMBINE[k]]
        for combine in combines:
            for prediction in ("data", "eps"):
                for noise in NOISE_RULES:
                    variant = COMBINES[k][combine] + ("" if noise == "exact" else MIRRORED)
                    out[k, combine, prediction, noise] = ("singlestep", k, prediction, True, variant)
    return out


def _named(name: str, variant: str) -> str:
    return name if variant == "exact" else f"{name}:{variant}"


def solvers(catalog: tuple) -> dict:
    """SOLVERS for the shipped ``catalog`` keys: every multistep and ODE singlestep key under its derivation's name,
    the aliases, euler-maruyama, seeds-{1,2,3} (default variant) and the accelerated samplers."""
    out = {}
    for family, k, prediction, sde, variant in catalog:
        if family == "multistep":
            out[_named(MULTISTEP_NAMES[prediction, sde].format(k=k), variant)] = (
                MULTISTEP, multistep_levels(k, prediction, sde, variant), None)
        elif family == "singlestep" and not sde and k > 1:
            out[_named(SINGLESTEP_NAMES[prediction, sde][k], _SINGLESTEP_NAME_VARIANT[variant])] = (
                SINGLESTEP, (("singlestep", k, prediction, sde, variant),), None)
    out["ddim"] = (MULTISTEP, multistep_levels(1, "data", False, "exact"), None)
    out["ddpm"] = (MULTISTEP, multistep_levels(1, "data", True, "exact"), None)
    out[SINGLESTEP_NAMES["eps", False][1]] = (SINGLESTEP, multistep_levels(1, "eps", False, "exact"), None)
    out["euler-maruyama"] = (EULER, (("euler-maruyama", 1, "data", True, "exact"),), None)
    seeds = seeds_variants()
    for k in sorted(COMBINES):
        out[f"seeds-{k}"] = (SEEDS, (seeds[k, DEFAULT_COMBINE[k], "data", "exact"],), None)
    ddim_eps = multistep_levels(1, "eps", False, "exact")[0]
    out["accel-ddim"] = (ACCELERATED, (ddim_eps, ("accelerated", 2, "eps", False, "repo")), None)
    out["accel-ddim:phi-psi"] = (ACCELERATED, (("accelerated", 2, "eps", False, "phi-psi-startup"),
                                                ("accelerated", 2, "eps", False, "phi-psi")), None)
    for i, variant in enumerate(acc.ACCEL_DDPM_VARIANTS):  # the first is the default
        out["accel-ddpm" if i == 0 else f"accel-ddpm:{variant}"] = (
            ACCELERATED, (("accelerated", 1, "eps", False, variant),), None)
    sde_levels = (("accelerated", 1, "eps", False, "startup"), ("accelerated", 2, "eps", False, "base"))
    for i, momentum in enumerate(acc.ACCEL_SDE_MOMENTA):  # start-up and base do not depend on the momentum rule
        out["accel-sde" if i == 0 else f"accel-sde:{momentum}"] = (
            ACCELERATED, sde_levels, ("accelerated", 2, "eps", False, f"correction-{momentum}"))
    out.update(unipc_registered())  # unipc-{1,2,3}[:variant] (diffsolve.solvers.unipc.REGISTERED)
    return dict(sorted(out.items()))
