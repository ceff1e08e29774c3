"""Langevin segments: MALA and underdamped Langevin (ULD) chains on a (tilted) marginal, as program segments.

A :class:`LangevinSegment` runs ``len(tau)`` iterations of one chain at a fixed score time ``t`` on the target

    pi(x)  ∝  p_t(x) exp(-(c/2) |x - y/a|^2),          y = the state when the segment starts,

with ``c = 0`` a plain Langevin sampler of p_t, and ``c = a^2/q`` the reverse transition kernel of Huang et al.
(2024), the law of X_t given X_{t'} = y when the forward transition is X_{t'} | X_t ~ N(a X_t, q I) (on the OU
process a = e^{-eta}, q = 1 - e^{-2 eta}: pi ∝ p_t(x) N(x; e^eta y, (e^{2 eta} - 1) I); docs/algorithms/langevin.md).
The score of pi is G(x) = s(x, t) - c (x - y/a), with s the model's score.  The chain starts from

* ``init="tweedie"``: z_0 = (y + q s(y, t')) / a = E[X_t | X_{t'} = y] (one model call at (y, t'), free when the
  previous segment left the score of its final state at t');
* ``init="anchor"``: z_0 = y / a;   ``init="state"``: z_0 = y (a chain continued from the current state).

The methods (each one frozen dataclass: its parameters, its NumPy reference, its driver):

* :class:`Mala`: proposal p = z + tau G(z) + sqrt(2 tau) xi, accepted with the Metropolis-Hastings probability in
  the cancellation-safe form (docs/algorithms/langevin.md §2); the energy difference log p_t(p) - log p_t(z) is
  exact (``energy="exact"``: the model supplies log p_t) or a score line integral (``"trapezoid"``: free;
  ``"simpson"``: one more model call, at the midpoint).  Optional projection radius (a proposal with
  |p - z| > radius is rejected).  The accepted state's score is cached (FSAL).
* :class:`Uld`: the frozen-gradient exponential integrator of underdamped Langevin dynamics (Cheng, Chatterji,
  Bartlett & Jordan 2018), with the exact 2x2 position/velocity covariance; coefficients from the generated
  module ``diffsolve._generated.uld`` (derived in :mod:`diffsolve.symbolic.langevin`).  The velocity is refreshed
  from N(0, I) when the segment starts.
* :class:`SnrLangevin`: the corrector of Song et al. (2021) with the signal-to-noise step-size rule (``pc-song``).

Noise: program step k of the run (one per iteration) draws with step key k + 1 (runs on across segments), the
proposal / position normals as draw 0, ULD's second normal as draw 1, the Metropolis uniform as draw 1, the velocity
refresh as draw 2 of the segment's first step; so a sample does not depend on the batch it runs in.

The arithmetic of the iterations is :class:`ChainOps` (NumPy, the reference) or the engine's compiled version of it
(``engine.chain_ops()``); on the library's mixture targets the cpu and cuda backends run whole chains in one
compiled kernel (:func:`diffsolve.kernels.plan.fused_parts`; docs/algorithms/langevin.md §6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import DiffsolveError
from .noise import standard_normal, standard_uniform
from .program import Update
from .stepper import DRIVERS, Call, RunState, check_finite

__all__ = ["LangevinSegment", "Mala", "Uld", "SnrLangevin", "ChainOps", "ENERGIES", "INITS", "ALPHA_RULES", "NORMS",
           "line_integral", "mala_log_acceptance", "snr_step_sizes", "corrector_alpha"]

ENERGIES = ("exact", "trapezoid", "simpson")
INITS = ("tweedie", "anchor", "state")


def _rowdot(a, b):
    """Per-sample dot products of (n, D) arrays."""
    return np.einsum("nd,nd->n", a, b)


def line_integral(rule: str, delta, s_z, s_p, s_mid=None):
    """log p(z + delta) - log p(z) from scores along the segment: ``"trapezoid"`` delta.(s_z + s_p)/2 (error
    O(|delta|^3)), ``"simpson"`` delta.(s_z + 4 s_mid + s_p)/6 with s_mid the score at z + delta/2 (error
    O(|delta|^5)); per sample."""
    if rule == "trapezoid":
        return 0.5 * _rowdot(delta, s_z + s_p)
    if rule == "simpson":
        return _rowdot(delta, s_z + 4.0 * s_mid + s_p) / 6.0
    raise DiffsolveError(f"rule must be 'trapezoid' or 'simpson', got {rule!r}")


def mala_log_acceptance(z, p, G, Gp, tau, delta_energy, c=0.0, b=None, safe=True):
    """log of the Metropolis-Hastings ratio of the MALA move z -> p on pi ∝ p_t exp(-(c/2)|x - b|^2).

    ``G``/``Gp`` are the scores of pi at z and p, ``delta_energy`` = log p_t(p) - log p_t(z) (exact or a quadrature),
    proposal N(z + tau G, 2 tau I).  ``safe`` (default) uses the forms without cancellation, with delta = p - z:

        log q(z|p) - log q(p|z) = -delta.(G + Gp)/2 + (tau/4) (G - Gp).(G + Gp)
        -(c/2) (|p - b|^2 - |z - b|^2) = -(c/2) delta.(p + z - 2 b);

    ``safe=False`` the textbook differences of squared norms (O(D) numbers that nearly cancel).
    """
    delta = p - z
    if safe:
        S = G + Gp
        hastings = -0.5 * _rowdot(delta, S) + 0.25 * tau * _rowdot(G - Gp, S)
        quad = 0.0 if c == 0.0 else -0.5 * c * _rowdot(delta, p + z - 2.0 * b)
    else:
        fwd, bwd = p - z - tau * G, z - p - tau * Gp
        hastings = (_rowdot(fwd, fwd) - _rowdot(bwd, bwd)) / (4.0 * tau)
        quad = 0.0 if c == 0.0 else -0.5 * c * (_rowdot(p - b, p - b) - _rowdot(z - b, z - b))
    return delta_energy + quad + hastings


@dataclass(frozen=True)
class LangevinSegment(Update):
    """``len(tau)`` iterations of ``method`` at score time ``t`` on the target of the module docstring.

    ``tilt`` = c, ``a`` and ``q`` the forward transition of the kernel (``a`` also divides the anchor y),
    ``init`` one of :data:`INITS`, ``t_init`` the time of the Tweedie score (t' > t)."""

    method: object
    t: float
    tau: np.ndarray
    tilt: float = 0.0
    a: float = 1.0
    q: float = 0.0
    init: str = "state"
    t_init: float | None = None

    def __post_init__(self):
        tau = np.asarray(self.tau, dtype=np.float64).ravel()
        object.__setattr__(self, "tau", tau)
        if tau.size == 0 or not np.all(np.isfinite(tau)) or np.any(tau <= 0):
            raise DiffsolveError(f"Langevin step sizes must be finite and > 0, got {tau.tolist()[:8]}")
        if self.init not in INITS:
            raise DiffsolveError(f"init must be one of {INITS}, got {self.init!r}")
        if self.init == "tweedie" and (self.t_init is None or not self.q > 0):
            raise DiffsolveError("init='tweedie' needs the transition (a, q > 0) and the time t_init of the score")
        if not (self.tilt >= 0 and self.a > 0):
            raise DiffsolveError(f"a Langevin segment needs tilt >= 0 and a > 0, got tilt={self.tilt!r}, a={self.a!r}")

    @property
    def steps(self) -> int:
        """Iterations (one noise step each)."""
        return int(self.tau.size)

    affine = False  # MALA is not; ULD on a Gaussian is, but the exact-law harnesses take tables only

    @property
    def nfe(self) -> int:
        """Model calls of the segment, counting the Tweedie call (the driver may skip it: see ``init``)."""
        return self.method.calls_per_iteration * self.steps + self.method.setup_calls + (self.init == "tweedie")


class _Chain:
    """The buffers of one Langevin segment on the host engines: position ``Z`` (the run's state), the anchor
    ``B`` = y / a, the model input buffer ``P`` (the run's stage buffer) and the score slots."""

    def __init__(self, state: RunState, segment: LangevinSegment):
        self.state, self.seg = state, segment
        self.Z, self.P = state.X, state.U
        self.B = state.X / segment.a
        self.n, self.D = state.flat

    def score(self, raw, u):
        """The score of the segment's target from the model's score ``raw`` at ``u``."""
        return raw if self.seg.tilt == 0.0 else raw - self.seg.tilt * (u - self.B)

    def model_score(self, vals, call):
        """The model output ``vals`` at ``call`` as a score (a new array; checked finite)."""
        out = vals[0] if isinstance(vals, tuple) else vals
        check_finite(int(np.count_nonzero(~np.isfinite(out))), call, self.state)
        return np.array(self.state.conversion(call.t, "score").apply(out, call.u), dtype=self.Z.dtype)

    def start(self, first, calls):
        """Set the initial position (in place in Z), yielding the Tweedie call when one is needed; returns the
        number of model calls of the first iteration (``calls`` plus the Tweedie call, if made)."""
        seg, state = self.seg, self.state
        made = 0
        if seg.init == "tweedie":
            cached = state.cache.get("score")
            if cached is not None and cached[1] == seg.t_init:
                s_y = cached[0]
            else:
                made = 1
                call = Call(self.Z, float(seg.t_init), first, 0, calls + 1)
                s_y = self.model_score((yield call), call)
            self.Z[...] = (self.Z + seg.q * s_y) / seg.a
        elif seg.init == "anchor":
            self.Z[...] = self.B
        state.cache.pop("score", None)
        return calls + made


class ChainOps:
    """The arithmetic of chain iterations on a batch, the readable NumPy reference: position ``Z``, proposal
    ``P``, midpoint ``Mid``, anchor ``B``, velocity ``W`` ((n, D) arrays), the score stack ``V (3, n, D)`` = raw
    model scores at (Z, P, Mid), keys of :class:`~diffsolve.backends.engine.Keys`.  The cpu engine runs the same
    four operations as compiled passes over the samples (:mod:`diffsolve.kernels.scalar`, ``mala_propose``,
    ``mala_accept``, ``uld_refresh``, ``uld_move``: the functions its fused chain kernel is made of)."""

    @staticmethod
    def normals(keys, step, draw, D):
        return standard_normal(keys.seed_lo | (keys.seed_hi << 32), keys.sidx, step, draw, D)

    @staticmethod
    def tilted(R, x, B, tilt):
        """The score of the tilted target from the raw score ``R`` at ``x``."""
        return R if tilt == 0.0 else R - tilt * (x - B)

    def propose(self, P, Mid, Z, V, B, tau, tilt, simpson, keys, step):
        """P = Z + tau G(Z) + sqrt(2 tau) xi (draw 0); Mid = (Z + P) / 2 when ``simpson``."""
        xi = self.normals(keys, step, 0, Z.shape[1])
        P[...] = Z + tau * self.tilted(V[0], Z, B, tilt) + math.sqrt(2.0 * tau) * xi
        if simpson:
            Mid[...] = 0.5 * (Z + P)

    def accept(self, Z, P, V, B, tau, tilt, radius, energy, dlogp, keys, step):
        """The Metropolis test of Z -> P (uniform of draw 1; the energy difference ``dlogp`` for ``"exact"``, else
        the line integral of V), applied as a masked update (Z = P, V[0] = V[1]); returns the accept mask."""
        delta = P - Z
        dE = dlogp if energy == "exact" else line_integral(energy, delta, V[0], V[1], V[2])
        log_alpha = mala_log_acceptance(Z, P, self.tilted(V[0], Z, B, tilt), self.tilted(V[1], P, B, tilt), tau, dE,
                                        tilt, B)
        take = np.log(standard_uniform(keys.seed_lo | (keys.seed_hi << 32), keys.sidx, step, 1)) < log_alpha
        if radius < math.inf:
            take &= _rowdot(delta, delta) <= radius * radius
        Z[take], V[0][take] = P[take], V[1][take]
        return take

    def snr_move(self, Z, P, V, B, tilt, alpha, snr, keys, step):
        """The SNR-rule corrector step of every sample (:class:`SnrLangevin`): z = normals of draw 0 (kept in
        ``P``), eps = 2 alpha (snr |z| / |g|)^2 per sample (0 where g = 0), Z += eps g + sqrt(2 eps) z; returns
        eps (n,)."""
        P[...] = self.normals(keys, step, 0, Z.shape[1])
        g = self.tilted(V[0], Z, B, tilt)
        eps = snr_step_sizes(g, P, snr, alpha)
        Z[...] = Z + eps[:, None] * g + np.sqrt(2.0 * eps)[:, None] * P
        return eps

    def refresh(self, W, keys, step):
        """W = a fresh N(0, I) velocity (draw 2)."""
        W[...] = self.normals(keys, step, 2, W.shape[1])

    def move(self, Z, W, V, B, tilt, cf, it, keys, step):
        """The frozen-gradient ULD step with coefficients ``cf[it]`` (:meth:`Uld.coefficients`); position normals
        of draw 0, velocity normals of draw 1."""
        _, c_vv, c_vG, c_zv, c_zG, l11, l21, l22 = (float(c) for c in cf[it])
        grad = -self.tilted(V[0], Z, B, tilt)
        n1, n2 = self.normals(keys, step, 0, Z.shape[1]), self.normals(keys, step, 1, Z.shape[1])
        Z_new = Z + c_zv * W + c_zG * grad + l11 * n1
        W[...] = c_vv * W + c_vG * grad + (l21 * n1 + l22 * n2)
        Z[...] = Z_new


@dataclass(frozen=True)
class Mala:
    """Metropolis-adjusted Langevin (Roberts & Tweedie 1996) on the segment target; ``energy`` one of
    :data:`ENERGIES`, ``radius`` the projection radius (inf: plain MALA).  NFE: 1 per iteration (2 with Simpson),
    plus one at the start."""

    energy: str = "simpson"
    radius: float = math.inf

    setup_calls = 1

    def __post_init__(self):
        if self.energy not in ENERGIES:
            raise DiffsolveError(f"energy must be one of {ENERGIES}, got {self.energy!r}")
        if not self.radius > 0:
            raise DiffsolveError(f"radius must be > 0 (inf: no projection), got {self.radius!r}")

    @property
    def calls_per_iteration(self) -> int:
        return 2 if self.energy == "simpson" else 1

    def drive(self, seg: LangevinSegment, state: RunState, first: int):
        ch, ops = _Chain(state, seg), state.engine.chain_ops()
        per = self.calls_per_iteration
        stages = yield from ch.start(first, 1 + per)
        exact, simpson = self.energy == "exact", self.energy == "simpson"
        Z, P = ch.Z, ch.P
        V = np.zeros((3,) + Z.shape, dtype=Z.dtype)  # scores at Z, P, Mid
        Mid = np.empty_like(Z) if simpson else P
        call = Call(Z, seg.t, first, stages - 1 - per, stages, exact)
        out = yield call
        V[0] = ch.model_score(out, call)
        logp = np.array(out[1], dtype=np.float64) if exact else None
        dlogp = np.zeros(ch.n)
        accepted = 0
        for j in range(seg.steps):
            step, tau = state.noise_step(first + j), float(seg.tau[j])
            stage = call.stage + 1 if j == 0 else 0
            stages = stages if j == 0 else per
            ops.propose(P, Mid, Z, V, ch.B, tau, seg.tilt, simpson, state.keys, step)
            if simpson:
                call = Call(Mid, seg.t, first + j, stage, stages)
                V[2] = ch.model_score((yield call), call)
                stage += 1
            call = Call(P, seg.t, first + j, stage, stages, exact)
            out = yield call
            V[1] = ch.model_score(out, call)
            if exact:
                logp_p = np.asarray(out[1], dtype=np.float64)
                dlogp = logp_p - logp
            take = ops.accept(Z, P, V, ch.B, tau, seg.tilt, self.radius, self.energy, dlogp, state.keys, step)
            if exact:
                logp = np.where(take, logp_p, logp)
            accepted += int(np.count_nonzero(take))
        state.cache["score"] = (V[0], seg.t)  # the accepted states' scores: a following Tweedie start needs no call
        state.stats.setdefault("acceptance", []).append(accepted / (seg.steps * ch.n))


@dataclass(frozen=True)
class Uld:
    """Underdamped Langevin, frozen-gradient exponential integrator (Cheng et al. 2018) with friction ``gamma``;
    exact 2x2 position/velocity covariance per coordinate.  NFE: 1 per iteration."""

    gamma: float = 2.0

    setup_calls = 0
    calls_per_iteration = 1

    def __post_init__(self):
        if not (math.isfinite(self.gamma) and self.gamma > 0):
            raise DiffsolveError(f"gamma (the ULD friction) must be finite and > 0, got {self.gamma!r}")

    def coefficients(self, tau) -> np.ndarray:
        """One row per step size: (tau, c_vv, c_vG, c_zv, c_zG, l11, l21, l22) from the generated
        ``diffsolve._generated.uld.uld_coefficients``."""
        from ._generated.uld import uld_coefficients

        return np.array([(t,) + tuple(uld_coefficients(self.gamma, float(t))) for t in np.ravel(tau)],
                        dtype=np.float64).reshape(-1, 8)

    def drive(self, seg: LangevinSegment, state: RunState, first: int):
        ch, ops = _Chain(state, seg), state.engine.chain_ops()
        stages = yield from ch.start(first, 1)
        Z, cf = ch.Z, self.coefficients(seg.tau)
        V = np.zeros((3,) + Z.shape, dtype=Z.dtype)
        W = np.empty_like(Z)
        ops.refresh(W, state.keys, state.noise_step(first))
        for j in range(seg.steps):
            call = Call(Z, seg.t, first + j, stages - 1 if j == 0 else 0, stages if j == 0 else 1)
            V[0] = ch.model_score((yield call), call)
            ops.move(Z, W, V, ch.B, seg.tilt, cf, j, state.keys, state.noise_step(first + j))


ALPHA_RULES = ("one", "grid")
NORMS = ("sample", "batch")


def corrector_alpha(rule: str, schedule, t: float, t_next: float) -> float:
    """The factor alpha of the SNR corrector at grid time ``t`` whose predictor step ends at ``t_next`` (< t).

    ``"one"``: 1 (score_sde on VE schedules).  ``"grid"``: alpha(t)^2 / alpha(t_next)^2, the 1 - beta of the
    DDPM step t_next -> t of the sampling grid (score_sde on VP schedules uses 1 - beta_i of its own N-step
    discretisation, which this is on that grid; on a coarser grid it is the DDPM alpha of the coarser chain).
    """
    if rule == "one":
        return 1.0
    if rule == "grid":
        log_ratio = 2.0 * float(schedule.log_alpha(t) - schedule.log_alpha(t_next))
        alpha = math.exp(log_ratio) if math.isfinite(log_ratio) else 0.0
        if not alpha > 0:
            raise DiffsolveError(f"the corrector factor alpha = alpha(t)^2 / alpha(t_next)^2 is 0 at t = {t!r} "
                                 "(alpha(t) = 0 there); start the grid at a time with alpha(t) > 0 or pass "
                                 "alpha='one'")
        return alpha
    raise DiffsolveError(f"alpha rule must be one of {ALPHA_RULES}, got {rule!r}")


def snr_step_sizes(g, z, snr: float, alpha: float) -> np.ndarray:
    """Per-sample step sizes eps_i = 2 alpha (snr |z_i| / |g_i|)^2 of (n, D) scores ``g`` and normals ``z``
    (float64, shape (n,)); eps_i = 0 where g_i = 0."""
    g = np.asarray(g, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    g2, z2 = _rowdot(g, g), _rowdot(z, z)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = 2.0 * alpha * snr * snr * z2 / g2
    return np.where(g2 > 0, eps, 0.0)


@dataclass(frozen=True)
class SnrLangevin:
    """The Langevin corrector of Song et al. (2021), Algorithms 4-5, with its signal-to-noise step-size rule:
    eps = 2 alpha (snr |z| / |g|)^2, x <- x + eps g + sqrt(2 eps) z, g the score of the segment's target at x and
    z ~ N(0, I) (draw 0); the segment's ``tau[j]`` is the factor alpha of iteration j.  ``norms="sample"``
    (default): |z| and |g| of each sample, so a sample does not depend on its batch; ``"batch"``: the batch means
    of the per-sample norms, one eps for the batch, as score_sde's ``LangevinCorrector`` and diffusers'
    ``ScoreSdeVeScheduler.step_correct`` (a sample then depends on the batch it runs in).  NFE: 1 per iteration."""

    snr: float
    norms: str = "sample"

    setup_calls = 0
    calls_per_iteration = 1

    def __post_init__(self):
        if not (isinstance(self.snr, (int, float, np.floating, np.integer)) and math.isfinite(self.snr)
                and self.snr > 0):
            raise DiffsolveError(f"snr (the corrector's signal-to-noise ratio) must be a finite number > 0, got "
                                 f"{self.snr!r}; score_sde uses 0.16 on CIFAR-10 (VE)")
        if self.norms not in NORMS:
            raise DiffsolveError(f"norms must be one of {NORMS}, got {self.norms!r}")

    def drive(self, seg: LangevinSegment, state: RunState, first: int):
        ch = _Chain(state, seg)
        ops = state.engine.chain_ops() if self.norms == "sample" else ChainOps()
        stages = yield from ch.start(first, 1)
        Z, P = ch.Z, ch.P
        V = np.zeros((3,) + Z.shape, dtype=Z.dtype)
        total = 0.0
        for j in range(seg.steps):
            step = state.noise_step(first + j)
            call = Call(Z, seg.t, first + j, stages - 1 if j == 0 else 0, stages if j == 0 else 1)
            V[0] = ch.model_score((yield call), call)
            if self.norms == "sample":
                eps = ops.snr_move(Z, P, V, ch.B, seg.tilt, float(seg.tau[j]), self.snr, state.keys, step)
            else:
                eps = self._batch_move(Z, V, ch, float(seg.tau[j]), step)
            total += float(np.sum(eps))
        # the mean step size of the segment (over its samples and iterations), like MALA's acceptance rates
        state.stats.setdefault("snr_step", []).append(total / (seg.steps * ch.n))

    def _batch_move(self, Z, V, ch, alpha, step):
        """The reference code's rule: one eps from the batch means of the norms."""
        g = ChainOps.tilted(V[0], Z, ch.B, ch.seg.tilt)
        z = ChainOps.normals(ch.state.keys, step, 0, ch.D)
        gn, zn = float(np.mean(np.sqrt(_rowdot(g, g)))), float(np.mean(np.sqrt(_rowdot(z, z))))
        eps = 2.0 * alpha * (self.snr * zn / gn) ** 2 if gn > 0 else 0.0
        Z[...] = Z + eps * g + math.sqrt(2.0 * eps) * z
        return np.full(ch.n, eps)


def drive_langevin(segment: LangevinSegment, state: RunState, first: int):
    """The driver of a Langevin segment: its method's, on the host engines (their ``chain_ops``)."""
    if not isinstance(state.X, np.ndarray):
        raise DiffsolveError(f"with a model callable, Langevin segments run on the 'numpy' and 'cpu' backends, not "
                             f"on {state.engine.name!r} (a model call would leave the device every iteration; the "
                             "cuda backend runs them fused for the library's mixture targets): pass backend='cpu'")
    return segment.method.drive(segment, state, first)


DRIVERS[LangevinSegment] = drive_langevin
