"""Grid density propagation of one-stage tables with one history value (docs/verification.md §2: joint masses of
(x, u_prev) on the grid squared): agreement with the 1-D path when the history is off, with a brute-force joint
kernel on a small grid (clipped momentum included), accel-sde golden values (docs/algorithms/accelerated.md B.2.3,
"Non-Gaussian check"), and rejection of unsupported tables."""

from dataclasses import replace

import numpy as np
import pytest

import diffsolve as ds
import diffsolve.solvers.papers  # noqa: F401  (registers accel-ddpm, accel-sde)
from diffsolve.accuracy.density import DensityGrid, propagate_density, tv_distance
from diffsolve.corrections import ClippedMomentum
from diffsolve.program import Program, Segment
from diffsolve.tableau import StepTable
from diffsolve.targets import GaussianMixture
from helpers import VP

TARGET = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [0.02, 0.02])  # docs/algorithms/accelerated.md C.3


def _setup(T, spacing="time", size=1024, lo=-6.0, hi=6.0):
    """C.3 harness: T grid points on [1e-2, 1], exact start p0 = q_T, reference q = q_1 on the same grid."""
    grid = ds.time_grid(VP, T - 1, spacing, t_max=1.0, t_min=1e-2)
    g = DensityGrid(lo, hi, size)
    p0 = g.masses(lambda x: TARGET.logpdf(x, grid[0], VP))
    q = g.masses(lambda x: TARGET.logpdf(x, grid[-1], VP))
    return grid, g, p0, q


def _segment(job) -> Segment:
    """The one segment of a program, a segment or a bare table."""
    return Program.of(job).segments[0]


def _with_zero_history(job):
    seg = _segment(job)
    table = seg.table
    clips = tuple(ClippedMomentum(B=c.B, E=np.zeros((table.steps, 1)), bound=c.bound) for c in seg.corrections)
    return Segment(replace(table, E=np.zeros(table.A.shape + (1,)), keep=0), clips)


def _propagate(table, g, p0):
    return propagate_density(table, TARGET, VP, "eps", g, p0)


@pytest.mark.parametrize("variant", [None, "ddpm-type"])  # stage noise (split) / no stage noise
def test_history_off_reproduces_the_markov_grid(variant):
    """docs/verification.md §2: with E = 0 the joint propagation reproduces the 1-D numbers (documented: 3 digits)."""
    grid, g, p0, q = _setup(20)
    table = ds.get_solver("accel-ddpm", variant=variant).table(VP, grid)
    p1, p2 = _propagate(table, g, p0), _propagate(_with_zero_history(table), g, p0)
    assert p2.sum() == pytest.approx(1.0, abs=1e-12)
    assert tv_distance(p1, p2) < 1e-4  # measured 4e-13 (split noise), 2e-6 (no stage noise)
    assert tv_distance(p2, q) == pytest.approx(tv_distance(p1, q), rel=1e-3)


def test_clipped_markov_term_matches_on_both_paths():
    """A capped output term K = kb F(u), the bound active on part of the grid, gives the same law on the 1-D path
    and on the joint path, and a different one from the uncapped table.  The domain [-10, 10] keeps the mass the
    capped chain pushes outwards away from the ends (1-D: piled at the end, joint: periodic)."""
    grid, g, p0, _ = _setup(20, size=400, lo=-10.0, hi=10.0)
    table = ds.get_solver("accel-ddpm").table(VP, grid)
    kb = 0.2 * table.B[:, 1, :]
    B = table.B.copy()
    B[:, 1, :] -= kb
    capped = Segment(replace(table, B=B), (ClippedMomentum(B=kb, E=np.zeros((table.steps, 0)),
                                                           bound=0.3 * np.abs(kb[:, 0])),))
    p1, p2 = _propagate(capped, g, p0), _propagate(_with_zero_history(capped), g, p0)
    assert tv_distance(p1, p2) < 1e-10  # measured 5e-14
    assert tv_distance(p1, _propagate(table, g, p0)) > 5e-2  # measured 9e-2


