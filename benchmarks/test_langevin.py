"""Langevin inner-loop throughput (sample-iterations per second, docs/benchmarks.md): RTK-MALA and RTK-ULD on an
8-D, 16-component mixture, the fused chain kernel (cpu; cuda on a GPU) against the NumPy reference (the numpy
backend's Stepper) and the cpu Stepper's compiled passes with the model called from Python, in one run."""

import os

import numba
import numpy as np
import pytest

import diffsolve as ds
from diffsolve import targets

OU = ds.get_schedule("ou")
TARGET = targets.from_spec("gmm:d=8,k=16,seed=4")
GRID = ds.time_grid(OU, 10, "time", t_max=2.0, t_min=0.05)
INNER = 10
SOLVERS = {"rtk-mala": dict(inner=INNER, energy="trapezoid"), "rtk-uld": dict(inner=INNER)}
CPU_N = 8192
GPU_N = 2**18


def iterations(name, n):
    """Chain iterations of the job (segments x inner iterations x samples)."""
    return n * (len(GRID) - 1) * INNER


def run_job(name, backend, n, model=None, dtype=np.float64):
    """The job of ``name`` on ``n`` samples (the first n of one fixed stream: a sample does not depend on n) in
    ``dtype``; ``model`` (a score callable) instead of the target runs the Stepper."""
    x0 = np.random.default_rng(0).standard_normal((n, TARGET.dim)).astype(dtype)
    if model is None:
        return ds.sample(name, TARGET, OU, GRID, x_init=x0, seed=1, backend=backend, dtype=None, **SOLVERS[name])
    return ds.sample(name, model, OU, GRID, x_init=x0, seed=1, backend=backend, prediction="score", dtype=None,
                     **SOLVERS[name])


def _python_model(x, t):
    return TARGET.predict(x, t, OU, "score")


@pytest.fixture(scope="module", params=list(SOLVERS))
def name(request):
    ref = run_job(request.param, "numpy", 256)
    assert np.max(np.abs(run_job(request.param, "cpu", 256) - ref)) < 1e-9 * np.max(np.abs(ref))  # the same job
    return request.param


def test_cpu_chain_kernel(benchmark, name, record):
    benchmark.group = f"langevin-{name}-cpu"
    benchmark.extra_info.update(n=CPU_N, threads=numba.get_num_threads())
    benchmark.pedantic(run_job, args=(name, "cpu", CPU_N), rounds=5, warmup_rounds=1)
    record(benchmark.group, "diffsolve cpu (fused chain kernel)", benchmark, 0,
           work=(iterations(name, CPU_N), "sample-iterations"))


def test_cpu_stepper_compiled_passes(benchmark, name, record):
    benchmark.group = f"langevin-{name}-cpu"
    benchmark.pedantic(run_job, args=(name, "cpu", CPU_N, _python_model), rounds=2, warmup_rounds=1)
    record(benchmark.group, "cpu Stepper (Python model, compiled passes)", benchmark, 0,
           work=(iterations(name, CPU_N), "sample-iterations"))


def test_numpy_reference(benchmark, name, record):
    benchmark.group = f"langevin-{name}-cpu"
    benchmark.pedantic(run_job, args=(name, "numpy", CPU_N), rounds=2)
    record(benchmark.group, "diffsolve numpy backend (reference)", benchmark, 0, baseline=True,
           work=(iterations(name, CPU_N), "sample-iterations"))


def has_gpu():
    """A real CUDA GPU (not Numba's simulator)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False
    try:
        from numba import cuda
    except ImportError:
        return False
    return cuda.is_available()


@pytest.mark.skipif(not has_gpu(), reason="no CUDA GPU")
def test_gpu_chain_kernel(benchmark, name, record):
    benchmark.group = f"langevin-{name}-gpu"
    benchmark.pedantic(run_job, args=(name, "cuda", GPU_N), rounds=5, warmup_rounds=1)
    record(benchmark.group, "diffsolve cuda (chain kernel, incl. transfers)", benchmark, 0,
           work=(iterations(name, GPU_N), "sample-iterations"))


@pytest.mark.skipif(not has_gpu(), reason="no CUDA GPU")
def test_gpu_vs_cpu_baseline(benchmark, name, record):
    benchmark.group = f"langevin-{name}-gpu"
    benchmark.pedantic(run_job, args=(name, "cpu", GPU_N), rounds=1)
    record(benchmark.group, "diffsolve cpu (fused chain kernel)", benchmark, 0, baseline=True,
           work=(iterations(name, GPU_N), "sample-iterations"))
