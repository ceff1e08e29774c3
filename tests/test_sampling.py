"""End-to-end sampling on the numpy backend, exact-law propagation, and registry-driven order tests."""

import numpy as np
import pytest

import diffsolve as ds
from diffsolve.accuracy import exact_error, initial_law, propagate, reverse_process_law
from diffsolve.targets import Gaussian, from_spec
from helpers import GAUSSIAN_D8, ORDER_SETUP, VP, parametrize_solvers, solver, table_solvers


def test_ddpm_step_is_the_posterior_of_the_forward_process():
    """docs/algorithms/seeds.md §6.2(1): VP alpha_s = 0.3 -> alpha_t = 0.8 gives x coefficient 0.148352, D coefficient
    0.755495 and variance 0.339973."""
    s = VP
    t_s, t_t = s.t_of_lam(np.log(0.3 / np.sqrt(1 - 0.09))), s.t_of_lam(np.log(0.8 / np.sqrt(1 - 0.64)))
    table = ds.get_solver("ddpm").table(s, np.array([t_s, t_t]))
    assert table.A[0, 1] == pytest.approx(0.148352, abs=1e-6)
    assert table.B[0, 1, 0] == pytest.approx(0.755495, abs=1e-6)
    assert table.C[0, 1, 0] ** 2 == pytest.approx(0.339973, abs=1e-6)
    # general form: posterior q(x_t | x_s, x_0) of the Gaussian forward process
    a_s, a_t, s_s, s_t = 0.3, 0.8, np.sqrt(1 - 0.09), np.sqrt(1 - 0.64)
    a_st, var_st = a_s / a_t, s_s**2 - (a_s / a_t) ** 2 * s_t**2
    assert table.A[0, 1] == pytest.approx(a_st * s_t**2 / s_s**2, rel=1e-12)
    assert table.B[0, 1, 0] == pytest.approx(a_t * var_st / s_s**2, rel=1e-12)
    assert table.C[0, 1, 0] ** 2 == pytest.approx(var_st * s_t**2 / s_s**2, rel=1e-12)


def test_ddim_step_is_alpha_D_plus_sigma_eps():
    """DDIM: x_t = alpha_t D + sigma_t eps_hat with eps_hat = (x_s - alpha_s D)/sigma_s
    (docs/algorithms/exponential_integrators.md §2.5)."""
    grid = np.array([0.8, 0.3])
    table = ds.get_solver("ddim").table(VP, grid)
    a_s, a_t, s_s, s_t = VP.alpha(0.8), VP.alpha(0.3), VP.sigma(0.8), VP.sigma(0.3)
    assert table.A[0, 1] == pytest.approx(s_t / s_s, rel=1e-14)
    assert table.B[0, 1, 0] == pytest.approx(a_t - s_t / s_s * a_s, rel=1e-13)


@pytest.mark.parametrize("solver", ["ddim", "ddpm"])
def test_exact_law_matches_monte_carlo(solver):
    """Propagated mean/variance vs 200k sampled paths from an exact start (within 5 standard errors)."""
    tgt = Gaussian([0.5, -1.0, 2.0], [0.05, 0.3, 1.2])
    grid = ds.time_grid(VP, 6, "time")
    n = 200_000
    x0 = tgt.sample(n, seed=11, t=grid[0], schedule=VP)
    x = ds.sample(solver, tgt, VP, grid, x_init=x0, seed=4)
    mean, cov = initial_law(tgt, VP, grid, 0, "data", 0.0)
    s = ds.get_solver(solver)
    mean, cov = propagate(s.table(VP, grid), tgt, VP, s.prediction, mean, cov)
    m, v = mean[:, 0], cov[:, 0, 0]
    assert np.all(np.abs(x.mean(0) - m) < 5 * np.sqrt(v / n))
    assert np.all(np.abs(x.var(0) - v) < 5 * v * np.sqrt(2 / n))


def test_reverse_process_law_eta1_is_forward_path_law():
    """For eta = 1 the reverse process has the forward path law: Cov(x_s, x_t) = (alpha_s/alpha_t) V_t."""
    tgt = Gaussian([1.0], [0.25])
    times = np.array([0.9, 0.5, 0.2])
    const, coef = reverse_process_law(tgt, VP, times, eta=1.0)
    cov = coef[0] @ coef[0].T
    for i in range(3):
        for j in range(i + 1, 3):
            _, vt = tgt.marginal_moments(times[j], VP)
            assert cov[i, j] == pytest.approx(VP.alpha(times[i]) / VP.alpha(times[j]) * vt[0], rel=1e-12)
    # eta = 0: the probability-flow map is deterministic, correlation 1
    _, coef0 = reverse_process_law(tgt, VP, times, eta=0.0)
    c0 = coef0[0] @ coef0[0].T
    assert c0[0, 2] / np.sqrt(c0[0, 0] * c0[2, 2]) == pytest.approx(1.0, rel=1e-12)


