"""Per-step solver overhead in a user's own loop (docs/benchmarks.md, second anchor table): diffsolve's Stepper fed
a fixed model output, against one torch axpy (the arithmetic floor) and, when installed, diffusers'
DPMSolverMultistepScheduler.

CPU, 1 thread (Numba and torch), float32 tensors; 50 steps; the time per step is the loop time / 50 (construction
and ``set_timesteps`` excluded).
"""

import numba
import pytest

import diffsolve as ds
from diffsolve.stepper import Stepper

torch = pytest.importorskip("torch")

SHAPES = [(1, 4), (1, 4, 64, 64), (16, 4, 64, 64)]
STEPS = 50
VP = ds.get_schedule("vp-linear")
GRID = ds.time_grid(VP, STEPS, "time")
SOLVER = "dpmpp-2m" if any(n == "dpmpp-2m" for n in ds.solvers.solver_names()) else "ddim"


@pytest.fixture(autouse=True)
def one_thread():
    nt, tt = numba.get_num_threads(), torch.get_num_threads()
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    yield
    numba.set_num_threads(nt)
    torch.set_num_threads(tt)


def _ids(shape):
    return "x".join(map(str, shape))


@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_diffsolve_stepper(benchmark, record, shape):
    x = torch.randn(*shape)
    out = torch.randn(*shape)

    def setup():  # construction (coefficient table, buffers) is not per-step overhead
        return (Stepper(SOLVER, VP, GRID, x_init=x, prediction="eps", backend="cpu"),), {}

    def loop(st):
        while not st.done:
            st.step(out)

    loop(setup()[0][0])
    benchmark.group = f"stepper-{_ids(shape)}"
    benchmark.extra_info.update(solver=SOLVER)
    benchmark.pedantic(loop, setup=setup, rounds=5)
    record(benchmark.group, f"diffsolve Stepper {SOLVER} (x{STEPS} steps)", benchmark, 0)


@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_torch_axpy_floor(benchmark, record, shape):
    x = torch.randn(*shape)
    out = torch.randn(*shape)

    def loop():
        for _ in range(STEPS):
            x.add_(out, alpha=1e-3)

    benchmark.group = f"stepper-{_ids(shape)}"
    benchmark.pedantic(loop, rounds=5, warmup_rounds=1)
    record(benchmark.group, f"torch axpy (x{STEPS})", benchmark, 0)


@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_diffusers_dpmpp_2m(benchmark, record, shape):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DPMSolverMultistepScheduler(solver_order=2)
    x = torch.randn(*shape)
    out = torch.randn(*shape)

    def setup():
        sched.set_timesteps(STEPS)
        return (), {}

    def loop():
        s = x
        for t in sched.timesteps:
            s = sched.step(out, t, s).prev_sample

    setup()
    loop()
    benchmark.group = f"stepper-{_ids(shape)}"
    benchmark.pedantic(loop, setup=setup, rounds=5)
    record(benchmark.group, f"diffusers DPM++2M (x{STEPS})", benchmark, 0, baseline=True)
