"""``Stepper``: any registered solver, driven one model call at a time from the user's own loop.

    st = Stepper("ddim", schedule, grid, x_init=x, prediction="eps", backend="cpu", seed=0)
    while not st.done:
        st.step(model(st.x_model, st.t_model))      # e.g. a torch.nn.Module returning eps
    x0 = st.x

Each ``step`` converts the model's prediction into the solver's (exactly, :mod:`diffsolve.predictions`), stores
it as the current stage output and forms the next stage input (or the step output, shifting the history) with the
compiled combine kernels of :mod:`diffsolve.kernels`; noise is keyed by (seed, sample_offset + i, step, draw)
exactly as in :func:`diffsolve.sample`, so a Stepper loop reproduces ``sample(...)`` with the same model.

Arrays: NumPy arrays, torch tensors (CPU tensors shared zero-copy through ``.numpy()``; CUDA tensors through
``__cuda_array_interface__`` on the ``cuda`` backend) or numba device arrays.  ``x_model`` and ``x`` come back in
the kind of ``x_init`` and are views of the stepper's buffers: valid until the next ``step``.
"""

from __future__ import annotations

import numpy as np

from .errors import DiffsolveError, ModelOutputError
from .grids import validate_grid
from .kernels import plan
from .backends.numpy_backend import clipped_term
from .noise import standard_normal
from .noise.normals import split_seed
from .predictions import check_prediction
from .schedules import Schedule
from .solvers import get_solver

__all__ = ["Stepper"]


# -- array kinds: how the user's arrays map to the engine's ------------------------------------------------
class _NumpyKind:
    def wrap(self, arr):
        return arr


class _TorchKind:
    """torch tensors; the engine array is shared, never copied."""

    def __init__(self, torch, device):
        self.torch, self.device = torch, device

    def wrap(self, arr):
        if isinstance(arr, np.ndarray):
            return self.torch.from_numpy(arr)
        return self.torch.as_tensor(arr, device=self.device)  # __cuda_array_interface__: zero-copy


def _torch_of(obj):
    mod = type(obj).__module__
    if mod.startswith("torch"):
        import torch

        return torch
    return None


# -- engines: the compiled (or reference) kernels of one backend -------------------------------------------
class _CpuEngine:
    """Numba CPU kernels; engine arrays are NumPy arrays."""

    def __init__(self):
        from .kernels import cpu

        self.k = cpu

    def to_engine(self, obj, what):
        torch = _torch_of(obj)
        if torch is not None:
            if obj.device.type != "cpu":
                raise DiffsolveError(f"{what} is a torch tensor on {obj.device}; backend 'cpu' needs CPU tensors "
                                     "(use backend='cuda' for CUDA tensors, or tensor.cpu())")
            return obj.detach().numpy(), _TorchKind(torch, obj.device)
        return np.asarray(obj), _NumpyKind()

    def empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def copy_in(self, dst, src):
        dst[...] = src

    def combine(self, out, x, V, rows, m, r, keys, step):
        self.k.combine(out, x, V, rows, m, r, keys[0], keys[1], keys[2], step)

    def convert(self, V, slot, vals, u, conv):
        return self.k.convert(V, slot, vals, u, conv)

    def advance(self, V, slot, vals, u, conv, out, x, rows, m, r, keys, step):
        return self.k.advance(V, slot, vals, u, conv, out, x, rows, m, r, keys[0], keys[1], keys[2], step)


