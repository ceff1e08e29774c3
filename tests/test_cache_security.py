"""The user cache cannot be turned against its user (docs/cache.md): pointers resolve only to plain files directly in
the cache directory, modules are verified (content hash recomputed as the emitter does, syntax tree checked) before
anything of them runs, damaged entries are derived again with one warning, unusable directories fall back, and
concurrent processes derive a solver once under a file lock with a bounded wait."""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest

import diffsolve as ds
from diffsolve import _generated, cache
from diffsolve.errors import DiffsolveError, DiffsolveWarning
from diffsolve.solvers import modules

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = Path(_generated.__file__).parent / "dpmpp_2m_exact_data.py"
TEXT = SHIPPED.read_text(encoding="utf-8")
EXPECT = {"FAMILY": "multistep", "K": 2, "PREDICTION": "data", "SDE": False, "VARIANT": "exact"}
KEY = "test-multistep-2-data-ode-exact"


def _hash(text):
    return re.search(r"^# Content hash: ([0-9a-f]{64})$", text, re.M).group(1)


def _name(text):
    c = {k: ast.literal_eval(v) for k, v in re.findall(r"^(NAME|VARIANT|PREDICTION) = (.*)$", text, re.M)}
    return cache.module_stem(c["NAME"], c["VARIANT"], c["PREDICTION"], _hash(text)) + ".py"


NAME = _name(TEXT)


@pytest.fixture
def cdir(tmp_path, monkeypatch):
    """An empty cache directory of this test (DIFFSOLVE_CACHE_DIR), nothing memoised."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("DIFFSOLVE_CACHE_DIR", str(directory))
    monkeypatch.delenv("DIFFSOLVE_CACHE_LOCK_TIMEOUT", raising=False)
    modules.tableau_module.cache_clear()
    yield directory
    modules.tableau_module.cache_clear()


def _pointer(directory, key=KEY):
    return directory / f"{key}-{cache.source_fingerprint()}.key"


def _builder(calls, text=TEXT):
    """A stand-in for derive-and-emit: writes ``text`` (a valid generated module) into the writable cache."""
    def build():
        calls.append(1)
        return cache.write_atomic(cache.writable_cache_dir() / _name(text), text)
    return build


@contextmanager
def _warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def _ours(caught):
    found = [w for w in caught if issubclass(w.category, DiffsolveWarning)]
    assert all("\n" not in str(w.message) for w in found), [str(w.message) for w in found]
    return [str(w.message) for w in found]


def _forge(text, edit):
    """A self-consistent module: ``edit`` applied to the printed body, the content hash recomputed as the emitter
    computes it and written into the header, CONTENT_HASH and the name (what an attacker can do)."""
    head, body = text.split('\n"""\n\nimport math', 1)
    head, body = head + '\n"""\n\n', "import math" + body
    sympy = re.search(r"^SYMPY_VERSION = (.*)$", body, re.M).group(1)
    body = re.sub(r"SYMPY_VERSION = .*\nCONTENT_HASH = .*\n", "", body, count=1)
    body = edit(body)
    c = {k: ast.literal_eval(v) for k, v in
         re.findall(r"^(FAMILY|K|PREDICTION|SDE|VARIANT|GENERATOR_VERSION) = (.*)$", body, re.M)}
    digest = cache.content_digest(c["FAMILY"], c["K"], c["PREDICTION"], c["SDE"], c["VARIANT"],
                                  c["GENERATOR_VERSION"], body)
    marker = f"GENERATOR_VERSION = {c['GENERATOR_VERSION']!r}\n"
    body = body.replace(marker, marker + f"SYMPY_VERSION = {sympy}\nCONTENT_HASH = {digest!r}\n", 1)
    return re.sub(r"# Content hash: [0-9a-f]{64}", f"# Content hash: {digest}", head) + body


def _install(directory, text, key=KEY, name=None):
    """Put ``text`` into the cache under ``name`` (default: its hashed name) with a pointer for ``key``."""
    directory.mkdir(parents=True, exist_ok=True)
    name = name or _name(text)
    (directory / name).write_text(text, encoding="utf-8")
    _pointer(directory, key).write_text(name, encoding="utf-8")
    return directory / name


