"""Accelerated samplers of Li et al. (ICML 2024, arXiv 2403.03852) and accel-sde, the reconstruction following Li &
Cai's description (arXiv 2410.23285): the measurements of docs/algorithms/accelerated.md
Parts B.2 and C.

Harness functions (also used by the tests):

* :func:`c1_tv` — C.1: exact 1-D Gaussian law, TV(law(Y_1), q_1) after T grid points tau uniform on [1e-3, 1];
* :func:`c2_tv` — C.2: the same on the discrete chain of the theory's learning-rate schedule;
* :func:`c3_tv` — C.3: TV on the two-mode mixture by grid density propagation (2-D joint grid for solvers that
  carry a history value, B.2.3);
* :func:`mixture_run`, :func:`clip_fractions` — B.2.1: Monte Carlo of accel-sde's momentum cap on the mixture.
"""

from __future__ import annotations

import numpy as np

from .. import grids
from ..errors import DiffsolveError
from ..accuracy.density import DensityGrid, propagate_density, tv_distance
from ..accuracy.gaussian_law import initial_law, propagate
from ..schedules import get_schedule
from ..solvers import get_solver
from ..targets import Gaussian, GaussianMixture
from . import Experiment, Result, fmt, slope

__all__ = ["VP", "C1_TARGET", "C3_TARGET", "c1_tv", "c2_tv", "c3_tv", "tv_1d", "tau_grid", "theory_betas",
           "mixture_run", "clip_fractions", "PerturbedGaussian", "EXPERIMENTS"]

VP = get_schedule("vp-linear")  # beta 0.1 -> 20
C1_TARGET = Gaussian([1.0], [0.25])
C3_TARGET = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [0.02, 0.02])
SDE_NAME = "accel-sde (reconstruction following Li & Cai's description)"


def tv_1d(m1, v1, m2, v2) -> float:
    """Exact 1-D TV between two Gaussians (numerical integral over +-12 std)."""
    s = np.sqrt(max(v1, v2))
    x = np.linspace(min(m1, m2) - 12 * s, max(m1, m2) + 12 * s, 200_001)
    p = np.exp(-((x - m1) ** 2) / (2 * v1)) / np.sqrt(2 * np.pi * v1)
    q = np.exp(-((x - m2) ** 2) / (2 * v2)) / np.sqrt(2 * np.pi * v2)
    return 0.5 * float(np.trapezoid(np.abs(p - q), x))


