"""Reporting long work on stderr: a small progress bar (silent when disabled or not a terminal), and a one-line
notice when kernels are compiled for the first time."""

from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress(total, label, enabled) as bar: bar.update(1)``; draws at most ~10 times a second."""

    def __init__(self, total: int, label: str = "", enabled: bool = True, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.total, self.label = max(int(total), 1), label
        self.enabled = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.width, self.done, self._last = width, 0, 0.0
        self._start = time.perf_counter()

    def __enter__(self):
        return self

    def update(self, n: int = 1):
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * self.width)
            self.stream.write(f"\r{self.label} [{bar:<{self.width}}] {self.done}/{self.total} {now - self._start:5.1f}s")
            self.stream.flush()

    def __exit__(self, *exc):
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()
        return False


_COMPILE_NOTICE = ("diffsolve: compiling kernels for this job (first use; Numba caches them on disk, so later runs "
                   "start at once)...\n")
_listener = None


def announce_compilation(stream=None) -> None:
    """Print one line on stderr the first time this process really compiles a diffsolve kernel.

    Numba fires its "numba:compile" event only on a cache miss, not when it loads a cached kernel, so the line
    appears on a cold cache only.  Idempotent; called when the compiled kernel modules are imported."""
    global _listener
    if _listener is not None:
        return
    from numba.core import event

    class CompileNotice(event.Listener):
        said = False

        def on_start(self, ev):
            dispatcher = (ev.data or {}).get("dispatcher")
            module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
            if not self.said and module.startswith("diffsolve"):
                self.said = True
                out = stream or sys.stderr
                out.write(_COMPILE_NOTICE)
                out.flush()

        def on_end(self, ev):
            pass

    _listener = CompileNotice()
    event.register("numba:compile", _listener)
