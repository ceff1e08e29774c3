"""The CUDA backend (numba.cuda): the CPU backend's two paths on the GPU, from the same scalar kernels.

* **fused** (analytic mixture target): one kernel launch runs every sample's whole trajectory, one thread per
  sample, the stage tables of the mixture in shared memory; float32 when ``x`` is float32.
* **generic** (a Python model): per stage one grid-stride launch builds the stage input on the device, the model
  receives a numba device array shaped like ``x`` and may return anything exposing
  ``__cuda_array_interface__`` (numba device arrays, torch CUDA tensors, CuPy arrays: used zero-copy) or a NumPy
  array (copied); outputs are validated (shape, dtype, finiteness) and converted on the device.

Importing this module checks that CUDA is usable and raises :class:`~diffsolve.errors.DiffsolveError` naming
the fix otherwise; ``NUMBA_ENABLE_CUDASIM=1`` (set before numba is imported) runs it on Numba's simulator.
"""

from __future__ import annotations

import numpy as np

from ..errors import DiffsolveError, ModelOutputError

_FIX = ('install the CUDA extra: pip install "diffsolve[cuda]" (numba-cuda), or set NUMBA_ENABLE_CUDASIM=1 '
        "before importing numba to run on the CUDA simulator (slow; for tests)")

try:
    from numba import cuda
except ImportError as exc:  # numba-cuda missing
    raise DiffsolveError(f"backend 'cuda' is unavailable: numba.cuda cannot be imported ({exc}); {_FIX}") from None
if not cuda.is_available():
    raise DiffsolveError(
        "backend 'cuda' is unavailable: numba.cuda found no usable NVIDIA GPU and driver "
        "(numba.cuda.is_available() is False); run on a machine with a CUDA GPU, use backend='cpu', or set "
        "NUMBA_ENABLE_CUDASIM=1 before importing numba to run on the CUDA simulator (slow; for tests)"
    )

from ..kernels import cuda as kernels  # noqa: E402  (after the availability check)
from ..kernels import plan  # noqa: E402
from ..noise.normals import check_sample_index, split_seed  # noqa: E402

__all__ = ["run", "as_device_array", "is_device_array"]


def is_device_array(obj) -> bool:
    """Whether ``obj`` lives on the GPU (a numba device array or anything with ``__cuda_array_interface__``)."""
    if cuda.devicearray.is_cuda_ndarray(obj):
        return True
    if callable(getattr(obj, "detach", None)):  # torch: the interface refuses tensors that require grad
        obj = obj.detach()
    try:
        return isinstance(obj.__cuda_array_interface__, dict)
    except Exception:  # absent, or a CPU tensor refusing it
        return False


def as_device_array(obj, what="array"):
    """A numba device array viewing ``obj`` (zero-copy through ``__cuda_array_interface__``; NumPy is copied)."""
    if callable(getattr(obj, "detach", None)):  # torch: the interface refuses tensors that require grad
        obj = obj.detach()
    if cuda.devicearray.is_cuda_ndarray(obj):
        return obj
    if is_device_array(obj):
        return cuda.as_cuda_array(obj)
    if isinstance(obj, np.ndarray):
        return cuda.to_device(np.ascontiguousarray(obj))
    raise ModelOutputError(
        f"the {what} is a {type(obj).__name__}; the cuda backend expects a CUDA array (numba device array, torch "
        "CUDA tensor, CuPy array: anything with __cuda_array_interface__) or a NumPy array"
    )


def _host_state(x):
    if is_device_array(x):
        return as_device_array(x).copy_to_host(), True
    return np.asarray(x), False


def _working_dtype(x):
    dtype = np.dtype(x.dtype)
    if dtype not in (np.float32, np.float64):
        raise DiffsolveError(f"the cuda backend computes in float32 or float64, got x of dtype {dtype}; "
                             "use x.astype(np.float32) or np.float64")
    return dtype


class _Device:
    """The run's device arrays: state X (n, D), slot stack V (S+M, n, D), tableau rows."""

    def __init__(self, table, x, seed, sample_index, history):
        dtype = _working_dtype(x)
        n = x.shape[0]
        X = np.ascontiguousarray(x.reshape(n, -1), dtype=dtype)
        S, M = table.stages, table.history
        V = np.zeros((max(S + M, 1), n, X.shape[1]), dtype=dtype)
        if len(history) > M:
            raise DiffsolveError(f"got {len(history)} history values for a table that keeps {M}")
        for m, h in enumerate(history):
            h = _host_state(h)[0]
            if h.shape != x.shape:
                raise DiffsolveError(f"history[{m}] has shape {h.shape}, expected the state's shape {x.shape}")
            V[S + m] = h.reshape(n, -1)
        self.seed_lo, self.seed_hi = split_seed(seed)
        sidx = check_sample_index(sample_index)
        if sidx.shape[0] != n:
            raise DiffsolveError(f"sample_index has {sidx.shape[0]} entries for a batch of {n} samples")
        self.rows = plan.table_rows(table, dtype)
        to = cuda.to_device
        self.X, self.V, self.sidx = to(X), to(V), to(sidx)
        self.A, self.B, self.E, self.C = (to(a) for a in self.rows[:4])
        self.fslot, self.hslot = to(self.rows.fslot), to(self.rows.hslot)
        self.KB, self.KE, self.bound = to(self.rows.KB), to(self.rows.KE), to(self.rows.bound)
        self.n, self.dim, self.dtype = n, X.shape[1], dtype

    def combine(self, out, m, r, step):
        nbl = (self.dim + 1) // 2
        kernels.combine_kernel[kernels.blocks_for(self.n * nbl), kernels.THREADS](
            out, self.X, self.V, self.A, self.B, self.E, self.C, m, r, self.fslot, self.hslot,
            self.seed_lo, self.seed_hi, self.sidx, step)
        if self.rows.clipped and r == self.rows.A.shape[1] - 1:
            kernels.clip_kernel[kernels.blocks_for(self.n), kernels.THREADS](
                out, self.V, self.KB, self.KE, self.bound, m, self.fslot, self.hslot)


