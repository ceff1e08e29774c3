"""``sample(...)``: run any registered solver on a schedule and grid, with a target or a user model."""

from __future__ import annotations

import numpy as np

from . import backends
from .errors import DiffsolveError, DiffsolveTypeError
from .backends.arrays import torch_module, widen_half
from .models import ModelAdapter
from .noise import standard_normal
from .progress import Progress
from .schedules import Schedule
from .stepper import Stepper, prepare_run

__all__ = ["sample", "prior_sample", "run_program"]


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
                             "this machine can allocate; sample in batches (sample_offset keeps them one stream)") from None


def _working_dtype(dtype):
    """``dtype`` (sample()'s parameter) as float32 / float64, or None (keep x_init's)."""
    if dtype is None:
        return None
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise DiffsolveTypeError(f"dtype must be np.float32, np.float64 or None (keep x_init's), got {dtype!r}") from None
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


def sample(solver, model, schedule: Schedule, grid, *, n: int | None = None, x_init=None, seed: int = 0,
           backend: str = "numpy", prediction: str | None = None, history=None, sample_offset: int = 0,
           progress: bool = False, dtype=np.float64, **params) -> np.ndarray:
    """Sample with ``solver`` (a name or :class:`Solver`) along ``grid`` (decreasing times).

    ``model`` is a target (exact model) or a callable ``(x, t) -> prediction`` whose type is given by
    ``prediction`` (``eps``, ``data``, ``v``, ``score``, ``flow``).  Without ``x_init``, ``n`` samples start
    from N(0, sigma(t_0)^2 I).  Noise is keyed by (seed, sample_offset + i, step, draw), so a sample does not
    depend on the batch it runs in.  ``history`` (newest first) starts a multistep solver from exact history
    instead of its lower-order warm-up: the first ``M = solver.history`` grid nodes are then the history nodes
    (``history[m-1]`` is the model output at ``grid[M - m]``) and ``x_init`` is the state at ``grid[M]``.
    ``dtype`` is the working precision (float64 by default; float32 for GPU runs; None keeps x_init's).
    ``backend``: ``numpy`` (reference), ``cpu`` (Numba, parallel; a target runs fused in one compiled loop),
    ``cuda``, or an engine instance.  Extra keyword arguments are solver parameters (e.g. ``eta=0.5``).

    With a model callable (or a target no backend fuses) this runs the :class:`~diffsolve.stepper.Stepper` loop,
    one model call per stage.
    """
    history = [] if history is None else list(history)
    dtype = _working_dtype(dtype)
    run = prepare_run(solver, schedule, grid, seed=seed, sample_offset=sample_offset, history=len(history), **params)
    adapter = ModelAdapter(model, schedule, run.prediction, prediction)
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
    return run_program(run, adapter, x, history, backend=backend, progress=progress, owned=x_init is None)


def run_program(run, model: ModelAdapter, x: np.ndarray, history=(), *, backend="numpy", progress=False,
                owned=False):
    """Run a validated :class:`~diffsolve.stepper.Run` from the host state ``x``: fused when the backend fuses the
    model's target and the program, else the Stepper loop.  Returns a new array shaped like ``x`` (``owned``: ``x``
    itself may be used, nobody else holds it)."""
    history = [_host_state(h, f"history[{m}]", x.dtype) for m, h in enumerate(history)]
    for m, h in enumerate(history):
        if h.shape != x.shape:
            raise DiffsolveError(f"history[{m}] has shape {h.shape}, expected x_init's {x.shape}")
    engine = backends.engine(backend)
    with Progress(run.program.steps, run.name, enabled=progress) as bar:
        if model.target is not None and engine.fuses(model.target, run.program):
            flat = (x.shape[0], -1)
            X = x.reshape(flat) if owned and x.flags.c_contiguous else np.array(x.reshape(flat), copy=True)
            keys = engine.keys(run.seed, run.sample_index(x.shape[0]))
            engine.fused(run.program, model.target, run.schedule, run.prediction, X,
                         [h.reshape(flat) for h in history], keys, run.history)
            bar.update(run.program.steps)
            return X.reshape(x.shape)
        st = Stepper.from_run(run, x, model.native, engine, history)
        st.run(model.fn, progress=bar, log_density=model.log_density)
        return st.host_x()  # the stepper's own buffer (a copy on CUDA): nothing else holds it
