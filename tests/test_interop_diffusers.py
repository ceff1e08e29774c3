"""DiffsolveScheduler (diffsolve.interop.diffusers): a diffusers scheduler backed by diffsolve.

Inside a real DDPMPipeline with a tiny random UNet2DModel (nothing downloaded), step by step against diffusers'
DPMSolverMultistepScheduler and DDIMScheduler on the same grids (float32: 1e-5 relative), save/load, bad input.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

import diffsolve as ds  # noqa: E402
from diffsolve.errors import DiffsolveError  # noqa: E402
from diffsolve.interop.diffusers import DiffsolveScheduler  # noqa: E402

pytestmark = pytest.mark.peer

BETAS = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")


def _unet():
    torch.manual_seed(0)
    return diffusers.UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16),
                                 layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4).eval()


@pytest.fixture(scope="module")
def unet():
    return _unet()


@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16"])
@pytest.mark.parametrize("steps", [10, 25])
@pytest.mark.parametrize("solver", ["dpmpp-2m", "dpmpp-3m", "dpm-solver-3", "seeds-2", "accel-ddim", "ddpm"])
def test_runs_in_ddpm_pipeline(unet, solver, steps, half):
    if half:
        unet = _unet().half()
    sched = DiffsolveScheduler.from_config(diffusers.DDPMScheduler(**BETAS).config, solver=solver)
    pipe = diffusers.DDPMPipeline(unet=unet, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    calls = []
    unet_forward = unet.forward
    unet.forward = lambda x, t, **kw: (calls.append(float(t)), unet_forward(x, t, **kw))[1]
    try:
        out = pipe(batch_size=2, num_inference_steps=steps, generator=torch.Generator().manual_seed(1),
                   output_type="np")
    finally:
        del unet.forward
    img = out.images
    assert img.shape == (2, 8, 8, 3) and np.isfinite(img).all()
    assert len(calls) == len(sched.timesteps) == steps * sched.order
    assert sched.order == ds.get_solver(solver).nfe_per_step
    np.testing.assert_allclose(calls, sched.timesteps.numpy(), rtol=0, atol=1e-3)


def test_stochastic_seed_from_generator(unet):
    """ddpm draws diffsolve's keyed noise with seed = generator.initial_seed(): same seed, same image."""
    def run(seed):
        sched = DiffsolveScheduler(solver="ddpm", **BETAS)
        pipe = diffusers.DDPMPipeline(unet=unet, scheduler=sched)
        pipe.set_progress_bar_config(disable=True)
        return pipe(num_inference_steps=5, generator=torch.Generator().manual_seed(seed), output_type="np").images

    a, b, c = run(7), run(7), run(8)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def _model(unet):
    """eps(x, t): the tiny UNet (a fixed function of (x, t))."""
    def f(x, t):
        with torch.no_grad():
            return unet(x, t).sample
    return f


def _compare(ours, theirs, model, steps, x_init, own_grid=False):
    """Run both schedulers on their own states with the same model; the relative error after each step.  Ours
    takes their timesteps, or with ``own_grid`` builds its grid from ``steps`` itself (the timesteps must agree)."""
    theirs.set_timesteps(steps)
    if own_grid:
        ours.set_timesteps(steps)
        np.testing.assert_allclose(ours.timesteps.double().numpy(), theirs.timesteps.double().numpy(), rtol=1e-6)
    else:
        ours.set_timesteps(timesteps=theirs.timesteps)
        assert torch.equal(ours.timesteps, theirs.timesteps)
    xa, xb, errs = x_init.clone(), x_init.clone(), []
    for t in theirs.timesteps:
        xa = ours.step(model(xa, t), t, xa).prev_sample
        xb = theirs.step(model(xb, t), t, xb).prev_sample
        errs.append(float((xa - xb).abs().max() / xb.abs().max()))
    return np.array(errs)


def test_dpmpp_2m_matches_dpm_solver_multistep(unet):
    theirs = diffusers.DPMSolverMultistepScheduler(**BETAS, solver_order=2, algorithm_type="dpmsolver++",
                                                   lower_order_final=False, final_sigmas_type="sigma_min")
    ours = DiffsolveScheduler(solver="dpmpp-2m", variant="published", **BETAS)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    errs = _compare(ours, theirs, _model(unet), 10, x)
    assert errs.max() < 1e-5, errs


def test_ddim_matches_ddim_scheduler(unet):
    theirs = diffusers.DDIMScheduler(**BETAS, timestep_spacing="trailing", set_alpha_to_one=False, clip_sample=False)
    ours = DiffsolveScheduler(solver="ddim", **BETAS)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    errs = _compare(ours, theirs, _model(unet), 10, x)
    assert errs.max() < 1e-5, errs


