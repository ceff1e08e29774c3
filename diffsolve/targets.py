"""Analytic targets with exact marginals, denoisers and scores at every t of every schedule.

``GaussianMixture(weights, means, variances)`` (diagonal components), its special case ``Gaussian(mean, var)``
and ``FullGaussianMixture(weights, means, covariances)`` (full covariance matrices; never fused by the compiled
kernels, which handle diagonal mixtures only, so it always runs the generic Stepper path).  Under
x_t = alpha x_0 + sigma eps the marginal is again a mixture with component means alpha m_k and covariances
alpha^2 Sigma_k + sigma^2 I (:meth:`marginal` returns it as a target); the denoiser E[x_0 | x_t] is the
responsibility-weighted posterior mean (docs/verification.md §1.1).  Every other prediction type follows through
:mod:`diffsolve.predictions`.

Reverse transition kernels: ``target.rtk_kernel(y, s, eta, schedule)`` is the exact law of X_s given
X_{s+eta} = y (a Gaussian mixture per row of ``y``, :class:`KernelLaw`), the target of the inner samplers of the
reverse-transition-kernel framework (Huang, Zou, Dong, Ma, Zhang 2024, NeurIPS: pi(x | y) proportional to
p_s(x) N(x; e^eta y, (e^{2 eta} - 1) I) on the OU process).  With a = alpha(s+eta) / alpha(s) and
q = sigma(s+eta)^2 - a^2 sigma(s)^2 (so X_{s+eta} | X_s ~ N(a X_s, q I)) and p_s = sum_i w_i N(alpha_s m_i, C_i)
with C_i = alpha_s^2 Sigma_i + sigma_s^2 I, component i of the posterior has covariance
(C_i^{-1} + (a^2/q) I)^{-1} = q C_i S_i^{-1}, mean alpha_s m_i + a C_i S_i^{-1} (y - alpha_{s+eta} m_i) and weight
proportional to w_i N(y; alpha_{s+eta} m_i, S_i), where S_i = a^2 C_i + q I = alpha_{s+eta}^2 Sigma_i +
sigma_{s+eta}^2 I is the component covariance of p_{s+eta}.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.special import logsumexp

from . import predictions
from .errors import DiffsolveError, DiffsolveTypeError

__all__ = ["Target", "GaussianMixture", "Gaussian", "FullGaussianMixture", "KernelLaw", "from_spec"]

_CHUNK = 8192


def _float_array(value, name):
    """``value`` as a float64 array; refuses what NumPy would convert silently (None, booleans, complex numbers)."""
    try:
        kind = "None" if value is None else np.asarray(value).dtype.kind
    except (TypeError, ValueError):  # ragged nesting
        kind = "O"
    if kind not in "iufO":  # None, booleans, complex numbers, strings, dates: nothing NumPy should convert
        what = "None" if value is None else f"{type(value).__name__} of dtype {np.asarray(value).dtype}"
        raise DiffsolveTypeError(f"{name} must be an array of real numbers, got {what}; pass floats")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DiffsolveTypeError(f"{name} must be an array of real numbers, got {type(value).__name__} "
                                 f"{value!r:.80}") from None


_LOG_2PI = math.log(2 * math.pi)
_DEFAULT_SCHEDULE = []


def _default_schedule(schedule):
    """``schedule``, or the OU process (alpha = e^{-t}, sigma^2 = 1 - e^{-2t}) when None."""
    if schedule is not None:
        return schedule
    if not _DEFAULT_SCHEDULE:
        from .schedules import get_schedule

        _DEFAULT_SCHEDULE.append(get_schedule("ou"))
    return _DEFAULT_SCHEDULE[0]


def _ou_class():
    from .schedules import OU

    return OU


def _time_value(value, name, *, positive=False):
    """A real, finite scalar time (``positive``: > 0, else >= 0)."""
    if isinstance(value, (bool, np.bool_)):
        raise DiffsolveError(f"{name} must be a real number, got the bool {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DiffsolveError(f"{name} must be a real number, got {type(value).__name__} {value!r:.80}") from None
    if arr.size != 1:
        raise DiffsolveError(f"{name} must be a single number, got an array of shape {arr.shape}; pass a float")
    v = float(arr.ravel()[0])
    if not math.isfinite(v):
        raise DiffsolveError(f"{name} must be finite, got {v!r}; pass a finite time")
    if positive and not v > 0:
        raise DiffsolveError(f"{name} must be > 0 (a step length), got {v!r}; pass a positive value such as 0.1")
    if not positive and v < 0:
        raise DiffsolveError(f"{name} must be >= 0 (a diffusion time), got {v!r}; pass a non-negative time")
    return v


def _coefficients(schedule, t):
    """(alpha(t), sigma(t)) as floats."""
    a = float(np.asarray(schedule.alpha(t)).ravel()[0])
    s = float(np.asarray(schedule.sigma(t)).ravel()[0])
    return a, s


def _points(x, name, dim):
    """``x`` as a finite float64 array of shape (n, dim)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise DiffsolveError(
            f"{name} must be an array of real numbers of shape (n, {dim}), got {type(x).__name__}"
        ) from None
    if arr.ndim != 2 or arr.shape[1] != dim or arr.shape[0] == 0:
        hint = "; for one point use y[None]" if arr.ndim == 1 and arr.shape == (dim,) else ""
        raise DiffsolveError(
            f"{name} must have shape (n, {dim}) with n >= 1 for this {dim}-dimensional target, "
            f"got shape {arr.shape}{hint}"
        )
    if not np.isfinite(arr).all():
        bad = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise DiffsolveError(f"{name} contains NaN or inf (first in row {bad}); pass finite values")
    return arr


