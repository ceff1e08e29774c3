"""Quality benchmark: pathwise error against the exact probability-flow ODE vs the number of model calls (NFE), for
every deterministic table solver of the registry on every grid, and for the peer packages' samplers on the same
problems in the same run (docs/benchmarks.md, "Quality: error vs NFE").

    python benchmarks/quality.py [--quick] [--out DIR] [--samples N]

Method.  A problem is a Gaussian mixture with its exact denoiser.  Every VP schedule shares one probability-flow
ODE in the variables x~ = x / alpha, s = sigma / alpha (Karras et al. 2022, eq. 4 with the scaling absorbed):
dx~/ds = eps(x~, s) = (x~ - D(x~, s)) / s, with D the exact denoiser of the mixture seen at noise level s.  The
reference is that ODE, from the same x~_T (exact marginal samples at s_T: x~_T = x_0 + s_T z), solved by
scipy's DOP853 with rtol = atol = 1e-10 down to s = 1e-8 and then denoised once (the remainder is O(s^2)), or to
the sampler's final noise level where that is not 0.  The error of a run is RMS over samples of the Euclidean
norm ||x~ - x~_ref|| in R^d (not divided by sqrt(d)).  NFE is the number of model calls actually made, counted
through the model callable.

diffsolve runs on vp-linear (beta 0.1 -> 20) from t = 1; logsnr and karras grids end at t_min = 1e-3 and take a
final step to t = 0, time and quadratic grids end at t = 0.  diffusers' schedulers run on their native discrete
DDPM schedule (1000 linear betas 1e-4 -> 0.02, start timestep 999, their default timestep spacing except DDIM,
which gets "trailing" so that it starts at 999 too, and clip_sample=False: its default clips the predicted x_0 to
[-1, 1], which the mixtures leave) with their default final step; k-diffusion's samplers run on
Karras sigmas (rho = 7) from vp-linear's s_T to its s(t_min), then 0.  Both start from the same draws x_0, z (the
start noise levels differ by 3 %, so each family has its own exact reference from its own s_T).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
import types
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import solve_ivp

import diffsolve as ds
import diffsolve.solvers.papers  # noqa: F401  (registers the accelerated and SEEDS solvers)
from diffsolve.accuracy.order import exact_error
from diffsolve.solvers.registry import FINALS, build_program
from diffsolve.errors import DiffsolveError, DiffsolveWarning

PROBLEMS = {"gmm-d2-k8": "gmm:d=2,k=8,seed=0", "gmm-d4-k6": "gmm:d=4,k=6,seed=1",
            "gmm-d8-k10": "gmm:d=8,k=10,seed=2", "gmm-d16-k10": "gmm:d=16,k=10,seed=3"}
NFES = (5, 6, 8, 10, 12, 15, 20, 25, 35, 50, 75, 100)
GRIDS = ("logsnr", "time", "karras", "quadratic")
LEVELS = (1e-1, 1e-2, 1e-3)
# pattern-named solvers the registry does not list by itself
EXTRA_SOLVERS = ("deis-2", "deis-3", "deis-2:tab", "deis-3:tab", "euler", "heun")
QUICK = dict(problems=("gmm-d2-k8", "gmm-d8-k10"), nfes=(5, 10, 20, 50), sde=("dpmpp-2m-sde", "seeds-2"),
             solvers=("ddim", "dpmpp-2m", "dpmpp-2m:published", "dpmpp-3m", "unipc-2", "deis-2", "dpm-solver-3",
                      "heun"),
             peers=("diffusers:dpmpp-2m", "diffusers:unipc-2", "kdiff:dpmpp_2m", "kdiff:heun"))
REF_TOL = 1e-10
FAR = 1.0  # a sample this far from its reference has ended in another mode (component means are ~2 apart)
S_STOP = 1e-8  # the reference integrates to this s, then denoises once (error O(S_STOP^2))


# ------------------------------------------------------------------------------------------------ problems
class _UnitAlpha:
    """The noise-level view alpha = 1, sigma = s: the exact denoiser of a target at noise level s = sigma/alpha."""

    @staticmethod
    def alpha(s):
        return np.ones_like(np.asarray(s, dtype=np.float64))

    @staticmethod
    def sigma(s):
        return np.asarray(s, dtype=np.float64)


@dataclass
class Problem:
    """A mixture target, its exact denoiser in (x~, s), the start draws and the DOP853 reference."""

    name: str
    target: ds.targets.GaussianMixture
    n: int = 256
    seed: int = 0
    _refs: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_spec(cls, name, spec, n=256, seed=0):
        return cls(name, ds.targets.from_spec(spec), n, seed)

    def denoised(self, xt, s):
        return self.target.denoise(xt, float(s), _UnitAlpha)

    def eps(self, xt, s):
        return (xt - self.denoised(xt, s)) / s

    def start(self, s_T):
        """x~_T = x_0 + s_T z: exact samples of the marginal at s_T, the same draws for every s_T."""
        x0 = self.target.sample(self.n, seed=self.seed)
        z = np.random.default_rng(self.seed + 1).standard_normal(x0.shape)
        return x0 + s_T * z

    def reference(self, s_T, s_end=0.0, tol=REF_TOL):
        """x~ at s_end on the probability-flow ODE from start(s_T), by DOP853 (rtol = atol = tol); cached."""
        key = (float(s_T), float(s_end), float(tol))
        if key not in self._refs:
            shape = (self.n, self.target.dim)
            stop = max(float(s_end), S_STOP)
            sol = solve_ivp(lambda s, y: self.eps(y.reshape(shape), s).ravel(), (float(s_T), stop),
                            self.start(s_T).ravel(), method="DOP853", rtol=tol, atol=tol)
            if not sol.success:
                raise DiffsolveError(f"the DOP853 reference failed on {self.name}: {sol.message}")
            x = sol.y[:, -1].reshape(shape)
            self._refs[key] = self.denoised(x, stop) if s_end == 0 else x
        return self._refs[key]

    def error(self, x_tilde, s_T, s_end=0.0):
        """(RMS over samples of ||x~ - x~_ref||_2 at s_end, number of samples with ||x~ - x~_ref|| > FAR)."""
        dist = np.linalg.norm(np.asarray(x_tilde, dtype=np.float64) - self.reference(s_T, s_end), axis=1)
        return float(np.sqrt(np.mean(dist * dist))), int(np.sum(dist > FAR))


class Counted:
    """A model callable that counts its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


