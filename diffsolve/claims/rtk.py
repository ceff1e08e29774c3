"""RTK-ULD / RTK-MALA (Huang, Zou, Dong, Ma, Zhang, NeurIPS 2024, Algorithms 1-3) against DDPM and this package's
SDE solvers at equal NFE: the measurements of docs/papers/rtk.md (algorithms: docs/algorithms/langevin.md).

Harness functions (also used by the tests and by :mod:`diffsolve.claims.pc`):

* :data:`MIX` — the 2-D reference mixture of docs/algorithms/langevin.md §7 (weights (0.3, 0.7), means (-2, 0),
  (2, 1), covariances diag(0.3, 0.5) and [[0.5, 0.2], [0.2, 0.4]]);
* :func:`marginal_tv` — the distance of every table: mean over the coordinates of the TV between the 100-bin
  histogram of the samples on [-6, 6] (plus two overflow bins) and the exact bin masses of p_t's marginal;
* :func:`run_solver` — one seeded run through the Stepper, returning (samples, measured NFE, stats);
* :func:`rtk_inner` / :func:`rtk_nfe` — the split of an NFE budget into inner iterations per segment;
* :func:`exact_outer_loop` — Algorithm 1 with exact kernel draws (``targets.*.rtk_kernel``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from .. import grids
from ..errors import DiffsolveError
from ..models import ModelAdapter
from ..sampling import prior_sample
from ..schedules import get_schedule
from ..solvers import get_solver
from ..stepper import Stepper
from ..targets import FullGaussianMixture, Gaussian
from . import Experiment, Result, fmt

__all__ = ["MIX", "OU", "VP", "SETUPS", "T_MIN", "BUDGETS", "SDE_SOLVERS", "TUNED", "marginal_tv", "floor_tv",
           "floor_spread", "scaled_tau", "run_solver", "rtk_inner", "rtk_nfe", "rtk_grid", "exact_outer_loop",
           "budget_study", "EXPERIMENTS"]

MIX = FullGaussianMixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]], [np.diag([0.3, 0.5]), [[0.5, 0.2], [0.2, 0.4]]])
OU = get_schedule("ou")  # alpha = e^-t, T = 5
VP = get_schedule("vp-linear")  # beta 0.1 -> 20, T = 1 (OU time 5.03)
SETUPS = {"ou": (OU, 5.0), "vp": (VP, 1.0)}  # schedule, horizon T
T_MIN = 1e-3  # every run ends at T_MIN and is compared with the exact p_{T_MIN}
K_PAPER = 5  # the paper's experiments: the five reverse time points 0, 0.2T, ..., 0.8T
BUDGETS = [10, 20, 30, 60, 120]
QUICK_BUDGETS = [10, 30]
# the package's stochastic solvers (euler-maruyama and accel-ddpm, first order like ddpm, are left out)
SDE_SOLVERS = ("ddpm", "seeds-2", "seeds-3", "dpmpp-2m-sde", "dpmpp-3m-sde", "dpm-solver-2m-sde", "accel-sde")
# this project's tuning (the `tune` and `segments` experiments, seed 11): segments uniform in log-SNR, inner step
# tau_k = tau0 min(1, 1/c_k) scaled with the kernel's width (c_k = a_k^2 / q_k its tilt), tau0 as below
TUNED = {"rtk-uld": dict(tau=0.3, gamma=2.0), "rtk-mala": dict(tau=0.5)}
TUNED_GRID = dict(spacing="logsnr", scaled=True)


def marginal_tv(x, target, t, schedule, bins: int = 100, lo: float = -6.0, hi: float = 6.0) -> float:
    """Mean over coordinates j of TV(histogram of x[:, j], exact bin masses of the j-th marginal of p_t): ``bins``
    equal bins on [lo, hi] and one overflow bin on each side.  A lower bound of the mean marginal TV, plus the
    Monte Carlo error of the histogram (see :func:`floor_tv`)."""
    law = target.marginal(t, schedule)
    edges = np.linspace(lo, hi, bins + 1)
    out = []
    for j in range(x.shape[1]):
        sd = np.sqrt(law.covariances[:, j, j])
        cdf = law.weights @ norm.cdf((edges[None] - law.means[:, j, None]) / sd[:, None])
        mass = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
        counts = np.bincount(np.searchsorted(edges, x[:, j], side="right"), minlength=bins + 2)
        out.append(0.5 * float(np.abs(counts / x.shape[0] - mass).sum()))
    return float(np.mean(out))


def floor_tv(n: int, target=MIX, t: float = T_MIN, schedule=OU, seed: int = 5) -> float:
    """:func:`marginal_tv` of ``n`` exact draws of p_t: the Monte Carlo floor of the distance at sample size n."""
    return marginal_tv(target.marginal(t, schedule).sample(n, seed=seed), target, t, schedule)


def floor_spread(n: int, seeds: int = 8, schedule=OU) -> float:
    """Seed-to-seed standard deviation of :func:`floor_tv` over ``seeds`` seeds (the resolution of the tables)."""
    return float(np.std([floor_tv(n, schedule=schedule, seed=100 + s) for s in range(seeds)], ddof=1))


def run_solver(solver, schedule, grid, x_init, *, target=MIX, seed: int = 0, **params):
    """One run of ``solver`` (name or Solver) with the target's exact model through the Stepper (``cpu``
    backend; MALA's exact energy gets log p_t); returns (samples, measured NFE, stats)."""
    solver = get_solver(solver, **params) if isinstance(solver, str) else solver
    model = ModelAdapter(target, schedule, solver.prediction)
    st = Stepper(solver, schedule, grid, x_init=x_init, prediction=model.native, backend="cpu", seed=seed)
    st.run(model.fn, log_density=model.log_density)
    return st.host_x().copy(), st.nfe, st.stats