def _cholesky(covs, name):
    """Lower Cholesky factors of the (K, d, d) stack ``covs`` (refuses a matrix that is not positive definite)."""
    out = np.empty_like(covs)
    for k, c in enumerate(covs):
        try:
            out[k] = np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            lam = float(np.linalg.eigvalsh(c).min())
            raise DiffsolveError(
                f"{name}[{k}] is not positive definite (smallest eigenvalue {lam:.3g}); pass symmetric "
                "positive-definite matrices (e.g. add a small multiple of the identity, 1e-4 * I)"
            ) from None
    return out


def _mvn_logpdf(diff, chol):
    """log N(diff[n, k]; 0, L_k L_k^T) for ``diff`` (n, K, d) and lower factors ``chol`` (K, d, d): (n, K)."""
    n, K, d = diff.shape
    out = np.empty((n, K))
    for k in range(K):
        z = solve_triangular(chol[k], diff[:, k, :].T, lower=True, check_finite=False)
        out[:, k] = -0.5 * np.sum(z * z, axis=0) - np.log(np.diag(chol[k])).sum() - 0.5 * d * _LOG_2PI
    return out


def _softmax(logits):
    return np.exp(logits - logsumexp(logits, axis=1, keepdims=True))


def _stack_solve(chol, rhs):
    """S_k^{-1} rhs[:, k] for every k: ``rhs`` (n, K, d), factors (K, d, d) of S_k; returns (n, K, d)."""
    out = np.empty_like(rhs)
    for k in range(chol.shape[0]):
        out[:, k, :] = cho_solve((chol[k], True), rhs[:, k, :].T, check_finite=False).T
    return out


def _draw(rng, weights, means, chol):
    """One draw per row from sum_k weights[i, k] N(means[i, k], L_k L_k^T): a uniform per row picks the
    component (inverse CDF), then one standard normal vector per row."""
    n, K, d = means.shape
    u = rng.random(n)
    cum = np.cumsum(weights, axis=1)
    comp = np.minimum(np.sum(u[:, None] * cum[:, -1:] > cum, axis=1), K - 1)
    z = rng.standard_normal((n, d))
    out = means[np.arange(n), comp].copy()
    for k in range(K):
        idx = np.flatnonzero(comp == k)
        if idx.size:
            out[idx] += z[idx] @ chol[k].T
    return out


