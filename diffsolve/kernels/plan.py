"""Python-side preparation for the compiled kernels (plain NumPy, shared by the cpu and cuda backends).

Everything that is the same for all samples is computed here once per run: the slot relabelling that replaces
the history shift, per-stage prediction conversions and the per-stage tables of the exact mixture model.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .. import predictions
from ..errors import DiffsolveError
from ..targets import GaussianMixture

__all__ = ["Conversion", "GmmTables", "Rows", "slot_plan", "table_rows", "conversion", "gmm_stage_tables", "fusable"]


class Rows(NamedTuple):
    """The tableau of a run as contiguous arrays in the working dtype, plus the slot plan."""

    A: np.ndarray  # (N, S+1)
    B: np.ndarray  # (N, S+1, S)
    E: np.ndarray  # (N, S+1, M)
    C: np.ndarray  # (N, S+1, Q)
    fslot: np.ndarray  # (N, S) int64
    hslot: np.ndarray  # (N, M) int64
    final_hslot: np.ndarray  # (M,) where H_1..H_M live after the last step
    KB: np.ndarray  # (N, S) the norm-capped output term (ClipTerm; zeros without one)
    KE: np.ndarray  # (N, M)
    bound: np.ndarray  # (N,)
    clipped: bool  # the table has a ClipTerm


class Conversion(NamedTuple):
    """P_to = tx u + td (v - fx u) / fd for a model output v of another type; ``identity`` when types agree."""

    fx: float
    fd: float
    tx: float
    td: float
    identity: bool


def slot_plan(steps: int, stages: int, history: int, keep: int):
    """Which slot of the stack ``V (S + M, n, d)`` holds ``F_s`` and ``H_m`` at every step.

    Start: ``F_s`` in slot ``s``, ``H_m`` (m = 0 newest) in slot ``S + m``.  After a step the slot of
    ``F_keep`` becomes ``H_0``, the histories move down one, and the slot of the dropped oldest history is
    reused for ``F_keep``: the history shift of DESIGN §3 without copying.  Returns ``(fslot (N, S),
    hslot (N, M), final_hslot (M,))``.
    """
    fs = list(range(stages))
    hs = list(range(stages, stages + history))
    fslot = np.empty((steps, stages), dtype=np.int64)
    hslot = np.empty((steps, history), dtype=np.int64)
    for n in range(steps):
        fslot[n], hslot[n] = fs, hs
        if history:
            freed = hs[-1]
            hs = [fs[keep]] + hs[:-1]
            fs[keep] = freed
    return fslot, hslot, np.asarray(hs, dtype=np.int64)


def table_rows(table, dtype) -> Rows:
    """The StepTable's coefficients cast to ``dtype`` (the state's) with its slot plan."""
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    fslot, hslot, final = slot_plan(table.steps, table.stages, table.history, table.keep)
    clip = table.clip
    N, S, M = table.steps, table.stages, table.history
    KB, KE, bound = (clip.B, clip.E, clip.bound) if clip is not None else (
        np.zeros((N, S)), np.zeros((N, M)), np.full(N, np.inf))
    return Rows(cast(table.A), cast(table.B), cast(table.E), cast(table.C), fslot, hslot, final, cast(KB),
                cast(KE), cast(bound), clip is not None)


def conversion(schedule, t, frm: str, to: str) -> Conversion:
    """Coefficients converting a ``frm`` prediction into ``to`` at time ``t`` (raises where singular)."""
    if frm == to:
        return Conversion(0.0, 1.0, 0.0, 1.0, True)
    # the library's own check (and message) for singular conversions, on a dummy value
    predictions.convert(np.zeros(1), np.zeros(1), t, schedule, frm, to)
    fx, fd = predictions.coefficients(frm, schedule, t)
    tx, td = predictions.coefficients(to, schedule, t)
    return Conversion(float(fx), float(fd), float(tx), float(td), False)


def fusable(target) -> bool:
    """Whether the fused kernels implement this target exactly: a diagonal Gaussian mixture whose exact model
    is the library's (a subclass overriding ``denoise``/``predict`` takes the generic path)."""
    cls = type(target)
    return (isinstance(target, GaussianMixture) and cls.denoise is GaussianMixture.denoise
            and cls.predict is GaussianMixture.predict)


class GmmTables(NamedTuple):
    """Per-stage tables of the exact mixture model (layout in :func:`diffsolve.kernels.scalar.make_kernels`)."""

    tab: np.ndarray  # (N, S, 4, K, d): a m, 0.5 / var_t, m sigma^2 / var_t, a v / var_t
    aux: np.ndarray  # (N, S, K + 2): log w_k - 0.5 sum_j log(2 pi var_t[k, j]), then c_x, c_D
    iso: bool  # every component isotropic (the kernels then read column 0 of fields 1 and 3)


def gmm_stage_tables(target: GaussianMixture, schedule, tau: np.ndarray, prediction: str, dtype) -> GmmTables:
    """The exact mixture model at every stage time ``tau (N, S)``, as the fused kernels consume it.

    var_t = a^2 v + sigma^2 per component and coordinate (diagonal components); the solver-type output is
    c_x u + c_D D with (c_x, c_D) of :func:`diffsolve.predictions.coefficients`, the numbers the NumPy path
    multiplies with.
    """
    k, d = target.means.shape
    steps, stages = tau.shape
    tab = np.empty((steps, stages, 4, k, d))
    aux = np.empty((steps, stages, k + 2))
    logw = np.log(target.weights)
    for n in range(steps):
        for s in range(stages):
            t = float(tau[n, s])
            a, sig, var_t = target._marginal(t, schedule)
            if not np.all(np.isfinite(var_t)) or np.any(var_t <= 0):
                raise DiffsolveError(
                    f"the mixture marginal at t = {t!r} has a non-positive or non-finite variance "
                    f"(alpha = {a:.3g}, sigma = {sig:.3g}); end the grid at a positive time"
                )
            tab[n, s, 0] = a * target.means
            tab[n, s, 1] = 0.5 / var_t
            tab[n, s, 2] = target.means * (sig * sig) / var_t
            tab[n, s, 3] = a * target.variances / var_t
            aux[n, s, :k] = logw - 0.5 * np.sum(np.log(2 * math.pi * var_t), axis=1)
            aux[n, s, k:] = _prediction_coefficients(schedule, t, prediction)
    iso = bool(np.all(target.variances == target.variances[:, :1]))
    return GmmTables(np.ascontiguousarray(tab, dtype=dtype), np.ascontiguousarray(aux, dtype=dtype), iso)


def _prediction_coefficients(schedule, t, prediction):
    """(c_x, c_D) with P = c_x x + c_D D, checked like :func:`diffsolve.predictions.convert`."""
    conv = conversion(schedule, t, "data", prediction)
    return (0.0, 1.0) if conv.identity else (conv.tx, conv.td)
