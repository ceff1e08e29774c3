"""Noise schedules: x_t = alpha(t) x_0 + sigma(t) eps (docs/algorithms/exponential_integrators.md §1, §5).

A schedule is given by log alpha(t) and log sigma(t) as SymPy expressions; the half log-SNR lam = log(alpha/sigma),
its derivative, the drift f, the diffusion g^2 and the inverse t(lam) are derived symbolically
(:mod:`diffsolve.symbolic.schedule`) and printed to vectorised NumPy functions.  Catalog kinds are one class
each; :meth:`Schedule.from_expr` parses user expressions with a whitelist; :class:`DiscreteSchedule` holds
DDPM betas with log alpha piecewise linear in t; :func:`from_diffusers` reads a diffusers scheduler config and
:class:`TimestepMap` relates t to a network's timestep (docs/interop/schedules.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Callable

import numpy as np

from .errors import DiffsolveError, DiffsolveTypeError
from .errors import plain as _plain

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
    "TimestepMap",
    "diffusers_alphas_cumprod",
    "from_diffusers",
    "get_schedule",
    "list_schedules",
]


def _describe(value) -> str:
    """A short description of ``value`` for a message: small values plainly, arrays and long sequences by type,
    shape and dtype (never every entry)."""
    size = value.size if isinstance(value, np.ndarray) else len(value) if isinstance(value, (list, tuple)) else 0
    if size > 8:
        try:
            arr = np.asarray(value)
            return f"{type(value).__name__} of shape {arr.shape}, dtype {arr.dtype}"
        except (TypeError, ValueError, OverflowError):
            return f"{type(value).__name__} of {len(value)} items"
    if type(value).__module__.startswith("torch"):
        return f"torch tensor of shape {tuple(getattr(value, 'shape', ()))}, dtype {getattr(value, 'dtype', '?')}"
    return _plain(value)


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
            f"{_describe(values)} (dtype {raw.dtype}); pass float64 values"
        )
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise DiffsolveError(
            f"{name} must be a real number or an array of real numbers, got {type(values).__name__} {_describe(values)}"
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

    # -- model timesteps -----------------------------------------------------------------------------------
    timestep_map = None  # a TimestepMap, or None where the schedule has no model timestep convention

    @property
    def timestep_convention(self) -> str | None:
        """The model-timestep convention in words (``None``: the schedule has none; see :class:`TimestepMap`)."""
        return None if self.timestep_map is None else self.timestep_map.describe()

    def timestep_of(self, t) -> np.ndarray:
        """The network's timestep at time(s) ``t`` (float64, not rounded), by :attr:`timestep_map`."""
        return self._timesteps().timestep_of(self, t)

    def time_of_timestep(self, timestep) -> np.ndarray:
        """The time t of network timestep(s) ``timestep``: the inverse of :meth:`timestep_of`."""
        return self._timesteps().time_of_timestep(self, timestep)

    def _timesteps(self) -> "TimestepMap":
        if self.timestep_map is None:
            raise DiffsolveError(
                f"schedule {self.name!r} has no model timestep convention; discrete schedules (timestep k = N t - 1) "
                "and schedules from Schedule.from_diffusers have one (docs/interop/schedules.md); map t yourself"
            )
        if self.timestep_map.refusal:
            raise DiffsolveError(self.timestep_map.refusal)
        return self.timestep_map

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
    """DDPM betas beta_1..beta_N at t_n = n/N; log alpha piecewise linear in t through these nodes and the clean
    node (t_0 = 0, alpha = 1, sigma = 0) (docs/algorithms/exponential_integrators.md §5.4).

    Give exactly one of ``betas`` (beta_1..beta_N) or ``alphas_cumprod`` (alpha-bar_1..alpha-bar_N = alpha(t_n)^2,
    diffusers' ``scheduler.alphas_cumprod``).  diffusers' integer timestep k = 0..N-1 is t = (k + 1)/N
    (:meth:`timestep_of`, :meth:`time_of_timestep`).  The domain is [0, 1]: grids end at ``t_min`` = 1/N
    (timestep 0) by default, or at t = 0 (the clean state, diffusers' alpha-bar = 1 / sigma = 0 end) when asked.
    """

    def __init__(self, betas=None, name: str = "discrete", *, alphas_cumprod=None):
        if not isinstance(name, str):
            raise DiffsolveError(f"name must be a string, got {type(name).__name__} {_plain(name)}")
        if (betas is None) == (alphas_cumprod is None):
            raise DiffsolveTypeError(
                "Schedule.discrete needs exactly one of betas=... or alphas_cumprod=..., got "
                f"{'both' if betas is not None else 'neither'}; pass e.g. betas=np.linspace(1e-4, 0.02, 1000)"
            )
        label = "betas" if alphas_cumprod is None else "alphas_cumprod"
        values = _as_times(betas if alphas_cumprod is None else alphas_cumprod, label)
        if values.ndim > 1:
            raise DiffsolveError(
                f"{label} must be a 1-D array of N values, got shape {values.shape}, dtype {values.dtype}; "
                f"pass {label}.ravel()"
            )
        values = values.ravel()
        if values.size < 2:
            raise DiffsolveError(f"a discrete schedule needs at least 2 {label}, got {values.size}")
        if values.size > MAX_BETAS:
            raise DiffsolveError(
                f"a discrete schedule takes at most {MAX_BETAS} {label} (docs/limits.md), got {values.size}; "
                f"subsample the {label} (DDPM uses 1000)"
            )
        bad = ~np.isfinite(values) | (values <= 0) | (values >= 1)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            if alphas_cumprod is None:
                raise DiffsolveError(
                    f"every beta must lie in (0, 1), got betas[{k}] = {_plain(values[k])} (of {values.size}, "
                    f"{int(bad.sum())} outside); DDPM betas are e.g. linspace(1e-4, 0.02, 1000)"
                )
            hint = ("a zero terminal SNR (alpha = 0): a discrete schedule needs alpha > 0 at every node; replace it by "
                    "a small value such as 2**-24, as diffusers' Euler and DPM-Solver schedulers do"
                    if values[k] == 0 else "alphas_cumprod[n] = prod_{i<=n} (1 - beta_i) lies in (0, 1)")
            raise DiffsolveError(
                f"every alphas_cumprod must lie in (0, 1), got alphas_cumprod[{k}] = {_plain(values[k])} (of "
                f"{values.size}, {int(bad.sum())} outside); {hint}"
            )
        n = values.size
        self.name = name
        self.params = {"N": n}
        self.t_nodes = np.arange(1, n + 1) / n
        if alphas_cumprod is None:
            self.betas = values
            self.log_alpha_nodes = 0.5 * np.cumsum(np.log1p(-values))
        else:
            self.log_alpha_nodes = 0.5 * np.log(values)
            self.betas = -np.expm1(2.0 * np.diff(self.log_alpha_nodes, prepend=0.0))
        flat = np.diff(self.log_alpha_nodes) >= 0
        if np.any(flat):
            k = int(np.flatnonzero(flat)[0]) + 1
            if alphas_cumprod is not None:
                raise DiffsolveError(
                    f"alphas_cumprod must decrease strictly, but alphas_cumprod[{k}] = {_plain(values[k])} >= "
                    f"alphas_cumprod[{k - 1}] = {_plain(values[k - 1])}; pass a strictly decreasing table"
                )
            raise DiffsolveError(
                f"discrete schedule: log alpha must decrease strictly, but betas[{k}] = {_plain(values[k])} is too "
                f"small to change it in float64 (log alpha = {self.log_alpha_nodes[k]:.6g} there, resolution "
                f"{float(np.spacing(abs(self.log_alpha_nodes[k]))):.2g}); use larger betas"
            )
        self.domain = (0.0, 1.0)
        self.t_max, self.t_min = 1.0, 1.0 / n
        self._knots = np.concatenate([[0.0], self.t_nodes])  # with the clean node (t = 0, log alpha = 0)
        self._knot_log_alpha = np.concatenate([[0.0], self.log_alpha_nodes])
        self._slopes = np.diff(self._knot_log_alpha) / np.diff(self._knots)
        self.timestep_map = TimestepMap("index", n)

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
        return np.clip(np.searchsorted(self._knots, t, side="right") - 1, 0, self._knots.size - 2)

    def log_alpha(self, t):
        t = self._check_t(t)
        k = self._segment(t)
        return self._knot_log_alpha[k] + self._slopes[k] * (t - self._knots[k])

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
        k = np.clip(np.searchsorted(-self._knot_log_alpha, -log_a, side="right") - 1, 0, self._knots.size - 2)
        t = self._knots[k] + (log_a - self._knot_log_alpha[k]) / self._slopes[k]
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