class _NumpyEngine(_CpuEngine):
    """The reference interpreter's arithmetic (NumPy, same order as ``numpy_backend``), for checking."""

    def __init__(self):
        pass

    def combine(self, out, x, V, rows, m, r, keys, step):
        acc = rows.A[m, r] * x
        for s in range(r):
            if rows.B[m, r, s] != 0:
                acc = acc + rows.B[m, r, s] * V[rows.fslot[m, s]]
        for q in range(rows.E.shape[2]):
            if rows.E[m, r, q] != 0:
                acc = acc + rows.E[m, r, q] * V[rows.hslot[m, q]]
        for q in range(rows.C.shape[2]):
            if rows.C[m, r, q] != 0:
                seed = keys[0] | (keys[1] << 32)
                acc = acc + rows.C[m, r, q] * standard_normal(seed, keys[2], step, q, x.shape[1])
        if rows.clipped and r == rows.A.shape[1] - 1:
            acc = acc + clipped_term(rows.bound[m], rows.KB[m], rows.KE[m], [V[i] for i in rows.fslot[m]],
                                    [V[i] for i in rows.hslot[m]])
        out[...] = acc

    def convert(self, V, slot, vals, u, conv):
        V[slot] = vals if conv.identity else conv.tx * u + conv.td * ((vals - conv.fx * u) / conv.fd)
        return int(np.count_nonzero(~np.isfinite(vals)))

    def advance(self, V, slot, vals, u, conv, out, x, rows, m, r, keys, step):
        bad = self.convert(V, slot, vals, u, conv)
        self.combine(out, x, V, rows, m, r, keys, step)
        return bad


