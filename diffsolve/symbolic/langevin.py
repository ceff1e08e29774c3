"""The underdamped-Langevin (ULD) step with a frozen gradient, derived exactly.

Per coordinate, with unit mass, friction gamma > 0 and the gradient G of the energy frozen at the start of the
step (Cheng, Chatterji, Bartlett & Jordan 2018, "Underdamped Langevin MCMC: a non-asymptotic analysis", the
integrator of §3 and Lemma 11; the inner sampler of Huang et al. 2024, "Reverse Transition Kernel", Algorithm 3):

    dz = v dt,   dv = -gamma v dt - G dt + sqrt(2 gamma) dB_t,   i.e.  dy = (A y + b) dt + B dB_t

with y = (z, v), A = [[0, 1], [0, -gamma]], b = (0, -G), B = (0, sqrt(2 gamma)).  One step of length tau is
solved exactly: the mean is Phi(tau) y_0 + Integral_0^tau Phi(tau - s) b ds with Phi(t) = exp(A t) (SymPy's matrix
exponential), the covariance is the Ito isometry Integral_0^tau Phi(tau - s) B B^T Phi(tau - s)^T ds (SymPy
integrals), and the noise is drawn through its 2x2 Cholesky factor, zeta = l11 n1, omega = l21 n1 + l22 n2:

    z' = z + c_zv v + c_zG G + zeta,   v' = c_vv v + c_vG G + omega.

Every coefficient is tau^m F(x) with x = gamma tau (``reduced``).  The generated module
(``diffsolve/_generated/uld.py``, printed by ``diffsolve.codegen.langevin``) evaluates six helper functions of x
(``HELPERS``: phi1 = c_zv / tau, phi2 = -c_zG / tau^2, var_z = Var_z / tau^2, cov_zv = Cov_zv / tau,
var_v = Var_v, det = (Var_z Var_v - Cov_zv^2) / tau^2) and assembles the seven coefficients from them
(``assembly``; l22 = sqrt(det / var_z), so Var_v - l21^2 is never formed).  For floating point:

- the closed form of a helper is printed as N(x, a) / x^p in a = 1 - exp(-x) = -expm1(-x) (``closed_form_in_a``);
- phi2, var_z and det cancel catastrophically as x -> 0 (``needs_series``: N cancels at leading order).  Below
  the switch point they are evaluated as exp(-k x) x^j P(x) with P the Taylor polynomial of
  exp(k x) F(x) / x^j and k the largest rate of the terms exp(-k x) of F (``helper_series``): every Taylor
  coefficient of P is positive (checked), so the series branch has no cancellation either.

``check_uld`` verifies the derivation symbolically.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from math import factorial

import sympy as sp
from sympy.polys.ring_series import rs_exp, rs_trunc
from sympy.polys.rings import ring

__all__ = [
    "gamma",
    "tau",
    "x",
    "a",
    "COEFFICIENTS",
    "HELPERS",
    "HELPER_PARTS",
    "SERIES_HELPERS",
    "propagator",
    "mean",
    "ito_covariance",
    "determinant",
    "cholesky",
    "coefficients",
    "reduced",
    "parts",
    "helpers",
    "helper_symbols",
    "assembly",
    "part_in_a",
    "closed_form_in_a",
    "part_cancels",
    "needs_series",
    "PartSeries",
    "part_series",
    "series_parts",
    "series_terms",
    "check_uld",
]

gamma = sp.Symbol("gamma", positive=True)
tau = sp.Symbol("tau", positive=True)
x = sp.Symbol("x", positive=True)  # gamma * tau
a = sp.Symbol("a", positive=True)  # 1 - exp(-x) = -expm1(-x)
z = sp.Symbol("z", real=True)
v = sp.Symbol("v", real=True)
G = sp.Symbol("G", real=True)
_S = sp.Symbol("s", positive=True)  # integration variable: time since the step start
_U = sp.Symbol("u", positive=True)  # integration variable of the check: time to the step end
_T = sp.Symbol("t", positive=True)  # running time of the ODE checks
_LAMBDA = sp.Symbol("lambda", positive=True)  # scaling variable of the homogeneity test

#: the order of ``uld_coefficients``' result
COEFFICIENTS = ("c_vv", "c_vG", "c_zv", "c_zG", "l11", "l21", "l22")
#: the helper functions of x the generated module evaluates
HELPERS = ("phi1", "phi2", "var_z", "cov_zv", "var_v_z")
#: helper -> (numerator part, denominator part or None) in ``parts``; var_v_z = det / Var_z = Var(v | z)
HELPER_PARTS = {"phi1": ("phi1", None), "phi2": ("phi2", None), "var_z": ("var_z", None),
                "cov_zv": ("cov_zv", None), "var_v_z": ("det", "var_z")}
#: the helpers that get a series branch (``check_uld`` checks this against ``needs_series``)
SERIES_HELPERS = ("phi2", "var_z", "var_v_z")

A = sp.ImmutableMatrix([[0, 1], [0, -gamma]])
b = sp.ImmutableMatrix([0, -G])
B = sp.ImmutableMatrix([0, sp.sqrt(2 * gamma)])


def _tidy(expr: sp.Expr) -> sp.Expr:
    return sp.powsimp(sp.expand(expr), combine="exp")


def _zero(expr: sp.Expr) -> bool:
    """expr == 0 identically: expanded (exponentials combined), then as a rational function, then simplify."""
    expr = _tidy(expr)
    if expr == 0:
        return True
    if not expr.has(sp.Pow) or all(p.exp.is_Integer for p in expr.atoms(sp.Pow)):
        if sp.cancel(sp.expand(expr, power_exp=True)) == 0:
            return True
    return sp.simplify(expr) == 0


# ------------------------------------------------------------------------------------------------ derivation
@lru_cache(maxsize=None)
def propagator(t: sp.Expr = tau) -> sp.ImmutableMatrix:
    """Phi(t) = exp(A t), SymPy's matrix exponential."""
    return sp.ImmutableMatrix((A * t).exp().applyfunc(_tidy))


