"""The user cache of generated modules: location, atomic writes, verified loading, key-addressed lookups (no SymPy).

Modules generated on demand are written (by :mod:`diffsolve.codegen.emit`) into ``cache_dir()`` under a
content-hashed name; next to each, a pointer file named by the solver key and the source fingerprint names that
module, so a later process finds it without deriving (and without importing SymPy).  The fingerprint hashes the
source of the derivation and code-generation packages, so any change to a derivation invalidates the pointers.

Nothing read from the cache is trusted (docs/cache.md): a pointer must hold the bare name of a plain file directly in
the cache directory; a module is imported only after its content hash has been recomputed (exactly as the emitter
computes it) and matched against its name and header, and after its syntax tree has been checked to contain only
what the emitter writes (literal constants, arithmetic, math functions, the shared psi helpers), and what runs is
the tree that was checked.  Anything else is reported by one :class:`~diffsolve.errors.DiffsolveWarning` and derived
again.  Concurrent processes derive a key once (a file lock per key); an unusable cache directory falls back to a
temporary directory of the process.

This module depends on nothing else in diffsolve but its error types: the emitter imports its file utilities, and
:func:`cached_module` receives the derive-and-emit step from its caller (``diffsolve.solvers.modules``), so the
cache never imports the code generator (docs/architecture.md).
"""

from __future__ import annotations

import ast
import atexit
import builtins
import errno
import hashlib
import importlib.util
import math
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

# A maintained library rather than a hand-written lock: correct cross-process locking (flock semantics, locks
# released by the kernel when a holder dies, no stale-lock races, network file systems without flock, timeouts)
# is subtle and platform-specific; filelock is widely used and kept for exactly this.
import filelock
import platformdirs  # the per-platform user cache directory (XDG on Linux, ~/Library/Caches, %LOCALAPPDATA%)

from .errors import DiffsolveError, DiffsolveWarning

__all__ = ["cache_dir", "write_atomic", "load_module", "module_stem", "copy_module", "cached_module",
           "source_fingerprint", "writable_cache_dir", "content_digest", "verify_source", "lock_timeout",
           "LOCK_TIMEOUT"]

_PACKAGE = Path(__file__).resolve().parent
LOCK_TIMEOUT = 900.0  # seconds a process waits for another one deriving the same key (DIFFSOLVE_CACHE_LOCK_TIMEOUT)
HELPER_MODULE = "diffsolve._generated.psi"  # the one module a generated module imports besides math
_GENERATED_NAME = re.compile(r"[0-9A-Za-z_]+_([0-9a-f]{16})\.py")  # name_variant_prediction_<hash16>.py
_KEY = re.compile(r"[0-9A-Za-z_][0-9A-Za-z_.\-]*")
_MAX_POINTER_BYTES = 4096
_MAX_MODULE_BYTES = 64 << 20
_FIX = "set DIFFSOLVE_CACHE_DIR to a writable directory that only you can write"


