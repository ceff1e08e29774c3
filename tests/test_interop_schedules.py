"""Schedules from diffusers scheduler configs: float32 tables, the timestep map, grids and sampling, bad configs."""

import math

import numpy as np
import pytest

import diffsolve as ds
from diffsolve.errors import DiffsolveError, DiffsolveTypeError
from diffsolve.schedules import DiscreteSchedule, TimestepMap, diffusers_alphas_cumprod
from diffsolve.targets import from_spec

NUMPY_REPRS = ("np.float64(", "np.int64(", "array(", "dtype=")
SD = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
TABLES = {
    "linear": {},
    "scaled_linear": SD,
    "squaredcos_cap_v2": {"beta_schedule": "squaredcos_cap_v2"},
}


def _message(fn, *fragments, kind=DiffsolveError):
    with pytest.raises(kind) as info:
        fn()
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in: {text}"
    assert not any(r in text for r in NUMPY_REPRS), text
    assert len(text) < 700, text
    return text


def _scheduler_classes(diffusers):
    return [diffusers.DDPMScheduler, diffusers.DDIMScheduler, diffusers.DPMSolverMultistepScheduler]


def _alphas_cumprod_at_timesteps(schedule, n):
    return schedule.alpha(schedule.time_of_timestep(np.arange(n))) ** 2


# -- float32 tables --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1000, 7])
@pytest.mark.parametrize("table", sorted(TABLES))
def test_tables_equal_diffusers_at_every_timestep(table, n):
    diffusers = pytest.importorskip("diffusers")
    for cls in _scheduler_classes(diffusers):
        scheduler = cls(num_train_timesteps=n, **TABLES[table])
        ref = scheduler.alphas_cumprod.numpy()
        for source in (scheduler, scheduler.config, dict(scheduler.config)):
            s = ds.Schedule.from_diffusers(source)
            assert isinstance(s, DiscreteSchedule) and s.params == {"N": n}
            got = _alphas_cumprod_at_timesteps(s, n)
            assert np.array_equal(got.astype(np.float32), ref), (cls.__name__, table)  # float32 rounding
            np.testing.assert_allclose(got, ref.astype(np.float64), rtol=4e-15, atol=0)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_zero_terminal_snr_tables(table):
    diffusers = pytest.importorskip("diffusers")
    ddim = diffusers.DDIMScheduler(rescale_betas_zero_snr=True, **TABLES[table])
    ref = ddim.alphas_cumprod.numpy()
    assert ref[-1] == 0
    _message(lambda: ds.Schedule.from_diffusers(ddim), "rescale_betas_zero_snr", "alphas_cumprod[999] = 0",
             "terminal_alpha_cumprod=2**-24")
    floor = float(np.float32(ref[-2] / 16))
    s = ds.Schedule.from_diffusers(ddim, terminal_alpha_cumprod=floor)
    got = _alphas_cumprod_at_timesteps(s, 1000)
    assert np.array_equal(got[:-1].astype(np.float32), ref[:-1]) and got[-1] == pytest.approx(floor, rel=1e-14)
    assert np.all(np.diff(s.lam(s.time_of_timestep(np.arange(1000)))) < 0)
    # Euler substitutes 2**-24 itself: equal at every timestep where its table stays monotone
    euler = diffusers.EulerDiscreteScheduler(rescale_betas_zero_snr=True, **TABLES[table])
    if euler.alphas_cumprod[-2] > 2**-24:
        s = ds.Schedule.from_diffusers(euler)
        assert np.array_equal(_alphas_cumprod_at_timesteps(s, 1000).astype(np.float32), euler.alphas_cumprod.numpy())
    else:
        _message(lambda: ds.Schedule.from_diffusers(euler), "EulerDiscreteScheduler replaces", "2**-24",
                 "alphas_cumprod[998]", "terminal_alpha_cumprod")


def test_trained_betas():
    diffusers = pytest.importorskip("diffusers")
    betas = np.linspace(0.0002, 0.03, 500) ** 1.1
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=500, trained_betas=betas.tolist())
    s = ds.Schedule.from_diffusers(scheduler.config)
    assert np.array_equal(_alphas_cumprod_at_timesteps(s, 500).astype(np.float32), scheduler.alphas_cumprod.numpy())
    # trained_betas take precedence over beta_schedule, as in diffusers
    s2 = ds.Schedule.from_diffusers({"num_train_timesteps": 500, "trained_betas": betas, "beta_schedule": "nope"})
    np.testing.assert_array_equal(s2.log_alpha_nodes, s.log_alpha_nodes)


