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

__all__ = ["Experiment", "Result", "PAPERS", "experiments", "run", "slope"]

PAPERS = {
    "seeds": "diffsolve.claims.seeds",
    "accelerated": "diffsolve.claims.accelerated",
    "rtk": "diffsolve.claims.rtk",
    "pc": "diffsolve.claims.pc",
}


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

    def plot(self, path) -> Path:
        """Log-log plot of ``series`` saved as PNG (needs matplotlib: ``pip install 'diffsolve[plot]'``)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            import matplotlib.ticker
        except ImportError:
            raise DiffsolveError("plotting needs matplotlib: pip install 'diffsolve[plot]'") from None
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        for i, (label, (x, y)) in enumerate(self.series.items()):  # past ten colours: dashed, square markers
            ax.loglog(x, y, "o-" if i < 10 else "s--", ms=3.5, label=label)
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel(self.ylabel)
        ax.set_title(textwrap.fill(self.title, 70), fontsize=9)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


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


def run(paper: str, only=None, quick: bool = False, plots=None, as_json: bool = False, out=print):
    """Run the experiments of ``paper`` (``only``: names), print markdown (or JSON), save plots into ``plots``."""
    table = experiments(paper)
    names = list(table) if not only else list(only)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise DiffsolveError(f"paper {paper!r} has no experiment(s) {unknown}; it has {', '.join(table)}")
    results = {}
    for name in names:
        result = table[name].run(quick)
        results[name] = result
        if plots is not None and result.series:
            Path(plots).mkdir(parents=True, exist_ok=True)
            result.plot(Path(plots) / f"{paper}-{name}.png")
        if not as_json:
            out(result.markdown())
    if as_json:
        out(json.dumps({name: r.to_json() for name, r in results.items()}, indent=1))
    return results
