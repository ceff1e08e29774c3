"""Euler-Maruyama: derived coefficients, first-order consistency with the exact step, weak order 1."""

import numpy as np
import pytest

import diffsolve as ds
from helpers import GAUSSIAN_D8, VP, order_setup


def test_em_coefficients_match_the_scaled_sde():
    """x' = (sigma_1/sigma_0)(1 - eta h) x + (1+eta) h sigma_1 e^{lam_0} D + sigma_1 sqrt(2 eta h) xi."""
    grid = np.array([0.7, 0.6])
    table = ds.get_solver("euler-maruyama").table(VP, grid)
    lam0, lam1 = VP.lam(grid)
    h, s0, s1 = lam1 - lam0, VP.sigma(0.7), VP.sigma(0.6)
    assert table.A[0, 1] == pytest.approx(s1 / s0 * (1 - h), rel=1e-13)
    assert table.B[0, 1, 0] == pytest.approx(2 * h * s1 * np.exp(lam0), rel=1e-13)
    assert table.C[0, 1, 0] == pytest.approx(s1 * np.sqrt(2 * h), rel=1e-13)


def test_em_agrees_with_the_exact_first_order_step_to_first_order():
    """Against the DDPM step (exact linear part) the one-step difference shrinks like h^2."""
    gaps = []
    for dt in (0.02, 0.01):
        grid = np.array([0.5, 0.5 - dt])
        em, exact = (ds.get_solver(n).table(VP, grid) for n in ("euler-maruyama", "ddpm"))
        gaps.append(max(abs(em.A[0, 1] - exact.A[0, 1]), abs(em.B[0, 1, 0] - exact.B[0, 1, 0]),
                        abs(em.C[0, 1, 0] ** 2 - exact.C[0, 1, 0] ** 2)))
    assert 3.0 < gaps[0] / gaps[1] < 5.0


def test_em_eta_parameter_and_weak_order():
    s = ds.get_solver("euler-maruyama", eta=0.5)
    assert s.eta == 0.5
    study = ds.order_study(s, GAUSSIAN_D8, VP, **order_setup(VP, steps=(128, 256, 512)))
    assert abs(study.order - 1.0) <= 0.3, study.table()
