"""Claim-vs-measured experiments for the source papers (``diffsolve claims PAPER``; docs/papers/*.md).

Each paper module defines ``EXPERIMENTS``: named :class:`Experiment` s whose ``run(quick)`` returns a
:class:`Result` (a table, the claim it checks, and optionally log-log series to plot).  Everything is computed
from exact laws, grid densities or seeded Monte Carlo, so a rerun reproduces the published numbers; ``quick``
runs a reduced grid (what the tests use).
"""

from __future__ import annotations

import importlib
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DiffsolveError
from ..plots import plot_into
from ..progress import Progress

__all__ = ["Experiment", "Result", "PAPERS", "RUNTIME", "experiments", "run", "runtime", "durations", "slope"]

PAPERS = {
    "seeds": "diffsolve.claims.seeds",
    "accelerated": "diffsolve.claims.accelerated",
    "rtk": "diffsolve.claims.rtk",
    "pc": "diffsolve.claims.pc",
}


# Measured wall time of ``diffsolve claims PAPER --quick`` and ``diffsolve claims PAPER`` in seconds (warm Numba cache,
# OPENBLAS_NUM_THREADS=1) on a 2-core machine shared with other jobs, 2026-12: load average about 2, except the full
# accelerated and rtk runs (6-8).  With the default BLAS threads on the busy machine: accelerated --quick 105 s
# (the CLI: 107 s), pc 180 s, rtk's nfe-ou experiment alone 757 s.
RUNTIME = {"seeds": (16, 33), "accelerated": (98, 1303), "rtk": (5, 336), "pc": (5, 40)}


def _about(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(5 * round(seconds / 5), 5):.0f} s"
    return f"about {round(seconds / 30) / 2:g} min" if seconds < 600 else f"about {round(seconds / 60)} min"


def runtime(paper: str, quick: bool) -> str:
    """The measured duration of the whole claims set of ``paper`` (``RUNTIME``), e.g. "about 1.5 min"."""
    return _about(RUNTIME[paper][0 if quick else 1])


def durations() -> str:
    """The measured durations of every claims set, for ``diffsolve claims --help``."""
    lines = [f"  {paper:12s} full: {runtime(paper, False):13s} --quick: {runtime(paper, True)}" for paper in PAPERS]
    return ("measured wall time of each whole set (2-core machine shared with other jobs, warm Numba cache,\n"
            "OPENBLAS_NUM_THREADS=1; the full accelerated and rtk runs at load 6-8):\n" + "\n".join(lines)
            + "\nWith the default BLAS threads a busy machine can take several times longer (pc: 3 min; rtk's nfe-ou "
            "alone: 13 min;\ndocs/papers/rtk.md). Progress goes to stderr (a bar on a terminal, a line every 30 s in "
            "a log); --quiet turns it off.")


@dataclass
class Result:
    """One measured table: ``columns`` and ``rows`` (cells already formatted), the ``claim`` (source and
    expectation) and what was measured; ``series`` maps a label to (x, y) for a log-log plot."""

    title: str
    claim: str
    columns: list
    rows: list
    measured: str = ""
    series: dict = field(default_factory=dict)
    xlabel: str = "T"
    ylabel: str = "error"

    def markdown(self) -> str:
        head = "| " + " | ".join(self.columns) + " |\n|" + "---|" * len(self.columns) + "\n"
        body = "".join("| " + " | ".join(str(c) for c in row) + " |\n" for row in self.rows)
        text = f"### {self.title}\n\nClaim: {self.claim}\n\n{head}{body}"
        return text + (f"\nMeasured: {self.measured}\n" if self.measured else "")

    def to_json(self) -> dict:
        return {"title": self.title, "claim": self.claim, "columns": self.columns, "rows": self.rows,
                "measured": self.measured,
                "series": {k: [list(map(float, x)), list(map(float, y))] for k, (x, y) in self.series.items()}}

    def plot(self, path=None, ax=None):
        """Log-log plot of ``series``: into ``ax`` (returned) when given, else saved as PNG to ``path`` (the Path is
        returned), else a new pyplot figure (its Axes returned); needs matplotlib (``pip install 'diffsolve[plot]'``)."""

        def draw(ax):
            from matplotlib.ticker import NullFormatter

            for i, (label, (x, y)) in enumerate(self.series.items()):  # past ten colours: dashed, square markers
                ax.loglog(x, y, "o-" if i < 10 else "s--", ms=3.5, label=label)
            ax.set_xlabel(self.xlabel)
            ax.set_ylabel(self.ylabel)
            ax.set_title(textwrap.fill(self.title, 70), fontsize=9)
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)

        return plot_into(draw, path, ax, figsize=(6.4, 4.6), dpi=110)


@dataclass(frozen=True)
class Experiment:
    """A named measurement: ``run(quick) -> Result``."""

    name: str
    summary: str
    run: Callable[[bool], Result]


def slope(x, y) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def fmt(value, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if np.isfinite(value) else str(value)


def experiments(paper: str) -> dict:
    """The experiments of ``paper`` by name."""
    if paper not in PAPERS:
        raise DiffsolveError(f"unknown paper {paper!r}; papers with claims: {', '.join(PAPERS)}")
    module = importlib.import_module(PAPERS[paper])
    return {e.name: e for e in module.EXPERIMENTS}


def run(paper: str, only=None, quick: bool = False, plots=None, as_json: bool = False, out=print,
        progress: bool = False, results_of=None):
    """Run the experiments of ``paper`` (``only``: names), print markdown (or JSON), save plots into ``plots``;
    ``progress=True``: one count per experiment on stderr (:class:`diffsolve.progress.Progress`).
    ``results_of(names)``: an iterator of the experiments' results in the order of ``names`` (default: each run
    here, in turn; :func:`diffsolve.distributed.claims` runs them on a cluster)."""
    table = experiments(paper)
    names = list(table) if not only else list(only)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise DiffsolveError(f"paper {paper!r} has no experiment(s) {unknown}; it has {', '.join(table)}")
    count = f"{len(names)} experiment{'s' if len(names) != 1 else ''}"
    expected = f" (measured: {runtime(paper, quick)})" if set(names) == set(table) else ""
    results = {}
    with Progress(len(names), f"claims {paper}", progress, unit="experiments", eta=False,
                  announce=f"claims {paper}{' --quick' if quick else ''}: {count}{expected}") as bar:
        computed = iter(results_of(names) if results_of is not None else (table[n].run(quick) for n in names))
        for name in names:
            bar.note(name)
            result = next(computed)
            results[name] = result
            if plots is not None and result.series:
                Path(plots).mkdir(parents=True, exist_ok=True)
                result.plot(Path(plots) / f"{paper}-{name}.png")
            if not as_json:
                with bar.hidden():
                    out(result.markdown())
            bar.update(1)
    if as_json:
        out(json.dumps({name: r.to_json() for name, r in results.items()}, indent=1))
    return results
