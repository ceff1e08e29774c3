"""Derive and check the underdamped-Langevin (ULD) frozen-gradient step; write docs/derivations/uld.md and
regenerate diffsolve/_generated/uld.py.

    python derivations/uld.py

The mean is the matrix-exponential solution of the linear ODE, the covariance the Ito isometry (both by SymPy,
:mod:`diffsolve.symbolic.langevin`); ``check_uld`` verifies them (ODE, Lyapunov equation, Ito integrals in the
reversed variable, L L^T = Cov, the helper closed forms and series).  The page ends with the coefficients of the
generated module at a few (gamma, tau).
"""

import sys
from pathlib import Path

import sympy as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffsolve.codegen import catalog  # noqa: E402
from diffsolve.codegen import langevin as gen  # noqa: E402
from diffsolve.symbolic import langevin as uld  # noqa: E402
from diffsolve.symbolic.latex import matrix_markdown  # noqa: E402

SCRIPT = "python derivations/uld.py"
TITLE = "Underdamped-Langevin step with a frozen gradient (derived)"
INTRO = """
Per coordinate, unit mass, friction $\\gamma > 0$, and the gradient $G$ of the energy frozen at the start of the
step (Cheng, Chatterji, Bartlett & Jordan 2018, *Underdamped Langevin MCMC: a non-asymptotic analysis*, the
integrator of §3 / Lemma 11; Huang et al. 2024, *Reverse Transition Kernel*, Algorithm 3):

$$dz = v\\,dt,\\qquad dv = -\\gamma v\\,dt - G\\,dt + \\sqrt{2\\gamma}\\,dB_t,
\\qquad\\text{i.e.}\\quad dy = (A y + b)\\,dt + B\\,dB_t,\\ y = (z, v).$$

One step of length $\\tau$ is integrated exactly by SymPy (`diffsolve.symbolic.langevin`): the mean
$\\Phi(\\tau) y_0 + \\int_0^\\tau \\Phi(\\tau - s) b\\,ds$ with the matrix exponential $\\Phi(t) = e^{A t}$, the
covariance by the Ito isometry $\\int_0^\\tau \\Phi(\\tau - s) B B^T \\Phi(\\tau - s)^T ds$, and the noise through
its Cholesky factor:

$$z' = z + c_{zv} v + c_{zG} G + \\zeta,\\quad v' = c_{vv} v + c_{vG} G + \\omega,\\quad
\\zeta = l_{11} n_1,\\ \\omega = l_{21} n_1 + l_{22} n_2.$$

The generated module `diffsolve/_generated/uld.py` (`uld_coefficients(gamma, tau)`) returns
$(c_{vv}, c_{vG}, c_{zv}, c_{zG}, l_{11}, l_{21}, l_{22})$.
"""

NAMES = {
    uld.gamma: r"\gamma",
    uld.tau: r"\tau",
    uld.x: "x",
    uld.a: "a",
    uld.z: "z",
    uld.v: "v",
    uld.G: "G",
}
HELPER_TEX = {"phi1": r"\varphi_1", "phi2": r"\varphi_2", "var_z": "s_{zz}", "cov_zv": "s_{zv}", "var_v_z": "s_{v|z}"}
NAMES.update({uld.helper_symbols()[name]: tex for name, tex in HELPER_TEX.items()})
COEFFICIENT_TEX = {"c_vv": "c_{vv}", "c_vG": "c_{vG}", "c_zv": "c_{zv}", "c_zG": "c_{zG}", "l11": "l_{11}",
                   "l21": "l_{21}", "l22": "l_{22}"}
CHECKS = {
    "propagator": r"$\frac{d}{dt}\Phi = A\Phi$, $\Phi(0) = I$",
    "mean": r"the mean solves $m' = A m + b$, $m(0) = (z, v)$",
    "ito": r"each covariance entry equals the Ito integral in $u = \tau - s$, "
           r"$\int_0^\tau [e^{Au}B]_i [e^{Au}B]_j\,du$, and $\Sigma(t)$ solves the Lyapunov equation "
           r"$\Sigma' = A\Sigma + \Sigma A^T + BB^T$, $\Sigma(0) = 0$",
    "cholesky": r"$L L^T = \Sigma$, $L$ lower triangular; the kernels of $z$ and $v$ have a positive Wronskian, "
                r"so $\mathrm{Var}_z > 0$ and $\det\Sigma > 0$",
    "reduced": r"each part and helper equals its closed form in $a$; each coefficient equals its assembly "
               r"$\tau^m R$ from the helpers",
    "series": "the helpers with a cancelling closed form are exactly phi2, var_z, var_v_z; the weighted Taylor "
              "coefficients from SymPy's ring series equal the exponential-series formula, are positive, and the "
              "truncation error is O(x^(j+N)) (also checked with `sympy.series` to 6 terms)",
}
POINTS = ((1.0, 0.1), (1.0, 1.0), (0.5, 0.25), (2.0, 0.01), (10.0, 2.0), (1e-3, 1.0))


def _tex(expr) -> str:
    return sp.latex(sp.sympify(expr), symbol_names=NAMES)


