"""Noise schedules: x_t = alpha(t) x_0 + sigma(t) eps (docs/algorithms/exponential_integrators.md §1, §5).

A schedule is given by log alpha(t) and log sigma(t) as SymPy expressions; the half log-SNR lam = log(alpha/sigma),
its derivative, the drift f, the diffusion g^2 and the inverse t(lam) are derived symbolically
(:mod:`diffsolve.symbolic.schedule`) and printed to vectorised NumPy functions.  Catalog kinds are one class
each; :meth:`Schedule.from_expr` parses user expressions with a whitelist; :class:`DiscreteSchedule` holds
DDPM betas with log alpha piecewise linear in t.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Callable

import numpy as np

from .errors import DiffsolveError

__all__ = [
    "Schedule",
    "ExprSchedule",
    "VPLinear",
    "VPCosine",
    "VE",
    "EDM",
    "Flow",
    "OU",
    "DiscreteSchedule",
    "get_schedule",
    "list_schedules",
]


def _plain(value, limit: int = 80) -> str:
    """``value`` as plain Python text for a message (0.5, [1.0, 2.0], 'abc'; never a NumPy repr)."""
    if isinstance(value, np.ndarray):
        text = repr(value.tolist()) if value.size <= 8 else f"an array of shape {value.shape}"
    elif isinstance(value, np.generic):
        text = repr(value.item())
    elif isinstance(value, dict) and len(value) <= 8:
        text = "{" + ", ".join(f"{k!r}: {_plain(v, limit)}" for k, v in value.items()) + "}"
    elif isinstance(value, (tuple, list)) and len(value) <= 8:
        inner = ", ".join(_plain(v, limit) for v in value)
        text = f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{inner}]"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_times(values, name: str) -> np.ndarray:
    raw = values if isinstance(values, np.ndarray) else None
    if raw is None:
        try:
            raw = np.asarray(values)
        except (TypeError, ValueError):
            raw = None
    if raw is not None and (raw.dtype.kind not in "iufO" or isinstance(values, (bool, np.bool_))):
        raise DiffsolveError(
            f"{name} must be a real number or an array of real numbers, got {type(values).__name__} "
            f"{_plain(values)} (dtype {raw.dtype}); pass float64 values"
        )
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise DiffsolveError(
            f"{name} must be a real number or an array of real numbers, got {type(values).__name__} {_plain(values)}"
        ) from None
    if np.isnan(arr).any():
        raise DiffsolveError(f"{name} contains NaN; pass finite values")
    return arr


class Schedule:
    """Numeric interface shared by every schedule kind.

    Attributes: ``name``, ``params``, ``domain = (lo, hi)`` (times where the schedule is defined; lam is
    +inf where sigma = 0 and -inf where alpha = 0) and the default sampling range ``t_max`` (noisiest) to
    ``t_min`` (cleanest) used by :func:`diffsolve.time_grid`.
    """

    name: str = "schedule"
    params: dict
    domain: tuple[float, float]
    t_max: float
    t_min: float

    # -- numeric interface (vectorised, float64) -------------------------------------------------------
    def log_alpha(self, t):
        raise NotImplementedError

    def log_sigma(self, t):
        raise NotImplementedError

    def dlam_dt(self, t):
        raise NotImplementedError

    def f(self, t):
        """Drift f(t) = d log alpha / dt."""
        raise NotImplementedError

    def dlog_sigma_dt(self, t):
        raise NotImplementedError

    def t_of_lam(self, lam):
        raise NotImplementedError

    def alpha(self, t):
        return np.exp(self.log_alpha(t))

    def sigma(self, t):
        return np.exp(self.log_sigma(t))

    def lam(self, t):
        """Half log-SNR lam(t) = log(alpha/sigma), strictly decreasing in t."""
        t = self._check_t(t)
        with np.errstate(invalid="ignore"):
            return self.log_alpha(t) - self.log_sigma(t)

    def g2(self, t):
        """Diffusion g^2(t) = d sigma^2/dt - 2 f sigma^2 = -2 sigma^2 dlam/dt."""
        t = self._check_t(t)
        return -2.0 * np.exp(2.0 * self.log_sigma(t)) * self.dlam_dt(t)

    def dalpha_dt(self, t):
        return self.alpha(t) * self.f(t)

    def dsigma_dt(self, t):
        return self.sigma(t) * self.dlog_sigma_dt(t)

    # -- helpers -----------------------------------------------------------------------------------------
    @property
    def lam_range(self) -> tuple[float, float]:
        """(lam at the domain's noisy end, lam at its clean end)."""
        lo, hi = self.domain
        with np.errstate(all="ignore"):
            return float(self.lam(hi)), float(self.lam(lo))

    def _check_t(self, t, name: str = "t") -> np.ndarray:
        arr = _as_times(t, name)
        lo, hi = self.domain
        if arr.size and (arr.min() < lo or arr.max() > hi):
            bad = arr[(arr < lo) | (arr > hi)].ravel()[0]
            raise DiffsolveError(
                f"{name} = {_plain(bad)} is outside the domain [{lo}, {hi}] of schedule {self.name!r}; "
                "pass times inside it (or build the schedule with a wider range)"
            )
        return arr

    def _check_lam(self, lam) -> np.ndarray:
        arr = _as_times(lam, "lam")
        lam_lo, lam_hi = self.lam_range
        if arr.size and (arr.min() < lam_lo or arr.max() > lam_hi):
            bad = arr[(arr < lam_lo) | (arr > lam_hi)].ravel()[0]
            raise DiffsolveError(
                f"lam = {_plain(bad)} is outside the range [{lam_lo:.6g}, {lam_hi:.6g}] that schedule {self.name!r} "
                f"covers on its domain {_plain(self.domain)}; pass lam inside it"
            )
        return arr

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({params})"


class ExprSchedule(Schedule):
    """A schedule given by SymPy expressions log alpha(t), log sigma(t); everything else is derived."""

    def __init__(self, name, log_alpha, log_sigma, *, domain, t_max, t_min, params=None, t_of_lam=None,
                 variance_preserving=False):
        from .symbolic import schedule as calc

        self._setup(name, domain, t_max, t_min, params, variance_preserving)
        self._calculus = calc.derive(log_alpha, log_sigma, t_of_lam)
        self._bind(calc.numpy_functions(self._calculus))

    def _setup(self, name, domain, t_max, t_min, params, variance_preserving):
        self.variance_preserving = bool(variance_preserving)
        self._sigma_via_alpha = self.variance_preserving  # catalog VP kinds write log alpha stably
        self.name = name
        self.params = dict(params or {})
        t_min, t_max = _check_range(t_min, t_max)
        self.domain = _check_domain(domain, t_min, t_max)
        self.t_max, self.t_min = t_max, t_min

    def _bind(self, functions: dict):
        """Numeric functions of t (and of lam for ``t_of_lam``, None when only a Newton solve exists)."""
        self._log_alpha, self._log_sigma = functions["log_alpha"], functions["log_sigma"]
        self._dlam, self._f, self._dls = functions["dlam_dt"], functions["f"], functions["dlog_sigma_dt"]
        self._dalpha = functions["dalpha_dt"]  # d alpha/dt directly: finite where alpha = 0 (flow at t = 1)
        self._inverse = functions["t_of_lam"]
        if self._inverse is None:
            self._newton = _NewtonInverse(self)

    @property
    def calculus(self):
        """The SymPy expressions of lam, dlam/dt, f, g^2 and t(lam) (imports SymPy)."""
        return self._calculus

    @staticmethod
    def _eval(fn: Callable, t):
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            out = np.asarray(fn(t), dtype=np.float64)
        return out if out.shape == np.shape(t) else np.broadcast_to(out, np.shape(t)).copy()  # constants

    def log_alpha(self, t):
        return self._eval(self._log_alpha, self._check_t(t))

    # VP schedules evaluate sigma from log alpha as sqrt(-expm1(2 log alpha))
    # (docs/algorithms/exponential_integrators.md §1.4): SymPy would simplify exp(2 log(cos ...)) to cos^2 and
    # reintroduce the 1 - alpha^2 cancellation.
    def log_sigma(self, t):
        t = self._check_t(t)
        if self._sigma_via_alpha:
            with np.errstate(divide="ignore"):
                return 0.5 * np.log(-np.expm1(2.0 * self._eval(self._log_alpha, t)))
        return self._eval(self._log_sigma, t)

    def dlam_dt(self, t):
        t = self._check_t(t)
        if self._sigma_via_alpha:
            with np.errstate(divide="ignore", invalid="ignore"):
                return self._eval(self._f, t) / -np.expm1(2.0 * self._eval(self._log_alpha, t))
        return self._eval(self._dlam, t)

    def f(self, t):
        return self._eval(self._f, self._check_t(t))

    def dalpha_dt(self, t):
        return self._eval(self._dalpha, self._check_t(t))

    def dlog_sigma_dt(self, t):
        t = self._check_t(t)
        if self._sigma_via_alpha:
            la = self._eval(self._log_alpha, t)
            with np.errstate(divide="ignore", invalid="ignore"):
                return -np.exp(2.0 * la) * self._eval(self._f, t) / -np.expm1(2.0 * la)
        return self._eval(self._dls, t)

    def t_of_lam(self, lam):
        """Inverse of lam(t): closed form where SymPy derived one, else a safeguarded Newton solve."""
        lam = self._check_lam(lam)
        if self._inverse is None:
            return self._newton(lam)
        t = np.clip(self._eval(self._inverse, lam), *self.domain)
        # two Newton steps on lam(t) - lam remove the conditioning loss of a closed form (e.g. acos near 1)
        for _ in range(2):
            with np.errstate(all="ignore"):
                resid = self.lam(t) - lam
                step = resid / self.dlam_dt(t)
            polish = np.isfinite(step) & (np.abs(step) < 1e-3 * np.abs(t))
            t = np.where(polish, t - np.where(polish, step, 0.0), t)
        return t

    @property
    def has_closed_form_inverse(self) -> bool:
        return self._inverse is not None

    # -- user expressions --------------------------------------------------------------------------------
    @classmethod
    def from_expr(cls, alpha: str, sigma: str, *, t_min: float = 1e-3, t_max: float = 1.0,
                  domain: tuple[float, float] | None = None, constants: dict | None = None,
                  name: str | None = None) -> "ExprSchedule":
        """A schedule from user expressions in ``t``, e.g. ``alpha="exp(-5*t**2 - t/20)"``.

        Strings are parsed with a whitelist (never evaluated as code) and derived with a bounded cost
        (docs/limits.md).  ``domain`` defaults to ``(0, t_max)``; alpha and sigma must be positive and lam strictly
        decreasing inside it.
        """
        from .symbolic import schedule as calc

        if constants is not None and not isinstance(constants, Mapping):
            raise DiffsolveError(
                f"constants must be a dict of names to numbers, got {type(constants).__name__} {_plain(constants)}; "
                "pass e.g. constants={'k': 2.0}"
            )
        if name is not None and not isinstance(name, str):
            raise DiffsolveError(f"name must be a string, got {type(name).__name__} {_plain(name)}")
        t_min, t_max = _check_range(t_min, t_max)
        domain = (0.0, t_max) if domain is None else _check_domain(domain, t_min, t_max)
        parsed = calc.parse_user(alpha, sigma, constants)
        probe = _interior_points(domain)
        a_vals = _probe(parsed.alpha_fn, probe, "alpha", alpha, domain)
        s_vals = _probe(parsed.sigma_fn, probe, "sigma", sigma, domain)
        for label, text, vals in (("alpha", alpha, a_vals), ("sigma", sigma, s_vals)):
            bad = ~np.isfinite(vals) | (vals <= 0)
            if bad.any():
                raise DiffsolveError(
                    f"{label}(t) = {text!r} is {_plain(vals[bad][0])} at t = {probe[bad][0]:.6g}, inside the domain "
                    f"{_plain(domain)}; {label} must be finite and positive there (adjust the expression or the domain)"
                )
        with np.errstate(all="ignore"):
            vp = bool(np.allclose(a_vals**2 + s_vals**2, 1.0, rtol=0, atol=1e-13))
        calculus, functions = calc.derive_user(parsed)
        sched = cls.__new__(cls)
        sched._setup(name or f"expr(alpha={alpha}, sigma={sigma})", domain, t_max, t_min,
                     {"alpha": alpha, "sigma": sigma}, False)
        sched._calculus = calculus
        try:
            with np.errstate(all="ignore"):
                slope = sched._eval(functions["dlam_dt"], probe)
                log_alpha, log_sigma = sched._eval(functions["log_alpha"], probe), sched._eval(functions["log_sigma"],
                                                                                               probe)
                lam = log_alpha - log_sigma
                drift = sched._eval(functions["f"], probe)
                g2 = -2.0 * s_vals * s_vals * slope
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise _not_float64("the derivatives of", f"alpha={alpha!r}, sigma={sigma!r}", domain, exc) from None
        if not np.all(slope < 0):
            bad = probe[~(slope < 0)][0]
            raise DiffsolveError(
                f"lam(t) = log(alpha/sigma) must be strictly decreasing (noise grows with t), but dlam/dt = "
                f"{slope[~(slope < 0)][0]:.4g} at t = {bad:.6g} for alpha={alpha!r}, "
                f"sigma={sigma!r}; check that sigma/alpha increases with t"
            )
        for label, vals in (("lam(t) = log(alpha/sigma)", lam), ("dlam/dt", slope), ("f(t) = d log alpha/dt", drift),
                            ("g^2(t) = -2 sigma^2 dlam/dt", g2)):
            if not np.isfinite(vals).all():
                k = int(np.flatnonzero(~np.isfinite(vals))[0])
                raise DiffsolveError(
                    f"{label} is {_plain(vals[k])} at t = {probe[k]:.6g}, inside the domain {_plain(domain)}, for "
                    f"alpha={alpha!r}, sigma={sigma!r}; a schedule must be finite there (adjust the expressions or "
                    "the domain)"
                )
        try:
            sched._bind(functions)
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise _not_float64("lam(t) of", f"alpha={alpha!r}, sigma={sigma!r}", domain, exc) from None
        sched.variance_preserving = vp  # the user's own sigma expression stays the numeric one
        log_a, log_s = calculus.log_alpha, calculus.log_sigma
        for candidate, inverse in calc.closed_form_inverses(log_a, log_s, vp):
            try:
                with np.errstate(all="ignore"):
                    back = np.asarray(inverse(sched.lam(probe)), dtype=np.float64)
            except (ArithmeticError, TypeError, ValueError):
                continue
            if back.shape == probe.shape and np.allclose(back, probe, rtol=1e-10, atol=0):
                sched._calculus = calc.with_inverse(calculus, candidate)
                sched._inverse = inverse
                break
        return sched


def _probe(fn, probe, label, text, domain) -> np.ndarray:
    """``fn`` on the probe points as float64 (a DiffsolveError, not NumPy's, when it cannot be evaluated)."""
    try:
        with np.errstate(all="ignore"):
            raw = np.asarray(fn(probe))
            if np.iscomplexobj(raw):
                raise TypeError("complex values")
            vals = np.asarray(raw, dtype=np.float64)
    except (ArithmeticError, TypeError, ValueError) as exc:
        raise _not_float64(label, repr(text), domain, exc) from None
    return np.broadcast_to(vals, probe.shape) if vals.shape != probe.shape else vals


def _not_float64(what, text, domain, exc) -> DiffsolveError:
    return DiffsolveError(
        f"{what} {text} cannot be evaluated in float64 on the domain {_plain(domain)} ({type(exc).__name__}: "
        f"{str(exc)[:120]}); keep constants and intermediate values within the float64 range"
    )


class CatalogSchedule(ExprSchedule):
    """A catalog kind: SymPy expressions in named parameters (``expressions``), derived and printed ahead of
    time into ``diffsolve/_generated/schedules.py`` (``python -m diffsolve.codegen.schedules``), so building one
    never imports SymPy; the SymPy calculus is derived on first access of :attr:`calculus`."""

    KIND = ""
    PARAMS: tuple = ()
    VARIANCE_PRESERVING = False

    @staticmethod
    def expressions(**params):
        """(log alpha(t), log sigma(t), t(lam)) in the symbols of :mod:`diffsolve.symbolic.schedule`."""
        raise NotImplementedError

    def __init__(self, *, domain, t_max, t_min, params):
        from ._generated import schedules as generated

        self._setup(self.KIND, domain, t_max, t_min, params, self.VARIANCE_PRESERVING)
        self._calculus = None
        values = tuple(float(self.params[name]) for name in self.PARAMS)
        self._bind({q: (None if fn is None else _bound(fn, values)) for q, fn in generated.FUNCTIONS[self.KIND].items()})

    @property
    def calculus(self):
        if self._calculus is None:
            import sympy as sp

            from .symbolic import schedule as calc

            exact = {name: sp.Rational(repr(float(self.params[name]))) for name in self.PARAMS}
            self._calculus = calc.derive(*self.expressions(**exact))
        return self._calculus


def _bound(fn, values):
    return lambda x: fn(x, *values)


class VPLinear(CatalogSchedule):
    """Variance-preserving, linear beta(t) = beta_min + t (beta_max - beta_min) (Song et al. 2021)."""

    KIND, PARAMS, VARIANCE_PRESERVING = "vp-linear", ("beta_min", "beta_max"), True

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3, t_max: float = 1.0):
        beta_min, beta_max = _positive(beta_min, "beta_min"), _positive(beta_max, "beta_max")
        if beta_max <= beta_min:
            raise DiffsolveError(f"vp-linear needs beta_max > beta_min, got beta_min={beta_min}, beta_max={beta_max}")
        super().__init__(domain=(0.0, t_max), t_max=t_max, t_min=t_min,
                         params={"beta_min": beta_min, "beta_max": beta_max})

    @staticmethod
    def expressions(beta_min, beta_max):
        import sympy as sp
        from sympy.codegen.numpy_nodes import logaddexp

        from .symbolic.schedule import LAM, T

        ell = -(beta_max - beta_min) * T**2 / 4 - beta_min * T / 2
        L = logaddexp(0, -2 * LAM) / 2
        inverse = 2 * L / (beta_min / 2 + sp.sqrt(beta_min**2 / 4 + (beta_max - beta_min) * L))
        return ell, _vp_log_sigma(ell), inverse


