"""Issue 15: progress on stderr (diffsolve/progress.py: a tqdm bar on a terminal, plain lines in a log, off with
``DIFFSOLVE_PROGRESS=0``), plots into a given Axes without touching matplotlib's backend, and the cache directory
from platformdirs."""

from __future__ import annotations

import importlib
import io
import time
from pathlib import Path
from types import SimpleNamespace

import platformdirs
import pytest

import diffsolve as ds
from diffsolve import progress as P
from diffsolve.cache import cache_dir
from diffsolve.claims import Result, run
from diffsolve.errors import DiffsolveError


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def _no_setting(monkeypatch):
    monkeypatch.delenv(P.ENV, raising=False)


# ---------------------------------------------------------------------------------------------------------------
# where progress shows

@pytest.mark.parametrize("setting, stream, enabled, mode", [
    ("", Terminal(), True, "bar"), ("", io.StringIO(), True, "log"), ("auto", io.StringIO(), True, "log"),
    ("0", Terminal(), True, "off"), ("1", io.StringIO(), True, "bar"), ("1", Terminal(), False, "off"),
    ("", Terminal(), False, "off"),
])
def test_progress_mode(monkeypatch, setting, stream, enabled, mode):
    monkeypatch.setenv(P.ENV, setting)
    assert P.progress_mode(enabled, stream) == mode


def test_a_bad_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv(P.ENV, "yes")
    with pytest.raises(DiffsolveError, match=r"DIFFSOLVE_PROGRESS='yes'.*expected 0 .*1 .*auto"):
        P.progress_mode(True, io.StringIO())
    assert P.progress_mode(False, io.StringIO()) == "off"  # progress that was not asked for ignores it


def test_a_log_gets_plain_lines_with_count_time_and_current_item():
    log = io.StringIO()
    with P.Progress(3, "claims demo", unit="experiments", every=0.0, announce="claims demo: 3 experiments",
                    stream=log) as p:
        for name in ("a", "b", "c"):
            p.note(name)
            p.update(1)
    lines = log.getvalue().splitlines()
    assert lines[0] == "claims demo: 3 experiments"
    assert lines[1] == "claims demo: 1/3 experiments done (0 s; now a)"
    assert lines[-1] == "claims demo: done, 3/3 experiments in 0 s" and len(lines) == 5
    assert "\r" not in log.getvalue()


def test_short_work_in_a_log_is_silent_and_off_writes_nothing(monkeypatch):
    log = io.StringIO()
    with P.Progress(3, "short", stream=log) as p:  # every 30 s
        p.update(3)
    assert log.getvalue() == ""
    monkeypatch.setenv(P.ENV, "0")
    with P.Progress(3, "off", unit="x", every=0.0, announce="never", stream=log) as p:
        p.update(3)
    assert log.getvalue() == "" and p._ticker is None


def test_a_terminal_gets_a_tqdm_bar():
    tty = Terminal()
    with P.Progress(4, "order study ddim", unit="grids", stream=tty) as p:
        p.note("16 steps")
        p.update(2)
        p.update(2)
    text = tty.getvalue()
    assert "\r" in text and "order study ddim: 100%|" in text and "4/4 grids" in text and "16 steps" in text


def test_uncounted_work_ticks_its_elapsed_time_and_waits_for_its_delay():
    tty = Terminal()
    with P.Progress(None, "deriving", unit="", stream=tty):
        time.sleep(1.3)  # no update: the ticker redraws the elapsed time
    assert "deriving: [00:01]" in tty.getvalue()
    quiet = Terminal()
    with P.Progress(None, "fast", unit="", delay=5.0, stream=quiet):
        pass
    assert quiet.getvalue() == ""


def test_the_compile_listener_reports_diffsolve_compilations_only(monkeypatch):
    from numba.core import event

    importlib.import_module("diffsolve.kernels.cpu")  # registers the listener
    monkeypatch.setenv(P.ENV, "1")
    tty = Terminal()
    monkeypatch.setattr("sys.stderr", tty)

    def compiled(module):
        def fn():
            pass

        fn.__module__ = module
        return {"dispatcher": SimpleNamespace(py_func=fn)}

    with event.trigger_event("numba:compile", data=compiled("someone.else")):
        pass
    assert tty.getvalue() == ""
    with event.trigger_event("numba:compile", data=compiled("diffsolve.kernels.fake")):
        with event.trigger_event("numba:compile", data=compiled("diffsolve.kernels.fake")):
            pass
    assert "diffsolve: Numba:" in tty.getvalue() and "functions compiled" in tty.getvalue()