class TimestepMap:
    """How a network's timestep relates to the schedule time t (docs/interop/schedules.md).

    ``kind``:

    * ``"index"``: diffusers' integer training timestep k = N t - 1, i.e. t = (k + 1)/N for k = 0..N-1 (a discrete
      schedule of N betas: timestep k is the node t_{k+1}).
    * ``"sigma"``: k = N sigma(t) with sigma(t) = shift t/(1 + (shift - 1) t), alpha = 1 - sigma (flow matching:
      diffusers' FlowMatchEulerDiscreteScheduler feeds the network sigma * num_train_timesteps).
    * ``"log-sigma"``: c = log(sigma/alpha)/4 = -lam/4 (diffusers' EulerDiscreteScheduler with
      timestep_type="continuous").

    Timesteps are float64 and never rounded: round them yourself for a network that needs integers.
    """

    KINDS = ("index", "sigma", "log-sigma")

    def __init__(self, kind: str, n: int, *, shift: float = 1.0, refusal: str | None = None):
        if kind not in self.KINDS:
            raise DiffsolveError(f"timestep map kind must be one of {', '.join(self.KINDS)}, got {_plain(kind)}")
        self.kind, self.n, self.shift, self.refusal = kind, int(n), float(shift), refusal

    def describe(self) -> str:
        n = self.n
        if self.kind == "index":
            return f"timestep k = {n} t - 1 (t = (k + 1)/{n}, k = 0..{n - 1})"
        if self.kind == "sigma":
            return f"timestep = {n} sigma(t), sigma(t) = {self.shift:g} t/(1 + {self.shift - 1:g} t)"
        return "timestep = log(sigma(t)/alpha(t))/4 = -lam(t)/4"

    def timestep_of(self, schedule: Schedule, t) -> np.ndarray:
        t = schedule._check_t(t)
        if self.kind == "index":
            return self.n * t - 1.0
        if self.kind == "sigma":
            return self.n * schedule.sigma(t)
        return -0.25 * schedule.lam(t)

    def time_of_timestep(self, schedule: Schedule, timestep) -> np.ndarray:
        k = _as_times(timestep, "timestep")
        if self.kind == "log-sigma":  # finite timesteps: lam on [t_min, t_max] (a discrete domain reaches sigma = 0)
            lam_lo, lam_hi = (float(v) for v in schedule.lam(np.array([schedule.t_max, schedule.t_min])))
            lo, hi = -0.25 * lam_hi, -0.25 * lam_lo
        else:
            lo, hi = (0.0, self.n - 1.0) if self.kind == "index" else (0.0, float(self.n))
        slack = 1e-12 * max(1.0, abs(lo), abs(hi))  # rounding of timestep_of at the ends
        if k.size and (k.min() < lo - slack or k.max() > hi + slack):
            bad = k[(k < lo - slack) | (k > hi + slack)].ravel()[0]
            raise DiffsolveError(
                f"timestep = {_plain(bad)} is outside [{lo:.6g}, {hi:.6g}], the range of the {self.n} training "
                f"timesteps of schedule {schedule.name!r} ({self.describe()}); pass timesteps inside it"
            )
        k = np.clip(k, lo, hi)
        if self.kind == "log-sigma":
            return schedule.t_of_lam(np.clip(-4.0 * k, lam_lo, lam_hi))
        if self.kind == "index":
            return np.clip((k + 1.0) / self.n, *schedule.domain)
        s = k / self.n
        return np.clip(s / (self.shift - (self.shift - 1.0) * s), *schedule.domain)