class _CudaEngine:
    """numba.cuda kernels; engine arrays are numba device arrays."""

    def __init__(self):
        from .backends import cuda_backend  # raises DiffsolveError naming the fix when CUDA is unusable
        from .kernels import cuda as k

        self.cb, self.k, self.cuda = cuda_backend, k, cuda_backend.cuda
        self.bad = self.cuda.to_device(np.zeros(1, dtype=np.int64))

    def to_engine(self, obj, what):
        """A device array for ``obj`` and the kind results are returned in: torch CUDA tensors stay torch
        (zero-copy both ways); NumPy and numba arrays give numba device arrays."""
        torch = _torch_of(obj)
        if self.cb.is_device_array(obj):
            kind = _TorchKind(torch, obj.device) if torch is not None else _NumpyKind()
            return self.cb.as_device_array(obj, what), kind
        if torch is not None:
            raise DiffsolveError(f"{what} is a torch tensor on {obj.device}; backend 'cuda' needs CUDA tensors "
                                 "(tensor.cuda()), or use backend='cpu'")
        return self.cuda.to_device(np.ascontiguousarray(obj)), _NumpyKind()

    def empty(self, shape, dtype):
        return self.cuda.device_array(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        return self.cuda.to_device(np.zeros(shape, dtype=dtype))

    def copy_in(self, dst, src):
        dst.copy_to_device(src)

    def combine(self, out, x, V, rows, m, r, keys, step):
        nbl = (x.shape[1] + 1) // 2
        d = self._rows_dev
        self.k.combine_kernel[self.k.blocks_for(x.shape[0] * nbl), self.k.THREADS](
            out, x, V, d[0], d[1], d[2], d[3], m, r, d[4], d[5], keys[0], keys[1], keys[3], step)
        if rows.clipped and r == rows.A.shape[1] - 1:
            self.k.clip_kernel[self.k.blocks_for(x.shape[0]), self.k.THREADS](
                out, V, d[6], d[7], d[8], m, d[4], d[5])

    def bind(self, rows, sidx):
        to = self.cuda.to_device
        self._rows_dev = tuple(to(a) for a in (rows.A, rows.B, rows.E, rows.C, rows.fslot, rows.hslot, rows.KB,
                                                rows.KE, rows.bound))
        return to(sidx)

    def convert(self, V, slot, vals, u, conv):
        self.bad.copy_to_device(np.zeros(1, dtype=np.int64))
        self.k.convert_kernel[self.k.blocks_for(u.shape[0] * u.shape[1]), self.k.THREADS](
            V, slot, vals, u, conv.fx, conv.fd, conv.tx, conv.td, conv.identity, self.bad)
        return int(self.bad.copy_to_host()[0])

    def advance(self, V, slot, vals, u, conv, out, x, rows, m, r, keys, step):
        bad = self.convert(V, slot, vals, u, conv)
        self.combine(out, x, V, rows, m, r, keys, step)
        return bad


_ENGINES = {"numpy": _NumpyEngine, "cpu": _CpuEngine, "cuda": _CudaEngine}


class Stepper:
    """One solver run, advanced one model evaluation at a time (see the module docstring).

    Parameters mirror :func:`diffsolve.sample`: ``solver`` (name or Solver), ``schedule``, ``grid`` (decreasing
    times), ``x_init`` (n, ...) the state at ``grid[0]`` (or at ``grid[M]`` with ``history``), ``prediction`` the
    type the model returns (``eps``, ``data``, ``v``, ``score``, ``flow``), ``backend`` (``cpu``, ``cuda`` or
    ``numpy``), ``seed`` and ``sample_offset`` (noise keys), ``history`` (newest first) for an exact multistep
    start; extra keywords are solver parameters.

    Attributes: ``done``; ``x_model`` / ``t_model`` the next model call's input and time; ``x`` the current
    state; ``step_index`` / ``stage`` the position; ``steps`` the number of solver steps.
    """

    def __init__(self, solver, schedule, grid, *, x_init, prediction="eps", backend="cpu", seed=0,
                 sample_offset=0, history=None, **params):
        solver = get_solver(solver, **params)
        if not isinstance(schedule, Schedule):
            raise DiffsolveError(f"schedule must be a diffsolve Schedule, got {type(schedule).__name__}; "
                                 "use ds.get_schedule(...)")
        grid = validate_grid(schedule, grid)
        check_prediction(prediction)
        if backend not in _ENGINES:
            raise DiffsolveError(f"unknown backend {backend!r} for Stepper; expected one of {', '.join(_ENGINES)}")
        eng = self._engine = _ENGINES[backend]()
        x, self._kind = eng.to_engine(x_init, "x_init")
        if len(x.shape) < 2 or x.shape[0] == 0:
            raise DiffsolveError("x_init must have a batch axis first, shape (n, ...) with n >= 1, got "
                                 f"{tuple(x.shape)}; for one sample use x[None]")
        dtype = np.dtype(x.dtype)
        if dtype not in (np.float32, np.float64):
            raise DiffsolveError(f"x_init must be float32 or float64, got {dtype}; convert it first")
        if isinstance(sample_offset, bool) or not isinstance(sample_offset, (int, np.integer)) or sample_offset < 0:
            raise DiffsolveError(f"sample_offset must be a non-negative integer, got {sample_offset!r}")
        history = [] if history is None else list(history)
        if history and len(history) != solver.history:
            raise DiffsolveError(f"solver {solver.name!r} keeps {solver.history} history values (newest first); "
                                 f"pass all of them or none, got {len(history)}")
        table = solver.table(schedule, grid, start=len(history), exact_history=bool(history))
        n, self.shape = x.shape[0], tuple(x.shape)
        flat = (n, int(np.prod(self.shape[1:])))
        S, M = table.stages, table.history
        self._rows = plan.table_rows(table, dtype)
        self._tau = table.tau
        self._X = eng.empty(flat, dtype)
        eng.copy_in(self._X, x.reshape(flat))
        self._U = eng.empty(flat, dtype)
        self._V = eng.zeros((max(S + M, 1),) + flat, dtype)
        for m, h in enumerate(history):
            h, _ = eng.to_engine(h, f"history[{m}]")
            if tuple(h.shape) != self.shape:
                raise DiffsolveError(f"history[{m}] has shape {tuple(h.shape)}, expected x_init's {self.shape}")
            eng.copy_in(self._V[S + m], h.reshape(flat))
        sidx = sample_offset + np.arange(n, dtype=np.int64)
        seed_lo, seed_hi = split_seed(seed)
        dev_sidx = eng.bind(self._rows, sidx) if hasattr(eng, "bind") else sidx
        self._keys = (seed_lo, seed_hi, sidx, dev_sidx)
        self._convs = [[plan.conversion(schedule, float(table.tau[m, s]), prediction, solver.prediction)
                        for s in range(S)] for m in range(table.steps)]
        self.solver, self.steps, self.stages = solver, table.steps, S
        self._offset = len(history)
        self.step_index, self.stage = 0, 0
        # rows that are u = x exactly (usually stage 0): the state itself is the model input, no pass needed
        r = np.arange(S + 1)
        lower = (r[None, :, None] > np.arange(S)[None, None, :])  # B[m, r, s] is used for s < r only
        self._ident = ((table.A == 1.0) & ~np.any((table.B != 0) & lower, axis=2)
                       & ~np.any(table.E != 0, axis=2) & ~np.any(table.C != 0, axis=2))
        self._views = {id(a): self._kind.wrap(a.reshape(self.shape)) for a in (self._U, self._X)}
        self._u = self._stage_input(0, 0) if self.steps else self._U

    def _combine(self, out, m, r):
        self._engine.combine(out, self._X, self._V, self._rows, m, r, self._keys, self._offset + m + 1)

    def _stage_input(self, m, s):
        """The engine array holding stage s's input of step m (forming it unless the row is u = x)."""
        if self._ident[m, s]:
            return self._X
        self._combine(self._U, m, s)
        return self._U

    @property
    def done(self) -> bool:
        """True once every step has been taken."""
        return self.step_index >= self.steps

    @property
    def x_model(self):
        """The next model call's input (a view of the stepper's buffers: valid until the next ``step``)."""
        self._check_not_done()
        return self._views[id(self._u)]

    @property
    def t_model(self) -> float:
        """The next model call's time."""
        self._check_not_done()
        return float(self._tau[self.step_index, self.stage])

    @property
    def x(self):
        """The current state (after the last completed step), in x_init's kind (a view: valid until ``step``)."""
        return self._views[id(self._X)]

    def _check_not_done(self):
        if self.done:
            raise DiffsolveError(f"the stepper is done ({self.steps} steps taken); read .x for the result")

    def step(self, model_output) -> None:
        """Consume the model's output at (x_model, t_model) and advance by one stage (one model evaluation)."""
        self._check_not_done()
        m, s = self.step_index, self.stage
        where = f"at t = {float(self._tau[m, s])!r} (step {self._offset + m})"
        vals, _ = self._engine.to_engine(model_output, f"the model output {where}")
        if tuple(vals.shape) != self.shape:
            raise ModelOutputError(f"the model returned shape {tuple(vals.shape)} {where} for an input of shape "
                                   f"{self.shape}; it must return an array of the same shape as x")
        if not np.issubdtype(np.dtype(vals.dtype), np.floating):
            raise ModelOutputError(f"the model returned dtype {vals.dtype} {where}; return floating-point values")
        eng, slot, conv = self._engine, int(self._rows.fslot[m, s]), self._convs[m][s]
        vals = vals.reshape(self._U.shape)
        r = s + 1  # the row formed next: stage s + 1, or the step output (row S)
        if r < self.stages and self._ident[m, r]:
            bad = eng.convert(self._V, slot, vals, self._u, conv)
            nxt = self._X
        else:
            nxt = self._U if r < self.stages else self._X
            bad = eng.advance(self._V, slot, vals, self._u, conv, nxt, self._X, self._rows, m, r, self._keys,
                              self._offset + m + 1)
        if bad:
            raise ModelOutputError(f"the model returned {bad} NaN/inf value(s) {where}; check the model (and its "
                                   "time conditioning) at this noise level; diffsolve never passes non-finite outputs "
                                   "on (this stepper's state is now invalid: build a new one)")
        if r < self.stages:
            self.stage, self._u = r, nxt
            return
        self.step_index, self.stage = m + 1, 0
        if m + 1 < self.steps:
            self._u = self._stage_input(m + 1, 0)

    def run(self, model):
        """Drive the remaining steps with ``model(x_model, t_model)``; returns ``x``."""
        while not self.done:
            self.step(model(self.x_model, self.t_model))
        return self.x

    def __repr__(self):
        return (f"Stepper({self.solver.name!r}, step {self.step_index}/{self.steps}, stage {self.stage}, "
                f"shape {self.shape})")
