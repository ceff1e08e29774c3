"""Emit a generated module per tableau, content-hashed, and load it (DESIGN.md §1, spec §8 step 8).

``module_source(tab, regenerate=...)`` returns the text of a self-contained module (imports: math, numba):

    NAME, FAMILY, VARIANT, K, PREDICTION, SDE, STAGES, HISTORY, NOISES, PARAMS, DEFAULTS, ORDER,
    DETERMINISTIC_ORDER, GENERIC_ORDER, ORDER_CONDITION, STRONG_ORDER, STOCHASTIC, NFE_PER_STEP, KEEP,
    GENERATOR_VERSION, SYMPY_VERSION, CONTENT_HASH
    fractions(params) -> tuple of S floats (c_0 = 0.0, ...);          fractions_jit = numba.njit(cache=True)(fractions)
    fill(h, r, log_alpha, log_sigma, params, A, B, E, C)               fill_jit = numba.njit(cache=True)(fill)

``fill`` is plain Python (the NumPy-backend twin); the psi helpers are ``register_jitable`` so the same source
compiles.  The content hash covers (family, k, prediction, sde, variant, generator version, printed body); the
header records the SymPy version and the regeneration command but is not hashed.

``generate(tab, directory=None)`` writes ``<name>-<variant>-<prediction>-<hash16>.py`` atomically (temp file in the
same directory + ``os.replace``; the name is a function of the content, so concurrent writers agree) into
``directory`` or the user cache (``cache_dir()``); ``load(path)`` imports it under a unique module name.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import sympy as sp

from ..cache import cache_dir, write_atomic
from ..cache import load_module as load
from ..symbolic import symbols as sy
from .printer import INDENT, print_step

__all__ = [
    "GENERATOR_VERSION",
    "module_source",
    "content_hash",
    "module_stem",
    "generate",
    "load",
    "cache_dir",
    "write_atomic",
]

GENERATOR_VERSION = "1"
DEFAULT_COMMAND = "diffsolve.codegen.emit.generate({derivation})"


def _literal(value) -> str:
    if isinstance(value, sp.Basic):
        value = float(value) if value.is_number else str(value)
    return repr(value)


def _constants(tab) -> list[str]:
    params = tuple(sy.NAMES[p] for p in tab.params)
    defaults = tuple(float(d) for d in tab.defaults)
    condition = tuple((sy.NAMES[p], float(v)) for p, v in tab.order_condition)
    values = [
        ("NAME", tab.name),
        ("FAMILY", tab.family),
        ("VARIANT", tab.variant),
        ("K", tab.k),
        ("PREDICTION", tab.prediction),
        ("SDE", tab.sde),
        ("STAGES", tab.stages),
        ("HISTORY", tab.history),
        ("NOISES", tab.noises),
        ("PARAMS", params),
        ("DEFAULTS", defaults),
        ("ORDER", tab.order),
        ("DETERMINISTIC_ORDER", tab.deterministic_order),
        ("GENERIC_ORDER", tab.generic_order or tab.deterministic_order),
        ("ORDER_CONDITION", condition),
        ("STRONG_ORDER", tab.strong_order),
        ("STOCHASTIC", tab.stochastic),
        ("NFE_PER_STEP", tab.nfe_per_step),
        ("KEEP", tab.keep),
        ("GENERATOR_VERSION", GENERATOR_VERSION),
    ]
    return [f"{name} = {_literal(value)}" for name, value in values]


def _body(tab) -> str:
    printed = print_step(tab)
    lines = ["import math", "", "import numba", "from numba.extending import register_jitable", ""]
    lines += _constants(tab)
    lines += ["", ""]
    for helper in printed.helpers:
        lines += [helper, "", ""]
    # fractions
    lines.append("def fractions(params):")
    lines.append(f'{INDENT}"""Stage fractions c_0 = 0, c_1, ... of the step (lam_n + c_p h), from the parameters."""')
    fraction_text = " ".join(printed.fraction_lines)
    used = [ln for ln in printed.param_lines if re.search(rf"\b{ln.split(' = ')[0]}\b", fraction_text)]
    lines += [INDENT + ln for ln in used]
    lines.append(f"{INDENT}return ({', '.join(printed.fraction_lines)},)")
    lines += ["", "", "fractions_jit = numba.njit(cache=True)(fractions)", "", ""]
    # fill
    lines.append("def fill(h, r, log_alpha, log_sigma, params, A, B, E, C):")
    lines.append(
        f'{INDENT}"""Fill A (N,S+1), B (N,S+1,S), E (N,S+1,M), C (N,S+1,Q) in place, one row per step, from\n'
        f"{INDENT}h (N,), r (N,M), log_alpha/log_sigma (N,S+1) at the step's nodes and params (P,).\"\"\""
    )
    lines += [INDENT + ln for ln in printed.param_lines]
    lines.append(f"{INDENT}for n in range(h.shape[0]):")
    loads = ["hn = h[n]"]
    loads += [f"r{j} = r[n, {j - 1}]" for j in range(1, tab.history + 1)]
    loads += [f"la{p} = log_alpha[n, {p}]" for p in range(tab.stages + 1)]
    loads += [f"ls{p} = log_sigma[n, {p}]" for p in range(tab.stages + 1)]
    row = "\n".join(printed.row_lines)
    loads = [ln for ln in loads if re.search(rf"\b{ln.split(' = ')[0]}\b", row)]
    lines += [INDENT * 2 + ln for ln in loads + list(printed.row_lines)]
    lines += ["", "", "fill_jit = numba.njit(cache=True)(fill)", ""]
    return "\n".join(lines)


