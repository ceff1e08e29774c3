"""Backward-compatible names: the paper solvers now live in :mod:`diffsolve.solvers.seeds` (SEEDS-1/2/3,
Gonzalez et al., NeurIPS 2023, arXiv 2305.14267) and :mod:`diffsolve.solvers.accelerated` (Li et al., ICML 2024,
arXiv 2403.03852; the accel-sde reconstruction following Li & Cai, arXiv 2410.23285).  Importing this module
registers nothing new (``diffsolve.solvers`` registers every shipped name).
"""

from .accelerated import (ACCEL_DDIM_VARIANTS, ACCEL_SDE_MOMENTA, accel_ddim_solver, accel_ddpm_solver,  # noqa: F401
                          accel_sde_solver)
from .seeds import SEEDS_COMBINES, parse_seeds_variant, seeds_solver  # noqa: F401

__all__ = ["ACCEL_DDIM_VARIANTS", "ACCEL_SDE_MOMENTA", "SEEDS_COMBINES", "seeds_solver", "accel_ddim_solver",
           "accel_ddpm_solver", "accel_sde_solver", "parse_seeds_variant"]
