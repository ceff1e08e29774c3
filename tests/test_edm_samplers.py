"""EDM's ``euler`` and ``heun`` with churn (Karras et al. 2022, Alg. 1-2; docs/algorithms/edm.md): the real
k-diffusion ``sample_euler`` / ``sample_heun`` on the same inputs (and, with churn, the same normals), Euler = DDIM on
every schedule, the scaled-state form on a general schedule, the declared orders on exact Gaussian laws, the churned
output law converging to the data law, the backends, and the refusals."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import diffsolve as ds
from diffsolve.accuracy.order import exact_error
from diffsolve.errors import DiffsolveError
from diffsolve.noise import standard_normal
from helpers import CONTINUOUS_SCHEDULES, EDM, GAUSSIAN_D8, VP, order_setup, schedule

torch = pytest.importorskip("torch")

from diffsolve.interop import kdiffusion as kd  # noqa: E402
import test_interop_kdiffusion as _kdtest  # noqa: E402  (its exact denoiser, start states and k-diffusion fixture)

GMM, denoiser, start = _kdtest.GMM, _kdtest.denoiser, _kdtest.start
ksampling = _kdtest.ksampling  # the fixture loading k_diffusion.sampling

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 7


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def _keyed_randn(monkeypatch):
    """Replace torch.randn_like (k-diffusion's churn noise) by diffsolve's keyed normals of the current step, as
    the Stepper draws them: step i (found from k-diffusion's callback, called once per step after its first model
    call) uses noise step key i + 1, draw 0.  Returns the callback to hand to k-diffusion."""
    last = [-1]

    def randn_like(x, **kw):
        z = standard_normal(SEED, np.arange(x.shape[0]), last[0] + 2, 0, int(np.prod(x.shape[1:])))
        return torch.from_numpy(z.reshape(x.shape)).to(x.dtype)

    monkeypatch.setattr(torch, "randn_like", randn_like)
    return lambda info: last.__setitem__(0, info["i"])


def _stepper(name, sigmas, x, target, **params):
    """diffsolve's solver on k-diffusion's sigma grid (interop's sigma map: edm, t = sigma), the full grid given to
    the Stepper (a final sigma = 0 included), driven by the exact denoiser."""
    sch, grid = kd.sigma_schedule(sigmas)
    st = ds.Stepper(ds.get_solver(name, **params), sch, grid, x_init=x.numpy().copy(), prediction="data",
                    backend="numpy", seed=SEED)
    while not st.done:
        st.step(target.denoise(st.x_model, st.t_model, EDM))
    return torch.from_numpy(np.asarray(st.x))


# -- the real k-diffusion -------------------------------------------------------------------------------------
@pytest.mark.peer
@pytest.mark.parametrize("name", ["euler", "heun"])
@pytest.mark.parametrize("steps", [3, 12, 40])
def test_deterministic_matches_k_diffusion(ksampling, name, steps):
    """s_churn = 0, float64, k-diffusion's Karras grid ending at sigma = 0 (its last step Euler for both)."""
    sigmas = ksampling.get_sigmas_karras(steps, 0.002, 80.0).double()
    x = start(GMM, 80.0, 64)
    ref = getattr(ksampling, "sample_" + name)(denoiser(GMM), x, sigmas, disable=True)
    ours = kd.sample(name, denoiser(GMM), x, sigmas, backend="numpy")
    assert _rel(ours, ref) < 1e-12, _rel(ours, ref)


@pytest.mark.peer
@pytest.mark.parametrize("name", ["euler", "heun"])
@pytest.mark.parametrize("params", [{"s_churn": 2.0},                                  # gamma = 2/N on every step
                                    {"s_churn": 40.0, "s_noise": 1.007},               # gamma capped at sqrt 2 - 1
                                    {"s_churn": 3.0, "s_tmin": 0.05, "s_tmax": 10.0}])  # a window of steps
def test_churn_matches_k_diffusion_with_the_same_noise(ksampling, monkeypatch, name, params):
    """With churn, k-diffusion's randn_like replaced by diffsolve's keyed normals: through the interop function
    on a grid ending at sigma > 0 and on the full grid ending at sigma = 0 (where churn also raises the last positive
    sigma's step, which k-diffusion takes as Euler), and through the Stepper on the full grid."""
    interop = lambda s, x: kd.sample(name, denoiser(GMM), x, s, seed=SEED, backend="numpy", **params)  # noqa: E731
    for sigmas, ours in ((ksampling.get_sigmas_karras(12, 0.02, 80.0).double()[:-1], interop),
                         (ksampling.get_sigmas_karras(12, 0.002, 80.0).double(), interop),
                         (ksampling.get_sigmas_karras(12, 0.002, 80.0).double(),
                          lambda s, x: _stepper(name, s, x, GMM, **params))):
        x = start(GMM, 80.0, 64)
        callback = _keyed_randn(monkeypatch)
        ref = getattr(ksampling, "sample_" + name)(denoiser(GMM), x, sigmas, callback=callback, disable=True,
                                                   **params)
        monkeypatch.undo()
        y = ours(sigmas, x)
        assert _rel(y, ref) < 1e-12, (sigmas[-1], _rel(y, ref))
        plain = kd.sample(name, denoiser(GMM), x, sigmas, backend="numpy")  # the churn is not a no-op
        assert _rel(plain, ref) > 1e-3


# -- the method on a general schedule ---------------------------------------------------------------------------
@pytest.mark.parametrize("sname", CONTINUOUS_SCHEDULES)
def test_euler_without_churn_is_ddim(sname):
    """Euler in rho = sigma/alpha on y = x/alpha is DDIM, on every schedule (tables to rounding)."""
    sch = schedule(sname)
    grid = ds.time_grid(sch, 9, "logsnr" if sname == "flow" else "karras")
    ours, ddim = ds.get_solver("euler").table(sch, grid), ds.get_solver("ddim").table(sch, grid)
    for k in "AB":
        a, b = getattr(ours, k), getattr(ddim, k)
        assert np.abs(a - b).max() <= 1e-14 * np.abs(b).max(), (k, np.abs(a - b).max())
    assert np.array_equal(ours.tau, ddim.tau)


@pytest.mark.parametrize("name", ["euler", "heun"])
def test_general_schedule_is_edm_on_the_scaled_state(name):
    """On vp-linear, heun/euler with churn are EDM's on y = x/alpha with sigma = rho: the VP run from alpha_0 y_0,
    divided by alpha at the end, is the edm run from y_0 on the rho grid (same normals)."""
    t_vp = ds.time_grid(VP, 10, "karras", t_max=float(VP.t_of_lam(-3.0)), t_min=float(VP.t_of_lam(4.0)))
    t_edm = EDM.t_of_lam(VP.lam(t_vp))  # = rho
    params = {"s_churn": 8.0, "s_tmin": 0.1, "s_tmax": 10.0}
    y0 = GMM.sample(32, seed=3, t=float(t_edm[0]), schedule=EDM)
    edm = ds.sample(name, GMM, EDM, t_edm, x_init=y0, seed=SEED, **params)
    vp = ds.sample(name, GMM, VP, t_vp, x_init=y0 * VP.alpha(t_vp[0]), seed=SEED, **params)
    assert np.abs(vp / VP.alpha(t_vp[-1]) - edm).max() < 1e-11 * np.abs(edm).max()


# -- orders and laws ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, params", [("euler", {}), ("heun", {}), ("euler", {"s_churn": 5.0}),
                                          ("heun", {"s_churn": 5.0, "s_tmin": 0.05})])