# ------------------------------------------------------------------------------------------------ diffsolve
VP = ds.get_schedule("vp-linear", beta_min=0.1, beta_max=20.0)


def _level(t):
    """s = sigma / alpha and alpha of vp-linear at t."""
    a = float(VP.alpha(t))
    return float(VP.sigma(t)) / a, a


S_T_VP = _level(VP.t_max)[0]
S_MIN_VP = _level(VP.t_min)[0]


def table_solvers(stochastic: bool):
    """Every registered table solver ("name" or "name:variant") that is (not) ``stochastic``."""
    return [row["name"] if row["variant"] == "exact" else f"{row['name']}:{row['variant']}" for row in ds.list_solvers()
            if row["stochastic"] == stochastic and row.get("nfe", "per_step") == "per_step"
            and row["family"] not in ("langevin", "pc", "rtk")]


def ode_solvers():
    """Every registered deterministic table solver, plus the pattern-named ones of EXTRA_SOLVERS."""
    names = table_solvers(False)
    return names + [s for s in EXTRA_SOLVERS if s not in names]


def ours_grid(spacing, steps):
    """``steps`` steps on vp-linear from t = 1 to t = 0 (logsnr / karras: steps - 1 to t_min, then one to 0)."""
    if spacing in ("time", "quadratic"):
        return ds.time_grid(VP, steps, spacing, t_min=0.0)
    return np.append(ds.time_grid(VP, steps - 1, spacing), 0.0)


def _calls(solver, grid, final):
    """Model calls of ``solver``'s program on ``grid`` under ``final``."""
    return sum(seg.table.tau.size for seg in build_program(solver, VP, grid, final=final).segments)


