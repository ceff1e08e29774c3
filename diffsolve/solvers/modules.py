"""The generated tableau modules behind the registry: catalog lookup, on-demand generation, Solver assembly.

A generated module (:mod:`diffsolve.codegen.emit`) exposes its structure (``STAGES``, ``HISTORY``, ``NOISES``,
``PREDICTION``, ``PARAMS``, ``DEFAULTS``, ``STOCHASTIC``), the declared metadata of its derivation (``ORDER``,
``STRONG_ORDER``, ``GENERIC_ORDER``, ``ORDER_CONDITION``, ``NFE_PER_STEP``, ``UNCERTAIN``, ``REFERENCE``),
``fractions(params, r)``, the coefficient builder ``fill`` and the printed coefficients (``COEFFICIENTS``).  A
solver is a list of such modules, one per warm-up level; its declared metadata is that of the last (the full
method) -- the registry keeps no copy of it.

The shipped catalog (``diffsolve._generated``: INDEX, and the name tables SOLVERS / SEEDS_VARIANTS /
MULTISTEP_VARIANTS written by :mod:`diffsolve.codegen.names`) is plain data, so looking a solver up never imports
SymPy; a key the catalog lacks is derived (``diffsolve.codegen.catalog.derive``), emitted into the user cache
(``diffsolve.codegen.emit.generate``) and found there by later processes through its pointer file
(:func:`diffsolve.cache.cached_module`: verified before import, derived once under a file lock; docs/cache.md).
"""

from __future__ import annotations

import importlib
from functools import lru_cache

from ..cache import cached_module
from ..errors import DiffsolveError
from .registry import Builder, Solver

__all__ = ["catalog", "table", "shipped", "tableau_module", "module_key", "solver_from_modules", "solver_from_table",
           "split_name"]


def catalog():
    """The index module ``diffsolve._generated`` (INDEX, SOLVERS, SEEDS_VARIANTS, MULTISTEP_VARIANTS)."""
    return importlib.import_module("diffsolve._generated")


def table(name: str) -> dict:
    """A name table of the shipped catalog (SOLVERS, SEEDS_VARIANTS, MULTISTEP_VARIANTS); empty when the checked-in
    index predates it, so that ``python -m diffsolve.codegen`` (which imports diffsolve) can still rewrite it."""
    return getattr(catalog(), name, {})


def shipped(name: str):
    """The SOLVERS entry (family, levels, clip) of a registered ``name`` ("name" or "name:variant"), or None."""
    return table("SOLVERS").get(name)


def split_name(name: str) -> tuple[str, str]:
    """("dpmpp-3m", "published") from "dpmpp-3m:published"; the variant of a bare name is "exact"."""
    base, _, variant = name.partition(":")
    return base, variant or "exact"


@lru_cache(maxsize=None)
def tableau_module(family: str, order: int, prediction: str, sde: bool, variant: str):
    """The generated module for a catalog key, generating (and caching) it when it is not shipped."""
    key = (family, order, prediction, sde, variant)
    name = catalog().INDEX.get(key)
    if name is not None:
        return importlib.import_module(f"diffsolve._generated.{name}")
    expect = {"FAMILY": family, "K": order, "PREDICTION": prediction, "SDE": sde, "VARIANT": variant}
    return cached_module(f"{family}-{order}-{prediction}-{'sde' if sde else 'ode'}-{variant}", lambda: _build(key),
                         expect=expect)


def _build(key):
    """Derive, check and emit a tableau the shipped catalog lacks into the user cache; return the file (SymPy)."""
    from ..codegen import catalog as derivations  # the family registry of the catalog
    from ..codegen.emit import generate

    return generate(derivations.derive(key))


def module_key(module) -> tuple:
    """The catalog key (family, k, prediction, sde, variant) a generated module was derived for."""
    return (module.FAMILY, module.K, module.PREDICTION, module.SDE, module.VARIANT)


def solver_from_modules(name: str, modules, *, family: str, variant: str, description: str = "", cite: str = "",
                        corrections: tuple = (), extra: dict | None = None) -> Solver:
    """A registry entry whose warm-up level j uses ``modules[j]``; the last module (the full method) declares the
    order, strong order, NFE/step, reference and uncertainty.  ``cite`` prefixes the reference (aliases such as
    ddim name their own paper); ``corrections`` are the Solver's correction builders (accel-sde's clipped
    momentum)."""
    full = modules[-1]
    strong = full.STRONG_ORDER
    return Solver(
        name=name, family=family, order=full.ORDER, nfe_per_step=full.NFE_PER_STEP, prediction=full.PREDICTION,
        stochastic=bool(full.STOCHASTIC), stages=full.STAGES, history=full.HISTORY, noises=full.NOISES,
        fills=tuple(Builder(m.fill, m.fractions) for m in modules),
        param_names=tuple(full.PARAMS), params=tuple(float(v) for v in full.DEFAULTS),
        strong_order=None if strong is None else float(strong),
        reference=f"{cite}; {full.REFERENCE}" if cite else full.REFERENCE, variant=variant,
        uncertain=bool(full.UNCERTAIN), description=description,
        corrections=tuple(corrections),
        extra={"module": getattr(full, "__file__", None), "key": module_key(full),
               "levels": tuple(module_key(m) for m in modules),
               "declared_order": full.ORDER, "generic_order": full.GENERIC_ORDER,
               "order_condition": tuple(full.ORDER_CONDITION), **(extra or {})},
    )


def solver_from_table(name: str, build):
    """The registered ``name``'s solver: its SOLVERS entry's modules passed to ``build(name, variant, modules,
    clip)`` (the family's describer, which calls :func:`solver_from_modules`)."""
    entry = shipped(name)
    if entry is None:
        raise DiffsolveError(f"{name!r} is not a shipped solver name")
    _, levels, clip = entry
    base, variant = split_name(name)
    return build(base, variant, [tableau_module(*key) for key in levels],
                 None if clip is None else tableau_module(*clip))
