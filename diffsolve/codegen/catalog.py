"""The shipped catalog of generated solver modules in ``diffsolve/_generated``: keys, derivations, the index.

    python -m diffsolve.codegen            # regenerate every module, the index and schedules.py (byte-identical)
    python -m diffsolve.codegen --check    # exit 1 and name the stale files, write nothing

Keys are (family, k, prediction, sde, variant) = ``SymbolicTableau.key``; ``derive(key)`` re-derives a tableau
through the family registry (and checks that the tableau carries that key).  Besides the DPM-Solver(++) tableaux the
catalog ships the paper solvers (:mod:`diffsolve.solvers.seeds`, :mod:`diffsolve.solvers.accelerated`), so their
first use needs no SymPy:

    SEEDS-k (k = 1, 2, 3)   ("singlestep", k, prediction, True, variant[-mirrored]): variant "published" (combine
                            1, 2a, 3a) or "interp" (2b, 3b), data/eps prediction, exact/mirrored stage noise
    accelerated             ("accelerated", k, "eps", False, variant): accel-ddim "repo" / "phi-psi" /
                            "phi-psi-startup", accel-ddpm "readme" / "ddpm-type", accel-sde "startup" / "base" /
                            "correction-ratio" / "correction-constant" (start-up and base do not depend on the
                            momentum rule)

The index ``diffsolve/_generated/__init__.py`` holds INDEX (key -> module) and the name tables of
:mod:`diffsolve.codegen.names` (SOLVERS, SEEDS_VARIANTS, MULTISTEP_VARIANTS).  Regeneration is pinned to one SymPy
version (``PINNED_SYMPY``): with another version the command refuses unless ``--force`` is given, and the
staleness test compares coefficient values instead of text.
"""

from __future__ import annotations

import sys
from pathlib import Path

import sympy as sp

from ..symbolic import accelerated as acc
from ..symbolic import unipc
from ..symbolic.euler import derive_euler_maruyama
from ..symbolic.multistep import derive_multistep
from ..symbolic.singlestep import derive_singlestep
from . import names
from .emit import CATALOG_COMMAND, HEADER, helper_module_source, module_source, module_stem, write_atomic

__all__ = ["CATALOG", "FAMILIES", "PINNED_SYMPY", "COMMAND", "GENERATED_DIR", "derive", "render", "regenerate",
           "stale", "main"]

PINNED_SYMPY = "1.14.0"
COMMAND = CATALOG_COMMAND  # written into every generated header
GENERATED_DIR = Path(__file__).resolve().parent.parent / "_generated"

MIRRORED = names.MIRRORED  # variant suffix of the SEEDS tableaux with the authors' (mirrored) noise rule


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
    "unipc": lambda k, prediction, sde, variant: unipc.derive_unipc(k, prediction, variant),
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
    *dict.fromkeys(names.seeds_variants().values()),
    # accel-ddim, accel-ddpm, accel-sde (diffsolve.symbolic.accelerated)
    ("accelerated", 2, "eps", False, "repo"),
    ("accelerated", 2, "eps", False, "phi-psi"),
    ("accelerated", 2, "eps", False, "phi-psi-startup"),
    *[("accelerated", 1, "eps", False, v) for v in acc.ACCEL_DDPM_VARIANTS],
    ("accelerated", 1, "eps", False, "startup"),
    ("accelerated", 2, "eps", False, "base"),
    *[("accelerated", 2, "eps", False, f"correction-{m}") for m in acc.ACCEL_SDE_MOMENTA],
    # UniPC (diffsolve.symbolic.unipc), data prediction: the solved levels of unipc-{1,2,3} with and without the
    # corrector, and the published (bh2) ones wherever they differ; bh1, eps and k > 3 are derived on demand
    *[("unipc", p, "data", False, variant) for p, variant in unipc.tableaux(3, rules=("exact", "published"))],
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


def _table_lines(name: str, table: dict, comment: str) -> list[str]:
    lines = ["", *(f"# {line}" for line in comment.splitlines()), f"{name} = {{"]
    for key, value in table.items():
        if name == "SOLVERS":  # (family, levels, clip): one level per line
            family, levels, clip = value
            lines.append(f"    {key!r}: ({family!r}, (")
            lines += [f"        {level!r}," for level in levels]
            lines.append(f"    ), {clip!r}),")
        else:
            lines.append(f"    {key!r}: {value!r},")
    return lines + ["}"]