# -------------------------------------------------------------------------------------------- what is accepted
def test_shipped_and_forged_identity_modules_verify():
    """Every shipped solver module passes the verification (its hash recomputed as the emitter does, its tree
    within the checked subset), and the forging helper of these tests is faithful (identity edit = same text)."""
    skip = {"__init__.py", "psi.py", "schedules.py", "uld.py"}
    for path in sorted(SHIPPED.parent.glob("*.py")):
        if path.name not in skip:
            text = path.read_text(encoding="utf-8")
            tree, constants = cache.verify_source(text, _hash(text)[:16])
            assert constants["CONTENT_HASH"] == _hash(text), path.name
    assert _forge(TEXT, lambda body: body) == TEXT


def test_a_valid_pointer_loads_without_building(cdir):
    path = _install(cdir, TEXT)
    calls = []
    with _warnings() as caught:
        module = cache.cached_module(KEY, _builder(calls), expect=EXPECT)
    assert calls == [] and not _ours(caught) and Path(module.__file__) == path.resolve()
    assert module.CONTENT_HASH == _hash(TEXT) and callable(module.fill)
    assert cache.cached_module(KEY, _builder(calls), expect=EXPECT) is module
    assert not (cdir / "__pycache__").exists()  # the checked tree runs, no bytecode cache is written or read


# ------------------------------------------------------------------------------------------------ 1. pointers
@pytest.mark.parametrize("kind", ["absolute", "dotdot", "subdir", "symlink-module", "symlink-pointer", "garbage",
                                  "directory-module"])
def test_pointer_outside_the_cache_is_never_followed(cdir, tmp_path, kind):
    """A pointer naming anything but a plain generated-module file directly in the cache is ignored with one
    warning and the solver derived again; the named file is never imported."""
    marker = tmp_path / "pwned"
    evil = tmp_path / "outside" / NAME
    evil.parent.mkdir()
    evil.write_text(f"open({str(marker)!r}, 'w').close()\n" + TEXT, encoding="utf-8")
    cdir.mkdir()
    pointer = _pointer(cdir)
    if kind == "absolute":
        pointer.write_text(str(evil))
    elif kind == "dotdot":
        pointer.write_text(f"../outside/{NAME}")
    elif kind == "subdir":
        (cdir / "sub").mkdir()
        shutil.copy(evil, cdir / "sub" / NAME)
        pointer.write_text(f"sub/{NAME}")
    elif kind == "symlink-module":
        (cdir / NAME).symlink_to(evil)
        pointer.write_text(NAME)
    elif kind == "symlink-pointer":
        outside = tmp_path / "outside" / "pointer"
        outside.write_text(NAME)
        pointer.symlink_to(outside)
    elif kind == "garbage":
        pointer.write_bytes(b"\xff\xfe\x00" * 10)
    elif kind == "directory-module":
        (cdir / NAME).mkdir()
        pointer.write_text(NAME)
    calls = []
    if kind == "directory-module":  # cannot be replaced by the atomic write: a clear diffsolve error instead
        with _warnings() as caught, pytest.raises(DiffsolveError, match=f"cannot write {re.escape(str(cdir / NAME))}"):
            cache.cached_module(KEY, _builder(calls), expect=EXPECT)
        assert len(_ours(caught)) == 1 and calls == [1]
        return
    with _warnings() as caught:
        module = cache.cached_module(KEY, _builder(calls), expect=EXPECT)
    messages = _ours(caught)
    assert not marker.exists(), "the file outside the cache was imported"
    assert calls == [1] and Path(module.__file__).parent == cdir.resolve() and module.CONTENT_HASH == _hash(TEXT)
    assert len(messages) == 1 and str(pointer) in messages[0] and "DIFFSOLVE_CACHE_DIR" in messages[0], messages
    assert not pointer.is_symlink() and pointer.read_text() == NAME  # rewritten as a bare name


