"""The shipped catalog is fresh (re-derived here; ``python -m diffsolve.codegen --check``), regeneration is
deterministic, on-demand generation works (cache dir, atomic concurrent writes), the generated modules are plain
Python, and the index and its name tables are consistent."""

import concurrent.futures
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from diffsolve import _generated
from diffsolve.codegen import catalog, names
from diffsolve.codegen.emit import cache_dir, content_hash, generate, load, module_source
from diffsolve.symbolic.multistep import derive_multistep

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(5)


def _sample_fill(module, n=5):
    """Coefficient tables of ``module`` at random step variables (pure-Python fill).  The nodes are consistent:
    log-SNR lam_p = la_p - ls_p = lam_n + c_p h at the stage fractions c_p (output node: lam_n + h), so that
    tableaux written in terms of increasing log-SNR (e.g. sqrt(beta) of the accelerated samplers) are defined."""
    S, M, Q = module.STAGES, module.HISTORY, module.NOISES
    rng = np.random.default_rng(11)
    h = 10 ** rng.uniform(-6, 0.8, n)
    r = rng.uniform(0.5, 2.0, (n, M))
    params = np.array(module.DEFAULTS, dtype=float)
    c = np.array([tuple(module.fractions(params, r[i])) + (1.0,) for i in range(n)])
    lam = rng.uniform(-3.0, 3.0, (n, 1)) + c * h[:, None]
    la = -rng.uniform(0, 2, (n, S + 1))
    ls = la - lam
    out = (np.zeros((n, S + 1)), np.zeros((n, S + 1, S)), np.zeros((n, S + 1, M)), np.zeros((n, S + 1, Q)))
    module.fill(h, r, la, ls, params, *out)
    return out


def test_catalog_is_fresh(tmp_path):
    files = catalog.render()
    installed = sp.__version__
    for name, fresh in files.items():
        path = catalog.GENERATED_DIR / name
        assert path.exists(), f"{name} is missing: run {catalog.COMMAND}"
        text = path.read_text(encoding="utf-8")
        pinned = re.search(r"^# SymPy version: (\S+)$", text, re.M).group(1)
        if pinned == installed:
            assert text == fresh, f"{name} is stale: run {catalog.COMMAND}"
        if name in ("__init__.py", "psi.py"):  # the index and the shared helpers have no fill() to sample
            continue
        # values at sample points (the comparison used when the installed SymPy differs from the pinned one)
        (tmp_path / name).write_text(fresh, encoding="utf-8")
        shipped, regenerated = load(path), load(tmp_path / name)
        for a, b in zip(_sample_fill(shipped), _sample_fill(regenerated)):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-300)


def test_index_is_consistent():
    assert set(_generated.INDEX) == set(catalog.CATALOG)
    for key in catalog.CATALOG:
        m = _generated.load(key)
        family, k, prediction, sde, variant = key
        assert (m.FAMILY, m.K, m.PREDICTION, m.SDE, m.VARIANT) == key
        assert m.NFE_PER_STEP == m.STAGES and m.KEEP == 0 and m.STOCHASTIC == (m.NOISES > 0)
        assert len(m.PARAMS) == len(m.DEFAULTS) and len(m.fractions(np.array(m.DEFAULTS), np.ones(m.HISTORY))) == m.STAGES
        text = Path(m.__file__).read_text(encoding="utf-8")
        assert re.search(r"^# Content hash: ([0-9a-f]{64})$", text, re.M).group(1) == m.CONTENT_HASH
        assert text.startswith("# DO NOT EDIT") and f"# Regenerate: {catalog.COMMAND}" in text
        assert not re.search(r"^\s*(import|from)\s+sympy", text, re.M)  # runtime modules never import SymPy
        assert (m.REFERENCE, m.UNCERTAIN) == (catalog.derive(key).reference, catalog.derive(key).uncertain)
    with pytest.raises(KeyError, match="no shipped module"):
        _generated.load(("multistep", 9, "data", False, "exact"))


