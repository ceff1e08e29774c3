"""Steps to sigma = 0: every registered table solver ends a grid at the clean state (t = 0) on vp-linear, vp-cosine
and the discrete (DDPM) schedule.  Solvers whose own formula cannot take that step (noise prediction, intermediate
stages) end with the denoising step ``denoise_to_zero``, the lam -> +inf limit of the first-order step."""

import warnings

import numpy as np
import pytest

import diffsolve as ds
from diffsolve.accuracy.order import exact_error
from diffsolve.program import Segment
from diffsolve.solvers.registry import Solver, build_program, denoise_to_zero, rk_u_to_zero, solver_names

SCHEDULES = {"vp-linear": ds.get_schedule("vp-linear"), "vp-cosine": ds.get_schedule("vp-cosine"),
             "discrete": ds.Schedule.discrete(betas=np.linspace(1e-4, 0.02, 1000))}
TABLE_SOLVERS = [n for n in solver_names() if isinstance(ds.get_solver(n), Solver)]
TARGET = ds.targets.Gaussian(np.zeros(3), np.array([0.05, 0.5, 2.0]))


def _grid(schedule, steps):
    return ds.time_grid(schedule, steps, "quadratic", t_min=0.0)


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("name", TABLE_SOLVERS)
def test_every_solver_steps_to_sigma_zero(name, schedule):
    """The exact law of the output at sigma = 0 converges to the data law as the grid is refined (W2)."""
    sch = SCHEDULES[schedule]
    solver = ds.get_solver(name)
    errors = [exact_error(solver, TARGET, sch, _grid(sch, steps), "w2", exact_history=False) for steps in (12, 48)]
    assert np.all(np.isfinite(errors)), errors
    assert errors[1] < errors[0], errors
    program = solver.program(sch, _grid(sch, 12))
    assert isinstance(program.segments[-1], Segment)
    if not solver.takes_final_step():
        assert len(program.segments) == 2 and program.segments[-1].table.steps == 1
    calls = sum(seg.table.tau.size for seg in program.segments)
    last = solver.nfe_per_step if solver.takes_final_step() else solver.final_stages if solver.deterministic else 1
    assert calls == 11 * solver.nfe_per_step + last


