"""First-order exponential-integrator steps: DDIM (eta = 0) and the DDPM ancestral step (eta = 1).

Data-prediction form of spec §2.5: x_t = (sigma_t/sigma_s) e^{-eta h} x_s + alpha_t (1 - e^{-(1+eta) h}) D
+ sigma_t sqrt(1 - e^{-2 eta h}) xi.  Tableau: stage 0 is u_0 = x_n; the output row uses F_0 = D(x_n, t_n).
"""

from __future__ import annotations

import math

import numba

from .registry import Builder, Solver, register


def _fill_ddim(h, r, log_alpha, log_sigma, params, A, B, E, C):
    for n in range(h.shape[0]):
        A[n, 0] = 1.0
        A[n, 1] = math.exp(log_sigma[n, 1] - log_sigma[n, 0])
        B[n, 1, 0] = math.exp(log_alpha[n, 1]) * -math.expm1(-h[n])


def _fill_ddpm(h, r, log_alpha, log_sigma, params, A, B, E, C):
    for n in range(h.shape[0]):
        A[n, 0] = 1.0
        A[n, 1] = math.exp(log_sigma[n, 1] - log_sigma[n, 0] - h[n])
        B[n, 1, 0] = math.exp(log_alpha[n, 1]) * -math.expm1(-2.0 * h[n])
        C[n, 1, 0] = math.exp(log_sigma[n, 1]) * math.sqrt(-math.expm1(-2.0 * h[n]))


def _first_stage(params):
    return (0.0,)


register("ddim", lambda: Solver(
    name="ddim", family="exponential-multistep", order=1, nfe_per_step=1, prediction="data", stochastic=False,
    stages=1, history=0, noises=0, fills=(Builder(_fill_ddim, numba.njit(cache=True)(_fill_ddim)),),
    fractions=_first_stage, reference="Song, Meng, Ermon, DDIM, ICLR 2021 (arXiv 2010.02502)",
    description="DDIM = DPM-Solver-1: exact linear part, model held constant over the step",
))
register("ddpm", lambda: Solver(
    name="ddpm", family="exponential-multistep", order=1, strong_order=1.0, nfe_per_step=1, prediction="data",
    stochastic=True, stages=1, history=0, noises=1, fills=(Builder(_fill_ddpm, numba.njit(cache=True)(_fill_ddpm)),),
    fractions=_first_stage, reference="Ho, Jain, Abbeel, DDPM, NeurIPS 2020 (arXiv 2006.11239)",
    description="ancestral step = posterior q(x_t | x_s, x_0 = D), any schedule", extra={"eta": 1.0},
))