class KernelLaw(NamedTuple):
    """Row-wise Gaussian-mixture law: row i is sum_k weights[i, k] N(means[i, k], covariances[k]).

    Returned by ``rtk_kernel`` (the exact law of X_s given X_{s+eta} = y[i]); the component covariances do not
    depend on y, only the weights and means do.
    """

    weights: np.ndarray  # (n, K), rows sum to 1
    means: np.ndarray  # (n, K, d)
    covariances: np.ndarray  # (K, d, d)

    def mean(self):
        """(n, d) mean of each row's law."""
        return np.einsum("nk,nkd->nd", self.weights, self.means)

    def cov(self):
        """(n, d, d) covariance of each row's law (law of total covariance: within plus between components)."""
        dev = self.means - self.mean()[:, None, :]
        return (np.einsum("nk,kij->nij", self.weights, self.covariances)
                + np.einsum("nk,nki,nkj->nij", self.weights, dev, dev))

    def sample(self, seed=0):
        """One exact draw per row, shape (n, d) (``numpy.random.default_rng(seed)``; a Generator is used as is)."""
        rng = np.random.default_rng(seed)
        return _draw(rng, self.weights, self.means, _cholesky(self.covariances, "covariances"))

    def _log_joint(self, x):
        x = _points(x, "x", self.means.shape[2])
        if x.shape[0] != self.means.shape[0]:
            raise DiffsolveError(
                f"x has {x.shape[0]} rows but this kernel law has {self.means.shape[0]} (one per y); "
                "pass one point per row of y"
            )
        chol = _cholesky(self.covariances, "covariances")
        diff = x[:, None, :] - self.means
        with np.errstate(divide="ignore"):
            return np.log(self.weights) + _mvn_logpdf(diff, chol), diff, chol

    def logpdf(self, x):
        """(n,) log density of row i's law at x[i]."""
        return logsumexp(self._log_joint(x)[0], axis=1)

    def score(self, x):
        """(n, d) gradient of :meth:`logpdf` in x[i] (row i's law)."""
        lj, diff, chol = self._log_joint(x)
        return -np.einsum("nk,nkd->nd", _softmax(lj), _stack_solve(chol, diff))


def _rtk_kernel(weights, means, covs, y, s, eta, schedule):
    """The posterior law of X_s given X_{s+eta} = y for the data law sum_k w_k N(means_k, covs_k)."""
    schedule = _default_schedule(schedule)
    K, d = means.shape
    y = _points(y, "y", d)
    s = _time_value(s, "s")
    eta = _time_value(eta, "eta", positive=True)
    t = s + eta
    lo, hi = schedule.domain
    if s < lo or t > hi:
        raise DiffsolveError(
            f"the kernel needs s = {s!r} and s + eta = {t!r} inside the domain [{lo}, {hi}] of schedule "
            f"{getattr(schedule, 'name', schedule)!r}; pass a smaller s or eta (or a schedule with a wider domain)"
        )
    a_s, sig_s = _coefficients(schedule, s)
    a_t = float(np.asarray(schedule.alpha(t)).ravel()[0])
    if type(schedule) is _ou_class():  # alpha = e^{-t}: the increments from eta itself (no cancellation in t - s)
        a, q = math.exp(-eta), -math.expm1(-2.0 * eta)
    else:
        log_a = np.asarray(schedule.log_alpha(t)).ravel()[0] - np.asarray(schedule.log_alpha(s)).ravel()[0]
        a = math.exp(float(log_a))
        # q = sigma_t^2 - a^2 sigma_s^2 = sigma_t^2 (1 - e^{2 (lam_t - lam_s)}), without the cancellation at small eta
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            dlam = float(np.asarray(schedule.lam(t)).ravel()[0] - np.asarray(schedule.lam(s)).ravel()[0])
        sig_t = float(np.asarray(schedule.sigma(t)).ravel()[0])
        q = sig_t * sig_t - (a * sig_s) ** 2 if math.isnan(dlam) else -sig_t * sig_t * math.expm1(2.0 * dlam)
    if not q > 0:
        raise DiffsolveError(
            f"the forward transition from s = {s!r} to s + eta = {t!r} has no noise (q = {q!r}) under schedule "
            f"{getattr(schedule, 'name', schedule)!r}; pass a larger eta"
        )
    eye = np.eye(d)
    cov_s = a_s * a_s * covs + sig_s * sig_s * eye  # components of p_s
    S = a * a * cov_s + q * eye  # components of p_{s+eta}
    chol_S = _cholesky(S, "marginal covariance")
    solved = np.stack([cho_solve((chol_S[k], True), cov_s[k], check_finite=False) for k in range(K)])  # S^-1 C
    post = q * np.swapaxes(solved, 1, 2)  # q C S^{-1} = (C^{-1} + (a^2/q) I)^{-1}
    post = 0.5 * (post + np.swapaxes(post, 1, 2))
    gain = a * np.swapaxes(solved, 1, 2)  # a C S^{-1}
    resid = y[:, None, :] - a_t * means[None]  # (n, K, d)
    w = _softmax(np.log(weights)[None] + _mvn_logpdf(resid, chol_S))
    m = a_s * means[None] + np.einsum("kij,nkj->nki", gain, resid)
    return KernelLaw(w, m, post)