def cache_dir() -> Path:
    """``$DIFFSOLVE_CACHE_DIR``, else the platform's user cache directory for diffsolve
    (``platformdirs.user_cache_dir("diffsolve")``: ``$XDG_CACHE_HOME/diffsolve`` or ``~/.cache/diffsolve`` on
    Linux, ``~/Library/Caches/diffsolve`` on macOS, ``%LOCALAPPDATA%\\diffsolve\\Cache`` on Windows)."""
    env = os.environ.get("DIFFSOLVE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("diffsolve", appauthor=False))


def lock_timeout() -> float:
    """Seconds to wait for the lock of a key another process is deriving: ``$DIFFSOLVE_CACHE_LOCK_TIMEOUT``, else
    :data:`LOCK_TIMEOUT` (15 minutes)."""
    text = os.environ.get("DIFFSOLVE_CACHE_LOCK_TIMEOUT", "").strip()
    if not text:
        return LOCK_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise DiffsolveError(f"DIFFSOLVE_CACHE_LOCK_TIMEOUT={text!r} is not a positive number of seconds; set it to "
                             f"e.g. 1800 or unset it (default {LOCK_TIMEOUT:g} s)")
    return value


def _write(path: Path, text: str) -> Path:
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


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file in the same directory and ``os.replace`` (atomic); an I/O error is
    a :class:`DiffsolveError` naming the path."""
    path = Path(path)
    try:
        return _write(path, text)
    except OSError as exc:
        raise DiffsolveError(f"cannot write {path}: {exc.strerror or exc}; make {path.parent} a writable directory "
                             "(for the module cache: set DIFFSOLVE_CACHE_DIR)") from exc


# -- the directory -------------------------------------------------------------------------------------------------

_FALLBACK: dict[str, Path] = {}  # configured cache directory -> the temporary directory used instead (this process)
_FALLBACK_LOCK = threading.Lock()


def _unusable(directory: Path) -> str | None:
    """Why ``directory`` cannot hold the cache (None: it is, or has now been made, a writable directory)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "exists and is not a directory"
    except OSError as exc:
        return f"cannot be created ({exc.strerror or exc})"
    if not directory.is_dir():
        return "is not a directory"
    try:  # a real write: permission bits alone say nothing on read-only mounts or for root
        fd, probe = tempfile.mkstemp(prefix=".probe-", suffix=".tmp", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"is not writable ({exc.strerror or exc})"
    return None


def _remove_tree(path: Path, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child that inherited the handler
        shutil.rmtree(path, ignore_errors=True)


def writable_cache_dir() -> Path:
    """``cache_dir()`` when it is (or can be created as) a writable directory; else a private temporary directory
    of this process (removed at exit), announced by one :class:`DiffsolveWarning` naming the directory, the reason
    and the fix."""
    directory = cache_dir()
    with _FALLBACK_LOCK:
        fallback = _FALLBACK.get(str(directory))
        if fallback is not None and fallback.is_dir():
            return fallback
        reason = _unusable(directory)
        if reason is None:
            return directory
        fallback = Path(tempfile.mkdtemp(prefix="diffsolve-cache-"))  # 0700, owned by this user
        atexit.register(_remove_tree, fallback, os.getpid())
        _FALLBACK[str(directory)] = fallback
    warnings.warn(f"the diffsolve cache directory {directory} {reason}: generated modules go to {fallback} for this "
                  f"process only (derived again next time); to keep them, {_FIX} or fix {directory}",
                  DiffsolveWarning, stacklevel=3)
    return fallback


# -- verification --------------------------------------------------------------------------------------------------

_HEADER = re.compile(r"# DO NOT EDIT: generated by diffsolve\.codegen \(generator version ([0-9A-Za-z.]+)\)\.\n"
                     r"# Regenerate: [^\n]*\n# SymPy version: ([^\n'\\]*)\n# Content hash: ([0-9a-f]{64})\n")
_CONSTANT = re.compile(r"[A-Z][A-Z0-9_]*")
_HELPER = re.compile(r"_(?:psi|psit)_\d{1,3}|_mul0")
_MATH = frozenset(n for n in dir(math) if not n.startswith("_") and callable(getattr(math, n)))
_BUILTINS = frozenset(dir(builtins))
_BINARY = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.FloorDiv, ast.Mod)
_UNARY = (ast.USub, ast.UAdd, ast.Not)
_COMPARE = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
_FUNCTIONS = {"fractions": 2, "fill": 9}
_REQUIRED = {"NAME": str, "FAMILY": str, "VARIANT": str, "K": int, "PREDICTION": str, "SDE": bool,
             "GENERATOR_VERSION": str, "SYMPY_VERSION": str, "CONTENT_HASH": str}


class _Rejected(Exception):
    """A generated-module check failed (the message says which, for the warning or error that reports it)."""


def content_digest(family: str, k: int, prediction: str, sde: bool, variant: str, generator_version: str,
                   body: str) -> str:
    """The content hash of a generated module: sha256 over (family, k, prediction, sde, variant, generator version,
    printed body), the body without its SYMPY_VERSION / CONTENT_HASH lines (:func:`diffsolve.codegen.emit.content_hash`
    calls this)."""
    key = f"{family}\n{k}\n{prediction}\n{sde}\n{variant}\n{generator_version}\n"
    return hashlib.sha256((key + body).encode()).hexdigest()


class _Checker:
    """Accepts exactly the statements and expressions the emitter writes; everything else raises :class:`_Rejected`.

    A module that passes can only compute with numbers, math functions and the shared psi helpers, and store
    into the arrays it is given: no other call, attribute, import or name binding that could reach code."""

    def __init__(self):
        self.callables = {"range"}
        self.arguments: set[str] = set()

    def reject(self, node, what: str):
        raise _Rejected(f"line {getattr(node, 'lineno', '?')}: {what}, which a generated module never contains")

    def module(self, tree: ast.Module) -> dict:
        constants, functions = {}, []
        for index, stmt in enumerate(tree.body):
            if index == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
                    and isinstance(stmt.value.value, str):
                continue
            if isinstance(stmt, ast.Import):
                if [(a.name, a.asname) for a in stmt.names] != [("math", None)]:
                    self.reject(stmt, "an import other than math")
            elif isinstance(stmt, ast.ImportFrom):
                if stmt.module != HELPER_MODULE or stmt.level:
                    self.reject(stmt, f"an import from {stmt.module!r}")
                for alias in stmt.names:
                    if alias.asname is not None or not _HELPER.fullmatch(alias.name):
                        self.reject(stmt, f"an import of {alias.name!r}")
                    self.callables.add(alias.name)
            elif isinstance(stmt, ast.Assign):
                target = stmt.targets[0] if len(stmt.targets) == 1 else None
                if not isinstance(target, ast.Name) or not _CONSTANT.fullmatch(target.id) or target.id in constants:
                    self.reject(stmt, "an assignment that is not a new upper-case constant")
                try:
                    constants[target.id] = ast.literal_eval(stmt.value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    self.reject(stmt, f"a constant {target.id} that is not a literal")
            elif isinstance(stmt, ast.FunctionDef):
                if stmt.name not in _FUNCTIONS or stmt.name in (f.name for f in functions):
                    self.reject(stmt, f"a function {stmt.name!r}")
                functions.append(stmt)
            else:
                self.reject(stmt, f"a module-level statement of type {type(stmt).__name__}")
        self.reserved = self.callables | {"math"} | set(_FUNCTIONS)
        for function in functions:
            self.function(function)
        if {f.name for f in functions} != set(_FUNCTIONS):
            raise _Rejected("fractions() or fill() is missing")
        for name, kind in _REQUIRED.items():
            if type(constants.get(name)) is not kind:
                raise _Rejected(f"the constant {name} is missing or not a {kind.__name__}")
        return constants

    def function(self, node: ast.FunctionDef):
        args = node.args
        if (node.decorator_list or node.returns or getattr(node, "type_params", None) or args.posonlyargs
                or args.vararg or args.kwonlyargs or args.kwarg or args.defaults or args.kw_defaults
                or len(args.args) != _FUNCTIONS[node.name] or any(a.annotation for a in args.args)):
            self.reject(node, f"a {node.name}() signature the emitter does not write")
        self.arguments = {a.arg for a in args.args}
        for name in self.arguments:
            self.bind(node, name)
        self.block(node.body)

    def bind(self, node, name: str):
        if name in self.reserved or name in _BUILTINS or name.startswith("__"):
            self.reject(node, f"a binding of the name {name!r}")

    def block(self, body):
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value,
                                                                                                    str):
                continue  # a docstring
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    self.target(target)
                self.expr(stmt.value)
            elif isinstance(stmt, ast.For):
                it = stmt.iter
                if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range") \
                        or stmt.orelse:
                    self.reject(stmt, "a loop that is not over range()")
                self.target(stmt.target)
                self.expr(it)
                self.block(stmt.body)
            elif isinstance(stmt, ast.Return):
                if stmt.value is not None:
                    self.expr(stmt.value)
            elif not isinstance(stmt, ast.Pass):
                self.reject(stmt, f"a statement of type {type(stmt).__name__} in a function")

    def target(self, node):
        if isinstance(node, ast.Name):
            self.bind(node, node.id)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in self.arguments:
            self.expr(node.slice)
        elif isinstance(node, ast.Tuple):
            for element in node.elts:
                self.target(element)
        else:
            self.reject(node, "an assignment to something other than a local name or an argument's element")

    def expr(self, node):
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float, complex, str, type(None))):
                self.reject(node, f"a constant of type {type(node.value).__name__}")
        elif isinstance(node, ast.Name):
            if node.id.startswith("__") or (node.id in _BUILTINS and node.id != "range"):
                self.reject(node, f"the name {node.id!r}")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, _BINARY):
            self.expr(node.left)
            self.expr(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
            self.expr(node.operand)
        elif isinstance(node, ast.Compare) and all(isinstance(op, _COMPARE) for op in node.ops):
            for value in [node.left, *node.comparators]:
                self.expr(value)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self.expr(value)
        elif isinstance(node, ast.IfExp):
            for value in (node.test, node.body, node.orelse):
                self.expr(value)
        elif isinstance(node, ast.Tuple):
            for value in node.elts:
                self.expr(value)
        elif isinstance(node, ast.Subscript):
            if not (isinstance(node.value, ast.Name) or self.shape(node.value)):
                self.reject(node, "an index into something other than a name")
            self.expr(node.value)
            self.expr(node.slice)
        elif isinstance(node, ast.Attribute):
            if not (self.math(node) or self.shape(node)):
                self.reject(node, f"the attribute .{node.attr}")
        elif isinstance(node, ast.Call):
            func = node.func
            if node.keywords or not ((isinstance(func, ast.Name) and func.id in self.callables) or self.math(func)):
                self.reject(node, f"a call of {ast.unparse(func)!r}")
            for arg in node.args:
                self.expr(arg)
        else:
            self.reject(node, f"an expression of type {type(node).__name__}")

    @staticmethod
    def math(node) -> bool:
        return (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "math"
                and node.attr in _MATH)

    def shape(self, node) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "shape" and isinstance(node.value, ast.Name)
                and node.value.id in self.arguments)


