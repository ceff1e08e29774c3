"""Grid density propagation (docs/verification.md §2) against Monte Carlo, and its convergence for ddpm."""

import numpy as np
import pytest

import diffsolve as ds
from diffsolve.accuracy.density import DensityGrid, propagate_density, tv_distance
from diffsolve.targets import GaussianMixture
from helpers import VP

TARGET = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [0.02, 0.02])  # docs/algorithms/accelerated.md C.3


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


# -- two-stage Markov steps (SEEDS-2) -----------------------------------------------------------------------------
def _seeds2(target, steps, size=1024, **kw):
    grid = ds.time_grid(VP, steps, "logsnr", t_min=1e-2)
    g = DensityGrid(-6.0, 6.0, size)
    p0 = g.masses(lambda x: target.logpdf(x, grid[0], VP))
    solver = ds.get_solver("seeds-2", **kw)
    return g, grid, propagate_density(solver.table(VP, grid), target, VP, solver.prediction, g, p0)


def test_two_stage_density_equals_the_exact_gaussian_law():
    """On a Gaussian target the grid result must be the exactly propagated Gaussian law."""
    from diffsolve.accuracy import initial_law, propagate
    from diffsolve.targets import Gaussian

    target = Gaussian([0.5], [0.3])
    g, grid, p = _seeds2(target, 12)
    mean, cov = initial_law(target, VP, grid, 0, "data", 1.0)
    mean, cov = propagate(ds.get_solver("seeds-2").table(VP, grid), target, VP, "data", mean, cov)
    exact = g.masses(-0.5 * (g.points - mean[0, 0]) ** 2 / cov[0, 0, 0])
    assert tv_distance(p, exact) < 2e-4
    assert tv_distance(p, g.masses(lambda x: target.logpdf(x, grid[-1], VP))) > 1e-3  # (the law is not q itself)


def test_two_stage_density_matches_monte_carlo():
    g, grid, p = _seeds2(TARGET, 6, size=1201)
    n = 400_000
    x0 = TARGET.sample(n, seed=3, t=grid[0], schedule=VP)
    x = ds.sample("seeds-2", TARGET, VP, grid, x_init=x0, seed=5)[:, 0]
    cells = np.concatenate([[g.points[0] - g.dx / 2], g.points[:-1] + g.dx / 2, [g.points[-1] + g.dx / 2]])
    hist = np.histogram(x, cells)[0] / n  # one bin per grid cell (centred on its point), then 10 cells per bin
    coarse = np.arange(0, g.points.size, 10)
    assert tv_distance(np.add.reduceat(hist, coarse), np.add.reduceat(p, coarse)) < 7e-3


def test_two_stage_tables_that_cannot_be_propagated_are_rejected():
    g = DensityGrid(size=300)
    grid = ds.time_grid(VP, 4, "logsnr", t_min=1e-2)
    p0 = np.full(300, 1 / 300)
    with pytest.raises(ds.DiffsolveError, match="needs a stochastic stage"):
        propagate_density(ds.get_solver("seeds-2", eta=0.0).table(VP, grid), TARGET, VP, "data", g, p0)
    with pytest.raises(ds.DiffsolveError, match="this solver has 3 stages"):
        propagate_density(ds.get_solver("seeds-3").table(VP, grid), TARGET, VP, "data", g, p0)
