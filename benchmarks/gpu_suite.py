"""The GPU suite (docs/benchmarks.md, "GPU suite"): the CUDA tests on the device, GMM-2M (diffsolve ``cuda`` against
PyTorch eager and ``torch.compile``), the Stepper's per-step overhead against diffusers and the Langevin chain
kernel; writes ``<out>/gpu_suite.json`` and ``<out>/gpu_suite.md``.

    bash benchmarks/gpu_suite.sh [--tiny] [--out DIR]        # the entry point (installs carried wheels first)
    python benchmarks/gpu_suite.py [--tiny] [--out DIR] [--budget S] [--only STEP,..]

Every step runs in its own process under a timeout (a hang or a crash costs that step only), each measurement is
written as soon as it is taken, and the steps' timeouts add up to the budget (default 435 s).  ``--tiny`` runs the
same steps at tiny sizes on Numba's CUDA simulator with torch on the CPU: the check that the suite works (CI),
whose timings measure nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCHEMA = "diffsolve-gpu-suite/1"
STATUSES = ("ok", "partial", "failed", "error", "timeout", "skipped")
FP32_PEAK = 67e12  # FP32 (non-tensor) FLOP/s of an H100 / H200 SXM (vendor datasheet)
MIN_STEP_S = 15  # a step with less budget left is skipped
LOG_TAIL = 4000  # characters of a step's output kept in the JSON


@dataclass(frozen=True)
class Sizes:
    """The sizes of one mode of the suite (recorded in the JSON as ``settings.sizes``)."""

    mode: str
    gmm_n: int
    ref_rows: int  # samples of the float64 reference
    torch_compile: bool
    stepper_shapes: tuple
    stepper_steps: int
    langevin_n: int
    langevin_base_n: int  # samples of the baseline (and of the accuracy check)
    langevin_base: str  # the baseline backend
    rounds: int  # timed rounds (median reported)
    warmup: int  # untimed rounds first (compilation)
    cuda_test_files: tuple  # None: every test file that uses the cuda backend
    test_timeout_s: int  # per test (pytest-timeout, where installed)


# the CUDA tests, cheapest first: a timeout then loses the fewest results
CUDA_TEST_ORDER = ("test_noise.py", "test_langevin_compiled.py", "test_stepper.py", "test_torch_cuda.py",
                   "test_backends.py")
FULL = Sizes("full", gmm_n=2**20, ref_rows=4096, torch_compile=True,
             stepper_shapes=((1, 4, 64, 64), (16, 4, 128, 128)), stepper_steps=50, langevin_n=2**18,
             langevin_base_n=2**15, langevin_base="cpu", rounds=10, warmup=2, cuda_test_files=None,
             test_timeout_s=120)
TINY = Sizes("tiny", gmm_n=16, ref_rows=16, torch_compile=False, stepper_shapes=((1, 4), (1, 4, 4, 4)),
             stepper_steps=3, langevin_n=4, langevin_base_n=4, langevin_base="numpy", rounds=1, warmup=0,
             cuda_test_files=("test_noise.py",), test_timeout_s=120)
MODES = {"full": FULL, "tiny": TINY}


# ============================================================================================== the child side
class Recorder:
    """What a step measured, rewritten to ``path`` after every entry (a step killed at its timeout keeps what it
    had).  A measurement: case, impl(ementation), metric, value, unit, status ("ok" | "skipped" | "error")."""

    def __init__(self, path: Path):
        self.path = path
        self.data = {"title": "", "info": {}, "notes": [], "measurements": []}

    def flush(self):
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=_plain))
        tmp.replace(self.path)

    def add(self, case, impl, metric, value, unit="", status="ok", note=None):
        entry = {"case": case, "impl": impl, "metric": metric, "value": _plain(value), "unit": unit,
                 "status": status}
        if note:
            entry["note"] = note
        self.data["measurements"].append(entry)
        self.flush()
        print(f"  {case} | {impl} | {metric}: {value} {unit} {status if status != 'ok' else ''} {note or ''}",
              flush=True)

    def skip(self, case, impl, metric, unit, why):
        self.add(case, impl, metric, None, unit, status="skipped", note=why)

    def timing(self, case, impl, seconds, scale=1e3, unit="ms"):
        """Median and minimum of the timed rounds (``scale``: seconds -> unit); returns the median in seconds."""
        med = statistics.median(seconds)
        self.add(case, impl, "time", med * scale, unit)
        self.add(case, impl, "min", min(seconds) * scale, unit)
        return med

    def note(self, text):
        self.data["notes"].append(text)
        self.flush()
        print(f"  note: {text}", flush=True)

    def status(self, status):
        """The step's status when it is not read off its entries (the CUDA tests: their outcome)."""
        self.data["status"] = status
        self.flush()

    def info(self, **items):
        self.data["info"].update({k: _plain(v) for k, v in items.items()})
        self.flush()

    @contextlib.contextmanager
    def part(self, case, impl):
        """Runs one measurement group: an exception is recorded as an error entry and the step goes on."""
        try:
            yield
        except Exception as exc:  # recorded, not raised: the other parts still run
            traceback.print_exc()
            self.add(case, impl, "error", None, status="error", note=f"{type(exc).__name__}: {exc}"[:2000])


