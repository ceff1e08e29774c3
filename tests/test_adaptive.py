"""Adaptive step size (diffsolve.adaptive): accuracy and NFE against fixed steps on a mixture with its exact
denoiser, the reported counts, the backends, k-diffusion's sample_dpm_adaptive, bad input."""

import importlib.util
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

import diffsolve as ds
from diffsolve.adaptive import PIDController, embedded_pair, error_norm, sample_adaptive
from diffsolve.errors import DiffsolveError

VP = ds.get_schedule("vp-linear", beta_min=0.1, beta_max=20.0)
GMM = ds.targets.from_spec("gmm:d=2,k=8,seed=0")
T, T_END = 1.0, 1e-3  # ds.time_grid(VP, ...)'s range
X = ds.sampling.prior_sample(VP, T, 400, 2, seed=0)


def fixed(name, steps):
    return ds.sample(name, GMM, VP, ds.time_grid(VP, steps=steps, spacing="logsnr"), x_init=X)


@pytest.fixture(scope="module")
def reference():
    """The probability-flow solution from X: DPM-Solver-3 on 800 log-SNR steps (its own error ~1e-7, measured
    against 3000 steps)."""
    return fixed("dpm-solver-3", 800)


def max_rel(y, ref):
    return float(np.abs(y - ref).max() / np.abs(ref).max())


class Counting:
    """The exact noise prediction of GMM, counting its calls."""

    prediction = "eps"

    def __init__(self):
        self.calls = 0

    def __call__(self, x, t):
        self.calls += 1
        return GMM.predict(x, t, VP, "eps")


@pytest.mark.parametrize("order", [2, 3])
def test_tolerance_reached_with_fewer_nfe_than_fixed_steps(order, reference):
    model = Counting()
    res = sample_adaptive(model, VP, T, T_END, x_init=X, order=order, rtol=1e-3, atol=1e-3)
    st = res.stats
    # rtol 1e-3 reached: the final error in the controller's own scaled norm (rtol = atol = 1e-3) is below 1
    assert error_norm(res.x, reference, reference, 1e-3, 1e-3) < 1.0
    err = max_rel(res.x, reference)
    # the fixed-step solver of the same order needs more NFE for this error: every step count whose NFE is at
    # most the adaptive run's is less accurate (measured: order 2: 101 NFE vs 176 = 2 x 88 steps; order 3: 68 vs
    # 90 = 3 x 30 steps)
    budget = st.nfe // order
    for steps in range(budget - 3, budget + 1):
        assert max_rel(fixed(f"dpm-solver-{order}", steps), reference) > err, steps
    # the counts: every call made is counted; a rejected trial reuses its start's call
    assert model.calls == st.nfe == order * st.trials - st.n_reject
    assert st.n_accept == len(st.grid) - 1 and st.n_reject >= 1 and len(st.errors) == len(st.h) == st.trials
    assert st.grid[0] == T and st.grid[-1] == T_END and np.all(np.diff(st.grid) < 0)
    assert st.info() == {"steps": st.trials, "nfe": st.nfe, "n_accept": st.n_accept, "n_reject": st.n_reject}


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("pair, variant", [("eps", "exact"), ("data", "exact"), ("data", "published")])
def test_pairs_and_backends(order, pair, variant, reference):
    """Every pair shares its stages (checked on each trial) and converges; the cpu engine agrees with the numpy
    oracle on the same steps."""
    kw = dict(x_init=X, order=order, pair=pair, variant=variant, rtol=1e-3, atol=1e-3)
    a = sample_adaptive(GMM, VP, T, T_END, backend="numpy", **kw)
    b = sample_adaptive(GMM, VP, T, T_END, backend="cpu", **kw)
    assert a.stats.grid == b.stats.grid
    np.testing.assert_allclose(b.x, a.x, rtol=0, atol=1e-12)
    assert max_rel(a.x, reference) < 2e-2  # measured 1.3e-3 .. 1.0e-2 (data, published, order 2)


def test_pair_members():
    """DPM-Solver-12 and -23 (Lu et al. 2022, Algorithm 4): low member's stage fractions are the high one's."""
    p2, p3 = embedded_pair(2), embedded_pair(3)
    assert (p2.low.name, p2.high.name, p2.high.param("c1")) == ("dpm-solver-1", "dpm-solver-2", 0.5)
    assert (p3.low.name, p3.high.name) == ("dpm-solver-2", "dpm-solver-3")
    assert p3.low.param("c1") == p3.high.param("c1") == 1 / 3 and p3.high.param("c2") == 2 / 3
    low, high = p3.tables(VP, 0.5, 0.3)
    assert high.stages == 3 and low.stages == 2 and low.tau[0, 1] == pytest.approx(high.tau[0, 1], rel=1e-14)


def test_controller():
    """The integral controller is h <- h L(E^{-1/k}), accepted when the factor reaches accept_safety."""
    pid = PIDController(0.1, 0.0, 1.0, 0.0, order=2)
    assert pid.propose(0.25)  # factor 1 + atan(2 - 1) (eps 1e-8 aside)
    assert pid.h == pytest.approx(0.1 * (1 + np.arctan(1.0)), rel=1e-7)
    h = pid.h
    assert not pid.propose(16.0)  # factor 1 + atan(1/4 - 1) = 0.356 < 0.81
    assert pid.h == pytest.approx(h * (1 + np.arctan(-0.75)), rel=1e-7)


