"""Solvers from the source papers: SEEDS-1/2/3 and the accelerated samplers of Li et al. (registered here).

    seeds-1, seeds-2, seeds-3   Gonzalez et al., NeurIPS 2023 (arXiv 2305.14267), specs/seeds.md
    accel-ddim, accel-ddpm      Li, Huang, Efimov, Wei, Chi, Chen, ICML 2024 (arXiv 2403.03852), specs/accelerated.md A
    accel-sde                   reconstruction following Li & Cai's description (arXiv 2410.23285), spec B.2

Every solver is a tableau (DESIGN §3) derived in SymPy (:mod:`diffsolve.symbolic.seeds`,
:mod:`diffsolve.symbolic.accelerated`) and shipped pre-generated in ``diffsolve/_generated`` (the catalog of
:mod:`diffsolve.codegen.catalog`), so looking one up imports no SymPy; a key missing from the shipped index is
emitted by :mod:`diffsolve.codegen` into the user cache on first use (content-hashed module + a pointer file named
by the key, so later processes load it without SymPy).  Variants are chosen by ``get_solver(name, variant=...)``;
runtime parameters (eta, stage fractions c1/c2) by keyword:
``get_solver("seeds-2", variant="2b-mirrored", eta=0.5, c1=0.3)``.

SEEDS variant strings: ``[combine][-eps][-mirrored]`` with combine '2a' / '2b' (k = 2), '3a' / '3b' (k = 3);
e.g. "exact" (the default: '2a'/'3a', data prediction, exact OU noise), "2b", "eps", "3a-eps-mirrored".
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from functools import lru_cache

import numpy as np

from ..cache import cached_module
from ..errors import DiffsolveError
from .generated import solver_from_modules
from .registry import Builder, register, register_pattern

__all__ = ["ACCEL_DDIM_VARIANTS", "ACCEL_SDE_MOMENTA", "SEEDS_COMBINES", "SEEDS_ORDERS", "seeds_solver",
           "accel_ddim_solver", "accel_ddpm_solver", "accel_sde_solver", "parse_seeds_variant", "register_all"]

# declared (weak order, strong order) of SEEDS-k; measured values in docs/papers/seeds.md
SEEDS_ORDERS = {1: (1, 1.0), 2: (2, 1.0), 3: (2, 1.0)}
# combine forms per k (default first); the derivation side is diffsolve.symbolic.seeds.COMBINES.  Kept here so
# that looking a solver up never imports SymPy (DESIGN §1).
SEEDS_COMBINES = {1: ("1",), 2: ("2a", "2b"), 3: ("3a", "3b")}
SEEDS_REFERENCE = ("Gonzalez, Fernandez, Tran, Gherbi, Hajri, Masmoudi, SEEDS: Exponential SDE Solvers for Fast "
                   "High-Quality Sampling from Diffusion Models, NeurIPS 2023, arXiv 2305.14267")
def parse_seeds_variant(k: int, variant: str | None):
    """(combine, prediction, noise) from a variant string ``[combine][-eps][-mirrored]`` (see module doc)."""
    combine, prediction, noise = SEEDS_COMBINES[k][0], "data", "exact"
    if variant in (None, "", "exact"):
        return combine, prediction, noise
    for part in str(variant).split("-"):
        if part in SEEDS_COMBINES[k]:
            combine = part
        elif part in ("eps", "data"):
            prediction = part
        elif part in ("mirrored", "exact"):
            noise = part
        else:
            raise DiffsolveError(
                f"seeds-{k} has no variant {variant!r}: use '[combine][-eps][-mirrored]' with combine in "
                f"{list(SEEDS_COMBINES[k])}, e.g. {SEEDS_COMBINES[k][-1]!r}, 'eps', 'mirrored'"
            )
    return combine, prediction, noise


# SEEDS combine form -> singlestep derivation variant (diffsolve.symbolic.seeds.COMBINES, repeated without SymPy):
# the catalog key of SEEDS-k is ("singlestep", k, prediction, True, variant[-mirrored]).
_SEEDS_DERIVATION_VARIANTS = {"1": "published", "2a": "published", "2b": "interp", "3a": "published", "3b": "interp"}


def _module(catalog_key: tuple, cache_key: str, derive):
    """The shipped generated module of ``catalog_key`` (diffsolve._generated INDEX, no SymPy); for a key the
    catalog lacks, the module generated on demand into the user cache under ``cache_key`` from ``derive()``."""
    name = None if catalog_key is None else importlib.import_module("diffsolve._generated").INDEX.get(catalog_key)
    if name is not None:
        return importlib.import_module(f"diffsolve._generated.{name}")
    return cached_module(cache_key, derive)


@lru_cache(maxsize=None)
def _seeds_module(k: int, combine: str, prediction: str, noise: str):
    key = f"seeds-{k}-{combine}-{prediction}-{noise}"

    def derive():
        from ..symbolic.seeds import derive_seeds

        return derive_seeds(k, prediction, combine, noise)

    variant = _SEEDS_DERIVATION_VARIANTS.get(combine, combine) + ("-mirrored" if noise == "mirrored" else "")
    return _module(("singlestep", k, prediction, True, variant), key, derive)


def seeds_solver(k, variant: str | None = None):
    """``seeds-k``: SEEDS-k (Gonzalez et al. 2023, arXiv 2305.14267), k NFE/step, weak order 1/2/2, strong 1.

    Exponential SDE solver in log-SNR time: exact linear part, psi-moment model integral, stage noises with
    the exact joint law (Cholesky factor of the Ito covariance; ``-mirrored`` gives the authors' rule).
    Parameters: ``eta`` (default 1 = reverse SDE; 0 = DPM-Solver++(kS)), ``c1`` (, ``c2``) stage fractions.
    """
    k = int(k)
    if k not in SEEDS_ORDERS:
        raise DiffsolveError(f"SEEDS is defined for k = 1, 2, 3; got seeds-{k}")
    combine, prediction, noise = parse_seeds_variant(k, variant)
    module = _seeds_module(k, combine, prediction, noise)
    order, strong = SEEDS_ORDERS[k]

    name_variant = "exact" if variant in (None, "", "exact") else variant
    return solver_from_modules(
        f"seeds-{k}", [module], family="seeds", order=order, variant=name_variant, strong_order=strong,
        uncertain=(k == 3), reference=SEEDS_REFERENCE,
        description=f"SEEDS-{k} ({combine}, {prediction} prediction, {noise} stage noise): {k} NFE/step, weak order "
                    f"{order}, strong order 1" + ("; SEEDS-3 measures weak order 1.7-2.0, not 3" if k == 3 else ""),
        extra={"combine": combine, "noise": noise},
    )


_ACCEL_REF = ("Li, Huang, Efimov, Wei, Chi, Chen, Accelerating Convergence of Score-Based Diffusion Models, "
              "Provably, ICML 2024 (arXiv 2403.03852)")


@lru_cache(maxsize=None)
def _accel_module(kind: str, variant: str):
    def derive():
        from ..symbolic import accelerated as acc

        builders = {("ddim", "repo"): acc.derive_accel_ddim, ("ddim", "phi-psi"): acc.derive_accel_ddim_phi_psi,
                    ("ddim", "phi-psi-startup"): acc.derive_accel_ddim_phi_psi_startup}
        return builders[kind, variant]() if kind == "ddim" else acc.derive_accel_ddpm(variant)

    return _module(_ACCEL_KEYS.get((kind, variant)), f"accel-{kind}-{variant}", derive)


# (kind, variant) -> catalog key of the accel-ddim / accel-ddpm tableaux (diffsolve.codegen.catalog)
_ACCEL_KEYS = {
    **{("ddim", v): ("accelerated", 2, "eps", False, v) for v in ("repo", "phi-psi", "phi-psi-startup")},
    **{("ddpm", v): ("accelerated", 1, "eps", False, v) for v in ("readme", "ddpm-type")},
}


ACCEL_DDIM_VARIANTS = ("repo", "phi-psi")


def accel_ddim_solver(variant: str | None = None):
    """``accel-ddim``: accelerated deterministic sampler of Li et al. (ICML 2024, arXiv 2403.03852), ODE order 2,
    any schedule (spec A.6).

    ``variant="repo"`` (default; form (b) of the authors' code): 2-step exponential integrator in abar (eps linear in
    abar, arcsin weight derived in SymPy), 1 NFE/step; the first step is DDIM.
    ``variant="phi-psi"`` (form (a), the paper's Phi/Psi form; coefficients a reconstruction): the point pulled
    back to the previous grid node, a backward drift difference with weight beta_t^2/(4 beta_{t+1}), 2 NFE/step;
    the first step (no previous node) is DPM-Solver-2 with its midpoint stage."""
    v = "repo" if variant in (None, "", "exact") else variant
    if v not in ACCEL_DDIM_VARIANTS:
        raise DiffsolveError(f"accel-ddim variants are {list(ACCEL_DDIM_VARIANTS)} (default 'repo', form (b)); "
                             f"got {variant!r}")
    if v == "repo":
        from .generated import tableau_module

        modules = [tableau_module("multistep", 1, "eps", False, "exact"), _accel_module("ddim", "repo")]  # DDIM first
        ref, what = ", form (b) (authors' code)", "2-step exponential integrator in abar, 1 NFE/step"
    else:
        modules = [_accel_module("ddim", "phi-psi-startup"), _accel_module("ddim", "phi-psi")]
        ref = ", form (a) (Phi/Psi; coefficients reconstructed, specs/accelerated.md A.2.2)"
        what = "Phi/Psi form with the auxiliary point on the previous node, 2 NFE/step"
    return solver_from_modules(
        "accel-ddim", modules, family="accelerated", order=2,
        variant="exact" if variant in (None, "", "exact") else variant, reference=_ACCEL_REF + ref,
        uncertain=(v == "phi-psi"), description=f"accelerated DDIM ({what}), ODE order 2",
    )


def accel_ddpm_solver(variant: str | None = None):
    """``accel-ddpm``: accelerated stochastic sampler of Li et al. (ICML 2024, arXiv 2403.03852), README form:
    score at Y + sqrt(beta/2) Z, second half-noise after the 1/sqrt(alpha) scaling; 1 NFE/step, weak order 1
    (2-8x smaller constant than DDPM).  ``variant="ddpm-type"``: the score-form DDPM baseline of the paper."""
    v = "readme" if variant in (None, "", "exact") else variant
    if v not in ("readme", "ddpm-type"):
        raise DiffsolveError(f"accel-ddpm variants are 'readme' (default) and 'ddpm-type'; got {variant!r}")
    return solver_from_modules(
        "accel-ddpm", [_accel_module("ddpm", v)], family="accelerated", order=1, variant=variant or "exact",
        reference=_ACCEL_REF + (", README form" if v == "readme" else ", DDPM-type baseline"),
        description=("accelerated DDPM (split noise around the score call)" if v == "readme" else
                     "DDPM-type score-form Euler-Maruyama baseline") + ", 1 NFE/step, weak order 1",
    )


ACCEL_SDE_MOMENTA = ("ratio", "constant")  # the derivation side: diffsolve.symbolic.accelerated


def accel_sde_solver(variant: str | None = None):
    """``accel-sde`` (reconstruction following Li & Cai's description, arXiv 2410.23285; spec B.2): DDPM-type
    step with a clipped momentum from the previous rescaled score, 1 NFE/step, declared weak order 2 (derived on
    Gaussians).  Never cite its numbers as Li & Cai's.

    ``variant``: the momentum rule, "ratio" (default: derived, order 2 on any grid) or "constant" (1/2 - a; smooth
    grids only).  Parameters: ``a`` (pre-score noise fraction in [0, 1/2], default 0; the start-up step always
    uses 1/2), ``c`` (clip constant, default 2: the momentum's norm in eps units is capped at c sqrt(d);
    ``c=inf`` never clips)."""
    momentum = "ratio" if variant in (None, "", "exact") else variant
    if momentum not in ACCEL_SDE_MOMENTA:
        raise DiffsolveError(f"accel-sde variants (momentum rules) are {list(ACCEL_SDE_MOMENTA)} (default 'ratio'); "
                             f"got {variant!r}")
    startup, base, correction = (_cached_accel_sde(p, momentum) for p in ("startup", "base", "correction"))
    solver = solver_from_modules(
        "accel-sde", [startup, base], family="accelerated", order=2,
        variant="exact" if variant in (None, "", "exact") else variant,
        uncertain=True, reference="accel-sde (reconstruction following Li & Cai's description, arXiv 2410.23285)",
        description=f"accel-sde (reconstruction following Li & Cai's description): DDPM-type step with a clipped "
                    f"{momentum!r} momentum, 1 NFE/step, weak order 2 (Gaussian-derived)",
        extra={"reconstruction": True, "momentum": momentum, "bounds": {"a": (0.0, 0.5), "c": (0.0, np.inf)}},
    )
    return replace(solver, clip=Builder(correction.fill, correction.fill_jit, correction.fractions),
                   param_names=("a", "c"), params=(float(base.DEFAULTS[0]), 2.0))


@lru_cache(maxsize=None)
def _cached_accel_sde(part: str, momentum: str):
    def derive():
        from ..symbolic.accelerated import derive_accel_sde

        return derive_accel_sde(part, momentum)

    key = part if part != "correction" else f"{part}-{momentum}"  # start-up and base ignore the momentum rule
    catalog_key = ("accelerated", 1 if part == "startup" else 2, "eps", False, key)
    return _module(catalog_key, f"accel-sde-{key}", derive)


_REGISTERED = False


def register_all() -> None:
    """Register seeds-{1,2,3} (and the pattern ``seeds-k`` for variants) and the accelerated samplers."""
    global _REGISTERED
    if _REGISTERED:
        return
    _REGISTERED = True
    register_pattern(r"seeds-(?P<k>[123])", lambda k, variant: seeds_solver(k, variant), "seeds-{1,2,3}")
    for k in (1, 2, 3):
        register(f"seeds-{k}", lambda k=k: seeds_solver(k))
    register("accel-ddim", lambda: accel_ddim_solver())
    register("accel-ddim:phi-psi", lambda: accel_ddim_solver("phi-psi"))
    register("accel-ddpm", lambda: accel_ddpm_solver())
    register("accel-ddpm:ddpm-type", lambda: accel_ddpm_solver("ddpm-type"))
    register("accel-sde", lambda: accel_sde_solver())
    register("accel-sde:constant", lambda: accel_sde_solver("constant"))


register_all()
