"""Corrections: per-sample nonlinear terms applied after the output row of a step (docs/tableau.md, "Programs").

A tableau row is affine in the state, the stage outputs, the history and the normals; some samplers add a term
that is not (a norm cap, a Metropolis accept/reject).  A :class:`Correction` is that term, written once:

* :meth:`Correction.apply_numpy` is the NumPy reference (the oracle of the compiled backends);
* ``kernel`` names its scalar function in :func:`diffsolve.kernels.scalar.make_kernels`, compiled for the CPU and
  CUDA from one source; the scalar function has the signature ``kernel(out, V, i, m, fslot, hslot, *arrays)``
  (sample ``i`` of step ``m``; ``V``/``fslot``/``hslot`` the slot stack of :mod:`diffsolve.kernels.plan`) and
  returns 1 when the correction acted on that sample (an event), else 0; ``arrays(dtype)`` are its parameters;
* ``affine`` says whether the exact-law harnesses can take it exactly; where it is not, they describe the chain
  with the correction's linear part (:meth:`Correction.linear_part`) and say so.

Corrections belong to a segment of a :class:`~diffsolve.program.Program`, not to the coefficient table.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .tableau import StepTable

__all__ = ["Correction", "ClippedMomentum"]


class Correction(ABC):
    """A per-sample term added after the output row of every step of a segment (see the module docstring)."""

    kernel: ClassVar[str]
    affine: ClassVar[bool]

    @abstractmethod
    def check(self, table: StepTable) -> None:
        """Raise ``ValueError`` when the correction's arrays do not fit ``table`` (steps, stages, history)."""

    @abstractmethod
    def arrays(self, dtype) -> tuple:
        """The scalar kernel's parameter arrays, contiguous in ``dtype``."""

    @abstractmethod
    def apply_numpy(self, x: np.ndarray, m: int, F: list, H: list, events: list | None = None) -> np.ndarray:
        """The output ``x`` (sample first) of step ``m`` with the correction applied; ``F`` the stage outputs,
        ``H`` the history values (newest first) of that step.  ``events`` (a list) receives the step's boolean
        mask of the samples on which the correction acted."""

    @abstractmethod
    def linear_part(self, table: StepTable) -> StepTable:
        """``table`` with the correction's linear part folded into its rows (what the exact-law harnesses
        propagate)."""


@dataclass(frozen=True, eq=False)
class ClippedMomentum(Correction):
    """A norm-capped term of the step output (accel-sde's clipped momentum, docs/algorithms/accelerated.md B.2):

        x_{n+1} = (output row of the table) + f K,   K = sum_j B[n, j] F_j + sum_m E[n, m] H_m,
        f = min(1, bound[n] sqrt(D) / |K|)   (D coordinates per sample; bound = inf: never capped).

    The table's output row excludes K; :meth:`linear_part` folds it back in (f = 1), the unclipped chain."""

    B: np.ndarray  # (N, S)
    E: np.ndarray  # (N, M)
    bound: np.ndarray  # (N,)

    kernel: ClassVar[str] = "clip_add"
    affine: ClassVar[bool] = False

    def check(self, table):
        n, s, m = table.steps, table.stages, table.history
        if self.B.shape != (n, s) or self.E.shape != (n, m) or self.bound.shape != (n,):
            raise ValueError(f"ClippedMomentum has shapes B{self.B.shape} E{self.E.shape} bound{self.bound.shape}; "
                             f"expected (N, S) = {(n, s)}, (N, M) = {(n, m)}, (N,) = {(n,)} for its table")

    def arrays(self, dtype):
        cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
        return cast(self.B), cast(self.E), cast(self.bound)

    def apply_numpy(self, x, m, F, H, events=None):
        K = None
        for coef, val in list(zip(self.B[m], F)) + list(zip(self.E[m], H)):
            if coef != 0.0:
                K = coef * val if K is None else K + coef * val
        if K is None:
            K = np.zeros_like(x)
        n = K.shape[0]
        flat = K.reshape(n, -1)
        ss = np.ascontiguousarray((flat * flat).T).sum(axis=0)  # row by row: the kernels' order, the same bits
        limit = self.bound[m] * np.sqrt(flat.shape[1])
        capped = ss > limit * limit
        if events is not None:
            events.append(capped)
        if capped.any():
            f = np.where(capped, limit / np.sqrt(np.where(capped, ss, 1.0)), 1.0)
            shape = (n,) + (1,) * (K.ndim - 1)
            K = np.where(capped.reshape(shape), f.reshape(shape) * K, K)
        return x + K

    def linear_part(self, table):
        B, E = table.B.copy(), table.E.copy()
        B[:, -1] += self.B
        E[:, -1] += self.E
        return StepTable(A=table.A, B=B, E=E, C=table.C, tau=table.tau, keep=table.keep)