class VPCosine(CatalogSchedule):
    """Variance-preserving cosine schedule (Nichol & Dhariwal 2021); t_max < 1 keeps lam finite
    (docs/algorithms/exponential_integrators.md §5.2)."""

    KIND, PARAMS, VARIANCE_PRESERVING = "vp-cosine", ("s",), True

    def __init__(self, s: float = 0.008, t_min: float = 1e-3, t_max: float = 0.9946):
        s = _positive(s, "s")
        t_min, t_max = _check_range(t_min, t_max)
        if not 0 < t_max <= 1:
            raise DiffsolveError(f"vp-cosine needs 0 < t_max <= 1, got t_max={t_max}")
        super().__init__(domain=(0.0, t_max), t_max=t_max, t_min=t_min, params={"s": s, "t_max": t_max})

    @staticmethod
    def expressions(s):
        import sympy as sp
        from sympy.codegen.numpy_nodes import logaddexp

        from .symbolic.schedule import LAM, T

        theta0, delta = sp.pi / 2 * s / (1 + s), sp.pi / 2 * T / (1 + s)
        # log(cos(theta0 + delta) / cos(theta0)) written without cancellation for small t
        log_a = sp.log(1 - 2 * sp.sin(delta / 2) ** 2 - sp.tan(theta0) * sp.sin(delta))
        L = logaddexp(0, -2 * LAM) / 2
        inverse = 2 * (1 + s) / sp.pi * sp.acos(sp.cos(theta0) * sp.exp(-L)) - s
        return log_a, _vp_log_sigma(log_a), inverse


