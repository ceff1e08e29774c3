"""diffsolve.interop.kdiffusion: k-diffusion's calling conventions, exact laws, and agreement with k-diffusion."""

import importlib.util
import subprocess
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffsolve as ds  # noqa: E402
from diffsolve.errors import DiffsolveError  # noqa: E402
from diffsolve.interop import kdiffusion as kd  # noqa: E402

EDM = ds.get_schedule("edm")


def denoiser(target):
    """The exact D(x, sigma) of a diffsolve target on x = x0 + sigma * noise (alpha = 1), as a torch model."""
    def model(x, sigma, **extra):
        s = float(sigma[0])
        assert torch.all(sigma == sigma[0]) and sigma.shape == (x.shape[0],)
        out = target.denoise(x.detach().double().numpy().reshape(x.shape[0], -1), s, EDM)
        return torch.from_numpy(out).reshape(x.shape).to(x.dtype)
    return model


GAUSS = ds.targets.Gaussian(np.array([0.5, -1.0, 0.0]), np.array([1.0, 0.3, 0.05]))
GMM = ds.targets.GaussianMixture([0.3, 0.7], np.array([[-1.0, 0.5], [1.5, 0.0]]), [0.2, 0.1])


def start(target, sigma_max, n, seed=1, dtype=torch.float64):
    """Exact samples of the marginal at sigma_max."""
    return torch.from_numpy(target.sample(n, seed=seed, t=sigma_max, schedule=EDM)).to(dtype)


def check_law(y, target, n):
    """Mean and variance per coordinate within 5 Monte Carlo standard errors of the target's."""
    x0 = target.sample(400_000, seed=99)
    mean, var = x0.mean(0), x0.var(0)
    y = y.numpy()
    se_m, se_v = np.sqrt(var / n), var * np.sqrt(2.0 / n) * 1.5  # 1.5: excess kurtosis of a mixture
    assert np.all(np.abs(y.mean(0) - mean) < 5 * se_m + 2e-3), (y.mean(0), mean)
    assert np.all(np.abs(y.var(0) - var) < 5 * se_v + 2e-3), (y.var(0), var)


# -- exact laws ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn, steps, params", [(kd.sample_dpmpp_2m, 60, {"variant": "published"}),
                                               (kd.sample_ddim, 1000, {}),  # first order
                                               (kd.sample_dpmpp_2m_sde, 100, {"eta": 1.0, "seed": 3}),
                                               (kd.sample_seeds_2, 60, {"seed": 4})])
@pytest.mark.parametrize("target", [GAUSS, GMM], ids=["gaussian", "gmm"])
def test_exact_law(fn, steps, params, target):
    n = 20_000
    sigmas = kd.get_sigmas_karras(steps, 0.002, 80.0, dtype=torch.float64)
    y = fn(denoiser(target), start(target, 80.0, n), sigmas, backend="numpy", **params)
    assert y.shape == (n, target.dim) and y.dtype == torch.float64
    check_law(y, target, n)


def test_ddim_is_euler_in_sigma():
    """ddim on the VE parameterisation is k-diffusion's sample_euler (s_churn = 0): x' = x + (x - D)/s (s' - s),
    step by step to rounding (the whole trajectory to 1e-6: the Euler form's rounding grows through the mixture)."""
    sigmas = kd.get_sigmas_karras(12, 0.01, 20.0, dtype=torch.float64)
    D = denoiser(GMM)
    x = start(GMM, 20.0, 64)
    seen = []
    y = kd.sample_ddim(D, x, sigmas, callback=seen.append, backend="numpy")
    ref = x.clone()
    for i in range(len(sigmas) - 1):
        s, s1 = sigmas[i], sigmas[i + 1]
        step = seen[i]["x"] + (seen[i]["x"] - seen[i]["denoised"]) / s * (s1 - s)
        torch.testing.assert_close(step, seen[i + 1]["x"] if i + 1 < len(seen) else y, rtol=1e-12, atol=1e-12)
        ref = ref + (ref - D(ref, s * torch.ones(64))) / s * (s1 - s)
    torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-6)


def test_backends_agree_and_seed_keys_noise():
    sigmas = kd.get_sigmas_karras(10, 0.01, 20.0)
    x = start(GMM, 20.0, 32, dtype=torch.float32)
    a = kd.sample_dpmpp_2m_sde(denoiser(GMM), x, sigmas, seed=5, backend="numpy")
    b = kd.sample_dpmpp_2m_sde(denoiser(GMM), x, sigmas, seed=5, backend="cpu")
    c = kd.sample_dpmpp_2m_sde(denoiser(GMM), x, sigmas, seed=6, backend="numpy")
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a, c)
    # one sample does not depend on its batch: sample_offset continues the stream
    d = kd.sample_dpmpp_2m_sde(denoiser(GMM), x[16:], sigmas, seed=5, sample_offset=16, backend="numpy")
    torch.testing.assert_close(a[16:], d)


