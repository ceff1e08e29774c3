"""Solvers built from generated tableau modules (the shipped catalog, or generated on demand).

A generated module (see :mod:`diffsolve.codegen`) exposes its structure (``STAGES``, ``HISTORY``, ``NOISES``,
``PREDICTION``, ``PARAMS``, ``DEFAULTS``, ``ORDER``, ``STOCHASTIC``), ``fractions(params, r)`` and the coefficient
builder ``fill`` with its Numba twin ``fill_jit``.  A multistep solver of order k uses the modules of orders
1..k as its warm-up levels.  Looking a module up never imports SymPy; only a key missing from the shipped
catalog triggers a derivation (``diffsolve.codegen``), cached on disk by content hash.
"""

from __future__ import annotations

import importlib
from functools import lru_cache

from ..errors import DiffsolveError
from .registry import Builder, Solver, register, register_pattern

__all__ = ["tableau_module", "solver_from_modules", "multistep_solver", "singlestep_solver"]

MAX_ORDER = 12


@lru_cache(maxsize=None)
def tableau_module(family: str, order: int, prediction: str, sde: bool, variant: str):
    """The generated module for a catalog key, generating (and caching) it when it is not shipped."""
    key = (family, order, prediction, sde, variant)
    name = importlib.import_module("diffsolve._generated").INDEX.get(key)
    if name is not None:
        return importlib.import_module(f"diffsolve._generated.{name}")
    return _generate(key)


def _generate(key):
    """Derive, check, emit and load a tableau that the shipped catalog lacks (disk-cached by key)."""
    from ..cache import cached_module

    def derive():
        from ..codegen.catalog import derive as derive_key  # the family registry of the catalog (SymPy)

        return derive_key(key)

    family, order, prediction, sde, variant = key
    return cached_module(f"{family}-{order}-{prediction}-{'sde' if sde else 'ode'}-{variant}", derive)


def solver_from_modules(name: str, modules, *, family: str, order: int, variant: str, reference: str,
                        strong_order: float | None = None, uncertain: bool = False, description: str = "",
                        extra: dict | None = None) -> Solver:
    """A registry entry whose warm-up level j uses ``modules[j]`` (the last module is the full method)."""
    full = modules[-1]
    return Solver(
        name=name, family=family, order=order, nfe_per_step=full.STAGES, prediction=full.PREDICTION,
        stochastic=bool(full.STOCHASTIC), stages=full.STAGES, history=full.HISTORY, noises=full.NOISES,
        fills=tuple(Builder(m.fill, m.fill_jit, m.fractions) for m in modules),
        param_names=tuple(full.PARAMS), params=tuple(float(v) for v in full.DEFAULTS), strong_order=strong_order,
        reference=reference, variant=variant, uncertain=uncertain, description=description,
        extra={"module": getattr(full, "__file__", None), "declared_order": order,
               "generic_order": getattr(full, "GENERIC_ORDER", order),
               "order_condition": tuple(getattr(full, "ORDER_CONDITION", ())), **(extra or {})},
    )


_MULTISTEP_REF = ("Lu, Zhou, Bao, Chen, Li, Zhu, DPM-Solver++ (arXiv 2211.01095); exact Lagrange-integrated "
                  "exponential multistep weights, specs/exponential_integrators.md §3")
_PUBLISHED = {2: "published", 3: "published"}


def multistep_solver(k, variant: str = "exact", prediction: str = "data", sde: bool = False) -> Solver:
    """``dpmpp-{k}m`` (ODE) / ``dpmpp-{k}m-sde``: k-step exponential integrator, 1 NFE/step.

    Declared ODE order k (exact Lagrange weights); the published 3M is order 2 (spec §3.6). SDE: weak order
    2 for k >= 2 (measured, flagged uncertain), strong order 1.
    """
    k = int(k)
    if not 1 <= k <= MAX_ORDER:
        raise DiffsolveError(f"multistep order k must be between 1 and {MAX_ORDER}, got {k}")
    if variant not in ("exact", "published") or (variant == "published" and k not in _PUBLISHED):
        raise DiffsolveError(
            f"dpmpp-{k}m has variants 'exact'" + (" and 'published'" if k in _PUBLISHED else "") + f", got {variant!r}"
        )
    levels = [tableau_module("multistep", j, prediction, sde, _PUBLISHED[j] if variant == "published" and j in _PUBLISHED else "exact")
              for j in range(1, k + 1)]
    if sde:
        order, strong, uncertain = (1, 1.0, False) if k == 1 else (2, 1.0, True)
    else:
        order, strong, uncertain = (2 if variant == "published" else k), None, False
    name = ("dpmpp" if prediction == "data" else "dpm-solver") + f"-{k}m" + ("-sde" if sde else "")
    return solver_from_modules(
        name, levels, family="exponential-multistep", order=order, variant=variant, strong_order=strong,
        uncertain=uncertain, reference=_MULTISTEP_REF,
        description=f"{k}-step exponential integrator in {prediction} prediction" + (", reverse SDE (eta)" if sde else ""),
    )


_SINGLESTEP_REF = {
    "eps": "Lu, Zhou, Bao, Chen, Li, Zhu, DPM-Solver, NeurIPS 2022 (arXiv 2206.00927)",
    "data": "Lu, Zhou, Bao, Chen, Li, Zhu, DPM-Solver++ (arXiv 2211.01095), singlestep",
}


