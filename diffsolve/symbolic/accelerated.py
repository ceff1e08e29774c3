"""Accelerated samplers of Li, Huang, Efimov, Wei, Chi, Chen, ICML 2024 (arXiv 2403.03852);
docs/algorithms/accelerated.md Part A.

Both run on any schedule through the discrete-alpha-bar mapping of
docs/algorithms/accelerated.md A.6: at a grid node
abar = alpha^2/(alpha^2 + sigma^2) = 1/(1 + e^{-2 lam}), the chain works on x_bar = x / nu, nu = sqrt(alpha^2 +
sigma^2) (the identity for VP), and a step from node n (the paper's t) to n+1 (t-1) has
alpha_t = abar_n / abar_{n+1}, beta_t = 1 - alpha_t.  The model output F is the noise prediction eps.

``derive_accel_ddim()``  form (b) of A.2.2 (authors' README/code): 1 NFE/step, one history value (the previous
    eps).  The probability-flow ODE is d(x/alpha) = eps d(e^{-lam}); eps is interpolated linearly in abar through
    (abar_{n-1}, H_1) and (abar_n, F_0) and integrated exactly over the step.  The history weight is
    alpha_{n+1} W with W = Integral (abar - abar_n)(-e^{-lam}) dlam / (abar_{n-1} - abar_n), integrated here
    with y = e^lam (Integral abar d(e^{-lam}) = -atan(e^lam) = -arcsin sqrt(abar)); the numerator is emitted with
    a Taylor branch for h < H_SERIES (its direct form cancels as h -> 0), the denominator in a sinh form.
    ODE order 2.  Without history it is DDIM.
``derive_accel_ddpm()``  A.2.1 README split-noise form: u = x_bar + sqrt(beta/2) xi_1 (same t), output
    (u + beta s(u))/sqrt(alpha_t) + sqrt(beta/2) xi_2 with s = -eps/sqrt(1 - abar_n): a 1-stage tableau with
    Q = 2 normals, 1 NFE/step, weak order 1 (the second half-noise outside the scaling, as published).
``derive_accel_sde(part, momentum)``  accel-sde, the RECONSTRUCTION following Li & Cai's description (arXiv
    2410.23285, docs/algorithms/accelerated.md B.2; not their published update): the momentum-free step, the
    momentum term (clipped by the runtime) and the start-up step; weak order 2.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from . import symbols as sy
from .tableau import SymbolicTableau

__all__ = ["abar", "ddim_weight", "numerator_series", "derive_accel_ddim", "derive_accel_ddim_phi_psi",
           "derive_accel_ddim_phi_psi_startup", "derive_accel_ddpm", "derive_accel_sde", "accel_sde_kappa",
           "ACCEL_SDE_PARTS", "ACCEL_SDE_MOMENTA",
           "ACCEL_DDPM_VARIANTS", "H_SERIES", "SERIES_TERMS", "REFERENCE", "LAM0", "R1"]

REFERENCE = ("Li, Huang, Efimov, Wei, Chi, Chen, Accelerating Convergence of Score-Based Diffusion Models, "
             "Provably, ICML 2024 (arXiv 2403.03852)")
H_SERIES = sp.Rational(1, 1000)  # below this log-SNR step the history weight uses its Taylor polynomial
SERIES_TERMS = 6                 # N = n_2 h^2 + ... + n_7 h^7 (relative truncation error ~ h^6 < 1e-17)

LAM0 = sp.Symbol("lambda_0", real=True)  # log-SNR at the step start (printed as la_0 - ls_0)
R1 = sy.r(1)
_LAM = sp.Symbol("lam", real=True)
_Y = sp.Symbol("y", positive=True)
_U = sp.Symbol("u", real=True)


def abar(lam: sp.Expr) -> sp.Expr:
    """abar(lam) = alpha^2/(alpha^2 + sigma^2) as a function of the half log-SNR lam."""
    return 1 / (1 + sp.exp(-2 * lam))


@lru_cache(maxsize=None)
def _antiderivative() -> sp.Expr:
    """G(lam) with G' = abar(lam) * d(e^{-lam})/dlam, by the substitution y = e^lam; checked by differentiation."""
    integrand_y = sp.simplify((abar(sp.log(_Y)) * sp.diff(sp.exp(-sp.log(_Y)), _Y)))  # = -1/(1 + y^2)
    G = sp.integrate(integrand_y, _Y).subs(_Y, sp.exp(_LAM))
    check = sp.simplify(sp.diff(G, _LAM) - abar(_LAM) * sp.diff(sp.exp(-_LAM), _LAM))
    if check != 0:
        raise AssertionError(f"antiderivative check failed: {check}")
    return G


