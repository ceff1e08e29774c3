"""Derive the joint law of the stage-node noises (docs/algorithms/seeds.md §1.5, §2.1); write
docs/derivations/stochastic_covariance.md and regenerate the stochastic catalog modules.

    python derivations/stochastic_covariance.py

Cov(N_i, N_j) is integrated by SymPy from the Ito isometry; its Cholesky factor is derived from the rational
LDL^T factorisation and checked to equal the exact OU recursion (rule A); the mirrored rule (B) is derived for
comparison.  The reference numbers of docs/algorithms/seeds.md §6.3 are printed.
"""

import sys
from pathlib import Path

import sympy as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffsolve.codegen import catalog  # noqa: E402
from diffsolve.symbolic import covariance as cv  # noqa: E402
from diffsolve.symbolic import symbols as sy  # noqa: E402
from diffsolve.symbolic.latex import document, matrix_markdown  # noqa: E402

INTRO = """
Node-normalised noises $N_j$ at stage nodes $0 < f_1 < \\dots < f_J = 1$ (fractions of $h$): the state at node
$j$ receives $\\sigma_j N_j$. Covariances from the Ito isometry (integrated by SymPy), Cholesky factor (= the
exact OU recursion, rule A, checked) and the mirrored rule B of the authors' code.
"""


def main():
    sections = []
    names = {sy.h: "h", sy.eta: r"\eta", sy.c1: "c_1", sy.c2: "c_2"}
    for prediction in ("data", "eps"):
        fracs = (sy.c1, sy.c2, sp.Integer(1))
        cv.check_cholesky_is_ou(fracs, prediction)
        kernel = cv.node_kernel(prediction, sy.c1 * sy.h)
        kernel_tex = sp.latex(kernel, symbol_names=names)
        sections.append(f"## {prediction} prediction\n\nkernel at node $f = c_1$: ${kernel_tex}$\n")
        sections.append(matrix_markdown("Covariance Cov(N_i, N_j):", cv.ito_covariance(fracs, prediction), names))
        chol = cv.cholesky_factor(fracs, prediction)
        sections.append(matrix_markdown("Cholesky factor (= OU recursion, checked):", chol, names))
        sections.append(matrix_markdown("Mirrored rule (B):", cv.mirrored_factor(fracs, prediction), names))
        for rule in ("exact", "mirrored"):
            L = cv.noise_factor((sp.Rational(3, 10), 1), prediction, rule)
            S = (L * L.T).subs({sy.h: sp.Rational(7, 10), sy.eta: 1})
            values = ", ".join(f"{label} = {float(S[i, j]):.6f}" for label, (i, j) in
                               (("Var N_1", (0, 0)), ("Var N_t", (1, 1)), ("Cov", (0, 1))))
            line = f"- h = 0.7, r = 0.3, eta = 1, rule {rule}: {values}"
            print(prediction, line)
            sections.append(line)
        sections.append("")
    out = ROOT / "docs" / "derivations" / "stochastic_covariance.md"
    text = document("Stage-noise covariances (derived)", INTRO, sections, "python derivations/stochastic_covariance.py")
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    keys = [key for key in catalog.CATALOG if key[3]]
    for path in catalog.regenerate(keys=keys):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
