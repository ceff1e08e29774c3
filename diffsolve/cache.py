"""The user cache of generated modules: location, atomic writes, loading, and key-addressed lookups (no SymPy).

Modules generated on demand are written (by :mod:`diffsolve.codegen.emit`) into ``cache_dir()`` under a
content-hashed name; next to each, a pointer file named by the solver key and the source fingerprint names that
module, so a later process finds it without deriving (and without importing SymPy).  The fingerprint hashes the
source of the derivation and code-generation packages, so any change to a derivation invalidates the pointers.

This module depends on nothing else in diffsolve: the emitter imports its file utilities, and
:func:`cached_module` receives the derive-and-emit step from its caller (``diffsolve.solvers.modules``), so the
cache never imports the code generator (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

__all__ = ["cache_dir", "write_atomic", "load_module", "module_stem", "copy_module", "cached_module",
           "source_fingerprint"]

_PACKAGE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """``$DIFFSOLVE_CACHE_DIR``, else ``$XDG_CACHE_HOME/diffsolve``, else ``~/.cache/diffsolve``."""
    env = os.environ.get("DIFFSOLVE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "diffsolve"


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file in the same directory and ``os.replace`` (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.stem + "-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; generated sources are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_module(path: str | os.PathLike):
    """Import a generated module from ``path`` under a unique name (``diffsolve_generated_<stem>_<path tag>``);
    a second call with the same path returns the same module object."""
    path = Path(path).resolve()
    tag = hashlib.sha256(str(path).encode()).hexdigest()[:8]  # one module per file, whatever its name
    name = f"diffsolve_generated_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}_{tag}"
    module = sys.modules.get(name)
    if module is not None and Path(getattr(module, "__file__", "")).resolve() == path:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load a generated module from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@lru_cache(maxsize=None)
def source_fingerprint() -> str:
    """A short hash of diffsolve/symbolic and diffsolve/codegen sources (what a generated module depends on)."""
    digest = hashlib.sha256()
    for folder in ("symbolic", "codegen"):
        for path in sorted((_PACKAGE / folder).glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def module_stem(name: str, variant: str, prediction: str, digest: str | None = None) -> str:
    """The file stem of a generated module, ``name_variant_prediction[_hash16]`` made identifier-safe (shipped
    modules carry no hash, cached ones the first 16 hex digits of their content hash)."""
    stem = f"{name}_{variant}_{prediction}"
    if digest:
        stem += "_" + digest[:16]
    return re.sub(r"[^0-9a-zA-Z_]", "_", stem)


def copy_module(module, directory: str | os.PathLike) -> Path:
    """Write the source of a loaded generated ``module`` into ``directory`` under its content-hashed name (the
    name :func:`diffsolve.codegen.emit.generate` gives it) and return the path; an identical file is reused."""
    text = Path(module.__file__).read_text(encoding="utf-8")
    path = Path(directory) / (module_stem(module.NAME, module.VARIANT, module.PREDICTION, module.CONTENT_HASH) + ".py")
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return path
    return write_atomic(path, text)


def cached_module(key: str, build):
    """The generated module for ``key``: loaded through its pointer file when present, else ``build()`` (which
    derives and emits the module into ``cache_dir()`` and returns its path; it may import SymPy) is called, the
    pointer written, and the module loaded."""
    pointer = cache_dir() / f"{key}-{source_fingerprint()}.key"
    if pointer.exists():
        cached = pointer.parent / pointer.read_text(encoding="utf-8").strip()
        if cached.is_file():
            return load_module(cached)
    path = Path(build())
    write_atomic(pointer, path.name)
    return load_module(path)
