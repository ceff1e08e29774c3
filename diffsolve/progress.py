"""Progress of long work on stderr, and of a first compilation: the one place diffsolve uses tqdm.

Where progress shows (:func:`progress_mode`):

* ``$DIFFSOLVE_PROGRESS=0``, ``--quiet`` on the command line, or ``progress=False`` in Python: nothing.
* stderr is a terminal: a tqdm bar, redrawn at least once a second while one item runs.
* stderr is not a terminal (a log, a CI job, a pipe): no bar, but a plain line at most every :data:`LOG_EVERY`
  seconds for work that runs that long (``claims accelerated: 3/6 experiments done (41 s; now c3)``), and a last
  ``done`` line when any was written; short work stays silent.
* ``$DIFFSOLVE_PROGRESS=1``: the bar even when stderr is not a terminal (a notebook, which redraws it in place).

Progress never goes to stdout, so ``--json`` output stays pure JSON.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager

from .errors import DiffsolveError

__all__ = ["Progress", "progress_mode", "announce_compilation", "LOG_EVERY", "ENV"]

LOG_EVERY = 30.0  # seconds between two plain progress lines in a log
ENV = "DIFFSOLVE_PROGRESS"
_SETTINGS = {"0": "off", "1": "bar", "": None, "auto": None}


def progress_mode(enabled: bool = True, stream=None) -> str:
    """``"off"``, ``"bar"`` (tqdm) or ``"log"`` (plain lines) for progress that the caller ``enabled``, on
    ``stream`` (default stderr); ``$DIFFSOLVE_PROGRESS`` (0, 1 or auto) overrides the terminal test."""
    if not enabled:
        return "off"
    setting = os.environ.get(ENV, "").strip().lower()
    if setting not in _SETTINGS:
        raise DiffsolveError(f"{ENV}={setting!r} is not a progress setting; expected 0 (no progress), 1 (always a "
                             f"bar) or auto (a bar on a terminal, plain lines in a log): set one of them or unset it")
    if _SETTINGS[setting]:
        return _SETTINGS[setting]
    try:
        tty = (stream or sys.stderr).isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        tty = False
    return "bar" if tty else "log"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s"


class Progress:
    """``with Progress(total, label, enabled, unit="steps") as p: ... p.update(1)`` (``total=None``: not counted).

    Shows as :func:`progress_mode` says. ``note(text)`` names what runs now; ``announce`` is a line written when
    the work starts (on a terminal too); ``delay``: nothing shows unless the work lasts that long; ``every``:
    seconds between two lines in a log; ``leave``: keep the finished bar on the terminal; ``eta``: show the time
    left (off where items differ much in length)."""

    def __init__(self, total=None, label: str = "", enabled: bool = True, *, unit: str = "steps",
                 every: float = LOG_EVERY, delay: float = 0.0, announce: str = "", leave: bool = True, eta: bool = True,
                 stream=None):
        self.total = None if total is None else max(int(total), 0)
        self.label, self.unit, self.every, self.delay = label, unit, float(every), float(delay)
        self.mode = progress_mode(enabled, stream)
        self.stream, self.leave, self.eta, self.n, self.current = stream, leave, eta, 0, ""
        self.start = self._last = time.perf_counter()
        self._bar, self._lines = None, 0
        self._lock, self._stop, self._ticker = threading.RLock(), threading.Event(), None
        if self.mode == "off":
            return
        if announce:
            self._write(announce)
        if self.mode == "bar" and self.delay <= 0:
            self._open()
        self._ticker = threading.Thread(target=self._tick, name="diffsolve-progress", daemon=True)
        self._ticker.start()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.close(done=exc_type is None)
        return False

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.n += n
            if self._bar is not None:
                self._bar.update(n)
            elif self.mode == "log":
                self._log_if_due()

    def note(self, text: str) -> None:
        """What runs now (shown after the count)."""
        with self._lock:
            self.current = text
            if self._bar is not None:
                self._bar.set_postfix_str(text, refresh=False)

    @contextmanager
    def hidden(self):
        """Clear the bar while the caller prints (to stdout or stderr), then draw it again below the text."""
        if self._bar is None:
            yield
            return
        from tqdm import tqdm

        with tqdm.external_write_mode():
            yield

    def close(self, done: bool = True) -> None:
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            elif self.mode == "log" and self._lines and done:
                count = (f"{self.n}/{self.total} {self.unit}" if self.total is not None
                         else (f"{self.n} {self.unit}" if self.unit else ""))
                self._write(f"{self.label}: done{', ' + count if count else ''} in {_duration(self.elapsed)}")
            self.mode = "off"

    # -- internals ----------------------------------------------------------------------------------------------

    def _out(self):
        return self.stream or sys.stderr  # looked up when written: a test or notebook may swap sys.stderr

    def _write(self, line: str) -> None:
        from tqdm import tqdm

        with self._lock:
            tqdm.write(line, file=self._out())  # above any open bar
            self._lines += 1
            self._last = time.perf_counter()

    def _open(self) -> None:
        from tqdm import tqdm

        unit = self.unit.replace("{", "{{").replace("}", "}}")
        counted = self.total is not None
        parts = ["{desc}:", "{percentage:3.0f}%|{bar}|" if counted else "",
                 ("{n_fmt}/{total_fmt} " if counted else "{n_fmt} ") + unit if unit or counted else "",
                 "[{elapsed}" + ("<{remaining}" if counted and self.eta else "") + "{postfix}]"]
        self._bar = tqdm(total=self.total, initial=self.n, desc=self.label, file=self._out(), leave=self.leave,
                         dynamic_ncols=True, bar_format=" ".join(p for p in parts if p), postfix=self.current or None)
        self._bar.start_t = self._bar.last_print_t = time.time() - self.elapsed  # opened late (delay): true elapsed
        self._bar.refresh()

    def _log_if_due(self) -> None:
        if time.perf_counter() - self._last < self.every or self.elapsed < self.delay:
            return
        count = (f"{self.n}/{self.total} {self.unit} done" if self.total is not None
                 else (f"{self.n} {self.unit} so far" if self.unit else "running"))
        self._write(f"{self.label}: {count} ({_duration(self.elapsed)}{'; now ' + self.current if self.current else ''})")

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                if self.mode == "bar":
                    if self._bar is None and self.elapsed >= self.delay:
                        self._open()
                    elif self._bar is not None:
                        self._bar.refresh()
                elif self.mode == "log":
                    self._log_if_due()


# -- the first compilation --------------------------------------------------------------------------------------

_COMPILE_NOTICE = ("diffsolve: compiling kernels for this job (first use; Numba caches them on disk, so later runs "
                   "start at once)...")
_listener = None


def announce_compilation(stream=None) -> None:
    """Report on stderr while this process really compiles diffsolve kernels: one notice line the first time, then
    a :class:`Progress` of the functions compiled (a bar on a terminal; in a log, a last line with the count and
    the time).

    Numba fires its "numba:compile" event only on a cache miss, not when it loads a cached kernel, so this shows
    on a cold cache only.  Idempotent; called when the compiled kernel modules are imported."""
    global _listener
    if _listener is not None:
        return
    from numba.core import event

    def ours(ev) -> bool:
        dispatcher = (ev.data or {}).get("dispatcher")
        return (getattr(getattr(dispatcher, "py_func", None), "__module__", "") or "").startswith("diffsolve")

    class CompileProgress(event.Listener):
        said, depth, progress = False, 0, None

        def on_start(self, ev):
            if not ours(ev):
                return
            self.depth += 1
            if self.progress is None and self.depth == 1:
                try:
                    self.progress = Progress(None, "diffsolve: Numba", unit="functions compiled", leave=False,
                                             stream=stream,
                                             announce="" if self.said else _COMPILE_NOTICE)
                except DiffsolveError:  # a bad $DIFFSOLVE_PROGRESS: reported where progress is asked for
                    return
                self.said = True

        def on_end(self, ev):
            if not ours(ev):
                return
            self.depth = max(self.depth - 1, 0)
            if self.progress is not None:
                self.progress.update(1)
                if self.depth == 0:
                    self.progress.close()
                    self.progress = None

    _listener = CompileProgress()
    event.register("numba:compile", _listener)
