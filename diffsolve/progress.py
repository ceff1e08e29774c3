"""A small progress bar on stderr for long runs (no dependency); silent when disabled."""

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
