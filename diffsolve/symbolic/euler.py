"""Euler-Maruyama for the reverse eta-SDE, derived from the lambda-time SDE of the data-prediction form.

The Form gives dx = [L(lam) x + K(lam) D] dlam + sigma sqrt(2 eta) dW
(docs/algorithms/exponential_integrators.md §2.4).  In the scaled variable y = x / sigma the schedule's own slope
d log sigma / dlam drops out of the drift:

    dy = [(L - d log sigma/dlam) y + (K / sigma) D] dlam + sqrt(2 eta) dW,

which SymPy reduces to dy = [-eta y + (1 + eta) e^lam D] dlam + sqrt(2 eta) dW for every schedule.  One
Euler-Maruyama step of it, mapped back by x = sigma y, needs only log alpha and log sigma at the step's end
points (no schedule derivative).  Weak and strong order 1, 1 NFE/step (Kloeden & Platen 1992); unlike the
exponential integrators it treats the linear part explicitly, so it needs small steps where eta h is not small.
"""

from __future__ import annotations

import sympy as sp

from . import symbols as sy
from .checks import SymbolicCheckError, check_series, check_structure
from .forms import SIGMA, form
from .tableau import SymbolicTableau

__all__ = ["derive_euler_maruyama"]

REFERENCE = "Euler-Maruyama (Kloeden & Platen 1992) on the reverse SDE of Song et al. (ICLR 2021, arXiv 2011.13456)"


def _scaled_drift():
    """(-eta, (1 + eta) e^lam): the drift of y = x / sigma, derived for a generic schedule sigma(lam)."""
    lam, eta = sp.Symbol("lam", real=True), sy.eta
    fm = form("data")
    linear = sp.simplify(fm.drift(lam, eta) - sp.diff(sp.log(SIGMA(lam)), lam))
    coefficient = sp.simplify(fm.model_coefficient(lam, eta) / SIGMA(lam))
    if linear.has(SIGMA) or coefficient.has(SIGMA):
        raise SymbolicCheckError(f"the scaled drift still depends on the schedule: {linear}, {coefficient}")
    return lam, linear, coefficient


def derive_euler_maruyama(prediction: str = "data", variant: str = "exact") -> SymbolicTableau:
    """Derive and check one Euler-Maruyama step (data prediction, symbolic eta)."""
    if prediction != "data" or variant != "exact":
        raise ValueError("Euler-Maruyama is derived for data prediction (variant 'exact') only")
    lam, linear, coefficient = _scaled_drift()
    lam0 = sy.la(0) - sy.ls(0)  # lambda at the step's start, as log alpha - log sigma
    h, eta = sy.h, sy.eta
    scale = sp.exp(sy.ls(1) - sy.ls(0))  # sigma_{n+1} / sigma_n, mapping y back to x
    a = sp.ImmutableMatrix([1, scale * (1 + h * linear.subs(lam, lam0))])
    b = sp.ImmutableMatrix([[0], [sp.simplify(sp.exp(sy.ls(1)) * h * coefficient.subs(lam, lam0))]])
    c = sp.ImmutableMatrix([[0], [sp.exp(sy.ls(1)) * sp.sqrt(2 * eta * h)]])
    tab = SymbolicTableau(
        name="euler-maruyama", family="euler-maruyama", variant=variant, k=1, prediction=prediction, sde=True,
        stages=1, history=0, noises=1, params=(eta,), defaults=(sy.PARAM_DEFAULTS[eta],), fractions=(sp.Integer(0),),
        a=a, b=b, e=sp.ImmutableMatrix.zeros(2, 0), c=c, order=1, deterministic_order=1, strong_order=1,
        reference=REFERENCE,
        notes="explicit in the linear part: stable for eta h < 2 only; prefer the exponential integrators",
        derivation=f"diffsolve.symbolic.euler.derive_euler_maruyama({prediction!r})",
    )
    check_structure(tab)
    check_series(tab)
    # the step variance 2 eta h sigma_{n+1}^2 is the exact one, sigma^2 (1 - e^{-2 eta h}), to first order in h
    exact = 1 - sp.exp(-2 * eta * h)
    if sp.series(c[1, 0] ** 2 / sp.exp(2 * sy.ls(1)) - exact, h, 0, 2).removeO() != 0:
        raise SymbolicCheckError("Euler-Maruyama noise variance is not first-order consistent")
    object.__setattr__(tab, "checked", ("structure", "series", "noise-first-order"))
    return tab
