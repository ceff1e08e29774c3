"""The two exact variation-of-constants forms of the eta-family (docs/algorithms/exponential_integrators.md §2.2 data,
§2.3 noise prediction).

In lambda-time (docs/algorithms/exponential_integrators.md §2.4) both parameterisations are the linear SDE

    dx = [L(lam) x + K(lam) F(x, lam)] dlam + sigma(lam) sqrt(2 eta) dW_lam

with F = D (data: L = dlog sigma/dlam - eta, K = (1+eta) alpha) or F = eps-hat (noise: L = dlog alpha/dlam,
K = -(1+eta) sigma).  A :class:`Form` states, for one parameterisation, the propagator
Phi(t, s) = exp(Integral_s^t L), and how the model integral Integral Phi(t, mu) K(mu) F dmu over a step of
length frac*h collapses onto the moment functions: prefactor(p) * sum_q ... M_q(argument(frac)).  Everything
node-dependent is written in log space (``la(p)``, ``ls(p)``) as one exponential of a difference of logs
(docs/algorithms/exponential_integrators.md §1.4).  ``checks.check_form`` verifies each statement symbolically
against the SDE above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy as sp

from .psi import Psi, PsiTilde
from .symbols import h, la, ls

__all__ = ["Form", "FORMS", "form", "SIGMA", "alpha_of", "sigma_of"]

SIGMA = sp.Function("sigma", positive=True)  # a generic schedule, sigma(lam); alpha(lam) = sigma(lam) e^lam


def sigma_of(lam: sp.Expr) -> sp.Expr:
    return SIGMA(lam)


def alpha_of(lam: sp.Expr) -> sp.Expr:
    return SIGMA(lam) * sp.exp(lam)


@dataclass(frozen=True)
class Form:
    """One parameterisation of the exponential integrator.

    ``drift(lam, eta)`` and ``model_coefficient(lam, eta)`` are L and K of the lambda-time SDE for the generic
    schedule; ``propagator(t, s, eta)`` is Phi(t, s); ``linear_factor(p, frac, eta)`` is Phi from node 0 to node p
    (fraction ``frac`` of the step) in log space; ``prefactor(p, eta)`` and ``argument(frac, eta)`` turn the
    model integral into moments: Integral_0^{frac h} Phi K F = prefactor * sum_j W_j F_j with W_j built from
    ``moment(q, argument)``.
    """

    prediction: str
    moment: type
    drift: Callable[[sp.Expr, sp.Expr], sp.Expr]
    model_coefficient: Callable[[sp.Expr, sp.Expr], sp.Expr]
    propagator: Callable[[sp.Expr, sp.Expr, sp.Expr], sp.Expr]
    linear_factor: Callable[[int, sp.Expr, sp.Expr], sp.Expr]
    prefactor: Callable[[int, sp.Expr], sp.Expr]
    argument: Callable[[sp.Expr, sp.Expr], sp.Expr]


FORMS = {
    "data": Form(
        prediction="data",
        moment=Psi,
        drift=lambda lam, eta: sp.diff(sp.log(sigma_of(lam)), lam) - eta,
        model_coefficient=lambda lam, eta: (1 + eta) * alpha_of(lam),
        propagator=lambda t, s, eta: sigma_of(t) / sigma_of(s) * sp.exp(-eta * (t - s)),
        linear_factor=lambda p, frac, eta: sp.exp(ls(p) - ls(0) - eta * frac * h),
        prefactor=lambda p, eta: sp.exp(la(p)),
        argument=lambda frac, eta: (1 + eta) * frac * h,
    ),
    "eps": Form(
        prediction="eps",
        moment=PsiTilde,
        drift=lambda lam, eta: sp.diff(sp.log(alpha_of(lam)), lam),
        model_coefficient=lambda lam, eta: -(1 + eta) * sigma_of(lam),
        propagator=lambda t, s, eta: alpha_of(t) / alpha_of(s),
        linear_factor=lambda p, frac, eta: sp.exp(la(p) - la(0)),
        prefactor=lambda p, eta: -(1 + eta) * sp.exp(ls(p)),
        argument=lambda frac, eta: frac * h,
    ),
}


def form(prediction: str) -> Form:
    """The :class:`Form` of ``prediction`` ("data" or "eps")."""
    try:
        return FORMS[prediction]
    except KeyError:
        raise ValueError(f"prediction must be one of {sorted(FORMS)}, got {prediction!r}") from None