@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("table", sorted(TABLES))
@pytest.mark.parametrize("n", [2, 7, 1000, 1001])
def test_numpy_tables_match_torch(table, n, rescale):
    """The NumPy float32 path equals torch's bit for bit; the zero-SNR rescale takes a square root, which torch's
    CPU kernel (MKL) does not round correctly: there they agree to a few float32 ulps (docs/interop/schedules.md)."""
    pytest.importorskip("torch")
    kw = {"beta_schedule": table, "beta_start": TABLES[table].get("beta_start", 1e-4),
          "beta_end": TABLES[table].get("beta_end", 0.02), "rescale_betas_zero_snr": rescale}
    a = diffusers_alphas_cumprod(n, backend="torch", **kw)
    b = diffusers_alphas_cumprod(n, backend="numpy", **kw)
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == (n,)
    if not rescale:
        assert np.array_equal(a, b)
    else:
        assert a[-1] == b[-1] == 0
        np.testing.assert_allclose(b[:-1], a[:-1], rtol=2e-5 if n > 7 else 3e-5, atol=0)


def test_table_builder_bad_arguments():
    _message(lambda: diffusers_alphas_cumprod(1), "n must be an integer", "[2, 1000000]")
    _message(lambda: diffusers_alphas_cumprod(10, "cosine"), "beta_schedule must be one of", "'cosine'")
    _message(lambda: diffusers_alphas_cumprod(10, backend="jax"), "backend must be", "'jax'")


def test_numpy_trained_betas_match_torch():
    pytest.importorskip("torch")
    betas = np.geomspace(1e-4, 0.05, 300)
    a = diffusers_alphas_cumprod(300, trained_betas=betas, backend="torch")
    assert np.array_equal(a, diffusers_alphas_cumprod(300, trained_betas=betas, backend="numpy"))


# -- flow matching ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shift", [1.0, 3.0, 0.5])
def test_flow_match_config(shift):
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    s = ds.Schedule.from_diffusers(scheduler)
    t = np.arange(1000, 0, -1) / 1000  # the unshifted training times
    np.testing.assert_allclose(s.sigma(t), scheduler.sigmas.numpy(), rtol=2e-7)
    np.testing.assert_allclose(s.alpha(t) + s.sigma(t), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(s.timestep_of(t), scheduler.timesteps.numpy(), rtol=2e-7)
    np.testing.assert_allclose(s.time_of_timestep(scheduler.timesteps.numpy()), t, rtol=1e-6)  # float32 input
    np.testing.assert_allclose(s.time_of_timestep(s.timestep_of(t)), t, rtol=1e-14)
    np.testing.assert_allclose(s.sigma(t), shift * t / (1 + (shift - 1) * t), rtol=1e-14)
    if shift == 1.0:
        assert s.name == "flow"
    assert "shift" not in s.config_ignored and "stochastic_sampling" in s.config_ignored


def test_dpmsolver_flow_sigmas_config():
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DPMSolverMultistepScheduler(use_flow_sigmas=True, flow_shift=3.0,
                                                      prediction_type="flow_prediction")
    s = ds.Schedule.from_diffusers(scheduler)
    assert s.timestep_map.kind == "sigma" and s.timestep_map.shift == 3.0
    assert s.sigma(0.5) == pytest.approx(1.5 / 2.0, rel=1e-14)


def test_flow_refusals():
    diffusers = pytest.importorskip("diffusers")
    _message(lambda: ds.Schedule.from_diffusers(diffusers.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True)),
             "use_dynamic_shifting", "shift=exp(mu)")
    _message(lambda: ds.Schedule.from_diffusers(diffusers.FlowMatchEulerDiscreteScheduler(invert_sigmas=True)),
             "invert_sigmas")
    _message(lambda: ds.Schedule.from_diffusers({"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": -1.0}),
             "config['shift']", "-1.0")


# -- timestep map ----------------------------------------------------------------------------------------------
def test_index_timestep_round_trip():
    s = ds.Schedule.from_diffusers({"num_train_timesteps": 1000})
    k = np.arange(1000)
    t = s.time_of_timestep(k)
    np.testing.assert_allclose(t, (k + 1) / 1000, rtol=0, atol=0)
    np.testing.assert_allclose(s.timestep_of(t), k, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.rint(s.timestep_of(t)).astype(int), k)
    tt = np.linspace(1e-3, 1.0, 777)
    np.testing.assert_allclose(s.time_of_timestep(s.timestep_of(tt)), tt, rtol=1e-15, atol=0)
    assert s.timestep_convention == "timestep k = 1000 t - 1 (t = (k + 1)/1000, k = 0..999)"
    # the same convention on any discrete schedule
    d = ds.get_schedule("discrete")
    assert d.timestep_of(1.0) == 999 and d.time_of_timestep(0) == 1e-3
    _message(lambda: s.time_of_timestep(1000), "timestep = 1000", "[0, 999]")
    _message(lambda: s.time_of_timestep(-1), "timestep = -1")
    _message(lambda: ds.get_schedule("vp-linear").timestep_of(0.5), "has no model timestep convention")