@lru_cache(maxsize=None)
def mean(t: sp.Expr = tau) -> sp.ImmutableMatrix:
    """E[(z, v)(t)] = Phi(t) (z, v) + Integral_0^t Phi(t - s) b ds."""
    forced = (propagator(t - _S) * b).applyfunc(lambda e: sp.integrate(_tidy(e), (_S, 0, t)))
    return sp.ImmutableMatrix((propagator(t) * sp.Matrix([z, v]) + forced).applyfunc(_tidy))


@lru_cache(maxsize=None)
def ito_covariance(t: sp.Expr = tau) -> sp.ImmutableMatrix:
    """Cov((z, v)(t)) = Integral_0^t K(s) K(s)^T ds with K(s) = Phi(t - s) B (Ito isometry, SymPy integrals)."""
    kernel = propagator(t - _S) * B
    cov = sp.zeros(2, 2)
    for i in range(2):
        for j in range(i, 2):
            cov[i, j] = cov[j, i] = _tidy(sp.integrate(_tidy(kernel[i] * kernel[j]), (_S, 0, t)))
    return sp.ImmutableMatrix(cov)


@lru_cache(maxsize=None)
def determinant() -> sp.Expr:
    """det Cov = Var_z Var_v - Cov_zv^2."""
    cov = ito_covariance()
    return _tidy(cov[0, 0] * cov[1, 1] - cov[0, 1] ** 2)


@lru_cache(maxsize=None)
def cholesky() -> sp.ImmutableMatrix:
    """The lower Cholesky factor L of the step covariance: l11 = sqrt(Var_z), l21 = Cov_zv / l11,
    l22 = sqrt(Var_v - l21^2) = sqrt(det / Var_z)."""
    cov = ito_covariance()
    l11 = sp.sqrt(cov[0, 0])
    return sp.ImmutableMatrix([[l11, 0], [cov[1, 0] / l11, sp.sqrt(determinant() / cov[0, 0])]])