def _plain(v):
    """JSON-able ``v`` (NumPy scalars as Python numbers)."""
    return v.item() if hasattr(v, "item") and not isinstance(v, (list, dict, str)) else v


class Device:
    """Where the step computes: torch on ``cuda`` (full) or on the CPU (tiny), numba.cuda on the GPU or on the
    simulator; ``sync()`` waits for both (``uses_torch=False``: numba.cuda only, torch is not imported)."""

    def __init__(self, sizes: Sizes, uses_torch=True):
        self.torch_device = "cpu" if sizes.mode == "tiny" else "cuda"
        self.torch = None
        if uses_torch:
            import torch

            self.torch = torch
            if self.torch_device == "cuda" and not torch.cuda.is_available():
                raise RuntimeError("torch.cuda.is_available() is False: no CUDA GPU for the full-size suite")
        self._numba_sync = lambda: None
        try:
            from numba import cuda

            if cuda.is_available():
                self._numba_sync = cuda.synchronize
        except Exception as exc:  # torch parts still run; the diffsolve cuda parts record the error
            print(f"numba.cuda unavailable: {exc}", flush=True)

    def sync(self):
        if self.torch is not None and self.torch_device == "cuda":
            self.torch.cuda.synchronize()
        self._numba_sync()


def time_runs(fn, rounds, warmup, sync, setup=lambda: None):
    """Seconds of ``rounds`` calls ``fn(setup())`` after ``warmup`` untimed ones, each between synchronizations
    (setup excluded)."""
    for _ in range(warmup):
        fn(setup())
        sync()
    times = []
    for _ in range(rounds):
        state = setup()
        sync()
        t0 = time.perf_counter()
        fn(state)
        sync()
        times.append(time.perf_counter() - t0)
    return times


class Keep:
    """``keep(value)`` keeps the last value of timed calls (the earlier ones are freed)."""

    value = None

    def __call__(self, value):
        self.value = value


@contextlib.contextmanager
def kernel_times(factory: str):
    """Milliseconds of every launch of the kernels that ``diffsolve.kernels.cuda.<factory>(...)`` builds, from CUDA
    events around the launch (the simulator records no times: -1)."""
    from numba import cuda

    from diffsolve.kernels import cuda as kc

    real, times = getattr(kc, factory), []

    class Timed:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, config):
            launch = self.kernel[config]

            def run(*args):
                start, end = cuda.event(), cuda.event()  # timing events (the default)
                start.record()
                launch(*args)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))

            return run

    setattr(kc, factory, lambda *a: Timed(real(*a)))
    try:
        yield times
    finally:
        setattr(kc, factory, real)


def _kernel_row(rec, case, impl, ms, untimed):
    """The kernel launches after the first ``untimed`` ones as a row (median seconds); skipped on the simulator."""
    ms = ms[untimed:]
    if not ms or min(ms) < 0:
        rec.skip(case, impl, "time", "ms", "no kernel times (Numba's simulator records none)")
        return None
    return rec.timing(case, impl, [m / 1e3 for m in ms])


