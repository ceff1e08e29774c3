"""The CPU backend: Numba-parallel passes over the samples, from the scalar source of :mod:`diffsolve.kernels`.

* The engine's ``combine``/``convert``/``advance`` are one compiled pass each over the batch (the Stepper's
  per-stage work, for a model called from Python); in float64 they are bitwise the NumPy engine's arithmetic.
* ``fused``: with an analytic mixture target the whole trajectory of every sample (all steps, stages, history,
  noise and the clipped momentum, the exact denoiser inlined) runs in one compiled kernel, specialised by
  component form and clipping, over chunks of samples on ``numba.get_num_threads()`` threads
  (:func:`diffsolve.kernels.cpu.fused_gmm`); Langevin segments (MALA, ULD: ``mala``, ``rtk-*``, ``pc``) run
  every segment and iteration of a sample inside one chain kernel (:func:`diffsolve.kernels.cpu.fused_chains`).

Noise is drawn in-kernel by (seed, sample index, step, draw, coordinate), so results do not depend on the thread
count (``numba.set_num_threads``) or on how the batch is split (``sample_offset``).
"""

from __future__ import annotations

import functools

import numpy as np

from ..kernels import cpu as kernels
from ..langevin import ENERGIES
from ..kernels import plan
from .engine import HostEngine

__all__ = ["CpuEngine", "SPAN"]

SPAN = 4096  # rows longer than this are split into pieces (parallel work items)


