"""Benchmarks (pytest-benchmark), never run by the test suite:

    pytest benchmarks/ --benchmark-only -p no:cacheprovider

The terminal summary prints each group's times as ratios to its baseline (side by side, same run) and the
fraction of this machine's measured float64 FMA peak (benchmarks/peak.py).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

RESULTS = {}  # group -> {name: (seconds, flops, baseline?)}
WORK = {}  # (group, name) -> (count, unit): a throughput to print


@pytest.fixture
def record():
    """record(group, name, benchmark, flops, baseline=False, work=None) after a benchmark ran; ``work`` = (count,
    unit) prints a throughput (e.g. (n * iterations, "sample-iterations"))."""

    def _record(group, name, benchmark, flops, baseline=False, work=None):
        if benchmark.stats is None:  # --benchmark-disable: the body ran once, untimed
            return
        RESULTS.setdefault(group, {})[name] = (benchmark.stats.stats.min, flops, baseline)
        if work is not None:
            WORK[(group, name)] = work

    return _record


@pytest.fixture
def record_seconds():
    """record_seconds(group, name, seconds, baseline=False): a time measured by the benchmark itself (e.g. the
    minima of two loops timed in alternation), printed with the ratios."""

    def _record(group, name, seconds, baseline=False):
        RESULTS.setdefault(group, {})[name] = (seconds, 0, baseline)

    return _record


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    import numba
    from peak import machine_peak

    peak = machine_peak(numba.get_num_threads())
    tr = terminalreporter
    tr.section("ratios (min times, same run)")
    tr.write_line(f"load average {os.getloadavg()[0]:.2f}; Numba threads {numba.get_num_threads()}; "
                  f"float64 peak {peak / 1e9:.1f} GFLOP/s (threads x measured one-core FMA peak)")
    for group, rows in RESULTS.items():
        base = [t for t, _, b in rows.values() if b]
        base = base[0] if base else None
        tr.write_line(f"[{group}]")
        for name, (t, flops, _) in sorted(rows.items(), key=lambda kv: kv[1][0]):
            ratio = f"{base / t:6.2f}x baseline" if base else ""
            frac = f"{flops / t / 1e9:7.2f} GFLOP/s ({flops / t / peak:5.1%} of CPU peak)" if flops else ""
            if (group, name) in WORK:
                count, unit = WORK[group, name]
                frac += f"  {count / t:.3g} {unit}/s"
            tr.write_line(f"  {name:32s} {t * 1e3:9.2f} ms  {ratio}  {frac}")