def ddim_weight(lam0: sp.Expr = LAM0, h: sp.Expr = sy.h, r: sp.Expr = R1) -> sp.Expr:
    """W (direct form): Integral_{lam0}^{lam0+h} (abar - abar(lam0)) d(e^{-lam}) / (abar(lam0 - r h) - abar(lam0))."""
    G = _antiderivative()
    num = G.subs(_LAM, lam0 + h) - G.subs(_LAM, lam0) - abar(lam0) * (sp.exp(-(lam0 + h)) - sp.exp(-lam0))
    den = abar(lam0 - r * h) - abar(lam0)
    return num / den


def _numerator_direct() -> sp.Expr:
    """The numerator N(h) = Integral_{lam0}^{lam0+h} (abar - abar(lam0)) d(e^{-lam}) in a form without
    cancellation of O(1) terms: atan(e^{l1}) - atan(e^{l0}) = atan(e^{l0} expm1(h) / (1 + e^{2 l0 + h})),
    e^{-l1} - e^{-l0} = e^{-l0} expm1(-h).  (N = O(h^2): the two O(h) terms still cancel; see the Taylor branch.)"""
    l0, h = LAM0, sy.h
    E1 = sp.Function("expm1")
    num = -sp.atan(sp.exp(l0) * E1(h) / (1 + sp.exp(2 * l0 + h))) - abar(l0) * sp.exp(-l0) * E1(-h)
    ref = ddim_weight() * _denominator()
    R = sp.Rational
    for vals in ({l0: R(-21, 10), h: R(37, 100), R1: R(4, 5)}, {l0: R(13, 10), h: R(1, 20), R1: R(17, 10)},
                 {l0: R(1, 5), h: R(11, 10), R1: 1}):
        a = num.subs(vals).replace(E1, lambda z: sp.exp(z) - 1).evalf(30)
        b = ref.subs(vals).evalf(30)
        if abs(a - b) > 1e-25 * max(1, abs(b)):
            raise AssertionError(f"stable form of the numerator differs from the integral at {vals}: {a} vs {b}")
    from sympy.codegen.cfunctions import expm1

    return num.replace(E1, expm1)


def _denominator() -> sp.Expr:
    """abar(l0 - r h) - abar(l0) = -sinh(r h) / (2 cosh(l0 - r h) cosh(l0)) (no cancellation for any r h)."""
    return -sp.sinh(R1 * sy.h) / (2 * sp.cosh(LAM0 - R1 * sy.h) * sp.cosh(LAM0))


@lru_cache(maxsize=None)
def numerator_series(terms: int = SERIES_TERMS) -> sp.Expr:
    """Taylor polynomial of N(h) (h^2 .. h^{terms+1}), coefficients in abar_0 = abar(lam0) and e^{-lam0}, from
    the Taylor series of the integrand (d abar/dlam = 2 abar (1 - abar))."""
    a = sp.Symbol("a", positive=True)
    derivs = [a]
    for _ in range(terms + 1):
        derivs.append(sp.expand(sp.diff(derivs[-1], a) * 2 * a * (1 - a)))
    n = terms + 1
    abar_u = sum(derivs[k] * _U**k / sp.factorial(k) for k in range(n + 1))  # abar(lam0 + u)
    emu = sum((-_U) ** k / sp.factorial(k) for k in range(n + 1))  # e^{-u}
    integrand = sp.expand((abar_u - a) * (-emu))
    num = sp.expand(sp.integrate(integrand, (_U, 0, sy.h)))
    coeffs = [sp.factor(num.coeff(sy.h, k)) for k in range(terms + 2)]
    if coeffs[0] != 0 or coeffs[1] != 0:
        raise AssertionError(f"N should be O(h^2), got {coeffs[:2]}")
    poly = sum(c * sy.h**k for k, c in enumerate(coeffs))
    return sp.exp(-LAM0) * poly.subs(a, abar(LAM0))


