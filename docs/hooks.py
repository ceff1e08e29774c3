"""MkDocs hooks: pages rendered from the library itself at build time, held in memory (nothing is written into
docs/).

* ``reference/solvers.md``: the solver table, from what ``diffsolve solvers --json`` prints;
* ``reference/coefficients.md``: the coefficients of a few registered solvers, re-derived by SymPy from their
  catalog keys and printed as LaTeX (``diffsolve.symbolic.latex``), with the calculus of a user schedule;
* ``index.md``: its ``<!-- README -->`` marker becomes README.md, with links into docs/ made site-relative;
* in the API pages and the home page, Sphinx roles (``:class:`X```) are shown as plain code and mentions of
  pages (``docs/X.md``) become links.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
README_MARKER = "<!-- README -->"
COEFFICIENT_SOLVERS = ("ddim", "dpmpp-2m", "dpmpp-3m", "seeds-1")  # registered names whose tableaux are shown
SCHEDULE = {"alpha": "exp(-5*t**2 - t/20)", "sigma": "sqrt(1 - exp(-10*t**2 - t/10))"}  # README's user schedule
_DOC_PATH = re.compile(r"docs/([\w/.-]+\.md)")
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):<code>(~?)([^<]*)</code>")
_HTML_DOC_PATH = re.compile(r"(?<![\w/.-])docs/([\w/.-]+\.md)(?!</a>)")  # not the text of a link already


def _cli_json(*argv) -> dict:
    """What ``diffsolve ARGV --json`` prints, parsed (run in-process)."""
    from diffsolve.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*argv, "--json"])
    if code:
        raise RuntimeError(f"diffsolve {' '.join(argv)} --json exited with {code}")
    return json.loads(out.getvalue())


def _linked(text: str) -> str:
    """Mentions ``docs/X.md`` of existing pages as links, from a page one folder below docs/."""
    return _DOC_PATH.sub(lambda m: f"[{m.group(1)}](../{m.group(1)})" if (ROOT / "docs" / m.group(1)).is_file()
                         else m.group(0), text)


def _cell(value) -> str:
    return _linked(("–" if value is None else str(value)).replace("|", r"\|"))


def solvers_page() -> str:
    listing = _cli_json("solvers")
    lines = [
        "# Solvers",
        "",
        "Every registered solver and variant, as `diffsolve solvers --json` lists them (rendered from the registry "
        "when the site is built). *order*: global order of the ODE solvers, weak order of the stochastic ones "
        "(\"measured\": found by the order studies, not proven); Langevin samplers have none (–), their NFE/step "
        "counts one inner iteration (`pc-song`: one grid step). Pick a variant with `get_solver(name, "
        "variant=...)` or `NAME:VARIANT` on the command line.",
        "",
        "| name | variant | family | order | strong order | NFE/step | prediction | reference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in listing["solvers"]:
        order = row["order"] if row["order"] is None or not row["uncertain"] else f"{row['order']} (measured)"
        cells = [f"`{row['name']}`", row["variant"], row["family"], order, row["strong_order"], row["nfe_per_step"],
                 row["prediction"], row["reference"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "Parameterised names that `get_solver` resolves (`{k}`: any order, derived on demand): "
              + ", ".join(f"`{p}`" for p in listing["patterns"]) + ".", ""]
    return "\n".join(lines)


def coefficients_page() -> str:
    import sympy as sp

    import diffsolve as ds
    from diffsolve.codegen.catalog import derive
    from diffsolve.symbolic.latex import document, tableau_markdown

    sections = []
    for name in COEFFICIENT_SOLVERS:
        tab = derive(ds.get_solver(name).extra["key"])
        sections.append(tableau_markdown(tab, title=f"`{name}`" + ("" if tab.name == name else f" = `{tab.name}`")))
    calc = ds.Schedule.from_expr(**SCHEDULE).calculus
    lam = {s: r"\lambda" for s in calc.t_of_lam.free_symbols if s.name == "lam"}
    sections.append("\n".join([
        "### Schedule calculus of a user schedule",
        "",
        f"`Schedule.from_expr(alpha=\"{SCHEDULE['alpha']}\", sigma=\"{SCHEDULE['sigma']}\")` (the README's): "
        "SymPy derives, once, the half log-SNR, its inverse, the drift and the diffusion that every solver above "
        "evaluates on a grid.",
        "",
        "$$",
        r"\begin{aligned}",
        rf"\lambda(t) &= {sp.latex(calc.lam)} \\",
        rf"t(\lambda) &= {sp.latex(calc.t_of_lam, symbol_names=lam)} \\",
        rf"f(t) &= {sp.latex(calc.f)} \\",
        rf"g^2(t) &= {sp.latex(calc.g2)} \\",
        r"\end{aligned}",
        "$$",
        "",
    ]))
    intro = (
        "The coefficients of the one-step form ([tableau](../tableau.md)) of "
        + ", ".join(f"`{n}`" for n in COEFFICIENT_SOLVERS)
        + ": each tableau is re-derived and symbolically checked by SymPy from the catalog key the registered "
        "solver runs (`ds.get_solver(name).extra['key']`) when this site is built. The generated modules that the "
        "samplers execute are printed from the same derivation; every shipped family is on the derivation pages "
        "([multistep](../derivations/multistep.md), [singlestep](../derivations/singlestep.md)). "
        "`diffsolve derive FAMILY --order K --latex` prints the coefficients of any order."
    )
    page = document("Derived coefficients", intro, sections, "mkdocs build (docs/hooks.py)")
    return _linked(page)


GENERATED = {"reference/solvers.md": solvers_page, "reference/coefficients.md": coefficients_page}


def _site_link(match) -> str:
    """A README link ``](docs/X)`` as a link of the docs site; a folder links its first page."""
    target = ROOT / "docs" / match.group(1)
    rel = match.group(1)
    if target.is_dir():
        rel = str(min(target.glob("*.md")).relative_to(ROOT / "docs"))
    return f"]({rel}{match.group(2) or ''})"


def readme_markdown() -> str:
    return re.sub(r"\]\(docs/([^)#\s]+?)/?(#[^)\s]*)?\)", _site_link, (ROOT / "README.md").read_text(encoding="utf-8"))


def on_files(files, config):
    for uri, render in GENERATED.items():
        files.append(File.generated(config, uri, content=render()))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "index.md":
        return markdown.replace(README_MARKER, readme_markdown())
    return markdown


def on_page_content(html, page, config, files):
    """Docstring text (API pages) and README text (home page): Sphinx roles as plain code, every mention of an
    existing page ``docs/X.md`` as a link to it."""
    if not (page.file.src_uri.startswith("api/") or page.file.src_uri == "index.md"):
        return html

    def link(match):
        target = files.get_file_from_path(match.group(1))
        return match.group(0) if target is None else f'<a href="{target.url_relative_to(page.file)}">{match.group(0)}</a>'

    html = _ROLE.sub(lambda m: f"<code>{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}</code>", html)
    return _HTML_DOC_PATH.sub(link, html)
