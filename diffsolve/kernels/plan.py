"""Python-side preparation for the compiled kernels (plain NumPy, shared by the cpu and cuda backends).

Everything that is the same for all samples is computed here once per run: the slot relabelling that replaces
the history shift, per-stage prediction conversions and the per-stage tables of the exact mixture model.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .. import predictions
from ..corrections import ClippedMomentum
from ..errors import DiffsolveError
from ..program import Program, Segment
from ..targets import GaussianMixture

__all__ = ["GmmTables", "Rows", "ChainPlan", "slot_plan", "segment_rows", "fused_clip", "gmm_stage_tables", "fusable",
           "fused_parts", "chain_plan", "chain_stats"]

# diffsolve.langevin imports the Stepper, which imports this module: its names are imported where used


def _chain_methods():
    """The Langevin methods the chain kernel runs (segs[:, 0] is the index here)."""
    from ..langevin import Mala, SnrLangevin, Uld

    return (Mala, Uld, SnrLangevin)


class Rows(NamedTuple):
    """One segment of a run as contiguous arrays in the working dtype, plus the slot plan."""

    A: np.ndarray  # (N, S+1)
    B: np.ndarray  # (N, S+1, S)
    E: np.ndarray  # (N, S+1, M)
    C: np.ndarray  # (N, S+1, Q)
    fslot: np.ndarray  # (N, S) int64
    hslot: np.ndarray  # (N, M) int64
    final_hslot: np.ndarray  # (M,) where H_1..H_M live after the last step
    corrections: tuple  # ((kernel name, parameter arrays), ...) applied after the output row, in order
    source: tuple  # the segment's Correction objects (the NumPy engine applies their reference)
    slots: int  # the slot stack's length
    last_in_place: bool  # the slot plan of slot_plan(..., last_in_place=True)


def slot_plan(steps: int, stages: int, history: int, keep: int, last_in_place: bool = False):
    """Which slot of the stack ``V (slots, n, d)`` holds ``F_s`` and ``H_m`` at every step.

    Start: ``F_s`` in slot ``s``, ``H_m`` (m = 0 newest) in slot ``S + m``.  After a step the slot of
    ``F_keep`` becomes ``H_0``, the histories move down one, and the slot of the dropped oldest history is
    reused for ``F_keep``: the history shift of the tableau (docs/tableau.md) without copying.

    ``last_in_place``: for engines whose output row converts the last stage's model output, reads every term and
    only then stores ``F_{S-1}`` (``advance_span`` of :mod:`diffsolve.kernels.scalar`).  ``F_{S-1}`` then takes
    the slot of the oldest history value ``H_{M-1}`` of the same step when it is the kept stage, and no slot
    (-1) when nothing reads it after the step (no history, or another stage kept); the other stages as above,
    ``H_m`` starting in slot ``S - 1 + m``.  One slot fewer, and the step's traffic drops by one array stream:
    the stored output lands on the lines just read.  Only for segments without corrections (they read the slots
    after the output row).

    Returns ``(fslot (N, S), hslot (N, M), final_hslot (M,), slots)``.
    """
    last = stages - 1 if last_in_place else None
    fs = list(range(stages if last is None else last))
    hs = list(range(len(fs), len(fs) + history))
    fslot = np.empty((steps, stages), dtype=np.int64)
    hslot = np.empty((steps, history), dtype=np.int64)
    for n in range(steps):
        hslot[n] = hs
        if last is None:
            fslot[n] = fs
        else:
            fslot[n] = fs + [hs[-1] if history and keep == last else -1]
        if history:
            if keep == last:  # F_{S-1} overwrote H_{M-1}: it is H_0 now
                hs = [hs[-1]] + hs[:-1]
            else:
                freed = hs[-1]
                hs = [fs[keep]] + hs[:-1]
                fs[keep] = freed
    return fslot, hslot, np.asarray(hs, dtype=np.int64), len(fs) + history


def segment_rows(segment: Segment, dtype, last_in_place: bool = False) -> Rows:
    """The segment's coefficients cast to ``dtype`` (the state's), its slot plan and its corrections
    (``last_in_place``: that slot plan where the segment has no corrections, see :func:`slot_plan`)."""
    table = segment.table
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    in_place = bool(last_in_place and not segment.corrections)
    fslot, hslot, final, slots = slot_plan(table.steps, table.stages, table.history, table.keep, in_place)
    corrections = tuple((c.kernel, c.arrays(dtype)) for c in segment.corrections)
    return Rows(cast(table.A), cast(table.B), cast(table.E), cast(table.C), fslot, hslot, final, corrections,
                segment.corrections, slots, in_place)


def fused_clip(rows: Rows):
    """(KB, KE, bound, clipped) for the fused kernels, which implement the clipped momentum and nothing else
    (zero arrays and ``False`` without one; :func:`fusable` refuses other corrections)."""
    for kernel, arrays in rows.corrections:
        if kernel == ClippedMomentum.kernel:
            return arrays + (True,)
    N, S, M, dtype = rows.A.shape[0], rows.A.shape[1] - 1, rows.E.shape[2], rows.A.dtype
    return np.zeros((N, S), dtype=dtype), np.zeros((N, M), dtype=dtype), np.full(N, np.inf, dtype=dtype), False


def fusable(target, program: Program) -> bool:
    """Whether the fused kernels run this job exactly: a diagonal Gaussian mixture whose exact model is the
    library's (a subclass overriding ``denoise``/``predict``/``logpdf`` takes the Stepper path) and a program of
    table segments with at most one correction, the clipped momentum, and MALA / ULD segments."""
    from ..langevin import LangevinSegment

    cls = type(target)
    if not (isinstance(target, GaussianMixture) and cls.denoise is GaussianMixture.denoise
            and cls.predict is GaussianMixture.predict and cls.logpdf is GaussianMixture.logpdf):
        return False
    for segment in program.segments:
        if isinstance(segment, Segment):
            if [c.kernel for c in segment.corrections] not in ([], [ClippedMomentum.kernel]):
                return False
        elif not (isinstance(segment, LangevinSegment) and type(segment.method) in _chain_methods()
                  and getattr(segment.method, "norms", "sample") == "sample"):  # batch norms couple the samples
            return False
    return True


def fused_parts(program: Program):
    """The program as the fused kernels run it: ``(segment, first step)`` for a table segment, ``(segments,
    first steps)`` (tuples) for a run of consecutive Langevin segments (one chain kernel: the score one segment
    leaves is reused by the next)."""
    from ..langevin import LangevinSegment

    parts, first, run = [], 0, None
    for segment in program.segments:
        if isinstance(segment, LangevinSegment):
            if run is None:
                run = ((), ())
                parts.append(run)
            run = (run[0] + (segment,), run[1] + (first,))
            parts[-1] = run
        else:
            run = None
            parts.append((segment, first))
        first += segment.steps
    return parts


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
            conv = predictions.conversion(schedule, t, "data", prediction)
            aux[n, s, k:] = (0.0, 1.0) if conv.identity else (conv.tx, conv.td)  # P = c_x x + c_D D
    iso = bool(np.all(target.variances == target.variances[:, :1]))
    return GmmTables(np.ascontiguousarray(tab, dtype=dtype), np.ascontiguousarray(aux, dtype=dtype), iso)


class ChainPlan(NamedTuple):
    """A run of Langevin segments as the chain kernel reads it
    (:func:`diffsolve.kernels.scalar.make_kernels`, ``langevin_chain``)."""

    segs: np.ndarray  # (G, 8) int64
    segr: np.ndarray  # (G, 5) working dtype: tilt, a, q, radius (MALA), snr (SNR corrector)
    cf: np.ndarray  # (iterations, 8): tau (the SNR corrector: alpha), then the ULD coefficients (c_vv, c_vG, ...)
    tables: GmmTables  # the exact score model (prediction 'score'), one table per distinct time


def chain_plan(segments, firsts, target: GaussianMixture, schedule, dtype) -> ChainPlan:
    """The arrays of the chain kernel for ``segments`` starting at program steps ``firsts``."""
    from ..langevin import ENERGIES, INITS, Mala, Uld

    methods = _chain_methods()
    times = []

    def table(t):
        if t not in times:
            times.append(t)
        return times.index(t)

    segs = np.zeros((len(segments), 8), dtype=np.int64)
    segr = np.zeros((len(segments), 5))
    rows = []
    for g, (seg, first) in enumerate(zip(segments, firsts)):
        method = seg.method
        mala, uld = isinstance(method, Mala), isinstance(method, Uld)
        segs[g] = (methods.index(type(method)), seg.steps, sum(len(r) for r in rows), first, table(seg.t),
                   table(seg.t_init) if seg.init == "tweedie" else -1, INITS.index(seg.init),
                   ENERGIES.index(method.energy) if mala else 0)
        segr[g] = (seg.tilt, seg.a, seg.q, method.radius if mala else math.inf, getattr(method, "snr", 0.0))
        rows.append(method.coefficients(seg.tau) if uld else np.pad(seg.tau[:, None], ((0, 0), (0, 7))))
    tables = gmm_stage_tables(target, schedule, np.asarray(times, dtype=np.float64)[:, None], "score", dtype)
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    return ChainPlan(segs, cast(segr), cast(np.concatenate(rows)), tables)


def chain_stats(segments, stat, stats):
    """What the Stepper reports, from the chain kernel's per-sample statistics ``stat (n, segments)``: the MALA
    acceptance rate of every MALA segment (``stats["acceptance"]``) and the mean step size of every SNR corrector
    segment (``stats["snr_step"]``); ``stats`` None: nothing."""
    if stats is None:
        return
    from ..langevin import Mala, SnrLangevin

    for g, seg in enumerate(segments):
        key = "acceptance" if isinstance(seg.method, Mala) else "snr_step" if isinstance(seg.method, SnrLangevin) \
            else None
        if key is not None:
            stats.setdefault(key, []).append(float(stat[:, g].sum()) / (seg.steps * stat.shape[0]))
