"""Samples of every registered solver are bitwise equal to the checked-in fixture (numpy and cpu backends,
analytic target, model callable and Stepper paths, exact history, long rows).

The fixture ``tests/data/reference_outputs.npz`` was written by ``tests/data/make_reference_outputs.py`` with the
runtime as it stood before its engines were unified; a refactoring of the runtime must not change a single bit.
The cases run the multistep solvers without the warm-down (``warm_down=inf``), the levels the fixture recorded.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
import make_reference_outputs as ref  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
FIXTURE = np.load(DATA / "reference_outputs.npz")
SAME_MACHINE = json.loads((DATA / "reference_outputs.json").read_text()) == ref.machine()
CASES = dict(ref.cases())


@pytest.mark.parametrize("key", sorted(FIXTURE.files))
def test_bitwise_equal_to_reference(key):
    """Equal bits on the machine (and NumPy / SciPy) the fixture was written on; elsewhere NumPy's transcendental
    functions may round differently in the last bit, so agreement to ref.ELSEWHERE_RTOL."""
    out = np.asarray(CASES[key]())
    if SAME_MACHINE:
        np.testing.assert_array_equal(out, FIXTURE[key], strict=True)
    else:
        np.testing.assert_allclose(out, FIXTURE[key], rtol=ref.ELSEWHERE_RTOL, atol=0, strict=True)


def test_fixture_covers_every_case():
    assert set(CASES) == set(FIXTURE.files)


def test_bits_do_not_depend_on_the_compile_history(tmp_path):
    """The same bits when the kernels were compiled by another process and loaded from the cache: one process
    warms a fresh Numba cache with the README-style job, a second one runs every cpu case of the fixture (the
    generic loops compiled there, the fused loop loaded)."""
    import os
    import subprocess

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    warm = ("import diffsolve as ds; s = ds.get_schedule('vp-linear')\n"
            "ds.sample('dpmpp-3m', ds.targets.from_spec('gmm:d=2,k=8,seed=0'), s, ds.time_grid(s, 5, 'logsnr'), "
            "n=8, backend='cpu')\n")
    check = ("import sys; sys.path.insert(0, 'tests/data')\n"
             "import numpy as np, make_reference_outputs as ref\n"
             "F = np.load('tests/data/reference_outputs.npz')\n"
             "import json; same = json.load(open('tests/data/reference_outputs.json')) == ref.machine()\n"
             "eq = np.array_equal if same else (lambda a, b: np.allclose(a, b, rtol=ref.ELSEWHERE_RTOL, atol=0,\n"
             "                                                          equal_nan=True))\n"
             "bad = [k for k, f in ref.cases() if k.endswith('|cpu') and not eq(np.asarray(f()), F[k])]\n"
             "print('mismatches:', bad)\n")
    root = Path(__file__).resolve().parents[1]
    for code in (warm, check):
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=root)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("mismatches: []"), proc.stdout
