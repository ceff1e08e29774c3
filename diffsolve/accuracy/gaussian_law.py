"""Exact output laws of tableau solvers on Gaussian targets (docs/verification.md §1).

With an affine model F(u, tau) = G u + g (per coordinate), every stage of a tableau step is affine in
(x_n, H_1..H_M, xi_1..xi_Q).  Each stage is carried as a coefficient vector over the basis
(1, x_n, H_1..H_M, xi_1..xi_Q); stacking the new state X' = (x_{n+1}, H'_1..H'_M) gives X' = L0 + LX X + Lxi xi,
so mean and covariance propagate exactly: mu' = L0 + LX mu, P' = LX P LX^T + Lxi Lxi^T.  No sampling.
"""

from __future__ import annotations

import numpy as np

from ..errors import DiffsolveError
from ..program import Program, Segment
from ..targets import Gaussian

__all__ = ["propagate", "initial_law", "reverse_process_law"]


def propagate(program, target: Gaussian, schedule, prediction: str, mean, cov):
    """Push the law N(mean, cov) of X = (x, H_1..H_M) (per coordinate: mean (d, 1+M), cov (d, 1+M, 1+M))
    through every step of ``program`` (a :class:`~diffsolve.program.Program`, or a StepTable); returns the final
    (mean, cov) in the last segment's (x, H) basis.  Corrections enter through their linear part
    (:meth:`~diffsolve.corrections.Correction.linear_part`): exact for affine ones; for a nonlinear one such as
    the clipped momentum this is the law of the chain without it (never capped).  A segment after the first starts
    with no history (H = 0), as the Stepper runs it."""
    mean, cov = np.array(mean, dtype=np.float64), np.array(cov, dtype=np.float64)
    for k, segment in enumerate(Program.of(program).segments):
        if not isinstance(segment, Segment):
            raise DiffsolveError(f"exact-law propagation takes table segments; segment {k} is a "
                                 f"{type(segment).__name__} (use Monte Carlo, or a ULA table, for it)")
        table = segment.linear_table()
        M = table.history
        if k:  # a new segment keeps x and starts from zero history values
            mean = np.concatenate([mean[:, :1], np.zeros((mean.shape[0], M))], axis=1)
            x_var = cov[:, :1, :1]
            cov = np.zeros((cov.shape[0], 1 + M, 1 + M))
            cov[:, :1, :1] = x_var
        elif mean.shape[1] > 1 + M:  # a first segment that reads fewer history values (the newest M) than given
            mean, cov = mean[:, : 1 + M], cov[:, : 1 + M, : 1 + M]
        mean, cov = _propagate_table(table, target, schedule, prediction, mean, cov)
    return mean, cov


def _propagate_table(table, target, schedule, prediction, mean, cov):
    S, M, Q = table.stages, table.history, table.noises
    d = target.dim
    D = 2 + M + Q
    ex = np.zeros(D)
    ex[1] = 1.0
    eH = np.eye(D)[2:2 + M]
    exi = np.eye(D)[2 + M:]
    for n in range(table.steps):
        F = []
        rows = []
        for i in range(S + 1):
            vec = table.A[n, i] * ex + table.E[n, i] @ eH + table.C[n, i] @ exi
            vec = np.broadcast_to(vec, (d, D)).copy()
            for j in range(min(i, S)):
                vec += table.B[n, i, j] * F[j]
            if i < S:
                G, g = target.affine_prediction(table.tau[n, i], schedule, prediction)
                Fi = G[:, None] * vec
                Fi[:, 0] += g
                F.append(Fi)
            else:
                rows.append(vec)
        if M:
            rows.append(F[table.keep])
            hist = np.broadcast_to(eH[: M - 1], (d, M - 1, D))
            L = np.concatenate([np.stack(rows, axis=1), hist], axis=1)
        else:
            L = np.stack(rows, axis=1)
        L0, LX, Lxi = L[:, :, 0], L[:, :, 1:2 + M], L[:, :, 2 + M:]
        mean = L0 + np.einsum("dij,dj->di", LX, mean)
        cov = np.einsum("dij,djk,dlk->dil", LX, cov, LX) + np.einsum("diq,dlq->dil", Lxi, Lxi)
    return mean, cov


def reverse_process_law(target: Gaussian, schedule, times, eta: float):
    """Joint law of the exact eta-reverse process at ``times`` (decreasing), started from q_{times[0]}.

    Returns per-coordinate coefficient arrays (const (d, J), coef (d, J, J)) with x_j = const_j + coef_j . z,
    z ~ N(0, I_J).  The process is Markov with x_t - mu_t = Psi (x_s - mu_s) + noise, where (per coordinate,
    V = alpha^2 v + sigma^2, h = lam_t - lam_s) Psi = sqrt(V_t/V_s) e^{-eta h} (V_t sigma_s^2 / (sigma_t^2 V_s))^{eta/2}
    and the noise variance is V_t - Psi^2 V_s (eta = 0: the deterministic probability-flow map).
    """
    times = np.asarray(times, dtype=np.float64)
    J, d = times.size, target.dim
    mus, Vs = zip(*(target.marginal_moments(t, schedule) for t in times))
    lam = schedule.lam(times)
    sig2 = np.exp(2 * schedule.log_sigma(times))
    const = np.stack(mus, axis=1)
    coef = np.zeros((d, J, J))
    coef[:, 0, 0] = np.sqrt(Vs[0])
    for j in range(1, J):
        h = lam[j] - lam[j - 1]
        psi = np.sqrt(Vs[j] / Vs[j - 1]) * np.exp(-eta * h) * (Vs[j] * sig2[j - 1] / (sig2[j] * Vs[j - 1])) ** (eta / 2)
        coef[:, j, :] = psi[:, None] * coef[:, j - 1, :]
        coef[:, j, j] = np.sqrt(np.maximum(Vs[j] - psi**2 * Vs[j - 1], 0.0))
    return const, coef


def initial_law(target: Gaussian, schedule, grid, history: int, prediction: str, eta: float):
    """Law of X = (x_M, F(x_{M-1}), ..., F(x_0)) on the exact reverse process at grid[0..M] (M = history)."""
    const, coef = reverse_process_law(target, schedule, grid[: history + 1], eta)
    rows_c, rows_v = [const[:, history]], [coef[:, history]]
    for m in range(1, history + 1):
        j = history - m
        G, g = target.affine_prediction(grid[j], schedule, prediction)
        rows_c.append(G * const[:, j] + g)
        rows_v.append(G[:, None] * coef[:, j])
    c = np.stack(rows_c, axis=1)
    V = np.stack(rows_v, axis=1)
    return c, np.einsum("dij,dkj->dik", V, V)
