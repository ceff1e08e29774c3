"""Test configuration: makes ``import helpers`` work and exposes the shared helpers as fixtures."""

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import helpers  # noqa: E402


@pytest.fixture(scope="session")
def vp():
    """The vp-linear schedule (beta 0.1 -> 20), shared."""
    return helpers.VP


@pytest.fixture(scope="session")
def edm():
    """The EDM schedule, sigma 0.002 .. 80, shared."""
    return helpers.EDM


@pytest.fixture(scope="session")
def gaussian_d8():
    """The anisotropic ``gaussian:d=8`` target of the registry order tests, shared."""
    return helpers.GAUSSIAN_D8


@pytest.fixture(scope="session")
def make_target():
    """``make_target(spec)``: the cached ``ds.targets.from_spec(spec)``."""
    return helpers.target


@pytest.fixture(scope="session")
def order_setup():
    """``ds.order_study`` keyword arguments of the registry order tests on vp-linear (a fresh dict per use)."""
    return dict(helpers.ORDER_SETUP)
