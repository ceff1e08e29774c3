"""Test configuration: makes ``import helpers`` work and exposes the shared helpers as fixtures.

``DIFFSOLVE_CUDA_TESTS=hardware`` (set by ``benchmarks/gpu_suite.sh`` on a machine with a CUDA GPU) runs the CUDA
tests on the device: they start their Python child processes with ``NUMBA_ENABLE_CUDASIM=1`` (Numba's
simulator), and with this setting that variable is removed from the child's environment.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import helpers  # noqa: E402

CUDA_TESTS_ON_HARDWARE = os.environ.get("DIFFSOLVE_CUDA_TESTS") == "hardware"


@pytest.fixture(autouse=CUDA_TESTS_ON_HARDWARE)
def _cuda_children_on_hardware(monkeypatch):
    """With ``DIFFSOLVE_CUDA_TESTS=hardware``: ``subprocess.run`` drops ``NUMBA_ENABLE_CUDASIM`` from the
    ``env`` it is given, so the tests' CUDA child processes use the GPU instead of the simulator."""
    real_run = subprocess.run

    def run(*args, env=None, **kwargs):
        if env is not None:
            env = {k: v for k, v in env.items() if k != "NUMBA_ENABLE_CUDASIM"}
        return real_run(*args, env=env, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)


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