def tau_grid(T: int, spacing: str = "time", t_min: float = 1e-3) -> np.ndarray:
    """T grid points on [t_min, 1] (T - 1 steps): ``time`` (tau uniform), ``logsnr``, ``quadratic`` or
    ``alternating`` (tau steps alternating h and 3h, a non-smooth grid)."""
    if spacing == "alternating":
        steps = np.tile([1.0, 3.0], (T - 1) // 2 + 1)[: T - 1]
        return 1.0 - np.concatenate([[0.0], np.cumsum(steps)]) / steps.sum() * (1.0 - t_min)
    return grids.time_grid(VP, T - 1, spacing, t_max=1.0, t_min=t_min)


def c1_tv(solver, T: int, variant=None, target=C1_TARGET, spacing: str = "time") -> float:
    """docs/algorithms/accelerated.md C.1: TV(law(Y_1), q_1) for a 1-D Gaussian target, exact start Y_T ~ q_T;
    solvers with history start with their warm-up step (no exact history)."""
    return _exact_tv(get_solver(solver, variant=variant), VP, tau_grid(T, spacing), target)


def _exact_tv(solver, schedule, grid, target) -> float:
    """TV between the propagated output law and the target's marginal at grid[-1] (1-D Gaussian target), exact
    start; history values start at zero (the warm-up step does not read them)."""
    mean, cov = initial_law(target, schedule, grid, 0, solver.prediction, 0.0)
    if solver.history:
        mean = np.concatenate([mean, np.zeros((1, solver.history))], axis=1)
        pad = np.zeros((1, 1 + solver.history, 1 + solver.history))
        pad[:, 0, 0] = cov[:, 0, 0]
        cov = pad
    mean, cov = propagate(solver.program(schedule, grid), target, schedule, solver.prediction, mean, cov)
    m_ref, v_ref = target.marginal_moments(grid[-1], schedule)
    return tv_1d(mean[0, 0], cov[0, 0, 0], m_ref[0], v_ref[0])


def c3_tv(solver, T: int, variant=None, spacing: str = "time", size: int | None = None) -> float:
    """docs/algorithms/accelerated.md C.3 / B.2.3: TV(law(Y_1), q_1) on the mixture, T grid points on [1e-2, 1],
    exact start, by grid density propagation on ``size`` points of [-6, 6]: by default 3000, or 1024 (a 1024 x 1024
    joint grid) when the solver carries a history value or has two stages."""
    solver = get_solver(solver, variant=variant)
    grid = tau_grid(T, spacing, t_min=1e-2)
    g = DensityGrid(-6.0, 6.0, size or (1024 if solver.history or solver.stages > 1 else 3000))
    p0 = g.masses(lambda x: C3_TARGET.logpdf(x, grid[0], VP))
    q = g.masses(lambda x: C3_TARGET.logpdf(x, grid[-1], VP))
    p = propagate_density(solver.program(VP, grid), C3_TARGET, VP, solver.prediction, g, p0)
    return tv_distance(p, q)


def mixture_run(c: float, T: int, n: int, seed: int = 1):
    """accel-sde (default member, clip constant ``c``) on the C.3 mixture: n exact-start samples through T grid
    points tau uniform on [1e-2, 1] (NumPy interpreter); returns (samples, clip events (steps, n))."""
    from ..backends.numpy_backend import NumpyEngine
    from ..sampling import sample

    grid = tau_grid(T, "time", t_min=1e-2)
    x0 = C3_TARGET.sample(n, seed=seed, t=grid[0], schedule=VP)
    events = []
    x = sample(get_solver("accel-sde", c=c), C3_TARGET, VP, grid, x_init=x0, seed=seed + 6,
               backend=NumpyEngine(events=events))
    return x, np.array(events)


def clip_fractions(c: float, T: int, n: int = 200_000, seed: int = 1) -> float:
    """B.2.1: the fraction of (sample, step) pairs whose momentum is capped (clip constant ``c``, C.3 mixture),
    over the steps that carry one (all but the start-up)."""
    return float(mixture_run(c, T, n, seed)[1][1:].mean())


def theory_betas(T: int, c0: float = 2.0, c1: float = 6.0) -> np.ndarray:
    """The learning-rate schedule of the theory (docs/algorithms/accelerated.md A.1;
    recalled from the paper, unverified): beta_1 = T^-c0, beta_{t+1} = (c1 log T / T)
    min(beta_1 (1 + c1 log T / T)^t, 1); needs c1 log T / T < 1."""
    rate = c1 * np.log(T) / T
    if not rate < 1:
        raise DiffsolveError(f"the theory schedule needs c1 log T / T < 1, got {rate:.3g} at T = {T} (c1 = {c1}); "
                             "use more steps T or a smaller c1")
    return np.concatenate([[float(T) ** -c0], rate * np.minimum(float(T) ** -c0 * (1 + rate) ** np.arange(1, T), 1.0)])


def c2_tv(solver, T: int, variant=None, target=C1_TARGET) -> float:
    """docs/algorithms/accelerated.md C.2: TV(law(Y_1), q_1) on the discrete chain of the theory schedule (every
    one of its T steps, a DiscreteSchedule of those betas), exact start."""
    from ..schedules import DiscreteSchedule

    schedule = DiscreteSchedule(theory_betas(T), name="theory")
    return _exact_tv(get_solver(solver, variant=variant), schedule, schedule.t_nodes[::-1], target)  # t_T ... t_1


class PerturbedGaussian(Gaussian):
    """A Gaussian target whose model has a fixed score error: eps_hat = eps* + delta (s = s* - delta /
    sqrt(1 - abar)), still affine, so laws stay exactly Gaussian (docs/algorithms/accelerated.md A.5.4 /
    B.2.4 (5))."""

    def __init__(self, means, variances, delta: float):
        super().__init__(means, variances)
        self.delta = float(delta)

    def affine_prediction(self, t, schedule, prediction: str):
        if prediction != "eps":
            raise DiffsolveError(f"PerturbedGaussian perturbs eps predictions, got a {prediction!r} solver; use an "
                                 "eps-prediction solver (accel-*, dpm-solver-*)")
        G, g = super().affine_prediction(t, schedule, prediction)
        return G, g + self.delta


# ------------------------------------------------------------------------------------------------ experiments
C1_SOLVERS = [
    ("DDIM, eps form (`ddim`)", "ddim", None, {}, "5.70e-2 ... 8.56e-4, -1.00"),
    ("`accel-ddim` form (b) (authors' code)", "accel-ddim", None, {}, "2.25e-2 ... 1.48e-5, -1.85"),
    ("`accel-ddim:phi-psi` form (a), 2 NFE", "accel-ddim", "phi-psi", {}, "2.82e-2 ... 2.14e-5, -1.95"),
    ("DDPM-type (`accel-ddpm:ddpm-type`)", "accel-ddpm", "ddpm-type", {}, "7.05e-2 ... 1.05e-3, -1.00"),
    ("`accel-ddpm` (README form)", "accel-ddpm", None, {}, "1.18e-2 ... 2.67e-4, -0.98"),
    ("`ddpm` (posterior step)", "ddpm", None, {}, "-"),
    ("`accel-sde` a = 0, ratio", "accel-sde", None, {}, "2.02e-2 ... 5.93e-6, -1.99"),
    ("`accel-sde` a = 0, constant", "accel-sde", "constant", {}, "6.87e-3 ... 1.26e-6, -2.02"),
    ("`accel-sde` a = 1/4, ratio", "accel-sde", None, {"a": 0.25}, "1.42e-2 ... 3.62e-6, -2.00"),
    ("`accel-sde` a = 1/4, constant", "accel-sde", "constant", {"a": 0.25}, "8.50e-3 ... 1.87e-6, -2.01"),
    ("`accel-sde` a = 1/2 (momentum vanishes)", "accel-sde", None, {"a": 0.5}, "1.08e-2 ... 2.49e-6, -2.00"),
]


def _c1(quick: bool) -> Result:
    Ts = [25, 50, 100, 200] if quick else [25, 50, 100, 200, 400, 800, 1600]
    rows, series = [], {}
    for label, name, variant, params, ref in C1_SOLVERS:
        solver = get_solver(name, variant=variant, **params)
        errs = [c1_tv(solver, T) for T in Ts]
        rows.append([label] + [fmt(e) for e in errs] + [f"{slope(Ts[-4:], errs[-4:]):.2f}", ref])
        series[label.replace("`", "")] = (Ts, errs)
    return Result(
        title="C.1 / B.2.3: Gaussian target N(1, 0.25), exact law, TV(law(Y_1), q_1) vs T",
        claim="accelerated ODE O(1/T^2) vs O(1/T) for DDIM (abstract); accelerated SDE: O(1/T) in TV, a 2-8x "
              "constant over DDPM on smooth targets (docs/algorithms/accelerated.md C.1); " + SDE_NAME + ": TV "
              "slope <= -1.7 (docs/algorithms/accelerated.md B.2.4). VP beta 0.1 -> 20, tau uniform on [1e-3, 1], "
              "exact start; slope on the last four T.",
        columns=["sampler"] + [f"T={T}" for T in Ts] + ["slope", "documented (first ... last, slope)"],
        rows=rows, series=series, ylabel="TV(law(Y_1), q_1)",
    )


GRID_CASES = [("time", 0.25), ("time", 0.01), ("logsnr", 0.25), ("logsnr", 0.01), ("alternating", 0.25),
              ("alternating", 0.01), ("quadratic", 0.25), ("quadratic", 0.01)]


def _grids(quick: bool) -> Result:
    Ts = [100, 200, 400] if quick else [100, 200, 400, 800]
    members = [("a = 0 ratio", None, 0.0), ("a = 1/4 ratio", None, 0.25), ("a = 1/2", None, 0.5),
               ("a = 0 constant", "constant", 0.0), ("a = 1/4 constant", "constant", 0.25)]
    rows = []
    for spacing, var in GRID_CASES:
        target = Gaussian([1.0], [var])
        row = [spacing, f"N(1, {var})"]
        for _, variant, a in members:
            solver = get_solver("accel-sde", variant=variant, a=a)
            row.append(f"{slope(Ts, [c1_tv(solver, T, target=target, spacing=spacing) for T in Ts]):.2f}")
        rows.append(row)
    return Result(
        title=f"B.2.3: {SDE_NAME}, TV slopes on other grids and targets (exact law)",
        claim="the derived 'ratio' momentum keeps slope about -2 on every grid; 'constant' only on smooth grids "
              "(documented in docs/algorithms/accelerated.md B.2.3: -1.02 / -1.07 on the alternating grid)",
        columns=["grid", "target"] + [m[0] for m in members], rows=rows,
        measured=f"slopes fitted on T = {Ts}",
    )


def _c3(quick: bool) -> Result:
    Ts = [20, 40] if quick else [20, 40, 80, 160]
    cases = [("DDPM-type", "accel-ddpm", "ddpm-type", {}), ("`accel-ddpm` (README)", "accel-ddpm", None, {}),
             ("`accel-sde` a = 0, ratio", "accel-sde", None, {}), ("`accel-sde` a = 0, constant", "accel-sde", "constant", {})]
    rows, series = [], {}
    for spacing in ("time", "logsnr"):
        for label, name, variant, params in cases:
            solver = get_solver(name, variant=variant, **params)
            errs = [c3_tv(solver, T, spacing=spacing) for T in Ts]
            rows.append([label, spacing] + [fmt(e) for e in errs])
            series[f"{label.replace('`', '')}, {spacing}"] = (Ts, errs)
    return Result(
        title="C.3 / B.2.3: mixture 1/2 N(-1, 0.02) + 1/2 N(1, 0.02), grid density propagation, TV vs T (equal NFE)",
        claim="accel-ddpm 2-8x below DDPM at equal NFE (docs/algorithms/accelerated.md C.3); accel-sde below DDPM "
              "at every T, below accel-ddpm for T >= 80 (ratio, logsnr grid) / T >= 320 (ratio, tau grid) / "
              "T >= 80 (constant, tau grid) "
              "(docs/algorithms/accelerated.md B.2.4); only a = 0 keeps TV ~ 1/T^2 on a non-Gaussian target",
        columns=["sampler", "grid"] + [f"T={T}" for T in Ts], rows=rows, series=series,
        ylabel="TV(law(Y_1), q_1)",
        measured="accel-sde with its default clip c = 2, which the joint-grid harness applies exactly (it moves TV by "
                 "< 3e-6 here); 3000-point grid for the Markov samplers, 1024 x 1024 joint grid for accel-sde",
    )


C2_SOLVERS = [("DDIM, eps form", "ddim", None, "-0.85 / +0.99"),
              ("accel-ddim (b)", "accel-ddim", None, "-1.67 / +1.95"),
              ("accel-ddim:phi-psi (a)", "accel-ddim", "phi-psi", "-1.55 / +1.81"),
              ("DDPM-type", "accel-ddpm", "ddpm-type", "-0.86 / +1.00"),
              ("accel-ddpm", "accel-ddpm", None, "-0.83 / +0.96"),
              ("accel-sde", "accel-sde", None, "-")]


def _c2(quick: bool) -> Result:
    Ts = [100, 200, 400] if quick else [100, 200, 400, 800, 1600, 3200]
    hT = [6 * np.log(T) / T for T in Ts]
    rows, series = [], {}
    for label, name, variant, ref in C2_SOLVERS:
        errs = [c2_tv(name, T, variant) for T in Ts]
        rows.append([label] + [fmt(e) for e in errs] + [f"{slope(Ts, errs):.2f} / {slope(hT, errs):+.2f}", ref])
        series[label] = (hT, errs)
    return Result(
        title="C.2: the theory's own schedule (c0 = 2, c1 = 6), N(1, 0.25), exact law, TV vs T and vs h_T",
        claim="with the paper's schedule the rates carry log T factors: regress on h_T = c1 log T / T, where the slopes "
              "show the orders (docs/algorithms/accelerated.md C.2, which does not state the reference run's "
              "first-step and fitting details, so slopes agree to ~0.1)",
        columns=["sampler"] + [f"T={T}" for T in Ts] + ["slope vs T / vs h_T", "documented"], rows=rows, series=series,
        xlabel="h_T = c1 log T / T", ylabel="TV(law(Y_1), q_1)",
    )


CLIP_SPEC = {(2.0, 20): 3.6e-4, (2.0, 40): 6.6e-8, (2.0, 80): 0.0, (1.0, 20): 3.4e-2, (1.0, 40): 2.0e-3,
             (1.0, 80): 5.3e-5}


def _clip(quick: bool) -> Result:
    n = 100_000 if quick else 400_000
    rows = []
    for (c, T), ref in CLIP_SPEC.items():
        if quick and T == 80:
            continue
        rows.append([f"{c:g}", T, fmt(clip_fractions(c, T, n)), fmt(ref)])
    return Result(
        title=f"B.2.1: {SDE_NAME}, clip-event rate of the momentum cap on the C.3 mixture",
        claim="the cap |sqrt(1 - abar) C_t| <= c sqrt(d) rarely acts at the default c = 2 (documented Monte Carlo "
              "in docs/algorithms/accelerated.md B.2.1, 4e5 samples)",
        columns=["c", "T", "measured rate", "documented"], rows=rows,
        measured=f"Monte Carlo with {n} samples, rate per (sample, step) over the steps that carry a momentum",
    )


def _score_error(quick: bool) -> Result:
    deltas = [0.0, 0.01, 0.02, 0.04]
    T = 400 if quick else 1600
    rows, series = [], {}
    for label, name, variant in [("accel-ddim", "accel-ddim", None), ("accel-ddpm", "accel-ddpm", None),
                                 ("accel-sde", "accel-sde", None)]:
        errs = [c1_tv(get_solver(name, variant=variant), T, target=PerturbedGaussian([1.0], [0.25], d))
                for d in deltas]
        bias = [e - errs[0] for e in errs[1:]]
        rows.append([label] + [fmt(e) for e in errs] + [f"{slope(deltas[1:], bias):.2f}"])
        series[label] = (deltas[1:], bias)
    return Result(
        title=f"A.5.4 / B.2.4 (5): score-error sweep, eps_hat = eps* + delta, N(1, 0.25), exact law, T = {T}",
        claim="the TV bias grows linearly in delta (both papers' bounds are linear in the score error)",
        columns=["sampler"] + [f"delta={d}" for d in deltas] + ["slope of TV - TV(0) vs delta"], rows=rows,
        series=series, xlabel="delta", ylabel="TV - TV(delta = 0)",
    )


EXPERIMENTS = (
    Experiment("c1", "Gaussian exact-law TV vs T for every accelerated sampler and the baselines", _c1),
    Experiment("c2", "the theory's learning-rate schedule: slopes vs T and vs h_T", _c2),
    Experiment("grids", "accel-sde slopes on tau/logsnr/alternating/quadratic grids", _grids),
    Experiment("c3", "mixture TV by grid density propagation at equal NFE", _c3),
    Experiment("clip", "accel-sde clip-event rates (Monte Carlo)", _clip),
    Experiment("score-error", "TV bias vs a fixed score error", _score_error),
)
