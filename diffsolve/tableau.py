"""The tableau: one form for every solver step (docs/tableau.md).

A step from grid node n to n+1 with S stages, M history values and Q standard normals is

    u_i     = A[i] x_n + sum_{j<i} B[i, j] F_j + sum_m E[i, m] H_m + sum_q C[i, q] xi_q,   F_i = model(u_i, tau_i)
    x_{n+1} = A[S] x_n + sum_j    B[S, j] F_j + sum_m E[S, m] H_m + sum_q C[S, q] xi_q

Row ``S`` of each coefficient array is the step output; rows ``0..S-1`` are the stage inputs (stage 0 is
normally ``u_0 = x_n``).  ``F`` are model outputs in the solver's parameterisation, ``H_m`` the output kept
from ``m`` steps back.  A :class:`StepTable` holds these coefficients for a whole grid, one row per step:
every backend (numpy interpreter, compiled CPU/CUDA kernels, exact Gaussian-law propagation) consumes it, as a
segment of a :class:`~diffsolve.program.Program`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["StepTable", "StepVariables"]


@dataclass(frozen=True)
class StepVariables:
    """Per-step inputs of a coefficient builder, for a grid of ``N`` steps.

    ``h[n]`` is the log-SNR step ``lam[n+1] - lam[n]`` (> 0, ``inf`` for a final step to sigma = 0);
    ``r[n, j]`` the history ratio ``(lam[n-j] - lam[n-j-1]) / h[n]`` (``j = 0..M-1``);
    ``log_alpha[n, p]`` and ``log_sigma[n, p]`` the schedule at the step's nodes ``p = 0..S``
    (0 = start, ``1..S-1`` = stage nodes ``lam[n] + c_p h[n]``, ``S`` = end); ``t[n, p]`` the times there.
    """

    h: np.ndarray
    r: np.ndarray
    log_alpha: np.ndarray
    log_sigma: np.ndarray
    t: np.ndarray


@dataclass(frozen=True)
class StepTable:
    """Numeric tableau coefficients of one solver on one grid.

    Shapes: ``A (N, S+1)``, ``B (N, S+1, S)``, ``E (N, S+1, M)``, ``C (N, S+1, Q)``, ``tau (N, S)``.
    ``keep`` is the stage whose output becomes the newest history value ``H_1`` of the next step.  Nonlinear
    per-sample terms (corrections) are not part of the table: they belong to the program's segment.
    """

    A: np.ndarray
    B: np.ndarray
    E: np.ndarray
    C: np.ndarray
    tau: np.ndarray
    keep: int = 0

    def __post_init__(self):
        n, s1 = self.A.shape
        s = s1 - 1
        if self.B.shape != (n, s1, s) or self.E.shape[:2] != (n, s1) or self.C.shape[:2] != (n, s1):
            raise ValueError(
                f"inconsistent StepTable shapes A{self.A.shape} B{self.B.shape} E{self.E.shape} C{self.C.shape}; "
                "expected A (N, S+1), B (N, S+1, S), E (N, S+1, M), C (N, S+1, Q)"
            )
        if self.tau.shape != (n, s):
            raise ValueError(f"StepTable.tau has shape {self.tau.shape}, expected (N, S) = {(n, s)}")
        if np.any(np.triu(np.ones((s1, s), dtype=bool)[:s]) & (self.B[:, :s, :] != 0)):
            raise ValueError("StepTable.B must be strictly lower triangular in its stage rows (explicit stages)")
        for name in ("A", "B", "E", "C"):
            if np.isnan(getattr(self, name)).any():
                raise ValueError(f"StepTable.{name} contains NaN: the coefficient builder failed on this grid")

    @staticmethod
    def concat(tables) -> "StepTable":
        """One table running ``tables`` one after another (their steps in order).

        History and noise columns are padded to the largest M and Q with zero coefficients (the history is
        still carried: a later table may read what an earlier one kept).  Stages cannot be padded (a stage is a
        model call), so the tables must agree in their stage count and ``keep``; join other structures as
        separate segments of a :class:`~diffsolve.program.Program`.
        """
        tables = list(tables)
        if not tables:
            raise ValueError("StepTable.concat needs at least one table")
        S, keep = tables[0].stages, tables[0].keep
        for t in tables[1:]:
            if t.stages != S or t.keep != keep:
                raise ValueError(f"StepTable.concat joins tables of one stage structure; got stages {t.stages} and "
                                 f"{S}, keep {t.keep} and {keep}: use separate program segments instead")
        M = max(t.history for t in tables)
        Q = max(t.noises for t in tables)
        out = StepTable.empty(sum(t.steps for t in tables), S, M, Q)
        row = 0
        for t in tables:
            rows = slice(row, row + t.steps)
            out.A[rows], out.B[rows], out.tau[rows] = t.A, t.B, t.tau
            out.E[rows, :, : t.history] = t.E
            out.C[rows, :, : t.noises] = t.C
            row += t.steps
        return StepTable(A=out.A, B=out.B, E=out.E, C=out.C, tau=out.tau, keep=keep)

    @property
    def steps(self) -> int:
        return self.A.shape[0]

    @property
    def stages(self) -> int:
        return self.A.shape[1] - 1

    @property
    def history(self) -> int:
        return self.E.shape[2]

    @property
    def noises(self) -> int:
        return self.C.shape[2]

    @staticmethod
    def empty(steps: int, stages: int, history: int, noises: int) -> "StepTable":
        """A zero table of the given structure (coefficient builders fill it row by row)."""
        s1 = stages + 1
        return StepTable(
            A=np.zeros((steps, s1)),
            B=np.zeros((steps, s1, stages)),
            E=np.zeros((steps, s1, history)),
            C=np.zeros((steps, s1, noises)),
            tau=np.zeros((steps, stages)),
        )