# -------------------------------------------------------------------------------------------- 2. verification
DAMAGE = {
    "truncated": lambda t: t[: len(t) // 2],
    "truncated-at-a-line": lambda t: t[: t.index("def fill")],
    "nul-filled": lambda t: "\x00" * len(t),
    "empty": lambda t: "",
    "edited-coefficient": lambda t: t.replace("A[n, 0] = 1.0", "A[n, 0] = 2.0", 1),
    "appended-code": lambda t: t + "\nimport os\n",
    "foreign": lambda t: "print('hello')\n",
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_module_is_not_imported_and_is_regenerated(cdir, damage):
    path = _install(cdir, TEXT)
    assert "A[n, 0] = 1.0" in TEXT
    path.write_text(DAMAGE[damage](TEXT), encoding="utf-8")
    calls = []
    with _warnings() as caught:
        module = cache.cached_module(KEY, _builder(calls), expect=EXPECT)
    messages = _ours(caught)
    assert calls == [1] and len(messages) == 1 and NAME in messages[0], messages
    assert path.read_text(encoding="utf-8") == TEXT and module.CONTENT_HASH == _hash(TEXT)
    with _warnings() as caught:  # repaired: the next process loads it silently
        assert cache.cached_module(KEY, _builder(calls), expect=EXPECT) is module
    assert calls == [1] and not _ours(caught)


def test_non_utf8_module_is_regenerated(cdir):
    path = _install(cdir, TEXT)
    path.write_bytes(os.urandom(4096) + b"\xff")
    calls = []
    with _warnings() as caught:
        module = cache.cached_module(KEY, _builder(calls), expect=EXPECT)
    assert calls == [1] and len(_ours(caught)) == 1 and module.CONTENT_HASH == _hash(TEXT)


INJECTIONS = {
    "module-import": lambda body, m: body + f"\nimport os\nos.system('touch {m}')\n",
    "module-call": lambda body, m: body + f"\nopen({m!r}, 'w').close()\n",
    "first-statement": lambda body, m: f"open({m!r}, 'w').close()\n" + body,
    "constant-call": lambda body, m: body.replace("KEEP = 0\n", f"KEEP = open({m!r}, 'w').close()\n"),
    "call-in-fill": lambda body, m: body.replace("for n in range(h.shape[0]):",
                                                 f"open({m!r}, 'w').close()\n    for n in range(h.shape[0]):"),
    "rebound-helper": lambda body, m: body.replace("    return (", f"    range = open\n    range({m!r}, 'w')\n"
                                                                  "    return ("),
    "dunder-attribute": lambda body, m: body.replace(
        "    return (", "    x = (0).__class__.__base__.__subclasses__()\n    return ("),
    "math-attribute": lambda body, m: body.replace("    return (", "    x = math.__loader__\n    return ("),
    "lambda": lambda body, m: body.replace("    return (", f"    x = (lambda: open({m!r}, 'w'))()\n    return ("),
    "comprehension": lambda body, m: body.replace("    return (",
                                                  f"    x = [open({m!r}, 'w') for i in range(1)]\n    return ("),
    "decorator": lambda body, m: body.replace("def fractions(", "@print\ndef fractions("),
    "extra-function": lambda body, m: body + "\n\ndef __getattr__(name):\n    return open\n",
    "foreign-import": lambda body, m: body.replace("import math\n", "import math\nimport subprocess\n", 1),
}


@pytest.mark.parametrize("injection", sorted(INJECTIONS))
def test_self_consistent_malicious_module_is_rejected(cdir, tmp_path, injection):
    """Someone who can write the cache can also recompute the hash: the syntax-tree check still keeps the code
    from running (only literal constants, arithmetic, math functions and the shared psi helpers pass)."""
    marker = tmp_path / "pwned"
    forged = _forge(TEXT, lambda body: INJECTIONS[injection](body, str(marker)))
    assert forged != TEXT
    _install(cdir, forged)
    calls = []
    with _warnings() as caught:
        module = cache.cached_module(KEY, _builder(calls), expect=EXPECT)
        module.fill  # noqa: B018
    messages = _ours(caught)
    assert not marker.exists() and calls == [1] and module.CONTENT_HASH == _hash(TEXT)
    assert len(messages) == 1 and "not imported" in messages[0], messages
    with pytest.raises(DiffsolveError, match="never contains|not a literal|missing|layout"):
        cache.verify_source(forged)


def test_module_of_another_solver_is_rejected(cdir):
    other = (SHIPPED.parent / "dpmpp_3m_exact_data.py").read_text(encoding="utf-8")
    _install(cdir, other)  # a valid module, but of k = 3, under the pointer of k = 2
    calls = []
    with _warnings() as caught:
        module = cache.cached_module(KEY, _builder(calls), expect=EXPECT)
    messages = _ours(caught)
    assert calls == [1] and module.K == 2 and len(messages) == 1 and "another solver" in messages[0]


def test_load_module_verifies_a_hashed_name(tmp_path):
    path = tmp_path / NAME
    path.write_text(TEXT[:100], encoding="utf-8")
    with pytest.raises(DiffsolveError, match=re.escape(str(path))):
        cache.load_module(path)
    path.write_text(TEXT, encoding="utf-8")
    module = cache.load_module(path)
    assert cache.load_module(path) is module and module.K == 2
    bad = tmp_path / "not_generated.py"
    bad.write_text("def (:\n")
    with pytest.raises(DiffsolveError, match="cannot load"):
        cache.load_module(bad)


def test_bad_keys_are_refused(cdir):
    for key in ("../escape", "/abs", "a/b", "", ".hidden"):
        with pytest.raises(DiffsolveError, match="cache key"):
            cache.cached_module(key, _builder([]))


@pytest.mark.parametrize("damage", ["truncated", "nul-filled"])
def test_derive_survives_a_damaged_cached_module(cdir, damage):
    """The audit's case end to end: a derived module damaged on disk; the next derive warns once, derives it
    again and samples (no raw SyntaxError / AttributeError)."""
    first = ds.derive("dpm-solver-multistep", 4)
    path = Path(first.extra["module"])
    assert path.parent == cdir.resolve()
    path.write_text(DAMAGE[damage](path.read_text(encoding="utf-8")), encoding="utf-8")
    modules.tableau_module.cache_clear()
    with _warnings() as caught:
        second = ds.derive("dpm-solver-multistep", 4)
    messages = _ours(caught)
    assert len(messages) == 1 and path.name in messages[0], messages
    assert second.extra["module"] == first.extra["module"] and second.order == 4
    target = ds.targets.from_spec("gaussian:d=2")
    vp = ds.get_schedule("vp-linear")
    assert ds.sample(second, target, vp, ds.time_grid(vp, 10), n=20, seed=0).shape == (20, 2)


# ------------------------------------------------------------------------------------------------ 3. fallback
@contextmanager
def _read_only(path):
    """Make ``path`` read-only for this process (chmod; for root also the immutable attribute), or skip."""
    os.chmod(path, 0o555)
    immutable = os.geteuid() == 0 and shutil.which("chattr") is not None and \
        subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    try:
        try:
            (path / ".probe").touch()
        except OSError:
            pass
        else:
            (path / ".probe").unlink()
            pytest.skip("cannot make a directory read-only here")
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        os.chmod(path, 0o755)


def test_read_only_cache_falls_back_with_one_warning_and_derives(cdir):
    cdir.mkdir()
    with _read_only(cdir), _warnings() as caught:
        solver = ds.derive("dpm-solver-multistep", 4, sde=True)  # two new keys (3m-sde, 4m-sde): still one warning
        assert not any(cdir.iterdir())
    messages = _ours(caught)
    assert len(messages) == 1, messages
    assert str(cdir) in messages[0] and "not writable" in messages[0] and "DIFFSOLVE_CACHE_DIR" in messages[0]
    module = Path(solver.extra["module"])
    assert module.is_file() and module.parent != cdir and solver.name == "dpm-solver-4m-sde" and solver.stochastic


def test_read_only_cache_still_serves_what_it_holds(cdir):
    _install(cdir, TEXT)
    calls = []
    with _read_only(cdir), _warnings() as caught:
        module = cache.cached_module(KEY, _builder(calls), expect=EXPECT)
    assert calls == [] and not _ours(caught) and module.CONTENT_HASH == _hash(TEXT)


@pytest.mark.parametrize("kind", ["file", "parent-is-file"])
def test_cache_path_that_is_a_file_falls_back(tmp_path, monkeypatch, kind):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    directory = blocker if kind == "file" else blocker / "cache"
    monkeypatch.setenv("DIFFSOLVE_CACHE_DIR", str(directory))
    calls = []
    with _warnings() as caught:
        module = cache.cached_module(KEY, _builder(calls), expect=EXPECT)
        again = cache.cached_module(KEY + "-b", _builder(calls), expect=EXPECT)
    messages = _ours(caught)
    assert calls == [1, 1] and module.CONTENT_HASH == again.CONTENT_HASH == _hash(TEXT)
    assert len(messages) == 1 and str(directory) in messages[0] and "DIFFSOLVE_CACHE_DIR" in messages[0], messages
    assert ("not a directory" in messages[0]) if kind == "file" else ("cannot be created" in messages[0])
    assert blocker.read_text() == "not a directory"


# ---------------------------------------------------------------------------------------------------- 4. lock
CHILD = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from diffsolve import cache

    text, name, log, gate, ready = Path(sys.argv[1]).read_text(), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    Path(ready).touch()
    while not os.path.exists(gate):
        time.sleep(0.005)

    def build():
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{os.getpid()}\\n".encode())
        os.close(fd)
        time.sleep(1.0)  # a derivation
        return cache.write_atomic(cache.writable_cache_dir() / name, text)

    module = cache.cached_module("test-lock", build)
    print(json.dumps({"file": module.__file__, "hash": module.CONTENT_HASH}))
""")


def _env(directory, **extra):
    return {**os.environ, "DIFFSOLVE_CACHE_DIR": str(directory), "PYTHONPATH": str(ROOT), **extra}


def test_concurrent_processes_build_once(tmp_path):
    """Eight processes released at the same instant on an empty cache: one builds, seven wait and reuse it."""
    directory, src = tmp_path / "cache", tmp_path / "module.txt"
    src.write_text(TEXT, encoding="utf-8")
    log, gate = tmp_path / "builds.log", tmp_path / "gate"
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(src), NAME, str(log), str(gate),
                               str(tmp_path / f"ready{i}")], env=_env(directory), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(8)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(8)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    gate.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    outs = [json.loads(out) for out, _ in results]
    assert len(log.read_text().split()) == 1  # built once
    assert {o["file"] for o in outs} == {str(directory.resolve() / NAME)} and {o["hash"] for o in outs} == {_hash(TEXT)}
    assert all("Warning" not in err for _, err in results), results


def test_lock_timeout_is_a_clear_error(cdir, monkeypatch):
    cdir.mkdir()
    lock = cdir / f"{KEY}-{cache.source_fingerprint()}.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import filelock, sys, time\n"
                               f"l = filelock.FileLock({str(lock)!r}); l.acquire(); print('held', flush=True)\n"
                               "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("DIFFSOLVE_CACHE_LOCK_TIMEOUT", "0.3")
        calls, start = [], time.monotonic()
        with pytest.raises(DiffsolveError, match="timed out after 0.3 s") as info:
            cache.cached_module(KEY, _builder(calls), expect=EXPECT)
        assert time.monotonic() - start < 10 and calls == []
        assert str(lock) in str(info.value) and "DIFFSOLVE_CACHE_LOCK_TIMEOUT" in str(info.value)
    finally:
        holder.communicate("", timeout=30)
    assert cache.cached_module(KEY, _builder(calls), expect=EXPECT).K == 2 and calls == [1]  # released: proceeds


def test_lock_file_planted_as_a_link_is_not_followed(cdir, tmp_path):
    """A lock path that is a symbolic link: its target is left alone; one warning, the solver is still built."""
    target = tmp_path / "precious"
    target.write_text("keep me")
    cdir.mkdir()
    (cdir / f"{KEY}-{cache.source_fingerprint()}.lock").symlink_to(target)
    calls = []
    with _warnings() as caught:
        module = cache.cached_module(KEY, _builder(calls), expect=EXPECT)
    messages = _ours(caught)
    assert target.read_text() == "keep me" and calls == [1] and module.K == 2
    assert len(messages) == 1 and "cannot lock" in messages[0], messages


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan", "inf"])
def test_bad_lock_timeout_setting(cdir, monkeypatch, value):
    monkeypatch.setenv("DIFFSOLVE_CACHE_LOCK_TIMEOUT", value)
    with pytest.raises(DiffsolveError, match="DIFFSOLVE_CACHE_LOCK_TIMEOUT"):
        cache.cached_module(KEY, _builder([]), expect=EXPECT)


DERIVE = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    import diffsolve as ds
    from diffsolve.solvers import modules

    log, gate, ready = sys.argv[1], sys.argv[2], sys.argv[3]
    family, order, sde = sys.argv[4], int(sys.argv[5]), sys.argv[6] == "sde"
    build = modules._build

    def counted(key):
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, (repr(key) + "\\n").encode())
        os.close(fd)
        return build(key)

    modules._build = counted
    Path(ready).touch()
    while not os.path.exists(gate):
        time.sleep(0.005)
    solver = ds.derive(family, order, sde=sde)
    print(json.dumps({"module": solver.extra["module"], "order": solver.order, "end": time.time()}))
""")


def _derive_processes(tmp_path, tag, n, family, order, sde):
    """``n`` processes deriving (family, order) into one empty cache, released together once all have started;
    (seconds from the release to the last result, seconds for the whole processes, outputs, keys built)."""
    directory, log, gate = tmp_path / f"cache-{tag}", tmp_path / f"builds-{tag}.log", tmp_path / f"gate-{tag}"
    ready = [tmp_path / f"ready-{tag}-{i}" for i in range(n)]
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", DERIVE, str(log), str(gate), str(r), family, str(order),
                               "sde" if sde else "ode"], env=_env(directory), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in ready]
    deadline = time.monotonic() + 300
    while not all(r.exists() for r in ready):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.005)
    released = time.time()
    gate.touch()
    results = [p.communicate(timeout=600) for p in procs]
    whole = time.perf_counter() - start
    assert all(p.returncode == 0 for p in procs), results
    outs = [json.loads(out) for out, _ in results]
    return max(o["end"] for o in outs) - released, whole, outs, log.read_text().splitlines()


def test_concurrent_derivations_derive_once(tmp_path):
    """Fast variant with a real, cheap derivation (dpm-solver-4m, not shipped): four processes released at the
    same instant on an empty cache, one build, one module (eight, with a stand-in build: above)."""
    _, _, outs, built = _derive_processes(tmp_path, "fast", 4, "dpm-solver-multistep", 4, False)
    assert len(built) == 1 and len({o["module"] for o in outs}) == 1 and {o["order"] for o in outs} == {4}


@pytest.mark.slow
def test_eight_concurrent_derivations_derive_once(tmp_path):
    """Eight concurrent derivations of a new order (dpmpp-6m-sde: the 4m-, 5m- and 6m-sde tableaux) into one empty
    cache derive each tableau once and all succeed with the same module (their wall time against a single
    derivation is a benchmark: benchmarks/test_cache_concurrency.py)."""
    _, _, _, built_single = _derive_processes(tmp_path, "single", 1, "dpmpp-multistep", 6, True)
    _, _, outs, built = _derive_processes(tmp_path, "eight", 8, "dpmpp-multistep", 6, True)
    assert sorted(built) == sorted(set(built)) == sorted(built_single)  # each tableau derived once
    assert len({o["module"] for o in outs}) == 1
