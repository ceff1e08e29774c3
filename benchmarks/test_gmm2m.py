"""GMM-2M (docs/benchmarks.md): diffsolve cpu (fused) vs the diffsolve numpy backend vs plain vectorised NumPy on the
CPU; diffsolve cuda vs PyTorch eager and torch.compile on a CUDA GPU (skipped without one).  See gmm2m.py."""

import numba
import numpy as np
import pytest

import gmm2m

CPU_N = 32768
GPU_N = 2**20


@pytest.fixture(scope="module")
def cpu_job():
    job = gmm2m.make_job(CPU_N)
    ref = gmm2m.run_plain_numpy(job)
    out = gmm2m.run_diffsolve(job, "cpu")
    assert np.max(np.abs(out - ref)) < 1e-9 * np.max(np.abs(ref))  # the same job, not just the same shapes
    return job


def test_cpu_fused(benchmark, cpu_job, record):
    benchmark.group = "gmm2m-cpu"
    benchmark.extra_info.update(solver=cpu_job.solver, n=cpu_job.n, threads=numba.get_num_threads())
    benchmark.pedantic(gmm2m.run_diffsolve, args=(cpu_job, "cpu"), rounds=5, warmup_rounds=1)
    record("gmm2m-cpu", "diffsolve cpu (fused)", benchmark, cpu_job.flops())


def test_plain_numpy(benchmark, cpu_job, record):
    benchmark.group = "gmm2m-cpu"
    benchmark.pedantic(gmm2m.run_plain_numpy, args=(cpu_job,), rounds=3, warmup_rounds=1)
    record("gmm2m-cpu", "plain NumPy (matmul)", benchmark, cpu_job.flops(), baseline=True)


def test_numpy_backend(benchmark, cpu_job, record):
    benchmark.group = "gmm2m-cpu"
    benchmark.pedantic(gmm2m.run_diffsolve, args=(cpu_job, "numpy"), rounds=1)
    record("gmm2m-cpu", "diffsolve numpy backend", benchmark, cpu_job.flops())


needs_gpu = pytest.mark.skipif(not gmm2m.has_cuda_gpu(), reason="no CUDA GPU (torch.cuda.is_available() is False)")


@pytest.fixture(scope="module")
def gpu_job():
    return gmm2m.make_job(GPU_N, dtype=np.float32)


@needs_gpu
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compile"])
def test_gpu_torch(benchmark, gpu_job, record, compiled):
    run = gmm2m.torch_runner(gpu_job, compiled=compiled)

    def go():
        run()
        gmm2m.cuda_sync()

    benchmark.group = "gmm2m-gpu"
    benchmark.pedantic(go, rounds=10, warmup_rounds=2)
    record("gmm2m-gpu", f"torch {'compile' if compiled else 'eager'}", benchmark, 0, baseline=compiled)


@needs_gpu
def test_gpu_diffsolve_cuda(benchmark, gpu_job, record):
    benchmark.group = "gmm2m-gpu"
    benchmark.pedantic(gmm2m.run_diffsolve, args=(gpu_job, "cuda"), rounds=10, warmup_rounds=2)
    record("gmm2m-gpu", "diffsolve cuda (fused, incl. transfers)", benchmark, 0)