def _index_source(stems: dict) -> str:
    lines = [
        HEADER,
        f"# Regenerate: {COMMAND}",
        f"# SymPy version: {sp.__version__}",
        '"""The shipped catalog: catalog key (family, k, prediction, sde, variant) -> generated module (INDEX), and the',
        "solver names that use them (SOLVERS, SEEDS_VARIANTS, MULTISTEP_VARIANTS; see diffsolve.codegen.names).",
        "",
        "Plain data, no SymPy: the solver registry (diffsolve.solvers) reads its names and catalog keys here; a key",
        'missing from INDEX is generated on demand into the user cache (diffsolve.solvers.modules)."""',
        "",
        "import importlib",
        "",
        "INDEX = {",
    ]
    lines += [f"    {key!r}: {stem!r}," for key, stem in stems.items()]
    lines += ["}"]
    lines += _table_lines("SOLVERS", names.solvers(CATALOG),
                          "registered solver \"name\" or \"name:variant\" -> (registry family, catalog keys of the warm-up\n"
                          "levels 0..M -- the last is the full method --, catalog key of the norm-capped correction or None)")
    lines += _table_lines("SEEDS_VARIANTS", names.seeds_variants(),
                          "SEEDS-k (k, combine, prediction, stage noise) -> catalog key; per k the paper's combine first")
    lines += _table_lines("MULTISTEP_VARIANTS", names.multistep_variants(),
                          "multistep variant -> the orders k it exists for (None: every k)")
    lines += [
        "",
        "",
        "def load(key):",
        '    """Import the generated module of ``key`` (a tuple (family, k, prediction, sde, variant))."""',
        "    try:",
        "        name = INDEX[tuple(key)]",
        "    except KeyError:",
        "        raise KeyError(",
        '            f"no shipped module for {key!r}; shipped keys: {sorted(INDEX)}; generate others with "',
        '            "diffsolve.solvers.modules.tableau_module(*key)"',
        "        ) from None",
        '    return importlib.import_module(f"{__name__}.{name}")',
        "",
    ]
    return "\n".join(lines)


def _check_names() -> None:
    """Every catalog key a registered name or SEEDS variant uses is shipped (so no lookup of them derives)."""
    used = [key for _, levels, clip in names.solvers(CATALOG).values() for key in levels + ((clip,) if clip else ())]
    used += list(names.seeds_variants().values())
    missing = sorted(set(used) - set(CATALOG), key=str)
    if missing:
        raise ValueError(f"registered solver names use catalog keys that the catalog lacks: {missing}")


def render(keys=CATALOG) -> dict:
    """{file name: text} of the catalog modules of ``keys`` and the index ``__init__.py`` (always the full
    catalog, so regenerating one family keeps the index whole)."""
    if len(set(CATALOG)) != len(CATALOG):
        raise ValueError("the catalog lists a key twice")
    stems = {key: module_stem(derive(key)) for key in CATALOG}
    if len(set(stems.values())) != len(stems):
        raise ValueError("two catalog keys map to the same module name")
    _check_names()
    files = {stems[key] + ".py": module_source(derive(key), regenerate=COMMAND) for key in keys}
    files["__init__.py"] = _index_source(stems)
    files["psi.py"] = helper_module_source()
    return files


def regenerate(directory: Path = GENERATED_DIR, keys=CATALOG, files: dict | None = None) -> list[Path]:
    """Write every catalog file of ``keys`` (or the given ``files``: {name: text}) atomically; return the paths
    that changed."""
    changed = []
    for name, text in (render(keys) if files is None else files).items():
        path = Path(directory) / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text)
            changed.append(path)
    return changed


def stale(directory: Path = GENERATED_DIR, keys=CATALOG, files: dict | None = None) -> list[str]:
    """Names of the catalog files (or of the given ``files``) whose text differs from a fresh derivation (or that
    are missing)."""
    out = []
    for name, text in (render(keys) if files is None else files).items():
        path = Path(directory) / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out


def main(argv=None) -> int:
    """``python -m diffsolve.codegen.catalog`` (kept as an alias): the same as ``python -m diffsolve.codegen``."""
    from .__main__ import main as regenerate_all

    return regenerate_all(argv)


if __name__ == "__main__":
    sys.exit(main())
