"""Steps to sigma = 0: every registered table solver ends a grid at the clean state (t = 0) on vp-linear, vp-cosine
and the discrete (DDPM) schedule.  Solvers whose own formula cannot take that step (noise prediction, intermediate
stages) end with the denoising step ``denoise_to_zero``, the lam -> +inf limit of the first-order step."""

import numpy as np
import pytest

import diffsolve as ds
from diffsolve.accuracy.order import exact_error
from diffsolve.program import Segment
from diffsolve.solvers.registry import Solver, denoise_to_zero, solver_names

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
    assert calls == 11 * solver.nfe_per_step + 1 if not solver.takes_final_step() else calls == 12 * solver.nfe_per_step


@pytest.mark.parametrize("prediction", ["data", "eps", "v", "flow"])
def test_denoise_to_zero_is_the_limit_of_ddim(prediction):
    """x_end = alpha(t_end) D(x, t) for any prediction type; for data prediction it is ddim's own last step."""
    sch = SCHEDULES["vp-linear"]
    t, x, dval = 0.2, np.array([0.7, -1.3]), np.array([0.4, -0.9])
    c_x, c_D = ds.predictions.coefficients(prediction, sch, t)
    f = c_x * x + c_D * dval  # the model output of this type for the data prediction dval
    table = denoise_to_zero(sch, t, 0.0, prediction)
    out = table.A[0, 1] * x + table.B[0, 1, 0] * f
    np.testing.assert_allclose(out, float(sch.alpha(0.0)) * dval, rtol=1e-13)
    if prediction == "data":
        own = ds.get_solver("ddim").table(sch, np.array([0.5, t, 0.0]))
        np.testing.assert_allclose(own.A[1], table.A[0], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(own.B[1], table.B[0], rtol=1e-13, atol=1e-15)


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
