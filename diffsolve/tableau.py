"""The tableau: one form for every solver step (DESIGN.md §3).

A step from grid node n to n+1 with S stages, M history values and Q standard normals is

    u_i     = A[i] x_n + sum_{j<i} B[i, j] F_j + sum_m E[i, m] H_m + sum_q C[i, q] xi_q,   F_i = model(u_i, tau_i)
    x_{n+1} = A[S] x_n + sum_j    B[S, j] F_j + sum_m E[S, m] H_m + sum_q C[S, q] xi_q

Row ``S`` of each coefficient array is the step output; rows ``0..S-1`` are the stage inputs (stage 0 is
normally ``u_0 = x_n``).  ``F`` are model outputs in the solver's parameterisation, ``H_m`` the output kept
from ``m`` steps back.  A :class:`StepTable` holds these coefficients for a whole grid, one row per step:
every backend (numpy interpreter, compiled CPU/CUDA kernels, exact Gaussian-law propagation) consumes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ClipTerm", "StepTable", "StepVariables"]


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
class ClipTerm:
    """A term of the step output whose Euclidean norm per sample is capped (accel-sde's clipped momentum):

        x_{n+1} = (row S of the table) + f * K,   K = sum_j B[n, j] F_j + sum_m E[n, m] H_m,
        f = min(1, bound[n] sqrt(D) / |K|)   (D = coordinates per sample; bound = inf: never clipped).

    Row S of the table excludes K; :meth:`StepTable.unclipped` folds it back in (f = 1) for the linear-law
    harnesses, which therefore describe the unclipped chain."""

    B: np.ndarray  # (N, S)
    E: np.ndarray  # (N, M)
    bound: np.ndarray  # (N,)


@dataclass(frozen=True)
class StepTable:
    """Numeric tableau coefficients of one solver on one grid.

    Shapes: ``A (N, S+1)``, ``B (N, S+1, S)``, ``E (N, S+1, M)``, ``C (N, S+1, Q)``, ``tau (N, S)``.
    ``keep`` is the stage whose output becomes the newest history value ``H_1`` of the next step; ``clip`` an
    optional norm-capped output term (:class:`ClipTerm`).
    """

    A: np.ndarray
    B: np.ndarray
    E: np.ndarray
    C: np.ndarray
    tau: np.ndarray
    keep: int = 0
    clip: ClipTerm | None = None

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
        if self.clip is not None and (self.clip.B.shape != (n, s) or self.clip.E.shape != (n, self.E.shape[2])
                                      or self.clip.bound.shape != (n,)):
            raise ValueError(f"StepTable.clip has shapes B{self.clip.B.shape} E{self.clip.E.shape} "
                             f"bound{self.clip.bound.shape}; expected (N, S), (N, M), (N,)")

    def unclipped(self) -> "StepTable":
        """The table with the clipped term folded into row S (f = 1): the chain without clipping."""
        if self.clip is None:
            return self
        B, E = self.B.copy(), self.E.copy()
        B[:, -1] += self.clip.B
        E[:, -1] += self.clip.E
        return StepTable(A=self.A, B=B, E=E, C=self.C, tau=self.tau, keep=self.keep)

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
