"""Grid density propagation (verification.md §2) against Monte Carlo, and its convergence for ddpm."""

import numpy as np
import pytest

import diffsolve as ds
from diffsolve.accuracy.density import DensityGrid, propagate_density, tv_distance
from diffsolve.targets import GaussianMixture

TARGET = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [0.02, 0.02])  # accelerated.md C.3
VP = ds.get_schedule("vp-linear")


def _run(steps, size=1200):
    grid = ds.time_grid(VP, steps, "time", t_min=1e-2)
    g = DensityGrid(size=size)
    p0 = g.masses(lambda x: TARGET.logpdf(x, grid[0], VP))
    p = propagate_density(ds.get_solver("ddpm").table(VP, grid), TARGET, VP, "data", g, p0)
    return g, grid, p


def test_density_matches_monte_carlo_histogram():
    g, grid, p = _run(8)
    n = 400_000
    x0 = TARGET.sample(n, seed=3, t=grid[0], schedule=VP)
    x = ds.sample("ddpm", TARGET, VP, grid, x_init=x0, seed=5)[:, 0]
    edges = np.linspace(-6, 6, 121)
    hist = np.histogram(x, edges)[0] / n
    coarse = np.add.reduceat(p, np.searchsorted(g.points, edges[:-1]))
    # sampling floor of a 120-bin histogram with 4e5 draws is ~0.4 sqrt(bins/n) = 7e-3
    assert tv_distance(hist, coarse) < 7e-3


def test_ddpm_density_tv_decreases_first_order():
    errs = []
    for steps in (20, 40):
        g, grid, p = _run(steps)
        q = g.masses(lambda x: TARGET.logpdf(x, grid[-1], VP))
        errs.append(tv_distance(p, q))
    assert 1.3 < errs[0] / errs[1] < 2.3  # pre-asymptotic first order on a sharp mixture


def test_deterministic_solver_is_rejected():
    g = DensityGrid(size=200)
    table = ds.get_solver("ddim").table(VP, ds.time_grid(VP, 4))
    with pytest.raises(ds.DiffsolveError, match="positive transition variance"):
        propagate_density(table, TARGET, VP, "data", g, np.full(200, 1 / 200))
