"""Torch CUDA tensors through the cuda backend on a real GPU (skipped without one; the GPU suite runs this file):
the Stepper, ``ds.sample`` and ``DiffsolveScheduler`` keep tensors on the device (zero-copy views through
``__cuda_array_interface__``) and agree with the NumPy oracle to float32 rounding."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device (torch.cuda.is_available() is False)", allow_module_level=True)

import diffsolve as ds  # noqa: E402

SCH = ds.get_schedule("vp-linear")
GRID = ds.time_grid(SCH, 12, "logsnr")
TARGET = ds.targets.GaussianMixture([0.4, 0.6], [[-1.0, 0.5], [1.5, -0.5]], [0.2, 0.3])


def _eps_torch(x, t):
    """The target's exact eps prediction, computed on the host (the test's model: any callable of (x, t))."""
    out = TARGET.predict(x.double().cpu().numpy(), float(t), SCH, "eps")
    return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)


@pytest.mark.parametrize("solver", ["dpmpp-3m", "dpmpp-2m-sde", "seeds-2"])
def test_stepper_on_cuda_tensors(solver):
    x_init = torch.from_numpy(ds.sampling.prior_sample(SCH, GRID[0], 256, 2)).float().cuda()
    st = ds.Stepper(solver, SCH, GRID, x_init=x_init, prediction="eps", backend="cuda", seed=1)
    assert st.x_model.is_cuda and st.x_model.dtype == torch.float32
    while not st.done:
        st.step(_eps_torch(st.x_model, st.t_model))
    assert st.x.is_cuda
    ref = ds.Stepper(solver, SCH, GRID, x_init=x_init.cpu().double().numpy(), prediction="eps", backend="numpy",
                     seed=1)
    while not ref.done:
        ref.step(TARGET.predict(ref.x_model, ref.t_model, SCH, "eps"))
    np.testing.assert_allclose(st.x.double().cpu().numpy(), ref.x, rtol=1e-4, atol=1e-4)


def test_sample_with_a_torch_model_on_cuda():
    x_init = torch.from_numpy(ds.sampling.prior_sample(SCH, GRID[0], 512, 2)).float().cuda()
    seen = []

    def model(x, t):
        seen.append((x.is_cuda, x.dtype))
        return _eps_torch(x, t)

    out = ds.sample("dpmpp-2m", model, SCH, GRID, x_init=x_init, prediction="eps", backend="cuda")
    assert out.is_cuda and out.dtype == torch.float32 and all(c and d == torch.float32 for c, d in seen)
    ref = ds.sample("dpmpp-2m", TARGET, SCH, GRID, x_init=x_init.cpu().double().numpy())
    np.testing.assert_allclose(out.double().cpu().numpy(), ref, rtol=1e-4, atol=1e-4)


def test_diffusers_scheduler_on_cuda():
    diffusers = pytest.importorskip("diffusers")
    from diffsolve.interop.diffusers import DiffsolveScheduler

    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16),
                                 layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4).eval()
    images = {}
    for device in ("cpu", "cuda"):
        pipe = diffusers.DDPMPipeline(unet=unet.to(device), scheduler=DiffsolveScheduler(solver="dpmpp-2m"))
        pipe.set_progress_bar_config(disable=True)
        images[device] = pipe(num_inference_steps=10, generator=torch.Generator().manual_seed(0),
                              output_type="np").images
    assert pipe.scheduler.config.backend is None and np.isfinite(images["cuda"]).all()
    np.testing.assert_allclose(images["cuda"], images["cpu"], atol=1e-3)