def _means_and_weights(means, weights):
    """Mixture means (K, d) and weights (K,) as float arrays, shapes checked."""
    means = np.atleast_2d(_float_array(means, "means"))
    if means.ndim != 2 or means.shape[0] == 0 or means.shape[1] == 0:
        raise DiffsolveError(
            f"means must have shape (K, d) with K >= 1 components and d >= 1 dimensions, got {means.shape}"
        )
    weights = _float_array(weights, "weights").ravel()
    if weights.shape != (means.shape[0],):
        raise DiffsolveError(f"weights must have shape ({means.shape[0]},) to match means {means.shape}, "
                             f"got {weights.shape}")
    return means, weights


def _normalised(weights):
    """Positive finite mixture weights divided by their sum (refused when the sum overflows)."""
    total = weights.sum()
    if not np.isfinite(total):
        raise DiffsolveError(f"mixture weights must have a finite sum, got {weights.tolist()[:8]}; pass "
                             "normalised weights (they are divided by their sum)")
    return weights / total


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
        means, weights = _means_and_weights(means, weights)
        k, d = means.shape
        variances = _float_array(variances, "variances")
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
        self.weights = _normalised(weights)
        self.means = means
        self.variances = np.ascontiguousarray(variances)
        self.dim = d

    @property
    def components(self) -> int:
        return self.means.shape[0]

    def mean(self):
        return self.weights @ self.means

    @property
    def covariances(self):
        """(K, d, d) component covariance matrices diag(v_k) (a new array; the same view as
        :class:`FullGaussianMixture`'s)."""
        return self.variances[:, :, None] * np.eye(self.dim)[None]

    def marginal(self, t, schedule=None):
        """The law of x_t (default schedule: the OU process) as a :class:`GaussianMixture`: means alpha m_k,
        variances alpha^2 v_k + sigma^2."""
        schedule = _default_schedule(schedule)
        t = _time_value(t, "t")
        a, s, var_t = self._marginal(t, schedule)
        return GaussianMixture(self.weights, a * self.means, var_t)

    def rtk_kernel(self, y, s, eta, schedule=None) -> KernelLaw:
        """Exact law of X_s given X_{s+eta} = y[i] for every row of ``y`` (n, d) (module docstring; default
        schedule: the OU process alpha = e^{-t}, sigma^2 = 1 - e^{-2t})."""
        return _rtk_kernel(self.weights, self.means, self.covariances, y, s, eta, schedule)

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

    def marginal(self, t, schedule=None):
        """The law of x_t (default schedule: the OU process) as a :class:`Gaussian`."""
        schedule = _default_schedule(schedule)
        t = _time_value(t, "t")
        mean, var = self.marginal_moments(t, schedule)
        return Gaussian(mean, var)

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


