"""Derive, check and regenerate the UniPC tableaux; write docs/derivations/unipc.md.

    python derivations/unipc.py

Every tableau is derived by ``derive_unipc`` (docs/algorithms/unipc.md): the paper's system R rho = b solved and
checked, the UniP / UniC updates as exponential quadrature (exactness, order, defect), the series check on a
nonlinear test problem; ``derive_unipc_pair`` (the paper's evaluation form, a check only) is series-checked to local
order k + 2.  The shipped catalog modules of the family are then regenerated (the same files as
``python -m diffsolve.codegen`` writes).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffsolve.codegen import catalog  # noqa: E402
from diffsolve.symbolic.latex import document, tableau_markdown  # noqa: E402
from diffsolve.symbolic.unipc import derive_unipc, derive_unipc_pair  # noqa: E402

INTRO = """
UniPC of any order $k$ (Zhao, Bai, Rao, Zhou, Lu, NeurIPS 2023, arXiv 2302.04867; docs/algorithms/unipc.md): one
model call per step, at the predicted point, which is the state.  A step adds the corrector's update of the previous
step, $\\Delta_n = K_n\\,(\\mathrm{UniC}_c - \\mathrm{UniP}_c)$ (they share the linear part), then predicts:
$x_{n+1} = \\mathrm{UniP}_p(x_n + \\Delta_n)$.  Variants: the suffix `-warmup` has corrector order $c = p - 1$ (the
warm-up levels), `-p` no corrector; "published" fixes $\\rho = 1/2$ for UniP-2 and UniC-1 with
$B(h) = e^h - 1$, "published-bh1" with $B(h) = h$; the solved system does not depend on $B(h)$.  The previous
step's variables are $h' = r_1 h$, $r'_j = r_{j+1}/r_1$: hence the moments $\\psi_q(r_1 h)$ and the factor
$e^{\\ell^{\\alpha}_0}$ ($K_n = \\alpha_n$) in the data-prediction rows.  The last two sections are the paper's
evaluation form (two stages: the predicted point, then the corrected one), whose series check is the local order
$k + 2$ of the corrected value.
"""

TABLEAUX = [(1, "exact"), (2, "exact-warmup"), (2, "exact"), (3, "exact-warmup"), (3, "exact"), (2, "exact-p"),
            (3, "exact-p"), (1, "published"), (2, "published-warmup"), (2, "published"), (3, "published-warmup"),
            (2, "published-p"), (1, "published-bh1"), (2, "published-bh1")]


def main():
    sections = []
    for k, variant in TABLEAUX:
        tab = derive_unipc(k, "data", variant)
        print(f"derived and checked {tab.name} ({variant}): {', '.join(tab.checked)}")
        sections.append(tableau_markdown(tab))
    for k in (1, 2):
        tab = derive_unipc_pair(k, "data")
        print(f"derived and checked {tab.name} (evaluation form): {', '.join(tab.checked)}")
        sections.append(tableau_markdown(tab))
    out = ROOT / "docs" / "derivations" / "unipc.md"
    out.write_text(document("UniPC (derived)", INTRO, sections, "python derivations/unipc.py"), encoding="utf-8")
    print(f"wrote {out}")
    for path in catalog.regenerate(keys=[key for key in catalog.CATALOG if key[0] == "unipc"]):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
