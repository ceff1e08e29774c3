"""Exact conversions between model parameterisations (docs/algorithms/exponential_integrators.md §1.3).

Every prediction type P is affine in (x, D) at a fixed time, P = c_x(t) x + c_D(t) D, with D = E[x_0 | x_t = x]:

| type    | c_x      | c_D                     | meaning                                  |
|---------|----------|-------------------------|------------------------------------------|
| `data`  | 0        | 1                       | E[x_0 | x]                               |
| `eps`   | 1/σ      | −α/σ                    | E[ε | x]                                 |
| `v`     | α/σ      | −(α² + σ²)/σ            | E[α ε − σ x_0 | x]  (Salimans & Ho 2022) |
| `score` | −1/σ²    | α/σ²                    | ∇ log p_t(x)                             |
| `flow`  | σ′/σ     | α′ − σ′ α/σ             | E[α′ x_0 + σ′ ε | x]  (PF-ODE velocity)  |

so one table converts any type into any other exactly; a conversion through a singular point (c_D = 0, e.g.
``eps`` at α = 0, or anything at σ = 0) raises instead of producing inf/NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import DiffsolveError

__all__ = ["PREDICTIONS", "Conversion", "coefficients", "conversion", "conversions", "convert", "check_prediction"]


def _data(a, s, da, ds):
    return np.zeros_like(a), np.ones_like(a)


def _eps(a, s, da, ds):
    return 1.0 / s, -a / s


def _v(a, s, da, ds):
    return a / s, -(a * a + s * s) / s


def _score(a, s, da, ds):
    return -1.0 / (s * s), a / (s * s)


def _flow(a, s, da, ds):
    return ds / s, da - ds * a / s


_TABLE = {"data": _data, "eps": _eps, "v": _v, "score": _score, "flow": _flow}
PREDICTIONS = tuple(_TABLE)


def check_prediction(kind) -> str:
    if kind not in _TABLE:
        raise DiffsolveError(
            f"unknown prediction type {kind!r}; expected one of {', '.join(PREDICTIONS)} "
            "(what the model returns: x0 estimate, noise, v, score, or flow velocity)"
        )
    return kind


def coefficients(kind: str, schedule, t):
    """(c_x, c_D) of prediction ``kind`` at time(s) ``t``: P = c_x x + c_D D."""
    check_prediction(kind)
    a, s = schedule.alpha(t), schedule.sigma(t)
    da, ds = schedule.dalpha_dt(t), schedule.dsigma_dt(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _TABLE[kind](a, s, da, ds)


class Conversion(NamedTuple):
    """P_to = tx u + td (v - fx u) / fd for a model output v of another type at state u; ``identity`` when the
    types agree.  The one formula every backend applies (:meth:`apply` here, the scalar kernel in
    :mod:`diffsolve.kernels.scalar`), in this order of operations."""

    fx: float
    fd: float
    tx: float
    td: float
    identity: bool

    def apply(self, value, x):
        """``value`` (type ``frm``) at state ``x`` as type ``to``."""
        return value if self.identity else self.tx * x + self.td * ((value - self.fx * x) / self.fd)

    def typed(self, dtype) -> "Conversion":
        """This conversion with (fx, fd, tx, td) as scalars of ``dtype``, for the compiled kernels: a float32 state
        then converts in float32, as :meth:`apply` does with NumPy (float64 scalars would promote every element
        to float64 and back, at half the vector width)."""
        c = np.dtype(dtype).type
        return Conversion(c(self.fx), c(self.fd), c(self.tx), c(self.td), self.identity)


IDENTITY = Conversion(0.0, 1.0, 0.0, 1.0, True)


def conversion(schedule, t: float, frm: str, to: str) -> Conversion:
    """The :class:`Conversion` of a ``frm`` prediction into ``to`` at time ``t``; raises where a
    parameterisation is singular (c_D = 0, or a non-finite coefficient)."""
    return conversions(schedule, np.asarray([t], dtype=np.float64), frm, to)[0]


def conversions(schedule, t, frm: str, to: str) -> list:
    """:func:`conversion` at every time of the array ``t`` (flattened, in order), the schedule evaluated once
    over the array: a run converts at every stage of every step, and one evaluation per time is most of the
    cost of building a :class:`~diffsolve.stepper.Stepper`."""
    check_prediction(frm)
    check_prediction(to)
    t = np.asarray(t, dtype=np.float64).ravel()
    if frm == to:
        return [IDENTITY] * t.size
    fx, fd = coefficients(frm, schedule, t)
    tx, td = coefficients(to, schedule, t)
    coef = np.stack(np.broadcast_arrays(fx, fd, tx, td, t)[:4]).reshape(4, t.size)
    bad = ~np.isfinite(coef)
    bad[1] |= coef[1] == 0  # c_D = 0: singular
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=0))[0])
        name = frm if bad[0, i] or bad[1, i] else to
        raise DiffsolveError(
            f"cannot convert a {frm!r} prediction to {to!r} at t = {float(t[i])!r} (alpha = "
            f"{float(schedule.alpha(t[i])):.3g}, sigma = {float(schedule.sigma(t[i])):.3g}): "
            f"the {name!r} parameterisation is singular there; use a 'data', 'v' or 'flow' model at alpha = 0, "
            "or stop the grid before sigma = 0"
        )
    return [Conversion(a, b, c, d, False) for a, b, c, d in coef.T.tolist()]


def convert(value, x, t, schedule, frm: str, to: str):
    """Convert a model output ``value`` of type ``frm`` at (x, t) into type ``to`` (exact, linear in x)."""
    return conversion(schedule, t, frm, to).apply(value, x)