def test_derive_shows_progress_only_when_it_lasts(monkeypatch, capsys):
    D = importlib.import_module("diffsolve.derive")  # the module (ds.derive is the function)
    real = D.multistep_solver
    monkeypatch.setenv(P.ENV, "1")
    monkeypatch.setattr(D, "multistep_solver", lambda *a: (time.sleep(1.5), real(*a))[1])
    D.derive("dpmpp-multistep", 2)
    assert "diffsolve: deriving dpmpp-multistep order 2 with SymPy" in capsys.readouterr().err
    monkeypatch.setattr(D, "multistep_solver", real)
    D.derive("dpmpp-multistep", 2)
    D.derive("dpmpp-multistep", 2, progress=False)
    assert capsys.readouterr().err == ""


def test_claims_progress_goes_to_stderr(capsys):
    printed = []
    run("seeds", only=["variance"], quick=True, out=printed.append, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "claims seeds --quick: 1 experiment" and err[-1].startswith("claims seeds: done, 1/1 experiments")
    assert len(printed) == 1 and printed[0].startswith("### ")


def test_order_study_progress(capsys):
    tgt = ds.targets.from_spec("gaussian:d=2")
    ds.order_study("ddim", tgt, ds.get_schedule("vp-linear"), steps=[8, 16], progress=True)
    assert capsys.readouterr().err == ""  # a log, and short: silent


# ---------------------------------------------------------------------------------------------------------------
# plots: into the caller's Axes, or a file, never a change of the backend

@pytest.fixture
def no_backend_switch(monkeypatch):
    mpl = pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    def refuse(*a, **k):
        raise AssertionError("diffsolve must not switch matplotlib's backend")

    before, figures = mpl.get_backend(), plt.get_fignums()
    monkeypatch.setattr(mpl, "use", refuse)
    monkeypatch.setattr(plt, "switch_backend", refuse)
    yield plt
    assert mpl.get_backend() == before and plt.get_fignums() == figures


@pytest.fixture(scope="module")
def study():
    return ds.order_study("ddim", ds.targets.from_spec("gaussian:d=2"), ds.get_schedule("vp-linear"), steps=[8, 16])


RESULT = Result(title="t", claim="c", columns=["a"], rows=[[1]], series={"x": ([1, 2], [1.0, 0.5]),
                                                                        "y": ([1, 2], [2.0, 0.5])})


def test_plots_to_a_file_leave_the_backend_and_pyplot_alone(no_backend_switch, study, tmp_path):
    for make, name in ((lambda p: study.plot(p), "one.png"), (lambda p: ds.accuracy.plot_studies([study, study], p),
                                                                "two.png"), (lambda p: RESULT.plot(p), "claim.png")):
        path = make(tmp_path / name)
        assert Path(path) == tmp_path / name and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_draw_into_the_given_axes(no_backend_switch, study, tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert study.plot(ax=left) is left and len(left.lines) == 2  # errors and the reference slope
    assert RESULT.plot(tmp_path / "both.png", ax=right) is right and len(right.lines) == 2
    assert (tmp_path / "both.png").stat().st_size > 1000 and left.get_xscale() == "log"
    with pytest.raises(DiffsolveError, match="ax must be a matplotlib Axes.*got str"):
        study.plot(ax="left")


def test_a_plot_without_path_or_axes_is_a_new_pyplot_figure(study):
    plt = pytest.importorskip("matplotlib.pyplot")
    ax = study.plot()
    try:
        assert ax.figure.number in plt.get_fignums() and len(ax.lines) == 2
    finally:
        plt.close(ax.figure)


# ---------------------------------------------------------------------------------------------------------------
# the cache directory

def test_cache_dir_is_the_setting_else_the_platform_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DIFFSOLVE_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("DIFFSOLVE_CACHE_DIR")
    assert cache_dir() == Path(platformdirs.user_cache_dir("diffsolve", appauthor=False))
