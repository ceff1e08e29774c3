"""``ds.sample`` with torch models, conditioning (``model_kwargs``), callbacks and saved trajectories (Solution)."""

import numpy as np
import pytest

import diffsolve as ds
from diffsolve.errors import DiffsolveError, DiffsolveTypeError, ModelOutputError
from diffsolve.solution import Solution, StepRecord
from diffsolve.targets import from_spec

torch = pytest.importorskip("torch")

VP = ds.get_schedule("vp-linear")
GRID = ds.time_grid(VP, 8)
D = 5
X0 = np.random.default_rng(0).standard_normal((7, D))


class EpsNet(torch.nn.Module):
    """A tiny eps-model: random weights fixed by a seed; ``scale`` a conditioning keyword."""

    def __init__(self, dtype=torch.float64):
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        self.lin = torch.nn.Linear(D, D, dtype=dtype)
        with torch.no_grad():
            self.lin.weight.copy_(0.3 * torch.randn(D, D, generator=gen))
            self.lin.bias.copy_(0.1 * torch.randn(D, generator=gen))
        self.seen = []

    def forward(self, x, t, scale=1.0):
        self.seen.append((x.dtype, x.device, scale))
        return torch.tanh(self.lin(x)) * (1.0 + t) * scale


def as_numpy_model(net):
    """The same function as a NumPy callable (what ``ds.sample`` called before torch models were supported)."""
    return lambda x, t: net(torch.from_numpy(x), t).detach().numpy()


@pytest.mark.parametrize("solver", ["ddim", "ddpm", "dpmpp-3m", "dpmpp-2s"])
def test_torch_module_equals_numpy_model_bitwise(solver):
    net = EpsNet()
    ref = ds.sample(solver, as_numpy_model(net), VP, GRID, x_init=X0, seed=4, prediction="eps")
    xt = torch.from_numpy(X0.copy())
    out = ds.sample(solver, net, VP, GRID, x_init=xt, seed=4, prediction="eps")
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == xt.shape
    np.testing.assert_array_equal(out.numpy(), ref)
    np.testing.assert_array_equal(xt.numpy(), X0)  # x_init is never written to
    assert all(d == torch.float64 for d, _, _ in net.seen)
    cpu = ds.sample(solver, net, VP, GRID, x_init=xt, seed=4, prediction="eps", backend="cpu")
    np.testing.assert_array_equal(cpu.numpy(), ref)  # the cpu engine gives the numpy engine's bits


def test_float32_torch_model():
    net64, net32 = EpsNet(), EpsNet(torch.float32)
    x32 = torch.from_numpy(X0.astype(np.float32))
    out = ds.sample("dpmpp-2m", net32, VP, GRID, x_init=x32, seed=1, prediction="eps")
    assert out.dtype == torch.float32  # dtype "auto": x_init's
    same = ds.sample("dpmpp-2m", as_numpy_model(net32), VP, GRID, x_init=X0.astype(np.float32), seed=1,
                     prediction="eps", dtype=np.float32)
    np.testing.assert_array_equal(out.numpy(), same)
    ref = ds.sample("dpmpp-2m", as_numpy_model(net64), VP, GRID, x_init=X0, seed=1, prediction="eps")
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    # float64 working precision around a float32 model: the model still gets float32 tensors
    wide = ds.sample("dpmpp-2m", net32, VP, GRID, x_init=x32, seed=1, prediction="eps", dtype=np.float64)
    assert wide.dtype == torch.float64 and net32.seen[-1][0] == torch.float32


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_precision_models_compute_in_float32(half):
    half = getattr(torch, half)
    net = EpsNet(half)
    x = torch.from_numpy(X0).to(half)
    out = ds.sample("ddim", net, VP, GRID, x_init=x, prediction="eps")
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert {d for d, _, _ in net.seen} == {half}  # the model is called in its own dtype
    ref = ds.sample("ddim", as_numpy_model(EpsNet()), VP, GRID, x_init=x.double().numpy(), prediction="eps")
    tol = 0.05 if half == torch.float16 else 0.2
    np.testing.assert_allclose(out.numpy(), ref, atol=tol * np.abs(ref).max())