@pytest.mark.parametrize("sch", [EDM, VP], ids=["edm", "vp-linear"])
def test_declared_order(name, params, sch):
    """The declared order (Euler 1, Heun 2) on exact Gaussian laws, with and without churn."""
    solver = ds.get_solver(name, **params)
    study = ds.order_study(solver, GAUSSIAN_D8, sch, **order_setup(sch, steps=(64, 128, 256)))
    assert abs(study.order - solver.order) <= 0.1, study.table()


@pytest.mark.parametrize("name", ["euler", "heun"])
def test_churned_law_converges_to_the_data_law(name):
    """With churn, on grids ending at sigma = 0 (Heun's last step Euler): the exact output law's W2 distance to
    the data law shrinks at the declared order.  s_noise > 1 (EDM's compensation for imperfect denoisers) adds
    noise the exact model does not need, a total that does not shrink with the step count: its error stalls."""
    target = ds.targets.Gaussian(np.array([0.5, -1.0, 0.0]), np.array([1.0, 0.3, 0.05]))

    def error(n, **params):
        return exact_error(ds.get_solver(name, s_churn=10.0, **params), target, EDM,
                           np.append(ds.time_grid(EDM, n - 1, "karras"), 0.0))

    errs = [error(n) for n in (32, 64, 128)]
    rates = np.log2(np.array(errs[:-1]) / errs[1:])
    assert np.all(np.abs(rates - ds.get_solver(name).order) < 0.15), rates
    inflated = [error(n, s_noise=1.05) for n in (256, 512)]
    assert inflated[1] > 0.9 * inflated[0] and inflated[1] > 3 * error(512), inflated