def _brute_force(job, g, p0):
    """Joint propagation with the full kernel N(x'; m(u, u_prev), w), m evaluated on every grid pair."""
    x = g.points

    def model(u, tau):
        return TARGET.predict(u[:, None], tau, VP, "eps")[:, 0]

    def kernel(mean, var):  # [x', *mean.shape], normalised over x'
        k = np.exp(-0.5 * (x.reshape((-1,) + (1,) * mean.ndim) - mean) ** 2 / var)
        return k / k.sum(axis=0)

    p = np.zeros((x.size, x.size))
    p[:, x.size // 2] = p0
    seg = _segment(job)
    table, clip = seg.table, (seg.corrections[0] if seg.corrections else None)
    for n in range(table.steps):
        c0, c1 = table.C[n, 0], table.C[n, 1]
        v0 = c0 @ c0
        rho = (c1 @ c0) / v0 if v0 else table.A[n, 1]
        q = kernel(table.A[n, 0] * x, v0) @ p if v0 else p
        f = model(x, table.tau[n, 0])[:, None]
        h = model(x, table.tau[n - 1, 0])[None, :] if n else 0.0 * f.T
        m = rho * x[:, None] + table.B[n, 1, 0] * f + table.E[n, 1, 0] * h
        if clip is not None:
            k = clip.B[n, 0] * f + clip.E[n, 0] * h
            m = m + k * np.minimum(1.0, clip.bound[n] / np.abs(k))
        p = np.einsum("iuv,uv->iu", kernel(m, c1 @ c1 - rho * rho * v0), q)
    return p.sum(axis=1)


@pytest.mark.parametrize("bound", [None, 0.3])
def test_joint_grid_matches_brute_force_kernel(bound):
    """T = 8 on 200 points over [-10, 10] (smallest kernel std 5 dx): FFT translation + matrix product vs the
    full joint kernel.  bound = 0.3: the momentum cap at 0.3 x its default bites on ~1% of the mass."""
    grid, g, p0, _ = _setup(8, size=200, lo=-10.0, hi=10.0)
    seg = ds.get_solver("accel-sde").program(VP, grid).segments[0]
    if bound is not None:
        clip = seg.corrections[0]
        seg = Segment(seg.table, (ClippedMomentum(B=clip.B, E=clip.E, bound=bound * clip.bound),))
        assert tv_distance(_propagate(seg, g, p0), _propagate(Segment(seg.linear_table()), g, p0)) > 5e-3
    assert tv_distance(_propagate(seg, g, p0), _brute_force(seg, g, p0)) < 2e-4  # measured 1e-4, 4e-6


# docs/algorithms/accelerated.md B.2.3, "Non-Gaussian check", row "a = 0, ratio (default)" (1024 x 1024 joint
# grid)
GOLDEN = {
    ("time", 20): 2.01e-1, ("time", 40): 6.74e-2, ("time", 80): 2.04e-2, ("time", 160): 5.66e-3,
    ("logsnr", 20): 7.30e-2, ("logsnr", 40): 2.19e-2, ("logsnr", 80): 6.20e-3,
}
SLOW = {("time", 80), ("time", 160), ("logsnr", 40), ("logsnr", 80)}


@pytest.mark.parametrize(
    "spacing,T", [pytest.param(*k, marks=pytest.mark.slow) if k in SLOW else k for k in GOLDEN]
)
def test_accel_sde_mixture_golden(spacing, T):
    grid, g, p0, q = _setup(T, spacing)
    solver = ds.get_solver("accel-sde")
    program = solver.program(VP, grid)
    assert (program.table.history, program.table.stages, solver.prediction) == (1, 1, "eps")
    p = _propagate(program, g, p0)
    assert tv_distance(p, q) == pytest.approx(GOLDEN[spacing, T], rel=0.05)  # measured within 0.4%


def _bad_table(kind):
    if kind == "two stages with history":
        return StepTable.empty(3, 2, 1, 1)
    if kind == "two history values":
        return StepTable.empty(3, 1, 2, 1)
    seg = ds.get_solver("accel-sde").program(VP, ds.time_grid(VP, 5, "time", t_max=1.0, t_min=1e-2)).segments[0]
    E = seg.table.E.copy()
    E[(2, 0, 0) if kind == "history in the stage input" else (0, 1, 0)] = 0.1
    return Segment(replace(seg.table, E=E), seg.corrections)


@pytest.mark.parametrize(
    "kind,match",
    [
        ("two stages with history", "two-stage solvers without history.*this solver has 2 stages"),
        ("two history values", "at most one history value.*1 stages, 2 history values"),
        ("history in the stage input", r"step 2: the stage input uses the history value \(E\[2, 0, 0\]"),
        ("history in the first step", r"first step uses a history value \(E\[0, 1, 0\] = 0.1"),
    ],
)
def test_unsupported_tables_are_rejected(kind, match):
    with pytest.raises(ds.DiffsolveError, match=match):
        propagate_density(_bad_table(kind), TARGET, VP, "eps", DensityGrid(size=64), np.full(64, 1 / 64))


def test_under_resolved_joint_grid_is_rejected():
    """The smallest output kernel std at T = 20 (0.21, last step) is below a 40-point grid's spacing 0.31."""
    grid, g, p0, _ = _setup(20, size=40)
    with pytest.raises(ds.DiffsolveError, match="below the grid spacing"):
        _propagate(ds.get_solver("accel-sde").program(VP, grid), g, p0)