def test_model_kwargs_reach_every_call():
    net = EpsNet()
    sol = ds.sample("dpmpp-2m", net, VP, GRID, x_init=torch.from_numpy(X0), prediction="eps",
                    model_kwargs={"scale": 0.5}, save_every=100)
    assert [s for _, _, s in net.seen] == [0.5] * sol.nfe
    ref = ds.sample("dpmpp-2m", lambda x, t: 0.5 * as_numpy_model(EpsNet())(x, t), VP, GRID, x_init=X0,
                    prediction="eps")
    np.testing.assert_allclose(sol.x.numpy(), ref, rtol=1e-12, atol=1e-12)
    seen = []  # NumPy models get them too
    ds.sample("ddim", lambda x, t, y: seen.append(y) or np.tanh(x) * y, VP, GRID, x_init=X0, prediction="eps",
              model_kwargs=dict(y=2.0))
    assert seen == [2.0] * (len(GRID) - 1)


def _stepper_states(solver, model, x_init, backend, **kw):
    st = ds.Stepper(solver, VP, GRID, x_init=x_init, prediction="eps", backend=backend, **kw)
    states = [np.array(st.host_x(), copy=True)]
    while not st.done:
        before = st.step_index
        st.step(model(st.x_model, st.t_model))
        if st.step_index != before:
            states.append(np.array(st.host_x(), copy=True))
    return st, np.stack(states)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_callback_and_solution_are_copies_equal_to_a_stepper_loop(kind):
    net = EpsNet()
    model = as_numpy_model(net) if kind == "numpy" else net
    x = X0 if kind == "numpy" else torch.from_numpy(X0)
    records = []
    sol = ds.sample("dpmpp-3m", model, VP, GRID, x_init=x, prediction="eps", seed=2, callback=records.append,
                    save_every=1)
    st, states = _stepper_states("dpmpp-3m", model, x, "numpy", seed=2)
    assert isinstance(sol, Solution) and sol.nfe == st.nfe == 8
    np.testing.assert_array_equal(sol.steps, np.arange(9))
    np.testing.assert_array_equal(np.asarray(sol.ys), states)
    np.testing.assert_array_equal(sol.ts, GRID)  # one step per grid interval: the grid itself
    assert [r.step for r in records] == list(range(1, 9)) and [r.nfe for r in records] == list(range(1, 9))
    assert all(isinstance(r, StepRecord) and r.t == GRID[r.step] for r in records)
    for r in records:
        np.testing.assert_array_equal(np.asarray(r.x), states[r.step])
        expect = net(torch.from_numpy(states[r.step - 1]), GRID[r.step - 1]).detach().numpy()
        np.testing.assert_allclose(np.asarray(r.model_output), expect, rtol=1e-14, atol=1e-14)  # BLAS layout
    arrays = [np.asarray(y) for y in sol.ys] + [np.asarray(r.x) for r in records]
    assert not any(np.shares_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1:])
    keep = np.asarray(sol.ys[1]).copy()
    sol.ys[0][...] = 0.0
    records[0].x[...] = 0.0
    np.testing.assert_array_equal(np.asarray(sol.ys[1]), keep)
    np.testing.assert_array_equal(np.asarray(sol.x), states[-1])
    plain = ds.sample("dpmpp-3m", model, VP, GRID, x_init=x, prediction="eps", seed=2)
    np.testing.assert_array_equal(np.asarray(plain), states[-1])


def test_save_every_keeps_initial_every_kth_and_last():
    sol = ds.sample("ddim", as_numpy_model(EpsNet()), VP, GRID, x_init=X0, prediction="eps", save_every=3)
    np.testing.assert_array_equal(sol.steps, [0, 3, 6, 8])
    np.testing.assert_array_equal(sol.ts, GRID[[0, 3, 6, 8]])
    assert sol.ys.shape == (4,) + X0.shape and "Solution(4 states" in repr(sol)
    np.testing.assert_array_equal(sol.ys[0], X0)


@pytest.mark.parametrize("solver,params", [("ddpm", {}), ("dpmpp-3m", {}), ("mala", dict(iterations=4)),
                                           ("pc", {})])