class FullGaussianMixture(Target):
    """sum_k w_k N(m_k, Sigma_k) with full (K, d, d) symmetric positive-definite covariances.

    Not a :class:`GaussianMixture` subclass: the compiled fused kernels handle diagonal mixtures only, so this
    target always runs the generic Stepper path.  Densities, denoisers and scores use Cholesky factors of the
    marginal covariances alpha^2 Sigma_k + sigma^2 I and log-sum-exp responsibilities.
    """

    def __init__(self, weights, means, covariances):
        means, weights = _means_and_weights(means, weights)
        k, d = means.shape
        covariances = _float_array(covariances, "covariances")
        if covariances.shape != (k, d, d):
            raise DiffsolveError(
                f"covariances must have shape ({k}, {d}, {d}) (one {d} x {d} matrix per component of means "
                f"{means.shape}), got {covariances.shape}; for one shared matrix C pass "
                f"np.broadcast_to(C, ({k}, {d}, {d}))"
            )
        for name, arr in (("weights", weights), ("means", means), ("covariances", covariances)):
            if not np.isfinite(arr).all():
                raise DiffsolveError(f"{name} contains NaN or inf; pass finite values")
        if np.any(weights <= 0):
            raise DiffsolveError(f"mixture weights must be positive, got {weights.tolist()}")
        for i, c in enumerate(covariances):
            asym = float(np.max(np.abs(c - c.T)))
            if asym > 1e-10 * max(1.0, float(np.max(np.abs(c)))):
                raise DiffsolveError(
                    f"covariances[{i}] is not symmetric (max |C - C^T| = {asym:.3g}); pass symmetric matrices, "
                    "e.g. 0.5 * (C + C.T)"
                )
        covariances = np.ascontiguousarray(0.5 * (covariances + np.swapaxes(covariances, 1, 2)))
        self._chol = _cholesky(covariances, "covariances")
        self.weights = _normalised(weights)
        self.means = means
        covariances.setflags(write=False)  # the Cholesky factors above are cached
        self.covariances = covariances
        self.dim = d

    @property
    def components(self) -> int:
        return self.means.shape[0]

    def mean(self):
        return self.weights @ self.means

    def _marginal(self, t, schedule):
        """(alpha, sigma, Cholesky factors of alpha^2 Sigma_k + sigma^2 I) at t (t None: the data)."""
        if t is None:
            return 1.0, 0.0, self._chol
        if schedule is None:
            raise DiffsolveError("pass the schedule together with t (e.g. ds.get_schedule('vp-linear'))")
        a, s = _coefficients(schedule, t)
        return a, s, _cholesky(a * a * self.covariances + s * s * np.eye(self.dim), "marginal covariance")

    def _chunks(self, x, a, chol):
        """Yield (lo, log joint (n, K), diff (n, K, d)) per chunk of samples (x_t = a x_0 + noise, factors chol)."""
        log_w = np.log(self.weights)[None]
        for lo in range(0, x.shape[0], _CHUNK):
            diff = x[lo:lo + _CHUNK][:, None, :] - a * self.means[None]
            yield lo, log_w + _mvn_logpdf(diff, chol), diff

    def denoise(self, x, t, schedule):
        """E[x_0 | x_t = x], exact: sum_k r_k(x) (m_k + alpha Sigma_k S_k^{-1} (x - alpha m_k))."""
        x = self._check_x(x).astype(np.float64, copy=False)
        a, _, chol = self._marginal(t, schedule)
        out = np.empty_like(x)
        for lo, lj, diff in self._chunks(x, a, chol):
            post = self.means[None] + a * np.einsum("kij,nkj->nki", self.covariances, _stack_solve(chol, diff))
            out[lo:lo + _CHUNK] = np.einsum("nk,nkd->nd", _softmax(lj), post)
        return out

    def logpdf(self, x, t=None, schedule=None):
        """log density of the data (t None) or of the marginal at time t."""
        x = self._check_x(x).astype(np.float64, copy=False)
        a, _, chol = self._marginal(t, schedule)
        out = np.empty(x.shape[0])
        for lo, lj, _ in self._chunks(x, a, chol):
            out[lo:lo + _CHUNK] = logsumexp(lj, axis=1)
        return out

    def score(self, x, t, schedule):
        """grad_x log p_t(x) = -sum_k r_k(x) S_k^{-1} (x - alpha m_k), computed directly (not through the
        denoiser)."""
        x = self._check_x(x).astype(np.float64, copy=False)
        a, _, chol = self._marginal(t, schedule)
        out = np.empty_like(x)
        for lo, lj, diff in self._chunks(x, a, chol):
            out[lo:lo + _CHUNK] = -np.einsum("nk,nkd->nd", _softmax(lj), _stack_solve(chol, diff))
        return out

    def sample(self, n: int, seed=0, t=None, schedule=None):
        """Exact samples of the data (t None) or of the marginal at t (NumPy generator, for references; with
        diagonal covariances the draws equal :meth:`GaussianMixture.sample`'s)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise DiffsolveError(f"n must be a positive integer, got {n!r}")
        if t is not None and schedule is None:
            raise DiffsolveError("pass the schedule together with t (e.g. ds.get_schedule('vp-linear'))")
        rng = np.random.default_rng(seed)
        comp = rng.choice(self.components, size=n, p=self.weights)
        z = rng.standard_normal((n, self.dim))
        x0 = self.means[comp]
        for k in range(self.components):
            idx = np.flatnonzero(comp == k)
            if idx.size:
                x0[idx] += z[idx] @ self._chol[k].T
        if t is None:
            return x0
        a, s = _coefficients(schedule, t)
        return a * x0 + s * rng.standard_normal((n, self.dim))

    def marginal(self, t, schedule=None):
        """The law of x_t (default schedule: the OU process) as a :class:`FullGaussianMixture`: means
        alpha m_k, covariances alpha^2 Sigma_k + sigma^2 I."""
        schedule = _default_schedule(schedule)
        a, s = _coefficients(schedule, _time_value(t, "t"))
        return FullGaussianMixture(self.weights, a * self.means, a * a * self.covariances + s * s * np.eye(self.dim))

    def rtk_kernel(self, y, s, eta, schedule=None) -> KernelLaw:
        """Exact law of X_s given X_{s+eta} = y[i] for every row of ``y`` (n, d) (module docstring; default
        schedule: the OU process alpha = e^{-t}, sigma^2 = 1 - e^{-2t})."""
        return _rtk_kernel(self.weights, self.means, self.covariances, y, s, eta, schedule)

    def __repr__(self):
        return f"FullGaussianMixture(K={self.components}, d={self.dim})"


_SPEC_INT = r"[+-]?[0-9]+"
_SPEC_FLOAT = r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?"
_SPEC_MAX_NUMBER = 40  # characters of one option value
MAX_SPEC_DIM = 2**20  # d of a spec target (docs/limits.md)
MAX_SPEC_COMPONENTS = 2**16  # k of a gmm spec
MAX_SPEC_ENTRIES = 2**24  # k * d means of a gmm spec (128 MiB of float64)


def _parse_spec(spec: str):
    """(kind, {key: int | float}) of ``kind:key=value,...``; refuses duplicates, empty and non-finite values."""
    import re

    if not isinstance(spec, str) or ":" not in spec:
        raise DiffsolveError(
            f"target spec must look like 'gaussian:d=16' or 'gmm:d=2,k=8,seed=0', got {spec!r:.100}"
        )
    kind, _, rest = spec.partition(":")
    opts = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq:
            raise DiffsolveError(f"target spec option {item!r} in {spec!r} must be key=value")
        if not key:
            raise DiffsolveError(f"target spec option {item!r} in {spec!r} has no name; write e.g. d=16")
        if not value:
            raise DiffsolveError(f"target spec option {item!r} in {spec!r} has an empty value; write e.g. {key}=16")
        if key in opts:
            raise DiffsolveError(
                f"target spec option {key!r} is given twice in {spec!r} ({key}={opts[key]} and {item}); give each "
                "option once"
            )
        if len(value) > _SPEC_MAX_NUMBER:
            raise DiffsolveError(
                f"target spec option {item[:60]!r}... in {spec[:80]!r} needs a number of at most {_SPEC_MAX_NUMBER} "
                "characters"
            )
        if re.fullmatch(_SPEC_INT, value):
            opts[key] = int(value)
        elif re.fullmatch(_SPEC_FLOAT, value):
            number = float(value)
            if not math.isfinite(number):
                raise DiffsolveError(
                    f"target spec option {item!r} in {spec!r} needs a finite number, got {number}; pass a value within "
                    "the float64 range"
                )
            opts[key] = number
        elif value.lower().lstrip("+-") in ("inf", "infinity", "nan"):
            raise DiffsolveError(f"target spec option {item!r} in {spec!r} needs a finite number, got {value!r}")
        else:
            raise DiffsolveError(
                f"target spec option {item!r} in {spec!r} needs a number (decimal digits, e.g. {key}=16 or {key}=0.5)"
            )
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
    """Build a target from a spec string: ``gaussian:d=16[,seed=,scale=,var=]``, ``gmm:d=2,k=8,seed=0[,scale=,var=]``.

    Options are integers (``d``, ``k``, ``seed``) or finite numbers (``scale``, ``var``), each given at most once;
    ``d <= 2**20``, ``k <= 2**16`` and ``k * d <= 2**24`` (docs/limits.md).
    """
    kind, opts = _parse_spec(spec)
    if kind not in _SPECS:
        raise DiffsolveError(f"unknown target kind {kind!r} in {spec!r}; expected one of {', '.join(_SPECS)}")
    factory, allowed = _SPECS[kind]
    unknown = set(opts) - allowed
    if unknown:
        raise DiffsolveError(f"unknown option(s) {sorted(unknown)} for target {kind!r}; allowed: {sorted(allowed)}")
    for key, limit in (("d", MAX_SPEC_DIM), ("k", MAX_SPEC_COMPONENTS)):
        if key in opts and (not isinstance(opts[key], int) or opts[key] < 1):
            hint = f" (write {key}={int(opts[key])})" if isinstance(opts[key], float) and opts[key].is_integer() else ""
            raise DiffsolveError(f"target option {key} must be a positive integer, got {opts[key]!r}{hint}")
        if key in opts and opts[key] > limit:
            raise DiffsolveError(
                f"target option {key} must be a positive integer <= {limit} (docs/limits.md), got {opts[key]} in "
                f"{spec!r}; pass a smaller {key}"
            )
    if kind == "gmm":
        d, k = opts.get("d", 2), opts.get("k", 8)
        if d * k > MAX_SPEC_ENTRIES:
            raise DiffsolveError(
                f"target {spec!r} has k * d = {k} * {d} = {k * d} mean entries, more than the limit {MAX_SPEC_ENTRIES} "
                "(docs/limits.md); pass a smaller k or d"
            )
    if "seed" in opts and (not isinstance(opts["seed"], int) or not 0 <= opts["seed"] < 2**64):
        raise DiffsolveError(
            f"target option seed must be a non-negative integer below 2**64, got {opts['seed']!r} in {spec!r}"
        )
    if "var" in opts and not opts["var"] > 0:
        raise DiffsolveError(f"target option var must be positive, got {opts['var']!r}")
    return factory(**opts)
