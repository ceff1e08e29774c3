"""``unipc-{k}``: UniPC-k for any k >= 1 (Zhao, Bai, Rao, Zhou, Lu, NeurIPS 2023, arXiv 2302.04867; the tableaux of
:mod:`diffsolve.symbolic.unipc`; docs/algorithms/unipc.md), 1 NFE/step, ODE order k + 1 (UniP-k alone: k).

The state is the predicted point, where the model is called; each step first adds the corrector's update of the
previous step, then predicts.  Warm-up level L (L history values: the first k steps) runs the predictor of order
min(k, L + 1) after the corrector of order L, as diffusers' ``UniPCMultistepScheduler`` with
``lower_order_final=False``; level 0 is DDIM.  A step to sigma = 0 takes level 0 (the registry's rule): in data
prediction that returns D(x_n), which is what the corrected step gives too (its state enters with sigma_t / sigma_s
= 0).

Variant strings: tokens joined by "-", in any order; "exact" (the default) is none of them:

    published   the authors' / diffusers' coefficients (rho = 1/2 for UniP-2 and UniC-1) with B(h) = e^h - 1
    bh1, bh2    B(h) = h or e^h - 1 of the published coefficients (bh2: diffusers' default solver_type)
    eps         noise prediction (diffusers' predict_x0=False); the default is data prediction (predict_x0=True)
    p           UniP-k alone, no corrector (diffusers with every step in disable_corrector)

so the default ``unipc-k`` solves every rho system (which makes it independent of B(h)) in data prediction, and
diffusers' default scheduler (solver_order=2, bh2, predict_x0=True) is ``unipc-2:published``.  Since the solved
coefficients do not depend on B(h), bh1 / bh2 without ``published`` are refused.
"""

from __future__ import annotations

from ..errors import DiffsolveError
from .modules import shipped, solver_from_modules, solver_from_table, tableau_module
from .registry import Solver, register_pattern

__all__ = ["FAMILY", "MAX_ORDER", "REGISTERED", "PUBLISHED_RHO", "published_changes", "parse_unipc_variant",
           "unipc_levels", "unipc_solver", "build", "from_table", "registered"]

FAMILY = "unipc"
MAX_ORDER = 12
TOKENS = ("published", "bh1", "bh2", "eps", "data", "p")
# (role, order) -> the rho (numerator, denominator) the published coefficients fix (the authors' code and diffusers:
# UniP-2 and UniC-1); the derivation (diffsolve.symbolic.unipc.RULES) reads it here
PUBLISHED_RHO = {("predictor", 2): (1, 2), ("corrector", 1): (1, 2)}
# the shipped names (SOLVERS): k -> variants; every other (k, variant) comes from the name pattern
REGISTERED = {1: ("exact", "published"), 2: ("exact", "p", "published"), 3: ("exact", "p", "published")}


def parse_unipc_variant(variant: str | None) -> tuple[str, str, bool]:
    """(rule, prediction, corrected) of a variant string: rule "exact", "published" (bh2) or "published-bh1"."""
    if variant in (None, "", "exact"):
        return "exact", "data", True
    tokens = str(variant).split("-")
    unknown = [t for t in tokens if t not in TOKENS]
    if unknown or len(set(tokens)) != len(tokens) or {"bh1", "bh2"} <= set(tokens) or {"eps", "data"} <= set(tokens):
        raise DiffsolveError(f"unipc has no variant {variant!r}: use tokens {', '.join(TOKENS)} joined by '-' (at most "
                             "one of bh1/bh2 and of eps/data), e.g. 'published', 'published-bh1-eps', 'p'")
    if {"bh1", "bh2"} & set(tokens) and "published" not in tokens:
        raise DiffsolveError(f"unipc variant {variant!r}: B(h) cancels from the solved coefficients, so bh1 / bh2 "
                             "choose the published ones; write e.g. 'published-bh1'")
    rule = "exact" if "published" not in tokens else "published-bh1" if "bh1" in tokens else "published"
    return rule, "eps" if "eps" in tokens else "data", "p" not in tokens


def published_changes(p: int, c: int) -> bool:
    """Whether the published coefficients change the tableau (predictor order p, corrector order c; its correction
    also subtracts the previous step's UniP-c): elsewhere a published level is the exact tableau."""
    return bool({("predictor", p), ("predictor", c), ("corrector", c)} & set(PUBLISHED_RHO))


