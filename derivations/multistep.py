"""Derive, check and regenerate the multistep exponential integrators; write docs/derivations/multistep.md.

    python derivations/multistep.py

Every tableau is derived by ``derive_multistep`` (docs/algorithms/exponential_integrators.md §8): Lagrange weights
integrated against the moment functions, symbolic exactness / order / defect / reduction checks, the series check
on a nonlinear test problem and, for SDE tableaux, the noise covariance check.  The catalog modules of the family are then regenerated
(the same files as ``python -m diffsolve.codegen`` writes).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffsolve.codegen import catalog  # noqa: E402
from diffsolve.symbolic.latex import document, tableau_markdown  # noqa: E402
from diffsolve.symbolic.multistep import derive_multistep  # noqa: E402

INTRO = """
Multistep exponential integrators of any order $k$ (Lu et al. 2022b, arXiv 2211.01095;
docs/algorithms/exponential_integrators.md §3): one model call per step, $k-1$ history values $H_m = F_{n-m}$.
The weights are
$W_j = \\sum_q c_{jq}\\, q!\\, \\psi_q(Z)$ with $c_{jq}$ the coefficients of the Lagrange basis through the nodes
$u_0 = 0$, $u_j = -(r_1 + \\dots + r_j)$, and $Z = (1+\\eta)h$ (data) or $h$ (noise prediction, $\\tilde\\psi$).
The "published" variants replace $\\psi_1 \\to \\psi_0/2$ ($k = 2$) and $\\psi_2 \\to \\psi_2/2$ ($k = 3$) in the
derivative form (docs/algorithms/exponential_integrators.md §3.6).
"""

TABLEAUX = [
    *[(k, "data", False, "exact") for k in range(1, 6)],
    (2, "data", False, "published"),
    (3, "data", False, "published"),
    *[(k, "eps", False, "exact") for k in range(1, 4)],
    *[(k, "data", True, "exact") for k in range(1, 4)],
    (2, "data", True, "published"),
    (3, "data", True, "published"),
    *[(k, "eps", True, "exact") for k in (1, 2)],
]


def main():
    sections = []
    for k, prediction, sde, variant in TABLEAUX:
        tab = derive_multistep(k, prediction, sde, variant)
        print(f"derived and checked {tab.name} ({variant}, {prediction}): {', '.join(tab.checked)}")
        sections.append(tableau_markdown(tab))
    out = ROOT / "docs" / "derivations" / "multistep.md"
    text = document("Multistep exponential integrators (derived)", INTRO, sections, "python derivations/multistep.py")
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    keys = [key for key in catalog.CATALOG if key[0] == "multistep"]
    for path in catalog.regenerate(keys=keys):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
