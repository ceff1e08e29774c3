"""Backends, resolved once by name: ``numpy`` (the reference interpreter, the oracle in tests), ``cpu``
(Numba, parallel over samples) and ``cuda`` (numba.cuda, imported lazily; when unavailable it fails with a
message naming the fix).
"""

from __future__ import annotations

import importlib

from ..errors import DiffsolveError

__all__ = ["resolve", "BACKENDS"]

BACKENDS = {
    "numpy": "diffsolve.backends.numpy_backend",
    "cpu": "diffsolve.backends.cpu_backend",
    "cuda": "diffsolve.backends.cuda_backend",  # raises DiffsolveError naming the fix when CUDA is unavailable
}


def resolve(name: str):
    """The backend module for ``name`` (imported lazily)."""
    if name in BACKENDS:
        return importlib.import_module(BACKENDS[name])
    raise DiffsolveError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
