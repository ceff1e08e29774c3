"""Grid density propagation for 1-D targets and one- or two-stage stochastic tableaux (docs/verification.md §2).

A one-stage step is u = A0 x + C0 . xi, x' = A1 x + B F(u) + e H + C1 . xi, where H is the previous step's F
(e = 0 without history).  The part of the output noise correlated with the stage noise is rho (u - A0 x) with
rho = (C1 . C0)/|C0|^2, so when A1 = rho A0 (the output sees x only through u, as in every split-noise sampler)
the step is two Gaussian kernels: x -> u ~ N(A0 x, |C0|^2), then u -> x' ~ N(c(u) + e H, w) with
c(u) = rho u + B F(u) and w = |C1|^2 - rho^2 |C0|^2.  Without stage noise u = x, c(u) = A1 u + B F(u) and
w = |C1|^2.  Every kernel acts on probability masses on a fixed grid, with columns normalised so that mass is
conserved; no Monte Carlo.

* Markov tables (no history): the masses p(x) go through the two kernels.
* One history value (H = F of the previous step): the state is the pair (x, u_prev), so the joint masses
  p(x, u_prev) live on the grid squared (docs/algorithms/accelerated.md B.2.3).  The stage kernel acts along x;
  the output kernel
  is split into N(z; e H(u_prev), w), one matrix product over u_prev, and a translation of each u column by c(u)
  with an FFT phase factor.  The new state is (x', u).  Cost O(n^3) per step: use n = 1024.  The translation is
  periodic (mass moved past one end re-enters at the other, where the 1-D path piles it at the end), so keep the
  domain wide enough that the chain leaves no mass near its ends.
* Two stages, no history (SEEDS-2, a Markov chain in x): u = A1 x + B10 F(x) + C1 . xi is Gaussian given x, and
  x' = a(x) + b(u) + N(0, w) with rho = (C2 . C1)/|C1|^2, a(x) = A2 x + B20 F(x) - rho m1(x), b(u) = rho u +
  B21 F(u), w = |C2|^2 - rho^2 |C1|^2.  The joint masses q[u, x] = N(u; m1(x), |C1|^2) p(x) go through
  N(z; a(x), w) (one matrix product over x) and a translation of each u column by b(u); the x' marginal is the
  sum over u.
* A norm-capped output term K = kb F(u) + ke H (:class:`~diffsolve.corrections.ClippedMomentum`, accel-sde's
  clipped momentum, the one correction supported here) is exact too:
  where |K| <= bound it adds to c(u) and e H; where K > bound (K < -bound) it is the constant +bound (-bound).
  Each of these three pieces of the (u, u_prev) grid is separable and propagated as above (three matrix products
  and two translations in a step where any grid pair is capped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..corrections import ClippedMomentum
from ..errors import DiffsolveError
from ..program import Program, Segment
from ..tableau import StepTable

__all__ = ["DensityGrid", "mala_kernel", "propagate_density", "tv_distance"]


class DensityGrid:
    """Probability masses on ``points`` (uniform); ``kernel`` is the column-normalised transition x' ~ N(m(x), v),
    ``shift`` translates columns of masses."""

    def __init__(self, lo: float = -6.0, hi: float = 6.0, size: int = 3000):
        if size < 2 or not hi > lo:
            raise DiffsolveError(f"DensityGrid needs size >= 2 and hi > lo; got size={size}, lo={lo}, hi={hi}")
        self.points = np.linspace(lo, hi, size)
        self.dx = self.points[1] - self.points[0]

    def masses(self, logpdf) -> np.ndarray:
        p = np.exp(logpdf(self.points[:, None]) if callable(logpdf) else logpdf)
        return p / p.sum()

    def kernel(self, mean, var) -> np.ndarray:
        """K[i, j] = N(points_i; mean_j, var), each column normalised to sum 1."""
        if not var > 0:
            raise DiffsolveError(f"grid density propagation needs a positive transition variance, got {var!r}")
        if np.sqrt(var) < self.dx:
            raise DiffsolveError(
                f"transition std {np.sqrt(var):.3g} is below the grid spacing {self.dx:.3g}; use a finer grid "
                "(more points) or fewer steps"
            )
        z = self.points[:, None] - mean[None, :]
        z /= np.sqrt(var)
        K = -0.5 * z
        K *= z
        np.exp(K, out=K)
        col = K.sum(axis=0)
        K /= np.where(col > 0, col, 1.0)
        return K

    def kernel_apply(self, p, mean, var):
        return self.kernel(mean, var) @ p

    def shift(self, p, d) -> np.ndarray:
        """Column j of ``p`` translated by ``d[j]`` (p'(x) = p(x - d_j)) with an FFT phase factor, periodic with
        period ``size * dx``: mass moved past one end re-enters at the other.  Mass is conserved; accurate for
        masses smooth on the grid scale (std >= dx)."""
        n = p.shape[0]
        phase = np.empty((n // 2 + 1, len(d)), dtype=complex)  # exp(-i k w1 d_j), k = 0..n/2, as powers (fast)
        phase[0] = 1.0
        phase[1:] = np.exp(-2j * np.pi / (n * self.dx) * np.asarray(d))
        np.cumprod(phase, axis=0, out=phase)
        return np.fft.irfft(np.fft.rfft(p, axis=0) * phase, n, axis=0)


@dataclass(frozen=True)
class _Step:
    """Step ``n`` of a one-stage table as kernels: u ~ N(a0 x, v0) (u = x when v0 = 0), then
    x' ~ N(lin u + b F(u) + e H + cap(kb F(u) + ke H), w), F(u) = model(u, tau), cap(K) = K min(1, bound/|K|)."""

    a0: float
    v0: float
    lin: float
    b: float
    e: float
    w: float
    tau: float
    kb: float = 0.0
    ke: float = 0.0
    bound: float = np.inf


def _split_step(table: StepTable, clip: ClippedMomentum | None, n: int) -> _Step:
    a0, c0 = table.A[n, 0], table.C[n, 0]
    a1, b, c1 = table.A[n, 1], table.B[n, 1, 0], table.C[n, 1]
    e = float(table.E[n, 1, 0]) if table.history else 0.0
    cap = {} if clip is None else dict(kb=float(clip.B[n, 0]), ke=float(clip.E[n, 0]) if table.history else 0.0,
                                       bound=float(clip.bound[n]))
    if table.history and table.E[n, 0, 0] != 0:
        raise DiffsolveError(
            f"step {n}: the stage input uses the history value (E[{n}, 0, 0] = {table.E[n, 0, 0]!r}); grid density "
            "propagation expects it in the output row only (E[n, 0, 0] = 0); use exact Gaussian-law propagation "
            "(diffsolve.accuracy.propagate) or Monte Carlo for this solver"
        )
    if n == 0 and (e != 0 or cap.get("ke", 0.0) != 0):
        raise DiffsolveError(
            f"the first step uses a history value (E[0, 1, 0] = {e!r}, clipped part {cap.get('ke', 0.0)!r}) but none "
            "exists yet; expected a warm-up step without history (E[0] = 0); build the table with its start-up step"
        )
    v0 = float(c0 @ c0)
    if v0 == 0.0:
        if a0 != 1.0:
            raise DiffsolveError(
                f"step {n}: the stage input draws no noise but is A0 x with A0 = {a0!r}; grid density propagation "
                "expects u_0 = x_n (A0 = 1) there"
            )
        return _Step(1.0, 0.0, a1, b, e, float(c1 @ c1), float(table.tau[n, 0]), **cap)
    rho = float(c1 @ c0) / v0
    if not np.isclose(a1, rho * a0, rtol=1e-12, atol=1e-14):
        raise DiffsolveError(
            f"step {n}: the output depends on x beyond the noisy stage input (A1 = {a1!r} != rho A0 = {rho * a0!r}); "
            "grid propagation supports split-noise steps only; use Monte Carlo for this solver"
        )
    return _Step(a0, v0, rho, b, e, float(c1 @ c1) - rho * rho * v0, float(table.tau[n, 0]), **cap)


def propagate_density(program, target, schedule, prediction: str, grid: DensityGrid, p0) -> np.ndarray:
    """Push grid masses ``p0`` of x through every step of a one-stage stochastic one-segment ``program`` (or a
    StepTable; 1-D target) and return the masses of x at the end.  Tables with one history value propagate the
    joint masses of (x, u_prev) on ``grid`` squared (their first step must have no history term) and return the x
    marginal.  The clipped momentum is taken exactly; other corrections are refused."""
    if target.dim != 1:
        raise DiffsolveError(f"grid density propagation is 1-D; the target has dimension {target.dim}")
    program = Program.of(program)
    if len(program.segments) != 1:
        raise DiffsolveError(f"grid density propagation runs one-segment programs; this one has "
                             f"{len(program.segments)} segments")
    if not isinstance(program.segments[0], Segment):
        raise DiffsolveError(f"grid density propagation takes table segments, got a "
                             f"{type(program.segments[0]).__name__}")
    table, corrections = program.segments[0].table, program.segments[0].corrections
    if any(not isinstance(c, ClippedMomentum) for c in corrections) or len(corrections) > 1:
        raise DiffsolveError(f"grid density propagation takes the clipped momentum exactly and no other correction; "
                             f"got {[type(c).__name__ for c in corrections]}; use Monte Carlo for this solver")
    clip = corrections[0] if corrections else None
    two_stage = table.stages == 2 and table.history == 0 and clip is None
    if not two_stage and (table.stages != 1 or table.history > 1 or table.keep != 0):
        raise DiffsolveError(
            "grid density propagation handles one-stage solvers with at most one history value (the previous "
            "step's model output) and two-stage solvers without history; this solver has "
            f"{table.stages} stages, {table.history} history values and keeps stage {table.keep}; use exact "
            "Gaussian-law propagation (diffsolve.accuracy.propagate) or Monte Carlo for it"
        )
    p0 = np.asarray(p0, dtype=np.float64)
    if p0.shape != grid.points.shape:
        raise DiffsolveError(f"p0 must hold one mass per grid point, shape {grid.points.shape}; got {p0.shape}")

    def model(u, tau):
        return target.predict(u[:, None], tau, schedule, prediction)[:, 0]

    if two_stage:
        return _propagate_two_stage(table, model, grid, p0)

    steps = [_split_step(table, clip, n) for n in range(table.steps)]
    return (_propagate_joint if table.history else _propagate_markov)(steps, model, grid, p0)


def _capped(k, bound):
    return k * np.minimum(1.0, bound / np.maximum(np.abs(k), 1e-300))


def _propagate_markov(steps, model, grid: DensityGrid, p) -> np.ndarray:
    x = grid.points
    for s in steps:
        f = model(x, s.tau)
        drift = s.b * f if not s.kb else s.b * f + _capped(s.kb * f, s.bound)
        if s.v0 == 0.0:
            p = grid.kernel_apply(p, s.lin * x + drift, s.w)
            continue
        p = grid.kernel_apply(p, s.a0 * x, s.v0)
        p = grid.kernel_apply(p, drift + s.lin * x, s.w)
    return p


def _output_pieces(s: _Step, x, f, h, q):
    """The output mean as separable pieces: (c(u), [(masses q_i[u, u_prev], d_i(u_prev)), ...]), mean c + d_i."""
    k = s.kb * f[:, None] + s.ke * h[None, :] if (s.kb or s.ke) else None
    if k is None or not np.any(np.abs(k) > s.bound):
        return [(s.lin * x + (s.b + s.kb) * f, [(q, (s.e + s.ke) * h)])]
    capped = [(q * (sign * k > s.bound), s.e * h + sign * s.bound) for sign in (1.0, -1.0)]
    return [(s.lin * x + (s.b + s.kb) * f, [(q * (np.abs(k) <= s.bound), (s.e + s.ke) * h)]),
            (s.lin * x + s.b * f, capped)]


def _propagate_joint(steps, model, grid: DensityGrid, p0) -> np.ndarray:
    x = grid.points
    p = np.zeros((x.size, x.size))  # p[x, u_prev]; the first step ignores u_prev, so any column holds p0
    p[:, 0] = p0
    for n, s in enumerate(steps):
        q = p if s.v0 == 0.0 else grid.kernel(s.a0 * x, s.v0) @ p  # q[u, u_prev]
        h = model(x, steps[n - 1].tau) if (s.e or s.ke) else np.zeros_like(x)
        p = 0.0
        for c, parts in _output_pieces(s, x, model(x, s.tau), h, q):
            g = sum(grid.kernel(d, s.w) @ qi.T for qi, d in parts)  # g[z, u]: masses of d(u_prev) + noise
            p = p + grid.shift(g, c)  # p[x', u]: x' = c(u) + z
    return p.sum(axis=1)


def _propagate_two_stage(table: StepTable, model, grid: DensityGrid, p) -> np.ndarray:
    x = grid.points
    for n in range(table.steps):
        if table.A[n, 0] != 1.0 or np.any(table.C[n, 0] != 0):
            raise DiffsolveError(f"step {n}: grid density propagation expects the first stage to be u_0 = x_n "
                                 f"(A[{n}, 0] = 1, no noise); got A = {table.A[n, 0]!r}, C = {table.C[n, 0]!r}")
        c1, c2 = table.C[n, 1], table.C[n, 2]
        v1 = float(c1 @ c1)
        if v1 == 0.0:
            raise DiffsolveError(f"step {n}: the second stage draws no noise; grid density propagation of two-stage "
                                 "steps needs a stochastic stage (eta > 0); use exact-law propagation for ODE solvers")
        rho = float(c2 @ c1) / v1
        f0 = model(x, table.tau[n, 0])
        m1 = table.A[n, 1] * x + table.B[n, 1, 0] * f0
        q = grid.kernel(m1, v1) * p[None, :]  # q[u, x]
        a = table.A[n, 2] * x + table.B[n, 2, 0] * f0 - rho * m1
        b = rho * x + table.B[n, 2, 1] * model(x, table.tau[n, 1])
        g = grid.kernel(a, float(c2 @ c2) - rho * rho * v1) @ q.T  # g[z, u]: z = a(x) + noise
        p = grid.shift(g, b).sum(axis=1)  # x' = z + b(u)
    return p


def mala_kernel(nodes, log_density, score, tau: float) -> np.ndarray:
    """The MALA transition matrix on the uniform 1-D grid ``nodes`` (n,): K[i, j] = w q(x_j | x_i) alpha(x_i, x_j)
    for j != i (w the spacing, q the proposal density N(x_i + tau s(x_i), 2 tau), alpha the acceptance of
    :func:`diffsolve.langevin.mala_log_acceptance` with the exact energy ``log_density``), the rejected mass (and
    the proposal mass off the grid) on the diagonal; every row sums to 1.  A reversible chain satisfies
    pi_i K_ij = pi_j K_ji with pi_i = exp(log_density(x_i))."""
    from ..langevin import mala_log_acceptance

    x = np.asarray(nodes, dtype=np.float64).ravel()
    n, w = x.size, float(x[1] - x[0])
    logp, s = np.asarray(log_density(x), dtype=np.float64), np.asarray(score(x), dtype=np.float64)
    Z, P = np.repeat(x, n)[:, None], np.tile(x, n)[:, None]
    G, Gp = np.repeat(s, n)[:, None], np.tile(s, n)[:, None]
    dE = np.tile(logp, n) - np.repeat(logp, n)
    log_alpha = mala_log_acceptance(Z, P, G, Gp, tau, dE).reshape(n, n)
    mean = x + tau * s
    log_q = -((x[None, :] - mean[:, None]) ** 2) / (4.0 * tau) - 0.5 * math.log(4.0 * math.pi * tau)
    K = w * np.exp(log_q + np.minimum(log_alpha, 0.0))
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(K, 1.0 - K.sum(axis=1))
    return K


def tv_distance(p, q) -> float:
    """Total variation between two mass vectors on the same grid."""
    return 0.5 * float(np.sum(np.abs(np.asarray(p) - np.asarray(q))))
