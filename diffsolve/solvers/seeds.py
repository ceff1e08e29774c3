"""``seeds-1``, ``seeds-2``, ``seeds-3``: SEEDS-k (Gonzalez, Fernandez, Tran, Gherbi, Hajri, Masmoudi, NeurIPS 2023,
arXiv 2305.14267; docs/algorithms/seeds.md), the stochastic singlestep tableaux of :mod:`diffsolve.symbolic.seeds`.

Variant strings: ``[combine][-eps][-mirrored]`` with combine '2a' / '2b' (k = 2), '3a' / '3b' (k = 3); e.g.
"exact" (the default: '2a'/'3a', data prediction, exact OU noise), "2b", "eps", "3a-eps-mirrored".  Every
variant is shipped: SEEDS_VARIANTS (``diffsolve._generated``, written from the derivation's COMBINES) maps
(k, combine, prediction, noise) to its catalog key.  Weak / strong orders (1/2/2, 1; SEEDS-3 flagged uncertain:
measured 1.7-2.0, docs/algorithms/seeds.md §3.3) are the generated modules'.  Runtime parameters: ``eta``
(default 1 = reverse SDE; 0 = DPM-Solver++(kS)), ``c1`` (, ``c2``) stage fractions.
"""

from __future__ import annotations

from ..errors import DiffsolveError
from .modules import module_key, solver_from_modules, solver_from_table, table, tableau_module
from .registry import Solver, register_pattern

__all__ = ["FAMILY", "SEEDS_COMBINES", "parse_seeds_variant", "seeds_key", "seeds_solver", "build", "from_table"]

FAMILY = "seeds"


def _combines() -> dict:
    out = {}
    for k, combine, _, _ in table("SEEDS_VARIANTS"):  # the paper's combine form comes first for each k
        out.setdefault(k, ())
        if combine not in out[k]:
            out[k] += (combine,)
    return out


# k -> combine forms (default first), read from the shipped SEEDS_VARIANTS (no SymPy)
SEEDS_COMBINES = _combines()


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


def seeds_key(k: int, combine: str, prediction: str, noise: str) -> tuple:
    """The catalog key of SEEDS-k with that combine form, prediction and stage-noise rule."""
    return table("SEEDS_VARIANTS")[k, combine, prediction, noise]


def build(name: str, variant: str, modules, clip=None) -> Solver:
    full = modules[-1]
    k, combine, prediction, noise = next(v for v, key in table("SEEDS_VARIANTS").items()
                                         if key == module_key(full))
    measured = "; SEEDS-3 measures weak order 1.7-2.0, not 3" if k == 3 else ""
    return solver_from_modules(
        name, modules, family=FAMILY, variant=variant,
        description=f"SEEDS-{k} ({combine}, {prediction} prediction, {noise} stage noise): {full.NFE_PER_STEP} "
                    f"NFE/step, weak order {full.ORDER}, strong order {full.STRONG_ORDER}{measured}",
        extra={"combine": combine, "noise": noise},
    )


def seeds_solver(k, variant: str | None = None) -> Solver:
    """``seeds-k``: SEEDS-k, k NFE/step: exact linear part, psi-moment model integral, stage noises with the exact
    joint law (Cholesky factor of the Ito covariance; ``-mirrored`` gives the authors' rule)."""
    k = int(k)
    if k not in SEEDS_COMBINES:
        raise DiffsolveError(f"SEEDS is defined for k = {', '.join(map(str, SEEDS_COMBINES))}; got seeds-{k}")
    module = tableau_module(*seeds_key(k, *parse_seeds_variant(k, variant)))
    return build(f"seeds-{k}", "exact" if variant in (None, "", "exact") else variant, [module])


def from_table(name: str) -> Solver:
    """A registered seeds-k name (SOLVERS): the default variant."""
    return solver_from_table(name, build)


register_pattern(r"seeds-(?P<k>[123])", lambda k, variant: seeds_solver(k, variant), "seeds-{1,2,3}")