def test_fused_target_runs_record_like_the_stepper(solver, params):
    """backend='cpu' fuses a mixture target; with save_every or a callback it runs the Stepper loop instead, whose
    trajectory is the numpy engine's bit for bit (and the fused result agrees to rounding)."""
    tgt = from_spec("gmm:d=3,k=3,seed=1")
    grid = [0.5, 0.4] if solver == "mala" else GRID
    kw = dict(n=9, seed=3, save_every=1, **params)
    fused = ds.sample(solver, tgt, VP, grid, backend="cpu", **kw)
    stepper = ds.sample(solver, tgt, VP, grid, backend="numpy", **kw)
    np.testing.assert_array_equal(fused.ys, stepper.ys)
    np.testing.assert_array_equal(fused.ts, stepper.ts)
    assert fused.nfe == stepper.nfe and fused.stats == stepper.stats
    if solver == "mala":
        assert 0.0 < fused.stats["acceptance"][0] <= 1.0
    plain = ds.sample(solver, tgt, VP, grid, backend="cpu", n=9, seed=3, **params)  # fused, no recording
    np.testing.assert_allclose(fused.x, plain, rtol=0, atol=1e-12)
    calls = []
    cb = ds.sample(solver, tgt, VP, grid, backend="cpu", n=9, seed=3, callback=calls.append, **params)
    np.testing.assert_array_equal(cb, fused.x)
    assert len(calls) == len(fused.ts) - 1


def test_target_with_torch_x_init_returns_tensors():
    tgt = from_spec("gmm:d=5,k=2,seed=0")
    ref = ds.sample("ddim", tgt, VP, GRID, x_init=X0)
    out = ds.sample("ddim", tgt, VP, GRID, x_init=torch.from_numpy(X0))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), ref)
    sol = ds.sample("ddim", tgt, VP, GRID, x_init=torch.from_numpy(X0), save_every=4)
    assert isinstance(sol.ys, torch.Tensor) and sol.ys.shape == (3,) + X0.shape


def _err(fn, cls, *fragments):
    with pytest.raises(cls) as info:
        fn()
    for f in fragments:
        assert f in str(info.value), (f, str(info.value))


def test_bad_input_names_the_parameter():
    net, x = EpsNet(), torch.from_numpy(X0)
    run = lambda **kw: ds.sample("ddim", kw.pop("model", net), VP, GRID, x_init=kw.pop("x_init", x),  # noqa: E731
                                 prediction="eps", **kw)
    _err(lambda: run(callback=3), DiffsolveTypeError, "callback", "int")
    for bad in (0, -2):
        _err(lambda: run(save_every=bad), DiffsolveError, "save_every", str(bad))
    for bad in (1.5, True, "2"):
        _err(lambda: run(save_every=bad), DiffsolveTypeError, "save_every")
    _err(lambda: run(model_kwargs=[("scale", 1.0)]), DiffsolveTypeError, "model_kwargs", "list")
    _err(lambda: run(model_kwargs={1: 2}), DiffsolveTypeError, "model_kwargs", "1")
    _err(lambda: ds.sample("ddim", from_spec("gaussian:d=5"), VP, GRID, x_init=X0, model_kwargs=dict(y=1)),
         DiffsolveError, "model_kwargs", "target")
    _err(lambda: run(model=lambda x, t: x[:, :2]), ModelOutputError, "shape")
    _err(lambda: run(model=lambda x, t: torch.zeros_like(x, dtype=torch.int64)), ModelOutputError, "dtype")
    _err(lambda: run(model=lambda x, t: torch.empty(x.shape, device="meta")), ModelOutputError, "meta", "device")
    _err(lambda: run(model=lambda x, t: None), ModelOutputError, "NoneType")
    _err(lambda: run(x_init=torch.zeros((3, D), dtype=torch.int32)), DiffsolveError, "x_init", "int32")
    _err(lambda: run(x_init=torch.zeros((3, D), dtype=torch.complex64)), DiffsolveError, "x_init", "complex64")
    _err(lambda: run(x_init=torch.zeros(D)), DiffsolveError, "x_init", "batch")
    _err(lambda: run(x_init=torch.full((3, D), float("nan"))), DiffsolveError, "x_init", "NaN")
    _err(lambda: run(x_init=torch.zeros((0, D))), DiffsolveError, "x_init", "empty")
    _err(lambda: run(n=3), DiffsolveError, "n=3")
    _err(lambda: run(dtype=np.float16), DiffsolveError, "dtype")