def test_regeneration_is_deterministic():
    first = catalog.render(keys=catalog.CATALOG[:3])
    second = catalog.render(keys=catalog.CATALOG[:3])
    assert first == second
    # a fresh interpreter with another hash seed prints the same bytes
    code = (
        "import sys; from diffsolve.codegen import catalog; from diffsolve.codegen.emit import module_source;"
        "sys.stdout.write(module_source(catalog.derive(('singlestep', 3, 'data', False, 'interp')), "
        "regenerate=catalog.COMMAND))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4242", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout == catalog.render(keys=[("singlestep", 3, "data", False, "interp")])["dpmpp_3s_interp_data.py"]


def test_content_hash_covers_the_key_and_body():
    tab = derive_multistep(2)
    text = module_source(tab)
    body_start = text.index("import math")
    assert content_hash(tab, "x") != content_hash(tab, "y")
    published = derive_multistep(2, variant="published")
    assert module_source(published) != text and tab.variant in text and "CONTENT_HASH" in text[body_start:]


def test_on_demand_k6_into_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFSOLVE_CACHE_DIR", str(tmp_path / "cache"))
    start = time.perf_counter()
    path = generate(derive_multistep(6, "data", False))
    elapsed = time.perf_counter() - start
    print(f"on-demand derivation + generation of k = 6: {elapsed:.2f} s")
    assert path.parent == tmp_path / "cache" and path.name.startswith("dpmpp_6m_exact_data_")
    m = load(path)
    assert load(path) is m and m.HISTORY == 5 and m.ORDER == 6
    n = 4
    h, r = np.geomspace(1e-9, 3.0, n), RNG.uniform(0.5, 2.0, (n, 5))
    la, ls = np.full((n, 2), -0.3), np.full((n, 2), -0.6)
    A, B, E, C = np.zeros((n, 2)), np.zeros((n, 2, 1)), np.zeros((n, 2, 5)), np.zeros((n, 2, 0))
    m.fill(h, r, la, ls, np.zeros(0), A, B, E, C)
    # constants are integrated exactly: sum_j W_j = psi_0(h), i.e. B + sum E = alpha_{n+1} (1 - e^{-h})
    np.testing.assert_allclose(B[:, 1, 0] + E[:, 1].sum(axis=1), np.exp(-0.3) * -np.expm1(-h), rtol=1e-12)
    assert generate(derive_multistep(6, "data", False)) == path  # same content -> same file, not rewritten


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("DIFFSOLVE_CACHE_DIR", str(tmp_path / "a"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("DIFFSOLVE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "diffsolve"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "diffsolve"


def _generate_in(directory):
    return str(generate(catalog.derive(("multistep", 3, "data", True, "exact")), directory))


def test_concurrent_generation_is_atomic(tmp_path):
    catalog.derive(("multistep", 3, "data", True, "exact"))  # derived once; forked workers inherit the cache
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(4, mp_context=ctx) as pool:
        paths = list(pool.map(_generate_in, [tmp_path] * 8))
    assert len(set(paths)) == 1
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [Path(paths[0]).name], files  # no temp files left behind
    expected = module_source(catalog.derive(("multistep", 3, "data", True, "exact")))
    assert Path(paths[0]).read_text(encoding="utf-8") == expected


def test_check_mode_of_the_single_entry_point(tmp_path, capsys):
    """``python -m diffsolve.codegen --check`` (in-process): the checked-in files are fresh; a stale or missing
    file is named and the exit code is 1, and nothing is written."""
    from diffsolve.codegen.__main__ import main, render

    if sp.__version__ != catalog.PINNED_SYMPY:
        pytest.skip(f"text comparison needs SymPy {catalog.PINNED_SYMPY}")
    assert main(["--check"]) == 0
    files = render()
    assert {"__init__.py", "psi.py", "schedules.py", "uld.py"} <= set(files) and len(files) == len(catalog.CATALOG) + 4
    (tmp_path / "psi.py").write_text(files["psi.py"] + "# edited\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["--check", "--directory", str(tmp_path)]) == 1
    stale = capsys.readouterr().out.split()
    assert "psi.py" in stale and "schedules.py" in stale and sorted(p.name for p in tmp_path.iterdir()) == ["psi.py"]


def test_generated_modules_are_plain_python(tmp_path):
    """The coefficient builders are plain Python (the runtime fills a table once per run): no generated module,
    shipped or on demand, imports Numba or SymPy or carries a compiled twin (fill_jit / fractions_jit, removed in
    generator version 4); they import only math and the shared psi helpers."""
    shipped = [Path(_generated.load(key).__file__) for key in catalog.CATALOG]
    on_demand = generate(derive_multistep(2, "data", True), tmp_path)
    for path in shipped + [catalog.GENERATED_DIR / "psi.py", on_demand]:
        text = path.read_text(encoding="utf-8")
        imports = re.findall(r"^(?:import|from)\s+([\w.]+)", text, re.M)
        assert set(imports) <= {"math", "diffsolve._generated.psi"}, (path.name, imports)
        assert "_jit" not in text and "numba" not in text, path.name
    m = load(on_demand)
    assert not hasattr(m, "fill_jit") and m.COEFFICIENTS["C[1,0]"] == "sqrt(1 - exp(-2*eta*h))*exp(ls_1)"


def test_paper_solvers_are_shipped():
    """Every SEEDS / accel-* tableau is in the shipped catalog, and the SymPy-free lookups of diffsolve.solvers
    resolve each variant to the shipped module of its derivation's key."""
    from diffsolve.solvers import accelerated, seeds
    from diffsolve.solvers.modules import tableau_module
    from diffsolve.solvers.registry import solver_names
    from diffsolve.symbolic import accelerated as acc
    from diffsolve.symbolic.seeds import COMBINES, NOISE_RULES, derive_seeds

    shipped = {name: key for key, name in _generated.INDEX.items()}
    assert len(shipped) == len(_generated.INDEX)  # one module per key

    def check(module, tab):
        name = module.__name__.rsplit(".", 1)[-1]
        assert module.__name__ == f"diffsolve._generated.{name}" and shipped[name] == tab.key, (name, tab.key)
        assert module.CONTENT_HASH == re.search(r"^# Content hash: (\w+)$", module_source(tab), re.M).group(1)

    for k, combines in COMBINES.items():
        for combine in combines:
            for prediction in ("data", "eps"):
                for noise in NOISE_RULES:
                    check(tableau_module(*seeds.seeds_key(k, combine, prediction, noise)),
                          derive_seeds(k, prediction, combine, noise))
    modules = lambda name: [tableau_module(*key) for key in _generated.SOLVERS[name][1]]  # noqa: E731
    check(modules("accel-ddim")[-1], acc.derive_accel_ddim())
    check(modules("accel-ddim:phi-psi")[-1], acc.derive_accel_ddim_phi_psi())
    check(modules("accel-ddim:phi-psi")[0], acc.derive_accel_ddim_phi_psi_startup())
    for variant in acc.ACCEL_DDPM_VARIANTS:
        name = "accel-ddpm" if variant == acc.ACCEL_DDPM_VARIANTS[0] else f"accel-ddpm:{variant}"
        check(modules(name)[-1], acc.derive_accel_ddpm(variant))
    for momentum in acc.ACCEL_SDE_MOMENTA:
        name = "accel-sde" if momentum == acc.ACCEL_SDE_MOMENTA[0] else f"accel-sde:{momentum}"
        startup, base = modules(name)
        check(startup, acc.derive_accel_sde("startup", momentum))
        check(base, acc.derive_accel_sde("base", momentum))
        check(tableau_module(*_generated.SOLVERS[name][2]), acc.derive_accel_sde("correction", momentum))
    assert (accelerated.ACCEL_DDPM_VARIANTS, accelerated.ACCEL_SDE_MOMENTA) == (acc.ACCEL_DDPM_VARIANTS,
                                                                                acc.ACCEL_SDE_MOMENTA)
    # the SEEDS keys (stochastic singlestep) are not registered as DPM-Solver(++) singlestep names
    assert not [n for n in solver_names() if "mirrored" in n or n.startswith(("dpmpp-1s", "dpm-solver-1:"))]


def test_name_tables_match_the_derivations():
    """SOLVERS / SEEDS_VARIANTS / MULTISTEP_VARIANTS of the index are what diffsolve.codegen.names writes, every key
    they use ships, and each registered name's full method carries the derivation's own name (aliases aside)."""
    from diffsolve.symbolic.multistep import VARIANTS

    assert _generated.SOLVERS == names.solvers(catalog.CATALOG)
    assert _generated.SEEDS_VARIANTS == names.seeds_variants()
    assert _generated.MULTISTEP_VARIANTS == {v: None if r is None else tuple(sorted(r)) for v, r in VARIANTS.items()}
    aliases = {"ddim": "dpmpp-1m", "ddpm": "dpmpp-1m-sde", "dpm-solver-1": "dpm-solver-1m",
               "unipc-2:p": "dpmpp-2m", "unipc-3:p": "dpmpp-3m"}  # UniP-k alone is the exact k-step integrator
    for name, (family, levels, clip) in _generated.SOLVERS.items():
        assert set(levels) | ({clip} if clip else set()) <= set(catalog.CATALOG), name
        full = _generated.load(levels[-1])
        assert full.NAME == aliases.get(name, name.split(":")[0]), (name, full.NAME)
        assert len(levels) == full.HISTORY + 1  # one module per warm-up level
    for (k, combine, prediction, noise), key in _generated.SEEDS_VARIANTS.items():
        assert catalog.derive(key).key == key and key[1:4] == (k, prediction, True)


def test_catalog_keys_are_unique_and_rederive():
    assert len(set(catalog.CATALOG)) == len(catalog.CATALOG)
    for key in catalog.CATALOG:
        assert catalog.derive(key).key == key
    with pytest.raises(ValueError, match="unknown accelerated variant"):
        catalog.derive(("accelerated", 1, "eps", False, "nope"))
