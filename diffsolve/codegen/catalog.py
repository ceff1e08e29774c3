"""The shipped catalog of generated solver modules in ``diffsolve/_generated`` and its regeneration command.

    python -m diffsolve.codegen.catalog            # regenerate every module and the index (byte-identical reruns)
    python -m diffsolve.codegen.catalog --check    # exit 1 and name the stale files, write nothing

Keys are (family, k, prediction, sde, variant) = ``SymbolicTableau.key``; ``derive(key)`` re-derives a tableau
through the family registry (and checks that the tableau carries that key).  Besides the DPM-Solver(++) tableaux the
catalog ships the paper solvers of :mod:`diffsolve.solvers.papers`, so their first use needs no SymPy:

    SEEDS-k (k = 1, 2, 3)   ("singlestep", k, prediction, True, variant[-mirrored]): variant "published" (combine
                            1, 2a, 3a) or "interp" (2b, 3b), data/eps prediction, exact/mirrored stage noise
    accelerated             ("accelerated", k, "eps", False, variant): accel-ddim "repo" / "phi-psi" /
                            "phi-psi-startup", accel-ddpm "readme" / "ddpm-type", accel-sde "startup" / "base" /
                            "correction-ratio" / "correction-constant" (start-up and base do not depend on the
                            momentum rule)
Regeneration is pinned to one SymPy version (``PINNED_SYMPY``): with another version the command refuses unless
``--force`` is given, and the staleness test compares coefficient values instead of text.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sympy as sp

from ..symbolic import accelerated as acc
from ..symbolic.euler import derive_euler_maruyama
from ..symbolic.multistep import derive_multistep
from ..symbolic.seeds import COMBINES as SEEDS_COMBINES
from ..symbolic.seeds import NOISE_RULES as SEEDS_NOISE_RULES
from ..symbolic.singlestep import derive_singlestep
from .emit import GENERATOR_VERSION, helper_module_source, module_source, module_stem, write_atomic

__all__ = ["CATALOG", "FAMILIES", "PINNED_SYMPY", "COMMAND", "GENERATED_DIR", "derive", "render", "regenerate", "main"]

PINNED_SYMPY = "1.14.0"
COMMAND = "python -m diffsolve.codegen.catalog"
GENERATED_DIR = Path(__file__).resolve().parent.parent / "_generated"

MIRRORED = "-mirrored"  # variant suffix of the stochastic singlestep (SEEDS) tableaux with the authors' noise rule


def _derive_singlestep(k, prediction, sde, variant):
    """Singlestep tableaux; ``<variant>-mirrored`` (SDE only) selects the mirrored stage-noise rule (SEEDS)."""
    noise = "exact"
    if sde and variant.endswith(MIRRORED):
        variant, noise = variant[: -len(MIRRORED)], "mirrored"
    return derive_singlestep(k, prediction, variant, sde, noise)


# accelerated-family variant -> derivation (Li et al. accel-ddim / accel-ddpm, accel-sde reconstruction)
ACCELERATED = {
    "repo": acc.derive_accel_ddim,
    "phi-psi": acc.derive_accel_ddim_phi_psi,
    "phi-psi-startup": acc.derive_accel_ddim_phi_psi_startup,
    **{v: (lambda v=v: acc.derive_accel_ddpm(v)) for v in acc.ACCEL_DDPM_VARIANTS},
    # start-up and base steps do not depend on the momentum rule (only the correction does)
    "startup": lambda: acc.derive_accel_sde("startup"),
    "base": lambda: acc.derive_accel_sde("base"),
    **{f"correction-{m}": (lambda m=m: acc.derive_accel_sde("correction", m)) for m in acc.ACCEL_SDE_MOMENTA},
}


def _derive_accelerated(k, prediction, sde, variant):
    try:
        builder = ACCELERATED[variant]
    except KeyError:
        raise ValueError(f"unknown accelerated variant {variant!r}; expected one of {sorted(ACCELERATED)}") from None
    return builder()


FAMILIES = {
    "multistep": lambda k, prediction, sde, variant: derive_multistep(k, prediction, sde, variant),
    "singlestep": _derive_singlestep,
    "euler-maruyama": lambda k, prediction, sde, variant: derive_euler_maruyama(prediction, variant),
    "accelerated": _derive_accelerated,
}

CATALOG = (
    *[("multistep", k, "data", False, "exact") for k in range(1, 6)],
    *[("multistep", k, "data", False, "published") for k in (2, 3)],
    *[("multistep", k, "eps", False, "exact") for k in range(1, 4)],
    *[("multistep", k, "data", True, "exact") for k in range(1, 4)],
    *[("multistep", k, "data", True, "published") for k in (2, 3)],
    *[("multistep", k, "eps", True, "exact") for k in (1, 2)],
    *[
        ("singlestep", k, prediction, False, variant)
        for k in (2, 3)
        for prediction in ("eps", "data")
        for variant in ("published", "interp")
    ],
    ("euler-maruyama", 1, "data", True, "exact"),
    # SEEDS-1/2/3 (diffsolve.symbolic.seeds.derive_seeds): every combine form, prediction and noise rule
    *[
        ("singlestep", k, prediction, True, variant + ("" if noise == "exact" else MIRRORED))
        for k in sorted(SEEDS_COMBINES)
        for variant in dict.fromkeys(SEEDS_COMBINES[k].values())
        for prediction in ("data", "eps")
        for noise in SEEDS_NOISE_RULES
    ],
    # accel-ddim, accel-ddpm, accel-sde (diffsolve.symbolic.accelerated)
    ("accelerated", 2, "eps", False, "repo"),
    ("accelerated", 2, "eps", False, "phi-psi"),
    ("accelerated", 2, "eps", False, "phi-psi-startup"),
    *[("accelerated", 1, "eps", False, v) for v in acc.ACCEL_DDPM_VARIANTS],
    ("accelerated", 1, "eps", False, "startup"),
    ("accelerated", 2, "eps", False, "base"),
    *[("accelerated", 2, "eps", False, f"correction-{m}") for m in acc.ACCEL_SDE_MOMENTA],
)


def derive(key: tuple):
    """The checked SymbolicTableau of a catalog key (family, k, prediction, sde, variant)."""
    family, k, prediction, sde, variant = key
    try:
        builder = FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown family {family!r}; expected one of {sorted(FAMILIES)}") from None
    tab = builder(k, prediction, sde, variant)
    if tab.key != tuple(key):
        raise ValueError(f"catalog key {tuple(key)!r} derives a tableau with key {tab.key!r}")
    return tab


def _index_source(stems: dict) -> str:
    lines = [
        f"# DO NOT EDIT: generated by diffsolve.codegen (generator version {GENERATOR_VERSION}).",
        f"# Regenerate: {COMMAND}",
        f"# SymPy version: {sp.__version__}",
        '"""Index of the shipped generated solver modules: (family, k, prediction, sde, variant) -> module."""',
        "",
        "import importlib",
        "",
        "INDEX = {",
    ]
    lines += [f"    {key!r}: {stem!r}," for key, stem in stems.items()]
    lines += [
        "}",
        "",
        "",
        "def load(key):",
        '    """Import the generated module of ``key`` (a tuple (family, k, prediction, sde, variant))."""',
        "    try:",
        "        name = INDEX[tuple(key)]",
        "    except KeyError:",
        "        raise KeyError(",
        '            f"no shipped module for {key!r}; shipped keys: {sorted(INDEX)}; generate others with "',
        '            "diffsolve.codegen.emit.generate"',
        "        ) from None",
        '    return importlib.import_module(f"{__name__}.{name}")',
        "",
    ]
    return "\n".join(lines)


def render(keys=CATALOG) -> dict:
    """{file name: text} of the catalog modules of ``keys`` and the index ``__init__.py`` (always the full
    catalog, so regenerating one family keeps the index whole)."""
    if len(set(CATALOG)) != len(CATALOG):
        raise ValueError("the catalog lists a key twice")
    stems = {key: module_stem(derive(key)) for key in CATALOG}
    if len(set(stems.values())) != len(stems):
        raise ValueError("two catalog keys map to the same module name")
    files = {stems[key] + ".py": module_source(derive(key), regenerate=COMMAND) for key in keys}
    files["__init__.py"] = _index_source(stems)
    files["psi.py"] = helper_module_source()
    return files


def regenerate(directory: Path = GENERATED_DIR, keys=CATALOG) -> list[Path]:
    """Write every catalog file (atomically) and return the paths that changed."""
    changed = []
    for name, text in render(keys).items():
        path = Path(directory) / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text)
            changed.append(path)
    return changed


def stale(directory: Path = GENERATED_DIR, keys=CATALOG) -> list[str]:
    """Names of the catalog files whose text differs from a fresh derivation (or are missing)."""
    out = []
    for name, text in render(keys).items():
        path = Path(directory) / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list stale files and exit 1 if any; write nothing")
    parser.add_argument("--force", action="store_true", help=f"regenerate with a SymPy other than {PINNED_SYMPY}")
    parser.add_argument("--directory", type=Path, default=GENERATED_DIR)
    args = parser.parse_args(argv)
    if sp.__version__ != PINNED_SYMPY and not (args.force or args.check):
        print(
            f"SymPy {sp.__version__} is installed but the catalog is pinned to {PINNED_SYMPY}: install "
            f"sympy=={PINNED_SYMPY} or pass --force (and update PINNED_SYMPY)",
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