# diffusers schedulers that replace a zero terminal alphas_cumprod by 2**-24 (rescale_betas_zero_snr=True)
_ZERO_SNR_FLOOR_CLASSES = ("EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
                           "DPMSolverMultistepScheduler", "UniPCMultistepScheduler")
_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
_REFUSED_CLASSES = {
    "EDMEulerScheduler": "an EDM schedule: use ds.get_schedule('edm', sigma_min=..., sigma_max=...)",
    "EDMDPMSolverMultistepScheduler": "an EDM schedule: use ds.get_schedule('edm', sigma_min=..., sigma_max=...)",
    "ScoreSdeVeScheduler": "a VE schedule: use ds.get_schedule('ve', sigma_min=..., sigma_max=...)",
    "ScoreSdeVpScheduler": "a continuous VP schedule: use ds.get_schedule('vp-linear', beta_min=..., beta_max=...)",
}


class _Config:
    """A diffusers config as a dict, recording which keys built the schedule."""

    def __init__(self, config):
        self.class_name = None
        if isinstance(config, Mapping):
            items = config
            self.class_name = config.get("_class_name")
        elif isinstance(getattr(config, "config", None), Mapping):
            items, self.class_name = config.config, type(config).__name__
        else:
            raise DiffsolveTypeError(
                f"config must be a diffusers scheduler config (a dict, scheduler.config) or a scheduler, got "
                f"{type(config).__name__} {_describe(config)}; pass e.g. pipe.scheduler.config"
            )
        self.items = dict(items)
        if self.class_name is not None and not isinstance(self.class_name, str):
            raise DiffsolveError(f"config['_class_name'] must be a string, got {_describe(self.class_name)}")
        self.used: set[str] = set()

    def get(self, key, default=None):
        self.used.add(key)
        value = self.items.get(key, default)
        return default if value is None else value

    def flag(self, key) -> bool:
        value = self.get(key, False)
        if not isinstance(value, (bool, np.bool_)):
            raise DiffsolveError(f"config[{key!r}] must be True or False, got {type(value).__name__} "
                                 f"{_describe(value)}; fix the config")
        return bool(value)

    def integer(self, key, default, lo, hi) -> int:
        value = self.get(key, default)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
            raise DiffsolveError(f"config[{key!r}] must be an integer in [{lo}, {hi}], got {type(value).__name__} "
                                 f"{_describe(value)}; diffusers uses 1000")
        return int(value)

    def number(self, key, default, lo=0.0, hi=math.inf) -> float:
        value = self.get(key, default)
        ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))
        if not ok or not (lo < float(value) < hi):
            raise DiffsolveError(f"config[{key!r}] must be a real number in ({lo:g}, {hi:g}), got "
                                 f"{type(value).__name__} {_describe(value)}; fix the config")
        return float(value)

    def ignored(self) -> tuple[str, ...]:
        return tuple(sorted(k for k in self.items if k not in self.used and not str(k).startswith("_")))


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _cosine_betas(n: int) -> list:
    """diffusers' ``betas_for_alpha_bar(n)`` (cosine, max_beta 0.999) in Python floats."""
    def alpha_bar(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return [min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), 0.999) for i in range(n)]


