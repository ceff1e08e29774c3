"""Noise for diffsolve: Philox4x32-10 counter-based normals keyed by (seed, sample index, step, draw), and a
virtual Brownian tree on the same generator.

Reference: Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011.
"""

from .brownian import BrownianTree
from .normals import standard_normal, standard_uniform
from .philox import make_noise_functions, normal_at, normal_at_jit, philox4x32_10, philox4x32_10_jit

__all__ = [
    "BrownianTree",
    "make_noise_functions",
    "normal_at",
    "normal_at_jit",
    "philox4x32_10",
    "philox4x32_10_jit",
    "standard_normal",
    "standard_uniform",
]