def _fused(table, model, dev, step_offset, progress):
    g = plan.gmm_stage_tables(model.target, model.schedule, table.tau, model.solver_prediction, dev.dtype)
    k, d = model.target.means.shape
    kern = kernels.fused_kernel(table.stages, table.history, k, d, dev.dtype.name)
    kern[kernels.blocks_for(dev.n, cap=2**31 - 1), kernels.THREADS](
        dev.X, dev.V, dev.A, dev.B, dev.E, dev.C, dev.fslot, dev.hslot, dev.KB, dev.KE, dev.bound,
        dev.rows.clipped, cuda.to_device(g.tab),
        cuda.to_device(g.aux), g.iso, dev.seed_lo, dev.seed_hi, dev.sidx, step_offset)
    if progress is not None:
        progress.update(table.steps)


def _raw_model(model):
    """(callable, native prediction, solver prediction, schedule) of a ModelAdapter, or of a bare callable."""
    fn = getattr(model, "model", model)
    solver_pred = getattr(model, "solver_prediction", None)
    native = getattr(model, "native", solver_pred)
    return fn, native, solver_pred, getattr(model, "schedule", None)


def _generic(table, model, dev, step_offset, progress, shape):
    fn, native, solver_pred, schedule = _raw_model(model)
    S = table.stages
    U = cuda.device_array_like(dev.X)
    bad = cuda.to_device(np.zeros(1, dtype=np.int64))
    dim = dev.n * dev.dim
    for m in range(table.steps):
        step = step_offset + m + 1
        for s in range(S):
            t = float(table.tau[m, s])
            dev.combine(U, m, s, step)
            out = fn(U.reshape(shape), t)
            vals = _checked_output(out, shape, t, step - 1)
            conv = plan.conversion(schedule, t, native, solver_pred)
            kernels.convert_kernel[kernels.blocks_for(dim), kernels.THREADS](
                dev.V, int(dev.rows.fslot[m, s]), vals.reshape(dev.n, dev.dim), U, conv.fx, conv.fd, conv.tx,
                conv.td, conv.identity, bad)
            nbad = int(bad.copy_to_host()[0])
            if nbad:
                raise ModelOutputError(
                    f"the model returned {nbad} NaN/inf value(s) at t = {t!r} (step {step - 1}); check the model "
                    "(and its time conditioning) at this noise level; diffsolve never passes non-finite outputs on"
                )
        dev.combine(dev.X, m, S, step)
        if progress is not None:
            progress.update(1)


def _checked_output(out, shape, t, step):
    where = f"at t = {t!r} (step {step})"
    vals = as_device_array(out, f"model output {where}")
    if tuple(vals.shape) != tuple(shape):
        raise ModelOutputError(f"the model returned shape {tuple(vals.shape)} {where} for an input of shape "
                               f"{tuple(shape)}; it must return an array of the same shape as x")
    if not np.issubdtype(np.dtype(vals.dtype), np.floating):
        raise ModelOutputError(f"the model returned dtype {vals.dtype} {where}; return floating-point values")
    if not vals.is_c_contiguous():
        raise ModelOutputError(f"the model returned a non-contiguous array {where}; return a contiguous one "
                               "(e.g. tensor.contiguous())")
    return vals


def run(table, model, x, *, seed, sample_index, history=(), step_offset=0, progress=None):
    """Advance ``x`` through every step of ``table`` on the GPU (same contract as ``numpy_backend.run``).

    ``x`` may be a NumPy array (the result is copied back to the host) or a CUDA array (the result stays on the
    device, as a numba device array).  Computes in x's dtype (float32 or float64).
    """
    host, on_device = _host_state(x)
    shape = host.shape
    dev = _Device(table, host, seed, sample_index, history)
    target = getattr(model, "target", None)
    if target is not None and plan.fusable(target):
        _fused(table, model, dev, step_offset, progress)
    else:
        _generic(table, model, dev, step_offset, progress, shape)
    if on_device:
        return dev.X.reshape(shape)
    return dev.X.copy_to_host().reshape(shape)