def _linspace32(start: float, end: float, n: int) -> np.ndarray:
    """``torch.linspace(start, end, n, dtype=torch.float32)`` on CPU in NumPy: a float32 step, the lower half
    start + step i and the upper half end - step (n - 1 - i), each a fused multiply-add rounded once to float32."""
    a, b = np.float32(start), np.float32(end)
    step = np.float64((b - a) / np.float32(n - 1))
    i = np.arange(n, dtype=np.float64)
    lower = i < n // 2
    base = np.where(lower, np.float64(a), np.float64(b))
    prod = np.where(lower, step * i, -step * (n - 1 - i))  # exact: 24-bit step times an integer below 2**24
    return _round32(base, prod)


def _round32(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x + y rounded once to float32 (x, y float64, y exact): the float64 sum with its TwoSum error decides the
    ties that a float64 -> float32 double rounding would get wrong."""
    s = x + y
    bb = s - x
    err = (x - (s - bb)) + (y - bb)
    out = s.astype(np.float32)
    lo = np.where(out.astype(np.float64) > s, np.nextafter(out, np.float32(-np.inf)), out)
    hi = np.nextafter(lo, np.float32(np.inf))
    tie = (s - lo.astype(np.float64)) == (hi.astype(np.float64) - s)
    return np.where(tie & (err > 0), hi, np.where(tie & (err < 0), lo, out)).astype(np.float32)


def diffusers_alphas_cumprod(n: int, beta_schedule: str = "linear", beta_start: float = 1e-4, beta_end: float = 0.02,
                             trained_betas=None, rescale_betas_zero_snr: bool = False,
                             backend: str | None = None) -> np.ndarray:
    """diffusers' float32 ``alphas_cumprod`` table, built as its DDPM-family schedulers build it.

    ``backend``: ``"torch"`` (diffusers' own operations), ``"numpy"`` (the same float32 operations in NumPy, bit
    for bit) or None (torch when installed).  A zero terminal SNR table ends with 0.
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or not 2 <= n <= MAX_BETAS:
        raise DiffsolveError(f"n must be an integer number of timesteps in [2, {MAX_BETAS}], got {_describe(n)}")
    if trained_betas is None and beta_schedule not in _BETA_SCHEDULES:
        raise DiffsolveError(f"beta_schedule must be one of {', '.join(_BETA_SCHEDULES)} (or pass trained_betas), "
                             f"got {_describe(beta_schedule)}")
    n = int(n)
    if backend is None:
        backend = "torch" if _torch() is not None else "numpy"
    if backend not in ("torch", "numpy"):
        raise DiffsolveError(f"backend must be 'torch', 'numpy' or None, got {_plain(backend)}")
    if backend == "torch":
        torch = _torch()
        if torch is None:
            raise DiffsolveError("backend='torch' needs PyTorch, which is not installed; pass backend='numpy'")
        if trained_betas is not None:
            betas = torch.tensor(np.asarray(trained_betas, dtype=np.float64), dtype=torch.float32)
        elif beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, n, dtype=torch.float32)
        elif beta_schedule == "scaled_linear":
            betas = torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float32) ** 2
        else:
            betas = torch.tensor(_cosine_betas(n), dtype=torch.float32)
        if rescale_betas_zero_snr:
            root = torch.cumprod(1.0 - betas, dim=0).sqrt()
            root0, root_t = root[0].clone(), root[-1].clone()
            root -= root_t
            root *= root0 / (root0 - root_t)
            bar = root**2
            betas = 1 - torch.cat([bar[0:1], bar[1:] / bar[:-1]])
        return torch.cumprod(1.0 - betas, dim=0).numpy()
    one = np.float32(1.0)
    if trained_betas is not None:
        betas = np.asarray(trained_betas, dtype=np.float64).astype(np.float32)
    elif beta_schedule == "linear":
        betas = _linspace32(beta_start, beta_end, n)
    elif beta_schedule == "scaled_linear":
        root = _linspace32(beta_start**0.5, beta_end**0.5, n)
        betas = root * root
    else:
        betas = np.asarray(_cosine_betas(n), dtype=np.float64).astype(np.float32)
    if rescale_betas_zero_snr:
        root = np.sqrt(_cumprod32(one - betas))
        root0, root_t = root[0], root[-1]
        root = (root - root_t) * (root0 / (root0 - root_t))
        bar = root * root
        betas = one - np.concatenate([bar[:1], bar[1:] / bar[:-1]])
    return _cumprod32(one - betas)


