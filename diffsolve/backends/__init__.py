"""Backends, resolved once by name: ``numpy`` (the reference engine, the oracle in tests), ``cpu`` (Numba,
parallel over samples) and ``cuda`` (numba.cuda, imported lazily; when unavailable it fails with a message naming
the fix).  Each backend module owns one engine (:mod:`diffsolve.backends.engine` documents the interface); the
one driver, :class:`diffsolve.stepper.Stepper`, runs programs on any of them.
"""

from __future__ import annotations

import importlib

from ..errors import DiffsolveError
from .engine import Engine

__all__ = ["BACKENDS", "Engine", "engine"]

BACKENDS = {
    "numpy": ("diffsolve.backends.numpy_backend", "NumpyEngine"),
    "cpu": ("diffsolve.backends.cpu_backend", "CpuEngine"),
    "cuda": ("diffsolve.backends.cuda_backend", "CudaEngine"),  # raises DiffsolveError naming the fix when unusable
}


def engine(backend) -> Engine:
    """A fresh engine for the backend named ``backend`` (an :class:`Engine` instance is returned as it is)."""
    if isinstance(backend, Engine):
        return backend
    if isinstance(backend, str) and backend in BACKENDS:
        module, cls = BACKENDS[backend]
        return getattr(importlib.import_module(module), cls)()
    raise DiffsolveError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)} (or an engine instance)")
