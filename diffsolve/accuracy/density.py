"""Grid density propagation for 1-D targets and Markov stochastic tableaux (verification.md §2).

A one-stage step without history is u = A0 x + C0 . xi, x' = A1 x + B F(u) + C1 . xi.  The part of the output
noise correlated with the stage noise is rho (u - A0 x) with rho = (C1 . C0)/|C0|^2, so when A1 = rho A0 (the
output sees x only through u, as in every split-noise sampler) the step is two Gaussian kernels:
x -> u ~ N(A0 x, |C0|^2), then u -> x' ~ N(B F(u) + rho u, |C1|^2 - rho^2 |C0|^2).  Without stage noise it is
the single kernel x' ~ N(A1 x + B F(x), |C1|^2).  Each kernel acts on probability masses on a fixed grid, with
columns normalised so that mass is conserved; no Monte Carlo.
"""

from __future__ import annotations

import numpy as np

from ..errors import DiffsolveError
from ..tableau import StepTable

__all__ = ["DensityGrid", "propagate_density", "tv_distance"]


class DensityGrid:
    """Probability masses on ``points`` (uniform); ``kernel_apply`` pushes them through x' ~ N(m(x), v)."""

    def __init__(self, lo: float = -6.0, hi: float = 6.0, size: int = 3000):
        self.points = np.linspace(lo, hi, size)
        self.dx = self.points[1] - self.points[0]

    def masses(self, logpdf) -> np.ndarray:
        p = np.exp(logpdf(self.points[:, None]) if callable(logpdf) else logpdf)
        return p / p.sum()

    def kernel_apply(self, p, mean, var):
        if not var > 0:
            raise DiffsolveError(f"grid density propagation needs a positive transition variance, got {var!r}")
        if np.sqrt(var) < self.dx:
            raise DiffsolveError(
                f"transition std {np.sqrt(var):.3g} is below the grid spacing {self.dx:.3g}; use a finer grid "
                "(more points) or fewer steps"
            )
        z = (self.points[:, None] - mean[None, :]) / np.sqrt(var)
        K = np.exp(-0.5 * z * z)
        col = K.sum(axis=0)
        K /= np.where(col > 0, col, 1.0)
        return K @ p


def propagate_density(table: StepTable, target, schedule, prediction: str, grid: DensityGrid, p0) -> np.ndarray:
    """Push grid masses ``p0`` through every step of a Markov one-stage stochastic ``table`` (1-D target)."""
    if target.dim != 1:
        raise DiffsolveError(f"grid density propagation is 1-D; the target has dimension {target.dim}")
    if table.history or table.stages != 1:
        raise DiffsolveError(
            "grid density propagation handles one-stage solvers without history (a Markov chain in x); "
            f"this solver has {table.stages} stages and {table.history} history values"
        )
    x = grid.points
    p = np.asarray(p0, dtype=np.float64)
    for n in range(table.steps):
        a0, c0 = table.A[n, 0], table.C[n, 0]
        a1, b, c1 = table.A[n, 1], table.B[n, 1, 0], table.C[n, 1]
        model = lambda u: target.predict(u[:, None], table.tau[n, 0], schedule, prediction)[:, 0]  # noqa: E731
        v0 = float(c0 @ c0)
        if v0 == 0.0:
            if a0 != 1.0:
                raise DiffsolveError("stage 0 must be u_0 = x_n when it draws no noise")
            p = grid.kernel_apply(p, a1 * x + b * model(x), float(c1 @ c1))
            continue
        rho = float(c1 @ c0) / v0
        if not np.isclose(a1, rho * a0, rtol=1e-12, atol=1e-14):
            raise DiffsolveError(
                "this step's output depends on x beyond the noisy stage input (A1 != rho A0); grid propagation "
                "supports split-noise steps only"
            )
        p = grid.kernel_apply(p, a0 * x, v0)
        p = grid.kernel_apply(p, b * model(x) + rho * x, float(c1 @ c1) - rho * rho * v0)
    return p


def tv_distance(p, q) -> float:
    """Total variation between two mass vectors on the same grid."""
    return 0.5 * float(np.sum(np.abs(np.asarray(p) - np.asarray(q))))