def _aligned(rows) -> list[str]:
    return ["$$", r"\begin{aligned}", *[rf"{lhs} &= {rhs} \\" for lhs, rhs in rows], r"\end{aligned}", "$$", ""]


def sections(checked, terms) -> list[str]:
    out = ["## Derivation", ""]
    out.append(matrix_markdown(r"Matrix exponential $\Phi(\tau) = e^{A\tau}$:", uld.propagator(), NAMES))
    out.append(matrix_markdown("Mean $E[(z, v)(\\tau)]$:", uld.mean(), NAMES))
    out.append(matrix_markdown(r"Covariance $\Sigma$ (Ito isometry):", uld.ito_covariance(), NAMES))
    out.append(r"Determinant: $\det\Sigma = " + _tex(uld.determinant()) + "$")
    out.append("")
    out.append("Coefficients (the Cholesky factor with $l_{22} = \\sqrt{\\det\\Sigma / \\mathrm{Var}_z}$):")
    out.append("")
    out += _aligned((COEFFICIENT_TEX[n], _tex(e)) for n, e in uld.coefficients().items())

    out += ["## Floating point", "",
            "With $x = \\gamma\\tau$ every coefficient is $\\tau^m R(x)$, assembled from the helpers:", ""]
    rows = []
    for name in uld.COEFFICIENTS:
        m, r = uld.assembly()[name]
        rows.append((COEFFICIENT_TEX[name], _tex(r * uld.tau**m)))
    out += _aligned(rows)
    out += ["Helpers `phi1`, `phi2`, `var_z`, `cov_zv`, `var_v_z` ($s_{v|z} = \\mathrm{Var}(v \\mid z) = "
            "\\det\\Sigma / \\mathrm{Var}_z$): definition, then the closed form the module prints, with "
            "$a = 1 - e^{-x}$ = `-expm1(-x)`:", ""]
    rows = []
    for name in uld.HELPERS:
        sym = NAMES[uld.helper_symbols()[name]]
        num, den = uld.HELPER_PARTS[name]
        f = uld.parts()[num][1] if den is None else uld.parts()[num][1] / uld.parts()[den][1]
        n, d, p = uld.closed_form_in_a(name)
        rows.append((rf"{sym}(x)", _tex(f) + r" = " + _tex(n / d / uld.x**p)))
    out += _aligned(rows)
    out += [
        f"phi2, var_z and det (the numerator of var_v_z = det / var_z) cancel catastrophically as $x \\to 0$. Below "
        f"the switch point $x^* = {float(gen.X_SWITCH):g}$ each is evaluated as $e^{{-kx}} x^j P_N(x)$, $P_N$ the "
        "Taylor polynomial of $e^{kx} F(x) / x^j$ with $k$ the largest rate of the $e^{-kx}$ in $F$, so that every "
        "coefficient is positive and the series does not cancel; $N$ is the smallest number of terms whose omitted "
        "tail at $x^*$ is at most $2^{-54}$ of the sum. At and above $x^*$ the closed forms are used "
        "(their cancellation there is at most a few units in the last place).",
        "",
        "| part | $k$ | $j$ | $N$ | first terms of $P_N$ |",
        "|---|---|---|---|---|",
    ]
    for name in uld.series_parts():
        s = uld.part_series(name)
        head = sp.latex(s.polynomial(4) + sp.Order(uld.x**4), order="rev-lex")
        out.append(f"| {name} | {s.rate} | {s.shift} | {terms[name]} | ${head}$ |")
    out.append("")
    out += ["## Checks", "", "`diffsolve.symbolic.langevin.check_uld` (every difference simplifies to 0):", ""]
    out += [f"- {name}: {CHECKS[name]}" for name in checked]
    out.append("")
    return out


def table() -> list[str]:
    from diffsolve._generated.uld import uld_coefficients

    head = "| $\\gamma$ | $\\tau$ | " + " | ".join(f"${COEFFICIENT_TEX[n]}$" for n in uld.COEFFICIENTS) + " |"
    lines = ["## Coefficients at a few $(\\gamma, \\tau)$", "",
             "From `diffsolve._generated.uld.uld_coefficients` (12 significant digits):", "",
             head, "|" + "---|" * (2 + len(uld.COEFFICIENTS))]
    for g, t in POINTS:
        values = uld_coefficients(g, t)
        lines.append(f"| {g:g} | {t:g} | " + " | ".join(f"{c:.12g}" for c in values) + " |")
    lines.append("")
    return lines


def main():
    terms = gen.series_terms()
    checked = uld.check_uld(terms)
    print(f"checks passed: {', '.join(checked)}")
    for path in catalog.regenerate(files={gen.NAME: gen.module_source()}):
        print(f"wrote {path}")
    head = [f"# {TITLE}", "", f"<!-- Generated by `{SCRIPT}`; do not edit by hand. -->", "", INTRO.strip(), ""]
    text = "\n".join(head + sections(checked, terms) + table())
    out = ROOT / "docs" / "derivations" / "uld.md"
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
