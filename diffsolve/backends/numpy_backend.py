"""The NumPy backend: the readable reference engine (the oracle of the compiled ones in tests).

Row ``r`` of step ``m`` is formed term by term,

    out = A[m, r] x + sum_{s<r} B[m, r, s] F_s + sum_q E[m, r, q] H_q + sum_q C[m, r, q] xi_q,

zero coefficients skipped, then (output row) the segment's corrections in their NumPy reference form.  The
normals xi come from the keyed Philox stream (:func:`diffsolve.noise.standard_normal`), or from ``noise(step, q)``
when given (pathwise studies drive every resolution with one Brownian path).
"""

from __future__ import annotations

import numpy as np

from ..noise import standard_normal
from .engine import HostEngine

__all__ = ["NumpyEngine"]


class NumpyEngine(HostEngine):
    """The reference engine.  ``noise(step, q)`` optionally supplies the normals of noise step ``step`` (the
    counter the Philox stream would use: ``1`` for a run's first step) and draw ``q``, shaped ``(n, D)``;
    ``events`` (a list) receives, per corrected step, each correction's boolean mask of the samples it acted
    on."""

    name = "numpy"

    def __init__(self, noise=None, events=None):
        self.noise, self.events = noise, events
        self._drawn = {}

    def _normals(self, keys, step, q, shape):
        if self.noise is not None:
            return np.reshape(self.noise(step, q), shape)
        if (step, q) not in self._drawn:
            if any(k[0] != step for k in self._drawn):
                self._drawn.clear()  # one step's normals at a time
            seed = keys.seed_lo | (keys.seed_hi << 32)
            self._drawn[step, q] = standard_normal(seed, keys.sidx, step, q, shape[1])
        return self._drawn[step, q]

    def combine(self, out, x, V, rows, m, r, keys, step):
        acc = rows.A[m, r] * x
        for s in range(r):
            if rows.B[m, r, s] != 0:
                acc = acc + rows.B[m, r, s] * V[rows.fslot[m, s]]
        for q in range(rows.E.shape[2]):
            if rows.E[m, r, q] != 0:
                acc = acc + rows.E[m, r, q] * V[rows.hslot[m, q]]
        for q in range(rows.C.shape[2]):
            if rows.C[m, r, q] != 0:
                acc = acc + rows.C[m, r, q] * self._normals(keys, step, q, x.shape)
        if r == rows.A.shape[1] - 1:
            F = [V[i] for i in rows.fslot[m]]
            H = [V[i] for i in rows.hslot[m]]
            for correction in rows.source:
                acc = correction.apply_numpy(acc, m, F, H, self.events)
        out[...] = acc

    def convert(self, V, slot, vals, u, conv):
        V[slot] = conv.apply(vals, u)
        return int(np.count_nonzero(~np.isfinite(vals)))

