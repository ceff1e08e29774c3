"""UniPC of any order: the unified predictor UniP-p and corrector UniC-c in the B(h) form of Zhao, Bai, Rao, Zhou,
Lu, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of Diffusion Models", NeurIPS 2023 (arXiv
2302.04867), §3; docs/algorithms/unipc.md.

One step s -> t (log-SNR step h, prefactor K = alpha_t (data) or -sigma_t (noise), moments psi_q(h)) is

    x_t = Phi x_s + K [psi_0 F_0 + beta sum_m rho_m (F_m - F_0) / v_m],     beta = s B(s h)

with the values F_m at the rho-nodes v_m (units of the step): the history nodes u_m = -(r_1 + ... + r_m) for
UniP-p (m < p), and additionally the step end v = 1 (the model at the predicted point) for UniC-c.  rho solves the
paper's system R rho = b, R_im = v_m^(i-1), b_i = i! psi_i / beta; its closed-form (Vandermonde) inverse is the
Lagrange-coefficient table of :func:`quadrature.lagrange_coefficients`, and ``check_system`` verifies R rho = b.
The product beta rho does not depend on B(h): B(h) = h ("bh1") and e^h - 1 ("bh2") matter only where a rule fixes
rho.  ``RULES``: "exact" solves every system; "published" / "published-bh1" are the coefficients of the authors'
code and diffusers' ``UniPCMultistepScheduler`` (bh2 / bh1): rho = 1/2 for UniP-2 and for UniC-1.

UniPC evaluates the model once per step, at the predicted point; with that point as the *state* the corrected
value of the previous step is x^c_n = x_n + Delta_n, Delta_n = K_n (UniC-c - UniP-c of step n-1, which share the
linear part) a combination of F_0 = D(x_n) and the history H_1..H_c, and

    x_{n+1} = UniP-p(x_n + Delta_n; F_0, H_1, ..., H_{p-1}):

a one-stage tableau with max(p - 1, c) history values (``derive_unipc``).  The previous step's variables are the
current ones rescaled: h' = r_1 h, r'_j = r_{j+1} / r_1.  Levels: c = p (UniPC-p), c = p - 1 (the warm-up steps,
where the previous predictor had one order less), c = 0 (UniP-p alone, ``-p``).  ``derive_unipc_pair`` is the
paper's evaluation form (stage 1 the predicted point, the output the corrected one), whose series check is the
local order p + 2 of the corrected value; the one-stage tableau's own one-step order on exact inputs is c (its
state is a predicted point), its global order c + 1 (the corrected chain; measured, docs/algorithms/unipc.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import sympy as sp

from ..solvers.unipc import PUBLISHED_RHO, published_changes
from . import symbols as sy
from .checks import SymbolicCheckError, check_form, check_weights, rational_sum_is_zero
from .forms import form
from .multistep import history_nodes
from .psi import _Moment
from .quadrature import lagrange_coefficients
from .tableau import SymbolicTableau

__all__ = ["Rule", "RULES", "LEVELS", "rho_nodes", "beta_rho", "check_system", "update_weights", "correction",
           "derive_unipc", "derive_unipc_pair", "fixes", "tableaux", "REFERENCE"]

REFERENCE = ("UniPC (Zhao, Bai, Rao, Zhou, Lu, NeurIPS 2023, arXiv 2302.04867); diffusers UniPCMultistepScheduler "
             "for the published coefficients; docs/algorithms/unipc.md")


@dataclass(frozen=True)
class Rule:
    """How rho is chosen: ``fixed`` maps (role, order) -> the published constant ("predictor", 2) / ("corrector", 1);
    elsewhere rho solves R rho = b.  ``beta(moment, z)`` is s B(s z) for the rule's B(h) (bh1: z; bh2: psi_0(z) =
    s (e^{s z} - 1)); it cancels wherever rho is solved."""

    fixed: dict
    beta: Callable


def _bh1(moment, z):
    return z


def _bh2(moment, z):
    return moment(0, z)


_PUBLISHED = {key: sp.Rational(*value) for key, value in PUBLISHED_RHO.items()}  # rho = 1/2: UniP-2, UniC-1
RULES = {
    "exact": Rule({}, _bh2),  # every system solved: beta cancels, bh1 and bh2 give the same tableau
    "published": Rule(_PUBLISHED, _bh2),  # diffusers' default solver_type="bh2"
    "published-bh1": Rule(_PUBLISHED, _bh1),
}

# level suffix of a catalog variant -> corrector order c as a function of the predictor order p
LEVELS = {"": lambda p: p, "-warmup": lambda p: p - 1, "-p": lambda p: 0}


def fixes(rule: str, p: int, c: int) -> bool:
    """Whether ``rule`` fixes a rho of the tableau (predictor order p, corrector order c; the correction also
    subtracts the previous step's UniP-c): only then do its coefficients differ from the "exact" ones."""
    return bool(RULES[rule].fixed) and published_changes(p, c)


def tableaux(max_order: int, rules=tuple(RULES)) -> list:
    """(p, variant) of the tableaux the levels of UniPC-k, k <= ``max_order``, use: the solved ones (corrector order
    c = p, p - 1) and, for each published rule, those it changes.  UniP-p alone (c = 0) is the multistep integrator
    (solved: exact weights; published with B(h) = e^h - 1: DPM-Solver++(2M)'s published form), whose tableaux the
    registry uses instead (diffsolve.solvers.unipc._key); only the bh1 form has its own."""
    out = []
    for rule in rules:
        for p in range(1, max_order + 1):
            for suffix, corrector in LEVELS.items():
                c = corrector(p)
                multistep = c == 0 and (p == 1 or rule in ("exact", "published"))
                if not multistep and (rule == "exact" or fixes(rule, p, c)) and (p, rule + suffix) not in out:
                    out.append((p, rule + suffix))
    return out


def _parse(variant: str, p: int) -> tuple[str, int]:
    for suffix in sorted(LEVELS, key=len, reverse=True):
        rule = variant[: len(variant) - len(suffix)] if suffix else variant
        if variant.endswith(suffix) and rule in RULES:
            return rule, LEVELS[suffix](p)
    raise ValueError(f"unipc variant must be <rule>[-warmup|-p] with rule in {sorted(RULES)}, got {variant!r}")


def rho_nodes(role: str, order: int) -> tuple:
    """The nodes v_m of the rho system: u_1..u_{order-1} (predictor), and the step end 1 (corrector)."""
    nodes = history_nodes(order)[1:]
    return nodes + ((sp.Integer(1),) if role == "corrector" else ())


def beta_rho(role: str, order: int, prediction: str, rule: str) -> tuple:
    """beta * rho_m for the nodes of :func:`rho_nodes` (expressions of h, r and the moments of h)."""
    fm, spec = form(prediction), RULES[rule]
    nodes = rho_nodes(role, order)
    if (role, order) in spec.fixed:
        return tuple(spec.beta(fm.moment, sy.h) * spec.fixed[role, order] for _ in nodes)
    coeffs = lagrange_coefficients(nodes) if nodes else ()
    g = [sp.factorial(i) * fm.moment(i, sy.h) for i in range(1, len(nodes) + 1)]  # beta * b_i
    return tuple(sp.Add(*[row[i] * g[i] for i in range(len(nodes))]) for row in coeffs)


def check_system(role: str, order: int, prediction: str) -> None:
    """R (beta rho) = beta b exactly for the solved system: sum_m v_m^(i-1) beta rho_m = i! psi_i (i = 1..n)."""
    fm, P = form(prediction), sp.Dummy("P")
    nodes, values = rho_nodes(role, order), beta_rho(role, order, prediction, "exact")
    for i in range(1, len(nodes) + 1):
        for q in range(1, len(nodes) + 1):
            target = sp.factorial(i) if q == i else 0
            terms = [v**(i - 1) * sp.diff(y.xreplace({fm.moment(q, sy.h): P}), P) for v, y in zip(nodes, values)]
            if not rational_sum_is_zero(terms + [-target]):
                raise SymbolicCheckError(f"UniP/UniC {role} order {order}: row {i} of R rho = b fails at psi_{q}")


def _linear(expr) -> sp.Expr:
    """``expr`` (linear in the moments, and in h for bh1) with each coefficient factored: exact cancellation
    of the terms the predictor and the corrector share."""
    atoms = sorted(expr.atoms(_Moment), key=sp.default_sort_key) + [sy.h]
    dummies = [sp.Dummy() for _ in atoms]
    poly = sp.Poly(sp.expand(expr.xreplace(dict(zip(atoms[:-1], dummies[:-1]))).subs(sy.h, dummies[-1])), *dummies)
    back = dict(zip(dummies, atoms))
    return sp.Add(*[sp.factor(c) * sp.Mul(*[d**e for d, e in zip(dummies, m)]).xreplace(back)
                    for m, c in poly.terms()])


@lru_cache(maxsize=None)
def update_weights(role: str, order: int, prediction: str, rule: str) -> tuple:
    """Weights W of the update K sum W_j F_j on the values (F_0, F(u_1), ..., F(u_{order-1})[, F(1)]): UniP-order
    (``role`` = "predictor") or UniC-order ("corrector"); the linear part Phi x_s is not included."""
    if rule != "exact" and (role, order) not in RULES[rule].fixed:
        return update_weights(role, order, prediction, "exact")
    fm = form(prediction)
    nodes, values = rho_nodes(role, order), beta_rho(role, order, prediction, rule)
    others = tuple(y / v for y, v in zip(values, nodes))
    return tuple(_linear(w) for w in (fm.moment(0, sy.h) - sp.Add(*others),) + others)


def _previous_step(expr) -> sp.Expr:
    """``expr`` of a step written for the previous step: h -> r_1 h, r_j -> r_{j+1} / r_1 (simultaneously)."""
    ratios = [s for s in expr.free_symbols if s.name.startswith("r_")]
    return expr.xreplace({sy.h: sy.r(1) * sy.h, **{s: sy.r(int(s.name[2:]) + 1) / sy.r(1) for s in ratios}})


@lru_cache(maxsize=None)
def correction(c: int, prediction: str, rule: str) -> tuple:
    """Delta_n / K_n = (UniC-c - UniP-c of the previous step) on (F_0, H_1, ..., H_c): F_0 = D(x_n) is the corrector's
    new value, H_1 the previous step's F_0, H_{m+1} its F(u_m)."""
    if c < 1:
        return ()
    if rule != "exact" and not fixes(rule, c, c):
        return correction(c, prediction, "exact")
    corrector = update_weights("corrector", c, prediction, rule)  # on (H_1, H_2.., H_c, F_0) in that step's units
    predictor = update_weights("predictor", c, prediction, rule) + (sp.Integer(0),)
    diff = [_previous_step(wc - wp) for wc, wp in zip(corrector, predictor)]
    return tuple(_linear(w) for w in (diff[-1],) + tuple(diff[:-1]))


def _metadata(p: int, c: int, rule: str) -> dict:
    fixed = RULES[rule].fixed
    which = {("predictor", p): f"UniP-{p}", ("corrector", c): f"UniC-{c}"}
    which.setdefault(("predictor", c), f"the previous step's UniP-{c} (in the correction)")
    published = [f"rho = 1/2 for {text}" for key, text in which.items() if key in fixed]
    parts = [f"published coefficients ({'B(h) = h' if rule.endswith('bh1') else 'B(h) = e^h - 1'}): "
             + ", ".join(published)] if published else []
    if c:
        parts.append(f"state = the predicted point: one-step order {c} on exact inputs, global order {c + 1}")
    return {"reference": REFERENCE + (f" ({rule} coefficients)" if rule != "exact" else ""),
            "notes": "; ".join(parts) + ("." if parts else "")}


@lru_cache(maxsize=None)
def derive_unipc(p: int, prediction: str = "data", variant: str = "exact") -> SymbolicTableau:
    """UniPC with the predicted point as state (1 NFE/step): UniP-p applied to x_n + Delta_n (UniC-c, c from the
    ``variant``'s level suffix).  Order: p for UniP-p alone (c = 0), c + 1 otherwise (UniPC-p: p + 1)."""
    if not (isinstance(p, int) and p >= 1):
        raise ValueError(f"the UniP order p must be an integer >= 1, got {p!r}")
    rule, c = _parse(variant, p)
    if c == 0 and p == 1:
        raise ValueError("UniP-1 without a corrector is DDIM: use the catalog key ('multistep', 1, prediction, False, "
                         "'exact')")
    fm = form(prediction)
    check_form(prediction)
    done = ["form"]
    for role, order in (("predictor", p), ("corrector", c)):
        if order >= 1 and (role, order) not in RULES[rule].fixed:
            _check_quadrature(role, order, prediction)
            done += [f"{role}-system", f"{role}-weights"]
    M = max(p - 1, c)
    phi, k0, k1 = fm.linear_factor(1, 1, 0), fm.prefactor(0, 0), fm.prefactor(1, 0)
    pred = update_weights("predictor", p, prediction, rule)
    delta = correction(c, prediction, rule)
    on = lambda ws, j: ws[j] if j < len(ws) else 0  # noqa: E731  (weight on F_0, H_1, ... or 0)
    row = [phi * k0 * on(delta, j) + k1 * on(pred, j) for j in range(M + 1)]
    tab = SymbolicTableau(
        name=f"unipc-{p}", family="unipc", variant=variant, k=p, prediction=prediction, sde=False, stages=1,
        history=M, noises=0, params=(), defaults=(), fractions=(sp.Integer(0),),
        a=sp.ImmutableMatrix([1, phi]), b=sp.ImmutableMatrix([[0], [row[0]]]),
        e=sp.ImmutableMatrix(2, M, [0] * M + row[1:]), c=sp.ImmutableMatrix.zeros(2, 0),
        order=c + 1 if c else p, deterministic_order=c or p,
        derivation=f"diffsolve.symbolic.unipc.derive_unipc({p}, prediction={prediction!r}, variant={variant!r})",
        **_metadata(p, c, rule),
    )
    return tab.check(tuple(done))


@lru_cache(maxsize=None)
def derive_unipc_pair(p: int, prediction: str = "data", rule: str = "exact") -> SymbolicTableau:
    """The paper's evaluation form of UniPC-p (a check, not a registered solver): stage 1 the predicted point
    UniP-p(x_n) at the step end, output the corrected UniC-p(x_n; D(stage 1), F_0, H); series-checked to local
    order p + 2 (declared order p + 1; 2 model calls per step in this form)."""
    fm = form(prediction)
    pred = update_weights("predictor", p, prediction, rule)
    corr = update_weights("corrector", p, prediction, rule)
    M = p - 1
    b = sp.zeros(3, 2)
    e = sp.zeros(3, M)
    k1, k2 = fm.prefactor(1, 0), fm.prefactor(2, 0)  # the stage node and the step end: the same point
    b[1, 0], b[2, 0], b[2, 1] = k1 * pred[0], k2 * corr[0], k2 * corr[-1]
    for m in range(M):
        e[1, m], e[2, m] = k1 * pred[m + 1], k2 * corr[m + 1]
    tab = SymbolicTableau(
        name=f"unipc-{p}-pair", family="unipc", variant=f"{rule}-pair", k=p, prediction=prediction, sde=False,
        stages=2, history=M, noises=0, params=(), defaults=(), fractions=(sp.Integer(0), sp.Integer(1)),
        a=sp.ImmutableMatrix([1, fm.linear_factor(1, 1, 0), fm.linear_factor(2, 1, 0)]),
        b=sp.ImmutableMatrix(b), e=sp.ImmutableMatrix(e), c=sp.ImmutableMatrix.zeros(3, 0),
        order=p + 1, deterministic_order=p + 1, reference=REFERENCE,
        derivation=f"diffsolve.symbolic.unipc.derive_unipc_pair({p}, prediction={prediction!r}, rule={rule!r})",
    )
    return tab.check()


@lru_cache(maxsize=None)
def _check_quadrature(role: str, order: int, prediction: str) -> None:
    """The solved system (R rho = b), then the update as exponential quadrature on its nodes: exact for
    polynomials of degree < n (n nodes: order for UniP, order + 1 for UniC), order n, sharp."""
    fm = form(prediction)
    check_system(role, order, prediction)
    nodes = (sp.Integer(0),) + rho_nodes(role, order)
    weights = update_weights(role, order, prediction, "exact")
    n = len(nodes)
    check_weights(nodes, weights, fm.moment, sy.h, n, n, f"{prediction} Uni{role[0].upper()}-{order}")
