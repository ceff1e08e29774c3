"""Prediction-correction with a fixed T1 (Pedrotti, Maas, Mondelli, TMLR 2024): a ULA corrector at T1 started
from N(0, I), then the reverse-SDE predictor ``ddpm`` (or the probability-flow ``ddim``) down to 1e-3, against the
same predictor without the corrector: the measurements of docs/papers/pc.md (algorithm:
docs/algorithms/langevin.md §4).

Same reference mixture, schedule (``ou``), distance and Stepper runs as :mod:`diffsolve.claims.rtk`.
"""

from __future__ import annotations

import numpy as np

from .. import grids
from . import Experiment, Result, fmt
from .rtk import MIX, OU, T_MIN, floor_tv, marginal_tv, run_solver

__all__ = ["PREDICTOR_STEPS", "pc_grid", "start", "pc_tv", "t1_study", "EXPERIMENTS"]

PREDICTOR_STEPS = 50  # this project's choice (the paper's discretisation is not known)
T1S, QUICK_T1S = [0.25, 0.5, 1.0, 2.0, 3.0], [0.5, 1.0, 2.0]
# (label, solver, params, start): start "normal" = N(0, I), "exact" = exact draws of p_T1
COLUMNS = [
    ("ddpm, no corrector (NFE 50)", "ddpm", {}, "normal"),
    ("ddpm, no corrector, 70 steps (NFE 70)", "ddpm", {"steps": 70}, "normal"),
    ("pc: ULA h = 0.1 x 20 + ddpm (NFE 70)", "pc", dict(corrector_step=0.1), "normal"),
    ("pc: ULA h = 0.3 x 20 + ddpm (NFE 70)", "pc", dict(corrector_step=0.3), "normal"),
    ("ddim, no corrector (NFE 50)", "ddim", {}, "normal"),
    ("pc: ULA h = 0.3 x 20 + ddim (NFE 70)", "pc", dict(corrector_step=0.3, predictor="ddim"), "normal"),
    ("ddpm from exact p_T1 (NFE 50)", "ddpm", {}, "exact"),
]


def pc_grid(T1: float, steps: int = PREDICTOR_STEPS) -> np.ndarray:
    """The predictor's grid: ``steps`` log-SNR-uniform steps from T1 to T_MIN on the ou schedule."""
    return grids.time_grid(OU, steps, "logsnr", t_max=T1, t_min=T_MIN)


def start(kind: str, T1: float, n: int, seed: int = 3) -> np.ndarray:
    """The initial states: ``"normal"`` N(0, I) (the corrector's start; also the bare predictor's), ``"exact"``
    exact draws of p_T1 (the predictor's own error)."""
    if kind == "exact":
        return MIX.marginal(T1, OU).sample(n, seed=seed)
    return np.random.default_rng(seed).standard_normal((n, 2))


def pc_tv(solver: str, T1: float, n: int, start_kind: str = "normal", steps: int = PREDICTOR_STEPS, seed: int = 0,
          **params):
    """(marginal TV to p_T_MIN, measured NFE) of ``solver`` (``pc`` with ``params``, or a bare predictor) from
    T1 with ``steps`` predictor steps; ``pc`` defaults: ULA, 20 steps, predictor ``ddpm``."""
    if solver == "pc":
        params = {"corrector_steps": 20, **params}
    x, nfe, _ = run_solver(solver, OU, pc_grid(T1, steps), start(start_kind, T1, n), seed=seed, **params)
    return marginal_tv(x, MIX, T_MIN, OU), nfe


def t1_study(T1s, n: int) -> dict:
    """column label -> list over ``T1s`` of (TV, NFE)."""
    out = {}
    for label, solver, params, kind in COLUMNS:
        params = dict(params)
        steps = params.pop("steps", PREDICTOR_STEPS)
        out[label] = [pc_tv(solver, T1, n, kind, steps, **params) for T1 in T1s]
    return out


def _t1(quick: bool) -> Result:
    T1s, n = (QUICK_T1S, 3000) if quick else (T1S, 10_000)
    study = t1_study(T1s, n)
    floor = floor_tv(n)
    rows = [[f"{T1:g}"] + [fmt(study[c[0]][i][0]) for c in COLUMNS] for i, T1 in enumerate(T1s)]
    nfe = sorted({v[1] for values in study.values() for v in values})
    return Result(
        title=f"PC vs no corrector as a function of T1: reference mixture, ou schedule, marginal TV to p_0.001, "
              f"{n} samples",
        claim="a Langevin corrector at a fixed, finite T1 removes the error of starting the reverse process from "
              "N(0, I) at T1 (the paper's mechanism); an earlier reference run of this project: the corrector helps "
              "at T1 <= 1 and is unnecessary at T1 = 2",
        columns=["T1"] + [c[0] for c in COLUMNS], rows=rows,
        series={c[0]: (T1s, [v[0] for v in study[c[0]]]) for c in COLUMNS},
        xlabel="T1", ylabel="marginal TV to p_0.001",
        measured=f"start N(0, I) (seed 3) for every column but the last (exact p_T1 draws); predictor: "
                 f"{PREDICTOR_STEPS} (or 70) log-SNR-uniform steps from T1 to {T_MIN:g}; corrector: 20 ULA steps at "
                 f"T1; measured NFE {nfe}; Monte Carlo floor {fmt(floor)}",
    )


def _corrector(quick: bool) -> Result:
    T1, n = 0.5, (3000 if quick else 10_000)
    steps, hs = ([5, 20], [0.1, 0.3]) if quick else ([5, 10, 20, 50, 100], [0.03, 0.1, 0.3, 0.6, 1.0])
    rows, series = [], {}
    for kind in ("ula", "mala", "uld"):
        for S in (steps if kind == "ula" else [20]):
            cells = [pc_tv("pc", T1, n, corrector=kind, corrector_steps=S, corrector_step=h) for h in hs]
            rows.append([kind, S] + [fmt(c[0]) for c in cells] + [cells[0][1]])
        for j, h in enumerate(hs):
            if kind == "ula":
                series[f"ULA h = {h:g}"] = (steps, [float(r[2 + j]) for r in rows[-len(steps):]])
    bare = pc_tv("ddpm", T1, n)[0]
    return Result(
        title=f"PC corrector sensitivity at T1 = {T1:g} (predictor ddpm, {PREDICTOR_STEPS} steps): marginal TV to "
              f"p_0.001, {n} samples",
        claim="more corrector time (steps x h) removes more of the start error, down to the O(h) bias of the "
              "unadjusted chain; the step sizes and counts are this project's choices (the paper's are not known)",
        columns=["corrector", "steps"] + [f"h = {h:g}" for h in hs] + ["NFE"], rows=rows, series=series,
        xlabel="corrector steps", ylabel="marginal TV to p_0.001",
        measured=f"no corrector: {fmt(bare)}; MALA: Simpson energy (2 calls per step + 1); ULD: gamma = 2; "
                 f"Monte Carlo floor {fmt(floor_tv(n))}",
    )


EXPERIMENTS = (
    Experiment("t1", "marginal TV of PC (ULA + ddpm / ddim) vs the bare predictor, as a function of T1", _t1),
    Experiment("corrector", "marginal TV at T1 = 0.5 over the corrector's steps, step size and kind", _corrector),
)
