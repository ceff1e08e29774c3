"""Per-step solver overhead in a user's own loop (docs/benchmarks.md, second anchor table): diffsolve's Stepper fed
a fixed model output, against one torch axpy (the arithmetic floor) and, when installed, diffusers'
DPMSolverMultistepScheduler.

CPU, 1 thread (Numba and torch), float32 tensors; 50 steps; the time per step is the loop time / 50 (construction
and ``set_timesteps`` excluded).  The cases are importable (``benchmarks/gpu_suite.py`` times them on a GPU): each
``*_case(x, out, ...)`` returns ``(setup, loop)``, ``loop(setup())`` running every step once.
"""

import time

import numba
import pytest

import diffsolve as ds
from diffsolve.stepper import Stepper

torch = pytest.importorskip("torch")

SHAPES = [(1, 4), (1, 4, 64, 64), (16, 4, 64, 64)]
STEPS = 50
VP = ds.get_schedule("vp-linear")
SOLVER = "dpmpp-2m" if any(n == "dpmpp-2m" for n in ds.solvers.solver_names()) else "ddim"


def stepper_case(x, out, backend="cpu", steps=STEPS):
    """diffsolve's Stepper (``SOLVER``, eps prediction) on ``x``, fed ``out`` at every step (torch tensors, or NumPy
    arrays for the cuda backend on Numba's simulator); construction (coefficient table, buffers) is the setup."""
    grid = ds.time_grid(VP, steps, "time")

    def setup():
        return Stepper(SOLVER, VP, grid, x_init=x, prediction="eps", backend=backend)

    def loop(st):
        while not st.done:
            st.step(out)

    return setup, loop


def axpy_case(x, out, steps=STEPS):
    """One torch axpy per step (the arithmetic floor of a first-order update)."""

    def loop(_):
        for _ in range(steps):
            x.add_(out, alpha=1e-3)

    return (lambda: None), loop


def diffusers_case(x, out, steps=STEPS):
    """diffusers' ``DPMSolverMultistepScheduler(solver_order=2).step``; ``set_timesteps`` (on x's device, as a
    pipeline calls it) is the setup.  Raises ImportError without diffusers."""
    from diffusers import DPMSolverMultistepScheduler

    sched = DPMSolverMultistepScheduler(solver_order=2)

    def setup():
        sched.set_timesteps(steps, device=x.device)
        return sched

    def loop(s):
        y = x
        for t in s.timesteps:
            y = s.step(out, t, y).prev_sample

    return setup, loop


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


def _bench(benchmark, case, group):
    setup, loop = case
    loop(setup())  # warm-up (compiles)
    benchmark.group = group
    benchmark.pedantic(loop, setup=lambda: ((setup(),), {}), rounds=25)  # the min of many: robust to a noisy guest


@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_diffsolve_stepper(benchmark, record, shape):
    benchmark.extra_info.update(solver=SOLVER)
    group = f"stepper-{_ids(shape)}"
    _bench(benchmark, stepper_case(torch.randn(*shape), torch.randn(*shape)), group)
    record(group, f"diffsolve Stepper {SOLVER} (x{STEPS} steps)", benchmark, 0)


@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_torch_axpy_floor(benchmark, record, shape):
    group = f"stepper-{_ids(shape)}"
    _bench(benchmark, axpy_case(torch.randn(*shape), torch.randn(*shape)), group)
    record(group, f"torch axpy (x{STEPS})", benchmark, 0)


@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_diffusers_dpmpp_2m(benchmark, record, shape):
    pytest.importorskip("diffusers")
    group = f"stepper-{_ids(shape)}"
    _bench(benchmark, diffusers_case(torch.randn(*shape), torch.randn(*shape)), group)
    record(group, f"diffusers DPM++2M (x{STEPS})", benchmark, 0, baseline=True)


@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_stepper_and_diffusers_in_alternation(benchmark, record_seconds, shape):
    """The Stepper and diffusers timed in alternation, round by round (25 rounds of each): both minima come from
    the same stretch of time, which a guest whose speed drifts between runs needs for a fair ratio (the separate
    tests above each see a different stretch)."""
    pytest.importorskip("diffusers")
    x, out = torch.randn(*shape), torch.randn(*shape)
    cases = {f"diffsolve Stepper {SOLVER}": stepper_case(x, out), "diffusers DPM++2M": diffusers_case(x, out)}
    times = {name: [] for name in cases}
    for setup, loop in cases.values():
        loop(setup())  # warm-up (compiles)

    def one_round():
        for name, (setup, loop) in cases.items():
            state = setup()
            start = time.perf_counter()
            loop(state)
            times[name].append(time.perf_counter() - start)

    benchmark.group = f"stepper-{_ids(shape)}-alternating"
    benchmark.pedantic(one_round, rounds=25)
    best = {name: min(ts) for name, ts in times.items()}
    benchmark.extra_info.update({f"min {name} (s)": t for name, t in best.items()})
    for name, t in best.items():
        record_seconds(benchmark.group, f"{name} (x{STEPS}, alternating)", t, baseline=name.startswith("diffusers"))