@functools.lru_cache(maxsize=None)
def _pieces(d: int) -> int:
    """Pieces per row: row length d / pieces even, near SPAN, dividing d."""
    if d <= SPAN:
        return 1
    for width in range(SPAN, SPAN // 4, -2):
        if d % width == 0:
            return d // width
    return 1


class CpuEngine(HostEngine):
    """Compiled CPU passes.  Long rows are processed as pieces (reshaped views: the compiled loops index every
    piece from column 0, which lets LLVM vectorise them) in parallel; the noise keys still use each element's
    coordinate in its sample."""

    name = "cpu"
    last_in_place = True

    def __init__(self):
        self._views = {}  # id(buffer) -> (buffer, its pieces view), for the buffers of the current segment

    def bind(self, rows):
        self._views.clear()  # a new segment: new slot stack; the state buffers are cached again on first use
        return rows

    def _pieced(self, arr, p):
        """A state-sized buffer of the run (state, stage input, slot stack) as pieces, ``(..., n, d)`` viewed as
        ``(..., n p, d / p)``: the view is made once per buffer (a reshape costs a few tenths of a microsecond, a
        tenth of a small step's whole time); model outputs, new at every call, are reshaped directly."""
        hit = self._views.get(id(arr))
        if hit is not None and hit[0] is arr:
            return hit[1]
        view = arr.reshape(arr.shape[:-2] + (arr.shape[-2] * p, arr.shape[-1] // p))
        self._views[id(arr)] = (arr, view)
        return view

    def combine(self, out, x, V, rows, m, r, keys, step):
        n, d = x.shape
        p = _pieces(d)
        kernels.loops(x.size).combine(
            self._pieced(out, p), self._pieced(x, p), self._pieced(V, p), rows.A, rows.B, rows.E, rows.C, m, r,
            rows.fslot, rows.hslot, keys.seed_lo, keys.seed_hi, keys.sidx, step, out is x)
        if r == rows.A.shape[1] - 1:
            self.correct(out, V, rows, m)

    def correct(self, out, V, rows, m) -> int:
        """Apply the segment's corrections to the output rows of step m (whole rows per sample); returns the
        number of events."""
        loops = kernels.loops(out.size)
        events = 0
        for kernel, arrays in rows.corrections:
            events += getattr(loops, kernels.CORRECTIONS[kernel])(out, V, m, rows.fslot, rows.hslot, *arrays)
        return events

    def bind_conversion(self, conv, dtype):
        return conv.typed(dtype)

    def convert(self, V, slot, vals, u, conv):
        n, d = u.shape
        p = _pieces(d)
        return kernels.loops(u.size).convert(
            self._pieced(V, p), slot, vals.reshape(n * p, d // p), self._pieced(u, p), conv.fx, conv.fd, conv.tx,
            conv.td, conv.identity)

    def advance(self, V, slot, vals, u, conv, out, x, rows, m, r, keys, step):
        """``convert`` then ``combine`` row by row in one pass: each row's converted model output is still in
        cache when the combine reads it (corrections need whole rows: then two passes).  The output row under
        the slot plan ``last_in_place`` stores the stage output after the combine (:func:`kernels.advance_last`)."""
        last = r == rows.A.shape[1] - 1
        if last and rows.corrections:
            return super().advance(V, slot, vals, u, conv, out, x, rows, m, r, keys, step)
        n, d = x.shape
        p = _pieces(d)
        if p == 1:  # whole rows: no views
            Vs, vs, us, outs, xs = V, vals, u, out, x
        else:
            Vs, vs, us, outs, xs = (self._pieced(V, p), vals.reshape(n * p, d // p), self._pieced(u, p),
                                    self._pieced(out, p), self._pieced(x, p))
        args = (Vs, vs, us, conv.fx, conv.fd, conv.tx, conv.td,
                conv.identity, outs, xs, rows.A, rows.B, rows.E, rows.C, m)
        if rows.last_in_place and last:
            alias = (2 if u is x else 1) if out is x else 0
            return kernels.advance_last(*args, rows.fslot, rows.hslot, keys.seed_lo, keys.seed_hi, keys.sidx, step,
                                        alias)
        return kernels.loops(x.size).advance(args[0], slot, *args[1:], r, rows.fslot, rows.hslot, keys.seed_lo,
                                             keys.seed_hi, keys.sidx, step, out is x)

    def chain_ops(self):
        return _CHAIN_OPS

    def fuses(self, target, program):
        return plan.fusable(target, program)

    def fused_table(self, segment, target, schedule, prediction, X, history, keys, step_offset):
        rows = plan.segment_rows(segment, X.dtype)
        g = plan.gmm_stage_tables(target, schedule, segment.table.tau, prediction, X.dtype)
        kernels.fused_gmm(X, history, rows.A, rows.B, rows.E, rows.C, rows.fslot, rows.hslot,
                          *plan.fused_clip(rows), g.tab, g.aux, g.iso, keys.seed_lo, keys.seed_hi, keys.sidx,
                          step_offset)

    def fused_chains(self, X, chains, keys, step_offset):
        return kernels.fused_chains(X, chains, keys.seed_lo, keys.seed_hi, keys.sidx, step_offset)


class CompiledChainOps:
    """:class:`~diffsolve.langevin.ChainOps` as compiled passes over the samples (the scalar functions of the
    fused chain kernel), for Langevin programs driven by the Stepper (a model called from Python)."""

    def propose(self, P, Mid, Z, V, B, tau, tilt, simpson, keys, step):
        kernels.loops(Z.size).propose(P, Mid, Z, V, B, tau, tilt, simpson, keys.seed_lo, keys.seed_hi, keys.sidx,
                                      step)

    def accept(self, Z, P, V, B, tau, tilt, radius, energy, dlogp, keys, step):
        take = np.empty(Z.shape[0], dtype=np.bool_)
        kernels.loops(Z.size).accept(Z, P, V, B, tau, tilt, radius, ENERGIES.index(energy), dlogp, keys.seed_lo,
                                     keys.seed_hi, keys.sidx, step, take)
        return take

    def snr_move(self, Z, P, V, B, tilt, alpha, snr, keys, step):
        eps = np.empty(Z.shape[0], dtype=np.float64)
        kernels.loops(Z.size).snr(Z, P, V, B, tilt, alpha, snr, keys.seed_lo, keys.seed_hi, keys.sidx, step, eps)
        return eps

    def refresh(self, W, keys, step):
        kernels.loops(W.size).refresh(W, keys.seed_lo, keys.seed_hi, keys.sidx, step)

    def move(self, Z, W, V, B, tilt, cf, it, keys, step):
        kernels.loops(Z.size).move(Z, W, V, B, tilt, cf, it, keys.seed_lo, keys.seed_hi, keys.sidx, step)


_CHAIN_OPS = CompiledChainOps()