def _node_lam(p: int) -> sp.Expr:
    return sy.la(p) - sy.ls(p)


def _to_step(expr: sp.Expr) -> sp.Expr:
    return expr.subs(LAM0, _node_lam(0))


@lru_cache(maxsize=None)
def derive_accel_ddim() -> SymbolicTableau:
    """accel-ddim form (b): x_{n+1} = (alpha_{n+1}/alpha_n) x_n + (sigma_{n+1} - alpha_{n+1} sigma_n/alpha_n) F_0
    + alpha_{n+1} W (H_1 - F_0), F = eps; one stage, one history value (H_1 = eps of the previous step)."""
    N = sp.Piecewise((numerator_series(), sy.h < H_SERIES), (_numerator_direct(), True))
    W = _to_step(N / _denominator())
    alpha1 = sp.exp(sy.la(1))
    ddim_a = sp.exp(sy.la(1) - sy.la(0))
    ddim_b = sp.exp(sy.ls(1)) - sp.exp(sy.la(1) - sy.la(0) + sy.ls(0))
    a = sp.ImmutableMatrix([[1], [ddim_a]])
    b = sp.ImmutableMatrix([[0], [ddim_b - alpha1 * W]])
    e = sp.ImmutableMatrix([[0], [alpha1 * W]])
    return SymbolicTableau(
        name="accel-ddim", family="accelerated", variant="repo", k=2, prediction="eps", sde=False, stages=1,
        history=1, noises=0, params=(), defaults=(), fractions=(sp.Integer(0),), a=a, b=b, e=e,
        c=sp.ImmutableMatrix.zeros(2, 0), order=2, deterministic_order=2, keep=0,
        reference=REFERENCE + ", accelerated deterministic sampler form (b) (authors' README/code), "
                              "docs/algorithms/accelerated.md A.2.2",
        notes="2-step exponential integrator in abar: eps linear in abar through the previous and current nodes, "
              f"integrated exactly (arcsin/atan weight; Taylor branch for h < {H_SERIES}). First step: DDIM.",
        derivation="diffsolve.symbolic.accelerated.derive_accel_ddim()",
    )


def _nu(p: int) -> sp.Expr:
    """nu = sqrt(alpha^2 + sigma^2) at node p (x_bar = x / nu; 1 for VP)."""
    return sp.sqrt(sp.exp(2 * sy.la(p)) + sp.exp(2 * sy.ls(p)))


def _sqrt_one_minus_abar(p: int) -> sp.Expr:
    """sqrt(1 - abar) = sigma / nu at node p (the eps -> score factor of A.6: s = -eps / sqrt(1 - abar))."""
    return sp.exp(sy.ls(p)) / _nu(p)