def test_log_sigma_timestep_map():
    diffusers = pytest.importorskip("diffusers")
    euler = diffusers.EulerDiscreteScheduler(timestep_type="continuous", prediction_type="v_prediction", **SD)
    s = ds.Schedule.from_diffusers(euler)
    assert s.timestep_map.kind == "log-sigma"
    t = np.arange(1, 1001) / 1000
    sigmas = np.sqrt((1 - euler.alphas_cumprod.numpy().astype(np.float64)) / euler.alphas_cumprod.numpy())
    np.testing.assert_allclose(s.timestep_of(t), 0.25 * np.log(sigmas), rtol=1e-6)
    np.testing.assert_allclose(s.time_of_timestep(s.timestep_of(t)), t, rtol=1e-12)
    _message(lambda: s.time_of_timestep(-5.0), "timestep = -5.0", "outside")
    assert TimestepMap("index", 10).describe().startswith("timestep k = 10 t - 1")


# -- grids and sampling ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["scaled_linear", "squaredcos_cap_v2", "flow-shift-3"])
def test_grids_and_sampling_end_to_end(config):
    diffusers = pytest.importorskip("diffusers")
    if config == "flow-shift-3":
        scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    else:
        scheduler = diffusers.DPMSolverMultistepScheduler(**TABLES[config])
    s = ds.Schedule.from_diffusers(scheduler.config)
    target = from_spec("gmm:d=2,k=3,seed=1,scale=1.0,var=0.05")
    ref = target.sample(4000, seed=2)
    for spacing in ("logsnr", "time"):
        grid = ds.time_grid(s, 40, spacing)
        assert grid[0] == s.t_max and np.all(np.diff(grid) < 0)
        k = s.timestep_of(grid)
        assert np.all(np.isfinite(k))
        x = ds.sample("ddim", target, s, grid, n=4000, seed=3)
        assert x.shape == (4000, 2) and np.all(np.isfinite(x))
        np.testing.assert_allclose(x.mean(axis=0), ref.mean(axis=0), atol=0.08)
        np.testing.assert_allclose(x.std(axis=0), ref.std(axis=0), rtol=0.1)


# -- Schedule.discrete and bad configs -------------------------------------------------------------------------
def test_discrete_from_betas_or_alphas_cumprod():
    betas = np.linspace(1e-4, 0.02, 1000)
    a = ds.Schedule.discrete(betas=betas)
    b = ds.Schedule.discrete(alphas_cumprod=np.cumprod(1 - betas))
    c = ds.get_schedule("discrete", betas=betas)
    d = ds.get_schedule("discrete", alphas_cumprod=np.cumprod(1 - betas))
    t = np.linspace(1e-3, 1, 500)
    for s in (b, c, d):
        np.testing.assert_allclose(s.log_alpha(t), a.log_alpha(t), rtol=1e-12)
    np.testing.assert_allclose(b.betas, betas, rtol=1e-9)
    _message(lambda: ds.Schedule.discrete(), "exactly one of betas=... or alphas_cumprod=...", "neither",
             kind=DiffsolveTypeError)
    _message(lambda: ds.Schedule.discrete(betas=betas, alphas_cumprod=betas), "both", kind=DiffsolveTypeError)
    _message(lambda: ds.get_schedule("discrete", betas=betas, n=10), "together with n")


def test_messages_never_print_whole_arrays():
    betas = np.linspace(1e-4, 0.02, 1000)
    text = _message(lambda: ds.get_schedule("discrete", betaz=betas), "bad parameters", "shape (1000,)", "float64")
    assert "0.0001" not in text
    bad = betas.copy()
    bad[[10, 20]] = 1.5
    _message(lambda: ds.get_schedule("discrete", betas=bad), "betas[10] = 1.5", "2 outside")
    _message(lambda: ds.Schedule.discrete(alphas_cumprod=[0.9, 0.95, 0.5]), "alphas_cumprod[1] = 0.95",
             "decrease strictly")
    _message(lambda: ds.Schedule.discrete(alphas_cumprod=[0.9, 0.5, 0.0]), "alphas_cumprod[2] = 0.0",
             "zero terminal SNR")
    _message(lambda: ds.Schedule.discrete(alphas_cumprod=np.ones((3, 4)) * 0.5), "1-D", "shape (3, 4)")


