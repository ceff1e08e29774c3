"""CPU batch loops (``numba.njit(parallel=True)``) around the scalar kernels of :mod:`diffsolve.kernels.scalar`,
and the fused mixture kernel (serial ``numba.njit`` over tiles of samples, run on threads by :func:`fused_gmm`).

Every sample (or coordinate pair) is computed by the same compiled scalar code whatever the thread count or the
batch split, so results are bitwise reproducible across both.  The loops are closures over a stamp (a hash of
the scalar and noise sources): Numba keys its on-disk cache on closure contents, so editing the scalar code in
another file still invalidates the cached machine code.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
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

__all__ = ["SOURCE_STAMP", "TILE", "PARALLEL_MIN_SIZE", "CORRECTIONS", "loops", "fused_gmm", "fused_kernel",
           "chain_kernel", "fused_chains"]

SOURCE_STAMP = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (scalar, philox))).hexdigest()[:16]

# Functions taking arrays are inlined into the loops at Numba-IR level: an out-of-line call costs an atomic reference
# count per array argument, more than a whole tableau row.  Inlined code takes the flags of the loop it lands in.
# The Philox generator (scalars only: no reference counts) stays a separate function to keep compile times down.
# Its flags must be explicit: a Numba function that sets no fastmath option is compiled with the flags of whichever
# caller compiles it first in the process (one overload per signature).  Inlined by LLVM into the fused kernel,
# fastmath and exact Philox code give different last bits (17 noisy fixture cases, ~1e-15), so the fused kernel's
# bits depended on whether a generic loop had been compiled earlier in the same process.  Hence two builds, each
# with its own generator and used by its own loops only: exact for the generic loops, fastmath for the fused
# kernel (the flags the reference fixture was written with).  The other out-of-line callees of the fused kernel
# (float max, integer min, int()) are compares and selects, the same code under either flag set.
# The fused kernel's reductions (the mixture denoiser) vectorise only with reassociation; no nnan/ninf, so inf/NaN
# semantics are kept.  The combine passes of the generic path stay exact (bitwise the NumPy interpreter's).
FUSED_FASTMATH = {"reassoc", "contract", "nsz"}
_k = make_kernels(numba.njit(inline="always"), decorate_scalar=numba.njit(fastmath=False))
combine_span = _k.combine_span
convert_span = _k.convert_span
advance_span = _k.advance_span
clip_add = _k.clip_add
combine_row = _k.combine_row
mala_propose, mala_accept, uld_refresh, uld_move, snr_move = (_k.mala_propose, _k.mala_accept, _k.uld_refresh,
                                                              _k.uld_move, _k.snr_move)
gmm_predict = _k.gmm_predict  # the exact-flag build of the scalar sources (tests compare it with plain Python)
_kf = make_kernels(numba.njit(inline="always"), decorate_scalar=numba.njit(fastmath=FUSED_FASTMATH))
_fused_combine_row = _kf.combine_row
_fused_predict_iso4 = _kf.gmm_predict_iso4
_fused_predict_diag2 = _kf.gmm_predict_diag2
_fused_clip_add = _kf.clip_add
# The chain kernel evaluates the mixture at five call sites (Tweedie start, setup, midpoint, proposal, ULD), in
# both component forms: inlined, that is ten copies of the vectorised likelihood and posterior loops and a minute
# of compilation.  Its build keeps those two parts out of line (explicit flags, see above; compiled once per
# signature): a call costs nothing next to the K x d work inside, and the kernel has no NRT, so no reference counts.
_kc = make_kernels(numba.njit(inline="always"),
                   decorate_fast=numba.njit(fastmath=FUSED_FASTMATH, error_model="numpy", nogil=True),
                   decorate_scalar=numba.njit(fastmath=FUSED_FASTMATH))
_fused_langevin_chain = _kc.langevin_chain

TILE = 16  # samples advanced together through one stage (the stage's model table stays in L1)
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

    def propose_any(P, Mid, Z, V, B, tau, tilt, simpson, seed_lo, seed_hi, sidx, step):
        """The MALA proposal of every sample (``mala_propose``)."""
        if stamp == "":
            return
        for i in prange(Z.shape[0]):
            mala_propose(P, Mid, Z, V, B, i, tau, tilt, simpson, seed_lo, seed_hi, sidx[i], step)

    def accept_any(Z, P, V, B, tau, tilt, radius, energy, dlogp, seed_lo, seed_hi, sidx, step, take):
        """The Metropolis test of every sample as a masked update (``mala_accept``); take[i] = accepted."""
        if stamp == "":
            return
        for i in prange(Z.shape[0]):
            take[i] = mala_accept(Z, P, V, B, i, tau, tilt, radius, energy, dlogp[i], seed_lo, seed_hi, sidx[i],
                                  step) == 1

    def snr_any(Z, P, V, B, tilt, alpha, snr, seed_lo, seed_hi, sidx, step, eps):
        """The SNR-rule corrector step of every sample (``snr_move``); eps[i] its step size."""
        if stamp == "":
            return
        for i in prange(Z.shape[0]):
            eps[i] = snr_move(Z, P, V, B, i, tilt, alpha, snr, seed_lo, seed_hi, sidx[i], step)

    def refresh_any(W, seed_lo, seed_hi, sidx, step):
        if stamp == "":
            return
        for i in prange(W.shape[0]):
            uld_refresh(W, i, seed_lo, seed_hi, sidx[i], step)

    def move_any(Z, W, V, B, tilt, cf, it, seed_lo, seed_hi, sidx, step):
        """The ULD step of every sample (``uld_move``)."""
        if stamp == "":
            return
        for i in prange(Z.shape[0]):
            uld_move(Z, W, V, B, i, tilt, cf, it, seed_lo, seed_hi, sidx[i], step)

    jit = numba.njit(parallel=parallel, cache=True)
    return tuple(jit(f) for f in (combine_any, convert_any, advance_any, clip_any, propose_any, accept_any,
                                  refresh_any, move_any, snr_any))


class Loops(NamedTuple):
    """The batch loops of one build (serial or parallel)."""

    combine: object
    convert: object
    advance: object
    clip: object
    propose: object  # the Langevin passes (diffsolve.langevin.ChainOps)
    accept: object
    refresh: object
    move: object
    snr: object


_PARALLEL = Loops(*_build(SOURCE_STAMP, True))
_SERIAL = Loops(*_build(SOURCE_STAMP, False))


def _advance_last_kernel(stamp):
    """The output row of a step with the last stage's model output read straight from the model
    (``advance_span``, slot plan ``last_in_place``) for rows lo..hi-1, with the scratch row ``T (1, 1, w)`` (the
    signature of :func:`_on_threads`).  Serial, ``nogil`` and without NRT like :func:`fused_kernel`: an NRT
    function keeps an atomic reference count per array argument of each inlined call, per row (about 2
    microseconds of a 16384-element step); :func:`advance_last` runs it on threads."""

    def advance_last(V, vals, u, fx, fd, tx, td, identity, out, x, A, B, E, C, m, fslot, hslot, seed_lo, seed_hi,
                     sidx, step, alias, lo, hi, T):
        if stamp == "":  # never true: makes the stamp a closure cell, hence part of the cache key
            return 0
        pieces = x.shape[0] // sidx.shape[0]
        w = x.shape[1]
        bad = 0
        for t in range(lo, hi):
            i = t // pieces
            bad += advance_span(V, T, vals, u, out, x, t, (t - i * pieces) * w, fx, fd, tx, td, identity, A, B,
                                E, C, m, fslot, hslot, seed_lo, seed_hi, sidx[i], step, alias)
        return bad

    return numba.njit(cache=True, nogil=True, error_model="numpy", _nrt=False)(advance_last)


_advance_last = _advance_last_kernel(f"{SOURCE_STAMP}/advance-last")


@functools.lru_cache(maxsize=None)
def fused_kernel(iso: bool, clipped: bool):
    """The fused mixture kernel for one component form (``iso``), with or without the clipped momentum.

    ``kernel(X, V, U, A, B, E, C, fslot, hslot, KB, KE, bound, tab, aux, seed_lo, seed_hi, sidx, step_offset,
    c_lo, c_hi, ll, ll2, ll3, ll4)`` advances the samples of tiles c_lo..c_hi-1 (TILE samples each) through every
    step; ``ll``..``ll4`` are scratch vectors of length K.  The model runs on groups of four (isotropic) or two
    (diagonal) samples, each table load feeding the group (register blocking), so the stage inputs ``U`` and the
    slots ``V`` have a multiple of four rows, up to three more than ``X``.

    * The flags are closure constants: Numba prunes the branches not taken before it inlines the scalar kernels,
      so each specialisation compiles only the code it runs.  They and the source stamp are part of the cache
      key (closure contents).  Each specialisation is self-contained (everything inlined but the fused build's
      own Philox generator, see above), so its bits do not depend on which others were compiled or loaded.
    * Serial, not a ``prange`` loop: parfor lowering types the inlined body twice (the function, then the gufunc
      made of it) and LLVM optimises and emits it twice (the gufunc's library, then the enclosing one), about
      half of the cold-start time.  :func:`fused_gmm` runs chunks of tiles on threads instead (``nogil``); a
      sample's arithmetic is the same in any chunk.
    * ``error_model="numpy"`` as for a gufunc (no zero-division branches), and no NRT: a serial function keeps an
      atomic reference count per array argument of every inlined call site inside its loops, which made it
      12-20 % slower than the gufunc on GMM-2M.  Without NRT the kernel cannot allocate: the scratch vectors
      come from the caller, whose references keep all arrays alive during the call.
    """
    stamp = f"{SOURCE_STAMP}/fused/iso={iso}/clipped={clipped}"

    def fused(X, V, U, A, B, E, C, fslot, hslot, KB, KE, bound, tab, aux, seed_lo, seed_hi, sidx, step_offset,
              c_lo, c_hi, ll, ll2, ll3, ll4):
        if stamp == "":  # never true: makes the stamp a closure cell, hence part of the cache key
            return
        n = X.shape[0]
        steps = A.shape[0]
        S = A.shape[1] - 1
        for c in range(c_lo, c_hi):
            lo = c * TILE
            hi = min(n, lo + TILE)
            for m in range(steps):
                step = step_offset + m + 1
                for s in range(S):
                    for i in range(lo, hi):
                        _fused_combine_row(U, X, V, i, A, B, E, C, m, s, fslot, hslot, seed_lo, seed_hi, sidx[i],
                                           step, False)
                    # groups of four (isotropic) or two samples; the last group may reach into the spare rows
                    if iso:
                        for i in range(lo, hi, 4):
                            _fused_predict_iso4(V, fslot[m, s], U, i, tab, aux, m, s, ll, ll2, ll3, ll4)
                    else:
                        for i in range(lo, hi, 2):
                            _fused_predict_diag2(V, fslot[m, s], U, i, i + 1, tab, aux, m, s, ll, ll2)
                for i in range(lo, hi):
                    _fused_combine_row(X, X, V, i, A, B, E, C, m, S, fslot, hslot, seed_lo, seed_hi, sidx[i], step,
                                       True)
                    if clipped:
                        _fused_clip_add(X, V, i, m, fslot, hslot, KB, KE, bound)

    return numba.njit(cache=True, nogil=True, fastmath=FUSED_FASTMATH, error_model="numpy", _nrt=False)(fused)


_pool = None
_pool_lock = threading.Lock()


def _forget_pool():
    global _pool
    _pool = None  # a forked child inherits the pool object but not its threads


os.register_at_fork(after_in_child=_forget_pool)


def _on_threads(kernel, args, items: int, scratch: tuple, dtype):
    """``kernel(*args, lo, hi, *buffers)`` over items 0..items-1 split into ``numba.get_num_threads()``
    contiguous chunks, run on as many threads (``buffers``: scratch arrays of the shapes ``scratch``, per
    chunk).  Returns the chunks' results in order."""
    global _pool
    k = max(1, min(numba.get_num_threads(), items))
    ends = [items * j // k for j in range(k + 1)]
    jobs = []
    if k > 1:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max(1, numba.config.NUMBA_NUM_THREADS - 1), "diffsolve-fused")
            pool = _pool
        jobs = [pool.submit(kernel, *args, ends[j], ends[j + 1], *(np.empty(n, dtype) for n in scratch))
                for j in range(1, k)]
    first = kernel(*args, ends[0], ends[1], *(np.empty(n, dtype) for n in scratch))
    return [first] + [job.result() for job in jobs]


_scratch = threading.local()  # per thread: the scratch row of a one-chunk advance_last (the last shape)


def advance_last(V, vals, u, fx, fd, tx, td, identity, out, x, A, B, E, C, m, fslot, hslot, seed_lo, seed_hi, sidx,
                 step, alias) -> int:
    """The output row of step m under the slot plan ``last_in_place`` for every row of ``x`` (rows: pieces of
    samples, as in the batch loops), on ``numba.get_num_threads()`` threads from ``PARALLEL_MIN_SIZE`` elements
    on; returns the number of non-finite model outputs."""
    args = (V, vals, u, fx, fd, tx, td, identity, out, x, A, B, E, C, m, fslot, hslot, seed_lo, seed_hi, sidx, step,
            alias)
    rows, w = x.shape
    if x.size >= PARALLEL_MIN_SIZE and numba.get_num_threads() > 1:
        return sum(_on_threads(_advance_last, args, rows, ((1, 1, w),), x.dtype))
    T = getattr(_scratch, "row", None)
    if T is None or T.shape[2] != w or T.dtype != x.dtype:
        T = _scratch.row = np.empty((1, 1, w), dtype=x.dtype)
    return _advance_last(*args, 0, rows, T)


def fused_gmm(X, history, A, B, E, C, fslot, hslot, KB, KE, bound, clipped, tab, aux, iso, seed_lo, seed_hi, sidx,
              step_offset):
    """Every step of every sample of ``X`` (in place) with the mixture model inlined, starting from the history
    values ``history`` (``history[q]`` = H_q of the first step, arrays like ``X``): the tiles run by
    :func:`fused_kernel` in contiguous chunks, one per thread."""
    n = X.shape[0]
    S, M = A.shape[1] - 1, E.shape[2]
    rows = n + (-n) % 4  # the model runs on groups of samples: the last group is completed with spare zero rows
    V = np.zeros((max(S + M, 1), rows) + X.shape[1:], dtype=X.dtype)
    for m, h in enumerate(history):
        V[S + m, :n] = h
    U = np.zeros((rows,) + X.shape[1:], dtype=X.dtype)
    kernel = fused_kernel(bool(iso), bool(clipped))
    args = (X, V, U, A, B, E, C, fslot, hslot, KB, KE, bound, tab, aux, seed_lo, seed_hi, sidx, step_offset)
    K = aux.shape[2] - 2
    _on_threads(kernel, args, (n + TILE - 1) // TILE, (K, K, K, K), X.dtype)


@functools.lru_cache(maxsize=None)
def chain_kernel(iso: bool):
    """The Langevin chain kernel for one component form: ``kernel(Z, P, Mid, B, W, V, segs, segr, cf, tab, aux,
    seed_lo, seed_hi, sidx, step_offset, stat, lo, hi, ll)`` runs every segment of samples lo..hi-1
    (``langevin_chain`` of :mod:`diffsolve.kernels.scalar`); compiled like :func:`fused_kernel`."""
    stamp = f"{SOURCE_STAMP}/chain/iso={iso}"

    def chains(Z, P, Mid, B, W, V, segs, segr, cf, tab, aux, seed_lo, seed_hi, sidx, step_offset, stat, lo, hi,
               ll):
        if stamp == "":  # never true: makes the stamp a closure cell, hence part of the cache key
            return
        for i in range(lo, hi):
            _fused_langevin_chain(Z, P, Mid, B, W, V, i, ll, segs, segr, cf, tab, aux, iso, seed_lo, seed_hi,
                                  sidx[i], step_offset, stat)

    return numba.njit(cache=True, nogil=True, fastmath=FUSED_FASTMATH, error_model="numpy", _nrt=False)(chains)


def fused_chains(Z, plan, seed_lo, seed_hi, sidx, step_offset):
    """Every Langevin segment of ``plan`` (:class:`~diffsolve.kernels.plan.ChainPlan`) for every sample of ``Z``
    (in place), samples in contiguous chunks, one per thread; returns the segments' statistics (n, segments)
    (accepted MALA moves, summed SNR step sizes)."""
    n = Z.shape[0]
    work = [np.empty_like(Z) for _ in range(4)]  # P, Mid, B, W
    V = np.empty((3,) + Z.shape, dtype=Z.dtype)
    stat = np.zeros((n, plan.segs.shape[0]), dtype=np.float64)
    g = plan.tables
    args = (Z, *work, V, plan.segs, plan.segr, plan.cf, g.tab, g.aux, seed_lo, seed_hi, sidx, step_offset, stat)
    _on_threads(chain_kernel(bool(g.iso)), args, n, (g.aux.shape[2] - 2,), Z.dtype)
    return stat


def loops(size: int) -> Loops:
    """The parallel loops for a pass over ``size`` elements, the serial ones below ``PARALLEL_MIN_SIZE``."""
    return _PARALLEL if size >= PARALLEL_MIN_SIZE else _SERIAL


# correction kernel name (diffsolve.corrections) -> its batch pass in a Loops build
CORRECTIONS = {"clip_add": "clip"}