def rtk_nfe(name: str, inner, energy: str = "simpson", init: str = "tweedie") -> int:
    """Model calls of an RTK run (docs/algorithms/langevin.md §2-3): ULD S_k per segment (+1 Tweedie call);
    MALA 1 at z_0 + S_k x (1, or 2 with Simpson) per segment, +1 for the first segment's Tweedie call (later
    segments reuse the cached score)."""
    inner = np.asarray(inner)
    tweedie = init == "tweedie"
    if name == "rtk-uld":
        return int(inner.sum() + tweedie * inner.size)
    return int((2 if energy == "simpson" else 1) * inner.sum() + inner.size + tweedie)


def rtk_inner(name: str, K: int, budget: int, energy: str = "simpson", init: str = "tweedie"):
    """Inner iterations per segment spending at most ``budget`` NFE, split uniformly (the paper's rule), the
    remainder on the last segments; None when even one iteration per segment exceeds the budget."""
    per = 1 if name == "rtk-uld" else 2 if energy == "simpson" else 1
    total = (budget - rtk_nfe(name, np.zeros(K, int), energy, init)) // per
    if total < K:
        return None
    return [total // K + (k >= K - total % K) for k in range(K)]


def rtk_grid(schedule, T: float, K: int, spacing: str = "time") -> np.ndarray:
    """K segments from T to T_MIN, uniform in the schedule's time (the paper's 0, 0.2T, ..., 0.8T for K = 5) or
    in log-SNR (``spacing="logsnr"``: short segments near the data, this project's choice)."""
    return grids.time_grid(schedule, K, spacing, t_max=T, t_min=T_MIN)


def scaled_tau(name: str, schedule, grid, tau0: float) -> np.ndarray:
    """Per-segment inner steps tau_k = tau0 min(1, 1/c_k), c_k = a_k^2 / q_k the tilt of segment k's kernel (its
    precision is at least c_k, so 1/c_k bounds its width)."""
    tilt = np.array([seg.tilt for seg in get_solver(name).program(schedule, grid).segments])
    return tau0 * np.minimum(1.0, 1.0 / tilt)


def _prior(schedule, T, n, seed):
    return prior_sample(schedule, T, n, 2, seed)


def _rtk_tv(name, key, budget, n, seed, K=K_PAPER, spacing="time", scaled=False, **params):
    """(TV, NFE, acceptance per segment) of one RTK run at ``budget`` (``scaled``: ``tau`` is tau0 of
    :func:`scaled_tau`), or None when the budget is below one inner iteration per segment."""
    schedule, T = SETUPS[key]
    grid = rtk_grid(schedule, T, K, spacing)
    if scaled:
        params["tau"] = scaled_tau(name, schedule, grid, params.get("tau", get_solver(name).param("tau")))
    solver = get_solver(name, **params)
    energy = solver.param("energy") if "energy" in solver.param_names else "simpson"
    inner = rtk_inner(name, K, budget, energy, solver.param("init"))
    if inner is None:
        return None
    x, nfe, stats = run_solver(solver.with_params(inner=inner), schedule, grid, _prior(schedule, T, n, seed),
                               seed=seed)
    return marginal_tv(x, MIX, T_MIN, schedule), nfe, stats.get("acceptance", [])


REFUSED = {}  # (solver, schedule key, budget) -> the library's message, for the runs it refuses


def _sde_tv(name, key, budget, n, seed, spacing="logsnr"):
    """(TV, NFE) of an ODE/SDE solver with ``budget // nfe_per_step`` steps, or None where the library refuses the
    run (its stability check refuses conditionally stable solvers on too long steps); the message is kept in
    :data:`REFUSED`."""
    schedule, T = SETUPS[key]
    solver = get_solver(name)
    grid = grids.time_grid(schedule, budget // solver.nfe_per_step, spacing, t_max=T, t_min=T_MIN)
    try:
        x, nfe, _ = run_solver(solver, schedule, grid, _prior(schedule, T, n, seed), seed=seed)
    except DiffsolveError as err:
        REFUSED[(name, key, budget)] = str(err)
        return None
    return marginal_tv(x, MIX, T_MIN, schedule), nfe


def budget_study(key: str, budgets, n: int, seed: int = 0) -> dict:
    """label -> list over ``budgets`` of (TV, NFE) (None where the budget is below the sampler's minimum)."""
    out = {"ddpm (uniform-time grid)": [_sde_tv("ddpm", key, b, n, seed, "time") for b in budgets]}
    for name in SDE_SOLVERS:
        out[f"{name} (log-SNR grid)"] = [_sde_tv(name, key, b, n, seed) for b in budgets]
    for name in ("rtk-uld", "rtk-mala"):
        for label, K, params in (("defaults", K_PAPER, {}), ("tuned", 5, {**TUNED[name], **TUNED_GRID}),
                                 ("tuned", 10, {**TUNED[name], **TUNED_GRID})):
            runs = [_rtk_tv(name, key, b, n, seed, K=K, **params) for b in budgets]
            out[f"{name}, {label}, K = {K}"] = [None if r is None else r[:2] for r in runs]
    return out


def _nfe_cell(values, budgets):
    if all(v is None for v in values):
        return "-"
    if all(v is None or v[1] == b for v, b in zip(values, budgets)):
        return "= budget"
    return ", ".join("-" if v is None else str(v[1]) for v in values)


def _refusals(key) -> str:
    found = [(name, b, msg.split(":")[0]) for (name, k, b), msg in sorted(REFUSED.items()) if k == key]
    return "".join(f" ({name} at NFE {b}: '{msg}')" for name, b, msg in found)


def _nfe(key: str):
    schedule, T = SETUPS[key]

    def experiment(quick: bool) -> Result:
        budgets, n = (QUICK_BUDGETS, 2000) if quick else (BUDGETS, 10_000)
        study = budget_study(key, budgets, n)
        rows, series = [], {}
        for label, values in study.items():
            empty = "refused" if label.split(" ")[0] in SDE_SOLVERS else "-"
            rows.append([label] + [empty if v is None else fmt(v[0]) for v in values] + [_nfe_cell(values, budgets)])
            pts = [(b, v[0]) for b, v in zip(budgets, values) if v is not None]
            if label.startswith(("ddpm ", "rtk")):
                series[label] = ([p[0] for p in pts], [p[1] for p in pts])
        best = []
        sde = {name: study[f"{name} (log-SNR grid)"] for name in SDE_SOLVERS}
        for i in range(len(budgets)):
            name = min((s for s in SDE_SOLVERS if sde[s][i] is not None), key=lambda s: sde[s][i][0])
            best.append(f"{name} {fmt(sde[name][i][0])}")
        rows.append(["best SDE solver (log-SNR grid)"] + best + ["-"])
        seeds = (1, 2) if quick else (1, 2, 3, 4)
        spread = [np.std([_sde_tv("ddpm", key, b, n, s)[0] for s in seeds], ddof=1) for b in budgets]
        rows.append([f"seed-to-seed sd of ddpm (log-SNR grid), seeds {seeds[0]}-{seeds[-1]}"]
                    + [fmt(v, 2) for v in spread] + ["= budget"])
        floor = floor_tv(n, schedule=schedule)
        rows.append([f"exact samples of p_{T_MIN:g} (Monte Carlo floor)"] + [fmt(floor)] * len(budgets) + ["-"])
        series["best SDE solver"] = (budgets, [min(v[i][0] for v in sde.values() if v[i] is not None)
                                               for i in range(len(budgets))])
        series["Monte Carlo floor"] = (budgets, [floor] * len(budgets))
        ou_eta = np.diff(-schedule.log_alpha(rtk_grid(schedule, T, K_PAPER)))
        grid_note = f"K = 5 segments uniform in t on [{T_MIN:g}, {T:g}] (OU time lengths " \
                    f"{', '.join(f'{-e:.2f}' for e in ou_eta)})"
        return Result(
            title=f"RTK vs SDE solvers at equal NFE, 2-D reference mixture, {schedule.name} schedule (T = {T:g}), "
                  f"marginal TV to p_{T_MIN:g}, {n} samples",
            claim="RTK-ULD and RTK-MALA beat DDPM at equal NFE on a mixture of Gaussians (the paper's experiment, "
                  "recalled qualitatively; no numbers are known)",
            columns=["sampler"] + [f"NFE {b}" for b in budgets] + ["NFE used"], rows=rows, series=series,
            xlabel="NFE", ylabel="marginal TV to p_0.001",
            measured=f"RTK defaults: {grid_note}, the budget split uniformly over the segments (remainder to the last "
                     "ones), Tweedie start, rtk-uld tau = 0.3, gamma = 2, rtk-mala tau = 0.2, Simpson energy. RTK "
                     "tuned (this project's): K segments uniform in log-SNR, tau_k = tau0 min(1, 1/c_k) with tau0 = "
                     f"{TUNED['rtk-uld']['tau']:g} (ULD, gamma = {TUNED['rtk-uld']['gamma']:g}) / "
                     f"{TUNED['rtk-mala']['tau']:g} (MALA). SDE solvers: log-SNR grid of NFE / (NFE per step) steps; "
                     "every run starts from N(0, sigma_T^2 I), "
                     "seed 0. '-': the budget is below the RTK sampler's minimum (ULD 2K, MALA 3K + 1 NFE); 'refused': "
                     f"the library refuses the run{_refusals(key)}. Seed-to-seed sd of the floor (8 seeds): "
                     f"{fmt(floor_spread(n, schedule=schedule), 2)}; differences below about twice the sd row are "
                     "not resolved",
        )

    return experiment


def exact_outer_loop(data, schedule, T: float, K: int, n: int, seed: int = 0, shift: bool = False) -> np.ndarray:
    """Algorithm 1 with exact kernel draws: x ~ p_T exactly, then for each segment of ``rtk-uld``'s program an
    exact draw of X_{t_{k+1}} | X_{t_k} = x (``data.rtk_kernel``).  ``shift`` draws every kernel one segment
    late in time (s = t_k instead of t_{k+1}, the loop's index one too small): the bug the check must catch."""
    grid = np.linspace(T, 0.0, K + 1)
    x = data.marginal(T, schedule).sample(n, seed=seed)
    for k, seg in enumerate(get_solver("rtk-uld").program(schedule, grid).segments):
        x = data.rtk_kernel(x, seg.t_init if shift else seg.t, seg.t_init - seg.t, schedule).sample(seed=seed + k + 1)
    return x


def _outer(quick: bool) -> Result:
    n = 100_000 if quick else 400_000
    data = Gaussian([1.5], [0.16])
    rows = []
    for key, T, shifts in (("ou", 4.0, (False, True)), ("vp", 1.0, (False,))):
        schedule = SETUPS[key][0]
        for shift in shifts:
            x = exact_outer_loop(data, schedule, T, 5, n, shift=shift)
            m, v = float(x.mean()), float(x.var())
            zm, zv = (m - 1.5) / math.sqrt(0.16 / n), (v - 0.16) / (0.16 * math.sqrt(2 / n))
            rows.append([schedule.name, f"N(1.5, 0.16), T = {T:g}, K = 5", "shifted by one segment" if shift else
                         "exact", f"{m:.4f}", f"{v:.5f}", f"{zm:+.1f}", f"{zv:+.1f}"])
    m_n = 5000 if quick else 20_000
    x = exact_outer_loop(MIX, OU, 5.0, 5, m_n)
    rows.append(["ou", f"reference mixture, T = 5, K = 5 ({m_n} samples)", "exact",
                 f"TV {fmt(marginal_tv(x, MIX, 0.0, OU))}", f"floor {fmt(floor_tv(m_n, t=0.0))}", "-", "-"])
    return Result(
        title=f"Algorithm 1 with exact kernel draws recovers p_0 ({n} samples)",
        claim="the outer loop is exact: with p_T exact and exact reverse-transition-kernel draws the output is p_0 "
              "(Gaussian data N(1.5, 0.16): mean and variance to Monte Carlo error); an index shifted by one "
              "segment fails",
        columns=["schedule", "data", "kernel times", "mean", "variance", "z(mean)", "z(variance)"], rows=rows,
        measured="segment times from rtk-uld's program on the grid linspace(T, 0, 6); z = (estimate - exact) / "
                 "standard error; on the mixture the distance of the other tables against p_0 and its floor",
    )


def _cached(cache, name, K=K_PAPER, budget=60, n=10_000, seed=11, **params):
    key = (name, K, budget, n, seed, repr(sorted(params.items())))
    if key not in cache:
        cache[key] = _rtk_tv(name, "ou", budget, n, seed, K=K, **params)
    return cache[key]


def _shown(name, params) -> str:
    solver = get_solver(name, **{k: v for k, v in params.items() if k not in ("spacing", "scaled")})
    return ", ".join(f"{k}={solver.param(k)}" for k in ("tau", "gamma", "energy", "init") if k in solver.param_names)


def _acc(acc) -> str:
    return "-" if not len(acc) else f"{np.mean(acc):.2f} / {acc[-1]:.2f}"


def _tune(quick: bool) -> Result:
    n = 2000 if quick else 10_000
    pick = (lambda full, short: short) if quick else (lambda full, short: full)
    sweeps = {  # varied -> [(sampler, params)], K = 5 segments uniform in t unless K is given
        "inner step tau": [("rtk-uld", dict(tau=v)) for v in pick((0.1, 0.3, 0.6, 1.0, 1.5), (0.3, 1.0))]
                          + [("rtk-mala", dict(tau=v)) for v in pick((0.05, 0.2, 0.5, 1.0), (0.05, 0.2))],
        "ULD friction gamma (tau = 1)": [("rtk-uld", dict(gamma=g, tau=1.0)) for g in pick((0.5, 1.0, 2.0, 4.0, 8.0),
                                                                                          (0.5, 4.0))],
        "segments K (uniform in t) at fixed NFE": [("rtk-uld", dict(K=K)) for K in pick((2, 3, 5, 10, 15), (2,))],
        "MALA energy rule (tau = 0.5)": [("rtk-mala", dict(energy=e, tau=0.5)) for e in
                                         pick(("exact", "simpson", "trapezoid"), ())],
        "inner start": [(name, dict(init=i)) for name in pick(("rtk-uld", "rtk-mala"), ("rtk-uld",))
                        for i in ("tweedie", "anchor")],
    }
    cache, rows, series = {}, [], {}
    for varied, cases in sweeps.items():
        for name, params in cases:
            params = dict(params)
            K = params.pop("K", K_PAPER)
            tv, nfe, acc = _cached(cache, name, K, n=n, **params)
            rows.append([varied, name, f"K={K}, " + _shown(name, params), fmt(tv), nfe, _acc(acc)])
            if varied == "inner step tau":
                xs, ys = series.setdefault(name, ([], []))
                xs.append(params["tau"])
                ys.append(tv)
    return Result(
        title=f"Tuning RTK, one parameter at a time, at NFE 60: ou schedule (T = 5), reference mixture, {n} samples, "
              "seed 11, marginal TV to p_0.001",
        claim="the paper's experiments fix K = 5 segments (the time points 0, 0.2T, ..., 0.8T) and split the NFE "
              "uniformly; its tau, gamma, energy device and inner start are not known: those rows are this "
              "project's choices",
        columns=["varied", "sampler", "parameters", "TV", "NFE", "MALA acceptance (mean / last segment)"],
        rows=rows, series=series, xlabel="inner step tau (K = 5, uniform in t)", ylabel="marginal TV to p_0.001",
        measured=f"defaults: rtk-uld tau = 0.3, gamma = 2; rtk-mala tau = 0.2, Simpson energy; Tweedie start; "
                 f"Monte Carlo floor {fmt(floor_tv(n))}",
    )


SEGMENT_CASES = [("rtk-uld", dict(tau=0.3, gamma=2.0)), ("rtk-uld", dict(tau=1.0, gamma=4.0)),
                 ("rtk-mala", dict(tau=0.2)), ("rtk-mala", dict(tau=0.5))]


def _segments(quick: bool) -> Result:
    n, budgets = (2000, [60]) if quick else (10_000, [60, 120])
    Ks, cases = ((10,), SEGMENT_CASES[::2]) if quick else ((5, 10), SEGMENT_CASES)
    cache, rows = {}, []
    for K in Ks:
        for spacing in ("time", "logsnr"):
            for name, params in cases:
                params = dict(params, spacing=spacing, scaled=spacing == "logsnr")
                runs = [_cached(cache, name, K, b, n, **params) for b in budgets]
                step = f"tau_k = {params['tau']:g} min(1, 1/c_k)" if params["scaled"] else f"tau = {params['tau']:g}"
                rows.append([K, "uniform in t" if spacing == "time" else "uniform in log-SNR", name,
                             step + (f", gamma = {params['gamma']:g}" if "gamma" in params else "")]
                            + [fmt(r[0]) for r in runs] + [", ".join(str(r[1]) for r in runs),
                                                           _acc(runs[-1][2])])
    tilts = {K: scaled_tau("rtk-uld", OU, rtk_grid(OU, 5.0, K, "logsnr"), 1.0) for K in Ks}
    return Result(
        title=f"Tuning RTK: segment grid and per-segment step (ou schedule, T = 5, reference mixture, {n} samples, "
              "seed 11), marginal TV to p_0.001",
        claim="with K = 5 uniform segments (eta = 1) the late kernels are not log-concave on this mixture; short "
              "segments near the data (log-SNR grid) make them so, but need steps scaled with the kernel's width "
              "(this project's choices, not the paper's)",
        columns=["K", "segments", "sampler", "inner step"] + [f"NFE {b}" for b in budgets]
                + ["NFE used", f"MALA acceptance at NFE {budgets[-1]} (mean / last)"],
        rows=rows,
        measured="the log-SNR grids' scale factors min(1, 1/c_k): " + "; ".join(
            f"K = {K}: " + ", ".join(f"{v:.2g}" for v in t) for K, t in tilts.items())
                 + f" (uniform in t: 1 for every segment); Monte Carlo floor {fmt(floor_tv(n))}",
    )


EXPERIMENTS = (
    Experiment("outer-loop", "Algorithm 1 with exact kernel draws recovers p_0 (mean, variance, TV to MC error)",
               _outer),
    Experiment("nfe-ou", "marginal TV of RTK-ULD/-MALA vs DDPM and the best SDE solver at equal NFE, ou schedule",
               _nfe("ou")),
    Experiment("nfe-vp", "the same on the vp-linear schedule (RTK segments uniform in its time)", _nfe("vp")),
    Experiment("tune", "marginal TV of RTK at NFE 60, one parameter at a time: tau, gamma, K, energy rule, start",
               _tune),
    Experiment("segments", "marginal TV of RTK at NFE 60 / 120 over the segment grid (t or log-SNR), K and the "
               "step rule", _segments),
)