@pytest.mark.parametrize("prediction", ["data", "eps", "v", "flow"])
def test_denoise_to_zero_is_the_limit_of_ddim(prediction):
    """x_end = alpha(t_end) D(x, t) for any prediction type; for data prediction it is the limit of ddim's step as
    the end point's sigma -> 0 (t_end = 1e-12: lam = 12.7), and final="denoise" makes it ddim's last step; the
    Euler step in u (rk_u_to_zero with one stage) is x_end = alpha(t_end) (x / alpha(t) + D) / 2."""
    sch = SCHEDULES["vp-linear"]
    t, x, dval = 0.2, np.array([0.7, -1.3]), np.array([0.4, -0.9])
    c_x, c_D = ds.predictions.coefficients(prediction, sch, t)
    f = c_x * x + c_D * dval  # the model output of this type for the data prediction dval
    table = denoise_to_zero(sch, t, 0.0, prediction)
    out = table.A[0, 1] * x + table.B[0, 1, 0] * f
    np.testing.assert_allclose(out, float(sch.alpha(0.0)) * dval, rtol=1e-13)
    half = rk_u_to_zero(sch, t, 0.0, prediction)
    np.testing.assert_allclose(half.A[0, 1] * x + half.B[0, 1, 0] * f,
                               float(sch.alpha(0.0)) * 0.5 * (x / float(sch.alpha(t)) + dval), rtol=1e-13)
    if prediction == "data":
        near = ds.get_solver("ddim").table(sch, np.array([0.5, t, 1e-12]))
        np.testing.assert_allclose(near.A[1], table.A[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(near.B[1], table.B[0], rtol=1e-5, atol=1e-5)
        own = build_program(ds.get_solver("ddim"), sch, np.array([0.5, t, 0.0]), final="denoise").segments
        np.testing.assert_allclose(own[-1].table.A[-1], table.A[0], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(own[-1].table.B[-1], table.B[0], rtol=1e-13, atol=1e-15)


def test_sampling_to_zero_on_all_backends():
    """The two-segment program (a solver's table, then the denoising step) runs fused on the compiled backend and
    equals the NumPy oracle."""
    sch = SCHEDULES["discrete"]
    grid = _grid(sch, 10)
    mix = ds.targets.GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], [0.1, 0.2])
    for name in ("dpm-solver-3", "dpm-solver-2m", "seeds-2"):
        ref = ds.sample(name, mix, sch, grid, n=64, seed=3, backend="numpy")
        out = ds.sample(name, mix, sch, grid, n=64, seed=3, backend="cpu")
        assert np.all(np.isfinite(ref))
        np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("steps", [2, 3, 4])
def test_stage_on_the_first_node_survives_rounding(steps):
    """accel-ddim:phi-psi puts a stage on the previous grid node (fraction -r_1); on a Karras grid from t_max its
    log-SNR lam_n - r_1 h may round one ulp below the schedule's range: it is the node itself, not a refusal."""
    sch = SCHEDULES["vp-linear"]
    grid = np.append(ds.time_grid(sch, steps, "karras"), 0.0)
    x = ds.sample("accel-ddim:phi-psi", ds.targets.from_spec("gmm:d=2,k=8,seed=0"), sch, grid, n=8)
    assert np.isfinite(x).all()


WIDE = ds.targets.Gaussian(np.zeros(2), np.array([0.5, 2.0]))  # D is analytic in u = sigma^2/alpha^2 for |u| < 0.5


def _final_step_slope(solver, schedule, final="solver", h=0.25):
    """The rate at which the error of the step to sigma = 0 alone (exact state and history at nodes h apart in lam,
    the newest at lam_b) falls with u_b = exp(-2 lam_b): error ~ u_b^slope (lam_b <= 3: an O(u^6) step stays above
    the rounding floor there)."""
    lam_b = np.array([2.0, 2.5, 3.0])
    errors = []
    for lb in lam_b:
        grid = np.append(schedule.t_of_lam(lb - h * np.arange(solver.history, -1, -1)), 0.0)
        errors.append(exact_error(solver, WIDE, schedule, grid, "w2", exact_history=True, final=final))
    return -np.polyfit(lam_b, np.log(errors), 1)[0] / 2


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("name", TABLE_SOLVERS)
def test_final_step_error_falls_at_the_declared_order(name, schedule):
    """Under final="solver" a deterministic solver without stages fits its state and the model outputs at the last
    p = min(order, M + 1) nodes in u (Solver.final_row), so the final step's error is O(u^{p+1}); one with stages
    takes a Runge-Kutta step in u of order q = max(1, order - 1), O(u^{q+1}): for every deterministic solver at
    least its order.  The stochastic ones (and every solver under final="denoise") take the denoising step, O(u)."""
    solver = ds.get_solver(name)
    sch = SCHEDULES[schedule]
    if solver.has_final_row():
        expected = min(solver.order, solver.history + 1) + 1
    else:
        expected = solver.final_stages + 1 if solver.deterministic else 1
    assert expected >= solver.order or not solver.deterministic
    slope = _final_step_slope(solver, sch)
    # an O(u^6) step (dpmpp-5m) reaches the float64 floor of the exact laws (1e-13) before its asymptotic range
    assert expected - (0.8 if expected >= 6 else 0.25) < slope < expected + 0.25, slope  # dpmpp-5m: 5.25-5.56
    assert abs(_final_step_slope(solver, sch, final="denoise") - 1) < 0.1


def test_final_weights_are_exact_on_polynomial_trajectories():
    """On a trajectory x~(u) = x0 + sum_{j<=p} a_j u^j (so D = x0 - sum_j (2j - 1) a_j u^j, and eps = (x~ - D) / s),
    both fits return x0 exactly from p nodes; one node is Euler's step in u."""
    from diffsolve.solvers.registry import final_weights, final_weights_eps

    lam = np.array([4.0, 3.2, 2.9, 1.5])
    u = np.exp(-2 * lam)
    rng = np.random.default_rng(0)
    for p in range(1, lam.size + 1):
        x0, a = rng.standard_normal(), rng.standard_normal(p)
        j = np.arange(1, p + 1)
        xt = x0 + (a * u[:p, None] ** j).sum(1)
        D = x0 - ((2 * j - 1) * a * u[:p, None] ** j).sum(1)
        w_x, w = final_weights(lam[:p])
        np.testing.assert_allclose(w_x * xt[0] + w @ D, x0, rtol=1e-9, atol=1e-12)
        k = final_weights_eps(lam[:p])
        np.testing.assert_allclose(xt[0] + k @ ((xt - D) / np.sqrt(u[:p])), x0, rtol=1e-9, atol=1e-12)
    w_x, w = final_weights([1.0])
    np.testing.assert_allclose([w_x, w[0]], [0.5, 0.5])


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_to_zero_grids_end_at_sigma_zero(schedule):
    """time_grid(..., to_zero=True): steps - 1 steps to t_min, then one to sigma = 0, on every spacing."""
    sch = SCHEDULES[schedule]
    for spacing in ("logsnr", "karras", "time", "quadratic"):
        grid = ds.time_grid(sch, 6, spacing, to_zero=True)
        assert grid.size == 7 and grid[-1] == sch.domain[0] and float(sch.sigma(grid[-1])) == 0.0
        np.testing.assert_array_equal(grid[:-1], ds.time_grid(sch, 5, spacing))
    np.testing.assert_array_equal(ds.time_grid(sch, 1, to_zero=True), [sch.t_max, sch.domain[0]])


def test_to_zero_refusals():
    with pytest.raises(ds.DiffsolveError, match="t_min = 0.0 is already there"):
        ds.time_grid(SCHEDULES["vp-linear"], 4, "time", t_min=0.0, to_zero=True)
    never = ds.Schedule.from_expr("exp(-t)", "sqrt(1 - exp(-2*t)) + 0.01")
    with pytest.raises(ds.DiffsolveError, match="needs a schedule that reaches sigma = 0"):
        ds.time_grid(never, 4, to_zero=True)
    with pytest.raises(ds.DiffsolveError, match="to_zero must be True or False"):
        ds.time_grid(SCHEDULES["vp-linear"], 4, to_zero="yes")


def test_final_policies_on_a_sampling_run():
    """"denoise" ends with the one-call denoising step (x_0 = alpha(0) D at the last positive node); "none" stops at
    the last positive node (one call less) and equals the run on the grid without its last node; "solver" (the
    default) is the solver's own final row.  All three on the compiled backend equal the NumPy oracle."""
    sch = SCHEDULES["discrete"]
    grid = ds.time_grid(sch, 8, "logsnr", to_zero=True)
    mix = ds.targets.GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], [0.1, 0.2])
    runs = {}
    for final in ("solver", "denoise", "none"):
        ref = ds.sample("dpmpp-3m", mix, sch, grid, n=32, seed=1, final=final)
        np.testing.assert_allclose(ds.sample("dpmpp-3m", mix, sch, grid, n=32, seed=1, final=final, backend="cpu"),
                                   ref, rtol=1e-10, atol=1e-12)
        runs[final] = ref
    np.testing.assert_array_equal(runs["solver"], ds.sample("dpmpp-3m", mix, sch, grid, n=32, seed=1))
    np.testing.assert_array_equal(runs["none"], ds.sample("dpmpp-3m", mix, sch, grid[:-1], n=32, seed=1))
    np.testing.assert_allclose(runs["denoise"], float(sch.alpha(0.0)) * mix.denoise(runs["none"], grid[-2], sch),
                               rtol=1e-12, atol=1e-14)
    assert not np.allclose(runs["solver"], runs["denoise"])
    assert ds.Stepper("dpmpp-3m", sch, grid, x_init=np.ones((4, 2)), prediction="data", final="none").steps == 7


