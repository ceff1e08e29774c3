"""The CPU backend: Numba-parallel kernels over a :class:`~diffsolve.tableau.StepTable`.

Two paths, both equal to the NumPy interpreter (to rounding; bitwise for the tableau arithmetic itself):

* **fused** when the model is an analytic mixture target: the whole trajectory of every sample (all steps,
  stages, history and noise, the exact denoiser inlined) in one compiled ``prange`` loop;
* **generic** for a Python model: per stage one compiled pass builds the stage input, the model is called with
  a NumPy array (outputs validated and converted by the model adapter), and one pass forms the step output.

Noise is drawn in-kernel by (seed, sample index, step, draw, coordinate), so results do not depend on the
thread count (``numba.set_num_threads``) or on how the batch is split (``sample_index`` offsets).
"""

from __future__ import annotations

import numpy as np

from ..errors import DiffsolveError
from ..kernels import cpu as kernels
from ..kernels import plan
from ..noise.normals import check_sample_index, split_seed

__all__ = ["run"]

_DTYPES = (np.float32, np.float64)


def _working_dtype(x):
    dtype = np.dtype(x.dtype)
    if dtype.type not in _DTYPES:
        raise DiffsolveError(f"the cpu backend computes in float32 or float64, got x of dtype {dtype}; "
                             "use x.astype(np.float64)")
    return dtype


def _setup(table, x, seed, sample_index, history):
    """Flattened working copies: state X (n, D), slot stack V (S+M, n, D) holding the initial history."""
    x = np.asarray(x)
    dtype = _working_dtype(x)
    n = x.shape[0]
    X = np.array(x.reshape(n, -1), dtype=dtype, copy=True)
    S, M = table.stages, table.history
    V = np.zeros((S + M, n, X.shape[1]), dtype=dtype)
    if len(history) > M:
        raise DiffsolveError(f"got {len(history)} history values for a table that keeps {M}")
    for m, h in enumerate(history):
        h = np.asarray(h)
        if h.shape != x.shape:
            raise DiffsolveError(f"history[{m}] has shape {h.shape}, expected the state's shape {x.shape}")
        V[S + m] = h.reshape(n, -1)
    seed_lo, seed_hi = split_seed(seed)
    sidx = check_sample_index(sample_index)
    if sidx.shape[0] != n:
        raise DiffsolveError(f"sample_index has {sidx.shape[0]} entries for a batch of {n} samples; "
                             "pass one per sample")
    return X, V, plan.table_rows(table, dtype), seed_lo, seed_hi, sidx


def _fused(table, model, X, V, rows, seed_lo, seed_hi, sidx, step_offset, progress):
    g = plan.gmm_stage_tables(model.target, model.schedule, table.tau, model.solver_prediction, X.dtype)
    kernels.fused_gmm(X, V, np.empty_like(X), rows.A, rows.B, rows.E, rows.C, rows.fslot, rows.hslot, rows.KB,
                      rows.KE, rows.bound, rows.clipped, g.tab, g.aux, g.iso, seed_lo, seed_hi, sidx, step_offset)
    if progress is not None:
        progress.update(table.steps)
    return X


def _generic(table, model, X, V, rows, seed_lo, seed_hi, sidx, step_offset, progress, shape):
    S = table.stages
    U = np.empty_like(X)
    for m in range(table.steps):
        step = step_offset + m + 1
        for s in range(S):
            kernels.combine(U, X, V, rows, m, s, seed_lo, seed_hi, sidx, step)
            out = model(U.reshape(shape), table.tau[m, s], step - 1)
            V[rows.fslot[m, s]] = np.reshape(out, X.shape)
        kernels.combine(X, X, V, rows, m, S, seed_lo, seed_hi, sidx, step)
        if progress is not None:
            progress.update(1)
    return X


def run(table, model, x, *, seed, sample_index, history=(), step_offset=0, progress=None):
    """Advance ``x`` through every step of ``table`` (same contract as ``numpy_backend.run``).

    ``model`` is a :class:`~diffsolve.models.ModelAdapter` (or any ``model(u, t, step)`` callable); with an
    analytic mixture target it takes the fused path.  Computes in x's dtype (float32 or float64); returns a
    new array of x's shape.
    """
    X, V, rows, seed_lo, seed_hi, sidx = _setup(table, x, seed, sample_index, history)
    target = getattr(model, "target", None)
    if target is not None and plan.fusable(target):
        X = _fused(table, model, X, V, rows, seed_lo, seed_hi, sidx, step_offset, progress)
    else:
        X = _generic(table, model, X, V, rows, seed_lo, seed_hi, sidx, step_offset, progress, np.shape(x))
    return X.reshape(np.shape(x))
