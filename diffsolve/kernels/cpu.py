"""CPU batch loops (``numba.njit(parallel=True)``) around the scalar kernels of :mod:`diffsolve.kernels.scalar`.

Every sample (or coordinate pair) is computed by the same compiled scalar code whatever the thread count or the
batch split, so results are bitwise reproducible across both.  The loops are closures over a stamp (a hash of
the scalar and noise sources): Numba keys its on-disk cache on closure contents, so editing the scalar code in
another file still invalidates the cached machine code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from ..noise import philox
from . import scalar
from ..progress import announce_compilation
from .scalar import make_kernels

announce_compilation()

__all__ = ["SOURCE_STAMP", "TILE", "PARALLEL_MIN_SIZE", "CORRECTIONS", "loops", "fused_gmm"]

SOURCE_STAMP = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (scalar, philox))).hexdigest()[:16]

# Functions taking arrays are inlined into the loops at Numba-IR level: an out-of-line call costs an atomic reference
# count per array argument, more than a whole tableau row.  Inlined code takes the flags of the loop it lands in.
# The Philox generator (scalars only: no reference counts) stays a separate function to keep compile times down.
_k = make_kernels(numba.njit(inline="always"), decorate_scalar=numba.njit)
# The fused loop's reductions (the mixture denoiser) vectorise only with reassociation; no nnan/ninf, so inf/NaN
# semantics are kept.  The combine passes of the generic path stay exact (bitwise the NumPy interpreter's).
FUSED_FASTMATH = {"reassoc", "contract", "nsz"}
combine_span = _k.combine_span
combine_row = _k.combine_row
convert_span = _k.convert_span
clip_add = _k.clip_add
gmm_predict = _k.gmm_predict

TILE = 8  # samples advanced together through one stage (the stage's model table stays in L1)
PARALLEL_MIN_SIZE = 32768  # below this many elements a serial pass beats waking the thread pool


def _build(stamp, parallel):
    """The batch loops.  ``stamp`` is part of Numba's cache key (see the module docstring); the key ignores
    the ``parallel`` flag, so the serial and parallel builds carry different stamps."""
    stamp = f"{stamp}/{'parallel' if parallel else 'serial'}"

    def combine_any(out, x, V, A, B, E, C, m, r, fslot, hslot, seed_lo, seed_hi, sidx, step, inplace):
        """Rows of ``x`` are pieces of ``pieces = x.shape[0] // sidx.shape[0]`` per sample (see ``combine``)."""
        if stamp == "":  # never true: makes the stamp a closure cell, hence part of the cache key
            return
        w = x.shape[1]
        pieces = x.shape[0] // sidx.shape[0]
        for t in prange(x.shape[0]):
            i = t // pieces
            combine_span(out, x, V, t, 0, w, (t - i * pieces) * w, A, B, E, C, m, r, fslot, hslot,
                         seed_lo, seed_hi, sidx[i], step, inplace)

    def clip_any(out, V, m, fslot, hslot, KB, KE, bound):
        """The clipped momentum of step m for every sample (whole rows: the cap needs the sample's norm);
        returns the number of clip events."""
        if stamp == "":
            return 0
        events = 0
        for i in prange(out.shape[0]):
            events += clip_add(out, V, i, m, fslot, hslot, KB, KE, bound)
        return events

    def convert_any(V, slot, vals, u, fx, fd, tx, td, identity):
        if stamp == "":
            return 0
        bad = 0
        for t in prange(u.shape[0]):
            bad += convert_span(V, slot, vals, u, t, 0, u.shape[1], fx, fd, tx, td, identity)
        return bad

    def advance_any(V, slot, vals, u, fx, fd, tx, td, identity, out, x, A, B, E, C, m, r, fslot, hslot,
                    seed_lo, seed_hi, sidx, step, inplace):
        """``convert_any`` then ``combine_any`` row by row in one pass (the Stepper's update): each row's
        converted model output is still in cache when the combine reads it.  ``u`` and ``out`` may alias."""
        if stamp == "":
            return 0
        w = x.shape[1]
        pieces = x.shape[0] // sidx.shape[0]
        bad = 0
        for t in prange(x.shape[0]):
            bad += convert_span(V, slot, vals, u, t, 0, w, fx, fd, tx, td, identity)
            i = t // pieces
            combine_span(out, x, V, t, 0, w, (t - i * pieces) * w, A, B, E, C, m, r, fslot, hslot,
                         seed_lo, seed_hi, sidx[i], step, inplace)
        return bad

    def fused(X, V, U, A, B, E, C, fslot, hslot, KB, KE, bound, clipped, tab, aux, iso, seed_lo, seed_hi, sidx,
              step_offset):
        """Every step of every sample with the mixture model inlined; tiles of TILE samples in parallel."""
        if stamp == "":
            return
        n = X.shape[0]
        steps = A.shape[0]
        S = A.shape[1] - 1
        K = aux.shape[2] - 2
        for c in prange((n + TILE - 1) // TILE):
            ll = np.empty(K, dtype=X.dtype)
            lo = c * TILE
            hi = min(n, lo + TILE)
            for m in range(steps):
                step = step_offset + m + 1
                for s in range(S):
                    for i in range(lo, hi):
                        combine_row(U, X, V, i, A, B, E, C, m, s, fslot, hslot, seed_lo, seed_hi, sidx[i], step,
                                    False)
                        gmm_predict(V, fslot[m, s], U, i, tab, aux, m, s, ll, iso)
                for i in range(lo, hi):
                    combine_row(X, X, V, i, A, B, E, C, m, S, fslot, hslot, seed_lo, seed_hi, sidx[i], step, True)
                    if clipped:
                        clip_add(X, V, i, m, fslot, hslot, KB, KE, bound)

    jit = numba.njit(parallel=parallel, cache=True)
    fast = numba.njit(parallel=parallel, cache=True, fastmath=FUSED_FASTMATH)
    return jit(combine_any), jit(convert_any), jit(advance_any), fast(fused), jit(clip_any)


class Loops(NamedTuple):
    """The batch loops of one build (serial or parallel)."""

    combine: object
    convert: object
    advance: object
    fused: object
    clip: object


_PARALLEL = Loops(*_build(SOURCE_STAMP, True))
_SERIAL = Loops(*_build(SOURCE_STAMP, False))
fused_gmm = _PARALLEL.fused


def loops(size: int) -> Loops:
    """The parallel loops for a pass over ``size`` elements, the serial ones below ``PARALLEL_MIN_SIZE``."""
    return _PARALLEL if size >= PARALLEL_MIN_SIZE else _SERIAL


# correction kernel name (diffsolve.corrections) -> its batch pass in a Loops build
CORRECTIONS = {"clip_add": "clip"}