@pytest.mark.parametrize("name", ["dpm-solver-2m", "dpmpp-2s", "seeds-3", "accel-ddim"])
def test_any_solver_steps_to_zero(name):
    """Under k-diffusion's conventions (final="denoise") every table solver, eps prediction and stages included,
    ends with the denoising step: the result is D(x, sigmas[-2])."""
    sigmas = kd.get_sigmas_karras(15, 0.01, 20.0, dtype=torch.float64)
    D = denoiser(GMM)
    seen = []
    y = kd.sample(name, D, start(GMM, 20.0, 16), sigmas, callback=seen.append, backend="numpy")
    last = seen[-1]
    torch.testing.assert_close(y, last["denoised"])
    assert float(last["sigma"]) == float(sigmas[-2]) and last["i"] == len(seen) - 1
    torch.testing.assert_close(y, D(last["x"], sigmas[-2] * torch.ones(16)))


def test_every_registered_solver_has_a_function():
    from diffsolve.solvers.registry import solver_names

    names = sorted({n.split(":")[0] for n in solver_names()})  # also those registered since (ds.derive)
    fns = ["sample_" + n.replace("-", "_") for n in names]
    assert all(callable(getattr(kd, f)) for f in fns)
    doc = " ".join(kd.__doc__.split())
    shipped = ["sample_" + n.replace("-", "_") for n in kd.SOLVERS]  # registered at import: documented
    assert all(f in doc for f in shipped), [f for f in shipped if f not in doc]


def test_import_diffsolve_does_not_import_interop_or_torch():
    code = "import sys, diffsolve; print('torch' in sys.modules, 'diffsolve.interop' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


# -- conventions --------------------------------------------------------------------------------------------------
def test_callback_once_per_step():
    sigmas = kd.get_sigmas_karras(8, 0.01, 10.0)
    seen = []
    y = kd.sample_dpmpp_2m(denoiser(GMM), start(GMM, 10.0, 8, dtype=torch.float32), sigmas, callback=seen.append,
                           backend="numpy")
    assert [c["i"] for c in seen] == list(range(len(sigmas) - 1))
    for c in seen:
        assert set(c) == {"x", "i", "sigma", "sigma_hat", "denoised"}
        assert float(c["sigma"]) == float(sigmas[c["i"]]) == float(c["sigma_hat"])
        assert c["x"].shape == c["denoised"].shape == y.shape and c["x"].dtype == torch.float32
    torch.testing.assert_close(seen[0]["x"], start(GMM, 10.0, 8, dtype=torch.float32))
    torch.testing.assert_close(y, seen[-1]["denoised"])


def test_extra_args_passed_and_image_shapes():
    D = denoiser(ds.targets.Gaussian(np.zeros(12), np.full(12, 0.5)))
    calls = []

    def model(x, sigma, cond=None, scale=1.0):
        calls.append((cond, scale))
        return D(x, sigma)

    x = torch.randn(4, 3, 2, 2) * 10.0
    y = kd.sample_dpmpp_3m(model, x, kd.get_sigmas_exponential(6, 0.05, 10.0), extra_args={"cond": "c", "scale": 2.0},
                           disable=True, backend="numpy")
    assert y.shape == x.shape and y.dtype == x.dtype
    assert calls == [("c", 2.0)] * 6


def test_float16_model():
    sigmas = kd.get_sigmas_karras(10, 0.01, 10.0)
    D = denoiser(GMM)
    seen = []

    def half(x, sigma):
        assert x.dtype == torch.float16 and sigma.dtype == torch.float16
        seen.append(1)
        return D(x.float(), sigma.float()).half()

    x = start(GMM, 10.0, 64, dtype=torch.float32)
    y16 = kd.sample_dpmpp_2m(half, x.half(), sigmas, variant="published", backend="numpy")
    y32 = kd.sample_dpmpp_2m(D, x, sigmas, variant="published", backend="numpy")
    assert y16.dtype == torch.float16 and len(seen) == 10
    torch.testing.assert_close(y16.float(), y32, rtol=2e-2, atol=2e-2)


