"""``euler-maruyama`` (:mod:`diffsolve.symbolic.euler`): one Euler-Maruyama step of the reverse eta-SDE in
lambda time for y = x / sigma (Kloeden & Platen 1992; the reverse SDE of Song et al., ICLR 2021, arXiv
2011.13456).  Its catalog key is in SOLVERS (``diffsolve._generated``); order, strong order and reference are the
generated module's.
"""

from __future__ import annotations

from .modules import solver_from_modules, solver_from_table
from .registry import Solver

__all__ = ["FAMILY", "build", "from_table"]

FAMILY = "euler-maruyama"


def build(name: str, variant: str, modules, clip=None) -> Solver:
    return solver_from_modules(name, modules, family=FAMILY, variant=variant,
                               description="Euler-Maruyama in lambda for y = x / sigma (explicit linear part; "
                                           "needs eta h < 2)")


def from_table(name: str) -> Solver:
    return solver_from_table(name, build)