@lru_cache(maxsize=None)
def derive_accel_ddim_phi_psi() -> SymbolicTableau:
    """accel-ddim form (a) of A.2.2 (the paper's Phi/Psi form, coefficients a reconstruction [R]), 2 NFE/step:

        Y^- = Phi(Y_t) = sqrt(alpha_{t+1}) (Y_t - (beta_{t+1}/2) s_t(Y_t))            (stage on the previous node)
        Y_{t-1} = (Y_t + (beta_t/2) s_t + beta_t^2/(4 beta_{t+1}) (s_t - sqrt(alpha_{t+1}) s_{t+1}(Y^-)))
                  / sqrt(alpha_t)

    Nodes: 0 = the step start (t), 1 = the stage node = the previous grid node (t+1, fraction -r_1), 2 = the end
    (t-1).  The history slot only carries the previous node (E = 0): the first step uses
    :func:`derive_accel_ddim_phi_psi_startup`.  ODE order 2 (series check)."""
    ab = [abar(_node_lam(p)) for p in range(3)]
    beta_t = _beta(_node_lam(0), _node_lam(2))       # 1 - abar_0/abar_2
    beta_prev = _beta(_node_lam(1), _node_lam(0))    # beta_{t+1} = 1 - abar_1/abar_0
    sqrt_alpha_t, sqrt_alpha_prev = sp.sqrt(ab[0] / ab[2]), sp.sqrt(ab[1] / ab[0])
    s0, s1 = -1 / _sqrt_one_minus_abar(0), -1 / _sqrt_one_minus_abar(1)  # score per unit eps at nodes 0, 1
    corr = beta_t**2 / (4 * beta_prev)
    simp = lambda x: sp.powsimp(x, combine="exp")  # noqa: E731
    out = _nu(2) / sqrt_alpha_t  # Y_{t-1} -> x_{n+1}
    a = sp.ImmutableMatrix([[1], [simp(_nu(1) * sqrt_alpha_prev / _nu(0))], [simp(out / _nu(0))]])
    b = sp.ImmutableMatrix([[0, 0], [simp(-_nu(1) * sqrt_alpha_prev * beta_prev / 2 * s0), 0],
                            [simp(out * (beta_t / 2 + corr) * s0), simp(-out * corr * sqrt_alpha_prev * s1)]])
    return SymbolicTableau(
        name="accel-ddim", family="accelerated", variant="phi-psi", k=2, prediction="eps", sde=False, stages=2,
        history=1, noises=0, params=(), defaults=(), fractions=(sp.Integer(0), -R1), a=a, b=b,
        e=sp.ImmutableMatrix.zeros(3, 1), c=sp.ImmutableMatrix.zeros(3, 0), order=2, deterministic_order=2, keep=0,
        uncertain=True,  # coefficients reconstructed
        reference=REFERENCE + ", accelerated deterministic sampler form (a) (Phi/Psi with the auxiliary point "
                              "Y_t^-; coefficients reconstructed, not confirmed from the paper, "
                              "docs/algorithms/accelerated.md A.2.2)",
        notes="Second stage: the current point pulled back to the previous (noisier) grid node by a half-drift "
              "Euler step; backward difference of the drift with the Adams weight beta_t^2/(4 beta_{t+1}). "
              "The history slot only locates the previous node (E = 0).",
        derivation="diffsolve.symbolic.accelerated.derive_accel_ddim_phi_psi()",
    )


@lru_cache(maxsize=None)
def derive_accel_ddim_phi_psi_startup() -> SymbolicTableau:
    """The first step of form (a), which has no previous node: DPM-Solver-2 in eps form with its stage at the
    log-SNR midpoint (c_1 = 1/2), 2 NFE and order 2 like the method it starts."""
    from .singlestep import derive_singlestep

    tab = derive_singlestep(2, "eps", "interp").substitute({sy.c1: sp.Rational(1, 2)})
    return SymbolicTableau(**{**tab.__dict__, "name": "accel-ddim", "family": "accelerated",
                              "variant": "phi-psi-startup", "params": (), "defaults": (), "checked": (),
                              "reference": REFERENCE + ", form (a) start-up step (DPM-Solver-2, c1 = 1/2)",
                              "derivation": "diffsolve.symbolic.accelerated.derive_accel_ddim_phi_psi_startup()"})


ACCEL_DDPM_VARIANTS = ("readme", "ddpm-type")