def _cumprod32(x: np.ndarray) -> np.ndarray:
    """torch.cumprod of a float32 CPU tensor: accumulated in float64, each output rounded to float32."""
    return np.cumprod(x.astype(np.float64)).astype(np.float32)


def from_diffusers(config, *, terminal_alpha_cumprod: float | None = None, backend: str | None = None) -> Schedule:
    """The schedule of a diffusers scheduler config (``pipe.scheduler.config``, a dict, or the scheduler itself).

    DDPM-family configs (``beta_schedule`` linear / scaled_linear / squaredcos_cap_v2 or ``trained_betas``,
    ``beta_start``, ``beta_end``, ``num_train_timesteps``, ``rescale_betas_zero_snr``) give a
    :class:`DiscreteSchedule` on diffusers' float32 ``alphas_cumprod`` with timestep k = N t - 1.  A zero terminal
    SNR table (alpha-bar_N = 0) is refused unless ``terminal_alpha_cumprod`` replaces its last entry (schedulers that
    do so themselves, Euler / DPM-Solver / UniPC, get their 2**-24).  Flow-matching configs (``shift``) give the
    flow schedule with sigma(t) = shift t/(1 + (shift - 1) t), alpha = 1 - sigma and timestep N sigma(t).  Keys that
    shape the sampling grid, the model output or the solver are ignored and listed in ``config_ignored``
    (docs/interop/schedules.md).  ``backend``: see :func:`diffusers_alphas_cumprod`.
    """
    cfg = _Config(config)
    name = cfg.class_name or ""
    if name in _REFUSED_CLASSES:
        raise DiffsolveError(f"config is a {name} config, {_REFUSED_CLASSES[name]}")
    beta_keys = {"beta_schedule", "beta_start", "beta_end", "trained_betas"} & set(cfg.items)
    if name.startswith("FlowMatch") or (not beta_keys and {"shift", "use_dynamic_shifting"} & set(cfg.items)):
        sched = _flow_from(cfg, "shift")
    elif cfg.flag("use_flow_sigmas"):
        sched = _flow_from(cfg, "flow_shift")
    else:
        sched = _discrete_from(cfg, terminal_alpha_cumprod, backend)
    sched.config_ignored = cfg.ignored()
    return sched