def test_ddpm_matches_ddpm_scheduler_with_the_same_noise(unet, monkeypatch):
    """ddpm (the eta = 1 reverse SDE, first order) is DDPM's ancestral step with the posterior variance: with
    diffusers' noise replaced by diffsolve's keyed normals of each step, the two agree step by step.  The last step
    differs by construction (diffusers steps to alpha = 1; diffsolve's discrete schedule ends at timestep 0)."""
    from diffusers.schedulers import scheduling_ddpm

    from diffsolve.noise import standard_normal

    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    step = [0]

    def keyed(shape, generator=None, device=None, dtype=None):  # diffsolve's draw of the current step
        step[0] += 1
        z = standard_normal(5, np.arange(shape[0]), step[0], 0, int(np.prod(shape[1:])))
        return torch.from_numpy(z.reshape(shape)).to(dtype)

    monkeypatch.setattr(scheduling_ddpm, "randn_tensor", keyed)
    theirs = diffusers.DDPMScheduler(**BETAS, timestep_spacing="trailing", clip_sample=False)
    ours = DiffsolveScheduler(solver="ddpm", seed=5, **BETAS)
    errs = _compare(ours, theirs, _model(unet), 10, x)
    assert errs[:-1].max() < 1e-5, errs


@pytest.mark.parametrize("grid,peer", [("linspace", "DPMSolverMultistepScheduler"), ("trailing", "DDIMScheduler")])
def test_diffusers_spacings(grid, peer):
    """grid="linspace" / "trailing" give diffusers' timesteps (DDIM's linspace also calls the model at timestep 0,
    where our grid ends, so linspace is checked against DPM-Solver's)."""
    sched = DiffsolveScheduler(solver="ddim", grid=grid, **BETAS)
    sched.set_timesteps(10)
    ref = getattr(diffusers, peer)(**BETAS, timestep_spacing=grid)
    ref.set_timesteps(10)
    assert torch.equal(sched.timesteps, ref.timesteps)


def test_add_noise_matches_ddpm():
    ours, theirs = DiffsolveScheduler(**BETAS), diffusers.DDPMScheduler(**BETAS)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g)
    ts = torch.tensor([0, 500, 999])
    torch.testing.assert_close(ours.add_noise(x0, noise, ts), theirs.add_noise(x0, noise, ts), rtol=1e-6, atol=1e-6)
    assert ours.scale_model_input(x0, ts[0]) is x0 and ours.init_noise_sigma == 1.0


