"""The shipped catalog is fresh (re-derived here), regeneration is deterministic, on-demand generation works
(cache dir, atomic concurrent writes, Numba cache), and the index is consistent."""

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
from diffsolve.codegen import catalog
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


def test_numba_cache_is_reused(tmp_path):
    path = generate(derive_multistep(2, "data", True), tmp_path)
    code = (
        "import sys, numpy as np; from diffsolve.codegen.emit import load;"
        f"m = load({str(path)!r}); n = 2;"
        "m.fill_jit(np.ones(n), np.ones((n, 1)), np.zeros((n, 2)), np.zeros((n, 2)), np.ones(1),"
        " np.zeros((n, 2)), np.zeros((n, 2, 1)), np.zeros((n, 2, 1)), np.zeros((n, 2, 1)));"
        "print(sum(m.fill_jit.stats.cache_hits.values()))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            for _ in range(2)]
    assert [r.stdout.strip() for r in runs] == ["0", "1"]
    assert any(p.suffix == ".nbi" for p in (tmp_path / "__pycache__").iterdir())


def test_paper_solvers_are_shipped():
    """Every SEEDS / accel-* tableau is in the shipped catalog, and the SymPy-free lookups of
    diffsolve.solvers.papers resolve each variant to the shipped module of its derivation's key."""
    from diffsolve.solvers import papers
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
                    check(papers._seeds_module(k, combine, prediction, noise), derive_seeds(k, prediction, combine, noise))
    check(papers._accel_module("ddim", "repo"), acc.derive_accel_ddim())
    check(papers._accel_module("ddim", "phi-psi"), acc.derive_accel_ddim_phi_psi())
    check(papers._accel_module("ddim", "phi-psi-startup"), acc.derive_accel_ddim_phi_psi_startup())
    for variant in acc.ACCEL_DDPM_VARIANTS:
        check(papers._accel_module("ddpm", variant), acc.derive_accel_ddpm(variant))
    for part in acc.ACCEL_SDE_PARTS:
        for momentum in acc.ACCEL_SDE_MOMENTA:
            check(papers._cached_accel_sde(part, momentum), acc.derive_accel_sde(part, momentum))
    # the SEEDS keys (stochastic singlestep) are not registered as DPM-Solver(++) singlestep names
    assert not [n for n in solver_names() if "mirrored" in n or n.startswith(("dpmpp-1s", "dpm-solver-1:"))]


def test_catalog_keys_are_unique_and_rederive():
    assert len(set(catalog.CATALOG)) == len(catalog.CATALOG)
    for key in catalog.CATALOG:
        assert catalog.derive(key).key == key
    with pytest.raises(ValueError, match="unknown accelerated variant"):
        catalog.derive(("accelerated", 1, "eps", False, "nope"))
