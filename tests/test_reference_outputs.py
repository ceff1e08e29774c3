"""Samples of every registered solver are bitwise equal to the checked-in fixture (numpy and cpu backends,
analytic target, model callable and Stepper paths, exact history, long rows).

The fixture ``tests/data/reference_outputs.npz`` was written by ``tests/data/make_reference_outputs.py`` with the
runtime as it stood before its engines were unified; a refactoring of the runtime must not change a single bit.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
import make_reference_outputs as ref  # noqa: E402

FIXTURE = np.load(Path(__file__).resolve().parent / "data" / "reference_outputs.npz")
CASES = dict(ref.cases())


@pytest.mark.parametrize("key", sorted(FIXTURE.files))
def test_bitwise_equal_to_reference(key):
    np.testing.assert_array_equal(np.asarray(CASES[key]()), FIXTURE[key], strict=True)


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
             "bad = [k for k, f in ref.cases() if k.endswith('|cpu') and not np.array_equal(np.asarray(f()), F[k])]\n"
             "print('mismatches:', bad)\n")
    root = Path(__file__).resolve().parents[1]
    for code in (warm, check):
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=root)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("mismatches: []"), proc.stdout
