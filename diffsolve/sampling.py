"""``sample(...)``: run any registered solver on a schedule and grid, with a target or a user model."""

from __future__ import annotations

import numpy as np

from . import backends
from .errors import DiffsolveError
from .grids import validate_grid
from .models import ModelAdapter
from .noise import standard_normal
from .progress import Progress
from .schedules import Schedule
from .solvers import get_solver
from .targets import Target

__all__ = ["sample", "prior_sample"]


def prior_sample(schedule: Schedule, t: float, n: int, dim: int, seed: int = 0, sample_offset: int = 0) -> np.ndarray:
    """x_T ~ N(0, sigma(T)^2 I) from the keyed Philox stream (step 0, draw 0): the usual start of sampling."""
    idx = sample_offset + np.arange(n, dtype=np.int64)
    return float(schedule.sigma(t)) * standard_normal(seed, idx, 0, 0, dim)


def _check_state(x, name="x_init", dtype=np.float64):
    if not isinstance(x, np.ndarray):
        if hasattr(x, "__array__") or isinstance(x, (list, tuple)):
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
    ``backend``: ``numpy`` (reference), ``cpu`` (Numba, parallel; a target runs fused in one compiled loop)
    or ``cuda``.  Extra keyword arguments are solver parameters (e.g. ``eta=0.5``).
    """
    solver = get_solver(solver, **params)
    if not isinstance(schedule, Schedule):
        raise DiffsolveError(f"schedule must be a diffsolve Schedule, got {type(schedule).__name__}; use ds.get_schedule(...)")
    grid = validate_grid(schedule, grid)
    adapter = ModelAdapter(model, schedule, solver.prediction, prediction)
    if x_init is None:
        if n is None or isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise DiffsolveError(f"pass n (a positive number of samples) or x_init; got n={n!r}")
        if not isinstance(model, Target):
            raise DiffsolveError("with a model callable, pass x_init (the initial states, shape (n, ...))")
        x = prior_sample(schedule, grid[0], int(n), model.dim, seed, sample_offset).astype(dtype or np.float64)
    else:
        x = _check_state(x_init, dtype=dtype)
        if n is not None and n != x.shape[0]:
            raise DiffsolveError(f"n={n} disagrees with x_init's batch size {x.shape[0]}; pass one of them")
        if isinstance(model, Target) and x.shape[1:] != (model.dim,):
            raise DiffsolveError(f"x_init has shape {x.shape}, but the target is {model.dim}-dimensional: expected (n, {model.dim})")
    if isinstance(sample_offset, bool) or not isinstance(sample_offset, (int, np.integer)) or sample_offset < 0:
        raise DiffsolveError(f"sample_offset must be a non-negative integer, got {sample_offset!r}")
    history = [] if history is None else [_check_state(h, "history", x.dtype) for h in history]
    if len(history) > solver.history:
        raise DiffsolveError(f"solver {solver.name!r} keeps {solver.history} history values, got {len(history)}")
    if history and len(history) != solver.history:
        raise DiffsolveError(f"pass all {solver.history} history values (newest first) or none, got {len(history)}")
    table = solver.table(schedule, grid, start=len(history), exact_history=bool(history))
    impl = backends.resolve(backend)
    sample_index = sample_offset + np.arange(x.shape[0], dtype=np.int64)
    with Progress(table.steps, f"{solver.name}", enabled=progress) as bar:
        return impl.run(table, adapter, x, seed=seed, sample_index=sample_index, history=history,
                        step_offset=len(history), progress=bar)