class VE(CatalogSchedule):
    """Variance-exploding: alpha = 1, sigma = sigma_min (sigma_max/sigma_min)^t on [0, 1] (Song et al. 2021)."""

    KIND, PARAMS = "ve", ("sigma_min", "sigma_max")

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, t_min: float = 0.0, t_max: float = 1.0):
        lo, hi = _positive(sigma_min, "sigma_min"), _positive(sigma_max, "sigma_max")
        if hi <= lo:
            raise DiffsolveError(f"ve needs sigma_max > sigma_min, got sigma_min={lo}, sigma_max={hi}")
        super().__init__(domain=(0.0, 1.0), t_max=t_max, t_min=t_min, params={"sigma_min": lo, "sigma_max": hi})

    @staticmethod
    def expressions(sigma_min, sigma_max):
        import sympy as sp

        from .symbolic.schedule import LAM, T

        a, b = sp.log(sigma_min), sp.log(sigma_max)
        return sp.Integer(0), a + T * (b - a), (-LAM - a) / (b - a)


class EDM(CatalogSchedule):
    """EDM (Karras et al. 2022): alpha = 1, sigma = t; default range sigma 80 -> 0.002."""

    KIND = "edm"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        lo, hi = _positive(sigma_min, "sigma_min"), _positive(sigma_max, "sigma_max")
        if hi <= lo:
            raise DiffsolveError(f"edm needs sigma_max > sigma_min, got sigma_min={lo}, sigma_max={hi}")
        super().__init__(domain=(0.0, max(hi, 1e4)), t_max=hi, t_min=lo, params={"sigma_min": lo, "sigma_max": hi})

    @staticmethod
    def expressions():
        import sympy as sp

        from .symbolic.schedule import LAM, T

        return sp.Integer(0), sp.log(T), sp.exp(-LAM)


