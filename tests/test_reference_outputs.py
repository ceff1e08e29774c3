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
