"""The Stepper: a user's own loop (NumPy or a torch.nn.Module) drives any registered solver and reproduces
``ds.sample`` with the equivalent model callable."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import diffsolve as ds
from helpers import table_solvers
from diffsolve.errors import DiffsolveError, ModelOutputError
from diffsolve.stepper import Stepper
from diffsolve.targets import from_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VP = ds.get_schedule("vp-linear")
GRID = ds.time_grid(VP, 10, "time")
D = 6
_rng = np.random.default_rng(0)
W = 0.3 * _rng.standard_normal((D, D))
BIAS = 0.1 * _rng.standard_normal(D)
X0 = _rng.standard_normal((16, D))
X0_COPY = X0.copy()
TORCH_SOLVERS = ["ddpm", "ddim", "dpmpp-3m"]


def np_eps(x, t):
    return np.tanh(x @ W.T + BIAS) * (1.0 + t)


def _drive(st, model):
    while not st.done:
        st.step(model(st.x_model, st.t_model))
    return st.x


CLIPPED = "accel-sde(c=0.05)"  # a clip constant small enough that the momentum is capped at every step


def _solver(name):
    return ds.get_solver("accel-sde", c=0.05) if name == CLIPPED else name


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("solver", table_solvers() + [CLIPPED])
def test_numpy_loop_matches_sample(solver, backend):
    """Every registered solver: a user's loop over ``ds.Stepper`` gives the bits of ``ds.sample`` on the same
    backend, and both backends give the same bits (cpu computes the numpy engine's operations in its order)."""
    ref = ds.sample(_solver(solver), np_eps, VP, GRID, x_init=X0, seed=5, prediction="eps")
    same = ds.sample(_solver(solver), np_eps, VP, GRID, x_init=X0, seed=5, prediction="eps", backend=backend)
    st = ds.Stepper(_solver(solver), VP, GRID, x_init=X0, prediction="eps", backend=backend, seed=5)
    out = _drive(st, np_eps)
    np.testing.assert_array_equal(out, same)
    np.testing.assert_array_equal(out, ref)
    assert st.nfe == st.steps * ds.get_solver(_solver(solver)).nfe_per_step
    assert st.done and st.step_index == st.steps
    np.testing.assert_array_equal(X0, X0_COPY)  # x_init is never written to


@pytest.mark.parametrize("solver", TORCH_SOLVERS)
def test_torch_module_drives_solver_like_sample(solver):
    torch = pytest.importorskip("torch")

    class EpsNet(torch.nn.Module):
        """A fixed linear layer wrapped to return an eps prediction."""

        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(D, D, dtype=torch.float64)
            with torch.no_grad():
                self.lin.weight.copy_(torch.from_numpy(W))
                self.lin.bias.copy_(torch.from_numpy(BIAS))

        def forward(self, x, t):
            return torch.tanh(self.lin(x)) * (1.0 + t)

    net = EpsNet()
    ref = ds.sample(solver, np_eps, VP, GRID, x_init=X0, seed=5, prediction="eps")
    st = Stepper(solver, VP, GRID, x_init=torch.from_numpy(X0.copy()), prediction="eps", backend="cpu", seed=5)
    assert isinstance(st.x_model, torch.Tensor) and st.t_model == GRID[0]
    out = _drive(st, net)  # outputs require grad: detached, shared zero-copy
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-10)


def test_float32_torch_state():
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(X0.astype(np.float32))
    st = Stepper("ddpm", VP, GRID, x_init=x, prediction="eps", seed=5)
    out = _drive(st, lambda x, t: torch.from_numpy(np_eps(x.numpy().astype(np.float64), t).astype(np.float32)))
    ref = ds.sample("ddpm", np_eps, VP, GRID, x_init=X0, seed=5, prediction="eps")
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_target_data_prediction_and_batch_split():
    tgt = from_spec(f"gmm:d={D},k=3,seed=2")
    data = lambda x, t: tgt.denoise(x, t, VP)  # noqa: E731
    ref = ds.sample("ddpm", tgt, VP, GRID, x_init=X0, seed=8, backend="numpy")
    parts = [_drive(Stepper("ddpm", VP, GRID, x_init=X0[lo:hi], prediction="data", seed=8, sample_offset=lo), data)
             for lo, hi in ((0, 5), (5, 16))]
    np.testing.assert_allclose(np.concatenate(parts), ref, rtol=1e-12, atol=1e-12)


def test_errors_are_clear():
    st = Stepper("ddim", VP, GRID, x_init=X0, prediction="eps")
    with pytest.raises(ModelOutputError, match="shape"):
        st.step(np.zeros((16, D + 1)))
    with pytest.raises(ModelOutputError, match="dtype"):
        st.step(np.zeros((16, D), dtype=np.int64))
    _drive(st, np_eps)  # rejected outputs leave the stepper untouched
    np.testing.assert_array_equal(st.x, ds.sample("ddim", np_eps, VP, GRID, x_init=X0, prediction="eps"))
    with pytest.raises(ModelOutputError, match="NaN/inf"):
        Stepper("ddim", VP, GRID, x_init=X0, prediction="eps").step(np.full((16, D), np.nan))
    with pytest.raises(DiffsolveError, match="done"):
        st.x_model
    with pytest.raises(DiffsolveError, match="unknown backend"):
        Stepper("ddim", VP, GRID, x_init=X0, backend="gpu")
    with pytest.raises(DiffsolveError, match="prediction"):
        Stepper("ddim", VP, GRID, x_init=X0, prediction="noise")
    with pytest.raises(DiffsolveError, match="batch axis"):
        Stepper("ddim", VP, GRID, x_init=X0[0])


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None, reason="numba-cuda is not installed")
def test_cuda_stepper_on_simulator():
    script = """
    import numpy as np, diffsolve as ds
    from numba import cuda
    from diffsolve.stepper import Stepper
    import sys; sys.path.insert(0, "tests")
    from helpers import table_solvers
    from tests.test_stepper import np_eps, X0, VP
    grid = ds.time_grid(VP, 3, "time")
    for solver in table_solvers() + [ds.get_solver("accel-sde", c=0.05)]:
        ref = ds.sample(solver, np_eps, VP, grid, x_init=X0[:4], seed=5, prediction="eps")
        st = Stepper(solver, VP, grid, x_init=X0[:4], prediction="eps", backend="cuda", seed=5)
        while not st.done:
            st.step(cuda.to_device(np_eps(st.x_model.copy_to_host(), st.t_model)))
        out = st.x.copy_to_host()
        assert np.max(np.abs(out - ref)) < 1e-12 * np.max(np.abs(ref)), solver
    print("ok")
    """
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_first_compilation_is_announced_once_and_not_on_a_warm_cache(tmp_path):
    """A cold Numba cache: one line on stderr says that kernels are being compiled; the same job again on the now
    warm cache compiles nothing and says nothing."""
    code = textwrap.dedent("""
        import numpy as np, diffsolve as ds
        s = ds.get_schedule("vp-linear")
        x = np.ones((2, 3))
        ds.sample("ddim", lambda x, t: 0.5 * x, s, ds.time_grid(s, 2), x_init=x, prediction="eps", backend="cpu")
        ds.sample("ddpm", lambda x, t: 0.5 * x, s, ds.time_grid(s, 2), x_init=x, prediction="eps", backend="cpu")
    """)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:] + runs[1].stderr[-2000:]
    assert runs[0].stderr.count("diffsolve: compiling kernels") == 1, runs[0].stderr
    assert "compiling" not in runs[1].stderr, runs[1].stderr