@pytest.mark.parametrize("config, fragments", [
    ({"beta_schedule": "cosine"}, ["config['beta_schedule'] = 'cosine'", "linear, scaled_linear"]),
    ({"beta_schedule": "sigmoid"}, ["config['beta_schedule'] = 'sigmoid'"]),
    ({"beta_schedule": "trained_betas"}, ["needs config['trained_betas']"]),
    ({"beta_schedule": 3}, ["config['beta_schedule'] must be a string"]),
    ({"num_train_timesteps": 1.5}, ["config['num_train_timesteps']", "1.5"]),
    ({"num_train_timesteps": 1}, ["config['num_train_timesteps']", "[2, 1000000]"]),
    ({"beta_start": "0.1"}, ["config['beta_start']", "'0.1'"]),
    ({"beta_end": 1.5}, ["config['beta_end']", "1.5"]),
    ({"beta_start": math.nan}, ["config['beta_start']", "nan"]),
    ({"rescale_betas_zero_snr": "yes"}, ["config['rescale_betas_zero_snr'] must be True or False"]),
    ({"num_train_timesteps": 10, "trained_betas": [0.1] * 9}, ["config['trained_betas'] must be 10 betas", "(9,)"]),
    ({"num_train_timesteps": 10, "trained_betas": [0.1] * 9 + [1.0]}, ["trained_betas[9] = 1.0"]),
    ({"num_train_timesteps": 10, "trained_betas": "abc"}, ["config['trained_betas']"]),
    ({"_class_name": "EDMEulerScheduler", "sigma_min": 0.002}, ["EDMEulerScheduler", "get_schedule('edm'"]),
    ({"_class_name": 5}, ["config['_class_name'] must be a string"]),
    ({"beta_start": 0.02, "beta_end": 0.0001 + 0.02}, []),  # valid: a narrow table builds
])
def test_bad_configs(config, fragments):
    if not fragments:
        assert isinstance(ds.Schedule.from_diffusers(config), DiscreteSchedule)
        return
    _message(lambda: ds.Schedule.from_diffusers(config), *fragments)


def test_config_must_be_a_mapping_or_scheduler():
    _message(lambda: ds.Schedule.from_diffusers([1, 2]), "config must be a diffusers scheduler config",
             kind=DiffsolveTypeError)
    _message(lambda: ds.Schedule.from_diffusers(None), "NoneType", kind=DiffsolveTypeError)


def test_ignored_keys_are_listed():
    diffusers = pytest.importorskip("diffusers")
    s = ds.Schedule.from_diffusers(diffusers.DDIMScheduler(timestep_spacing="trailing", prediction_type="v_prediction"))
    for key in ("timestep_spacing", "prediction_type", "steps_offset", "set_alpha_to_one", "clip_sample"):
        assert key in s.config_ignored
    for key in ("beta_start", "beta_end", "beta_schedule", "num_train_timesteps", "rescale_betas_zero_snr"):
        assert key not in s.config_ignored


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside diffusers' set_timesteps
def test_page_example_and_scheduler_timesteps_as_grid():
    """docs/interop/schedules.md: a network called with diffusers' timesteps; a grid from scheduler.timesteps."""
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DPMSolverMultistepScheduler(**SD)
    target = from_spec("gmm:d=2,k=3,seed=1,scale=1.0,var=0.05")
    schedule = ds.Schedule.from_diffusers(scheduler.config)
    seen = []

    def eps_net(x, timestep):
        seen.append(float(np.asarray(timestep)))
        return target.predict(x, schedule.time_of_timestep(timestep), schedule, "eps")

    noise = np.random.default_rng(0).standard_normal((64, 2))
    grid = ds.time_grid(schedule, 25, "logsnr")
    x = ds.sample("dpmpp-2m", lambda x, t: eps_net(x, schedule.timestep_of(t)), schedule, grid,
                  x_init=noise * schedule.sigma(grid[0]), prediction="eps")
    y = ds.sample("dpmpp-2m", target, schedule, grid, x_init=noise * schedule.sigma(grid[0]))
    assert seen[0] == pytest.approx(999.0, abs=1e-9) and min(seen) >= 0
    np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9)
    scheduler.set_timesteps(20)
    explicit = ds.time_grid(schedule, None, schedule.time_of_timestep(scheduler.timesteps.numpy()))
    np.testing.assert_allclose(explicit, (scheduler.timesteps.numpy() + 1) / 1000, rtol=0, atol=0)
    assert np.all(np.isfinite(ds.sample("ddim", target, schedule, explicit, n=16)))