def _rel_err(out, ref):
    import numpy as np

    out = np.asarray(out, dtype=np.float64)[: ref.shape[0]]
    return float(np.max(np.abs(out - ref)) / np.max(np.abs(ref)))


def _tensor_to_numpy(t):
    return t.detach().cpu().numpy()


# ---------------------------------------------------------------------------------------------------- steps
def step_probe(rec, sizes, args):
    """Machine and versions (what the parent records as ``machine`` and ``versions``)."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in ("numpy", "scipy", "sympy", "numba", "numba-cuda", "llvmlite", "torch", "diffusers",
                 "huggingface-hub", "importlib-metadata", "platformdirs", "filelock", "pytest"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    import numpy as np

    import diffsolve

    versions["diffsolve"] = diffsolve.__version__
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "numpy_file": np.__file__,
               "numpy_imported": np.__version__, "simulator": os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"}
    with rec.part("probe", "torch"):
        import torch

        machine["torch_cuda"] = torch.version.cuda
        machine["torch_sees_gpu"] = torch.cuda.is_available()
        if machine["torch_sees_gpu"]:
            p = torch.cuda.get_device_properties(0)
            machine.update(gpu=p.name, compute_capability=f"{p.major}.{p.minor}", gpu_memory_gib=p.total_memory / 2**30,
                           multiprocessors=p.multi_processor_count,
                           matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    with rec.part("probe", "numba.cuda"):
        from numba import cuda

        machine["numba_cuda_available"] = bool(cuda.is_available())
        if machine["numba_cuda_available"]:
            dev = cuda.get_current_device()
            name = getattr(dev, "name", "Numba CUDA simulator")
            machine["numba_device"] = name.decode() if isinstance(name, bytes) else str(name)
            if not machine["simulator"]:
                machine["numba_compute_capability"] = _version(lambda: dev.compute_capability)
                machine["cuda_driver"] = _version(cuda.cudadrv.driver.driver.get_version)
                machine["cuda_runtime"] = _version(cuda.runtime.get_version)
    if tuple(int(p) for p in np.__version__.split(".")[:2]) >= (2, 5):
        rec.note("numpy >= 2.5 is imported: numba-cuda 0.30 calls np.row_stack (removed in 2.5) when it compiles; "
                 "carry a numpy 2.4 wheel (bash benchmarks/gpu_suite.sh --prepare)")
    rec.info(machine=machine, versions=versions)


def _version(get):
    """``get()`` as a dotted version string, None where it fails (informational only)."""
    try:
        return ".".join(map(str, get()))
    except Exception:
        return None


def step_cuda_tests(rec, sizes, args):
    """The tests that use the cuda backend, on the GPU (``DIFFSOLVE_CUDA_TESTS=hardware``, tests/conftest.py) or,
    in --tiny, a subset on the simulator; per test its outcome and seconds."""
    files = [ROOT / "tests" / f for f in sizes.cuda_test_files] if sizes.cuda_test_files else cuda_test_files()
    env = dict(os.environ)
    env.pop("DIFFSOLVE_CUDA_TESTS", None)
    if sizes.mode == "full":
        env["DIFFSOLVE_CUDA_TESTS"] = "hardware"
        env.pop("NUMBA_ENABLE_CUDASIM", None)
    cmd = [sys.executable, "-m", "pytest", *map(str, files), "-k", "cuda", "-v", "-rfEs", "-p", "no:cacheprovider",
           "--durations=0", "--durations-min=0"]
    if _has_module("pytest_timeout"):
        cmd.append(f"--timeout={sizes.test_timeout_s}")
    where = "the GPU (DIFFSOLVE_CUDA_TESTS=hardware)" if sizes.mode == "full" else "Numba's simulator (--tiny subset)"
    rec.data["title"] = f"CUDA tests on {where}: {', '.join(f.name for f in files)}, -k cuda"
    rec.info(command=" ".join(cmd[1:]), files=[f.name for f in files])
    rc, output = run_bounded(cmd, args.inner_timeout, env, cwd=ROOT)
    print(output[-20000:], flush=True)
    outcomes = dict(re.findall(r"^(tests/\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)", output, re.M))
    seconds = {}
    for sec, test in re.findall(r"^([\d.]+)s call\s+(tests/\S+)", output, re.M):
        seconds[test] = float(sec)
    for test, outcome in outcomes.items():
        path, _, name = test.partition("::")
        rec.add(Path(path).name, name, "outcome", outcome)
        if test in seconds:
            rec.add(Path(path).name, name, "seconds", seconds[test], "s")
    counts = {k.lower(): sum(v == k for v in outcomes.values()) for k in ("PASSED", "FAILED", "ERROR", "SKIPPED")}
    rec.add("all", "pytest", "outcome", ", ".join(f"{v} {k}" for k, v in counts.items()))
    rec.info(pytest_rc=rc, counts=counts)
    if rc is None:
        rec.status("timeout")
        rec.note(f"pytest stopped at its timeout ({args.inner_timeout:.0f} s); outcomes above are the tests that ended")
    elif rc == 5 or not outcomes:
        rec.status("error")
        rec.note(f"pytest ran no test (exit status {rc})")
    elif rc != 0:
        rec.status("failed")


def cuda_test_files():
    """The test files that use the cuda backend, cheapest first (this suite's own test excluded)."""
    found = [p for p in sorted((ROOT / "tests").glob("test_*.py"))
             if p.name != "test_gpu_suite.py" and re.search(r"backend=.cuda.|from numba import cuda", p.read_text())]
    order = {name: i for i, name in enumerate(CUDA_TEST_ORDER)}
    return sorted(found, key=lambda p: (order.get(p.name, len(order)), p.name))


def step_gmm2m(rec, sizes, args):
    """GMM-2M in float32: diffsolve cuda (fused kernel alone, and ds.sample with host arrays) against PyTorch
    eager and torch.compile of the plain implementation, and the accuracy against a float64 reference."""
    import numpy as np

    import gmm2m

    dev = Device(sizes)
    job = gmm2m.make_job(sizes.gmm_n, dtype=np.float32)
    flops, case = job.flops(), f"N = {job.n}"
    rec.data["title"] = (f"GMM-2M: {job.solver}, K = {gmm2m.K}, d = {gmm2m.D}, {gmm2m.STEPS} steps, float32, "
                         f"N = {job.n}; {flops / 1e9:.3g} GFLOP per run; FP32 peak {args.fp32_peak / 1e12:.0f} "
                         "TFLOP/s (datasheet)")
    rec.info(solver=job.solver, n=job.n, k=gmm2m.K, d=gmm2m.D, steps=gmm2m.STEPS, flops=flops,
             fp32_peak_flops=args.fp32_peak, ref_rows=sizes.ref_rows,
             matmul_allow_tf32=bool(dev.torch.backends.cuda.matmul.allow_tf32))
    ref = gmm2m.run_diffsolve(job.head(min(sizes.ref_rows, job.n)), "numpy")  # float64, the numpy backend
    medians = {}

    def rates(impl, seconds):
        medians[impl] = seconds
        rec.add(case, impl, "GFLOP/s", flops / seconds / 1e9)
        rec.add(case, impl, "of FP32 peak", 100 * flops / seconds / args.fp32_peak, "%")

    rec.add(case, "FP32 roofline (flop / peak)", "time", flops / args.fp32_peak * 1e3, "ms")
    kernel, e2e = "diffsolve cuda: fused kernel (CUDA events)", "diffsolve cuda: ds.sample, host arrays in and out"
    with rec.part(case, e2e):
        with kernel_times("fused_kernel") as launches:
            keep = Keep()
            keep(gmm2m.run_diffsolve(job, "cuda"))  # compiles
            times = time_runs(lambda _: keep(gmm2m.run_diffsolve(job, "cuda")), sizes.rounds, sizes.warmup,
                              dev.sync)
        assert keep.value.dtype == np.float32, keep.value.dtype
        med = _kernel_row(rec, case, kernel, launches, 1 + sizes.warmup)
        if med is not None:
            rates(kernel, med)
        rates(e2e, rec.timing(case, e2e, times))
        rec.add(case, e2e, "max rel. error vs float64", _rel_err(keep.value, ref))
    for compiled, base in ((False, "PyTorch eager"), (True, "torch.compile")):
        if compiled and not sizes.torch_compile:
            rec.skip(case, base, "time", "ms", "not run in --tiny: inductor takes minutes to compile on a CPU")
            continue
        with rec.part(case, base):
            run = gmm2m.torch_runner(job, device=dev.torch_device, compiled=compiled)
            keep, t0 = Keep(), time.perf_counter()
            keep(run())  # compiles (torch.compile)
            dev.sync()
            first = time.perf_counter() - t0
            times = time_runs(lambda _: keep(run()), sizes.rounds, sizes.warmup, dev.sync)
            rates(base, rec.timing(case, base, times))
            rec.add(case, base, "first call", first, "s")
            rec.add(case, base, "max rel. error vs float64", _rel_err(_tensor_to_numpy(keep.value), ref))
            keep(None)  # the GPU memory goes back before the next implementation
            if dev.torch_device == "cuda":
                dev.torch.cuda.empty_cache()
            for impl, seconds in medians.items():
                if impl != base:
                    rec.add(case, impl, f"speed-up vs {base}", medians[base] / seconds, "x")


def step_stepper(rec, sizes, args):
    """Per-step overhead of the Stepper (cuda backend) fed a fixed model output, against diffusers'
    DPMSolverMultistepScheduler(solver_order=2).step and one torch axpy, on GPU tensors (tiny: the Stepper on the
    simulator with NumPy arrays, torch on the CPU)."""
    import test_stepper_overhead as so

    dev = Device(sizes)
    torch, steps = dev.torch, sizes.stepper_steps
    rec.data["title"] = (f"Stepper per-step overhead: diffsolve {so.SOLVER} (cuda backend) vs diffusers "
                         f"DPMSolverMultistepScheduler(solver_order=2), float32, {steps} steps, median of "
                         f"{sizes.rounds} loops / {steps}")
    rec.info(solver=so.SOLVER, steps=steps, torch_device=dev.torch_device)
    for shape in sizes.stepper_shapes:
        case = "x".join(map(str, shape))
        gen = torch.Generator().manual_seed(0)
        x, out = (torch.randn(*shape, generator=gen).to(dev.torch_device) for _ in range(2))
        host = dev.torch_device == "cpu"  # the simulator takes NumPy arrays, not CPU tensors
        cases = {f"diffsolve Stepper ({so.SOLVER}, cuda)":
                 lambda: so.stepper_case(*((x.numpy(), out.numpy()) if host else (x, out)), "cuda", steps),
                 "diffusers DPMSolverMultistepScheduler": lambda: so.diffusers_case(x, out, steps),
                 "torch axpy (floor)": lambda: so.axpy_case(x.clone(), out, steps)}
        per_step = {}
        for impl, make in cases.items():
            with rec.part(case, impl):
                setup, loop = make()
                loop(setup())  # compiles
                times = time_runs(loop, sizes.rounds, sizes.warmup, dev.sync, setup)
                per_step[impl] = rec.timing(case, impl, [t / steps for t in times], 1e6, "µs/step")
        base = per_step.get("diffusers DPMSolverMultistepScheduler")
        for impl, t in per_step.items():
            if base and impl != "diffusers DPMSolverMultistepScheduler":
                rec.add(case, impl, "diffusers / this", base / t, "x")


OFF_TOL = {"float64": 1e-6, "float32": 1e-3}  # a Langevin sample is "off" past this x max|baseline|


def step_langevin(rec, sizes, args):
    """RTK-MALA and RTK-ULD (benchmarks/test_langevin.py's job) in the chain kernel on the GPU, float64 and
    float32, against the cpu backend's chain kernel (tiny: the numpy reference), with the accuracy."""
    import numpy as np

    import test_langevin as tl

    dev = Device(sizes, uses_torch=False)
    n, nb = sizes.langevin_n, sizes.langevin_base_n
    rec.data["title"] = (f"Langevin chain kernel: {', '.join(tl.SOLVERS)} on gmm:d=8,k=16,seed=4, "
                         f"{len(tl.GRID) - 1} segments x {tl.INNER} iterations; cuda on N = {n}, baseline "
                         f"{sizes.langevin_base} on N = {nb}; a sample is off when its error exceeds "
                         f"{OFF_TOL['float64']:g} max|baseline| (float64), {OFF_TOL['float32']:g} (float32)")
    rec.info(n=n, base_n=nb, base_backend=sizes.langevin_base, inner=tl.INNER, segments=len(tl.GRID) - 1)
    for name in tl.SOLVERS:
        base_impl = f"diffsolve {sizes.langevin_base} float64"
        ref, rate = None, {}
        with rec.part(name, base_impl):
            if sizes.langevin_base == "cpu":
                tl.run_job(name, "cpu", 64)  # compiles
            keep = Keep()
            t = rec.timing(name, base_impl, time_runs(lambda _: keep(tl.run_job(name, sizes.langevin_base, nb)),
                                                      1, 0, dev.sync))
            rate[base_impl], ref = tl.iterations(name, nb) / t, keep.value
            rec.add(name, base_impl, "throughput", rate[base_impl] / 1e6, "M sample-it/s")
        for dtype in (np.float64, np.float32):
            impl = f"diffsolve cuda {np.dtype(dtype).name}"
            with rec.part(name, impl):
                with kernel_times("chain_kernel") as launches:
                    keep = Keep()
                    keep(tl.run_job(name, "cuda", n, dtype=dtype))  # compiles
                    times = time_runs(lambda _: keep(tl.run_job(name, "cuda", n, dtype=dtype)), sizes.rounds,
                                      sizes.warmup, dev.sync)
                out = keep.value
                t = rec.timing(name, impl + " (ds.sample)", times)
                rec.add(name, impl + " (ds.sample)", "throughput", tl.iterations(name, n) / t / 1e6,
                        "M sample-it/s")
                kt = _kernel_row(rec, name, impl + " (kernel)", launches, 1 + sizes.warmup)
                if kt is not None:
                    rate[impl] = tl.iterations(name, n) / kt
                    rec.add(name, impl + " (kernel)", "throughput", rate[impl] / 1e6, "M sample-it/s")
                    rec.add(name, impl + " (kernel)", f"vs {base_impl}", rate[impl] / rate.get(base_impl, np.nan),
                            "x")
                if ref is not None:
                    rows = np.max(np.abs(out[:nb].astype(np.float64) - ref), axis=1)
                    rec.add(name, impl + " (ds.sample)", "max rel. error vs baseline", _rel_err(out, ref))
                    rec.add(name, impl + " (ds.sample)", "samples off",
                            100 * float(np.mean(rows > OFF_TOL[np.dtype(dtype).name] * np.max(np.abs(ref)))), "%")


# name -> (function, timeout cap in s: full, tiny); the caps of the full mode add up to its budget.  The tiny caps
# allow for cold Numba caches on a 2-core CI machine (the cpu chain kernel alone compiles for tens of seconds).
STEPS = {
    "probe": (step_probe, 25, 60),
    "cuda-tests": (step_cuda_tests, 140, 150),
    "gmm2m": (step_gmm2m, 130, 150),
    "stepper": (step_stepper, 60, 120),
    "langevin": (step_langevin, 80, 240),
}


def child_main(args):
    for p in (str(HERE), str(ROOT)):
        if p not in sys.path:
            sys.path.insert(0, p)
    rec = Recorder(Path(args.result))
    rec.flush()
    try:
        STEPS[args.child][0](rec, MODES["tiny" if args.tiny else "full"], args)
    except BaseException as exc:  # the step died: what it recorded stays, and the error is named
        traceback.print_exc()
        rec.data["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        rec.flush()
        return 2
    return 0


# ============================================================================================= the parent side
def run_bounded(cmd, timeout, env, cwd=None):
    """``cmd``'s exit status (None at the timeout: its whole process group is killed) and its output."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True, text=True)
        rc = None
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:  # at the timeout, when this process is stopped (SIGTERM), and leftovers (compile workers)
            for sig in (signal.SIGTERM, signal.SIGKILL) if rc is None else (signal.SIGKILL,):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        log.seek(0)
        return rc, log.read()


def child_env(tiny: bool):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if tiny:  # the simulator, torch on the CPU
        env.update(NUMBA_ENABLE_CUDASIM="1", CUDA_VISIBLE_DEVICES="")
    else:
        env.pop("NUMBA_ENABLE_CUDASIM", None)
    return env


@dataclass
class StepResult:
    name: str
    status: str
    seconds: float
    timeout_s: float
    cpu_s: float = 0.0  # CPU seconds of the step's processes (user + system)
    title: str = ""
    error: str | None = None
    notes: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
    measurements: list = field(default_factory=list)
    log_tail: str = ""


def run_step(name, args, timeout, log_path: Path) -> StepResult:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--result", str(result),
               "--fp32-peak", str(args.fp32_peak), "--inner-timeout", str(max(timeout - 10, 5))]
        if args.tiny:
            cmd.append("--tiny")
        print(f"== {name} (timeout {timeout:.0f} s)", flush=True)
        t0, cpu0 = time.monotonic(), _children_cpu()
        rc, output = run_bounded(cmd, timeout, child_env(args.tiny), cwd=ROOT)
        seconds, cpu = time.monotonic() - t0, _children_cpu() - cpu0
        try:
            data = json.loads(result.read_text())
        except (OSError, ValueError):  # the child died before writing anything
            data = {}
    with log_path.open("a") as log:
        log.write(f"\n===== {name}: exit {rc}, {seconds:.1f} s\n{output}")
    print(output[-3000:], flush=True)
    errors = [m for m in data.get("measurements", []) if m.get("status") == "error"]
    if rc is None:
        status, error = "timeout", f"killed at the step's timeout ({timeout:.0f} s)"
    elif rc != 0 or "error" in data:
        status, error = "error", data.get("error") or f"exit status {rc}"
    else:
        status = data.get("status") or ("partial" if errors else "ok")
        error = "; ".join(f"{m['impl']}: {m.get('note')}" for m in errors) or None
    return StepResult(name, status, round(seconds, 2), timeout, round(cpu, 2), data.get("title", ""), error,
                      data.get("notes", []), data.get("info", {}), data.get("measurements", []), output[-LOG_TAIL:])


def _children_cpu():
    import resource

    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def nvidia_smi():
    if not shutil.which("nvidia-smi"):
        return None
    fields = "name,driver_version,memory.total,clocks.max.sm,clocks.sm,power.limit,temperature.gpu"
    rc, out = run_bounded(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"], 20, dict(os.environ))
    return out.strip() if rc == 0 else f"nvidia-smi failed (exit {rc}): {out.strip()[:500]}"


def git_commit():
    rc, out = run_bounded(["git", "-C", str(ROOT), "rev-parse", "HEAD"], 10, dict(os.environ))
    return out.strip() if rc == 0 else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny sizes on Numba's CUDA simulator, torch on the CPU")
    p.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "diffsolve-gpu-suite"))
    p.add_argument("--budget", type=float, default=None, help="seconds for all steps (default: the caps' sum)")
    p.add_argument("--only", default=None, help="comma-separated steps (default: all): " + ",".join(STEPS))
    p.add_argument("--fp32-peak", type=float, default=FP32_PEAK, help="FP32 FLOP/s of the GPU (roofline)")
    p.add_argument("--child", choices=list(STEPS), help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--inner-timeout", type=float, default=600, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a running step's process group is killed first
    sizes = TINY if args.tiny else FULL
    col = 2 if args.tiny else 1  # the column of STEPS holding this mode's caps
    names = ["probe"] + [s for s in STEPS if s != "probe"]
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - set(STEPS))
        if unknown:
            p.error(f"--only: unknown step(s) {', '.join(unknown)}; the steps are {', '.join(STEPS)}")
        names = ["probe"] + [s for s in names[1:] if s in wanted]
    budget = args.budget if args.budget is not None else sum(STEPS[s][col] for s in names)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "gpu_suite_steps.log"
    log_path.write_text("")
    start, t0 = datetime.now(timezone.utc), time.monotonic()
    report = {"schema": SCHEMA, "mode": sizes.mode, "created": start.isoformat(timespec="seconds"),
              "command": "gpu_suite.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "budget_s": budget, "wall_s": None, "ok": False, "commit": git_commit(),
              "settings": {"fp32_peak_flops": args.fp32_peak, "sizes": asdict(sizes)},
              "machine": {"nvidia_smi": nvidia_smi()}, "versions": {}, "steps": []}
    for name in names:
        left = budget - (time.monotonic() - t0)
        if left < MIN_STEP_S:
            res = StepResult(name, "skipped", 0.0, 0.0, error=f"budget exhausted ({left:.0f} s left)")
        else:
            res = run_step(name, args, min(STEPS[name][col], left), log_path)
        if name == "probe":
            report["machine"].update(res.info.pop("machine", {}))
            report["versions"] = res.info.pop("versions", {})
        report["steps"].append(asdict(res))
        report["wall_s"] = round(time.monotonic() - t0, 2)
        report["ok"] = all(s["status"] == "ok" for s in report["steps"])
        write_report(report, out)
    print(markdown(report))
    print(f"wrote {out / 'gpu_suite.json'} and {out / 'gpu_suite.md'} ({report['wall_s']:.0f} s)")
    return 0 if report["ok"] else 1


# ============================================================================================= the report
def write_report(report, out: Path):
    for fname, text in (("gpu_suite.json", json.dumps(report, indent=1, default=_plain)),
                        ("gpu_suite.md", markdown(report))):
        tmp = out / (fname + ".tmp")
        tmp.write_text(text)
        tmp.replace(out / fname)


def _cell(m):
    if m["status"] != "ok":
        return m["status"]
    v = m["value"]
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def step_table(step) -> list[str]:
    """One step's measurements as a markdown table: a row per (case, implementation), a column per metric."""
    rows, cols, cells = [], [], {}
    for m in step["measurements"]:
        if m["status"] == "error":
            continue
        row, col = (m["case"], m["impl"]), (m["metric"], m["unit"])
        for seq, key in ((rows, row), (cols, col)):
            if key not in seq:
                seq.append(key)
        cells[row, col] = _cell(m)
    if not rows:
        return []
    head = ["case", "implementation"] + [f"{metric} ({unit})" if unit else metric for metric, unit in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join(list(row) + [cells.get((row, col), "") for col in cols]) + " |")
    return lines


def markdown(report) -> str:
    m, v = report["machine"], report["versions"]
    gpu = m.get("gpu") or m.get("numba_device") or "no GPU"
    sim = "Numba's CUDA simulator, torch on the CPU: the times measure nothing. " if report["mode"] == "tiny" else ""
    lines = [f"### GPU suite, {report['mode']} ({report['created'][:10]}): {gpu}", "",
             f"{sim}`{report['command']}`; commit {(report.get('commit') or 'unknown')[:12]}; "
             f"{report['wall_s']} s of a {report['budget_s']:.0f} s budget.",
             "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".",
             f"Machine: {m.get('nvidia_smi') or 'nvidia-smi: none'}; driver CUDA {m.get('cuda_driver') or '?'}, "
             f"torch CUDA {m.get('torch_cuda') or '?'}, compute capability {m.get('compute_capability') or '?'}.", "",
             "| step | status | seconds | CPU seconds | error |", "|---|---|---|---|---|"]
    for s in report["steps"]:
        err = (s["error"] or "").replace("|", "/").replace("\n", " ")[:300]
        lines.append(f"| {s['name']} | {s['status']} | {s['seconds']:.0f} | {s['cpu_s']:.0f} | {err} |")
    for s in report["steps"]:
        table = step_table(s) if s["name"] != "probe" else []
        notes = s["notes"] + [f"{x['case']} / {x['impl']}: {x['metric']} skipped: {x['note']}"
                              for x in s["measurements"] if x["status"] == "skipped"]
        errors = [f"{x['case']} / {x['impl']}: error: {x.get('note')}" for x in s["measurements"]
                  if x["status"] == "error"]
        if table or notes or errors:
            lines += ["", f"**{s['name']}**: {s['title']}", ""] + table + [f"- {' '.join(t.split())}"
                                                                          for t in notes + errors]
    return "\n".join(lines) + "\n"


def _has_module(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    sys.exit(main())
