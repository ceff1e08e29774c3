"""The CUDA backend (numba.cuda): the CPU engine's passes on the GPU, from the same scalar kernels.

* The engine's ``combine``/``convert`` are one grid-stride launch each (the Stepper's per-stage work for a model
  called from Python): the model receives a numba device array (or, with a torch CUDA ``x_init``, a tensor) and
  may return anything exposing ``__cuda_array_interface__`` (numba device arrays, torch CUDA tensors, CuPy
  arrays: used zero-copy) or a NumPy array (copied); outputs are validated and converted on the device.
* ``fused`` (analytic mixture target): one kernel launch runs every sample's whole trajectory, one thread per
  sample, the stage tables of the mixture in shared memory; float32 when ``x`` is float32.  A run of Langevin
  segments (MALA / ULD) is one launch of the chain kernel, one thread per sample for all segments and iterations.

Importing this module checks that CUDA is usable and raises :class:`~diffsolve.errors.DiffsolveError` naming
the fix otherwise; ``NUMBA_ENABLE_CUDASIM=1`` (set before numba is imported) runs it on Numba's simulator.
"""

from __future__ import annotations

from typing import NamedTuple

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
from .arrays import NUMPY, TorchKind, torch_module, widen_half  # noqa: E402
from .engine import Engine, Keys  # noqa: E402

__all__ = ["CudaEngine", "as_device_array", "is_device_array"]


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


class _DeviceRows(NamedTuple):
    """A segment's rows on the device (the same fields the kernels read)."""

    A: object
    B: object
    E: object
    C: object
    fslot: object
    hslot: object
    corrections: tuple  # ((kernel name, device arrays), ...)
    stages: int


class CudaEngine(Engine):
    """numba.cuda passes; engine arrays are numba device arrays."""

    name = "cuda"

    def __init__(self):
        self._bad = cuda.to_device(np.zeros(1, dtype=np.int64))

    def to_engine(self, obj, what):
        """A device array for ``obj`` and the kind results are returned in: torch CUDA tensors stay torch
        (zero-copy both ways); NumPy and numba arrays give numba device arrays."""
        torch = torch_module(obj)
        obj = widen_half(obj, torch)
        if is_device_array(obj):
            arr = as_device_array(obj, what)
            if not arr.is_c_contiguous():
                raise DiffsolveError(f"{what} is a non-contiguous CUDA array of shape {tuple(arr.shape)}; pass a "
                                     "C-contiguous one (e.g. tensor.contiguous())")
            return arr, (TorchKind(torch, obj.device) if torch is not None else NUMPY)
        if torch is not None:
            raise DiffsolveError(f"{what} is a torch tensor on {obj.device}; backend 'cuda' needs CUDA tensors "
                                 "(tensor.cuda()), or use backend='cpu'")
        return cuda.to_device(np.ascontiguousarray(widen_half(np.asarray(obj), None))), NUMPY

    def empty(self, shape, dtype):
        return cuda.device_array(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        return cuda.to_device(np.zeros(shape, dtype=dtype))

    def copy_in(self, dst, src):
        dst.copy_to_device(src)

    def to_host(self, arr):
        return arr.copy_to_host()

    def keys(self, seed, sample_index):
        k = super().keys(seed, sample_index)
        return Keys(k.seed_lo, k.seed_hi, cuda.to_device(k.sidx))

    def bind(self, rows):
        to = cuda.to_device
        return _DeviceRows(to(rows.A), to(rows.B), to(rows.E), to(rows.C), to(rows.fslot), to(rows.hslot),
                           tuple((k, tuple(to(a) for a in arrays)) for k, arrays in rows.corrections),
                           rows.A.shape[1] - 1)

    def combine(self, out, x, V, rows, m, r, keys, step):
        nbl = (x.shape[1] + 1) // 2
        kernels.combine_kernel[kernels.blocks_for(x.shape[0] * nbl), kernels.THREADS](
            out, x, V, rows.A, rows.B, rows.E, rows.C, m, r, rows.fslot, rows.hslot, keys.seed_lo, keys.seed_hi,
            keys.sidx, step)
        if r == rows.stages:
            for kernel, arrays in rows.corrections:
                kernels.CORRECTIONS[kernel][kernels.blocks_for(x.shape[0]), kernels.THREADS](
                    out, V, m, rows.fslot, rows.hslot, *arrays)

    def bind_conversion(self, conv, dtype):
        return conv.typed(dtype)

    def convert(self, V, slot, vals, u, conv):
        self._bad.copy_to_device(np.zeros(1, dtype=np.int64))
        kernels.convert_kernel[kernels.blocks_for(u.shape[0] * u.shape[1]), kernels.THREADS](
            V, slot, vals, u, conv.fx, conv.fd, conv.tx, conv.td, conv.identity, self._bad)
        return int(self._bad.copy_to_host()[0])

    def fuses(self, target, program):
        return plan.fusable(target, program)

    def fused_table(self, segment, target, schedule, prediction, X, history, keys, step_offset):
        """Every sample's whole trajectory through the segment in one launch (``X`` a host array, in place)."""
        table = segment.table
        rows = plan.segment_rows(segment, X.dtype)
        S, M = table.stages, table.history
        V = np.zeros((max(S + M, 1),) + X.shape, dtype=X.dtype)
        for m, h in enumerate(history):
            V[S + m] = h
        g = plan.gmm_stage_tables(target, schedule, table.tau, prediction, X.dtype)
        k, d = target.means.shape
        kern = kernels.fused_kernel(S, M, k, d, X.dtype.name)
        KB, KE, bound, clipped = plan.fused_clip(rows)
        to = cuda.to_device
        dX = to(X)
        kern[kernels.blocks_for(X.shape[0], cap=2**31 - 1), kernels.THREADS](
            dX, to(V), to(rows.A), to(rows.B), to(rows.E), to(rows.C), to(rows.fslot), to(rows.hslot), to(KB),
            to(KE), to(bound), clipped, to(g.tab), to(g.aux), g.iso, keys.seed_lo, keys.seed_hi, keys.sidx,
            step_offset)
        X[...] = dX.copy_to_host()

    def fused_chains(self, X, chains, keys, step_offset):
        """Every Langevin segment of every sample in one launch, one thread per sample (``X`` host, in place);
        returns the segments' statistics (n, segments)."""
        g = chains.tables
        k, d = g.tab.shape[3], g.tab.shape[4]
        to = cuda.to_device
        dX, dacc = to(X), to(np.zeros((X.shape[0], chains.segs.shape[0]), dtype=np.float64))
        kernels.chain_kernel(k, d, X.dtype.name)[kernels.blocks_for(X.shape[0], cap=2**31 - 1), kernels.THREADS](
            dX, to(chains.segs), to(chains.segr), to(chains.cf), to(g.tab), to(g.aux), g.iso, keys.seed_lo,
            keys.seed_hi, keys.sidx, step_offset, dacc)
        X[...] = dX.copy_to_host()
        return dacc.copy_to_host()
