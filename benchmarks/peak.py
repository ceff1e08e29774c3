"""This machine's float64 FMA peak, measured with a Numba loop (the roofline's compute ceiling).

Each thread updates 16 independent 8-wide rows of accumulators held in a tiny array (a = a * b + c), which LLVM
turns into back-to-back vector FMAs with no memory traffic to speak of; 2 flop per FMA.
"""

from __future__ import annotations

import time

import numba
import numpy as np

WIDTH = 128  # accumulators per thread: 16 independent chains of 8 doubles


@numba.njit(parallel=True, fastmath=True, cache=True)
def _fma_loop(acc, b, c, reps):
    for t in numba.prange(acc.shape[0]):
        row = acc[t]
        for _ in range(reps):
            for j in range(WIDTH):
                row[j] = row[j] * b + c
    return acc


def peak_flops(threads: int | None = None, reps: int = 200_000) -> float:
    """Measured float64 FLOP/s with ``threads`` Numba threads (default: all)."""
    threads = threads or numba.config.NUMBA_NUM_THREADS
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        acc = np.ones((threads, WIDTH))
        _fma_loop(acc, 0.999999, 1e-7, 10)
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            _fma_loop(acc, 0.999999, 1e-7, reps)
            best = min(best, time.perf_counter() - t0)
    finally:
        numba.set_num_threads(old)
    return 2.0 * WIDTH * reps * threads / best


def machine_peak(threads: int) -> float:
    """The roofline's ceiling for ``threads`` cores: ``threads`` x the measured one-thread peak (robust to other
    processes occupying some cores while benchmarks run; on an idle machine it matches ``peak_flops(threads)``)."""
    return threads * peak_flops(1)


if __name__ == "__main__":
    for n in range(1, numba.config.NUMBA_NUM_THREADS + 1):
        print(f"{n} thread(s): {peak_flops(n) / 1e9:.1f} GFLOP/s float64")