@lru_cache(maxsize=None)
def coefficients() -> dict:
    """{name: expression in (gamma, tau)} for the names ``COEFFICIENTS`` (the mean's partial derivatives in
    v and G, and the Cholesky factor)."""
    mz, mv = mean()
    for expr in (mz, mv):  # the mean is affine in (z, v, G)
        if any(sp.expand(expr.diff(p, q)) != 0 for p in (z, v, G) for q in (z, v, G)):
            raise AssertionError(f"the mean {expr} is not affine in (z, v, G)")
    if _tidy(mz.diff(z)) != 1 or mv.diff(z) != 0 or _tidy(mz.subs({v: 0, G: 0})) != z or mv.subs({v: 0, G: 0}):
        raise AssertionError(f"the mean ({mz}, {mv}) is not z + ..., 0 z + ...")
    chol = cholesky()
    return {
        "c_vv": _tidy(mv.diff(v)),
        "c_vG": _tidy(mv.diff(G)),
        "c_zv": _tidy(mz.diff(v)),
        "c_zG": _tidy(mz.diff(G)),
        "l11": chol[0, 0],
        "l21": chol[1, 0],
        "l22": chol[1, 1],
    }


def _scaling_power(expr: sp.Expr) -> int:
    """m with expr(gamma / lambda, lambda tau) = lambda^m expr(gamma, tau)."""
    scaled = expr.subs({gamma: gamma / _LAMBDA, tau: _LAMBDA * tau}, simultaneous=True)
    ratio = sp.simplify(scaled / expr)
    for m in range(-4, 5):
        if sp.simplify(ratio - _LAMBDA**m) == 0:
            return m
    raise AssertionError(f"{expr} is not tau^m times a function of gamma tau (scaling ratio {ratio})")


def reduced(expr: sp.Expr) -> tuple[int, sp.Expr]:
    """(m, F) with expr = tau^m F(x), x = gamma tau."""
    m = _scaling_power(expr)
    f = _tidy(expr.subs(gamma, x / tau) / tau**m)
    if f.has(tau):
        raise AssertionError(f"{expr} / tau^{m} still depends on tau: {f}")
    return m, f


@lru_cache(maxsize=None)
def parts() -> dict:
    """{part: (m, F)}: the covariance entries, det Cov and the mean coefficients phi1 = c_zv / tau,
    phi2 = -c_zG / tau^2 as tau^m F(x)."""
    c, cov = coefficients(), ito_covariance()
    sources = {"phi1": c["c_zv"], "phi2": -c["c_zG"], "var_z": cov[0, 0], "cov_zv": cov[0, 1],
               "var_v": cov[1, 1], "det": determinant()}
    return {name: reduced(expr) for name, expr in sources.items()}


def helpers() -> dict:
    """{helper: F(x)}: each helper is a part or a quotient of two parts (``HELPER_PARTS``)."""
    p = parts()
    return {name: p[num][1] if den is None else p[num][1] / p[den][1] for name, (num, den) in HELPER_PARTS.items()}


def helper_symbols() -> dict:
    """{helper: the Symbol standing for its value in ``assembly``}."""
    return {name: sp.Symbol(name, positive=True) for name in HELPERS}


