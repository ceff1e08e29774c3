"""``python -m diffsolve.codegen``: regenerate everything checked in under ``diffsolve/_generated``.

    python -m diffsolve.codegen            # every solver module, the index (name tables), psi.py, schedules.py, uld.py
    python -m diffsolve.codegen --check    # list the stale files and exit 1 if any; write nothing

Reruns are byte-identical.  Regeneration is pinned to one SymPy version (``catalog.PINNED_SYMPY``): with another
installed version it refuses unless ``--force`` is given (``--check`` always runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sympy as sp

from . import catalog, langevin, schedules
from .emit import CATALOG_COMMAND

__all__ = ["render", "stale", "regenerate", "main"]


def render() -> dict:
    """{file name in diffsolve/_generated: text} of every generated file."""
    return {**catalog.render(), schedules.NAME: schedules.module_source(), langevin.NAME: langevin.module_source()}


def stale(directory: Path = catalog.GENERATED_DIR) -> list[str]:
    """The generated files whose checked-in text differs from a fresh derivation (or that are missing)."""
    return catalog.stale(directory, files=render())


def regenerate(directory: Path = catalog.GENERATED_DIR) -> list[Path]:
    """Write every generated file whose text changed (atomically) and return their paths."""
    return catalog.regenerate(directory, files=render())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=CATALOG_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list stale files and exit 1 if any; write nothing")
    parser.add_argument("--force", action="store_true",
                        help=f"regenerate with a SymPy other than {catalog.PINNED_SYMPY}")
    parser.add_argument("--directory", type=Path, default=catalog.GENERATED_DIR,
                        help="where the generated files live (default: diffsolve/_generated)")
    args = parser.parse_args(argv)
    if sp.__version__ != catalog.PINNED_SYMPY and not (args.force or args.check):
        print(
            f"SymPy {sp.__version__} is installed but the catalog is pinned to {catalog.PINNED_SYMPY}: install "
            f"sympy=={catalog.PINNED_SYMPY} or pass --force (and update PINNED_SYMPY)",
            file=sys.stderr,
        )
        return 2
    if args.check:
        names = stale(args.directory)
        for name in names:
            print(f"stale: {name}")
        return 1 if names else 0
    for path in regenerate(args.directory):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
