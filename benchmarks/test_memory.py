"""Peak memory of ``diffsolve sample`` (docs/benchmarks.md, "Memory"): the peak RSS of the CLI process for
2,000,000 2-D samples against the budget of 4x the sample array plus 300 MiB (the interpreter, NumPy, Numba and the
compiled kernels), one subprocess per backend."""

import subprocess
import sys

import pytest

N, D = 2_000_000, 2
ARRAY_MIB = N * D * 8 / 2**20
BUDGET_MIB = 4 * ARRAY_MIB + 300


def _peak_rss_mib(argv):
    """Peak RSS (MiB) of a process running ``argv``: ru_maxrss of the children of a fresh wrapper interpreter
    (of this process's children it would be the largest so far, not this one's)."""
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", wrapper, *argv], check=True, capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_cli_sample_peak_rss(benchmark, backend):
    argv = [sys.executable, "-m", "diffsolve.cli", "sample", "--solver", "ddim", "--steps", "10", "--target",
            "gmm:d=2,k=8,seed=0", "--n", str(N), "--backend", backend, "--no-progress", "--json"]
    peak = benchmark.pedantic(_peak_rss_mib, args=(argv,), rounds=1)
    benchmark.group = "memory"
    benchmark.extra_info.update(peak_rss_mib=round(peak, 1), budget_mib=round(BUDGET_MIB, 1),
                                array_mib=round(ARRAY_MIB, 1))
    print(f"\n{backend}: peak RSS {peak:.0f} MiB, budget {BUDGET_MIB:.0f} MiB (array {ARRAY_MIB:.1f} MiB)")
    assert peak <= BUDGET_MIB, (peak, BUDGET_MIB)  # a memory bound (not a timing): the acceptance