@lru_cache(maxsize=None)
def assembly() -> dict:
    """{coefficient: (m, R)}: coefficient = R tau^m with R an expression in x and the helper symbols.

    c_vv = exp(-x) and the mean coefficients are +-phi1 tau, -phi2 tau^2; the Cholesky factor of the covariance
    written in the helpers is l11 = tau sqrt(var_z), l21 = cov_zv / sqrt(var_z) and l22 = sqrt(var_v_z), since
    Var_v - l21^2 = det / Var_z = Var(v | z)."""
    h, p = helper_symbols(), parts()
    var_z, cov_zv = tau ** p["var_z"][0] * h["var_z"], tau ** p["cov_zv"][0] * h["cov_zv"]
    m_cond = p["det"][0] - p["var_z"][0]
    l11 = sp.sqrt(var_z)
    exprs = {"l11": l11, "l21": cov_zv / l11, "l22": sp.sqrt(tau**m_cond * h["var_v_z"])}
    for name in ("c_vv", "c_vG", "c_zv", "c_zG"):
        m, f = reduced(coefficients()[name])
        matches = [s * tau**m * h[k] for k in ("phi1", "phi2") for s in (1, -1)
                   if p[k][0] == m and _zero(f - s * p[k][1])]
        exprs[name] = matches[0] if matches else tau**m * f
    out = {}
    for name in COEFFICIENTS:
        expr = sp.powsimp(exprs[name], force=True)
        r, rest = expr.as_independent(tau, as_Add=False)
        m = 0 if rest == 1 else sp.degree(rest, tau)
        if rest != tau**m or r.has(gamma):
            raise AssertionError(f"{name}: {expr} is not tau^m R(x, helpers)")
        out[name] = (int(m), r)
    return out


# ------------------------------------------------------------------------------------------------ floating point
@lru_cache(maxsize=None)
def part_in_a(name: str) -> tuple[sp.Expr, int]:
    """(N, p) with part = N(x, a) / x^p, a = 1 - exp(-x) (N factored)."""
    f = parts()[name][1]
    g = sp.expand(sp.expand(f).xreplace({sp.exp(-x): 1 - a, sp.exp(-2 * x): (1 - a) ** 2}))
    if g.has(sp.exp):
        raise AssertionError(f"{name} = {f} is not a rational function of x, exp(-x) and exp(-2x)")
    num, den = sp.fraction(sp.together(g))
    poly = sp.Poly(den, x)
    if poly.as_expr() != poly.LC() * x ** poly.degree():
        raise AssertionError(f"{name}: denominator {den} is not a power of x")
    return sp.factor(num / poly.LC()), poly.degree()


def closed_form_in_a(name: str) -> tuple[sp.Expr, sp.Expr, int]:
    """(N, D, p) with helper = N(x, a) / D(x, a) / x^p: the closed form the generated module prints."""
    num, den = HELPER_PARTS[name]
    n, p = part_in_a(num)
    if den is None:
        return n, sp.S.One, p
    d, q = part_in_a(den)
    return n, d, p - q


def _order_at_zero(poly_expr: sp.Expr) -> int:
    return min(m[0] for m in sp.Poly(poly_expr, x).monoms())


def part_cancels(name: str) -> bool:
    """True when the closed form N(x, a) / x^p of a part cancels as x -> 0: with a replaced by its leading term
    x, N has a lower order at 0 than the part's true order (``part_series(name).shift + p``)."""
    num, p = part_in_a(name)
    naive = sp.expand(num.subs(a, x))
    return naive == 0 or _order_at_zero(naive) < part_series(name).shift + p


def needs_series(name: str) -> bool:
    """True when the closed form of a helper cancels catastrophically as x -> 0 (one of its parts does)."""
    return any(part_cancels(p) for p in HELPER_PARTS[name] if p is not None)


def _rate(f: sp.Expr) -> int:
    """k: the largest rate of the terms exp(-k x) of F."""
    rates = [-sp.Poly(e.args[0], x).LC() for e in sp.expand(f).atoms(sp.exp)]
    if not rates or any(not r.is_Integer or r <= 0 for r in rates):
        raise AssertionError(f"{f}: exponentials with rates {rates} are not exp(-k x) with integer k > 0")
    return int(max(rates))


def _fraction(q) -> Fraction:
    q = sp.Rational(q)
    return Fraction(int(q.p), int(q.q))