def test_final_policy_refusals():
    sch = SCHEDULES["vp-linear"]
    grid = ds.time_grid(sch, 4, to_zero=True)
    with pytest.raises(ds.DiffsolveError, match="final must be one of 'solver', 'denoise', 'none'.*got 'zero'"):
        ds.sample("ddim", TARGET, sch, grid, n=4, final="zero")
    with pytest.raises(ds.DiffsolveError, match="final='none' drops the grid's step to sigma = 0"):
        ds.sample("ddim", TARGET, sch, np.array([0.5, 0.0]), n=4, final="none")


@pytest.mark.parametrize("name", ["dpmpp-3m", "dpmpp-4m", "unipc-3", "dpmpp-3m-sde"])
def test_warm_down_removes_the_long_last_step_blow_up(name):
    """A time-uniform grid that ends at a small sigma has a last step long in lam (h = 3.7 after 0.8 at 8 steps):
    the full-order extrapolation over it blew up (measured on the quality benchmark's mixtures: dpmpp-4m 17-57 at
    8 NFE against 0.6-1.6 on a log-SNR grid).  On Gaussian data, with the plain warm-up (warm_down=inf) the exact
    output law is far off; with the default warm-down the last step is of lower order and the error is that of a
    log-SNR grid of as many steps (within 3x).  Measured W2 (plain / warm-down / log-SNR): dpmpp-3m 1.0 / 0.20 /
    0.15, dpmpp-4m 0.72 / 0.19 / 0.15, unipc-3 1.0 / 0.19 / 0.37, dpmpp-3m-sde 6.2 / 0.19 / 0.32."""
    sch = SCHEDULES["vp-linear"]
    tgt = ds.targets.Gaussian(np.zeros(3), np.array([0.05, 0.3, 1.0]))
    grid = np.append(ds.time_grid(sch, 7, "time", t_min=1e-3), 0.0)
    lam = sch.lam(grid)
    assert np.diff(lam)[-2] > 3.5 and np.diff(lam)[-3] < 1.0
    solver = ds.get_solver(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ds.DiffsolveWarning)
        plain = exact_error(solver.with_params(warm_down=np.inf), tgt, sch, grid, "w2", exact_history=False)
        kept = exact_error(solver, tgt, sch, grid, "w2", exact_history=False)
        logsnr = exact_error(solver, tgt, sch, np.append(ds.time_grid(sch, 7, "logsnr"), 0.0), "w2",
                             exact_history=False)
    assert solver.levels(sch, grid)[-2] < solver.with_params(warm_down=np.inf).levels(sch, grid)[-2]
    assert kept < 0.5 * plain and kept <= 3 * logsnr, (plain, kept, logsnr)


