"""SEEDS-1/2/3 (Gonzalez et al., NeurIPS 2023, arXiv 2305.14267; docs/algorithms/seeds.md): naming layer over
the stochastic singlestep derivation.

The SEEDS steps *are* the eta-family singlestep exponential integrators with exact stage noise:
``derive_singlestep(k, prediction, variant, sde=True, noise=...)`` integrates the linear part exactly, the model
integral with the psi-moments of the stage interpolant, and draws one normal per stage node with coefficient
matrix = Cholesky factor of the Ito covariance of the node noises (rule "exact", docs/algorithms/seeds.md §2.1 (A))
or the authors' "mirrored segments" rule (B).  This module only maps the paper's combine forms onto those variants:

    combine | k | derivation variant | update (docs/algorithms/seeds.md)
    '1'     | 1 | published          | §2.2 (DP eta = 1: the DDPM posterior step)
    '2a'    | 2 | published          | §2.3 phi_1 combine, (1/(2r)) E1(-H) (D_1 - D_s)  (authors' default)
    '2b'    | 2 | interp             | §2.3 phi_2 combine, (1/r) E2(-H) (D_1 - D_s)  (linear interpolant, exact)
    '3a'    | 3 | published          | §2.4 exact first-difference corrections (not the authors' c2/c3 slip)
    '3b'    | 3 | interp             | §2.4 quadratic through the three stage values

NFE/step = k; weak order 1, 2, 2 (k = 1, 2, 3; SEEDS-3 measures 1.7-2.0, docs/algorithms/seeds.md §3.3), strong
order 1; with eta = 0 the same tableaux are DPM-Solver++(1S/2S/3S) (deterministic order k).
"""

from __future__ import annotations

import sympy as sp

from . import symbols as sy
from .singlestep import derive_singlestep
from .tableau import SymbolicTableau

__all__ = ["COMBINES", "DEFAULT_COMBINE", "NOISE_RULES", "derive_seeds", "seeds_variant", "node_covariance",
           "REFERENCE"]

REFERENCE = ("Gonzalez, Fernandez, Tran, Gherbi, Hajri, Masmoudi, SEEDS: Exponential SDE Solvers for Fast "
             "High-Quality Sampling from Diffusion Models, NeurIPS 2023, arXiv 2305.14267")

# k -> combine form -> singlestep derivation variant
COMBINES = {
    1: {"1": "published"},
    2: {"2a": "published", "2b": "interp"},
    3: {"3a": "published", "3b": "interp"},
}
DEFAULT_COMBINE = {1: "1", 2: "2a", 3: "3a"}
NOISE_RULES = ("exact", "mirrored")


def seeds_variant(k: int, combine: str | None = None) -> str:
    """The singlestep derivation variant of SEEDS-``k`` combine form ``combine`` (default: the paper's form)."""
    if k not in COMBINES:
        raise ValueError(f"SEEDS order k must be 1, 2 or 3, got {k!r}")
    combine = DEFAULT_COMBINE[k] if combine is None else str(combine)
    try:
        return COMBINES[k][combine]
    except KeyError:
        raise ValueError(f"SEEDS-{k} combine forms are {sorted(COMBINES[k])}, got {combine!r}") from None


def derive_seeds(k: int, prediction: str = "data", combine: str | None = None, noise: str = "exact") -> SymbolicTableau:
    """The checked symbolic tableau of SEEDS-``k`` (stochastic, eta a runtime parameter, default 1).

    ``prediction`` "data" (DP, default) or "eps" (NP); ``combine`` as in :data:`COMBINES`; ``noise`` "exact"
    (Cholesky = OU recursion, default) or "mirrored" (authors' code; equal to "exact" for equal sub-intervals).
    Stage fractions are the parameters c1 (, c2) with defaults 1/2 and (1/3, 2/3).
    """
    if noise not in NOISE_RULES:
        raise ValueError(f"SEEDS noise rule must be one of {NOISE_RULES}, got {noise!r}")
    return derive_singlestep(int(k), prediction, seeds_variant(int(k), combine), sde=True, noise=noise)


def node_covariance(tab: SymbolicTableau) -> sp.ImmutableMatrix:
    """Symbolic covariance of the node-normalised stage noises N_j (rows 1..S of C divided by sigma_j)."""
    rows = [tab.c[i, :] * sp.exp(-sy.ls(i)) for i in range(1, tab.stages + 1)]
    L = sp.Matrix.vstack(*rows)
    return sp.ImmutableMatrix(sp.simplify(L * L.T))