@dataclass(frozen=True)
class PartSeries:
    """part(x) = exp(-k x) x^j P(x), P(x) = sum_n c_n x^n the Taylor series of exp(k x) part(x) / x^j.

    ``numerator`` = ((coefficient, power, rate), ...) with exp(k x) part(x) = sum c x^power e^(rate x) / x^p
    (p = ``denominator_power``): an exact polynomial-exponential form, entire in x."""

    name: str
    rate: int
    shift: int
    numerator: tuple
    denominator_power: int

    def numerator_expr(self) -> sp.Expr:
        return sp.Add(*[c * x**q * sp.exp(r * x) for c, q, r in self.numerator])

    def coefficients(self, n: int) -> tuple[Fraction, ...]:
        """c_0..c_{n-1} exactly: the Taylor coefficients of the numerator by SymPy's ring series (``rs_exp``),
        shifted by p + j."""
        ring_x, X = ring("x", sp.QQ)
        low = self.shift + self.denominator_power
        prec = n + low
        total = ring_x(0)
        for c, q, r in self.numerator:
            total += rs_trunc(ring_x(c) * X**q * rs_exp(r * X, X, prec), X, prec)
        if any(total.coeff(X**i) != 0 for i in range(low)):
            raise AssertionError(f"{self.name}: the numerator does not vanish to order {low} at x = 0")
        return tuple(_fraction(total.coeff(X ** (low + i))) for i in range(n))

    def coefficients_by_formula(self, n: int) -> tuple[Fraction, ...]:
        """The same coefficients from the exponential series, [x^d] x^q e^(r x) = r^(d-q) / (d-q)!."""
        low = self.shift + self.denominator_power
        return tuple(
            sum((_fraction(c) * Fraction(r ** (d - q), factorial(d - q)) for c, q, r in self.numerator if d >= q),
                Fraction(0))
            for d in range(low, low + n)
        )

    def polynomial(self, n: int) -> sp.Expr:
        """P_n(x) = sum_{i<n} c_i x^i."""
        return sp.Add(*[sp.Rational(c.numerator, c.denominator) * x**i for i, c in enumerate(self.coefficients(n))])

    def truncated(self, n: int) -> sp.Expr:
        """exp(-k x) x^j P_n(x)."""
        return sp.exp(-self.rate * x) * x**self.shift * self.polynomial(n)


@lru_cache(maxsize=None)
def part_series(name: str) -> PartSeries:
    """The weighted series of a part."""
    f = parts()[name][1]
    k = _rate(f)
    num, den = sp.fraction(sp.together(_tidy(sp.exp(k * x) * f)))
    poly = sp.Poly(den, x)
    if poly.as_expr() != poly.LC() * x ** poly.degree():
        raise AssertionError(f"{name}: exp(k x) F has denominator {den}, not a power of x")
    terms = []
    for term in sp.Add.make_args(_tidy(num / poly.LC())):
        c, rest = term.as_independent(x, as_Add=False)
        q, r = 0, 0
        for factor in sp.Mul.make_args(rest):
            base, e = factor.as_base_exp()
            if isinstance(factor, sp.exp):
                r += int(sp.Poly(factor.args[0], x).LC())
            elif base == x and e.is_Integer:
                q += int(e)
            elif factor != 1:
                raise AssertionError(f"{name}: unexpected factor {factor} in {num}")
        terms.append((sp.Rational(c), q, r))
    terms = tuple(sorted(terms, key=lambda t: (t[2], t[1], t[0])))
    head = PartSeries(name, k, 0, terms, 0).coefficients(poly.degree() + 8)
    order = next(i for i, c in enumerate(head) if c != 0)
    return PartSeries(name, k, order - poly.degree(), terms, poly.degree())


def series_parts() -> tuple[str, ...]:
    """The parts whose series the generated module evaluates (those of ``SERIES_HELPERS``), in order."""
    out = []
    for name in SERIES_HELPERS:
        out += [p for p in HELPER_PARTS[name] if p is not None and p not in out]
    return tuple(out)


