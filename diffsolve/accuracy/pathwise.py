"""Strong (pathwise) errors of data-prediction SDE tableaux on one shared Brownian path
(docs/verification.md §4).

Nested log-SNR-uniform grids (N, 2N, 4N, ... steps) all sit on one fine grid of ``substeps`` sub-steps per step
of the finest level; one set of fine Brownian increments dB (in lam-time, from a
:class:`~diffsolve.noise.brownian.BrownianTree` keyed by the seed and the path index) drives every level:

* the normals of a step are the normalised fresh parts of the OU path between consecutive stage nodes,
  z_j = sqrt(2 eta) sum_k e^{-eta (lam_j - mu_k)} dB_k / sqrt(1 - e^{-2 eta (lam_j - lam_{j-1})}) over the fine
  sub-steps of [lam_{j-1}, lam_j] (docs/algorithms/seeds.md §1.5, §6.5): with the exact (Cholesky = OU
  recursion) noise rule the tableau then reproduces the path's node values; another rule (the mirrored one)
  combines the same normals differently and is judged on the same path;
* the reference is the exact eta-reverse process of a Gaussian target on the fine grid: per coordinate
  x - mu is carried by Psi (the exact propagator of :func:`~diffsolve.accuracy.gaussian_law.reverse_process_law`)
  plus sqrt(2 eta) sum_k Psi(lam_end, mu_k) sigma(mu_k) dB_k, with mu_k the sub-step midpoints.

The error at a level is the RMS over paths of the final-time difference; the order is the slope against h.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends.numpy_backend import NumpyEngine
from ..errors import DiffsolveError
from ..noise.brownian import BrownianTree
from ..sampling import sample
from ..solvers import get_solver
from ..targets import Gaussian

__all__ = ["StrongStudy", "strong_order_study"]


@dataclass
class StrongStudy:
    solver: str
    steps: list
    h: list
    errors: list

    @property
    def order(self) -> float:
        return float(np.polyfit(np.log(self.h), np.log(self.errors), 1)[0])


def _psi(target, schedule, lam_t, lam_s, eta):
    """Exact propagator of x - mu from lam_s to lam_t (arrays broadcast; per coordinate along the last axis)."""
    t_t, t_s = schedule.t_of_lam(lam_t), schedule.t_of_lam(lam_s)
    a_t, a_s = schedule.alpha(t_t)[..., None], schedule.alpha(t_s)[..., None]
    s_t, s_s = schedule.sigma(t_t)[..., None], schedule.sigma(t_s)[..., None]
    v = target.variances[0]
    V_t, V_s = a_t**2 * v + s_t**2, a_s**2 * v + s_s**2
    h = (lam_t - lam_s)[..., None]
    return np.sqrt(V_t / V_s) * np.exp(-eta * h) * (V_t * s_s**2 / (s_t**2 * V_s)) ** (eta / 2)


def strong_order_study(solver, target: Gaussian, schedule, steps=(8, 16, 32, 64), paths: int = 1000,
                       substeps: int = 24, seed: int = 0, lam_range=(-2.5, 3.0)) -> StrongStudy:
    """RMS pathwise error of a stochastic data-prediction ``solver`` at nested step counts ``steps``."""
    solver = get_solver(solver)
    if not isinstance(target, Gaussian):
        raise DiffsolveError("strong_order_study needs a Gaussian target (its reverse SDE is solved exactly)")
    if solver.prediction != "data" or not solver.stochastic:
        raise DiffsolveError(f"strong_order_study covers stochastic data-prediction solvers, got {solver.name!r}")
    steps = sorted(int(s) for s in steps)
    finest = steps[-1]
    if any(finest % s for s in steps):
        raise DiffsolveError(f"steps must be nested (each divides the largest), got {steps}")
    eta = solver.eta
    d = target.dim
    lam_nodes = np.linspace(*lam_range, finest * substeps + 1)
    dmu = np.diff(lam_nodes)
    mid = 0.5 * (lam_nodes[1:] + lam_nodes[:-1])
    # one Brownian path per sample, in lam-time, from the virtual Brownian tree: every level reads the same path;
    # leaves no wider than a fine sub-step hold at most one grid time each, so the increments have the exact law
    tree = BrownianTree(seed, lam_nodes[0], lam_nodes[-1], (paths, d), tol=float(dmu.min()))
    dB = tree.increments(lam_nodes)
    rng = np.random.default_rng(seed)
    # reference on the fine grid: exact propagator per fine step, noise by the midpoint rule
    t_nodes = schedule.t_of_lam(lam_nodes)
    m0, v0 = target.marginal_moments(t_nodes[0], schedule)
    x_ref = m0 + np.sqrt(v0) * rng.standard_normal((paths, d))
    x0 = x_ref.copy()
    psi_step = _psi(target, schedule, lam_nodes[1:], lam_nodes[:-1], eta)  # (fine, d)
    psi_mid = _psi(target, schedule, lam_nodes[1:], mid, eta)
    sig_mid = schedule.sigma(schedule.t_of_lam(mid))[:, None]
    ref = [x_ref]
    for k in range(dmu.size):
        mu_prev, _ = target.marginal_moments(t_nodes[k], schedule)
        mu_next, _ = target.marginal_moments(t_nodes[k + 1], schedule)
        x_ref = mu_next + psi_step[k] * (x_ref - mu_prev) + np.sqrt(2 * eta) * psi_mid[k] * sig_mid[k] * dB[k]
        ref.append(x_ref)
    errors, hs = [], []
    for n_steps in steps:
        per = dmu.size // n_steps
        grid = t_nodes[::per]
        fractions = solver.stage_fractions()  # lam-uniform grid: history ratios 1
        offsets = np.concatenate([fractions[1:], [1.0]]) * per
        if not np.allclose(offsets, np.round(offsets)):
            raise DiffsolveError(f"stage fractions {fractions} do not fall on the fine grid; use substeps divisible by 6")
        offsets = np.round(offsets).astype(int)
        node_noise = {}
        bounds = np.concatenate([[0], offsets])
        for n in range(n_steps):
            lo = n * per
            z = []
            for a, b in zip(bounds[:-1], bounds[1:]):  # the fresh OU part on each sub-interval, normalised
                lam_b = lam_nodes[lo + b]
                w = np.exp(-eta * (lam_b - mid[lo + a:lo + b]))[:, None, None]
                fresh = np.sqrt(2 * eta) * np.sum(w * dB[lo + a:lo + b], axis=0)
                z.append(fresh / np.sqrt(-np.expm1(-2 * eta * (lam_b - lam_nodes[lo + a]))))
            node_noise[n] = z
        engine = NumpyEngine(noise=lambda step, q: node_noise[step - 1][q])  # noise step k + 1 is grid step k
        x = sample(solver, target, schedule, grid, x_init=x0.copy(), seed=seed, backend=engine)
        errors.append(float(np.sqrt(np.mean(np.sum((x - ref[-1]) ** 2, axis=1)))))
        hs.append(float(lam_nodes[per] - lam_nodes[0]))
    return StrongStudy(solver.name, steps, hs, errors)