@lru_cache(maxsize=None)
def derive_accel_ddpm(variant: str = "readme") -> SymbolicTableau:
    """accel-ddpm (README form): u = x + nu_n sqrt(beta/2) xi_1; x_{n+1} = nu_{n+1} [(u/nu_n + beta s)/sqrt(alpha_t)
    + sqrt(beta/2) xi_2], s = -F/sqrt(1 - abar_n), F = eps(u, t_n).

    ``variant="ddpm-type"`` is the baseline of docs/algorithms/accelerated.md A.2 / reduction A.5: all noise after
    the score call, Y_{t-1} = (Y + beta s(Y) + sqrt(beta) Z)/sqrt(alpha_t) (score-form Euler-Maruyama, weak order 1)."""
    if variant not in ACCEL_DDPM_VARIANTS:
        raise ValueError(f"accel-ddpm variants are {ACCEL_DDPM_VARIANTS}, got {variant!r}")
    l0, l1 = _node_lam(0), _node_lam(1)
    ab0, ab1 = abar(l0), abar(l1)
    nu0 = sp.sqrt(sp.exp(2 * sy.la(0)) + sp.exp(2 * sy.ls(0)))
    nu1 = sp.sqrt(sp.exp(2 * sy.la(1)) + sp.exp(2 * sy.ls(1)))
    alpha_t = ab0 / ab1
    # beta = 1 - abar_n/abar_{n+1} without cancellation: sinh(h) e^{-lam_{n+1}} / cosh(lam_n)
    beta = sp.sinh(sy.h) * sp.exp(-l1) / sp.cosh(l0)
    R = sp.Rational
    check = (beta - (1 - alpha_t)).subs({sy.la(0): R(-3, 10), sy.ls(0): R(-9, 10), sy.la(1): R(-1, 10),
                                          sy.ls(1): R(-16, 10), sy.h: R(9, 10)}).evalf(30)
    if abs(check) > 1e-25:
        raise AssertionError(f"beta identity failed: {check}")
    half = sp.sqrt(beta / 2)
    score_coef = -1 / sp.sqrt(1 - ab0)  # s = score_coef * eps in normalised coordinates
    out_u = nu1 / (nu0 * sp.sqrt(alpha_t))  # coefficient of u (x coordinates)
    out_f = nu1 * beta * score_coef / sp.sqrt(alpha_t)
    simp = lambda x: sp.simplify(sp.powsimp(x, combine="exp"))  # noqa: E731
    a = sp.ImmutableMatrix([[1], [simp(out_u)]])
    b = sp.ImmutableMatrix([[0], [simp(out_f)]])
    if variant == "readme":
        c = sp.ImmutableMatrix([[simp(nu0 * half), 0], [simp(out_u * nu0 * half), simp(nu1 * half)]])
    else:
        c = sp.ImmutableMatrix([[0, 0], [simp(nu1 * sp.sqrt(beta / alpha_t)), 0]])
    return SymbolicTableau(
        name="accel-ddpm", family="accelerated", variant=variant, k=1, prediction="eps", sde=False, stages=1,
        history=0, noises=2, params=(), defaults=(), fractions=(sp.Integer(0),), a=a, b=b,
        e=sp.ImmutableMatrix.zeros(2, 0), c=c, order=1, deterministic_order=1, strong_order=None, keep=0,
        reference=REFERENCE + (", accelerated stochastic sampler (README split-noise form), " if variant == "readme"
                               else ", DDPM-type score-form baseline of the paper, ")
                  + "docs/algorithms/accelerated.md A.2.1",
        notes="Score at the half-noised point Y+ = Y + sqrt(beta/2) Z (same t); second half-noise after the "
              "1/sqrt(alpha_t) scaling, as published; weak order 1 with a 2-8x smaller constant than DDPM.",
        derivation="diffsolve.symbolic.accelerated.derive_accel_ddpm()",
    )


def _beta(lam_from: sp.Expr, lam_to: sp.Expr) -> sp.Expr:
    """beta = 1 - abar(lam_from)/abar(lam_to) (lam_to > lam_from), written as
    sinh(lam_to - lam_from) e^{-lam_to} / cosh(lam_from) (no cancellation)."""
    return sp.sinh(lam_to - lam_from) * sp.exp(-lam_to) / sp.cosh(lam_from)


ACCEL_SDE_PARTS = ("startup", "base", "correction")
ACCEL_SDE_MOMENTA = ("ratio", "constant")


def accel_sde_kappa(momentum: str = "ratio") -> sp.Expr:
    """The momentum coefficient of docs/algorithms/accelerated.md B.2.3 at a step with history ratio r_1
    (rho = beta_{t+1}/beta_t): "ratio" (derived, any grid) (1/2 - a)/(a + (1 - a) rho); "constant" (smooth grids
    only) 1/2 - a."""
    if momentum not in ACCEL_SDE_MOMENTA:
        raise ValueError(f"accel-sde momentum rules are {ACCEL_SDE_MOMENTA}, got {momentum!r}")
    a = sy.a_pre
    if momentum == "constant":
        return sp.Rational(1, 2) - a
    l0 = _node_lam(0)
    rho = _beta(l0 - R1 * sy.h, l0) / _beta(l0, _node_lam(1))
    return (sp.Rational(1, 2) - a) / (a + (1 - a) * rho)


