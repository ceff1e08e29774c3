"""The command line (docs/architecture.md): ``diffsolve solvers | sample | order``, run in-process through
``diffsolve.cli.main`` and once through ``python -m diffsolve.cli``; readable tables, ``--json``, ``--out``,
``--plot``, user schedules, and one-line error messages with exit code 2."""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from diffsolve.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
USER_ALPHA = "exp(-5*t**2 - t/20)"
USER_SIGMA = "sqrt(1 - exp(-10*t**2 - t/10))"
SAMPLE_REPORT_KEYS = {
    "solver", "schedule", "spacing", "steps", "target", "n", "backend", "seed", "t_start", "t_end", "seconds",
    "mean_abs_error", "sliced_w1_to_target", "sliced_w1_between_exact_samples", "mean_log_density",
    "mean_log_density_exact", "exact_w2_of_output_law",
}


def _run(capsys, argv):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_one_line_error(err: str, command: str, *fragments: str):
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line error, got:\n{err}"
    assert lines[0].startswith(f"diffsolve {command}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# ---------------------------------------------------------------------------------------------------------------
# solvers

def test_solvers_table(capsys):
    rc, out, err = _run(capsys, ["solvers"])
    assert rc == 0 and err == ""
    header, rule, *rows = out.strip().splitlines()
    assert header.split()[:3] == ["name", "variant", "order"]
    assert set(rule.replace(" ", "")) == {"-"}
    table = [r.split() for r in rows if r.strip() and r.split()[1] in ("exact", "published")]
    by_name = {(r[0], r[1]): r for r in table}
    assert by_name[("ddim", "exact")][2] == "1" and by_name[("ddpm", "exact")][2] == "1"
    assert by_name[("dpmpp-3m", "exact")][2] == "3" and by_name[("dpmpp-3m", "published")][2] == "2"


def test_solvers_json(capsys):
    rc, out, err = _run(capsys, ["solvers", "--json"])
    assert rc == 0 and err == ""
    doc = json.loads(out)
    rows = {row["name"]: row for row in doc["solvers"]}
    for name in ("ddim", "ddpm"):
        assert rows[name]["order"] == 1
        assert rows[name]["nfe_per_step"] == 1
        assert rows[name]["prediction"] in ("data", "eps")
    assert rows["ddim"]["stochastic"] is False and rows["ddpm"]["stochastic"] is True
    assert isinstance(doc["patterns"], list)


def test_entry_point_via_subprocess():
    proc = subprocess.run([sys.executable, "-m", "diffsolve.cli", "solvers", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = {row["name"] for row in json.loads(proc.stdout)["solvers"]}
    assert {"ddim", "ddpm"} <= names


def test_entry_point_error_via_subprocess():
    proc = subprocess.run([sys.executable, "-m", "diffsolve.cli", "sample", "--solver", "ddmp", "--steps", "10",
                           "--target", "gaussian:d=4", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    _assert_one_line_error(proc.stderr, "sample", "unknown solver 'ddmp'", "Did you mean 'ddpm'?")


# ---------------------------------------------------------------------------------------------------------------
# sample

def test_sample_json_and_out(capsys, tmp_path):
    out_file = tmp_path / "x.npy"
    rc, out, err = _run(capsys, ["sample", "--solver", "ddim", "--steps", "10", "--target", "gaussian:d=4",
                                 "--n", "2000", "--json", "--out", str(out_file)])
    assert rc == 0 and err == ""
    report = json.loads(out)
    assert SAMPLE_REPORT_KEYS <= set(report)
    assert report["solver"] == "ddim" and report["steps"] == 10 and report["n"] == 2000
    assert report["target"] == "gaussian:d=4" and report["schedule"] == "vp-linear"
    assert report["t_start"] > report["t_end"]
    w1 = report["sliced_w1_to_target"]
    assert math.isfinite(w1) and 0 <= w1 < 1.0
    assert math.isfinite(report["sliced_w1_between_exact_samples"])
    assert math.isfinite(report["exact_w2_of_output_law"]) and report["exact_w2_of_output_law"] > 0
    assert report["out"] == str(out_file)
    x = np.load(out_file)
    assert x.shape == (2000, 4) and x.dtype == np.float64 and np.isfinite(x).all()


def test_sample_table(capsys):
    rc, out, err = _run(capsys, ["sample", "--solver", "ddpm", "--steps", "8", "--target", "gmm:d=2,k=3,seed=0",
                                 "--n", "500", "--no-progress"])
    assert rc == 0
    assert "sampled 500 x 2-d points of gmm:d=2,k=3,seed=0 with ddpm" in out
    assert "sliced W1 to exact samples of the target" in out
    assert "exact W2" not in out  # only Gaussian targets have an exact output law


def test_sample_user_schedule(capsys):
    rc, out, err = _run(capsys, ["sample", "--solver", "ddim", "--steps", "10", "--target", "gaussian:d=3",
                                 "--n", "300", "--alpha", USER_ALPHA, "--sigma", USER_SIGMA, "--json"])
    assert rc == 0, err
    report = json.loads(out)
    assert report["schedule"].startswith("expr(") and USER_ALPHA in report["schedule"]
    assert math.isfinite(report["sliced_w1_to_target"])
    assert math.isfinite(report["exact_w2_of_output_law"])


# ---------------------------------------------------------------------------------------------------------------
# order (acceptance: DDIM and DDPM measure order 1 +- 0.15 on gaussian:d=8)

@pytest.fixture(scope="module")
def order_run(tmp_path_factory):
    plot = tmp_path_factory.mktemp("order") / "order.png"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["order", "--solver", "ddim,ddpm", "--target", "gaussian:d=8", "--steps", "16,32,64,128", "--json",
                   "--plot", str(plot)])
    return rc, out.getvalue(), err.getvalue(), plot


def test_order_json(order_run):
    rc, out, err, plot = order_run
    assert rc == 0 and err == ""
    doc = json.loads(out)
    assert doc["target"] == "gaussian:d=8" and doc["plot"] == str(plot)
    studies = {s["solver"]: s for s in doc["studies"]}
    assert set(studies) == {"ddim", "ddpm"}
    for name, st in studies.items():
        assert st["steps"] == [16, 32, 64, 128]
        assert st["declared_order"] == 1
        assert len(st["errors"]) == 4 and all(e > 0 and math.isfinite(e) for e in st["errors"])
        assert st["errors"] == sorted(st["errors"], reverse=True), f"{name}: error does not decrease"
        assert abs(st["order"] - 1.0) <= 0.15, f"{name}: fitted order {st['order']:.3f} not within 1 +- 0.15"


def test_order_plot_is_png(order_run):
    rc, _, _, plot = order_run
    assert rc == 0
    data = plot.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


def test_order_table_with_user_schedule(capsys):
    rc, out, err = _run(capsys, ["order", "--solver", "ddim", "--target", "gaussian:d=4", "--steps", "16,32",
                                 "--alpha", USER_ALPHA, "--sigma", USER_SIGMA, "--no-progress"])
    assert rc == 0, err
    assert "ddim" in out and "declared order 1" in out
    fitted = [line for line in out.splitlines() if line.startswith("fitted order:")]
    assert len(fitted) == 1 and math.isfinite(float(fitted[0].split(":")[1]))


# ---------------------------------------------------------------------------------------------------------------
# error paths: exit code 2, one line on stderr "diffsolve <command>: error: ..."

ERROR_CASES = [
    ("sample-bad-target", ["sample", "--solver", "ddim", "--steps", "10", "--target", "gaussian:d=abc"],
     "sample", ["'gaussian:d=abc'", "needs a number"]),
    ("sample-unknown-kind", ["sample", "--solver", "ddim", "--steps", "10", "--target", "foo:d=2"],
     "sample", ["unknown target kind 'foo'"]),
    ("sample-unknown-solver", ["sample", "--solver", "ddmp", "--steps", "10", "--target", "gaussian:d=4"],
     "sample", ["unknown solver 'ddmp'", "Did you mean 'ddpm'?"]),
    ("order-unknown-solver", ["order", "--solver", "ddim,nosuch", "--target", "gaussian:d=4", "--steps", "8,16"],
     "order", ["unknown solver 'nosuch'"]),
    ("order-bad-steps-list", ["order", "--solver", "ddim", "--target", "gaussian:d=4", "--steps", "8,x,16"],
     "order", ["--steps must be a comma-separated list of integers", "'8,x,16'"]),
    ("order-one-step-count", ["order", "--solver", "ddim", "--target", "gaussian:d=4", "--steps", "8"],
     "order", ["at least two distinct positive step counts", "[8]"]),
    ("order-gmm-target", ["order", "--solver", "ddim", "--target", "gmm:d=2", "--steps", "8,16"],
     "order", ["needs a Gaussian target"]),
    ("order-unknown-metric", ["order", "--solver", "ddim", "--target", "gaussian:d=4", "--steps", "8,16",
                              "--metric", "foo"], "order", ["unknown metric 'foo'"]),
    ("sample-zero-steps", ["sample", "--solver", "ddim", "--steps", "0", "--target", "gaussian:d=4"],
     "sample", ["steps must be >= 1, got 0"]),
    ("sample-alpha-only", ["sample", "--solver", "ddim", "--steps", "10", "--target", "gaussian:d=4",
                           "--alpha", "exp(-t)"], "sample", ["pass both --alpha and --sigma"]),
    ("sample-malicious-alpha", ["sample", "--solver", "ddim", "--steps", "10", "--target", "gaussian:d=4",
                                "--alpha", "__import__('os').getcwd()", "--sigma", "t"], "sample", ["not allowed"]),
    ("sample-unknown-schedule", ["sample", "--solver", "ddim", "--steps", "10", "--target", "gaussian:d=4",
                                 "--schedule", "vp-lienar"], "sample", ["unknown schedule 'vp-lienar'"]),
    ("sample-negative-n", ["sample", "--solver", "ddim", "--steps", "10", "--target", "gaussian:d=4", "--n", "-5"],
     "sample", ["got n=-5"]),
    ("sample-bad-param", ["sample", "--solver", "seeds-2", "--steps", "10", "--target", "gaussian:d=4",
                          "--param", "eta"], "sample", ["--param must look like KEY=VALUE", "'eta'"]),
    ("sample-word-for-a-number", ["sample", "--solver", "ddpm", "--steps", "10", "--target", "gaussian:d=4",
                                  "--param", "eta=high"], "sample", ["parameter eta must be a number", "'high'"]),
    ("sample-bad-langevin-word", ["sample", "--solver", "rtk-mala", "--steps", "3", "--target", "gaussian:d=2",
                                  "--param", "energy=exactly"], "sample", ["energy must be one of", "'exactly'"]),
    ("sample-unknown-param", ["sample", "--solver", "ddim", "--steps", "10", "--target", "gaussian:d=4",
                              "--param", "eta=0.5"], "sample", ["has no parameter 'eta'"]),
    ("order-param-out-of-range", ["order", "--solver", "accel-sde", "--target", "gaussian:d=4", "--steps", "8,16",
                                  "--param", "a=0.9"], "order", ["a = 0.9 is outside its range", "[0, 0.5]"]),
]


@pytest.mark.parametrize("argv, command, fragments", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_error_exit_code_and_one_line(capsys, argv, command, fragments):
    rc, out, err = _run(capsys, argv + ["--json"])
    assert rc == 2
    assert out == ""
    _assert_one_line_error(err, command, *fragments)


def test_argparse_error_names_the_command(capsys):
    # a non-integer for an int option is rejected by argparse itself (SystemExit 2, usage + one error line)
    with pytest.raises(SystemExit) as exc:
        main(["sample", "--solver", "ddim", "--steps", "ten", "--target", "gaussian:d=4"])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("diffsolve sample: error: ") and "--steps" in last and "'ten'" in last


def test_error_negative_target_seed(capsys):
    rc, out, err = _run(capsys, ["sample", "--solver", "ddim", "--steps", "10", "--target", "gaussian:d=4,seed=-1",
                                 "--json"])
    assert rc == 2
    _assert_one_line_error(err, "sample", "seed")


def test_langevin_sampler_from_the_command_line(capsys):
    """Words and per-segment lists reach a Langevin sampler (--param energy=exact, tau=0.2,0.1)."""
    assert main(["sample", "--solver", "rtk-mala", "--schedule", "ou", "--spacing", "time", "--steps", "2",
                 "--target", "gaussian:d=2", "--n", "64", "--param", "energy=exact", "--param", "tau=0.2,0.1",
                 "--param", "inner=3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"]["energy"] == "exact" and report["params"]["tau"] == [0.2, 0.1]


def test_variant_names_and_params_reach_the_solver(capsys):
    """name:variant selects a variant, --param sets runtime parameters (here accel-sde's clip and a)."""
    argv = ["sample", "--solver", "accel-sde:constant", "--steps", "12", "--target", "gaussian:d=3", "--n", "200",
            "--param", "a=0.25", "--param", "c=inf", "--json"]
    rc, out, _ = _run(capsys, argv)
    report = json.loads(out)
    assert rc == 0 and report["params"] == {"a": 0.25, "c": "inf"} and "Infinity" not in out
    rc, out, _ = _run(capsys, argv[:-5] + ["--json"])
    assert report["exact_w2_of_output_law"] != json.loads(out)["exact_w2_of_output_law"]


def test_pattern_solver_variant_in_the_name(capsys):
    rc, out, _ = _run(capsys, ["order", "--solver", "seeds-2:2b-mirrored", "--target", "gaussian:d=3", "--steps",
                               "16,32", "--json"])
    assert rc == 0 and json.loads(out)["studies"][0]["solver"] == "seeds-2:2b-mirrored"


# ---------------------------------------------------------------------------------------------------------------
# progress on stderr, --quiet, python -m diffsolve (issue 15)

ORDER_ARGV = ["order", "--solver", "ddim", "--target", "gaussian:d=2", "--steps", "8,16", "--json"]


def test_progress_goes_to_stderr_and_json_stays_pure(capsys, monkeypatch):
    monkeypatch.setenv("DIFFSOLVE_PROGRESS", "1")  # a bar although the captured stderr is no terminal
    rc, out, err = _run(capsys, ORDER_ARGV)
    assert rc == 0 and json.loads(out)["studies"][0]["steps"] == [8, 16]
    assert "order study ddim: 100%|" in err and "2/2 grids" in err
    rc, out, err = _run(capsys, ORDER_ARGV + ["--quiet"])
    assert rc == 0 and err == "" and json.loads(out)["studies"][0]["solver"] == "ddim"


def test_claims_progress_lines_in_a_log_and_json_on_stdout(capsys, monkeypatch):
    monkeypatch.delenv("DIFFSOLVE_PROGRESS", raising=False)
    rc, out, err = _run(capsys, ["claims", "seeds", "--only", "variance", "--quick", "--json"])
    assert rc == 0 and list(json.loads(out)) == ["variance"]
    assert err.splitlines()[0] == "claims seeds --quick: 1 experiment" and "claims seeds: done, 1/1" in err
    rc, out, err = _run(capsys, ["claims", "seeds", "--only", "variance", "--quick", "--json", "-q"])
    assert rc == 0 and err == ""


def test_a_bad_progress_setting_is_a_one_line_error(capsys, monkeypatch):
    monkeypatch.setenv("DIFFSOLVE_PROGRESS", "maybe")
    rc, out, err = _run(capsys, ORDER_ARGV)
    assert rc == 2 and out == ""
    _assert_one_line_error(err, "order", "DIFFSOLVE_PROGRESS='maybe'", "expected 0")


def test_claims_help_states_the_measured_durations(capsys):
    from diffsolve.claims import PAPERS, RUNTIME, runtime

    with pytest.raises(SystemExit) as exc:
        main(["claims", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "--quiet" in out
    for paper in PAPERS:
        line = next(line for line in out.splitlines() if line.split()[:1] == [paper])
        assert runtime(paper, False) in line and f"--quick: {runtime(paper, True)}" in line and RUNTIME[paper][1] > 0


def test_python_dash_m_diffsolve_is_the_cli():
    proc = subprocess.run([sys.executable, "-m", "diffsolve", "solvers", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    # the entry point in a fresh process too (this process' registry may hold solvers other tests derived)
    ref = subprocess.run([sys.executable, "-c", "import sys; from diffsolve.cli import main; "
                          "sys.exit(main(['solvers', '--json']))"], capture_output=True, text=True, timeout=120)
    assert ref.returncode == 0, ref.stderr
    assert json.loads(proc.stdout) == json.loads(ref.stdout)
