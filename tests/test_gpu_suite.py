"""The GPU suite (``benchmarks/gpu_suite.py``, docs/benchmarks.md "GPU suite") at tiny sizes on Numba's CUDA
simulator: every step runs, the JSON has the documented form, the measured accuracies are those of the same job,
the markdown tables are built from it; a step past its timeout is killed with its children; and the
``DIFFSOLVE_CUDA_TESTS=hardware`` switch of tests/conftest.py keeps the simulator out of the tests' children."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_suite():
    """benchmarks/gpu_suite.py as a module, without putting benchmarks/ on sys.path (its test_*.py files would
    shadow those of tests/)."""
    spec = importlib.util.spec_from_file_location("diffsolve_gpu_suite", ROOT / "benchmarks" / "gpu_suite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gpu_suite = _load_suite()

STEPS = ["probe", "cuda-tests", "gmm2m", "stepper", "langevin"]
needs_stack = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("numba_cuda", "torch", "diffusers")),
    reason="the tiny suite needs numba-cuda, torch and diffusers")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``bash benchmarks/gpu_suite.sh --tiny`` (the entry point, with this interpreter): (process, JSON, markdown,
    console log, the temporary folder)."""
    tmp = tmp_path_factory.mktemp("gpu_suite")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_ENABLE_CUDASIM", "DIFFSOLVE_CUDA_TESTS")}
    env.update(PYTHON=sys.executable, TMPDIR=str(tmp))
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--tiny", "--out", str(tmp / "out")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    out = tmp / "out"
    report = json.loads((out / "gpu_suite.json").read_text())
    return proc, report, (out / "gpu_suite.md").read_text(), (out / "gpu_suite.log").read_text(), tmp


def _rows(report, step):
    (s,) = [s for s in report["steps"] if s["name"] == step]
    return {(m["case"], m["impl"], m["metric"]): m for m in s["measurements"]}


@needs_stack
def test_every_step_runs_ok(tiny):
    proc, report, *_ = tiny
    assert [s["name"] for s in report["steps"]] == STEPS
    bad = {s["name"]: (s["status"], s["error"], s["log_tail"][-1500:]) for s in report["steps"] if s["status"] != "ok"}
    assert not bad and report["ok"] and proc.returncode == 0, (bad, proc.stdout[-2000:])


@needs_stack
def test_json_schema(tiny):
    _, report, *_ = tiny
    assert report["schema"] == gpu_suite.SCHEMA and report["mode"] == "tiny"
    assert {"created", "command", "budget_s", "wall_s", "ok", "commit", "settings", "machine", "versions",
            "steps"} <= set(report)
    assert report["machine"]["simulator"] is True and report["versions"]["numpy"]
    assert report["settings"]["sizes"]["gmm_n"] == gpu_suite.TINY.gmm_n
    for step in report["steps"]:
        assert set(step) == {"name", "status", "seconds", "timeout_s", "cpu_s", "title", "error", "notes", "info",
                             "measurements", "log_tail"}
        assert step["status"] in gpu_suite.STATUSES and 0 < step["seconds"] <= step["timeout_s"]
        for m in step["measurements"]:
            assert {"case", "impl", "metric", "value", "unit", "status"} <= set(m), m
            assert m["status"] in ("ok", "skipped") and (m["value"] is None) == (m["status"] == "skipped"), m
    assert report["wall_s"] < report["budget_s"]