# -- backends -------------------------------------------------------------------------------------------------
def test_backends_agree():
    """numpy (the oracle), cpu through the Stepper and the fused mixture pass agree with churn on."""
    grid = np.append(ds.time_grid(EDM, 7, "karras"), 0.0)
    x0 = GMM.sample(50, seed=1, t=float(grid[0]), schedule=EDM)
    params = {"s_churn": 6.0, "s_tmax": 20.0}
    for name in ("euler", "heun"):
        ref = ds.sample(name, GMM, EDM, grid, x_init=x0, seed=SEED, backend="numpy", **params)
        fused = ds.sample(name, GMM, EDM, grid, x_init=x0, seed=SEED, backend="cpu", **params)
        model = lambda x, t: GMM.predict(x, t, EDM, "data")  # noqa: E731
        generic = ds.sample(name, model, EDM, grid, x_init=x0, seed=SEED, backend="cpu", prediction="data",
                            **params)
        for y in (fused, generic):
            assert np.abs(y - ref).max() < 1e-12 * np.abs(ref).max()


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None, reason="numba-cuda is not installed")
def test_cuda_simulator_matches_numpy():
    """heun with churn on Numba's CUDA simulator (a subprocess: the variable must be set before numba.cuda loads)."""
    script = """
    import numpy as np, diffsolve as ds
    from diffsolve.targets import from_spec
    EDM = ds.get_schedule("edm"); grid = np.append(ds.time_grid(EDM, 2, "karras"), 0.0)
    tgt = from_spec("gmm:d=3,k=4,seed=1")
    x0 = ds.sampling.prior_sample(EDM, grid[0], 6, 3, seed=2)
    for name in ("euler", "heun"):
        ref = ds.sample(name, tgt, EDM, grid, x_init=x0, seed=3, s_churn=4.0)
        host = lambda x, t: tgt.predict(x.copy_to_host(), t, EDM, "data")
        for y in (ds.sample(name, tgt, EDM, grid, x_init=x0, seed=3, s_churn=4.0, backend="cuda"),
                  ds.sample(name, host, EDM, grid, x_init=x0, seed=3, s_churn=4.0, backend="cuda", prediction="data")):
            assert np.max(np.abs(y - ref)) < 1e-12 * np.max(np.abs(ref)), name
    print("ok")
    """
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["NUMBA_ENABLE_CUDASIM"] = "1"
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


# -- metadata and refusals ------------------------------------------------------------------------------------
def test_metadata():
    euler, heun = ds.get_solver("euler"), ds.get_solver("heun")
    assert (euler.order, euler.nfe_per_step, heun.order, heun.nfe_per_step) == (1, 1, 2, 2)
    assert euler.metadata()["params"] == {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": np.inf, "s_noise": 1.0}
    assert not heun.stochastic and heun.noises == 0
    churned = ds.get_solver("heun", s_churn=1.0)
    assert churned.stochastic and churned.noises == 1 and "Karras" in churned.reference
    assert ds.get_solver("euler-maruyama").family == "euler-maruyama"  # the pattern "euler" matches only itself
    grid = np.append(ds.time_grid(EDM, 4, "karras"), 0.0)
    assert [s.table.stages for s in heun.program(EDM, grid).segments] == [2, 1]  # Euler on the step to sigma = 0


@pytest.mark.parametrize("call, match", [
    (lambda: ds.get_solver("heun", s_churn=-1.0), r"s_churn = -1(\.0)? is outside its range \[0, inf\]"),
    (lambda: ds.get_solver("euler", s_noise=float("nan")), "s_noise"),
    (lambda: ds.get_solver("heun", s_tmin=2.0, s_tmax=1.0), r"s_tmin = 2(\.0)? is above s_tmax = 1(\.0)?"),
    (lambda: ds.get_solver("heun", eta=1.0), "no parameter 'eta'"),
    (lambda: ds.get_solver("heun", variant="published"), "has no variants"),
    (lambda: ds.get_solver("heun", s_churn=5.0).program(VP, ds.time_grid(VP, 10, "karras")),
     "beyond the largest rho .* pass s_tmax below"),
    (lambda: ds.get_solver("heun").table(EDM, np.array([1.0, 0.5, 0.0])), "use solver.program"),
])
def test_bad_input(call, match):
    with pytest.raises(DiffsolveError, match=match):
        call()


def test_kdiffusion_style_functions_for_pattern_names():
    """sample_euler / sample_heun (k-diffusion's names) resolve through the registry's name patterns."""
    from diffsolve.interop import kdiffusion as kd

    assert callable(kd.sample_euler) and callable(kd.sample_heun) and callable(kd.sample_deis_3)
    with pytest.raises(AttributeError):
        kd.sample_no_such_solver