def test_callable_model_matches_target():
    tgt = from_spec("gmm:d=2,k=3,seed=4")
    grid = ds.time_grid(VP, 12)
    x_init = ds.sampling.prior_sample(VP, grid[0], 64, 2, seed=1)
    eps_model = lambda x, t: tgt.predict(x, t, VP, "eps")  # noqa: E731
    for solver in ("ddim", "ddpm"):
        a = ds.sample(solver, tgt, VP, grid, x_init=x_init, seed=3)
        b = ds.sample(solver, eps_model, VP, grid, x_init=x_init, seed=3, prediction="eps")
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_same_seed_same_sample_whatever_the_batch_split():
    tgt = from_spec("gmm:d=3,k=4,seed=0")
    grid = ds.time_grid(VP, 10)
    full = ds.sample("ddpm", tgt, VP, grid, n=100, seed=7)
    first = ds.sample("ddpm", tgt, VP, grid, n=40, seed=7)
    second = ds.sample("ddpm", tgt, VP, grid, n=60, seed=7, sample_offset=40)
    np.testing.assert_array_equal(full, np.concatenate([first, second]))
    other = ds.sample("ddpm", tgt, VP, grid, n=100, seed=8)
    assert not np.allclose(full, other)


def test_final_step_to_sigma_zero_is_the_denoiser():
    """A grid ending at sigma = 0 (lam = +inf) ends with x = D(x, t_prev) for ddpm (the reverse SDE's posterior
    mean) and for ddim under final="denoise"; ddim's own step (final="solver") is Euler's step in u = sigma^2
    (edm: alpha = 1), x = (x + D) / 2 (docs/algorithms/exponential_integrators.md §3.8)."""
    s = ds.get_schedule("edm")
    tgt = from_spec("gaussian:d=3")
    grid = np.concatenate([ds.time_grid(s, 8, "karras"), [0.0]])
    x_prev = ds.sample("ddim", tgt, s, grid[:-1], n=50, seed=2)
    denoised = tgt.denoise(x_prev, grid[-2], s)
    for solver, final in (("ddim", "denoise"), ("ddpm", "solver"), ("ddpm", "denoise")):
        x = ds.sample(solver, tgt, s, grid[-2:], x_init=x_prev, seed=2, final=final)
        np.testing.assert_allclose(x, denoised, rtol=1e-13)
    x = ds.sample("ddim", tgt, s, grid[-2:], x_init=x_prev, seed=2)
    np.testing.assert_allclose(x, 0.5 * (x_prev + denoised), rtol=1e-13, atol=1e-15)


def test_flow_schedule_from_pure_noise_data_form():
    """The first step from alpha = 0 (flow at t = 1) is finite in data prediction
    (docs/algorithms/exponential_integrators.md §5.3)."""
    s = ds.get_schedule("flow")
    tgt = from_spec("gaussian:d=2")
    grid = ds.time_grid(s, 30, "time", t_max=1.0)
    n = 100_000
    x = ds.sample("ddim", tgt, s, grid, x_init=np.random.default_rng(0).standard_normal((n, 2)), seed=0)
    mean, cov = initial_law(tgt, s, grid, 0, "data", 0.0)  # q_1 = N(0, I) exactly
    mean, cov = propagate(ds.get_solver("ddim").table(s, grid), tgt, s, "data", mean, cov)
    m, v = mean[:, 0], cov[:, 0, 0]
    assert np.all(np.abs(x.mean(0) - m) < 5 * np.sqrt(v / n)) and np.all(np.abs(x.var(0) - v) < 5 * v * np.sqrt(2 / n))
    assert exact_error("ddim", tgt, s, ds.time_grid(s, 60, "time", t_max=1.0)) < 0.6 * exact_error("ddim", tgt, s, grid)
    with pytest.raises(ds.DiffsolveError, match="singular"):
        ds.sample("ddim", lambda x, t: x, s, grid, x_init=np.ones((2, 2)), prediction="eps")


@pytest.mark.parametrize("schedule", ["vp-linear", "vp-cosine", "edm", "flow", "discrete"])
def test_samples_approach_target_on_every_schedule(schedule):
    s = ds.get_schedule(schedule)
    tgt = from_spec("gaussian:d=4,seed=2")
    grid = ds.time_grid(s, 40)
    err20 = exact_error("ddim", tgt, s, ds.time_grid(s, 20))
    err40 = exact_error("ddim", tgt, s, grid)
    assert err40 < 0.6 * err20  # first order: halving the step halves the error


