"""Derive, check and regenerate the singlestep solvers (DPM-Solver-2/3, DPM-Solver++(2S)/(3S)); write
docs/derivations/singlestep.md.

    python derivations/singlestep.py

Each row of a singlestep tableau integrates the Lagrange interpolant of the stage outputs it uses over its own
sub-interval (spec §4).  The 3S order condition c2 = 2/3 is derived from the series of the local error.  SEEDS
(the same stages with eta and correlated stage noises) is derived for the documentation; it is generated on
demand, not shipped.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffsolve.codegen import catalog  # noqa: E402
from diffsolve.symbolic.latex import document, tableau_markdown  # noqa: E402
from diffsolve.symbolic.singlestep import derive_singlestep  # noqa: E402

INTRO = """
Singlestep exponential integrators (specs/exponential_integrators.md §4): stage $i$ at $\\lambda_n + c_i h$;
every row integrates the interpolant of the stage outputs it uses exactly ("interp") or with the published
replacement $\\psi_1 \\to \\psi_0/2$ (2S output) / the linear interpolant through $F_0, F_2$ (3S output).
NFE per step = order. The 3S order condition is derived from the local-error series and recorded on the tableau.
"""

TABLEAUX = [
    *[
        (k, prediction, variant, False)
        for k in (2, 3)
        for prediction in ("data", "eps")
        for variant in ("published", "interp")
    ],
    *[(k, prediction, "published", True) for k in (2, 3) for prediction in ("data", "eps")],
]


def main():
    sections = []
    for k, prediction, variant, sde in TABLEAUX:
        tab = derive_singlestep(k, prediction, variant, sde)
        print(f"derived and checked {tab.name} ({variant}, {prediction}): {', '.join(tab.checked)}")
        sections.append(tableau_markdown(tab))
    out = ROOT / "docs" / "derivations" / "singlestep.md"
    text = document("Singlestep exponential integrators (derived)", INTRO, sections, "python derivations/singlestep.py")
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    keys = [key for key in catalog.CATALOG if key[0] == "singlestep"]
    for path in catalog.regenerate(keys=keys):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
