"""The engine interface: what the one driver (:class:`diffsolve.stepper.Stepper`) asks of a backend.

Every backend module owns one :class:`Engine` subclass.  The driver keeps a state ``X (n, D)``, a stage-input
buffer ``U (n, D)`` and per segment a slot stack ``V (S + M, n, D)`` of engine arrays (NumPy arrays, or numba
device arrays on CUDA), and calls:

* ``to_engine(obj, what)``: a user array (NumPy, torch, CUDA array) as an engine array plus the
  :class:`~diffsolve.backends.arrays.ArrayKind` results are handed back in (zero-copy where possible);
  ``array(obj, what)`` the engine array alone (every model output: no kind object per step);
  ``empty``, ``zeros``, ``copy_in`` and ``to_host`` for the buffers;
* ``keys(seed, sample_index)`` once per run and ``bind(rows)`` once per segment (``rows``: the segment's
  :class:`~diffsolve.kernels.plan.Rows`), for whatever the backend keeps on its side;
* ``combine(out, x, V, rows, m, r, keys, step)``: out = tableau row ``r`` of step ``m`` (the stage input for
  ``r < S``; for ``r = S`` the step output followed by the segment's corrections), the normals of noise step
  ``step`` drawn in place;
* ``convert(V, slot, vals, u, conv)``: the model output ``vals`` at ``u`` stored in slot ``slot`` as the solver's
  prediction type (:class:`~diffsolve.predictions.Conversion`); returns the number of non-finite outputs;
* ``advance(...)``: ``convert`` then ``combine`` (one pass where the backend can fuse them).

A backend may also run a whole job on an analytic target in compiled kernels (``fused``: ``fused_table`` for a
table segment, ``fused_chains`` for a run of Langevin segments); ``sample`` takes it when ``fuses(target,
program)`` says so, and otherwise drives the Stepper.  The combine follows the tableau's
order of operations on every backend (``a x``, then the ``B``, ``E`` and ``C`` terms in index order, zero
coefficients skipped), so the NumPy engine and the compiled CPU engine agree bitwise in float64.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import DiffsolveError
from ..noise.normals import check_sample_index, split_seed
from .arrays import NUMPY, TorchKind, torch_module, widen_half

__all__ = ["Engine", "HostEngine", "Keys"]


class Keys(NamedTuple):
    """Noise keys of a run: the two seed words and the global sample index of each row (an engine array)."""

    seed_lo: int
    seed_hi: int
    sidx: object


class Engine:
    """Base class of the backends' engines (see the module docstring)."""

    name = "engine"
    last_in_place = False  # whether advance() takes the slot plan with the last stage's output in place

    def keys(self, seed, sample_index) -> Keys:
        seed_lo, seed_hi = split_seed(seed)
        return Keys(seed_lo, seed_hi, check_sample_index(sample_index))

    def array(self, obj, what):
        """``to_engine``'s engine array alone."""
        return self.to_engine(obj, what)[0]

    def bind(self, rows):
        """The segment's rows as the backend uses them (host engines: unchanged)."""
        return rows

    def bind_conversion(self, conv, dtype):
        """A :class:`~diffsolve.predictions.Conversion` as this engine's ``convert``/``advance`` take it, for
        states of ``dtype`` (here: unchanged; the compiled engines take it :meth:`~Conversion.typed`)."""
        return conv

    def advance(self, V, slot, vals, u, conv, out, x, rows, m, r, keys, step) -> int:
        bad = self.convert(V, slot, vals, u, conv)
        self.combine(out, x, V, rows, m, r, keys, step)
        return bad

    def fuses(self, target, program) -> bool:
        """Whether :meth:`fused` runs this job (none by default: the Stepper drives it)."""
        return False

    def fused(self, program, target, schedule, prediction, X, history, keys, step_offset, stats=None):
        """Every step of every sample of the host array ``X (n, D)`` (in place) with the exact mixture model
        compiled in, part by part (:func:`~diffsolve.kernels.plan.fused_parts`): a table segment by
        ``fused_table``, a run of Langevin segments by ``fused_chains``.  ``history`` (newest first, each (n, D))
        belongs to the first segment; ``stats`` (a dict) receives what the Stepper reports (MALA acceptance)."""
        from ..kernels import plan

        for part, first in plan.fused_parts(program):
            if isinstance(part, tuple):
                chains = plan.chain_plan(part, first, target, schedule, X.dtype)
                plan.chain_stats(part, self.fused_chains(X, chains, keys, step_offset), stats)
            else:  # a table reads its newest M history values (a denoising step: none)
                self.fused_table(part, target, schedule, prediction, X, tuple(history)[: part.table.history], keys,
                                 step_offset + first)
            history = ()
        return X


class HostEngine(Engine):
    """Engines whose arrays are NumPy arrays in host memory (numpy, cpu); torch CPU tensors are shared."""

    def array(self, obj, what):
        # the common cases first, in as few Python operations as possible: this runs once per model call, and a
        # few tenths of a microsecond are a tenth of a small step
        if type(obj) is np.ndarray:
            return obj if obj.dtype != np.float16 else obj.astype(np.float32)
        if not type(obj).__module__.startswith("torch"):
            return widen_half(np.asarray(obj), None)
        if not obj.is_cpu:
            raise DiffsolveError(f"{what} is a torch tensor on {obj.device}; backend {self.name!r} needs CPU "
                                 "tensors (use backend='cuda' for CUDA tensors, or tensor.cpu())")
        try:
            arr = obj.numpy()
        except (RuntimeError, TypeError):  # it requires grad, or is bfloat16 (which NumPy lacks)
            arr = widen_half(obj.detach(), torch_module(obj)).numpy()
        return arr if arr.dtype != np.float16 else arr.astype(np.float32)

    def to_engine(self, obj, what):
        arr = self.array(obj, what)
        torch = torch_module(obj)
        return arr, (TorchKind(torch, obj.device) if torch is not None else NUMPY)

    def empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def copy_in(self, dst, src):
        dst[...] = src

    def to_host(self, arr):
        return arr

    def chain_ops(self):
        """The arithmetic of Langevin iterations (:class:`~diffsolve.langevin.ChainOps`: the NumPy reference)."""
        from ..langevin import ChainOps

        return ChainOps()
