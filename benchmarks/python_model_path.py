"""The per-step cost of ``ds.sample`` beyond the model call, with a Python model callable (the path of a user's own
network), against one NumPy axpy over the state (``x += a * y``), and its scaling in the number of samples.

The model returns a precomputed array (no model cost at all), so what is measured is diffsolve's work per step:
the output check and conversion to the solver's prediction, the tableau combine, the bookkeeping.  The per-step
cost is the difference of two runs, 2S and S steps, divided by S (set-up and first-use costs cancel).

    python benchmarks/python_model_path.py [--n 200000] [--d 8] [--scaling]
"""

from __future__ import annotations

import argparse
import os
import time

import numba
import numpy as np

import diffsolve as ds

SOLVER, STEPS = "dpmpp-2m", 20
VP = ds.get_schedule("vp-linear")


def _best(fn, repeat):
    fn()
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def sample_case(n: int, d: int, steps: int, dtype=np.float64):
    """``ds.sample`` of ``SOLVER`` for ``steps`` steps on (n, d) states with a model returning a fixed output."""
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((n, d)).astype(dtype)
    out = (0.1 * rng.standard_normal((n, d))).astype(dtype)
    grid = ds.time_grid(VP, steps, "time", t_max=1.0, t_min=1e-3)

    def model(x, t):
        return out

    return lambda: ds.sample(SOLVER, model, VP, grid, x_init=x0, prediction="eps", backend="cpu", dtype=None)


def axpy_case(n: int, d: int, dtype=np.float64):
    """One NumPy axpy over the state, as a NumPy user writes it."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, d)).astype(dtype)
    y = rng.standard_normal((n, d)).astype(dtype)

    def axpy():
        nonlocal x
        x += 1e-3 * y

    return axpy


def per_step(n: int, d: int, dtype=np.float64, repeat: int = 5):
    """(diffsolve's seconds per step beyond the model, seconds per axpy)."""
    t1 = _best(sample_case(n, d, STEPS, dtype), repeat)
    t2 = _best(sample_case(n, d, 2 * STEPS, dtype), repeat)
    return (t2 - t1) / STEPS, _best(axpy_case(n, d, dtype), 4 * repeat)


def fit_exponent(sizes, times) -> float:
    """The least-squares slope of log(time) against log(size)."""
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--d", type=int, default=8)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    p.add_argument("--scaling", action="store_true", help="also time n = 1e3 .. 1e6 and fit the exponent")
    args = p.parse_args(argv)
    numba.set_num_threads(args.threads)
    print(f"ds.sample with a Python model, {SOLVER}, {args.threads} Numba thread(s), load average "
          f"{os.getloadavg()[0]:.2f}; per step beyond the model = (T({2 * STEPS} steps) - T({STEPS} steps)) / {STEPS}")
    print("| state | dtype | diffsolve per step | one NumPy axpy | ratio |")
    print("|---|---|---|---|---|")
    for dtype in (np.float64, np.float32):
        s, a = per_step(args.n, args.d, dtype, args.repeat)
        print(f"| {args.n} x {args.d} | {np.dtype(dtype).name} | {s * 1e3:.3f} ms | {a * 1e3:.3f} ms | {s / a:.2f}x |")
    if args.scaling:
        sizes = [10**3, 10**4, 10**5, 10**6]
        rows = [per_step(n, args.d, np.float64, args.repeat) for n in sizes]
        print()
        print(f"| n (d = {args.d}, float64) | diffsolve per step | axpy | ratio |")
        print("|---|---|---|---|")
        for n, (s, a) in zip(sizes, rows):
            print(f"| {n} | {s * 1e6:.1f} us | {a * 1e6:.1f} us | {s / a:.2f}x |")
        big = [(n, s, a) for n, (s, a) in zip(sizes, rows) if n >= 10**4]
        ns, ts, ta = zip(*big)
        print(f"fitted exponent (n >= 1e4): diffsolve {fit_exponent(ns, ts):.2f}, axpy {fit_exponent(ns, ta):.2f}")


if __name__ == "__main__":
    main()
