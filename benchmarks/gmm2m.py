"""The GMM-2M anchor job of docs/benchmarks.md and its baselines, shared by the pytest-benchmark file and the CLI.

Job: isotropic Gaussian mixture, K = 16 components in d = 64, component variance 0.05, means 2 N(0, I), weights
softmax(N(0, 1)); exact data-prediction denoiser; VP-linear schedule (beta 0.1 -> 20); 20 steps uniform in t from
1 to 1e-3; float64 on the CPU (N = 32768), float32 on the GPU (N = 2**20).  Solver: ``dpmpp-2m`` when it is
registered, else the first-order ``ddim`` (same work per step: one denoiser call).

Implementations measured side by side: diffsolve ``cpu`` (fused kernel), diffsolve ``numpy`` (the reference
interpreter), a plain vectorised NumPy implementation written here (matmul distances), and on a CUDA machine
diffsolve ``cuda`` plus PyTorch eager and ``torch.compile`` versions of the plain implementation.  All of them
consume the same StepTable coefficients, so they compute the same algorithm.

    python benchmarks/gmm2m.py [--n 32768] [--repeat 5]     # prints a markdown table (ratios, roofline)
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass

import numba
import numpy as np

import diffsolve as ds
from diffsolve import predictions
from diffsolve.targets import GaussianMixture

K, D, VAR, STEPS = 16, 64, 0.05, 20


def solver_name() -> str:
    """``dpmpp-2m`` when the registry has it (by name or pattern), else ``ddim``."""
    try:
        ds.get_solver("dpmpp-2m")
        return "dpmpp-2m"
    except ds.DiffsolveError:
        return "ddim"


@dataclass
class Job:
    target: GaussianMixture
    schedule: object
    grid: np.ndarray
    x0: np.ndarray
    solver: str

    @property
    def n(self):
        return self.x0.shape[0]

    def table(self):
        return ds.get_solver(self.solver).table(self.schedule, self.grid)

    def flops(self):
        return 4 * K * self.x0.shape[1] * self.n * STEPS * ds.get_solver(self.solver).nfe_per_step

    def head(self, m: int, dtype=np.float64) -> "Job":
        """The same job on the first ``m`` samples in ``dtype`` (samples do not depend on their batch): the
        float64 reference of a float32 run."""
        return Job(self.target, self.schedule, self.grid, self.x0[:m].astype(dtype), self.solver)


def make_job(n: int = 32768, dtype=np.float64, solver: str | None = None, seed: int = 0, d: int = D) -> Job:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(K)
    w = np.exp(logits - logits.max())
    tgt = GaussianMixture(w / w.sum(), 2.0 * rng.standard_normal((K, d)), np.full(K, VAR))
    sch = ds.get_schedule("vp-linear", beta_min=0.1, beta_max=20.0)
    grid = ds.time_grid(sch, STEPS, "time", t_max=1.0, t_min=1e-3)
    x0 = ds.sampling.prior_sample(sch, grid[0], n, d, seed=seed).astype(dtype)
    return Job(tgt, sch, grid, x0, solver or solver_name())


# -- diffsolve --------------------------------------------------------------------------------------------------
def run_diffsolve(job: Job, backend: str):
    """``ds.sample`` on the job in the dtype of ``job.x0`` (float32 on the GPU: ``dtype=None`` keeps it)."""
    return ds.sample(job.solver, job.target, job.schedule, job.grid, x_init=job.x0, seed=1, backend=backend,
                     dtype=None)


# -- plain vectorised NumPy (what a careful NumPy user writes) ----------------------------------------------------
def _stage_constants(job: Job):
    """Per stage: alpha, sigma and the solver-prediction coefficients (c_x, c_D)."""
    tab = job.table()
    pred = ds.get_solver(job.solver).prediction
    consts = []
    for n in range(tab.steps):
        row = []
        for s in range(tab.stages):
            t = float(tab.tau[n, s])
            cx, cd = predictions.coefficients(pred, job.schedule, t)
            row.append((float(job.schedule.alpha(t)), float(job.schedule.sigma(t)), float(cx), float(cd)))
        consts.append(row)
    return tab, consts


def numpy_denoise(x, a, s, means, m2, logw, var0):
    """E[x0 | x] for an isotropic mixture, distances by matrix products (BLAS)."""
    var = a * a * var0 + s * s
    d2 = np.einsum("nd,nd->n", x, x)[:, None] - 2.0 * a * (x @ means.T) + (a * a) * m2[None]
    logits = logw - 0.5 * x.shape[1] * np.log(2 * math.pi * var) - 0.5 * d2 / var
    logits -= logits.max(axis=1, keepdims=True)
    r = np.exp(logits)
    r /= r.sum(axis=1, keepdims=True)
    return (r * (s * s / var)) @ means + x * (r @ (a * var0 / var))[:, None]


def run_plain_numpy(job: Job, dtype=None):
    """The plain implementation, in ``dtype`` (default: the dtype of ``job.x0``; ``np.longdouble`` gives the
    extended-precision reference of the accuracy line, with the same float64 coefficients)."""
    tab, consts = _stage_constants(job)
    tgt = job.target
    dtype = dtype or job.x0.dtype
    means, var0, w = (np.asarray(a, dtype=dtype) for a in (tgt.means, tgt.variances[:, 0], tgt.weights))
    m2, logw = np.einsum("kd,kd->k", means, means), np.log(w)
    x = job.x0.astype(dtype)
    S, M = tab.stages, tab.history
    H = [np.zeros_like(x)] * M
    for n in range(tab.steps):
        F = []
        for i in range(S + 1):
            u = tab.A[n, i] * x
            for j in range(min(i, S)):
                if tab.B[n, i, j]:
                    u += tab.B[n, i, j] * F[j]
            for m in range(M):
                if tab.E[n, i, m]:
                    u += tab.E[n, i, m] * H[m]
            if i == S:
                x = u
            else:
                a, s, cx, cd = consts[n][i]
                F.append(cx * u + cd * numpy_denoise(u, a, s, means, m2, logw, var0))
        if M:
            H = [F[tab.keep]] + H[:-1]
    return x


# -- PyTorch (GPU baselines of gpu.md) ------------------------------------------------------------------------------
def torch_runner(job: Job, device: str = "cuda", compiled: bool = False):
    """A function running the plain implementation in PyTorch (eager, or torch.compile of the denoiser).

    The compiled denoiser takes its per-stage constants as 0-d tensors: with Python floats, ``dynamic=False``
    compiles one graph per value and falls back to eager after torch._dynamo's recompile limit (8), so most of
    the 20 steps would not run compiled."""
    import torch

    tab, consts = _stage_constants(job)
    dtype = torch.float32 if job.x0.dtype == np.float32 else torch.float64
    tgt = job.target
    means = torch.as_tensor(tgt.means, device=device, dtype=dtype)
    var0 = torch.as_tensor(tgt.variances[:, 0], device=device, dtype=dtype)
    m2, logw = (means * means).sum(1), torch.as_tensor(np.log(tgt.weights), device=device, dtype=dtype)

    def denoise(x, a: float, s: float, cx: float, cd: float):
        var = a * a * var0 + s * s
        d2 = (x * x).sum(1, keepdim=True) - 2.0 * a * (x @ means.T) + (a * a) * m2[None]
        logits = logw - 0.5 * x.shape[1] * torch.log(2 * math.pi * var) - 0.5 * d2 / var
        r = torch.softmax(logits, dim=1)
        return cx * x + cd * ((r * (s * s / var)) @ means + x * (r @ (a * var0 / var))[:, None])

    den = torch.compile(denoise, dynamic=False) if compiled else denoise
    if compiled:  # one graph for every stage
        coef = torch.tensor(consts, device=device, dtype=dtype)
        consts = [[tuple(coef[n, i, j] for j in range(4)) for i in range(len(row))] for n, row in enumerate(consts)]
    x0 = torch.as_tensor(job.x0, device=device)
    S, M = tab.stages, tab.history

    def run():
        x = x0.clone()
        H = [torch.zeros_like(x)] * M
        for n in range(tab.steps):
            F = []
            for i in range(S + 1):
                u = float(tab.A[n, i]) * x
                for j in range(min(i, S)):
                    if tab.B[n, i, j]:
                        u = u + float(tab.B[n, i, j]) * F[j]
                for m in range(M):
                    if tab.E[n, i, m]:
                        u = u + float(tab.E[n, i, m]) * H[m]
                if i == S:
                    x = u
                else:
                    F.append(den(u, *consts[n][i]))
            if M:
                H = [F[tab.keep]] + H[:-1]
        return x

    return run


def cuda_sync():
    import torch

    torch.cuda.synchronize()


def has_cuda_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


# -- CLI ------------------------------------------------------------------------------------------------------------
def _best(fn, repeat):
    fn()  # warm-up (compiles)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def accuracy(job: Job, head: int = 8192, with_numpy_backend: bool = True) -> str:
    """The accuracy line: per-sample errors e_i = max_j |x_ij - x*_ij| / max |x*| of the fused kernel and of the
    numpy backend (the reference interpreter) against x*, the plain implementation in extended precision
    (``np.longdouble``, same float64 coefficients), on the first ``head`` samples: median, 99.9 % quantile, max.

    The max over samples measures the problem, not an implementation: a few trajectories run close to the
    boundary between two modes, where the flow amplifies rounding errors ~1e4-fold, and there every float64
    implementation (the reference interpreter included) is off by ~1e-12..1e-10 of max |x|, the same sample for
    all of them.  The quantiles measure the implementation."""
    small = job.head(min(head, job.n))
    exact = run_plain_numpy(small, np.longdouble)
    scale = np.max(np.abs(exact))
    runs = [("cpu", run_diffsolve(small, "cpu"))]
    if with_numpy_backend:
        runs.append(("numpy backend", run_diffsolve(small, "numpy")))
    parts = []
    for name, x in runs:
        e = (np.max(np.abs(x - exact), axis=1) / scale).astype(np.float64)
        parts.append(f"{name} median {np.median(e):.1e}, 99.9 % {np.quantile(e, 0.999):.1e}, max {e.max():.1e} "
                     f"(sample {e.argmax()})")
    return (f"accuracy against extended precision, first {small.n} samples, max_j |x_ij - x*_ij| / max |x*|: "
            + "; ".join(parts))


def scaling(repeat: int = 3):
    """The fused kernel's time against N (d = 64) and against d (N = 8192), with the fitted exponents
    (least-squares slope of log time on log size, over the sizes where fixed costs no longer dominate)."""
    lines = ["| N (d = 64) | time | ns per sample-step |", "|---|---|---|"]
    ns = [10**3, 10**4, 10**5, 10**6]
    tn = []
    for n in ns:
        job = make_job(n)
        tn.append(_best(lambda: run_diffsolve(job, "cpu"), repeat))
        lines.append(f"| {n} | {tn[-1] * 1e3:.2f} ms | {tn[-1] / (n * STEPS) * 1e9:.0f} |")
    lines.append(f"fitted exponent in N (N >= 1e4): {np.polyfit(np.log(ns[1:]), np.log(tn[1:]), 1)[0]:.2f}")
    lines += ["", "| d (N = 8192) | time | GFLOP/s (4Kd per eval) |", "|---|---|---|"]
    ds_, td = [2, 8, 64, 256, 1024], []
    for d in ds_:
        job = make_job(8192, d=d)
        td.append(_best(lambda: run_diffsolve(job, "cpu"), repeat))
        lines.append(f"| {d} | {td[-1] * 1e3:.2f} ms | {job.flops() / td[-1] / 1e9:.2f} |")
    lines.append(f"fitted exponent in d (d >= 64): {np.polyfit(np.log(ds_[2:]), np.log(td[2:]), 1)[0]:.2f}")
    return "\n".join(lines)


def main(argv=None):
    from peak import machine_peak

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=32768)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    p.add_argument("--skip-numpy-backend", action="store_true", help="the reference interpreter is slow")
    p.add_argument("--scaling", action="store_true", help="only the fused kernel's time against N and d")
    args = p.parse_args(argv)
    numba.set_num_threads(args.threads)
    if args.scaling:
        print(f"GMM-2M fused kernel scaling, {args.threads} Numba thread(s), load average {os.getloadavg()[0]:.2f}")
        print(scaling())
        return
    job = make_job(args.n)
    job32 = make_job(args.n, np.float32)
    rows = [("diffsolve cpu (fused)", lambda: run_diffsolve(job, "cpu"), args.repeat),
            ("diffsolve cpu (fused, float32)", lambda: run_diffsolve(job32, "cpu"), args.repeat),
            ("plain NumPy (matmul)", lambda: run_plain_numpy(job), max(1, args.repeat // 2))]
    if not args.skip_numpy_backend:
        rows.append(("diffsolve numpy backend", lambda: run_diffsolve(job, "numpy"), 1))
    acc = accuracy(job, with_numpy_backend=not args.skip_numpy_backend)
    results = {name: _best(fn, rep) for name, fn, rep in rows}
    peak = machine_peak(args.threads)
    base = results["plain NumPy (matmul)"]
    print(f"GMM-2M, solver {job.solver}, N = {job.n}, float64, {args.threads} Numba thread(s), "
          f"load average {os.getloadavg()[0]:.2f}; peak {peak / 1e9:.1f} GFLOP/s (threads x one-core Numba FMA "
          "loop)")
    print(acc)
    x64 = run_diffsolve(job, "cpu")
    e32 = np.max(np.abs(run_diffsolve(job32, "cpu") - x64), axis=1) / np.max(np.abs(x64))
    print(f"float32 fused kernel against the float64 one, max_j |x32_ij - x64_ij| / max |x64|: median "
          f"{np.median(e32):.1e}, 99.9 % {np.quantile(e32, 0.999):.1e}, max {e32.max():.1e} (the max: "
          "trajectories near a boundary between modes, which float32 rounding can send to the other mode)")
    print("| implementation | time | plain NumPy / time | GFLOP/s (4KD per eval) | fraction of float64 peak |")
    print("|---|---|---|---|---|")
    for name, t in results.items():
        rate = job.flops() / t
        print(f"| {name} | {t * 1e3:.1f} ms | {base / t:.2f}x | {rate / 1e9:.2f} | {rate / peak:.1%} |")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