def series_terms(name: str, x_switch: Fraction, bits: int = 54) -> int:
    """The smallest N with tail sum_{n >= N} c_n x*^n <= 2^-bits sum_{n < N} c_n x*^n for a part (all c_n > 0)."""
    coeffs = part_series(name).coefficients(160)
    if any(c <= 0 for c in coeffs):
        raise AssertionError(f"{name}: the weighted series has a non-positive coefficient")
    terms = [c * x_switch**n for n, c in enumerate(coeffs)]
    if terms[-1] * 2 ** (bits + 10) > sum(terms):
        raise AssertionError(f"{name}: 160 terms are too few to bound the tail at x = {x_switch}")
    for n in range(1, len(terms)):
        if sum(terms[n:]) * 2**bits <= sum(terms[:n]):
            return n
    raise AssertionError(f"{name}: no truncation reaches 2^-{bits} at x = {x_switch}")


# ------------------------------------------------------------------------------------------------ checks
def check_uld(n_terms: dict | None = None, series_order: int = 6) -> list[str]:
    """Verify the derivation symbolically (every difference simplifies to 0); return the names of the checks.

    - ``propagator``: d/dt Phi = A Phi, Phi(0) = I;
    - ``mean``: d/dt m = A m + b, m(0) = (z, v) (the mean solves the linear ODE);
    - ``ito``: each covariance entry equals the Ito integral written in u = tau - s,
      Integral_0^tau [e^{A u} B]_i [e^{A u} B]_j du, and Cov(t) solves the Lyapunov equation
      dS/dt = A S + S A^T + B B^T, S(0) = 0;
    - ``cholesky``: L L^T = Cov, L lower triangular with a positive diagonal (the kernels of z and v have a
      positive Wronskian, so Var_z > 0 and det > 0);
    - ``reduced``: each part (phi1, phi2, var_z, cov_zv, var_v, det) equals its closed form N(x, a) / x^p and each
      helper its closed form N / D / x^p; every coefficient equals ``assembly``'s R tau^m with the helpers
      substituted (the squares for the Cholesky entries, which are positive);
    - ``series``: ``needs_series`` selects exactly ``SERIES_HELPERS``; for each part of theirs (phi2, var_z, det),
      exp(k x) F x^p equals the polynomial-exponential numerator, whose ring-series Taylor coefficients equal the
      exponential-series formula and are positive for the N kept (``n_terms``: {part: N}, default 12), so
      F - exp(-k x) x^j P_N = O(x^(j + N)); and, by sympy.series, F - exp(-k x) x^j P_K = O(x^(j + K)) for
      K = ``series_order``.
    """
    checked = []
    phi, eye = propagator().subs(tau, _T), sp.eye(2)
    for i in range(2):
        for j in range(2):
            if not _zero(phi.diff(_T)[i, j] - (A * phi)[i, j]) or not _zero(phi.subs(_T, 0)[i, j] - eye[i, j]):
                raise AssertionError(f"Phi(t) = {phi} does not solve Phi' = A Phi, Phi(0) = I")
    checked.append("propagator")

    m = mean().subs(tau, _T)
    rhs = A * m + b
    for i in range(2):
        if not _zero(m.diff(_T)[i] - rhs[i]) or not _zero(m.subs(_T, 0)[i] - (z, v)[i]):
            raise AssertionError(f"the mean {m} does not solve m' = A m + b, m(0) = (z, v)")
    checked.append("mean")

    cov = ito_covariance()
    kernel = propagator().subs(tau, _U) * B
    for i in range(2):
        for j in range(i, 2):
            integral = sp.Integral(_tidy(kernel[i] * kernel[j]), (_U, 0, tau))
            if not _zero(integral.doit() - cov[i, j]):
                raise AssertionError(f"Cov[{i},{j}] = {cov[i, j]} != Ito integral {integral}")
    s_t = cov.subs(tau, _T)
    lyapunov = A * s_t + s_t * A.T + B * B.T
    for i in range(2):
        for j in range(2):
            if not _zero(s_t.diff(_T)[i, j] - lyapunov[i, j]) or not _zero(s_t.subs(_T, 0)[i, j]):
                raise AssertionError(f"Cov(t) = {s_t} does not solve the Lyapunov equation")
    checked.append("ito")

    chol = cholesky()
    gram = chol * chol.T
    for i in range(2):
        for j in range(2):
            if not _zero(gram[i, j] - cov[i, j]):
                raise AssertionError(f"(L L^T - Cov)[{i},{j}] != 0 for L = {chol}")
    # positive diagonal: Var_z = Integral K_z^2 > 0 and det > 0 (strict Cauchy-Schwarz) because the kernels
    # K_z, K_v are linearly independent (their Wronskian in s does not vanish)
    k_step = propagator(tau - _S) * B
    wronskian = sp.simplify(k_step[0] * k_step[1].diff(_S) - k_step[0].diff(_S) * k_step[1])
    if chol[0, 1] != 0 or not wronskian.is_positive:
        raise AssertionError(f"L = {chol} is not lower triangular with a positive diagonal (Wronskian {wronskian})")
    checked.append("cholesky")

    hs, ps = helpers(), parts()
    for name in ps:
        num, p = part_in_a(name)
        if not _zero(num.subs(a, 1 - sp.exp(-x)) / x**p - ps[name][1]):
            raise AssertionError(f"part {name}: closed form {num} / x^{p} != {ps[name][1]}")
    for name, f in hs.items():
        num, den, p = closed_form_in_a(name)
        to_exp = {a: 1 - sp.exp(-x)}
        if not _zero(sp.together(num.subs(to_exp) / den.subs(to_exp) / x**p - f)):
            raise AssertionError(f"helper {name}: closed form {num} / ({den}) / x^{p} != {f}")
    c = coefficients()
    back = {sym: hs[name] for name, sym in helper_symbols().items()}
    for name, (m, r) in assembly().items():
        value = (tau**m * r.xreplace(back)).subs(x, gamma * tau)
        target = c[name]
        if name.startswith("l"):  # positive square roots: compare the squares
            value, target = sp.powdenest(value**2, force=True), target**2
        if not _zero(sp.together(value - target)):
            raise AssertionError(f"{name}: assembly tau^{m} {r} != {c[name]}")
    checked.append("reduced")

    selected = tuple(name for name in HELPERS if needs_series(name))
    if selected != SERIES_HELPERS:
        raise AssertionError(f"needs_series selects {selected}, SERIES_HELPERS = {SERIES_HELPERS}")
    for name in series_parts():
        n = (n_terms or {}).get(name, 12)
        s = part_series(name)
        if not _zero(sp.exp(s.rate * x) * ps[name][1] * x**s.denominator_power - s.numerator_expr()):
            raise AssertionError(f"{name}: exp({s.rate} x) F x^{s.denominator_power} != {s.numerator_expr()}")
        ring_coeffs, formula = s.coefficients(n), s.coefficients_by_formula(n)
        if ring_coeffs != formula or any(q <= 0 for q in ring_coeffs):
            raise AssertionError(f"{name}: series coefficients {ring_coeffs} vs {formula} (all must be > 0)")
        # independently, sympy.series: exp(k x) x^p (F - exp(-k x) x^j P_K) = N - x^(p + j) P_K = O(x^(p + j + K))
        k, low = min(n, series_order), s.shift + s.denominator_power
        rest = sp.series(s.numerator_expr() - x**low * s.polynomial(k), x, 0, low + k).removeO()
        if sp.expand(rest) != 0:
            raise AssertionError(f"{name}: F - series = {rest} + ... is not O(x^{s.shift + k})")
    checked.append("series")
    return checked
