"""Multistep (Adams-type) exponential integrators of any order k (docs/algorithms/exponential_integrators.md
§3, derivation algorithm §8).

``derive_multistep(k, prediction, sde, variant)`` returns a checked :class:`SymbolicTableau` with one stage and
k-1 history values:

    x_{n+1} = Phi x_n + prefactor * sum_{j<k} W_j F_{n-j} (+ sigma_{n+1} N xi)

- data prediction (DPM-Solver++(kM), Lu et al. 2022b, arXiv 2211.01095): Phi = sigma_{n+1}/sigma_n e^{-eta h},
  prefactor alpha_{n+1}, W_j from psi_q((1+eta) h);
- noise prediction (DPM-Solver multistep, Lu et al. 2022a, arXiv 2206.00927): Phi = alpha_{n+1}/alpha_n,
  prefactor -(1+eta) sigma_{n+1}, W_j from psi~_q(h);
- ``sde=True``: symbolic eta >= 0 and Q = 1 normal with the exact step variance; ``sde=False``: eta is 0, Q = 0.

Variants: "exact" integrates the Lagrange interpolant exactly (declared order k); "published" is the form of the
papers and of diffusers/k-diffusion (docs/algorithms/exponential_integrators.md §3.6): k = 2 with psi_0/2 in place
of psi_1 (order 2), k = 3 with the second divided difference at half weight (psi_2 -> psi_2/2 in the derivative
form; order 2, not 3).
SDE tableaux declare weak order 1 (k = 1) or 2 (k >= 2; measured, provisional:
docs/algorithms/exponential_integrators.md §7), strong order 1.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from . import symbols as sy
from .checks import check_form, check_history_limit, check_weights
from .covariance import noise_factor
from .forms import form
from .quadrature import quadrature_weights
from .tableau import SymbolicTableau

__all__ = ["derive_multistep", "history_nodes", "multistep_weights", "VARIANTS", "NAMES"]


def _half(q):
    return lambda moment, z: moment(q, z) / 2


# variant -> k -> (psi-replacement rule of the derivative form, declared ODE order)
VARIANTS = {
    "exact": None,  # any k: no rule, order k
    "published": {2: ({1: _half(0)}, 2), 3: ({2: _half(2)}, 2)},
}

NAMES = {
    ("data", False): "dpmpp-{k}m",
    ("data", True): "dpmpp-{k}m-sde",
    ("eps", False): "dpm-solver-{k}m",
    ("eps", True): "dpm-solver-{k}m-sde",
}

REFERENCES = {
    "data": "DPM-Solver++ multistep (Lu et al. 2022b, arXiv 2211.01095); "
            "docs/algorithms/exponential_integrators.md §3",
    "eps": "DPM-Solver multistep (Lu et al. 2022a, arXiv 2206.00927); docs/algorithms/exponential_integrators.md §3",
}


def history_nodes(k: int) -> tuple:
    """u_0 = 0, u_j = -(r_1 + ... + r_j): the past nodes in units of the current step
    (docs/algorithms/exponential_integrators.md §3.1)."""
    nodes = [sp.Integer(0)]
    for j in range(1, k):
        nodes.append(nodes[-1] - sy.r(j))
    return tuple(nodes)


def _variant(k: int, variant: str):
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    table = VARIANTS[variant]
    if table is None:
        return {}, k
    if k not in table:
        raise ValueError(f"variant {variant!r} exists for k in {sorted(table)}, got k = {k}; use variant='exact'")
    return table[k]


def multistep_weights(k: int, prediction: str = "data", sde: bool = False, variant: str = "exact") -> tuple:
    """The weights W_0..W_{k-1} (moments of (1+eta)h or h), without the node prefactor."""
    fm = form(prediction)
    eta = sy.eta if sde else sp.Integer(0)
    rule, _ = _variant(k, variant)
    return quadrature_weights(history_nodes(k), fm.moment, fm.argument(1, eta), rule)


@lru_cache(maxsize=None)
def derive_multistep(k: int, prediction: str = "data", sde: bool = False, variant: str = "exact") -> SymbolicTableau:
    """Derive and check the k-step exponential integrator (1 NFE per step, order: see module docstring)."""
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    fm = form(prediction)
    check_form(prediction)
    eta = sy.eta if sde else sp.Integer(0)
    rule, order = _variant(k, variant)
    nodes = history_nodes(k)
    z = fm.argument(1, eta)
    weights = multistep_weights(k, prediction, sde, variant)
    label = f"{prediction} k={k} {variant}{' sde' if sde else ''}"
    exact_degree = min(rule) if rule else k
    check_weights(nodes, weights, fm.moment, z, order, exact_degree, label)
    if k > 1:
        reduced = multistep_weights(k - 1, prediction, sde, "exact")
        check_history_limit(weights, reduced, fm.moment, z, sy.r(k - 1), label)

    pref = fm.prefactor(1, eta)
    a = sp.ImmutableMatrix([1, fm.linear_factor(1, 1, eta)])
    b = sp.ImmutableMatrix([[0], [pref * weights[0]]])
    e = sp.ImmutableMatrix(2, k - 1, [0] * (k - 1) + [pref * w for w in weights[1:]])
    if sde:
        noise = noise_factor((sp.Integer(1),), prediction, "exact")
        c = sp.ImmutableMatrix([[0], [sp.exp(sy.ls(1)) * noise[0, 0]]])
    else:
        c = sp.ImmutableMatrix.zeros(2, 0)
    notes = {
        ("published", 2): "paper/midpoint form: psi_0/2 in place of psi_1 (docs/algorithms/exponential_integrators.md "
                          "§3.6); order 2.",
        ("published", 3): "second divided difference at half weight (docs/algorithms/exponential_integrators.md "
                          "§3.6): order 2, not 3.",
    }.get((variant, k), "")
    if sde and k > 1:
        notes += (" Weak order 2 is measured, not proven (provisional, "
                  "docs/algorithms/exponential_integrators.md §7); strong order 1.")
    tab = SymbolicTableau(
        name=NAMES[(prediction, sde)].format(k=k),
        family="multistep",
        variant=variant,
        k=k,
        prediction=prediction,
        sde=sde,
        stages=1,
        history=k - 1,
        noises=1 if sde else 0,
        params=(sy.eta,) if sde else (),
        defaults=(sy.PARAM_DEFAULTS[sy.eta],) if sde else (),
        fractions=(sp.Integer(0),),
        a=a,
        b=b,
        e=e,
        c=c,
        order=min(order, 2 if k > 1 else 1) if sde else order,
        deterministic_order=order,
        strong_order=1 if sde else None,
        uncertain=sde and k > 1,  # weak order 2 measured, not proven
        reference=REFERENCES[prediction] + (f" ({variant} variant)" if variant != "exact" else ""),
        notes=notes.strip(),
        derivation=f"diffsolve.symbolic.multistep.derive_multistep({k}, prediction={prediction!r}, sde={sde}, "
        f"variant={variant!r})",
    )
    done = ("form", "weights")
    if k > 1:
        done += ("history-limit",)
    return tab.check(done)
