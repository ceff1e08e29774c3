"""CUDA thin loops (``numba.cuda``) around the scalar kernels of :mod:`diffsolve.kernels.scalar`.

Imported only by the cuda backend (never at ``import diffsolve``).  The scalar
functions are the CPU's, compiled with ``cuda.jit(device=True)``:

* ``combine_kernel`` / ``convert_kernel``: grid-stride loops over (sample, coordinate pair) / elements;
  ``clip_kernel``: one thread per sample for the clipped momentum (the corrections' kernels: ``CORRECTIONS``);
* ``fused_kernel(...)``: one thread per sample runs every step of its trajectory in registers/local memory;
  each stage's model table (means, variances and weights turned into a m, 0.5/var_t, ... at the stage time) is
  staged in shared memory by the whole block, so the K x d table is read from global memory once per block;
* ``chain_kernel(...)``: one thread per sample runs every Langevin segment and iteration of its chain (the
  accept/reject a masked update), the score tables read from global memory.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import cuda

from ..progress import announce_compilation
from .scalar import make_kernels

announce_compilation()

__all__ = ["THREADS", "SHARED_BYTES", "CORRECTIONS", "blocks_for", "clip_kernel", "combine_kernel", "convert_kernel",
           "fused_kernel", "chain_kernel"]

THREADS = 128
SHARED_BYTES = 48 * 1024  # static shared memory available to a block without opting in

_k = make_kernels(cuda.jit(device=True))
combine_pair = _k.combine_pair
combine_row = _k.combine_row
convert_span = _k.convert_span
clip_add = _k.clip_add
gmm_predict = _k.gmm_predict
langevin_chain = _k.langevin_chain


def blocks_for(work: int, threads: int = THREADS, cap: int = 65535) -> int:
    """Blocks for a grid-stride loop over ``work`` items."""
    return max(1, min(cap, (work + threads - 1) // threads))


@cuda.jit
def combine_kernel(out, x, V, A, B, E, C, m, r, fslot, hslot, seed_lo, seed_hi, sidx, step):
    """out[i] = tableau row r of step m, one thread per (sample, coordinate pair), grid-stride."""
    nbl = (x.shape[1] + 1) // 2
    for t in range(cuda.grid(1), x.shape[0] * nbl, cuda.gridsize(1)):
        i = t // nbl
        combine_pair(out, x, V, i, t - i * nbl, A, B, E, C, m, r, fslot, hslot, seed_lo, seed_hi, sidx[i], step)


@cuda.jit
def clip_kernel(out, V, m, fslot, hslot, KB, KE, bound):
    """out[i] += the clipped momentum of step m, one thread per sample (it needs the sample's norm)."""
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        clip_add(out, V, i, m, fslot, hslot, KB, KE, bound)


# correction kernel name (diffsolve.corrections) -> its launchable kernel, one thread per sample
CORRECTIONS = {"clip_add": clip_kernel}


@cuda.jit
def convert_kernel(V, slot, vals, u, fx, fd, tx, td, identity, bad):
    """V[slot] = converted model output; bad[0] += number of non-finite outputs."""
    d = u.shape[1]
    count = 0
    for t in range(cuda.grid(1), u.shape[0] * d, cuda.gridsize(1)):
        i = t // d
        j = t - i * d
        count += convert_span(V, slot, vals, u, i, j, j + 1, fx, fd, tx, td, identity)
    if count:
        cuda.atomic.add(bad, 0, count)


@functools.lru_cache(maxsize=None)
def fused_kernel(stages: int, history: int, k: int, d: int, dtype_name: str):
    """The fused trajectory kernel for one structure (S, M, K, d) and dtype; compiled once per key.

    Launch ``[blocks_for(n), THREADS]`` with every thread of a block present (they share the stage tables).
    """
    dtype = numba.from_dtype(np.dtype(dtype_name))
    slots = max(stages + history, 1)
    kd4 = 4 * k * d
    use_shared = (kd4 + k + 2) * np.dtype(dtype_name).itemsize <= SHARED_BYTES
    sh_tab_shape = (1, 1, 4, k, d) if use_shared else (1, 1, 1, 1, 1)
    sh_aux_len = k + 2 if use_shared else 1

    @cuda.jit
    def fused(X, V0, A, B, E, C, fslot, hslot, KB, KE, bound, clipped, tab, aux, iso, seed_lo, seed_hi, sidx,
              step_offset):
        n = X.shape[0]
        i = cuda.grid(1)
        tid = cuda.threadIdx.x
        bdim = cuda.blockDim.x
        active = i < n
        xl = cuda.local.array((1, d), dtype)
        ul = cuda.local.array((1, d), dtype)
        vl = cuda.local.array((slots, 1, d), dtype)
        ll = cuda.local.array(k, dtype)
        sh_tab = cuda.shared.array(sh_tab_shape, dtype)
        sh_aux = cuda.shared.array((1, 1, sh_aux_len), dtype)
        sample = 0
        if active:
            sample = sidx[i]
            for j in range(d):
                xl[0, j] = X[i, j]
            for q in range(history):
                for j in range(d):
                    vl[stages + q, 0, j] = V0[stages + q, i, j]
        steps = A.shape[0]
        for m in range(steps):
            step = step_offset + m + 1
            for s in range(stages):
                if active:
                    combine_row(ul, xl, vl, 0, A, B, E, C, m, s, fslot, hslot, seed_lo, seed_hi, sample, step, False)
                if use_shared:
                    cuda.syncthreads()  # everyone is done with the previous stage's table
                    for e in range(tid, kd4, bdim):
                        f = e // (k * d)
                        rem = e - f * (k * d)
                        kk = rem // d
                        sh_tab[0, 0, f, kk, rem - kk * d] = tab[m, s, f, kk, rem - kk * d]
                    for e in range(tid, k + 2, bdim):
                        sh_aux[0, 0, e] = aux[m, s, e]
                    cuda.syncthreads()
                    if active:
                        gmm_predict(vl, fslot[m, s], ul, 0, sh_tab, sh_aux, 0, 0, ll, iso)
                elif active:
                    gmm_predict(vl, fslot[m, s], ul, 0, tab, aux, m, s, ll, iso)
            if active:
                combine_row(xl, xl, vl, 0, A, B, E, C, m, stages, fslot, hslot, seed_lo, seed_hi, sample, step, True)
                if clipped:
                    clip_add(xl, vl, 0, m, fslot, hslot, KB, KE, bound)
        if active:
            for j in range(d):
                X[i, j] = xl[0, j]

    return fused


@functools.lru_cache(maxsize=None)
def chain_kernel(k: int, d: int, dtype_name: str):
    """The Langevin chain kernel for K components in d dimensions and a dtype (``langevin_chain`` of the scalar
    source, one thread per sample); launch ``[blocks_for(n), THREADS]``."""
    dtype = numba.from_dtype(np.dtype(dtype_name))

    @cuda.jit
    def chains(X, segs, segr, cf, tab, aux, iso, seed_lo, seed_hi, sidx, step_offset, stat):
        i = cuda.grid(1)
        if i >= X.shape[0]:
            return
        Z = cuda.local.array((1, d), dtype)
        P = cuda.local.array((1, d), dtype)
        Mid = cuda.local.array((1, d), dtype)
        B = cuda.local.array((1, d), dtype)
        W = cuda.local.array((1, d), dtype)
        V = cuda.local.array((3, 1, d), dtype)
        ll = cuda.local.array(k, dtype)
        for j in range(d):
            Z[0, j] = X[i, j]
        langevin_chain(Z, P, Mid, B, W, V, 0, ll, segs, segr, cf, tab, aux, iso, seed_lo, seed_hi, sidx[i],
                       step_offset, stat[i:i + 1])
        for j in range(d):
            X[i, j] = Z[0, j]

    return chains
