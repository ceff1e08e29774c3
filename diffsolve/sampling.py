"""``sample(...)``: run any registered solver on a schedule and grid, with a target or a user model."""

from __future__ import annotations

import numpy as np

from . import backends
from .errors import DiffsolveError, DiffsolveTypeError, ModelOutputError
from .backends.arrays import torch_module, widen_half
from .models import ModelAdapter
from .noise import standard_normal
from .progress import Progress
from .schedules import Schedule
from .solution import Recorder, Solution, check_recording
from .stepper import Stepper, prepare_run

__all__ = ["sample", "prior_sample", "run_program", "Solution"]


def prior_sample(schedule: Schedule, t: float, n: int, dim: int, seed: int = 0, sample_offset: int = 0) -> np.ndarray:
    """x_T ~ N(0, sigma(T)^2 I) from the keyed Philox stream (step 0, draw 0): the usual start of sampling."""
    idx = sample_offset + np.arange(n, dtype=np.int64)
    x = standard_normal(seed, idx, 0, 0, dim)
    x *= float(schedule.sigma(t))  # in place: the prior is the largest array of a run
    return x


def _prior(schedule, run, n, dim, dtype):
    """The prior draw of ``sample(n=...)``, refusing what cannot be allocated with a message naming n."""
    run.sample_index(n)  # the noise keys' bound: sample_offset + n <= 2**32
    try:
        return prior_sample(schedule, run.grid[0], n, dim, run.seed, run.sample_offset).astype(dtype, copy=False)
    except MemoryError:
        need = n * dim * 8 / 2**30
        raise DiffsolveError(f"n = {n} samples of dimension {dim} need {need:.3g} GiB for the state alone, more than "
                             "this machine can allocate; sample in batches (sample_offset keeps them one "
                             "stream)") from None