def verify_source(text: str, digest16: str | None = None) -> tuple[ast.Module, dict]:
    """Check the text of a generated module before anything of it runs; return its syntax tree and constants.

    The content hash is recomputed exactly as the emitter computes it and must match the header, ``CONTENT_HASH``
    and (``digest16``: the hash in the file name) the name; the tree may contain only what the emitter writes
    (:class:`_Checker`).  A failure raises :class:`DiffsolveError` saying what is wrong."""
    try:
        return _verify(text, digest16)
    except _Rejected as exc:
        raise DiffsolveError(str(exc)) from None


def _verify(text: str, digest16: str | None) -> tuple[ast.Module, dict]:
    if "\x00" in text or "\r" in text:
        raise _Rejected("it contains NUL bytes or carriage returns (a damaged file)")
    header = _HEADER.match(text)
    if header is None:
        raise _Rejected("it does not start with the header of a diffsolve generated module (a foreign, empty or "
                        "damaged file)")
    version, sympy_version, digest = header.groups()
    if digest16 is not None and digest[:16] != digest16:
        raise _Rejected(f"the content hash in its header ({digest[:16]}...) is not the one in its name ({digest16})")
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise _Rejected(f"it is not valid Python (truncated?): {exc}") from None
    body = tree.body
    if len(body) < 2 or not (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)) \
            or body[1].col_offset != 0:
        raise _Rejected("it lacks the docstring and body of a generated module")
    start = sum(len(line) + 1 for line in text.split("\n")[:body[1].lineno - 1])
    printed = text[start:]
    marker = f"GENERATOR_VERSION = {version!r}\n"
    at = printed.find(marker) + len(marker)
    inserted = f"SYMPY_VERSION = {sympy_version!r}\nCONTENT_HASH = {digest!r}\n"
    if at < len(marker) or not printed.startswith(inserted, at) or not text[:start].endswith('"""\n\n'):
        raise _Rejected("its layout is not the emitter's (header, docstring, body with GENERATOR_VERSION, "
                        "SYMPY_VERSION and CONTENT_HASH)")
    key = _literals(tree, ("FAMILY", "K", "PREDICTION", "SDE", "VARIANT", "GENERATOR_VERSION"))
    if content_digest(*key, printed[:at] + printed[at + len(inserted):]) != digest or key[-1] != version:
        raise _Rejected(f"its content does not match its content hash {digest[:16]}... (edited, truncated or "
                        "damaged)")
    constants = _Checker().module(tree)  # what an intact hash cannot rule out: a forged module
    if constants["CONTENT_HASH"] != digest or constants["SYMPY_VERSION"] != sympy_version:
        raise _Rejected("its CONTENT_HASH or SYMPY_VERSION is not the one in its header")
    return tree, constants