@needs_stack
def test_measurements_are_those_of_the_jobs(tiny):
    _, report, *_ = tiny
    tests = _rows(report, "cuda-tests")
    (info,) = [s["info"] for s in report["steps"] if s["name"] == "cuda-tests"]
    assert info["counts"]["passed"] >= 1 and info["counts"]["failed"] == info["counts"]["error"] == 0, info
    assert tests["all", "pytest", "outcome"]["value"].startswith(f"{info['counts']['passed']} passed")
    assert tests["test_noise.py", "test_cuda_kernel_in_simulator_matches_cpu", "outcome"]["value"] == "PASSED"
    gmm = _rows(report, "gmm2m")
    case = f"N = {gpu_suite.TINY.gmm_n}"
    e2e = "diffsolve cuda: ds.sample, host arrays in and out"
    # float32 runs against the float64 numpy backend (the plain torch code loses digits to the expanded distances)
    for impl, tol in ((e2e, 1e-5), ("PyTorch eager", 1e-3)):
        assert 0 < gmm[case, impl, "max rel. error vs float64"]["value"] < tol, impl
        assert gmm[case, impl, "time"]["value"] > 0
    assert gmm[case, "torch.compile", "time"]["status"] == "skipped"
    assert gmm[case, e2e, "speed-up vs PyTorch eager"]["unit"] == "x"
    stepper = _rows(report, "stepper")
    for shape in gpu_suite.TINY.stepper_shapes:
        impls = {i for c, i, _ in stepper if c == "x".join(map(str, shape))}
        assert len(impls) == 3 and any(i.startswith("diffusers") for i in impls), impls
    lang = _rows(report, "langevin")
    for name in ("rtk-mala", "rtk-uld"):  # the simulator against the numpy reference
        assert lang[name, "diffsolve cuda float64 (ds.sample)", "max rel. error vs baseline"]["value"] < 1e-12
        assert lang[name, "diffsolve cuda float32 (ds.sample)", "max rel. error vs baseline"]["value"] < 1e-4
        assert lang[name, "diffsolve cuda float64 (kernel)", "time"]["status"] == "skipped"


@needs_stack
def test_markdown_tables(tiny):
    _, report, md, *_ = tiny
    assert md == gpu_suite.markdown(report)
    assert "| step | status | seconds | CPU seconds | error |" in md
    for step in STEPS[1:]:
        assert f"| {step} | ok |" in md and f"**{step}**" in md
    assert "| case | implementation | time (ms) | min (ms) | GFLOP/s |" in md
    assert "| N = 16 | torch.compile | skipped |" in md


def test_markdown_pivots_measurements():
    step = {"name": "x", "title": "t", "notes": [], "measurements": [
        {"case": "a", "impl": "p", "metric": "time", "value": 1.23456, "unit": "ms", "status": "ok"},
        {"case": "a", "impl": "q", "metric": "time", "value": None, "unit": "ms", "status": "skipped"},
        {"case": "a", "impl": "q", "metric": "n", "value": 7, "unit": "", "status": "ok"},
        {"case": "a", "impl": "r", "metric": "error", "value": None, "unit": "", "status": "error"}]}
    assert gpu_suite.step_table(step) == ["| case | implementation | time (ms) | n |", "|---|---|---|---|",
                                          "| a | p | 1.23 |  |", "| a | q | skipped | 7 |"]


def test_a_step_past_its_timeout_is_killed_with_its_children(tmp_path):
    pid_file = tmp_path / "grandchild"
    code = textwrap.dedent(f"""
        import subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(p.pid))
        print("started", flush=True)
        time.sleep(60)
    """)
    t0 = time.monotonic()
    rc, out = gpu_suite.run_bounded([sys.executable, "-c", code], 5, dict(os.environ))
    assert rc is None and "started" in out and time.monotonic() - t0 < 20
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"process {pid} survived the timeout"


def _alive(pid):
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_hardware_switch_drops_the_simulator_from_test_children(tmp_path):
    """tests/conftest.py with DIFFSOLVE_CUDA_TESTS=hardware: a test's child started with NUMBA_ENABLE_CUDASIM=1
    does not see it (loaded here as a plugin for a test file outside tests/)."""
    (tmp_path / "test_child_env.py").write_text(textwrap.dedent("""
        import os, subprocess, sys
        def test_child_env():
            code = "import os; print(os.environ.get('NUMBA_ENABLE_CUDASIM'))"
            out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, NUMBA_ENABLE_CUDASIM="1"),
                                 capture_output=True, text=True).stdout.strip()
            assert out == "None", out
    """))
    env = dict(os.environ, DIFFSOLVE_CUDA_TESTS="hardware",
               PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                           "test_child_env.py"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0 and "1 passed" in proc.stdout, (proc.stdout[-2000:], proc.stderr[-2000:])



@needs_stack
def test_the_shell_entry_point(tiny):
    """gpu_suite.sh: the repository on PYTHONPATH, the log, the exit status passed on, its temporary folder gone."""
    proc, report, _, log, tmp = tiny
    assert f"PYTHONPATH={ROOT}" in log and "gpu_suite.py exit status 0" in log, log[-3000:]
    assert proc.returncode == 0 and report["versions"]["diffsolve"]
    assert not list(tmp.glob("diffsolve-gpu.*")), "the temporary caches were not removed"