def run_ours(problem, solver, spacing, nfe, final="solver"):
    """(steps, NFE made, (error, far)) of diffsolve's ``solver`` with at most ``nfe`` model calls under the
    end-point policy ``final`` (ds.sample's); None if the grid would have too few steps."""
    sol = ds.get_solver(solver)
    steps = (nfe - 1) // sol.nfe_per_step + 1  # the most steps whose program makes at most nfe calls
    while steps > 1 and _calls(sol, ours_grid(spacing, steps), final) > nfe:
        steps -= 1  # a stage solver's own step to sigma = 0 makes as many calls as its stages
    if steps < (2 if spacing in ("logsnr", "karras") else 1):
        return None

    def denoiser(x, t):
        s, a = _level(t)
        return problem.denoised(np.asarray(x) / a, s)

    model = Counted(denoiser)
    x = ds.sample(solver, model, VP, ours_grid(spacing, steps), x_init=_level(VP.t_max)[1] * problem.start(S_T_VP),
                  prediction="data", final=final)
    return steps, model.calls, problem.error(x, S_T_VP)


# ------------------------------------------------------------------------------------------------ peers
def _torch():
    import torch

    return torch


def _diffusers_sigmas(sched):
    """Noise level s of every timestep of a diffusers scheduler, and its final s."""
    ac = sched.alphas_cumprod.numpy().astype(np.float64)
    steps = sched.timesteps.numpy()
    if getattr(sched, "sigmas", None) is not None:
        sig = sched.sigmas.numpy().astype(np.float64)
        return dict(zip(steps.tolist(), sig[:steps.size])), float(sig[steps.size])
    levels = np.sqrt((1 - ac[steps.astype(int)]) / ac[steps.astype(int)])
    final = getattr(sched, "final_alpha_cumprod", None)
    final = float(final) if final is not None else ac[0]
    return dict(zip(steps.tolist(), levels)), math.sqrt(max(1 - final, 0.0) / final)


@dataclass(frozen=True)
class DiffusersPeer:
    """A diffusers scheduler, default configuration on the discrete DDPM schedule, fed the exact eps."""

    scheduler: str
    options: tuple = ()
    edm_state: bool = False  # the scheduler's state is x~ = x / alpha (Euler), not the VP x

    def run(self, problem, nfe):
        torch = _torch()
        import diffusers

        sched = getattr(diffusers, self.scheduler)(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                                   beta_schedule="linear", prediction_type="epsilon",
                                                   **dict(self.options))
        sched.set_timesteps(nfe)
        levels, s_end = _diffusers_sigmas(sched)
        s_T = levels[sched.timesteps.numpy().tolist()[0]]

        def eps(x_in, ts):
            s = levels[ts.item()]
            return torch.from_numpy(problem.eps(x_in.numpy().astype(np.float64) * math.sqrt(1 + s * s), s))

        model = Counted(eps)
        x = torch.from_numpy(problem.start(s_T) / math.sqrt(1 + s_T * s_T)) * sched.init_noise_sigma
        for ts in sched.timesteps:
            x = sched.step(model(sched.scale_model_input(x, ts), ts), ts, x).prev_sample
        x = x.numpy().astype(np.float64)
        if not self.edm_state:  # a VP state: x~ = x / alpha at the final level
            x = x * math.sqrt(1 + s_end * s_end)
        return nfe, model.calls, problem.error(x, s_T, s_end)