def singlestep_solver(order, variant: str = "exact", prediction: str = "eps") -> Solver:
    """``dpm-solver-{1,2,3}`` (noise prediction) / ``dpmpp-{2,3}s`` (data): ``order`` NFE/step, order ``order``.

    ``variant="exact"`` integrates the interpolant of the stage outputs exactly (reference ``taylor``);
    ``"published"`` is the papers' algorithm.  Stage fractions are parameters ``c1`` (, ``c2``).
    """
    order = int(order)
    if order not in (1, 2, 3):
        raise DiffsolveError(f"singlestep DPM-Solver orders are 1, 2 and 3, got {order}")
    if variant not in ("exact", "published"):
        raise DiffsolveError(f"singlestep solvers have variants 'exact' (interpolant) and 'published', got {variant!r}")
    if order == 1:  # DPM-Solver-1 = DDIM: the k = 1 multistep step
        module = tableau_module("multistep", 1, prediction, False, "exact")
    else:
        module = tableau_module("singlestep", order, prediction, False, "interp" if variant == "exact" else variant)
    name = f"dpm-solver-{order}" if prediction == "eps" else f"dpmpp-{order}s"
    return solver_from_modules(name, [module], family="exponential-singlestep", order=module.ORDER, variant=variant,
                               reference=_SINGLESTEP_REF[prediction],
                               description=f"{order}-stage singlestep exponential integrator, {prediction} prediction")


register_pattern(r"dpmpp-(?P<k>\d+)m", lambda k, variant: multistep_solver(k, variant), "dpmpp-{k}m")
register_pattern(r"dpmpp-(?P<k>\d+)m-sde", lambda k, variant: multistep_solver(k, variant, sde=True), "dpmpp-{k}m-sde")
register_pattern(r"dpm-solver-(?P<k>\d+)m", lambda k, variant: multistep_solver(k, variant, prediction="eps"),
                 "dpm-solver-{k}m")
register_pattern(r"dpm-solver-(?P<k>\d+)m-sde",
                 lambda k, variant: multistep_solver(k, variant, prediction="eps", sde=True), "dpm-solver-{k}m-sde")
register_pattern(r"dpm-solver-(?P<order>[123])", lambda order, variant: singlestep_solver(order, variant, "eps"),
                 "dpm-solver-{1,2,3}")
register_pattern(r"dpmpp-(?P<order>[23])s", lambda order, variant: singlestep_solver(order, variant, "data"),
                 "dpmpp-{2,3}s")


def _first_order(name: str, sde: bool, reference: str, description: str):
    def build():
        module = tableau_module("multistep", 1, "data", sde, "exact")
        return solver_from_modules(name, [module], family="exponential-multistep", order=1, variant="exact",
                                   strong_order=1.0 if sde else None, reference=reference, description=description)
    return build


register("ddim", _first_order("ddim", False, "Song, Meng, Ermon, DDIM, ICLR 2021 (arXiv 2010.02502)",
                              "DDIM = DPM-Solver-1: exact linear part, model held constant over the step"))
register("euler-maruyama", lambda: solver_from_modules(
    "euler-maruyama", [tableau_module("euler-maruyama", 1, "data", True, "exact")], family="euler-maruyama", order=1,
    variant="exact", strong_order=1.0, reference="Euler-Maruyama (Kloeden & Platen 1992) on the reverse SDE "
    "(Song et al., ICLR 2021, arXiv 2011.13456)",
    description="Euler-Maruyama in lambda for y = x / sigma (explicit linear part; needs eta h < 2)"))
register("ddpm", _first_order("ddpm", True, "Ho, Jain, Abbeel, DDPM, NeurIPS 2020 (arXiv 2006.11239)",
                              "ancestral step = posterior q(x_t | x_s, x_0 = D) at eta = 1, any schedule"))


def _register_shipped():
    """Register every solver the shipped catalog provides (lazy factories; nothing is imported here)."""
    index = importlib.import_module("diffsolve._generated").INDEX
    for family, k, prediction, sde, variant in index:
        if family not in ("multistep", "singlestep"):
            continue  # registered by name above (euler-maruyama) or in diffsolve.solvers.papers (accelerated)
        if family == "singlestep" and sde:
            continue  # the stochastic singlestep tableaux are SEEDS-k, registered in diffsolve.solvers.papers
        if family == "multistep":
            name = ("dpmpp" if prediction == "data" else "dpm-solver") + f"-{k}m" + ("-sde" if sde else "")
            build = (lambda k=k, v=variant, p=prediction, s=sde: multistep_solver(k, v, p, s))
            key_variant = "exact" if variant == "exact" else "published"
        else:
            name = f"dpm-solver-{k}" if prediction == "eps" else f"dpmpp-{k}s"
            key_variant = "exact" if variant == "interp" else variant
            build = (lambda k=k, v=key_variant, p=prediction: singlestep_solver(k, v, p))
        register(name if key_variant == "exact" else f"{name}:{key_variant}", build)
    register("dpm-solver-1", lambda: singlestep_solver(1, "exact", "eps"))


_register_shipped()