def test_save_load_round_trip(tmp_path):
    sched = DiffsolveScheduler(solver="dpm-solver-3", grid="karras", seed=5, prediction_type="v_prediction",
                               solver_params={"c1": 0.4, "c2": 0.7},
                               beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    sched.save_pretrained(tmp_path)
    back = DiffsolveScheduler.from_pretrained(tmp_path)
    public = lambda c: {k: v for k, v in c.items() if not k.startswith("_")}  # noqa: E731
    assert public(back.config) == public(sched.config) and back.config.solver == "dpm-solver-3"
    sched.set_timesteps(6)
    back.set_timesteps(6)
    assert torch.equal(sched.timesteps, back.timesteps) and back.order == 3


def test_bad_input():
    with pytest.raises(DiffsolveError):
        DiffsolveScheduler(solver="no-such-solver")
    with pytest.raises(DiffsolveError):
        DiffsolveScheduler(prediction_type="flow")
    with pytest.raises(DiffsolveError):
        DiffsolveScheduler(solver="mala")
    with pytest.raises(DiffsolveError, match="bogus"):
        DiffsolveScheduler(solver="ddim", solver_params={"bogus": 1})
    sched = DiffsolveScheduler(solver="dpmpp-2m", **BETAS)
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(DiffsolveError):
        sched.step(x, 999, x)  # before set_timesteps
    sched.set_timesteps(4)
    with pytest.raises(DiffsolveError, match="timestep"):
        sched.step(x, int(sched.timesteps[1]), x)
    out = sched.step(x, sched.timesteps[0], x).prev_sample
    with pytest.raises(DiffsolveError, match="prev_sample"):
        sched.step(x, sched.timesteps[1], out + 1)
    with pytest.raises(DiffsolveError):
        sched.set_timesteps(timesteps=[500, 0])


def test_set_timesteps_from_sigmas():
    """sigmas (sigma_t / alpha_t, noisiest first) become the grid's nodes; a final 0 or a level outside the schedule
    is refused."""
    ours = DiffsolveScheduler(solver="dpmpp-2m", **BETAS)
    ref = diffusers.DDPMScheduler(**BETAS)
    abar = ref.alphas_cumprod.double().numpy()
    levels = np.sqrt((1 - abar) / abar)[[999, 700, 400, 100, 0]]
    ours.set_timesteps(sigmas=levels)
    assert ours.num_inference_steps == 4
    np.testing.assert_allclose(ours.timesteps.numpy(), [999, 700, 400, 100], atol=1e-3)
    for bad in ([1e9, 1.0], [1.0], [levels[0], 0.0, 0.0], [levels[0], -1.0]):
        with pytest.raises(DiffsolveError, match="sigmas"):
            ours.set_timesteps(sigmas=bad)
    ours.set_timesteps(sigmas=np.append(levels, 0.0))  # a final 0: the last step ends at the clean state
    assert ours.num_inference_steps == 5 and ours._grid_times[-1] == 0.0 and float(ours.sigmas[-1]) == 0.0
    with pytest.raises(DiffsolveError, match="exactly one"):
        ours.set_timesteps(10, sigmas=levels)


@pytest.mark.parametrize("steps", [10, 25])
def test_dpmpp_2m_matches_dpm_solver_multistep_defaults_to_sigma_zero(unet, steps):
    """final_sigmas_type="zero": the grid ends at sigma = 0 with a first-order last step, which is diffusers'
    DPM-Solver++(2M) with its defaults (final_sigmas_type="zero", lower_order_final=True)."""
    theirs = diffusers.DPMSolverMultistepScheduler(**BETAS, solver_order=2)
    ours = DiffsolveScheduler(solver="dpmpp-2m", variant="published", grid="linspace", final_sigmas_type="zero",
                              **BETAS)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    errs = _compare(ours, theirs, _model(unet), steps, x, own_grid=True)
    assert errs.max() < 1e-5, errs
    assert ours._grid_times[-1] == 0.0


def test_ddim_matches_ddim_scheduler_defaults(unet):
    """DDIMScheduler's defaults (leading spacing with its last call at timestep 0, set_alpha_to_one=True: the last
    step to alpha-bar = 1) are grid="leading", final_sigmas_type="zero"."""
    theirs = diffusers.DDIMScheduler(**BETAS, clip_sample=False)
    ours = DiffsolveScheduler(solver="ddim", grid="leading", final_sigmas_type="zero", **BETAS)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    errs = _compare(ours, theirs, _model(unet), 10, x, own_grid=True)
    assert errs.max() < 1e-5, errs
    with pytest.raises(DiffsolveError, match="final_sigmas_type='zero'"):  # leading's last call is the grid's end
        DiffsolveScheduler(solver="ddim", grid="leading", **BETAS).set_timesteps(10)


def test_ddpm_matches_ddpm_scheduler_defaults_with_the_same_noise(unet, monkeypatch):
    """DDPMScheduler's defaults (leading spacing, the last step to alpha-bar = 1 without noise) are grid="leading",
    final_sigmas_type="zero": with diffusers' noise replaced by the keyed normals, every step agrees."""
    from diffusers.schedulers import scheduling_ddpm

    from diffsolve.noise import standard_normal

    step = [0]

    def keyed(shape, generator=None, device=None, dtype=None):
        step[0] += 1
        z = standard_normal(3, np.arange(shape[0]), step[0], 0, int(np.prod(shape[1:])))
        return torch.from_numpy(z.reshape(shape)).to(dtype)

    monkeypatch.setattr(scheduling_ddpm, "randn_tensor", keyed)
    theirs = diffusers.DDPMScheduler(**BETAS, clip_sample=False)
    ours = DiffsolveScheduler(solver="ddpm", seed=3, grid="leading", final_sigmas_type="zero", **BETAS)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    errs = _compare(ours, theirs, _model(unet), 10, x, own_grid=True)
    assert errs.max() < 1e-5, errs


FLOW = dict(num_train_timesteps=1000, shift=3.0)


@pytest.mark.parametrize("steps", [8, 20])
def test_flow_matching_config_matches_flow_match_euler(unet, steps):
    """A FlowMatchEulerDiscreteScheduler config (shift 3) with prediction_type="flow_prediction" (v = eps - x0):
    ddim on the flow schedule is Euler in sigma, diffusers' FlowMatchEulerDiscrete step, on its own grid (linspace,
    ending at sigma = 0)."""
    theirs = diffusers.FlowMatchEulerDiscreteScheduler(**FLOW)
    ours = DiffsolveScheduler.from_config(theirs.config, solver="ddim", grid="linspace",
                                          prediction_type="flow_prediction")
    assert ours._flow and ours.schedule.timestep_map.kind == "sigma"
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    errs = _compare(ours, theirs, _model(unet), steps, x, own_grid=True)
    assert errs.max() < 1e-5, errs
    torch.testing.assert_close(ours.sigmas, theirs.sigmas, rtol=1e-6, atol=1e-7)


def test_flow_matching_higher_order_and_sigmas(unet):
    """dpmpp-2m on a flow config runs the same grid at second order; set_timesteps(sigmas=) takes FlowMatch's
    (unshifted) sigmas, one per step; scale_noise is FlowMatch's x = (1 - sigma) x0 + sigma noise."""
    ref = diffusers.FlowMatchEulerDiscreteScheduler(**FLOW)
    ours = DiffsolveScheduler.from_config(ref.config, solver="dpmpp-2m", grid="linspace",
                                          prediction_type="flow_prediction")
    sig = np.linspace(1.0, 1 / 12, 12)
    ours.set_timesteps(sigmas=sig)
    ref.set_timesteps(sigmas=sig)
    np.testing.assert_allclose(ours.timesteps.numpy(), ref.timesteps.numpy(), rtol=1e-6)
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    model = _model(unet)
    for t in ours.timesteps:
        x = ours.step(model(x, t), t, x).prev_sample
    assert torch.isfinite(x).all()
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    ts = ref.timesteps[[3, 7]]
    want = (1 - ref.sigmas[[3, 7]]).reshape(-1, 1, 1, 1) * x0 + ref.sigmas[[3, 7]].reshape(-1, 1, 1, 1) * noise
    torch.testing.assert_close(ours.scale_noise(x0, ts, noise), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(DiffsolveError, match="linspace"):
        DiffsolveScheduler.from_config(ref.config, grid="trailing")
    with pytest.raises(DiffsolveError, match="use_dynamic_shifting"):
        DiffsolveScheduler(use_dynamic_shifting=True)


def test_zero_snr_config():
    """rescale_betas_zero_snr=True: the terminal alpha-bar is 2**-24 (as diffusers' DPM-Solver substitutes)."""
    sd = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    ours = DiffsolveScheduler(**sd, rescale_betas_zero_snr=True, prediction_type="v_prediction")
    theirs = diffusers.DPMSolverMultistepScheduler(**sd, rescale_betas_zero_snr=True)
    assert float(ours.schedule.alpha(1.0)) ** 2 == pytest.approx(2.0**-24, rel=1e-6)
    np.testing.assert_allclose(float(ours.schedule.alpha(0.5)) ** 2, float(theirs.alphas_cumprod[499]), rtol=1e-6)


@pytest.mark.parametrize("solver,variant,peer", [
    ("dpmpp-2m", "published", dict(solver_order=2)),
    ("ddim", None, dict(solver_order=1)),
])
def test_set_begin_index_matches_dpm_solver(unet, solver, variant, peer):
    """img2img: set_begin_index(t_start * order) after add_noise at timesteps[t_start]; the solver starts afresh
    there (first-order warm-up), as DPMSolverMultistepScheduler does."""
    theirs = diffusers.DPMSolverMultistepScheduler(**BETAS, **peer)
    ours = DiffsolveScheduler(solver=solver, variant=variant, grid="linspace", final_sigmas_type="zero", **BETAS)
    theirs.set_timesteps(12)
    ours.set_timesteps(12)
    start = 5
    ours.set_begin_index(start * ours.order)
    theirs.set_begin_index(start * theirs.order)
    g = torch.Generator().manual_seed(6)
    x0, noise = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    t0 = theirs.timesteps[start:start + 1].repeat(2)
    xa, xb = ours.add_noise(x0, noise, t0), theirs.add_noise(x0, noise, t0)
    torch.testing.assert_close(xa, xb, rtol=1e-6, atol=1e-6)
    model, errs = _model(unet), []
    for t in theirs.timesteps[start:]:
        xa = ours.step(model(xa, t), t, xa).prev_sample
        xb = theirs.step(model(xb, t), t, xb).prev_sample
        errs.append(float((xa - xb).abs().max() / xb.abs().max()))
    assert max(errs) < 1e-5, errs
    for bad in (-1, 12, 3.0):
        with pytest.raises(DiffsolveError, match="begin_index"):
            ours.set_begin_index(bad)


def test_runs_in_ddim_pipeline(unet):
    """DDIMPipeline passes eta= and use_clipped_model_output= to step: eta must be the solver's."""
    pipe = diffusers.DDIMPipeline(unet=unet, scheduler=diffusers.DDIMScheduler(**BETAS))
    pipe.scheduler = DiffsolveScheduler(solver="dpmpp-2m", **BETAS)  # the constructor would convert it to DDIM
    pipe.set_progress_bar_config(disable=True)
    images = pipe(num_inference_steps=6, eta=0.0, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (1, 8, 8, 3) and np.isfinite(images).all()
    with pytest.raises(DiffsolveError, match="eta"):
        pipe(num_inference_steps=6, eta=0.5, generator=torch.Generator().manual_seed(0))
    pipe.scheduler = DiffsolveScheduler(solver="ddpm", **BETAS)
    assert np.isfinite(pipe(num_inference_steps=6, eta=1.0, output_type="np").images).all()
