"""Peer comparison: diffsolve's multistep solvers against diffusers' DPMSolverMultistepScheduler.

Same discrete DDPM schedule (linear betas 1e-4 -> 0.02, N = 1000), same timesteps, same model outputs (the exact
eps of a Gaussian mixture), same noise for the SDE; diffusers runs in float32, so the tolerance is 1e-5 relative.
diffusers' final-step tricks are switched off (lower_order_final=False, final sigma = the smallest training sigma).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

import diffsolve as ds  # noqa: E402
from diffsolve.noise import standard_normal  # noqa: E402
from diffsolve.schedules import DiscreteSchedule  # noqa: E402
from diffsolve.targets import from_spec  # noqa: E402

pytestmark = pytest.mark.peer

def _diffusers_schedule():
    """diffsolve's discrete schedule with diffusers' own alphas_cumprod (computed in float32 by diffusers: a
    float64 cumprod of the same betas differs by ~1e-5 relative after 1000 factors)."""
    ac = diffusers.DPMSolverMultistepScheduler(beta_schedule="linear").alphas_cumprod.numpy().astype(np.float64)
    return DiscreteSchedule(1.0 - ac / np.concatenate([[1.0], ac[:-1]]))


SCHEDULE = _diffusers_schedule()
TARGET = from_spec("gmm:d=4,k=3,seed=5,scale=1.0,var=0.2")
SEED = 3


def _diffusers_run(steps, x_init, order, algorithm="dpmsolver++", solver_type="midpoint", noise_step_offset=1):
    sched = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", solver_order=order,
        algorithm_type=algorithm, solver_type=solver_type, lower_order_final=False, final_sigmas_type="sigma_min",
        prediction_type="epsilon",
    )
    sched.set_timesteps(steps)
    grid = np.concatenate([(sched.timesteps.numpy().astype(np.float64) + 1) / 1000, [1 / 1000]])
    x = torch.from_numpy(x_init.astype(np.float32))
    idx = np.arange(x_init.shape[0], dtype=np.int64)
    for n, ts in enumerate(sched.timesteps):
        eps = TARGET.predict(x.numpy().astype(np.float64), grid[n], SCHEDULE, "eps")
        noise = None
        if algorithm.startswith("sde"):
            noise = torch.from_numpy(standard_normal(SEED, idx, n + noise_step_offset, 0, x_init.shape[1]))
        x = sched.step(torch.from_numpy(eps.astype(np.float32)), ts, x, variance_noise=noise).prev_sample
    return grid, x.numpy().astype(np.float64)


def _diffusers_run64(steps, x_init, order, algorithm="dpmsolver++", solver_type="midpoint"):
    """The scheduler's own update formulas driven in float64 (``step`` casts samples to float32), with its
    warm-up rule: first-order, then second-order, then order ``order``."""
    sched = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", solver_order=order,
        algorithm_type=algorithm, solver_type=solver_type, lower_order_final=False, final_sigmas_type="sigma_min",
        prediction_type="epsilon",
    )
    sched.set_timesteps(steps)
    ac = sched.alphas_cumprod.numpy().astype(np.float64)  # sigmas again, in float64 (diffusers rounds to float32)
    nodes = np.concatenate([sched.timesteps.numpy(), [0]])
    sched.sigmas = torch.from_numpy(np.sqrt((1 - ac[nodes]) / ac[nodes]))
    updates = [sched.dpm_solver_first_order_update, sched.multistep_dpm_solver_second_order_update,
               getattr(sched, "multistep_dpm_solver_third_order_update", None)]
    grid = np.concatenate([(sched.timesteps.numpy().astype(np.float64) + 1) / 1000, [1 / 1000]])
    x = torch.from_numpy(x_init.copy())
    idx = np.arange(x_init.shape[0], dtype=np.int64)
    outputs = [None] * order
    for n in range(steps):
        sched._step_index = n
        eps = torch.from_numpy(TARGET.predict(x.numpy(), grid[n], SCHEDULE, "eps"))
        outputs = outputs[1:] + [sched.convert_model_output(eps, sample=x)]
        noise = torch.from_numpy(standard_normal(SEED, idx, n + 1, 0, x_init.shape[1])) if algorithm.startswith("sde") else None
        level = min(n, order - 1)
        x = updates[level](outputs[-1] if level == 0 else outputs, sample=x, noise=noise)
    return grid, x.numpy()


def _ours(solver, grid, x_init):
    """diffsolve's run with the peers' stepping (warm_down=inf: the lower-order steps only while history is missing)."""
    eps_model = lambda x, t: TARGET.predict(x, t, SCHEDULE, "eps")  # noqa: E731
    return ds.sample(solver, eps_model, SCHEDULE, grid, x_init=x_init, prediction="eps", seed=SEED,
                     warm_down=np.inf)


CASES = [
    # (diffsolve solver, variant, diffusers order, algorithm, solver_type)
    ("dpmpp-2m", "published", 2, "dpmsolver++", "midpoint"),
    ("dpmpp-2m", "exact", 2, "dpmsolver++", "heun"),
    ("dpmpp-3m", "published", 3, "dpmsolver++", "midpoint"),
    ("dpmpp-1m", "exact", 1, "dpmsolver++", "midpoint"),
    ("dpmpp-2m-sde", "exact", 2, "sde-dpmsolver++", "heun"),
]


@pytest.mark.parametrize("name,variant,order,algorithm,solver_type", CASES)
@pytest.mark.parametrize("steps", [10, 25])
def test_matches_diffusers(name, variant, order, algorithm, solver_type, steps):
    x_init = np.random.default_rng(0).standard_normal((64, TARGET.dim))
    grid, theirs = _diffusers_run(steps, x_init, order, algorithm, solver_type)
    ours = _ours(ds.get_solver(name, variant=variant), grid, x_init)
    scale = np.max(np.abs(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("name,variant,order,algorithm,solver_type", CASES)
def test_matches_diffusers_update_formulas_in_float64(name, variant, order, algorithm, solver_type):
    """The same comparison with diffusers' update formulas evaluated in float64: agreement to ~1e-12."""
    x_init = np.random.default_rng(2).standard_normal((32, TARGET.dim))
    grid, theirs = _diffusers_run64(20, x_init, order, algorithm, solver_type)
    ours = _ours(ds.get_solver(name, variant=variant), grid, x_init)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10 * np.max(np.abs(theirs)))


def test_published_3m_differs_from_exact_3m():
    """The published 3M halves the second-difference term (docs/algorithms/exponential_integrators.md §3.6): the
    exact weights must not match it."""
    x_init = np.random.default_rng(1).standard_normal((64, TARGET.dim))
    grid, theirs = _diffusers_run(25, x_init, 3)
    ours = _ours(ds.get_solver("dpmpp-3m"), grid, x_init)
    assert np.max(np.abs(ours - theirs)) > 1e-4 * np.max(np.abs(theirs))