def test_warm_down_keeps_uniform_grids_and_exact_history():
    """On a log-SNR grid fine enough that the nodes of every level span at most WARM_DOWN_SPAN (all ratios 1) every
    level passes, so the method is the plain warm-up; with exact history (the order tests) the full method runs
    everywhere; the accelerated samplers keep their papers' start-up rule."""
    sch = SCHEDULES["vp-cosine"]
    grid = ds.time_grid(sch, 12, "logsnr")
    for name in ("dpmpp-4m", "unipc-3", "deis-3"):
        s = ds.get_solver(name)
        np.testing.assert_array_equal(s.levels(sch, grid), s.with_params(warm_down=np.inf).levels(sch, grid))
        quad = ds.time_grid(sch, 12, "quadratic")
        assert (s.levels(sch, quad, exact_history=True) == s.history).all()
    time_grid = np.append(ds.time_grid(sch, 7, "time"), 0.0)
    acc = ds.get_solver("accel-ddim")
    assert acc.levels(sch, time_grid)[1:-1].min() == acc.history
    with pytest.raises(ds.DiffsolveError, match="warm_down must be a number >= 1"):
        ds.get_solver("dpmpp-2m", warm_down=0.5)


@pytest.mark.parametrize("name", ["ddim", "dpmpp-3m", "dpm-solver-2m", "dpmpp-2s"])
def test_final_step_from_below_unit_snr_is_the_denoising_step(name):
    """The fits in u assume u = (sigma/alpha)^2 small; from a last positive node with u >= 1 (lam <= 0) every
    solver's own step to sigma = 0 is the denoising step, the same map as under final="denoise"."""
    sch = SCHEDULES["vp-linear"]
    grid = np.append(sch.t_of_lam(np.array([-2.0, -1.0, -0.5])), 0.0)
    own = exact_error(name, WIDE, sch, grid, "w2", exact_history=False)
    np.testing.assert_allclose(own, exact_error(name, WIDE, sch, grid, "w2", exact_history=False, final="denoise"),
                               rtol=1e-12)
    grid[-2] = float(sch.t_of_lam(0.5))
    assert exact_error(name, WIDE, sch, grid, "w2", exact_history=False) != pytest.approx(
        exact_error(name, WIDE, sch, grid, "w2", exact_history=False, final="denoise"), rel=1e-6)


def test_warm_down_caps_the_span_of_the_extrapolated_nodes():
    """On a coarse log-SNR grid (h = 2.4: 4 steps from t = 1 to 1e-3) the nodes of a level j >= 1 and the step span
    (j + 1) h > 4 in log-SNR, more than D's saturation scale: every step is first order; at h = 1.2 (8 steps) level 1
    (span 2.4) passes and level 2 (3.6) too, level 3 (4.8) does not.  Measured on the quality benchmark
    (docs/benchmarks.md): default configurations non-monotone in NFE 32 -> 23, karras grids at 5-12 NFE 0.80x the
    error."""
    from diffsolve.solvers.registry import WARM_DOWN_SPAN

    sch = SCHEDULES["vp-linear"]
    solver = ds.get_solver("dpmpp-4m")
    coarse = ds.time_grid(sch, 4, "logsnr")
    assert 2.3 < np.diff(sch.lam(coarse))[0] < 2.5 and WARM_DOWN_SPAN == 4.0
    np.testing.assert_array_equal(solver.levels(sch, coarse), [0, 0, 0, 0])
    np.testing.assert_array_equal(solver.with_params(warm_down=np.inf).levels(sch, coarse), [0, 1, 2, 3])
    np.testing.assert_array_equal(solver.levels(sch, ds.time_grid(sch, 8, "logsnr")), [0, 1, 2, 2, 2, 2, 2, 2])
