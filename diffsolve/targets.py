"""Analytic targets with exact marginals, denoisers and scores at every t of every schedule.

``GaussianMixture(weights, means, variances)`` (diagonal components) and its special case
``Gaussian(mean, var)``.  Under x_t = alpha x_0 + sigma eps the marginal is again a mixture with component
means alpha m_k and variances alpha^2 v_k + sigma^2; the denoiser E[x_0 | x_t] is the responsibility-weighted
posterior mean (docs/verification.md §1.1).  Every other prediction type follows through
:mod:`diffsolve.predictions`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp

from . import predictions
from .errors import DiffsolveError

__all__ = ["Target", "GaussianMixture", "Gaussian", "from_spec"]

_CHUNK = 8192


def _float_array(value, name):
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DiffsolveError(f"{name} must be an array of real numbers, got {type(value).__name__} {value!r:.80}") from None


class Target:
    """Base class: a data distribution that knows its exact denoiser at every (t, schedule)."""

    dim: int

    def denoise(self, x, t, schedule):
        raise NotImplementedError

    def predict(self, x, t, schedule, prediction: str = "data"):
        """The exact model output of type ``prediction`` (``data``, ``eps``, ``v``, ``score``, ``flow``)."""
        x = self._check_x(x)
        return predictions.convert(self.denoise(x, t, schedule), x, t, schedule, "data", prediction)

    def _check_x(self, x):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise DiffsolveError(f"x must have shape (n, {self.dim}) for this {self.dim}-dimensional target, got {x.shape}")
        return x


class GaussianMixture(Target):
    """sum_k w_k N(m_k, diag(v_k)); ``variances`` of shape (K,) (isotropic) or (K, d) (diagonal)."""

    def __init__(self, weights, means, variances):
        means = _float_array(means, "means")
        means = np.atleast_2d(means)
        if means.ndim != 2 or means.shape[0] == 0 or means.shape[1] == 0:
            raise DiffsolveError(
                f"means must have shape (K, d) with K >= 1 components and d >= 1 dimensions, got {means.shape}"
            )
        k, d = means.shape
        weights = _float_array(weights, "weights").ravel()
        variances = _float_array(variances, "variances")
        if weights.shape != (k,):
            raise DiffsolveError(f"weights must have shape ({k},) to match means {means.shape}, got {weights.shape}")
        if variances.ndim == 0:
            variances = np.full((k, d), float(variances))
        elif variances.ndim == 1 and variances.shape == (k,):
            variances = np.repeat(variances[:, None], d, axis=1)
        if variances.shape != (k, d):
            raise DiffsolveError(f"variances must have shape ({k},) or ({k}, {d}), got {variances.shape}")
        for name, arr in (("weights", weights), ("means", means), ("variances", variances)):
            if not np.isfinite(arr).all():
                raise DiffsolveError(f"{name} contains NaN or inf; pass finite values")
        if np.any(weights <= 0):
            raise DiffsolveError(f"mixture weights must be positive, got {weights.tolist()}")
        if np.any(variances <= 0):
            raise DiffsolveError("component variances must be positive (use a small value, e.g. 1e-4, not 0)")
        self.weights = weights / weights.sum()
        self.means = means
        self.variances = np.ascontiguousarray(variances)
        self.dim = d

    @property
    def components(self) -> int:
        return self.means.shape[0]

    def mean(self):
        return self.weights @ self.means

    def _marginal(self, t, schedule):
        a = float(np.asarray(schedule.alpha(t)).ravel()[0])
        s = float(np.asarray(schedule.sigma(t)).ravel()[0])
        return a, s, a * a * self.variances + s * s

    def denoise(self, x, t, schedule):
        """E[x_0 | x_t = x], exact."""
        x = self._check_x(x)
        a, s, var_t = self._marginal(t, schedule)
        gain = a * self.variances / var_t  # (K, d)
        out = np.empty_like(x, dtype=np.float64)
        for lo in range(0, x.shape[0], _CHUNK):
            xc = x[lo:lo + _CHUNK]
            diff = xc[:, None, :] - a * self.means[None]  # (n, K, d)
            resp = self._log_resp(diff, var_t)
            post = self.means[None] + gain[None] * diff
            out[lo:lo + _CHUNK] = np.einsum("nk,nkd->nd", resp, post)
        return out

    def _log_joint(self, diff, var_t):
        return (np.log(self.weights)[None] - 0.5 * np.sum(diff * diff / var_t[None] + np.log(2 * math.pi * var_t)[None], axis=2))

    def _log_resp(self, diff, var_t):
        lj = self._log_joint(diff, var_t)
        return np.exp(lj - logsumexp(lj, axis=1, keepdims=True))

    def logpdf(self, x, t=None, schedule=None):
        """log density of the data (t None) or of the marginal at time t."""
        x = self._check_x(x)
        a, var_t = (1.0, self.variances) if t is None else self._marginal(t, schedule)[0::2]
        out = np.empty(x.shape[0])
        for lo in range(0, x.shape[0], _CHUNK):
            diff = x[lo:lo + _CHUNK][:, None, :] - a * self.means[None]
            out[lo:lo + _CHUNK] = logsumexp(self._log_joint(diff, var_t), axis=1)
        return out

    def score(self, x, t, schedule):
        return self.predict(x, t, schedule, "score")

    def sample(self, n: int, seed=0, t=None, schedule=None):
        """Exact samples of the data (t None) or of the marginal at t (NumPy generator, for references)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise DiffsolveError(f"n must be a positive integer, got {n!r}")
        rng = np.random.default_rng(seed)
        comp = rng.choice(self.components, size=n, p=self.weights)
        x0 = self.means[comp] + np.sqrt(self.variances[comp]) * rng.standard_normal((n, self.dim))
        if t is None:
            return x0
        a, s = float(schedule.alpha(t)), float(schedule.sigma(t))
        return a * x0 + s * rng.standard_normal((n, self.dim))

    def __repr__(self):
        return f"GaussianMixture(K={self.components}, d={self.dim})"