def _literals(tree: ast.Module, names: tuple) -> tuple:
    """The literal values of the module-level constants ``names`` (a safe evaluation: no code runs)."""
    found = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name) \
                and stmt.targets[0].id in names and stmt.targets[0].id not in found:
            try:
                found[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                pass
    missing = [name for name in names if name not in found]
    if missing:
        raise _Rejected(f"the constants {', '.join(missing)} are missing or not literals")
    return tuple(found[name] for name in names)


def _read_plain(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, which must be a plain file (no symlink, FIFO or device) of at most ``limit`` bytes."""
    if os.path.islink(path):
        raise _Rejected("it is a symbolic link, not a plain file")
    try:  # O_NOFOLLOW: not swapped for a link meanwhile; O_NONBLOCK: a FIFO does not block the open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Rejected("it is a symbolic link, not a plain file") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Rejected("it is not a plain file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise _Rejected(f"it is larger than {limit} bytes")
    return data


def _module_name(path: Path) -> str:
    tag = hashlib.sha256(str(path).encode()).hexdigest()[:8]  # one module per file, whatever its name
    return f"diffsolve_generated_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}_{tag}"


def _import_tree(path: Path, tree: ast.Module, digest: str):
    """Run the checked ``tree`` (not the file again, nor a bytecode cache) as the module of ``path``."""
    name = _module_name(path)
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None) == str(path) and \
            getattr(module, "CONTENT_HASH", None) == digest:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    code = compile(tree, str(path), "exec", dont_inherit=True)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)  # noqa: S102 -- the tree verify_source accepted
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _load_generated(path: Path, expect: dict | None = None):
    """Verify and import the generated module at ``path`` (a hashed name); :class:`_Rejected` says why not."""
    match = _GENERATED_NAME.fullmatch(path.name)
    if match is None:
        raise _Rejected("its name is not a generated module's (name_variant_prediction_<hash16>.py)")
    try:
        data = _read_plain(path, _MAX_MODULE_BYTES)
    except OSError as exc:
        raise _Rejected(f"it cannot be read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Rejected("it is not UTF-8 text (a damaged file)") from None
    tree, constants = _verify(text, match.group(1))
    if path.stem != module_stem(constants["NAME"], constants["VARIANT"], constants["PREDICTION"],
                                constants["CONTENT_HASH"]):
        raise _Rejected("its name does not match the NAME, VARIANT and PREDICTION it declares")
    wrong = {k: constants.get(k) for k, v in (expect or {}).items() if constants.get(k) != v}
    if wrong:
        raise _Rejected(f"it is the module of another solver ({wrong}, expected {expect})")
    try:  # the directory resolved (the file itself was checked to be no link)
        return _import_tree(path.parent.resolve() / path.name, tree, constants["CONTENT_HASH"])
    except Exception as exc:  # noqa: BLE001 -- a checked tree that still fails (e.g. a psi helper that does not exist)
        raise _Rejected(f"importing it failed ({type(exc).__name__}: {exc})") from None


def load_module(path: str | os.PathLike):
    """Import a generated module from ``path`` under a unique name (``diffsolve_generated_<stem>_<path tag>``);
    a second call with the same path returns the same module object.

    A content-hashed name (``name_variant_prediction_<hash16>.py``, as in the cache) is verified first
    (:func:`verify_source`) and its checked tree is what runs; a file that fails is a :class:`DiffsolveError`."""
    path = Path(path)
    if _GENERATED_NAME.fullmatch(path.name):
        try:
            return _load_generated(path)
        except _Rejected as exc:
            raise DiffsolveError(f"not importing {path}: {exc}; delete it and generate it again "
                                 "(diffsolve.codegen.emit.generate)") from None
    path = path.resolve()
    name = _module_name(path)
    module = sys.modules.get(name)
    if module is not None and Path(getattr(module, "__file__", "")).resolve() == path:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DiffsolveError(f"cannot load a generated module from {path}: not a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (OSError, SyntaxError) as exc:
        del sys.modules[name]
        raise DiffsolveError(f"cannot load a generated module from {path}: {exc}") from None
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
    try:
        text = Path(module.__file__).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DiffsolveError(f"cannot read the source of {module.__name__} from {module.__file__}: {exc}") from None
    path = Path(directory) / (module_stem(module.NAME, module.VARIANT, module.PREDICTION, module.CONTENT_HASH) + ".py")
    try:
        if path.is_file() and not path.is_symlink() and path.read_bytes() == text.encode():
            return path
    except OSError:
        pass
    return write_atomic(path, text)


# -- key-addressed lookups -----------------------------------------------------------------------------------------

def _warn(message: str):
    warnings.warn(message, DiffsolveWarning, stacklevel=4)


def _lookup(directory: Path, stem: str, expect: dict | None, report: bool):
    """The verified module the pointer ``<stem>.key`` of ``directory`` names, or None: no pointer, a pointer to a
    removed module, or a rejected pointer or module (then one warning when ``report``)."""
    pointer = directory / f"{stem}.key"
    try:
        target = _read_plain(pointer, _MAX_POINTER_BYTES).decode("ascii").strip()
        if not _GENERATED_NAME.fullmatch(target):
            raise _Rejected(f"it holds {target[:80]!r}, not the bare name of a generated module in {directory}")
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None  # not derived yet (or no directory)
        problem = f"it cannot be read ({exc.strerror or exc})"
    except UnicodeDecodeError:
        problem = "it is not a text file naming a module"
    except _Rejected as exc:
        problem = str(exc)
    else:
        path = directory / target
        if not os.path.lexists(path):
            return None  # the module was removed: derive it again
        try:
            return _load_generated(path, expect)
        except _Rejected as exc:
            problem = f"the module it names, {target}, is not imported: {exc}"
    if report:
        _warn(f"ignoring the diffsolve cache pointer {pointer}: {problem}; deriving the solver again (the cache "
              f"entry is rewritten); if others can write {directory}, {_FIX}")
    return None


@contextmanager
def _locked(directory: Path, stem: str):
    """Hold the file lock ``<stem>.lock`` of ``directory``, acquired within :func:`lock_timeout` seconds; a timeout
    is a :class:`DiffsolveError`; a lock file that cannot be used at all gives a warning and no lock (the writes
    stay atomic, only the work may be repeated)."""
    path = directory / f"{stem}.lock"
    timeout = lock_timeout()
    lock = filelock.FileLock(path, timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout:  # before OSError: Timeout is a TimeoutError
        raise DiffsolveError(
            f"timed out after {timeout:g} s waiting for the lock {path}: another process is still deriving this "
            f"solver; wait and retry, or set DIFFSOLVE_CACHE_LOCK_TIMEOUT (seconds) higher; if no diffsolve process "
            f"is running, delete {path}") from None
    except OSError as exc:
        _warn(f"cannot lock {path} ({exc.strerror or exc}): deriving without the lock (concurrent processes may "
              f"each derive this solver); {_FIX}")
        yield
        return
    try:
        yield
    finally:
        lock.release()


def cached_module(key: str, build, expect: dict | None = None):
    """The generated module for ``key``: loaded, verified, through its pointer file when present; else
    ``build()`` (which derives and emits the module into :func:`writable_cache_dir` and returns its path; it may
    import SymPy) is called under the key's file lock (so concurrent processes derive it once), the pointer
    written, and the module loaded.  ``expect``: constants the module must declare (e.g. ``{"K": 6}``)."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise DiffsolveError(f"cache key {key!r} must be letters, digits, '_', '-' and '.' (it names files)")
    stem = f"{key}-{source_fingerprint()}"
    configured = cache_dir()
    module = _lookup(configured, stem, expect, report=True)
    if module is not None:
        return module
    directory = writable_cache_dir()
    if directory != configured:
        module = _lookup(directory, stem, expect, report=True)
        if module is not None:
            return module
    with _locked(directory, stem):
        module = _lookup(directory, stem, expect, report=False)  # another process may have derived it meanwhile
        if module is not None:
            return module
        path = Path(build())
        try:
            module = _load_generated(path, expect)
        except _Rejected as exc:
            raise DiffsolveError(f"the module just generated for {key} at {path} fails verification ({exc}); this "
                                 "is a diffsolve bug: please report it") from None
        if path.parent.resolve() == directory.resolve():
            try:
                _write(directory / f"{stem}.key", path.name)
            except OSError as exc:
                _warn(f"cannot write the diffsolve cache pointer {directory / (stem + '.key')} "
                      f"({exc.strerror or exc}): the solver will be derived again next time; {_FIX}")
    return module
