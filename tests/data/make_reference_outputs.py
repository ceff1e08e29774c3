"""Write ``reference_outputs.npz``: samples of every registered solver on the numpy and cpu backends.

The file was written once, by the runtime as it stood before its engines were unified (one engine per backend,
one driver); ``tests/test_reference_outputs.py`` checks that today's runtime still produces the same bits.  Run
this script only to extend the fixture with new solvers (``python tests/data/make_reference_outputs.py``), and
never to paper over a change in existing numbers.

The bits of NumPy's transcendental functions depend on the machine (its SIMD paths: AVX2, AVX-512, ...) and on the
NumPy / SciPy versions, so the script also writes ``reference_outputs.json``, the :func:`machine` it ran on; the
test demands equal bits on that machine and agreement to ``ELSEWHERE_RTOL`` on others.  Rewritten 2026-12-03 on
an AVX-512 (Sapphire Rapids) machine after checking that the runtime of then (a715ea1) and of this commit give
bitwise the same samples for every earlier key; the earlier file differed by up to 1.3e-12 relative there.

Every case runs with ``warm_down=inf``: the multistep warm-down came after the fixture and is a choice of the
method (which levels a step uses, tested in ``tests/test_final_step.py``), not of the runtime whose bits this
fixture pins; without it the tables are the ones the fixture recorded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import diffsolve as ds
from diffsolve.stepper import Stepper

HERE = Path(__file__).resolve().parent
ELSEWHERE_RTOL = 1e-10  # another machine or library version: a few ulp per step, amplified by the SDE cases


def machine() -> dict:
    """What the bits of the fixture depend on besides diffsolve: NumPy and SciPy versions, NumPy's SIMD features."""
    import scipy
    from numpy._core._multiarray_umath import __cpu_features__

    return {"numpy": np.__version__, "scipy": scipy.__version__,
            "simd": sorted(k for k, v in __cpu_features__.items() if v)}
SCHEDULE = ds.get_schedule("vp-linear")
GRID = ds.time_grid(SCHEDULE, 7, "logsnr")
TARGET = ds.targets.from_spec("gmm:d=3,k=4,seed=1")
N, SEED, OFFSET = 24, 11, 5
_rng = np.random.default_rng(7)
_W = 0.4 * _rng.standard_normal((3, 3))


def eps_model(x, t):
    """A smooth nonlinear eps model (not a target: the generic path of every backend)."""
    return np.tanh(x @ _W.T) * (1.0 + t) + 0.1 * x


def x_init():
    return ds.sampling.prior_sample(SCHEDULE, GRID[0], N, 3, seed=SEED, sample_offset=OFFSET)


def cases():
    """(key, thunk) for every output in the fixture."""
    names = [n for n in ds.solvers.solver_names()  # the tableau solvers the fixture was made of
             if isinstance(ds.get_solver(n.split(":")[0], variant=(n.split(":") + [None])[1]), ds.solvers.Solver)]
    out = []
    plain = dict(warm_down=np.inf)  # the levels as the fixture was written (module docstring)
    for name in names + ["accel-sde(c=0.05)"]:
        solver = ds.get_solver("accel-sde", c=0.05, **plain) if name == "accel-sde(c=0.05)" else ds.get_solver(
            name, **plain)
        for backend in ("numpy", "cpu"):
            out.append((f"{name}|target|{backend}", lambda s=solver, b=backend: ds.sample(
                s, TARGET, SCHEDULE, GRID, n=N, seed=SEED, sample_offset=OFFSET, backend=b)))
            out.append((f"{name}|model|{backend}", lambda s=solver, b=backend: ds.sample(
                s, eps_model, SCHEDULE, GRID, x_init=x_init(), seed=SEED, sample_offset=OFFSET, backend=b,
                prediction="eps")))
            out.append((f"{name}|stepper|{backend}", lambda s=solver, b=backend: Stepper(
                s, SCHEDULE, GRID, x_init=x_init(), prediction="eps", backend=b, seed=SEED,
                sample_offset=OFFSET).run(eps_model)))
    # exact multistep history (sample(history=...)) and rows long enough to be split into pieces (d > 4096)
    hist = [eps_model(x_init(), float(t)) * 0.5 for t in GRID[:2][::-1]]
    for backend in ("numpy", "cpu"):
        out.append((f"dpmpp-3m|history|{backend}", lambda b=backend: ds.sample(
            ds.get_solver("dpmpp-3m", **plain), eps_model, SCHEDULE, GRID, x_init=x_init(), history=hist, seed=SEED, backend=b,
            prediction="data")))
        wide = np.random.default_rng(3).standard_normal((2, 4100))
        out.append((f"dpmpp-2m-sde|wide|{backend}", lambda b=backend, w=wide: ds.sample(
            ds.get_solver("dpmpp-2m-sde", **plain), lambda x, t: 0.3 * x, SCHEDULE, GRID, x_init=w, seed=SEED, backend=b,
            prediction="eps")))
    return out


def main():
    arrays = {}
    for key, thunk in cases():
        try:
            arrays[key] = np.asarray(thunk())
        except Exception as exc:  # recorded: the same input must still fail
            print(f"{key}: {type(exc).__name__}: {exc}", file=sys.stderr)
    np.savez_compressed(HERE / "reference_outputs.npz", **arrays)
    (HERE / "reference_outputs.json").write_text(json.dumps(machine(), indent=1) + "\n")
    print(f"wrote {len(arrays)} arrays to {HERE / 'reference_outputs.npz'}")


if __name__ == "__main__":
    main()