def test_callback():
    seen = []
    res = sample_adaptive(GMM, VP, T, T_END, x_init=X, order=2, rtol=1e-2, atol=1e-2, callback=seen.append)
    assert [r["i"] for r in seen] == list(range(res.stats.trials))
    assert sum(r["accepted"] for r in seen) == res.stats.n_accept


def test_ancestral_steps_have_the_exact_law():
    """eta > 0 (k-diffusion's ancestral variant): on a Gaussian target the output's mean and variance are the exact
    marginal's within Monte Carlo error (measured |z| <= 2.2 for the mean, variance within 1.7%); other seeds
    give other samples."""
    G = ds.targets.Gaussian(np.array([0.5, -1.0, 0.0]), np.array([1.0, 0.3, 0.05]))
    n = 10_000
    res = sample_adaptive(G, VP, T, T_END, n=n, order=3, eta=1.0, rtol=1e-3, atol=1e-3, seed=3)
    a, s = float(VP.alpha(T_END)), float(VP.sigma(T_END))
    mean, var = a * G.mean(), a * a * G.variances + s * s
    assert np.all(np.abs(res.x.mean(0) - mean) < 5 * np.sqrt(var / n))
    assert np.all(np.abs(res.x.var(0) / var - 1) < 5 * np.sqrt(2 / n) + 0.01)
    other = sample_adaptive(G, VP, T, T_END, n=n, order=3, eta=1.0, rtol=1e-3, atol=1e-3, seed=4)
    assert np.abs(other.x - res.x).max() > 0.1


def test_cuda_simulator_matches_numpy():
    """The pair on the CUDA engine (Numba's simulator, in a subprocess) takes the same trials and gives the numpy
    oracle's samples, noise included."""
    pytest.importorskip("numba_cuda")
    script = """
    import numpy as np, diffsolve as ds
    from diffsolve.adaptive import sample_adaptive
    VP = ds.get_schedule("vp-linear")
    tgt = ds.targets.from_spec("gmm:d=2,k=8,seed=0")
    x0 = ds.sampling.prior_sample(VP, 1.0, 8, 2, seed=2)
    eps = lambda x, t: tgt.predict(x if isinstance(x, np.ndarray) else x.copy_to_host(), t, VP, "eps")
    kw = dict(x_init=x0, order=3, eta=1.0, rtol=5e-2, atol=5e-2, seed=4, prediction="eps")
    ref = sample_adaptive(eps, VP, 1.0, 0.1, backend="numpy", **kw)
    got = sample_adaptive(eps, VP, 1.0, 0.1, backend="cuda", **kw)
    assert ref.stats.n_accept >= 4 and got.stats.grid == ref.stats.grid and got.stats.nfe == ref.stats.nfe
    assert float(np.abs(got.x - ref.x).max()) <= 1e-12 * float(np.abs(ref.x).max())
    print("ok")
    """
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["NUMBA_ENABLE_CUDASIM"] = "1"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_the_name_explains_itself():
    """'dpm-adaptive' has no fixed grid: get_solver / sample point to sample_adaptive."""
    with pytest.raises(DiffsolveError, match="ds.sample_adaptive"):
        ds.get_solver("dpm-adaptive")
    with pytest.raises(DiffsolveError, match="ds.sample_adaptive"):
        ds.sample("dpm-adaptive", GMM, VP, [1.0, 0.1], n=2)


@pytest.mark.parametrize("kw, match", [
    (dict(rtol=0.0), "rtol must be a finite positive"), (dict(rtol=-1e-3), "rtol"), (dict(atol=0.0), "atol"),
    (dict(order=4), "order must be 2"), (dict(order=1), "order must be 2"), (dict(pair="v"), "prediction"),
    (dict(variant="x"), "variant"), (dict(h_init=np.inf), "h_init"), (dict(accept_safety=1.5), "accept_safety"),
    (dict(max_trials=3), "3 trial steps"), (dict(eta=-1.0), "eta"), (dict(s_noise=np.nan), "s_noise"),
    (dict(icoeff=-1.0), "icoeff"), (dict(rtol="1e-3"), "rtol must be a number"),
])
def test_bad_input(kw, match):
    with pytest.raises(DiffsolveError, match=match):
        sample_adaptive(GMM, VP, T, T_END, x_init=X, **kw)


def test_bad_span_and_start():
    with pytest.raises(DiffsolveError, match="strictly decreasing"):
        sample_adaptive(GMM, VP, T_END, T, x_init=X)
    with pytest.raises(DiffsolveError, match="pass x_init"):
        sample_adaptive(Counting(), VP, T, T_END, n=10)


