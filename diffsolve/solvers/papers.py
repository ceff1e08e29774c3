"""Solvers from the source papers: SEEDS-1/2/3 and the accelerated samplers of Li et al. (registered here).

    seeds-1, seeds-2, seeds-3   Gonzalez et al., NeurIPS 2023 (arXiv 2305.14267), specs/seeds.md
    accel-ddim, accel-ddpm      Li, Huang, Efimov, Wei, Chi, Chen, ICML 2024 (arXiv 2403.03852), specs/accelerated.md A
    accel-sde                   reconstruction following Li & Cai's description (arXiv 2410.23285), spec B.2

Every solver is a tableau (DESIGN §3) derived in SymPy (:mod:`diffsolve.symbolic.seeds`,
:mod:`diffsolve.symbolic.accelerated`), emitted by :mod:`diffsolve.codegen` into the user cache on first use
(content-hashed module + a pointer file named by the key, so later processes load it without SymPy) and
loaded.  Variants are chosen by ``get_solver(name, variant=...)``; runtime parameters (eta, stage fractions
c1/c2) by keyword: ``get_solver("seeds-2", variant="2b-mirrored", eta=0.5, c1=0.3)``.

SEEDS variant strings: ``[combine][-eps][-mirrored]`` with combine '2a' / '2b' (k = 2), '3a' / '3b' (k = 3);
e.g. "exact" (the default: '2a'/'3a', data prediction, exact OU noise), "2b", "eps", "3a-eps-mirrored".
"""

from __future__ import annotations

from functools import lru_cache

from ..cache import cached_module
from ..errors import DiffsolveError
from .generated import solver_from_modules
from .registry import register, register_pattern

__all__ = ["SEEDS_COMBINES", "seeds_solver", "accel_ddim_solver", "accel_ddpm_solver", "accel_sde_solver", "parse_seeds_variant",
           "register_all", "SEEDS_ORDERS"]

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


@lru_cache(maxsize=None)
def _seeds_module(k: int, combine: str, prediction: str, noise: str):
    key = f"seeds-{k}-{combine}-{prediction}-{noise}"

    def derive():
        from ..symbolic.seeds import derive_seeds

        return derive_seeds(k, prediction, combine, noise)

    return cached_module(key, derive)


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

        return acc.derive_accel_ddim() if kind == "ddim" else acc.derive_accel_ddpm(variant)

    return cached_module(f"accel-{kind}-{variant}", derive)


def accel_ddim_solver(variant: str | None = None):
    """``accel-ddim``: accelerated deterministic sampler of Li et al. (ICML 2024, arXiv 2403.03852), form (b) of
    the authors' code: 2-step exponential integrator in abar (eps linear in abar, arcsin weight derived in
    SymPy), 1 NFE/step, ODE order 2; the first step (no history) is DDIM.  Any schedule (spec A.6)."""
    if variant not in (None, "", "exact", "repo"):
        raise DiffsolveError(f"accel-ddim has variant 'repo' (the default, form (b)); got {variant!r} "
                             "(form (a), 'phi-psi', is not implemented)")
    from .generated import tableau_module

    warmup = tableau_module("multistep", 1, "eps", False, "exact")  # DDIM in eps form
    return solver_from_modules(
        "accel-ddim", [warmup, _accel_module("ddim", "repo")], family="accelerated", order=2,
        variant="exact" if variant in (None, "", "exact") else variant, reference=_ACCEL_REF + ", form (b)",
        description="accelerated DDIM (2-step exponential integrator in abar), 1 NFE/step, ODE order 2",
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


def accel_sde_solver(variant: str | None = None):
    """``accel-sde`` (reconstruction following Li & Cai's description, arXiv 2410.23285; spec B.2): DDPM-type
    step with a momentum from the previous rescaled score (derived "ratio" coefficient, a = 0), start-up step with
    Paper A's half-noise split; 1 NFE/step, declared weak order 2.  No clipping (c = inf): the clip of spec B.2.1
    needs the kernel template.  Never cite its numbers as Li & Cai's."""
    if variant not in (None, "", "exact", "ratio"):
        raise DiffsolveError(f"accel-sde has only the default variant ('ratio', a = 0, no clipping); got {variant!r}")
    modules = [_cached_accel_sde(True), _cached_accel_sde(False)]
    return solver_from_modules(
        "accel-sde", modules, family="accelerated", order=2,
        variant="exact" if variant in (None, "", "exact") else variant,
        uncertain=True, reference="accel-sde (reconstruction following Li & Cai's description, arXiv 2410.23285)",
        description="accel-sde (reconstruction following Li & Cai's description): momentum-corrected DDPM-type step, "
                    "1 NFE/step, weak order 2 (Gaussian-derived), no clipping",
        extra={"reconstruction": True},
    )


@lru_cache(maxsize=None)
def _cached_accel_sde(startup: bool):
    def derive():
        from ..symbolic.accelerated import derive_accel_sde

        return derive_accel_sde(startup)

    return cached_module(f"accel-sde-{'startup' if startup else 'ratio'}", derive)


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
    register("accel-ddpm", lambda: accel_ddpm_solver())
    register("accel-ddpm:ddpm-type", lambda: accel_ddpm_solver("ddpm-type"))
    register("accel-sde", lambda: accel_sde_solver())


register_all()
