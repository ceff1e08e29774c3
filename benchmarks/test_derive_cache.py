"""`derive` of an order outside the shipped catalog: cold (derive + check + emit + import) vs warm (cached).

    .venv/bin/python -m pytest benchmarks/test_derive_cache.py --benchmark-only -p no:cacheprovider

Each cold round runs in a fresh subprocess with an empty DIFFSOLVE_CACHE_DIR (the whole `diffsolve derive`
command, as a user runs it); the warm rounds repeat the command against the cache the cold run filled.
"""

import os
import subprocess
import sys
import tempfile

import pytest

CLI = [sys.executable, "-m", "diffsolve.cli", "derive", "dpmpp-multistep", "--order", "6", "--json"]
API = [sys.executable, "-c", "import diffsolve as ds; ds.derive('dpmpp-multistep', 6)"]


def _run(command, cache):
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "DIFFSOLVE_CACHE_DIR": cache})


@pytest.mark.parametrize("name,command", [("cli", CLI), ("api", API)])
@pytest.mark.benchmark(group="derive dpmpp-multistep --order 6")
def test_cold_cache(benchmark, name, command):
    benchmark.pedantic(lambda: _run(command, tempfile.mkdtemp()), rounds=3, iterations=1)


@pytest.mark.parametrize("name,command", [("cli", CLI), ("api", API)])
@pytest.mark.benchmark(group="derive dpmpp-multistep --order 6")
def test_warm_cache(benchmark, name, command):
    """The CLI still derives the SymPy tableau to print its coefficients; the API only loads the module."""
    cache = tempfile.mkdtemp()
    _run(command, cache)
    benchmark.pedantic(lambda: _run(command, cache), rounds=3, iterations=1)


@pytest.mark.benchmark(group="derive dpmpp-multistep --order 6")
def test_import_only_baseline(benchmark):
    """What any `diffsolve` command costs before it does anything (Python, NumPy, Numba, SymPy imports)."""
    code = "import diffsolve, diffsolve.cli"
    benchmark.pedantic(lambda: subprocess.run([sys.executable, "-c", code], check=True), rounds=3, iterations=1)