def test_sigmas_without_final_zero_and_numpy_sigmas():
    sigmas = kd.get_sigmas_karras(10, 0.01, 10.0, dtype=torch.float64)[:-1]
    x = start(GMM, 10.0, 8)
    a = kd.sample_dpmpp_2m(denoiser(GMM), x, sigmas, backend="numpy")
    b = kd.sample_dpmpp_2m(denoiser(GMM), x, sigmas.numpy(), backend="numpy")
    ref = ds.sample("dpmpp-2m", GMM, EDM, sigmas.numpy(), x_init=x.numpy(), backend="numpy")
    torch.testing.assert_close(a, b)
    np.testing.assert_allclose(a.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_grids():
    k = kd.get_sigmas_karras(5, 0.1, 10.0, rho=3.0, dtype=torch.float64)
    i = np.arange(5) / 4
    np.testing.assert_allclose(k[:-1].numpy(), (10 ** (1 / 3) + i * (0.1 ** (1 / 3) - 10 ** (1 / 3))) ** 3)
    assert k[-1] == 0 and k[0] == 10.0 and abs(float(k[-2]) - 0.1) < 1e-15
    e = kd.get_sigmas_exponential(5, 0.1, 10.0, dtype=torch.float64)
    np.testing.assert_allclose(np.diff(np.log(e[:-1].numpy())), np.log(0.01) / 4)
    p = kd.get_sigmas_polyexponential(5, 0.1, 10.0, rho=1.0, dtype=torch.float64)
    torch.testing.assert_close(p, e)
    assert kd.get_sigmas_karras(3, 0.1, 1.0).dtype == torch.get_default_dtype()


@pytest.mark.parametrize("call, match", [
    (lambda D, x: kd.sample_ddim(D, x, torch.tensor([1.0, 2.0, 0.0])), "sigmas must be strictly decreasing"),
    (lambda D, x: kd.sample_ddim(D, x, torch.tensor([2.0, 1.0, 1.0])), "sigmas must be strictly decreasing"),
    (lambda D, x: kd.sample_ddim(D, x, torch.ones(2, 2)), "sigmas must be a 1-D"),
    (lambda D, x: kd.sample_ddim(D, x, torch.tensor([2.0, -1.0])), "sigmas must be >= 0"),
    (lambda D, x: kd.sample_ddim(D, x, torch.tensor([float("nan"), 0.0])), "sigmas contains non-finite"),
    (lambda D, x: kd.sample_ddim(D, x[0], torch.tensor([2.0, 1.0, 0.0])), "x must have a batch axis"),
    (lambda D, x: kd.sample_ddim(D, x.numpy(), torch.tensor([2.0, 1.0, 0.0])), "x must be a torch tensor"),
    (lambda D, x: kd.sample_ddim(lambda x, s: x[:, :1], x, torch.tensor([2.0, 1.0, 0.0])), "model returned shape"),
    (lambda D, x: kd.sample_ddim(lambda x, s: None, x, torch.tensor([2.0, 1.0, 0.0])), "model returned NoneType"),
    (lambda D, x: kd.sample_ddim(D, x, torch.tensor([2.0, 1.0, 0.0]), s_churn=1.0), "no parameter 's_churn'"),
    (lambda D, x: kd.sample_dpmpp_2m(D, x, torch.tensor([2.0, 1.0, 0.0]), variant="nope"),
     "variants 'exact', 'published', got 'nope'"),
    (lambda D, x: kd.sample_ddpm(D, x, torch.tensor([2.0, 1.0, 0.0]), eta=-1.0), "parameter eta"),
    (lambda D, x: kd.sample_ddpm(D, x, torch.tensor([2.0, 1.0, 0.0]), noise_sampler=lambda a, b: 0), "noise_sampler"),
    (lambda D, x: kd.sample_ddim(D, x, torch.tensor([2.0, 1.0, 0.0]), extra_args=[1]), "extra_args must be a dict"),
    (lambda D, x: kd.sample_ddim(D, x, torch.tensor([2.0, 1.0, 0.0]), callback=3), "callback must be callable"),
    (lambda D, x: kd.sample_ddim(D, x, torch.tensor([2.0, 1.0, 0.0]), seed=-1), "seed"),
    (lambda D, x: kd.get_sigmas_karras(0, 0.1, 1.0), "n must be a positive integer"),
    (lambda D, x: kd.get_sigmas_karras(5, 1.0, 0.1), "sigma_max > sigma_min"),
    (lambda D, x: kd.get_sigmas_polyexponential(5, 0.1, 1.0, rho=0), "rho must be"),
    (lambda D, x: kd.get_sigmas_exponential(5, -0.1, 1.0), "sigma_min must be"),
])
def test_bad_input(call, match):
    with pytest.raises(DiffsolveError, match=match):
        call(denoiser(GMM), start(GMM, 2.0, 4, dtype=torch.float32))


# -- the real k-diffusion -----------------------------------------------------------------------------------------
def _append_dims(x, target_dims):  # k_diffusion.utils.append_dims, verbatim in effect
    return x[(...,) + (None,) * (target_dims - x.ndim)]


@pytest.fixture(scope="module")
def ksampling():
    """``k_diffusion.sampling``: imported normally, or (where the package's __init__ cannot be imported because its
    training dependencies such as torchvision are not installed) loaded from its file with a bare package around it
    and, if k_diffusion.utils does not import, a stand-in utils holding append_dims (the one utils function it uses)."""
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None:
        pytest.skip("k_diffusion is not installed")
    try:
        import k_diffusion.sampling as sampling
        return sampling
    except ImportError:
        pass
    for dep in ("torchsde", "torchdiffeq", "scipy", "tqdm"):
        pytest.importorskip(dep)
    saved = {k: sys.modules.get(k) for k in ("k_diffusion", "k_diffusion.utils", "k_diffusion.sampling")}
    try:
        pkg = types.ModuleType("k_diffusion")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["k_diffusion"] = pkg
        try:
            import k_diffusion.utils as utils  # noqa: F401
        except ImportError:
            utils = types.ModuleType("k_diffusion.utils")
            utils.append_dims = _append_dims
            sys.modules["k_diffusion.utils"] = pkg.utils = utils
        location = spec.submodule_search_locations[0] + "/sampling.py"
        sspec = importlib.util.spec_from_file_location("k_diffusion.sampling", location)
        sampling = importlib.util.module_from_spec(sspec)
        sys.modules["k_diffusion.sampling"] = sampling
        sspec.loader.exec_module(sampling)
        return sampling
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.peer
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("steps", [5, 25, 100])
def test_peer_dpmpp_2m(ksampling, dtype, steps):
    sigmas = ksampling.get_sigmas_karras(steps, 0.002, 80.0).to(dtype)
    x = start(GMM, 80.0, 256, dtype=dtype)
    ref = ksampling.sample_dpmpp_2m(denoiser(GMM), x, sigmas, disable=True)
    y = kd.sample_dpmpp_2m(denoiser(GMM), x, sigmas, variant="published", backend="numpy")
    assert y.dtype == dtype and _rel(y, ref) < 1e-5, _rel(y, ref)
    exact = kd.sample_dpmpp_2m(denoiser(GMM), x, sigmas, backend="numpy")  # the exact weights are another method
    assert _rel(exact, ref) > 1e-5


@pytest.mark.peer
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_peer_ddim_is_sample_euler(ksampling, dtype):
    sigmas = ksampling.get_sigmas_karras(20, 0.002, 80.0).to(dtype)
    x = start(GMM, 80.0, 256, dtype=dtype)
    ref = ksampling.sample_euler(denoiser(GMM), x, sigmas, disable=True)
    y = kd.sample_ddim(denoiser(GMM), x, sigmas, backend="numpy")
    assert _rel(y, ref) < 1e-5, _rel(y, ref)


@pytest.mark.peer
def test_peer_callback_and_grids(ksampling):
    for n, lo, hi, rho in ((10, 0.002, 80.0, 7.0), (1, 0.1, 1.0, 7.0), (37, 0.03, 14.6, 3.0)):
        torch.testing.assert_close(kd.get_sigmas_karras(n, lo, hi, rho), ksampling.get_sigmas_karras(n, lo, hi, rho),
                                   rtol=4e-6, atol=0)
        torch.testing.assert_close(kd.get_sigmas_exponential(n, lo, hi), ksampling.get_sigmas_exponential(n, lo, hi),
                                   rtol=4e-6, atol=0)
        torch.testing.assert_close(kd.get_sigmas_polyexponential(n, lo, hi, rho),
                                   ksampling.get_sigmas_polyexponential(n, lo, hi, rho), rtol=4e-6, atol=0)
    sigmas = ksampling.get_sigmas_karras(6, 0.01, 10.0)
    x = start(GMM, 10.0, 8, dtype=torch.float32)
    ours, theirs = [], []
    kd.sample_dpmpp_2m(denoiser(GMM), x, sigmas, callback=ours.append, variant="published", backend="numpy")
    ksampling.sample_dpmpp_2m(denoiser(GMM), x, sigmas, callback=theirs.append, disable=True)
    assert [c["i"] for c in ours] == [c["i"] for c in theirs]
    for a, b in zip(ours, theirs):
        assert set(a) == set(b) and float(a["sigma"]) == float(b["sigma"])
        torch.testing.assert_close(a["denoised"], b["denoised"], rtol=1e-5, atol=1e-5)