# -- k-diffusion ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ksampling():
    """``k_diffusion.sampling``, loaded from its file when the package's __init__ needs training dependencies."""
    torch = pytest.importorskip("torch")
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None:
        pytest.skip("k_diffusion is not installed")
    try:
        import k_diffusion.sampling as sampling
        return torch, sampling
    except ImportError:
        pass
    saved = {k: sys.modules.get(k) for k in ("k_diffusion", "k_diffusion.utils", "k_diffusion.sampling")}
    try:
        pkg = sys.modules["k_diffusion"] = types.ModuleType("k_diffusion")
        pkg.__path__ = list(spec.submodule_search_locations)
        utils = types.ModuleType("k_diffusion.utils")  # the one utils function sampling.py uses
        utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
        sys.modules["k_diffusion.utils"] = pkg.utils = utils
        sspec = importlib.util.spec_from_file_location("k_diffusion.sampling", spec.submodule_search_locations[0]
                                                       + "/sampling.py")
        sampling = importlib.util.module_from_spec(sspec)
        sspec.loader.exec_module(sampling)
        return torch, sampling
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


EDM = ds.get_schedule("edm")


@pytest.mark.peer
@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("kw", [{}, dict(rtol=1e-3, atol=1e-3),
                                dict(rtol=1e-2, atol=1e-3, pcoeff=0.3, icoeff=0.5, dcoeff=0.1, h_init=0.1),
                                dict(eta=1.0, s_noise=0.0, rtol=1e-2)],
                         ids=["defaults", "tight", "pid", "ancestral-split"])
def test_kdiffusion_sample_dpm_adaptive(ksampling, order, kw):
    """Same pair (published formulas), norm and controller: the same trial steps, results within 1e-10 in
    float64 (k-diffusion's times are torch.tensor(sigma) in the default dtype, so it runs with float64 as the
    default dtype); its info['nfe'] counts `order` calls per trial, diffsolve's the calls made (a rejected trial
    reuses its start's call).  eta = 1 with s_noise = 0 checks the ancestral split (the ODE target lam_down,
    the controller's order 1.5) without noise, whose stream differs."""
    torch, ks = ksampling
    from diffsolve.interop import kdiffusion as kd

    calls = [0]

    def model(x, sigma):
        calls[0] += 1
        return torch.from_numpy(GMM.denoise(x.numpy(), float(sigma[0]), EDM))

    x = torch.from_numpy(GMM.sample(300, seed=1, t=80.0, schedule=EDM))
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        y_kd, info_kd = ks.sample_dpm_adaptive(model, x, 0.002, 80.0, order=order, return_info=True, disable=True,
                                               **kw)
    finally:
        torch.set_default_dtype(default)
    calls[0] = 0
    y, info = kd.sample_dpm_adaptive(model, x, 0.002, 80.0, order=order, return_info=True, **kw)
    assert info["steps"] == info_kd["steps"] and info["n_accept"] == info_kd["n_accept"]
    assert info["n_reject"] == info_kd["n_reject"] and info["nfe"] == info_kd["nfe"] - info["n_reject"] == calls[0]
    assert y.dtype == torch.float64 and max_rel(y.numpy(), y_kd.numpy()) < 1e-10


def test_kdiffusion_ancestral_and_callback(ksampling):
    """eta > 0 runs with diffsolve's keyed noise (float32 state: computed and returned in float32); the callback
    gets k-diffusion's record once per trial."""
    torch, _ = ksampling
    from diffsolve.interop import kdiffusion as kd

    def model(x, sigma):
        return torch.from_numpy(GMM.denoise(x.double().numpy(), float(sigma[0]), EDM)).to(x.dtype)

    x = torch.from_numpy(GMM.sample(64, seed=2, t=80.0, schedule=EDM)).float()
    seen = []
    y, info = kd.sample_dpm_adaptive(model, x, 0.01, 80.0, eta=1.0, rtol=1e-2, return_info=True, seed=5,
                                     callback=seen.append)
    assert y.dtype == torch.float32 and torch.isfinite(y).all() and len(seen) == info["steps"]
    assert set(seen[-1]) >= {"x", "i", "sigma", "sigma_hat", "denoised", "error", "h", "nfe", "n_accept", "n_reject"}
    assert float(seen[-1]["sigma"]) == pytest.approx(0.01, rel=1e-6) and info["n_accept"] >= 1


def test_kdiffusion_bad_input():
    torch = pytest.importorskip("torch")
    from diffsolve.interop import kdiffusion as kd

    x = torch.zeros(4, 2, dtype=torch.float64)
    model = lambda x, s: x  # noqa: E731
    with pytest.raises(DiffsolveError, match="noise_sampler is not supported"):
        kd.sample_dpm_adaptive(model, x, 0.002, 80.0, noise_sampler=lambda s, t: x)
    with pytest.raises(DiffsolveError, match="need sigma_max > sigma_min"):
        kd.sample_dpm_adaptive(model, x, 1.0, 0.5)
    with pytest.raises(DiffsolveError, match="sigma_min must be a finite positive"):
        kd.sample_dpm_adaptive(model, x, 0.0, 80.0)
    with pytest.raises(DiffsolveError, match="order must be 2"):
        kd.sample_dpm_adaptive(model, x, 0.002, 80.0, order=1)
