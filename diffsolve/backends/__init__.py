"""Backends, resolved once by name: ``numpy`` (reference interpreter; the oracle in tests).

Compiled ``cpu`` (Numba parallel) and ``cuda`` (numba.cuda) backends register here as they land; an
unavailable backend fails with a message naming the fix.
"""

from __future__ import annotations

import importlib

from ..errors import DiffsolveError

__all__ = ["resolve", "BACKENDS"]

BACKENDS = {"numpy": "diffsolve.backends.numpy_backend"}
_UNAVAILABLE = {
    "cpu": "the compiled CPU backend is not built yet in this version; use backend='numpy'",
    "cuda": "the CUDA backend is not built yet in this version; use backend='numpy'",
}


def resolve(name: str):
    """The backend module for ``name`` (imported lazily)."""
    if name in BACKENDS:
        return importlib.import_module(BACKENDS[name])
    if name in _UNAVAILABLE:
        raise DiffsolveError(f"backend {name!r} is unavailable: {_UNAVAILABLE[name]}")
    raise DiffsolveError(f"unknown backend {name!r}; expected one of {', '.join(list(BACKENDS) + list(_UNAVAILABLE))}")