def _flow_from(cfg: _Config, shift_key: str) -> Schedule:
    n = cfg.integer("num_train_timesteps", 1000, 2, MAX_BETAS)
    shift = cfg.number(shift_key, 1.0)
    if cfg.flag("use_dynamic_shifting"):
        raise DiffsolveError(
            "config['use_dynamic_shifting'] = True: the shift then depends on the image size (mu, chosen at "
            "set_timesteps), which a schedule cannot know; compute mu for your resolution and pass a config with "
            f"use_dynamic_shifting=False and {shift_key}=exp(mu) (time_shift_type='exponential') or {shift_key}=mu "
            "('linear')"
        )
    if cfg.flag("invert_sigmas"):
        raise DiffsolveError("config['invert_sigmas'] = True (sigma decreasing with the timestep) is not supported; "
                             "pass a config with invert_sigmas=False")
    if shift == 1.0:
        sched = Flow(t_min=1.0 / n, t_max=0.999)
    else:
        sched = ExprSchedule.from_expr(alpha="(1 - t)/(1 + (s - 1)*t)", sigma="s*t/(1 + (s - 1)*t)",
                                       constants={"s": shift}, t_min=1.0 / n, t_max=0.999, domain=(0.0, 1.0),
                                       name=f"flow(shift={shift:g})")
        sched.params = {**sched.params, "shift": shift}
    sched.timestep_map = TimestepMap("sigma", n, shift=shift)
    return sched