# Order tests run on lam in [-2.5, 3] (docs/algorithms/exponential_integrators.md §7) on a Karras grid, fitted
# over 64, 128, 256 steps (the asymptotic regime; helpers.ORDER_SETUP).  Over the whole VP range the Gaussian
# denoiser's lam-derivatives vanish at both ends, the leading global error term telescopes, and odd-order
# multistep methods look superconvergent on uniform grids; on uniform lam-grids some noise-prediction methods also
# show a sign change of the error at moderate N.
REGISTRY_ORDER_CASES = ["ddim", "ddpm", "dpmpp-1m", "dpmpp-2m", "dpmpp-3m", "dpmpp-4m", "dpmpp-5m", "dpmpp-2m-sde",
                        "dpmpp-3m-sde", "dpm-solver-1", "dpm-solver-2", "dpm-solver-3", "dpmpp-2s", "dpmpp-3s",
                        "dpm-solver-2m", "dpm-solver-3m", "dpm-solver-1m-sde", "dpm-solver-2m-sde",
                        "dpmpp-2m:published", "dpmpp-3m:published"]


@parametrize_solvers("name", table_solvers(), extra=REGISTRY_ORDER_CASES)
def test_declared_order_through_registry(name):
    """Registry solvers: exact-law W2 on an anisotropic Gaussian, slope within ±0.3 of the declared order
    (exact history start, no lower-order final step)."""
    s = solver(name)
    study = ds.order_study(s, GAUSSIAN_D8, VP, **ORDER_SETUP)
    assert abs(study.order - s.order) <= 0.3, study.table()


@pytest.mark.parametrize("name,order", [(f"dpmpp-{k}m", k) for k in range(1, 6)] + [("dpm-solver-2", 2), ("dpm-solver-3", 3)])
def test_issue_acceptance_orders(name, order):
    """dpmpp-{k}m, k = 1..5, and dpm-solver-2/3 within ±0.3 of their orders in exact W2."""
    study = ds.order_study(name, GAUSSIAN_D8, VP, **ORDER_SETUP)
    assert abs(study.order - order) <= 0.3, study.table()


def test_published_3m_is_second_order_and_exact_3m_third():
    """docs/algorithms/exponential_integrators.md §3.6: the published 3M halves the second-difference term and
    measures 2, the exact weights 3."""
    pub = ds.order_study(ds.get_solver("dpmpp-3m", variant="published"), GAUSSIAN_D8, VP, **ORDER_SETUP)
    exact = ds.order_study("dpmpp-3m", GAUSSIAN_D8, VP, **ORDER_SETUP)
    assert abs(pub.order - 2) < 0.3 and abs(exact.order - 3) < 0.3
    assert exact.errors[-1] < 0.1 * pub.errors[-1]


@pytest.mark.parametrize("name", ["ddim", "ddpm"])
def test_first_order_solvers_measure_one(name):
    """Acceptance: ddim and ddpm measure order 1 ± 0.15 in exact W2 on an anisotropic Gaussian."""
    study = ds.order_study(name, GAUSSIAN_D8, VP, steps=[16, 32, 64, 128])
    assert abs(study.order - 1.0) <= 0.15, study.table()
    assert all(0.8 < p < 1.2 for p in study.local_orders)


def test_order_study_metrics_and_plot(tmp_path):
    tgt = from_spec("gaussian:d=4")
    kl = ds.order_study("ddim", tgt, VP, steps=[16, 32, 64], metric="kl")
    assert abs(kl.order - 2.0) < 0.3  # KL is quadratic in the discretisation error
    tv = ds.order_study("ddim", tgt, VP, steps=[16, 32, 64], metric="tv-bound")
    assert abs(tv.order - 1.0) < 0.3
    path = kl.plot(tmp_path / "order.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "fitted order" in kl.table()


def test_order_condition_of_3s_is_enforced_by_the_registry():
    """3S is third order only for c2 = 2/3 (docs/algorithms/exponential_integrators.md §4.4); other stage
    fractions declare the generic order 2."""
    s = ds.get_solver("dpm-solver-3")
    assert s.order == 3 and s.with_params(c1=0.25).order == 3 and s.with_params(c2=0.6).order == 2
    measured = ds.order_study(s.with_params(c2=0.6), GAUSSIAN_D8, VP, **ORDER_SETUP)
    assert abs(measured.order - 2) <= 0.3, measured.table()


def test_noise_prediction_steps_to_sigma_zero_by_denoising():
    """The noise-prediction formula cannot take a step to sigma = 0 (its coefficients are 0 * inf there): under
    final="denoise" the run is the positive grid, then the denoising step x = alpha(0) D(x, t_{N-1}); under the
    default final="solver" the solver's own last row (the Adams rule in u on its noise predictions) is finite
    and differs from it."""
    s = ds.get_schedule("edm")
    target = from_spec("gaussian:d=2")
    grid = np.concatenate([ds.time_grid(s, 5, "karras"), [0.0]])
    out = ds.sample("dpm-solver-2m", target, s, grid, n=3, final="denoise")
    head = ds.sample("dpm-solver-2m", target, s, grid[:-1], n=3)
    np.testing.assert_allclose(out, target.predict(head, grid[-2], s, "data"), rtol=1e-12, atol=1e-14)
    own = ds.sample("dpm-solver-2m", target, s, grid, n=3)
    assert np.isfinite(own).all() and not np.allclose(own, out)
    assert np.isfinite(ds.sample("dpmpp-3m", target, s, grid, n=3)).all()