class Flow(CatalogSchedule):
    """Rectified flow / flow matching: alpha = 1 - t, sigma = t (Lipman et al. 2023; Liu et al. 2023)."""

    KIND = "flow"

    def __init__(self, t_min: float = 1e-3, t_max: float = 0.999):
        super().__init__(domain=(0.0, 1.0), t_max=t_max, t_min=t_min, params={})

    @staticmethod
    def expressions():
        import sympy as sp
        from sympy.codegen.numpy_nodes import logaddexp

        from .symbolic.schedule import LAM, T

        return sp.log(1 - T), sp.log(T), sp.exp(-logaddexp(0, LAM))


class OU(CatalogSchedule):
    """Ornstein-Uhlenbeck: alpha = exp(-t), sigma = sqrt(1 - exp(-2t))."""

    KIND, VARIANCE_PRESERVING = "ou", True

    def __init__(self, t_min: float = 1e-3, t_max: float = 5.0):
        t_max = _positive(t_max, "t_max")
        super().__init__(domain=(0.0, max(t_max, 50.0)), t_max=t_max, t_min=t_min, params={})

    @staticmethod
    def expressions():
        from sympy.codegen.numpy_nodes import logaddexp

        from .symbolic.schedule import LAM, T

        return -T, _vp_log_sigma(-T), logaddexp(0, -2 * LAM) / 2