def _working_dtype(dtype):
    """``dtype`` (sample()'s parameter) as float32 / float64, or None (keep x_init's)."""
    if dtype is None:
        return None
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise DiffsolveTypeError(f"dtype must be np.float32, np.float64 or None (keep x_init's), got "
                                 f"{dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise DiffsolveError(f"dtype must be float32 or float64 (the working precision; half-precision models are "
                             f"fine, their outputs are computed in float32), got {dt}; pass dtype=np.float32")
    return dt


def _host_state(x, name, dtype):
    """``x`` as a NumPy array of ``dtype`` (None keeps float32/float64), checked: floating, batch first, finite."""
    if not isinstance(x, np.ndarray):
        torch = torch_module(x)
        if torch is not None:
            x = widen_half(x, torch).detach().cpu().numpy()
        elif hasattr(x, "__array__") or isinstance(x, (list, tuple)):
            x = np.asarray(x)
        else:
            raise DiffsolveError(f"{name} must be a NumPy array of shape (n, ...), got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise DiffsolveError(f"{name} must have a floating dtype (float32 or float64), got {x.dtype}; use x.astype(np.float64)")
    if x.ndim < 2:
        raise DiffsolveError(
            f"{name} must have a batch axis first, shape (n, d) or (n, ...), got shape {x.shape}; "
            "for one sample use x[None]"
        )
    if x.shape[0] == 0 or x.size == 0:
        raise DiffsolveError(f"{name} is empty (shape {x.shape}); pass at least one sample")
    if not np.isfinite(x).all():
        raise DiffsolveError(f"{name} contains NaN or inf values; pass finite initial states")
    if dtype is None:
        return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)
    return x.astype(dtype, copy=False)


AUTO = "auto"  # sample()'s default dtype: float64 (NumPy / the prior) or x_init's (torch tensors; half: float32)


def sample(solver, model, schedule: Schedule, grid, *, n: int | None = None, x_init=None, seed: int = 0,
           backend: str = "numpy", prediction: str | None = None, history=None, sample_offset: int = 0,
           progress: bool = False, dtype=AUTO, model_kwargs=None, callback=None, save_every: int | None = None,
           final: str = "solver", **params):
    """Sample with ``solver`` (a name or :class:`Solver`) along ``grid`` (decreasing times).

    ``model`` is a target (exact model) or a callable ``(x, t, **model_kwargs) -> prediction`` whose type is given
    by ``prediction`` (``eps``, ``data``, ``v``, ``score``, ``flow``).  Without ``x_init``, ``n`` samples start
    from N(0, sigma(t_0)^2 I).  Noise is keyed by (seed, sample_offset + i, step, draw), so a sample does not
    depend on the batch it runs in.  ``history`` (newest first) starts a multistep solver from exact history
    instead of its lower-order warm-up: the first ``M = solver.history`` grid nodes are then the history nodes
    (``history[m-1]`` is the model output at ``grid[M - m]``) and ``x_init`` is the state at ``grid[M]``.
    ``dtype`` is the working precision: float64 or float32; None keeps x_init's; the default ``"auto"`` is float64
    for NumPy inputs and x_init's dtype for a torch tensor (float16 / bfloat16: float32).
    ``final`` is the end-point policy of a grid that ends at sigma = 0 (``time_grid(..., to_zero=True)``):
    ``"solver"`` (default) lets the solver take that step itself (a deterministic solver fits its state and the
    model outputs it holds in u = (sigma/alpha)^2, error O(u^{p+1}); a stochastic one denoises), ``"denoise"`` takes the
    one-call denoising step x_0 = alpha(0) D for every solver, ``"none"`` stops at the last positive sigma
    (docs/algorithms/exponential_integrators.md §3.8).
    ``backend``: ``numpy`` (reference), ``cpu`` (Numba, parallel; a target runs fused in one compiled loop),
    ``cuda``, or an engine instance.  Extra keyword arguments are solver parameters (e.g. ``eta=0.5``).

    A torch ``x_init`` (docs/interop/torch.md): the model receives tensors on x_init's device in x_init's dtype
    and may return tensors; the result is a tensor on that device in the working dtype.  ``model_kwargs`` (a
    mapping, e.g. ``dict(y=labels)``) is passed to every model call.  ``callback(record)`` runs after every
    program step with a :class:`~diffsolve.solution.StepRecord` (copies, never views).  ``save_every=k`` returns
    a :class:`~diffsolve.solution.Solution` (``ys``, ``ts``, ``steps``, ``nfe``, ``stats``): the initial state,
    every k-th step and the last one.  With a callback or ``save_every`` a fusable target runs the Stepper loop.

    With a model callable (or a target no backend fuses) this runs the :class:`~diffsolve.stepper.Stepper` loop,
    one model call per stage.
    """
    check_recording(callback, save_every)
    history = [] if history is None else list(history)
    torch = torch_module(x_init) if x_init is not None else None
    if isinstance(dtype, str) and dtype == AUTO:
        dtype = None if torch is not None else np.float64
    dtype = _working_dtype(dtype)
    run = prepare_run(solver, schedule, grid, seed=seed, sample_offset=sample_offset, history=len(history),
                      final=final, **params)
    adapter = ModelAdapter(model, schedule, run.prediction, prediction, model_kwargs)
    recording = callback is not None or save_every is not None
    record = (lambda kind: Recorder(run, kind, callback, save_every)) if recording else None
    if torch is not None and adapter.target is None:
        return _sample_torch(run, adapter, x_init, torch, history, dtype, n, backend, progress, record)
    if x_init is None:
        if n is None or isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise DiffsolveError(f"pass n (a positive number of samples) or x_init; got n={n!r}")
        if adapter.target is None:
            raise DiffsolveError("with a model callable, pass x_init (the initial states, shape (n, ...))")
        x = _prior(schedule, run, int(n), model.dim, dtype or np.float64)
    else:
        x = _host_state(x_init, "x_init", dtype)
        if n is not None and n != x.shape[0]:
            raise DiffsolveError(f"n={n} disagrees with x_init's batch size {x.shape[0]}; pass one of them")
        if adapter.target is not None and x.shape[1:] != (model.dim,):
            raise DiffsolveError(f"x_init has shape {x.shape}, but the target is {model.dim}-dimensional: expected (n, {model.dim})")
    kind = _HostKind() if torch is None else _HostTorchKind(torch, x_init.device)
    rec = record(kind) if record else None
    out = run_program(run, adapter, x, history, backend=backend, progress=progress, owned=x_init is None, record=rec)
    if rec is not None:
        return rec.result
    return out if torch is None else torch.from_numpy(out).to(x_init.device)


_TORCH_WORK = ("float16", "bfloat16", "float32", "float64")  # torch dtypes of x_init sample() accepts


def _torch_state(x, name, torch, dtype=None):
    """A torch ``x`` checked like :func:`_host_state` (on its device) and converted to the working ``dtype`` (a
    NumPy dtype; None: x's, half precision widened to float32); returns (tensor, working NumPy dtype)."""
    tname = str(x.dtype).replace("torch.", "")
    if tname not in _TORCH_WORK:
        raise DiffsolveError(f"{name} has torch dtype {x.dtype}; pass float32 or float64 (float16 / bfloat16 are "
                             "computed in float32), e.g. x.float()")
    if x.ndim < 2:
        raise DiffsolveError(f"{name} must have a batch axis first, shape (n, d) or (n, ...), got shape "
                             f"{tuple(x.shape)}; for one sample use x[None]")
    if x.numel() == 0:
        raise DiffsolveError(f"{name} is empty (shape {tuple(x.shape)}); pass at least one sample")
    if not bool(torch.isfinite(x).all()):
        raise DiffsolveError(f"{name} contains NaN or inf values; pass finite initial states")
    work = dtype if dtype is not None else np.dtype(np.float64 if tname == "float64" else np.float32)
    return x.detach().to(torch.float64 if work == np.float64 else torch.float32), work


def _sample_torch(run, adapter, x_init, torch, history, dtype, n, backend, progress, record):
    """``sample`` with a model callable and a torch ``x_init``: the Stepper loop on tensors (zero-copy on CPU and
    on the CUDA engine), the model called in x_init's dtype on x_init's device."""
    x, work = _torch_state(x_init, "x_init", torch, dtype)
    if n is not None and n != x.shape[0]:
        raise DiffsolveError(f"n={n} disagrees with x_init's batch size {x.shape[0]}; pass one of them")
    hist = [_torch_state(h, f"history[{m}]", torch, work)[0] if torch_module(h) is not None
            else _host_state(h, f"history[{m}]", work) for m, h in enumerate(history)]
    model_dtype, device = x_init.dtype, x_init.device
    fn, log_density = adapter.fn, adapter.log_density

    def as_model_input(u):
        return u if u.dtype == model_dtype else u.to(model_dtype)

    def call(u, t):
        out = fn(as_model_input(u), t)
        if torch_module(out) is not None and out.device != device:
            raise ModelOutputError(f"the model returned a tensor on {out.device} at t = {t!r}, but x_init is on "
                                   f"{device}; return outputs on x_init's device (e.g. out.to(x.device))")
        return out

    energy = None if log_density is None else (lambda u, t: log_density(as_model_input(u), t))
    engine = backends.engine(backend)
    rec = record(_TorchKind(torch)) if record else None
    with torch.no_grad(), Progress(run.program.steps, run.name, enabled=progress) as bar:
        st = Stepper.from_run(run, x, adapter.native, engine, hist)
        _drive(st, call, energy, bar, rec)
    if rec is not None:
        return rec.result
    return st.x  # a tensor on the stepper's own buffer (zero-copy): nothing else holds it


def _drive(st, fn, log_density, bar, rec):
    """:meth:`Stepper.run` with a :class:`~diffsolve.solution.Recorder` told about every completed step."""
    if rec is None:
        st.run(fn, progress=bar, log_density=log_density)
        return
    rec.start(st)
    while not st.done:
        before = st.step_index
        energy = log_density(st.x_model, st.t_model) if st.needs_energy and log_density else None
        out = fn(st.x_model, st.t_model)
        st.step(out, energy)
        if st.step_index != before:
            bar.update(st.step_index - before)
            rec.after(st, before, out)
    rec.result = rec.solution(st) if rec.every is not None else st.x if rec.kind.torch else rec.kind.final(st)


class _HostKind:
    """Copies for a run on NumPy host states (the result and records are NumPy arrays)."""

    torch = False

    def state(self, st):
        return np.array(st.host_x(), copy=True)

    def copy(self, x):
        return x.copy()

    def output(self, out):
        return np.array(out, copy=True)

    def stack(self, ys):
        return np.stack(ys)

    def final(self, st):
        return st.host_x()


class _HostTorchKind(_HostKind):
    """A target run from a torch ``x_init``: computed on NumPy host states, handed out as tensors on its device."""

    def __init__(self, torch, device):
        self.t, self.device = torch, device

    def _tensor(self, arr):
        return self.t.from_numpy(arr).to(self.device)

    def state(self, st):
        return self._tensor(super().state(st))

    def copy(self, x):
        return x.clone()

    def output(self, out):
        return self._tensor(super().output(out))

    def stack(self, ys):
        return self.t.stack(ys)

    def final(self, st):
        return self._tensor(st.host_x())


class _TorchKind:
    """Copies for the Stepper loop on tensors (CPU or CUDA): ``clone`` of the stepper's views."""

    torch = True

    def __init__(self, torch):
        self.t = torch

    def state(self, st):
        return st.x.clone()

    def copy(self, x):
        return x.clone()

    def output(self, out):
        if torch_module(out) is not None:
            return out.detach().clone()
        return np.array(out, copy=True)

    def stack(self, ys):
        return self.t.stack(ys)


def run_program(run, model: ModelAdapter, x: np.ndarray, history=(), *, backend="numpy", progress=False,
                owned=False, record=None):
    """Run a validated :class:`~diffsolve.stepper.Run` from the host state ``x``: fused when the backend fuses the
    model's target and the program (and nothing is recorded), else the Stepper loop.  Returns a new array shaped
    like ``x`` (``owned``: ``x`` itself may be used, nobody else holds it).  ``record``: a
    :class:`~diffsolve.solution.Recorder` (its ``result`` is set when done)."""
    history = [_host_state(h, f"history[{m}]", x.dtype) for m, h in enumerate(history)]
    for m, h in enumerate(history):
        if h.shape != x.shape:
            raise DiffsolveError(f"history[{m}] has shape {h.shape}, expected x_init's {x.shape}")
    engine = backends.engine(backend)
    with Progress(run.program.steps, run.name, enabled=progress) as bar:
        if record is None and model.target is not None and engine.fuses(model.target, run.program):
            flat = (x.shape[0], -1)
            X = x.reshape(flat) if owned and x.flags.c_contiguous else np.array(x.reshape(flat), copy=True)
            keys = engine.keys(run.seed, run.sample_index(x.shape[0]))
            engine.fused(run.program, model.target, run.schedule, run.prediction, X,
                         [h.reshape(flat) for h in history], keys, run.history)
            bar.update(run.program.steps)
            return X.reshape(x.shape)
        st = Stepper.from_run(run, x, model.native, engine, history)
        _drive(st, model.fn, model.log_density, bar, record)
        return st.host_x()  # the stepper's own buffer (a copy on CUDA): nothing else holds it
