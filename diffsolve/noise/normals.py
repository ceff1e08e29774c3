"""Batch standard normals keyed by (seed, sample index, step, draw): the noise every backend uses.

Reference: Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011.
See :mod:`diffsolve.noise.philox` for the generator and the keying convention.
"""

import numbers
import operator

import numpy as np

from ..errors import DiffsolveError, DiffsolveTypeError
from .philox import fill_normals, fill_uniforms

__all__ = ["standard_normal", "standard_uniform", "split_seed", "check_uint", "check_sample_index"]

_U32 = 2**32
_U64 = 2**64
MAX_DIM = 2**32  # coordinates 0 .. 2**32 - 1 keep block = coord // 2 below the reserved tag bit


def check_uint(value, name, bound, fix):
    """Return ``value`` as a Python int after checking it is an integer in [0, bound)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise DiffsolveTypeError(
            f"{name} must be an integer in [0, {bound}), got {value!r} of type {type(value).__name__}; {fix}"
        )
    value = operator.index(value)
    if not 0 <= value < bound:
        raise DiffsolveError(f"{name} must be an integer in [0, {bound}), got {value}; {fix}")
    return value


def split_seed(seed):
    """Validate a seed (int in [0, 2**64)) and return the Philox key words ``(seed_lo, seed_hi)``."""
    seed = check_uint(seed, "seed", _U64, "pass a non-negative integer below 2**64 (e.g. seed % 2**64)")
    return seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF


def check_sample_index(sample_index, name="sample_index"):
    """Validate global sample indices (1-D integers in [0, 2**32)) and return them as contiguous int64."""
    arr = np.asarray(sample_index)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise DiffsolveTypeError(
            f"{name} must be a 1-D array of integers, got dtype {arr.dtype}; "
            f"pass np.arange(start, stop, dtype=np.int64) or cast integral values with .astype(np.int64)"
        )
    if arr.ndim != 1:
        raise DiffsolveError(
            f"{name} must be 1-D (one global index per sample), got shape {arr.shape}; "
            f"flatten it with np.ravel(...)"
        )
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= _U32:
            raise DiffsolveError(
                f"{name} must lie in [0, 2**32), got values in [{lo}, {hi}]; "
                f"use global sample numbers 0, 1, 2, ... (at most 2**32 samples per seed)"
            )
    return np.ascontiguousarray(arr, dtype=np.int64)


def standard_normal(seed, sample_index, step, draw, dim):
    """Standard normals of shape (n, dim), float64, keyed by (seed, sample_index[i], step, draw, coordinate j).

    Entry (i, j) is the Philox4x32-10 normal of key (seed low 32 bits, seed high 32 bits) and counter
    (j // 2, sample_index[i], step, draw); it depends on nothing else: not on n, on which samples share the batch,
    on ``dim`` beyond j, or on the thread count.  seed: int in [0, 2**64); sample_index: 1-D integers in [0, 2**32);
    step, draw: ints in [0, 2**32); dim >= 1.  Draw values >= 2**31 are free too: the Brownian tree is separated
    through the counter's block word, not through draw.
    """
    seed_lo, seed_hi = split_seed(seed)
    idx = check_sample_index(sample_index)
    step = check_uint(step, "step", _U32, "pass the solver step number as a non-negative int below 2**32")
    draw = check_uint(draw, "draw", _U32, "pass the draw number within the step as a non-negative int below 2**32")
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral):
        raise DiffsolveTypeError(f"dim must be a positive integer, got {dim!r} of type {type(dim).__name__}; pass e.g. dim=64")
    dim = operator.index(dim)
    if not 1 <= dim <= MAX_DIM:
        raise DiffsolveError(f"dim must be an integer in [1, 2**32], got {dim}; pass the number of coordinates")
    out = np.empty((idx.shape[0], dim), dtype=np.float64)
    if idx.shape[0]:
        fill_normals(out, seed_lo, seed_hi, idx, 0, step, draw)
    return out


def standard_uniform(seed, sample_index, step, draw):
    """One uniform in (0, 1) per sample, shape (n,), keyed by (seed, sample_index[i], step, draw): the Philox4x32-10
    words (r0, r1) of counter (0, sample_index[i], step, draw) through ``uniform53`` (53 random bits, never 0 or 1).
    A draw used for uniforms must not be used for normals of the same step (they would share counter block 0)."""
    seed_lo, seed_hi = split_seed(seed)
    idx = check_sample_index(sample_index)
    step = check_uint(step, "step", _U32, "pass the solver step number as a non-negative int below 2**32")
    draw = check_uint(draw, "draw", _U32, "pass the draw number within the step as a non-negative int below 2**32")
    out = np.empty(idx.shape[0], dtype=np.float64)
    fill_uniforms(out, seed_lo, seed_hi, idx, step, draw)
    return out