class Gaussian(GaussianMixture):
    """N(mean, diag(var)); the exact model is affine in x, so output laws propagate exactly."""

    def __init__(self, mean, var):
        mean = np.atleast_1d(_float_array(mean, "mean"))
        var = _float_array(var, "var")
        if mean.ndim != 1 or var.ndim > 1 or (var.ndim == 1 and var.shape != mean.shape):
            raise DiffsolveError(
                f"Gaussian var of shape {var.shape} does not match mean of shape {mean.shape}; "
                "pass mean (d,) and var (d,) or a scalar var"
            )
        var = np.broadcast_to(var, mean.shape)
        super().__init__([1.0], mean[None], var[None])

    @property
    def mean_vector(self):
        return self.means[0]

    @property
    def var(self):
        return self.variances[0]

    def marginal_moments(self, t, schedule):
        """(mean, variance) per coordinate of the marginal at t."""
        a, _, var_t = self._marginal(t, schedule)
        return a * self.means[0], var_t[0]

    def affine_prediction(self, t, schedule, prediction: str):
        """(G, g) with model output = G * x + g per coordinate (exact, for law propagation)."""
        a, s, var_t = self._marginal(t, schedule)
        m, v = self.means[0], var_t[0]
        gain = a * self.variances[0] / v
        cx, cd = predictions.coefficients(prediction, schedule, t)
        # D = m + gain (x - a m)  =>  P = cx x + cd D
        return cx + cd * gain, cd * (m - gain * a * m)

    def __repr__(self):
        return f"Gaussian(d={self.dim})"


def _parse_spec(spec: str):
    if not isinstance(spec, str) or ":" not in spec:
        raise DiffsolveError(
            f"target spec must look like 'gaussian:d=16' or 'gmm:d=2,k=8,seed=0', got {spec!r}"
        )
    kind, _, rest = spec.partition(":")
    opts = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise DiffsolveError(f"target spec option {item!r} in {spec!r} must be key=value")
        try:
            opts[key.strip()] = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            raise DiffsolveError(f"target spec option {item!r} in {spec!r} needs a number") from None
    return kind.strip(), opts


def _gaussian(d=8, seed=0, scale=1.0, var=None):
    """Anisotropic by default: variances geometric from 0.05 to 1, means scale * N(0, 1)."""
    rng = np.random.default_rng(seed)
    variances = np.full(d, float(var)) if var is not None else np.geomspace(0.05, 1.0, d)
    return Gaussian(scale * rng.standard_normal(d), variances)


def _gmm(d=2, k=8, seed=0, scale=2.0, var=0.05):
    """Weights softmax(N(0,1)), means scale * N(0, I), isotropic component variance ``var``."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(k)
    w = np.exp(logits - logits.max())
    return GaussianMixture(w / w.sum(), scale * rng.standard_normal((k, d)), np.full(k, float(var)))


_SPECS = {"gaussian": (_gaussian, {"d", "seed", "scale", "var"}), "gmm": (_gmm, {"d", "k", "seed", "scale", "var"})}


def from_spec(spec: str) -> Target:
    """Build a target from a spec string: ``gaussian:d=16[,seed=,scale=,var=]``, ``gmm:d=2,k=8,seed=0[,scale=,var=]``."""
    kind, opts = _parse_spec(spec)
    if kind not in _SPECS:
        raise DiffsolveError(f"unknown target kind {kind!r} in {spec!r}; expected one of {', '.join(_SPECS)}")
    factory, allowed = _SPECS[kind]
    unknown = set(opts) - allowed
    if unknown:
        raise DiffsolveError(f"unknown option(s) {sorted(unknown)} for target {kind!r}; allowed: {sorted(allowed)}")
    for key in ("d", "k"):
        if key in opts and (not isinstance(opts[key], int) or opts[key] < 1):
            raise DiffsolveError(f"target option {key} must be a positive integer, got {opts[key]!r}")
    if "seed" in opts and (not isinstance(opts["seed"], int) or opts["seed"] < 0):
        raise DiffsolveError(f"target option seed must be a non-negative integer, got {opts['seed']!r} in {spec!r}")
    if "var" in opts and not opts["var"] > 0:
        raise DiffsolveError(f"target option var must be positive, got {opts['var']!r}")
    return factory(**opts)