def _ksampling():
    """k_diffusion.sampling (its package __init__ needs training dependencies: load the module with a bare package
    and, where k_diffusion.utils does not import, a utils holding the one helper sampling uses)."""
    if "k_diffusion.sampling" in sys.modules:
        return sys.modules["k_diffusion.sampling"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None:
        raise DiffsolveError("k-diffusion is not installed; pip install --no-deps 'k-diffusion==0.1.1.post1'")
    pkg = types.ModuleType("k_diffusion")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules.setdefault("k_diffusion", pkg)
    try:
        importlib.import_module("k_diffusion.utils")
    except ImportError:
        utils = types.ModuleType("k_diffusion.utils")
        utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
        sys.modules["k_diffusion.utils"] = pkg.utils = utils
    sspec = importlib.util.spec_from_file_location("k_diffusion.sampling", pkg.__path__[0] + "/sampling.py")
    module = importlib.util.module_from_spec(sspec)
    sys.modules["k_diffusion.sampling"] = module
    sspec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class KDiffusionPeer:
    """A k-diffusion sampler on Karras sigmas (rho = 7) from vp-linear's s_T to s(t_min), then 0."""

    function: str
    calls_per_step: int = 1  # 2: Heun-type, whose last step (to 0) is one Euler call

    def run(self, problem, nfe):
        torch = _torch()
        ks = _ksampling()
        steps = (nfe + self.calls_per_step - 1) // self.calls_per_step
        sigmas = ks.get_sigmas_karras(steps, S_MIN_VP, S_T_VP, rho=7.0, device="cpu").to(torch.float64)

        def denoiser(x, sigma):
            return torch.from_numpy(problem.denoised(x.numpy(), float(sigma.reshape(-1)[0])))

        model = Counted(denoiser)
        x = getattr(ks, self.function)(model, torch.from_numpy(problem.start(S_T_VP)), sigmas, disable=True)
        return steps, model.calls, problem.error(x.numpy(), S_T_VP)


PEERS = {
    "diffusers:dpmpp-2m": DiffusersPeer("DPMSolverMultistepScheduler", (("solver_order", 2),)),
    "diffusers:dpmpp-3m": DiffusersPeer("DPMSolverMultistepScheduler", (("solver_order", 3),)),
    "diffusers:unipc-2": DiffusersPeer("UniPCMultistepScheduler", (("solver_order", 2),)),
    "diffusers:unipc-3": DiffusersPeer("UniPCMultistepScheduler", (("solver_order", 3),)),
    "diffusers:deis": DiffusersPeer("DEISMultistepScheduler"),
    "diffusers:ddim": DiffusersPeer("DDIMScheduler", (("timestep_spacing", "trailing"), ("clip_sample", False))),
    "diffusers:euler": DiffusersPeer("EulerDiscreteScheduler", edm_state=True),
    "kdiff:dpmpp_2m": KDiffusionPeer("sample_dpmpp_2m"),
    "kdiff:heun": KDiffusionPeer("sample_heun", 2),
    "kdiff:dpm_2": KDiffusionPeer("sample_dpm_2", 2),
    "kdiff:euler": KDiffusionPeer("sample_euler"),
    "kdiff:lms": KDiffusionPeer("sample_lms"),
}


# ------------------------------------------------------------------------------------------------ SDE solvers
SDE_TARGET = "gaussian:d=8"


def run_sde(target, solver, spacing, nfe, final="solver"):
    """(steps, NFE, W2) of a stochastic solver: the exact law of its output on a Gaussian target, propagated
    through its program from the exact law at t = 1 (its own warm-up), against the data law; None if too few."""
    sol = ds.get_solver(solver)
    steps = (nfe - 1) // sol.nfe_per_step + 1
    if steps < 2:
        return None
    grid = ours_grid(spacing, steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiffsolveWarning)  # the stability warnings of explicit SDE steps
        calls = sum(seg.table.tau.size for seg in build_program(sol, VP, grid, final=final).segments)
        return steps, calls, exact_error(sol, target, VP, grid, "w2", exact_history=False, final=final)


# ------------------------------------------------------------------------------------------------ the study
def measure(problems, solvers, grids, nfes, peers, sde=(), n=256, log=print, final="solver"):
    """(rows, failures).  rows: {problem, kind, solver, grid, steps, nfe, error, far} of every configuration, a
    repeated step count measured once (far: samples farther than FAR from their reference; kind "sde": the
    exact-law W2 of a stochastic solver on SDE_TARGET, far None).  failures: {problem, solver, grid, nfe_target,
    error} where diffsolve refused the run."""
    rows, failures = [], []
    tasks = {}
    for name in problems:
        prob = Problem.from_spec(name, PROBLEMS[name], n=n)
        jobs = [("diffsolve", s, g, lambda m, s=s, g=g, p=prob: run_ours(p, s, g, m, final)) for s in solvers
                for g in grids]
        tasks[name] = jobs + [("peer", p, "native", lambda m, p=p, q=prob: PEERS[p].run(q, m)) for p in peers]
    if sde:
        gauss = ds.targets.from_spec(SDE_TARGET)
        tasks["gaussian-d8"] = [("sde", s, g, lambda m, s=s, g=g: run_sde(gauss, s, g, m, final)) for s in sde
                                for g in grids]
    for name, jobs in tasks.items():
        t0 = time.perf_counter()
        for kind, solver, grid, fn in jobs:
            seen = set()
            for m in nfes:
                try:
                    out = fn(m)
                except DiffsolveError as exc:  # a configuration the library refuses: reported, not measured
                    failures.append(dict(problem=name, solver=solver, grid=grid, nfe_target=m, error=str(exc)))
                    continue
                if out is None or out[0] in seen:
                    continue
                seen.add(out[0])
                err, far = out[2] if isinstance(out[2], tuple) else (out[2], None)
                rows.append(dict(problem=name, kind=kind, solver=solver, grid=grid, steps=int(out[0]),
                                 nfe=int(out[1]), error=float(err), far=far))
        log(f"{name}: {len(jobs)} configurations in {time.perf_counter() - t0:.1f} s")
    return rows, failures


def reference_tightness(problem, s_T=S_T_VP):
    """RMS ||x~_ref(tol 1e-10) - x~_ref(tol 5e-11)|| at s = 0."""
    return problem.error(problem.reference(s_T, tol=REF_TOL / 2), s_T)[0]


def curves(rows):
    """{(problem, kind, solver, grid): (nfe array, error array)} sorted by NFE."""
    out = {}
    for r in rows:
        out.setdefault((r["problem"], r["kind"], r["solver"], r["grid"]), []).append((r["nfe"], r["error"]))
    return {k: tuple(np.array(v, dtype=float).T) for k, v in ((k, sorted(v)) for k, v in out.items())}


def nfe_for(nfe, err, level):
    """NFE at which the curve first reaches ``level``, interpolated in log-log; inf if it never does."""
    below = np.flatnonzero(err <= level)
    if below.size == 0:
        return math.inf
    j = below[0]
    if j == 0:
        return float(nfe[0])
    x0, x1, y0, y1 = np.log(nfe[j - 1]), np.log(nfe[j]), np.log(err[j - 1]), np.log(err[j])
    return float(np.exp(x0 + (np.log(level) - y0) * (x1 - x0) / (y1 - y0)))


def label(key):
    _, kind, solver, grid = key
    return solver if kind == "peer" else f"{solver} / {grid}"


def ode_problems(rows):
    return list(dict.fromkeys(r["problem"] for r in rows if r["kind"] != "sde"))


def summary_rows(rows, levels=LEVELS):
    """Per problem and level: the best diffsolve configuration and the best peer, their NFE and the ratio."""
    cv = curves(rows)
    out = []
    for prob in ode_problems(rows):
        for level in levels:
            best = {}
            for kind in ("diffsolve", "peer"):
                cands = [(nfe_for(*cv[k], level), label(k)) for k in cv if k[0] == prob and k[1] == kind]
                best[kind] = min(cands, default=(math.inf, "-"))
                if math.isinf(best[kind][0]):
                    best[kind] = (math.inf, "none reaches it")
            ratio = best["diffsolve"][0] / best["peer"][0] if math.isfinite(best["peer"][0]) else math.nan
            out.append(dict(problem=prob, level=level, ours=best["diffsolve"][1], ours_nfe=best["diffsolve"][0],
                            peer=best["peer"][1], peer_nfe=best["peer"][0], ratio=ratio))
    return out


def best_at(rows, nfe_budget):
    """Per problem: the diffsolve configuration with the smallest error among runs with NFE <= nfe_budget."""
    out = {}
    for r in rows:
        if r["kind"] == "diffsolve" and r["nfe"] <= nfe_budget:
            cur = out.get(r["problem"])
            if cur is None or r["error"] < cur["error"]:
                out[r["problem"]] = r
    return out


def non_monotone(rows, upto=50, factor=1.1):
    """Configurations whose error grows by more than ``factor`` between consecutive NFE values <= ``upto``."""
    found = []
    for key, (nfe, err) in curves(rows).items():
        keep = nfe <= upto
        nfe, err = nfe[keep], err[keep]
        jumps = [(int(nfe[i]), float(err[i]), int(nfe[i + 1]), float(err[i + 1])) for i in range(nfe.size - 1)
                 if err[i + 1] > factor * err[i]]
        if jumps:
            found.append((key, jumps))
    return found


def is_default(key):
    """A solver's default configuration: its exact variant on time_grid's default (logsnr) grid; a peer's own."""
    return key[1] == "peer" or (":" not in key[2] and key[3] == "logsnr")


def _far(key, nfe, far):
    n = far.get(key + (nfe,))
    return f" ({n} far)" if n else ""


def _fmt(x):
    return "∞" if math.isinf(x) else ("-" if math.isnan(x) else f"{x:.3g}")


def markdown(rows, meta):
    lines = [f"Problems: {', '.join(f'`{k}` = `{PROBLEMS[k]}`' for k in ode_problems(rows))}; "
             f"{meta['samples']} samples; error = RMS over samples of ||x − x_ref||₂ at σ = 0; reference DOP853 "
             f"rtol = atol = 1e-10 (vs 5e-11: max {meta['tightness']:.1e}). Wall time {meta['seconds']:.0f} s.", "",
             "| problem | error ≤ | best diffsolve (solver / grid) | NFE | best peer | NFE | ratio |",
             "|---|---|---|---|---|---|---|"]
    for s in summary_rows(rows):
        lines.append(f"| {s['problem']} | {s['level']:g} | {s['ours']} | {_fmt(s['ours_nfe'])} | {s['peer']} | "
                     f"{_fmt(s['peer_nfe'])} | {_fmt(s['ratio'])} |")
    budgets = sorted({r["nfe"] for r in rows} & set(NFES)) or sorted({r["nfe"] for r in rows})
    probs = ode_problems(rows)
    lines += ["", "Best diffsolve configuration at an NFE budget (error in brackets):", "",
              "| NFE ≤ | " + " | ".join(probs) + " |", "|---" * (len(probs) + 1) + "|"]
    for b in budgets:
        best = best_at(rows, b)
        cells = [f"{best[p]['solver']} / {best[p]['grid']} ({best[p]['error']:.2g})" if p in best else "-" for p in probs]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    sde = {k: v for k, v in curves(rows).items() if k[1] == "sde"}
    if sde:
        cols = [m for m in (5, 10, 20, 50, 100) if m <= max(meta.get("nfes", NFES))]
        lines += ["", f"SDE solvers: W2 of the exact output law to the data law on `{SDE_TARGET}` (no sampling), at "
                  "the largest NFE ≤ the column's:", "", "| solver / grid | " + " | ".join(f"NFE ≤ {m}" for m in cols)
                  + " |", "|---" * (len(cols) + 1) + "|"]
        for key, (nfe, err) in sde.items():
            cells = [f"{err[nfe <= m][-1]:.2g}" if np.any(nfe <= m) else "-" for m in cols]
            lines.append(f"| {label(key)} | " + " | ".join(cells) + " |")
    far = {(r["problem"], r["kind"], r["solver"], r["grid"], r["nfe"]): r["far"] for r in rows}
    nm = non_monotone(rows)
    lines += ["", f"Non-monotone in NFE (error up by > 10 % between consecutive NFE ≤ 50): {len(nm)} curves; "
              "defaults (exact variant on the default logsnr grid, the peers' defaults) first; (k far): k samples end "
              f"farther than {FAR:g} from their reference (in another mode) at the larger NFE", ""]
    for key, jumps in sorted(nm, key=lambda kj: not is_default(kj[0])):
        text = "; ".join(f"{a}→{c}: {b:.3g}→{d:.3g}{_far(key, c, far)}" for a, b, c, d in jumps)
        lines.append(f"* {'**default** ' if is_default(key) else ''}{key[0]}, {label(key)}: {text}")
    fails = meta.get("failures", [])
    if fails:
        lines += ["", f"Refused by diffsolve ({len(fails)} runs):", ""]
        lines += [f"* {f['problem']}, {f['solver']} / {f['grid']}, NFE {f['nfe_target']}: {f['error'][:160]}"
                  for f in fails]
    return "\n".join(lines) + "\n"


def plot(rows, path, top=6):
    """Error vs NFE per problem: the diffsolve configurations best at some level (solid) and every peer (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cv = curves(rows)
    probs = ode_problems(rows)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    cols = min(2, len(probs))
    rows_ = -(-len(probs) // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(6.2 * cols, 4.6 * rows_), squeeze=False)
    summ = summary_rows(rows)
    for ax, prob in zip(axes.ravel(), probs):
        chosen = list(dict.fromkeys(s["ours"] for s in summ if s["problem"] == prob and math.isfinite(s["ours_nfe"])))
        extra = sorted((err.min(), label(k)) for k, (nfe, err) in cv.items() if k[0] == prob and k[1] == "diffsolve")
        for _, lab in extra:
            if len(chosen) >= top:
                break
            if lab not in chosen:
                chosen.append(lab)
        for key, (nfe, err) in cv.items():
            if key[0] != prob or (key[1] == "diffsolve" and label(key) not in chosen):
                continue
            ax.loglog(nfe, err, "--" if key[1] == "peer" else "-", marker=".", label=label(key),
                      lw=1.0 if key[1] == "peer" else 1.6)
        ax.set_xticks([m for m in (5, 10, 20, 50, 100) if m <= max(r["nfe"] for r in rows)])
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(prob)
        ax.set_xlabel("NFE")
        ax.set_ylabel("RMS ||x - x_ref||")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=5.5, ncol=2, loc="lower left", framealpha=0.6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def study(args):
    """(meta, rows) of the configuration the command line asks for."""
    if args.samples < 1:
        raise DiffsolveError(f"--samples must be a positive integer, got {args.samples}; pass e.g. --samples 256")
    cfg = dict(QUICK) if args.quick else dict(problems=tuple(PROBLEMS), nfes=NFES, solvers=tuple(ode_solvers()),
                                              peers=tuple(PEERS), sde=tuple(table_solvers(True)))
    if args.problems:
        cfg["problems"] = tuple(args.problems.split(","))
        unknown = [p for p in cfg["problems"] if p not in PROBLEMS]
        if unknown:
            raise DiffsolveError(f"--problems got unknown name(s) {unknown}; expected a comma-separated subset of "
                                 f"{', '.join(PROBLEMS)}")
    t0 = time.perf_counter()
    rows, failures = measure(cfg["problems"], cfg["solvers"], GRIDS, cfg["nfes"], cfg["peers"], cfg.get("sde", ()),
                             n=args.samples, log=lambda s: print(s, file=sys.stderr), final=args.final)
    tight = max(reference_tightness(Problem.from_spec(p, PROBLEMS[p], n=args.samples)) for p in cfg["problems"])
    argv = [a for a, on in (("--quick", args.quick), (f"--samples {args.samples}", args.samples != 256),
                            (f"--problems {args.problems}", bool(args.problems)),
                            (f"--final {args.final}", args.final != "solver")) if on]
    meta = dict(command=" ".join(["python benchmarks/quality.py"] + argv), samples=args.samples, nfes=list(cfg["nfes"]),
                final=args.final,
                reference=dict(method="DOP853", rtol=REF_TOL, atol=REF_TOL), tightness=tight,
                error="RMS over samples of the Euclidean norm ||x - x_ref|| in R^d at sigma = 0",
                seconds=time.perf_counter() - t0, failures=failures)
    return meta, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="d = 2 and 8, a few solvers and peers, NFE 5, 10, 20, 50")
    ap.add_argument("--out", default="quality-out", help="folder for quality.json, quality.md, quality.png")
    ap.add_argument("--samples", type=int, default=256, help="samples per problem (default 256)")
    ap.add_argument("--problems", default=None, help=f"comma-separated subset of {', '.join(PROBLEMS)}")
    ap.add_argument("--final", default="solver", choices=FINALS,
                    help="diffsolve's end-point policy (ds.sample's final=; default solver)")
    ap.add_argument("--replot", default=None, metavar="JSON", help="rewrite quality.md / .png from a quality.json")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.replot:
        with open(args.replot) as f:
            saved = json.load(f)
        meta, rows = saved["meta"], saved["rows"]
    else:
        meta, rows = study(args)
        with open(os.path.join(args.out, "quality.json"), "w") as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=1)
    text = markdown(rows, meta)
    with open(os.path.join(args.out, "quality.md"), "w") as f:
        f.write(text)
    plot(rows, os.path.join(args.out, "quality.png"))
    print(text)


if __name__ == "__main__":
    main()