@lru_cache(maxsize=None)
def derive_accel_sde(part: str = "base", momentum: str = "ratio") -> SymbolicTableau:
    """accel-sde: diffsolve's RECONSTRUCTION following Li & Cai's description (arXiv 2410.23285;
    docs/algorithms/accelerated.md B.2), not
    their published update.  One step (S = -eps/sqrt(1 - abar), normalised coordinates x_bar = x/nu):

        Y+ = Y_t + sqrt(a beta) Z,   S_t = s_t(Y+)                                       (1 NFE)
        Y_{t-1} = (Y+ + beta S_t + sqrt((1 - a) beta) Z+) / sqrt(alpha_t)                  "base"
                  + beta kappa (S_t - sqrt(alpha_{t+1}) S_{t+1}) / sqrt(alpha_t)             "correction"

    ``part="base"``: the step without momentum (a runtime parameter; one history slot, E = 0; a = 0 is DDPM);
    ``"correction"``: the momentum term alone (rows zero except the output's F and H weights), which the runtime
    adds with its norm capped (docs/algorithms/accelerated.md B.2.1 clip; kappa from :func:`accel_sde_kappa`);
    ``"startup"``: the first step, no history, a = 1/2 (Paper A's half-noise split with both halves inside the
    scaling)."""
    if part not in ACCEL_SDE_PARTS:
        raise ValueError(f"accel-sde parts are {ACCEL_SDE_PARTS}, got {part!r}")
    l0, l1 = _node_lam(0), _node_lam(1)
    ab0, ab1, abp = abar(l0), abar(l1), abar(l0 - R1 * sy.h)
    nu0, nu1 = _nu(0), _nu(1)
    beta = _beta(l0, l1)
    sqrt_alpha_t = sp.sqrt(ab0 / ab1)
    score0 = -1 / sp.sqrt(1 - ab0)   # S_t = score0 * F_0 (eps at the stage input)
    simp = lambda x: sp.powsimp(x, combine="exp")  # noqa: E731
    out_u = nu1 / (nu0 * sqrt_alpha_t)
    history = 0 if part == "startup" else 1
    params, defaults = ((), ()) if part == "startup" else ((sy.a_pre,), (sp.Integer(0),))
    if part == "correction":
        kappa = accel_sde_kappa(momentum)
        score_prev = -1 / sp.sqrt(1 - abp)  # S_{t+1} = score_prev * H_1
        hist = -nu1 * beta * kappa * sp.sqrt(abp / ab0) * score_prev / sqrt_alpha_t
        a = sp.ImmutableMatrix([[1], [0]])
        b = sp.ImmutableMatrix([[0], [simp(nu1 * beta * kappa * score0 / sqrt_alpha_t)]])
        e = sp.ImmutableMatrix([[0], [simp(hist)]])
        c = sp.ImmutableMatrix.zeros(2, 2)
    else:
        a_frac = sp.Rational(1, 2) if part == "startup" else sy.a_pre
        pre = nu0 * sp.sqrt(a_frac * beta)
        post = nu1 * sp.sqrt((1 - a_frac) * beta) / sqrt_alpha_t
        a = sp.ImmutableMatrix([[1], [simp(out_u)]])
        b = sp.ImmutableMatrix([[0], [simp(nu1 * beta * score0 / sqrt_alpha_t)]])
        e = sp.ImmutableMatrix.zeros(2, history)
        c = sp.ImmutableMatrix([[simp(pre), 0], [simp(out_u * pre), simp(post)]])
    variant = part if part == "startup" else f"{part}-{momentum}" if part == "correction" else part
    return SymbolicTableau(
        name="accel-sde", family="accelerated", variant=variant, k=1 + history, prediction="eps", sde=False,
        stages=1, history=history, noises=2, params=params, defaults=defaults, fractions=(sp.Integer(0),), a=a,
        b=b, e=e, c=c, order=2, deterministic_order=1, keep=0, uncertain=True,  # a reconstruction
        reference="accel-sde (reconstruction following Li & Cai's description, arXiv 2410.23285), "
                  "docs/algorithms/accelerated.md B.2; not the authors' published update",
        notes=f"Reconstruction following Li & Cai's description, part {part!r}"
              + (f", momentum {momentum!r}" if part == "correction" else "") + ".",
        derivation=f"diffsolve.symbolic.accelerated.derive_accel_sde({part!r}, {momentum!r})",
    )