def content_hash(tab, body: str) -> str:
    """sha256 over (family, k, prediction, sde, variant, generator version, printed body)."""
    key = f"{tab.family}\n{tab.k}\n{tab.prediction}\n{tab.sde}\n{tab.variant}\n{GENERATOR_VERSION}\n"
    return hashlib.sha256((key + body).encode()).hexdigest()


def _docstring(tab) -> str:
    kind = "SDE" if tab.sde else "ODE"
    lines = [
        f"{tab.name} ({tab.family}, {tab.variant}, {tab.prediction} prediction, {kind}): "
        f"order {tab.order}, {tab.nfe_per_step} NFE/step.",
        "",
        f"Reference: {tab.reference}.",
    ]
    if tab.notes:
        lines += ["", tab.notes]
    lines += ["", "Generated from the SymPy derivation; see diffsolve.symbolic and docs/derivations/."]
    return '"""' + "\n".join(lines) + '\n"""'


def module_source(tab, regenerate: str | None = None) -> str:
    """The full module text (DO-NOT-EDIT header, docstring, constants, helpers, fractions, fill)."""
    body = _body(tab)
    digest = content_hash(tab, body)
    command = regenerate or DEFAULT_COMMAND.format(derivation=tab.derivation or tab.name)
    header = [
        "# DO NOT EDIT: generated by diffsolve.codegen (generator version " + GENERATOR_VERSION + ").",
        f"# Regenerate: {command}",
        f"# SymPy version: {sp.__version__}",
        f"# Content hash: {digest}",
    ]
    marker = f"GENERATOR_VERSION = {GENERATOR_VERSION!r}\n"
    body = body.replace(marker, marker + f"SYMPY_VERSION = {sp.__version__!r}\nCONTENT_HASH = {digest!r}\n", 1)
    return "\n".join(header) + "\n" + _docstring(tab) + "\n\n" + body


def module_stem(tab, digest: str | None = None) -> str:
    """A readable module name: name_variant_prediction[_hash16], identifier-safe."""
    stem = f"{tab.name}_{tab.variant}_{tab.prediction}"
    if digest:
        stem += "_" + digest[:16]
    return re.sub(r"[^0-9a-zA-Z_]", "_", stem)


def generate(tab, directory: str | os.PathLike | None = None) -> Path:
    """Write the module of ``tab`` into ``directory`` (default: the user cache) and return its path.

    The file name carries the content hash, so an existing file with that name is already up to date and is
    reused; otherwise it is written atomically (safe under concurrent processes).
    """
    directory = Path(directory) if directory is not None else cache_dir()
    text = module_source(tab)
    digest = re.search(r"^# Content hash: ([0-9a-f]{64})$", text, re.M).group(1)
    path = directory / (module_stem(tab, digest) + ".py")
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return path
    return write_atomic(path, text)
