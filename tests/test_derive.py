"""ds.derive and `diffsolve derive`: a new order on demand, symbolically checked, cached, usable by sample;
the command prints from the generated module it loaded (no second derivation)."""

import json

import numpy as np
import pytest

import diffsolve as ds
from diffsolve.cli import main
from diffsolve.solvers import modules
from diffsolve.targets import from_spec

VP = ds.get_schedule("vp-linear")
ORDER_SETUP = {"t_max": float(VP.t_of_lam(-2.5)), "t_min": float(VP.t_of_lam(3.0)), "spacing": "karras",
               "steps": [64, 128, 256]}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFSOLVE_CACHE_DIR", str(tmp_path))
    modules.tableau_module.cache_clear()
    yield tmp_path
    modules.tableau_module.cache_clear()


def test_derive_order_6_samples_and_measures_6(cache):
    solver = ds.derive("dpmpp-multistep", 6, schedule=VP)
    assert solver.order == 6 and solver.history == 5 and solver.nfe_per_step == 1
    assert str(cache) in solver.extra["module"]
    assert ds.get_solver("dpmpp-6m") is not None
    x = ds.sample(solver, from_spec("gmm:d=2,k=3,seed=1"), VP, ds.time_grid(VP, 20), n=200, seed=0)
    assert x.shape == (200, 2) and np.isfinite(x).all()
    study = ds.order_study(solver, from_spec("gaussian:d=8"), VP, **ORDER_SETUP)
    assert abs(study.order - 6) <= 0.3, study.table()


def test_second_derive_reuses_the_cache(cache, monkeypatch):
    first = ds.derive("dpmpp-multistep", 6)
    files = sorted(p.name for p in cache.iterdir())
    modules.tableau_module.cache_clear()

    def no_derivation(*args, **kwargs):
        raise AssertionError("derived again instead of loading the cached module")

    monkeypatch.setattr("diffsolve.codegen.catalog.derive", no_derivation)
    second = ds.derive("dpmpp-multistep", 6)
    assert second.extra["module"] == first.extra["module"]
    assert sorted(p.name for p in cache.iterdir()) == files


def test_derive_noise_prediction_sde(cache):
    solver = ds.derive("dpm-solver-multistep", 3, sde=True)
    assert solver.prediction == "eps" and solver.stochastic and solver.param_names == ("eta",)
    x = ds.sample(solver, from_spec("gaussian:d=3"), VP, ds.time_grid(VP, 15), n=50, seed=1)
    assert np.isfinite(x).all()


def test_shipped_orders_do_not_touch_the_cache(cache):
    ds.derive("dpmpp-multistep", 3)
    assert not any(cache.iterdir())


def test_cli_derive_json(cache, capsys):
    assert main(["derive", "dpmpp-multistep", "--order", "5", "--sde", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "dpmpp-5m-sde" and out["order"] == 2 and out["noises"] == 1
    assert out["module"].endswith(".py")
    assert "C[1,0]" in out["coefficients"] and "eta" in out["coefficients"]["C[1,0]"]


def test_cli_derive_prints_from_the_loaded_module(cache, capsys, monkeypatch, tmp_path):
    """A shipped order: the coefficients are the module's COEFFICIENTS, nothing is derived, --out copies it."""
    import diffsolve.codegen.catalog
    from diffsolve.solvers.modules import tableau_module

    def no_derivation(*args, **kwargs):
        raise AssertionError("derived the tableau again to print it")

    monkeypatch.setattr(diffsolve.codegen.catalog, "derive", no_derivation)
    monkeypatch.setattr("diffsolve.symbolic.multistep.derive_multistep", no_derivation)
    out_dir = tmp_path / "out"
    assert main(["derive", "dpmpp-multistep", "--order", "3", "--variant", "published", "--json", "--out",
                 str(out_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    module = tableau_module("multistep", 3, "data", False, "published")
    assert out["coefficients"] == module.COEFFICIENTS and out["order"] == module.ORDER == 2
    assert out["module"].startswith(str(out_dir)) and module.CONTENT_HASH[:16] in out["module"]
    copied = open(out["module"], encoding="utf-8").read()
    assert copied == open(module.__file__, encoding="utf-8").read()
    assert main(["derive", "dpm-solver-singlestep", "--order", "3", "--latex", "--json"]) == 0
    latex = json.loads(capsys.readouterr().out)["coefficients"]
    assert latex == tableau_module("singlestep", 3, "eps", False, "interp").COEFFICIENTS_LATEX


def test_cli_derive_latex_and_schedule(cache, capsys):
    assert main(["derive", "dpmpp-multistep", "--order", "2", "--latex", "--schedule", "vp-cosine", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "\\psi" in out["coefficients"]["B[1,0]"] or "psi" in out["coefficients"]["B[1,0]"].lower()
    assert out["schedule"]["name"] == "vp-cosine" and "t(lam)" in out["schedule"]


@pytest.mark.parametrize("args,message", [
    (["derive", "dpmpp-foo", "--order", "2"], "unknown solver family"),
    (["derive", "dpmpp-multistep", "--order", "0"], "order must be a positive integer"),
    (["derive", "dpmpp-singlestep", "--order", "2", "--sde"], "singlestep families are ODE solvers"),
])
def test_cli_derive_errors(cache, capsys, args, message):
    assert main(args) == 2
    assert message in capsys.readouterr().err