CATALOG_KINDS = (VPLinear, VPCosine, VE, EDM, Flow, OU)
MAX_BETAS = 1_000_000  # betas of a discrete schedule (docs/limits.md)


class DiscreteSchedule(Schedule):
    """DDPM betas beta_1..beta_N at t_n = n/N; log alpha piecewise linear in t, extended linearly
    (docs/algorithms/exponential_integrators.md §5.4)."""

    def __init__(self, betas, name: str = "discrete"):
        if not isinstance(name, str):
            raise DiffsolveError(f"name must be a string, got {type(name).__name__} {_plain(name)}")
        betas = _as_times(betas, "betas")
        if betas.ndim > 1:
            raise DiffsolveError(
                f"betas must be a 1-D array beta_1..beta_N, got shape {betas.shape}; pass betas.ravel()"
            )
        betas = betas.ravel()
        if betas.size < 2:
            raise DiffsolveError(f"a discrete schedule needs at least 2 betas, got {betas.size}")
        if betas.size > MAX_BETAS:
            raise DiffsolveError(
                f"a discrete schedule takes at most {MAX_BETAS} betas (docs/limits.md), got {betas.size}; "
                "subsample the betas (DDPM uses 1000)"
            )
        if np.any(~np.isfinite(betas)) or np.any(betas <= 0) or np.any(betas >= 1):
            k = int(np.flatnonzero(~np.isfinite(betas) | (betas <= 0) | (betas >= 1))[0])
            raise DiffsolveError(
                f"every beta must lie in (0, 1), got betas[{k}] = {_plain(betas[k])}; DDPM betas are e.g. "
                "linspace(1e-4, 0.02, 1000)"
            )
        n = betas.size
        self.name = name
        self.params = {"N": n}
        self.betas = betas
        self.t_nodes = np.arange(1, n + 1) / n
        self.log_alpha_nodes = 0.5 * np.cumsum(np.log1p(-betas))
        flat = np.diff(self.log_alpha_nodes) >= 0
        if np.any(flat):
            k = int(np.flatnonzero(flat)[0]) + 1
            raise DiffsolveError(
                f"discrete schedule: log alpha must decrease strictly, but betas[{k}] = {_plain(betas[k])} is too "
                f"small to change it in float64 (log alpha = {self.log_alpha_nodes[k]:.6g} there, resolution "
                f"{float(np.spacing(abs(self.log_alpha_nodes[k]))):.2g}); use larger betas"
            )
        self.domain = (1.0 / n, 1.0)
        self.t_max, self.t_min = 1.0, 1.0 / n
        self._slopes = np.diff(self.log_alpha_nodes) / np.diff(self.t_nodes)

    @classmethod
    def linear(cls, n: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        """DDPM's linear betas, ``linspace(beta_start, beta_end, n)``."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise DiffsolveError(f"n must be an integer number of betas, got {type(n).__name__} {_plain(n)}")
        if n > MAX_BETAS:
            raise DiffsolveError(f"n = {int(n)} is more than the {MAX_BETAS} betas a discrete schedule takes "
                                 "(docs/limits.md); DDPM uses n=1000")
        for label, value in (("beta_start", beta_start), ("beta_end", beta_end)):
            v = _positive(value, label)
            if not v < 1:
                raise DiffsolveError(f"{label} = {_plain(value)}: every beta must lie in (0, 1); DDPM betas are e.g. "
                                     "linspace(1e-4, 0.02, 1000)")
        return cls(np.linspace(float(beta_start), float(beta_end), max(int(n), 0)), name="discrete")

    def _segment(self, t):
        return np.clip(np.searchsorted(self.t_nodes, t, side="right") - 1, 0, self.t_nodes.size - 2)

    def log_alpha(self, t):
        t = self._check_t(t)
        k = self._segment(t)
        return self.log_alpha_nodes[k] + self._slopes[k] * (t - self.t_nodes[k])

    def log_sigma(self, t):
        with np.errstate(divide="ignore"):
            return 0.5 * np.log(-np.expm1(2.0 * self.log_alpha(t)))

    def f(self, t):
        return self._slopes[self._segment(self._check_t(t))]

    def dlog_sigma_dt(self, t):
        la = self.log_alpha(t)
        return -np.exp(2 * la) / -np.expm1(2 * la) * self.f(t)

    def dlam_dt(self, t):
        return self.f(t) - self.dlog_sigma_dt(t)

    def t_of_lam(self, lam):
        lam = self._check_lam(lam)
        log_a = -0.5 * np.logaddexp(0.0, -2.0 * lam)
        k = np.clip(np.searchsorted(-self.log_alpha_nodes, -log_a, side="right") - 1, 0, self.t_nodes.size - 2)
        t = self.t_nodes[k] + (log_a - self.log_alpha_nodes[k]) / self._slopes[k]
        return np.clip(t, *self.domain)


class _NewtonInverse:
    """t(lam) by Newton's method on lam(t) - lam with the derived dlam/dt, safeguarded by bisection."""

    def __init__(self, schedule: ExprSchedule, nodes: int = 4097):
        lo, hi = schedule.domain
        self.schedule = schedule
        tt = _interior_points((lo, hi), nodes)
        with np.errstate(all="ignore"):
            ll = schedule.lam(tt)
        keep = np.isfinite(ll)
        self.t_table, self.lam_table = tt[keep][::-1], ll[keep][::-1]  # increasing lam

    def __call__(self, lam):
        s = self.schedule
        lam = np.asarray(lam, dtype=np.float64)
        flat = lam.ravel()
        idx = np.clip(np.searchsorted(self.lam_table, flat), 1, self.lam_table.size - 1)
        t_hi, t_lo = self.t_table[idx - 1], self.t_table[idx]  # lam increases => t decreases
        lo_edge, hi_edge = s.domain
        t_hi = np.where(flat < self.lam_table[0], hi_edge, t_hi)
        t_lo = np.where(flat > self.lam_table[-1], lo_edge, t_lo)
        t = 0.5 * (t_lo + t_hi)
        for _ in range(100):
            with np.errstate(all="ignore"):
                resid = s.lam(t) - flat
                slope = s.dlam_dt(t)
            # lam decreasing: resid > 0 means t too small
            t_lo = np.where(resid > 0, t, t_lo)
            t_hi = np.where(resid < 0, t, t_hi)
            with np.errstate(all="ignore"):
                newton = t - resid / slope
            ok = np.isfinite(newton) & (newton > t_lo) & (newton < t_hi)
            t_new = np.where(ok, newton, 0.5 * (t_lo + t_hi))
            done = np.abs(t_new - t) <= 2e-16 * np.abs(t_new)
            t = t_new
            if np.all(done | (resid == 0)):
                break
        return t.reshape(lam.shape)


def _vp_log_sigma(log_alpha):
    """log sigma = log(-expm1(2 log alpha))/2 for alpha^2 + sigma^2 = 1, kept as expm1 (no 1 - alpha^2 cancellation)."""
    import sympy as sp
    from sympy.codegen.cfunctions import expm1

    return sp.log(-expm1(2 * log_alpha)) / 2


def _interior_points(domain, n: int = 257) -> np.ndarray:
    lo, hi = domain
    hi_eff = hi if math.isfinite(hi) else 1e3
    lin = np.linspace(lo, hi_eff, n)[1:-1]
    span = hi_eff - lo
    geo_lo = lo + span * np.geomspace(1e-9, 0.5, n // 2)
    geo_hi = hi_eff - span * np.geomspace(1e-9, 0.5, n // 2)
    return np.unique(np.concatenate([lin, geo_lo, geo_hi]))


def _positive(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DiffsolveError(f"{name} must be a positive number, got {_plain(value)}")
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v) or v <= 0:
        raise DiffsolveError(f"{name} must be a positive finite number, got {_plain(value)}")
    return v


def _check_range(t_min, t_max):
    for name, value in (("t_min", t_min), ("t_max", t_max)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise DiffsolveError(f"{name} must be a real number, got {type(value).__name__} {_plain(value)}")
    try:
        t_min, t_max = float(t_min), float(t_max)
    except OverflowError:
        raise DiffsolveError(f"t_min and t_max must be finite numbers, got t_min={t_min}, t_max={t_max}") from None
    if not (math.isfinite(t_min) and math.isfinite(t_max)) or t_min < 0 or t_max <= t_min:
        raise DiffsolveError(f"need 0 <= t_min < t_max (finite), got t_min={t_min}, t_max={t_max}")
    return t_min, t_max


def _check_domain(domain, t_min, t_max):
    try:
        items = () if isinstance(domain, (str, bytes)) else tuple(domain)
        if not items or any(isinstance(x, (bool, np.bool_, str, bytes)) for x in items):
            raise TypeError
        lo, hi = (float(x) for x in items)
    except (TypeError, ValueError, OverflowError):
        raise DiffsolveError(f"domain must be a pair of real numbers (lo, hi), got {_plain(domain)}") from None
    if not (lo <= t_min < t_max <= hi) or not math.isfinite(hi):
        raise DiffsolveError(
            f"the sampling range [t_min, t_max] = [{t_min}, {t_max}] must lie inside the schedule's domain "
            f"[{lo}, {hi}] (finite); pass t_min/t_max inside it"
        )
    return lo, hi


_CATALOG: dict[str, type[Schedule]] = {
    "vp-linear": VPLinear,
    "vp-cosine": VPCosine,
    "ve": VE,
    "edm": EDM,
    "flow": Flow,
    "ou": OU,
    "discrete": DiscreteSchedule.linear,
}

Schedule.from_expr = staticmethod(ExprSchedule.from_expr)  # type: ignore[attr-defined]
Schedule.discrete = staticmethod(DiscreteSchedule)  # type: ignore[attr-defined]


def list_schedules() -> list[str]:
    return sorted(_CATALOG)


def get_schedule(name: str, **params) -> Schedule:
    """A catalog schedule by name (``vp-linear``, ``vp-cosine``, ``ve``, ``edm``, ``flow``, ``ou``, ``discrete``)."""
    if isinstance(name, Schedule):
        return name
    try:
        factory = _CATALOG[name]
    except (KeyError, TypeError):
        from difflib import get_close_matches

        close = get_close_matches(str(name), _CATALOG, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DiffsolveError(
            f"unknown schedule {name!r}; expected one of {', '.join(list_schedules())}, or build one with "
            f"Schedule.from_expr(alpha=..., sigma=...).{hint}"
        ) from None
    try:
        return factory(**params)
    except TypeError as exc:
        raise DiffsolveError(f"bad parameters {_plain(params, 200)} for schedule {name!r}: {exc}") from None