def _key(p: int, c: int, prediction: str, rule: str) -> tuple:
    """The catalog key of the tableau (predictor order p, corrector order c)."""
    fixed = rule != "exact" and published_changes(p, c)
    if c == 0 and (not fixed or (rule == "published" and prediction == "data")):
        # UniP-p alone is the p-step multistep integrator (UniP-1: DDIM): with the solved rho, the exact weights
        # (dpmpp-{p}m / dpm-solver-{p}m); the published UniP-2 with B(h) = e^h - 1 is DPM-Solver++(2M)'s published
        # form (tests/test_unipc.py checks both)
        return ("multistep", p, prediction, False, "published" if fixed else "exact")
    suffix = "" if c == p else "-warmup" if c == p - 1 else "-p"
    return ("unipc", p, prediction, False, (rule if published_changes(p, c) else "exact") + suffix)


def unipc_levels(k: int, rule: str = "exact", prediction: str = "data", corrected: bool = True) -> tuple:
    """The catalog keys of the warm-up levels 0..M: level L runs UniC-L (none for L = 0 or without a corrector),
    then UniP-min(k, L + 1); M = k with the corrector, k - 1 without."""
    if corrected:
        return tuple(_key(min(k, L + 1), L, prediction, rule) for L in range(k + 1))
    return tuple(_key(L + 1, 0, prediction, rule) for L in range(k))


def _variant_name(rule: str, prediction: str, corrected: bool) -> str:
    tokens = {"exact": [], "published": ["published"], "published-bh1": ["published", "bh1"]}[rule]
    tokens += (["eps"] if prediction == "eps" else []) + ([] if corrected else ["p"])
    return "-".join(tokens) or "exact"


def registered() -> dict:
    """SOLVERS entries of the shipped names, "unipc-k[:variant]" -> (FAMILY, levels, None)
    (diffsolve.codegen.names writes them into the index; the catalog ships their levels)."""
    out = {}
    for k, variants in REGISTERED.items():
        for variant in variants:
            name = f"unipc-{k}" + ("" if variant == "exact" else f":{variant}")
            out[name] = (FAMILY, unipc_levels(k, *parse_unipc_variant(variant)), None)
    return out


def build(name: str, variant: str, modules, clip=None) -> Solver:
    """The Solver of a unipc name from its level modules."""
    rule, prediction, corrected = parse_unipc_variant(variant)
    k = modules[-1].K
    what = f"UniPC-{k} (UniP-{k} + UniC-{k})" if corrected else f"UniP-{k} (no corrector)"
    coefficients = "solved system" if rule == "exact" else f"published coefficients, {rule}"
    return solver_from_modules(
        name, modules, family=FAMILY, variant=variant,
        description=f"{what}, {prediction} prediction, {coefficients}; state = the predicted point",
        extra={"rule": rule, "corrected": corrected},
        cite="" if corrected else "UniP alone: Zhao, Bai, Rao, Zhou, Lu, UniPC, NeurIPS 2023 (arXiv 2302.04867), "
                                  "whose solved predictor is this multistep integrator",
    )


def from_table(name: str) -> Solver:
    return solver_from_table(name, build)


def unipc_solver(k, variant: str | None = None) -> Solver:
    """``unipc-k``: UniPC-k, 1 NFE/step, order k + 1 (variant ``p``: UniP-k, order k); see the module doc."""
    k = int(k)
    if not 1 <= k <= MAX_ORDER:
        raise DiffsolveError(f"unipc order k must be between 1 and {MAX_ORDER}, got {k}")
    rule, prediction, corrected = parse_unipc_variant(variant)
    variant = _variant_name(rule, prediction, corrected)
    name = f"unipc-{k}"
    registered_name = name if variant == "exact" else f"{name}:{variant}"
    if shipped(registered_name) is not None:
        return from_table(registered_name)
    return build(name, variant, [tableau_module(*key) for key in unipc_levels(k, rule, prediction, corrected)])


register_pattern(r"unipc-(?P<k>\d+)", lambda k, variant: unipc_solver(k, variant), "unipc-{k}")
