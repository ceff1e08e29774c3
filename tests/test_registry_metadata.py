"""The declared metadata of every registered solver is its generated module's (single source): order, strong order,
NFE/step, reference, uncertainty and the order condition come from the module of the full method, and the
registry's name <-> catalog key table is the shipped SOLVERS table (diffsolve._generated)."""

import os
import subprocess
import sys

import pytest

import diffsolve as ds
from helpers import table_solvers
from diffsolve import _generated
from diffsolve.solvers.modules import module_key, tableau_module

NAMES = table_solvers()  # the names built from generated modules (not the Langevin samplers)


def _split(name):
    base, _, variant = name.partition(":")
    return base, variant or "exact"


@pytest.mark.parametrize("name", NAMES)
def test_declared_metadata_is_the_modules(name):
    solver = ds.get_solver(*_split(name))
    full = tableau_module(*solver.extra["key"])
    assert solver.extra["module"] == full.__file__
    assert solver.order == full.ORDER and solver.extra["declared_order"] == full.ORDER
    assert solver.nfe_per_step == full.NFE_PER_STEP
    assert solver.strong_order == (None if full.STRONG_ORDER is None else float(full.STRONG_ORDER))
    assert solver.uncertain is full.UNCERTAIN
    assert solver.reference.endswith(full.REFERENCE)  # aliases (ddim, ddpm) prefix their own paper
    assert (solver.prediction, solver.stages, solver.history, solver.noises) == (
        full.PREDICTION, full.STAGES, full.HISTORY, full.NOISES)
    assert solver.extra["generic_order"] == full.GENERIC_ORDER
    assert solver.extra["order_condition"] == tuple(full.ORDER_CONDITION)


@pytest.mark.parametrize("name", NAMES)
def test_registered_names_are_the_shipped_table(name):
    """Every registered name is a SOLVERS entry, and its solver uses exactly the entry's modules (one per warm-up
    level, the last the full method; accel-sde's clipped correction)."""
    family, levels, clip = _generated.SOLVERS[name]
    solver = ds.get_solver(*_split(name))
    assert solver.family == family and solver.extra["levels"] == levels and solver.extra["key"] == levels[-1]
    assert len(solver.fills) == len(levels) == solver.history + 1
    for fill, key in zip(solver.fills, levels):
        assert fill.py is tableau_module(*key).fill and module_key(tableau_module(*key)) == key
    assert solver.extra.get("clip_key") == clip
    assert set(NAMES) == set(_generated.SOLVERS)


def test_pattern_factories_agree_with_the_table():
    """The factories behind the name patterns (any order / variant) build the same solver as the table does for
    the shipped names, and they compute the same warm-up keys from MULTISTEP_VARIANTS."""
    from diffsolve.solvers.multistep import multistep_levels

    for name, (family, levels, _) in _generated.SOLVERS.items():
        if family != "exponential-multistep" or name in ("ddim", "ddpm"):
            continue
        full = tableau_module(*levels[-1])
        assert multistep_levels(full.K, _split(name)[1], full.PREDICTION, full.SDE) == levels, name
    assert ds.get_solver("dpmpp-3m", variant="published").order == 2  # the published 3M is second order
    for k, variant in [(2, "exact"), (3, "published")]:
        keys = ds.get_solver(f"dpmpp-{k}m-sde", variant=variant).extra["levels"]
        assert keys == multistep_levels(k, variant, "data", True)
    with pytest.raises(ds.DiffsolveError, match="has variants 'exact'"):
        ds.get_solver("dpmpp-4m", variant="published")


@pytest.mark.parametrize("variant", ["exact", "2b", "eps", "2b-eps-mirrored", "mirrored"])
def test_seeds_variants_read_the_table(variant):
    from diffsolve.solvers.seeds import parse_seeds_variant

    solver = ds.get_solver("seeds-2", variant=variant)
    combine, prediction, noise = parse_seeds_variant(2, variant)
    assert solver.extra["key"] == _generated.SEEDS_VARIANTS[2, combine, prediction, noise]
    assert (solver.extra["combine"], solver.extra["noise"], solver.prediction) == (combine, noise, prediction)


def test_order_condition_keys_still_work():
    """3S: third order only for c2 = 2/3 (the module's ORDER_CONDITION), else the module's GENERIC_ORDER."""
    s = ds.get_solver("dpmpp-3s")
    full = tableau_module(*s.extra["key"])
    assert s.order == full.ORDER == 3 and dict(full.ORDER_CONDITION) == {"c2": pytest.approx(2 / 3)}
    assert s.with_params(c2=0.5).order == full.GENERIC_ORDER == 2
    assert s.with_params(c2=0.5).with_params(c2=2 / 3).order == 3


def test_lookup_of_every_registered_name_imports_no_sympy(tmp_path):
    code = ("import sys, diffsolve as ds\n"
            "rows = ds.list_solvers()\n"
            "ds.get_solver('seeds-3', variant='3b-eps-mirrored'); ds.get_solver('dpmpp-3m-sde', variant='published')\n"
            "assert len(rows) == len(ds.solvers.solver_names())\n"
            "assert 'sympy' not in sys.modules, 'sympy imported'\n")
    env = {**os.environ, "DIFFSOLVE_CACHE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert not any(tmp_path.iterdir())  # nothing generated