def _discrete_from(cfg: _Config, terminal, backend) -> DiscreteSchedule:
    n = cfg.integer("num_train_timesteps", 1000, 2, MAX_BETAS)
    trained = cfg.get("trained_betas")
    schedule = cfg.get("beta_schedule", "linear")
    if not isinstance(schedule, str):
        raise DiffsolveError(f"config['beta_schedule'] must be a string, got {_describe(schedule)}; expected one of "
                             f"{', '.join(_BETA_SCHEDULES)}")
    if trained is not None:
        if type(trained).__module__.startswith("torch"):
            trained = trained.detach().cpu().double().numpy()
        try:
            arr = np.asarray(trained, dtype=np.float64)
        except (TypeError, ValueError):
            raise DiffsolveError(f"config['trained_betas'] must be a 1-D list of numbers, got "
                                 f"{type(trained).__name__} {_describe(trained)}") from None
        if arr.ndim != 1 or arr.size != n or not np.all(np.isfinite(arr)) or np.any(arr <= 0) or np.any(arr >= 1):
            bad = np.flatnonzero(~np.isfinite(arr.ravel()) | (arr.ravel() <= 0) | (arr.ravel() >= 1))
            detail = f"; trained_betas[{bad[0]}] = {_plain(arr.ravel()[bad[0]])}" if bad.size else ""
            raise DiffsolveError(
                f"config['trained_betas'] must be {n} betas (num_train_timesteps) in (0, 1), got shape {arr.shape}, "
                f"dtype {arr.dtype}{detail}; fix the config"
            )
        trained = arr
    elif schedule not in _BETA_SCHEDULES:
        extra = " (it needs config['trained_betas'])" if schedule == "trained_betas" else ""
        raise DiffsolveError(
            f"config['beta_schedule'] = {_plain(schedule)} is not supported{extra}; expected one of "
            f"{', '.join(_BETA_SCHEDULES)} or trained_betas=[...]; build other tables with Schedule.discrete(betas=...)"
        )
    beta_start, beta_end = cfg.number("beta_start", 1e-4, 0, 1), cfg.number("beta_end", 0.02, 0, 1)
    rescale = cfg.flag("rescale_betas_zero_snr")
    table = diffusers_alphas_cumprod(n, schedule, beta_start, beta_end, trained, rescale, backend).astype(np.float64)
    if table[-1] == 0:
        floor = terminal is None and cfg.class_name in _ZERO_SNR_FLOOR_CLASSES
        if floor:
            terminal = 2.0**-24
        if terminal is None:
            raise DiffsolveError(
                f"config['rescale_betas_zero_snr'] = True makes alphas_cumprod[{n - 1}] = 0 (zero terminal SNR: "
                "alpha = 0, sigma = 1, lam = -inf at the last timestep), which a discrete schedule (log alpha "
                "piecewise linear) cannot hold; pass terminal_alpha_cumprod=2**-24 (what diffusers' Euler, DPM-Solver "
                "and UniPC schedulers substitute)"
            )
        t_val = _positive(terminal, "terminal_alpha_cumprod")
        if not t_val < table[-2]:
            why = f"{cfg.class_name} replaces alphas_cumprod[{n - 1}] = 0 by 2**-24, but" if floor else \
                f"terminal_alpha_cumprod = {_plain(terminal)}:"
            raise DiffsolveError(
                f"{why} alphas_cumprod[{n - 2}] = {table[-2]:.6g} is smaller, so lam would not decrease at the last "
                f"timestep; pass terminal_alpha_cumprod below it, e.g. {float(np.float32(table[-2] / 16)):.6g}"
            )
        table[-1] = float(np.float32(t_val))
    sched = DiscreteSchedule(alphas_cumprod=table, name="discrete")
    sched.params = {"N": n}
    if cfg.get("timestep_type", "discrete") == "continuous" and cfg.get("prediction_type") == "v_prediction":
        sched.timestep_map = TimestepMap("log-sigma", n)
    return sched


def _discrete_factory(**params) -> DiscreteSchedule:
    """``get_schedule("discrete", ...)``: linear betas (n, beta_start, beta_end) or betas= / alphas_cumprod=."""
    tables = {k for k in ("betas", "alphas_cumprod") if k in params}
    if not tables:
        return DiscreteSchedule.linear(**params)
    others = sorted(set(params) - tables - {"name"})
    if others:
        raise DiffsolveError(
            f"get_schedule('discrete') got {' and '.join(sorted(tables))} together with {', '.join(others)}; "
            "n, beta_start and beta_end describe linear betas: pass either them or a table"
        )
    return DiscreteSchedule(params.get("betas"), params.get("name", "discrete"),
                            alphas_cumprod=params.get("alphas_cumprod"))


_CATALOG: dict[str, type[Schedule]] = {
    "vp-linear": VPLinear,
    "vp-cosine": VPCosine,
    "ve": VE,
    "edm": EDM,
    "flow": Flow,
    "ou": OU,
    "discrete": _discrete_factory,
}

Schedule.from_expr = staticmethod(ExprSchedule.from_expr)  # type: ignore[attr-defined]
Schedule.discrete = staticmethod(DiscreteSchedule)  # type: ignore[attr-defined]
Schedule.from_diffusers = staticmethod(from_diffusers)  # type: ignore[attr-defined]


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
        shown = "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in params.items()) + "}"
        raise DiffsolveError(f"bad parameters {shown[:300]} for schedule {name!r}: {exc}") from None
