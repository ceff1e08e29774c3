"""``Stepper``: the one driver.  Any registered solver's program, advanced one model call at a time.

    st = Stepper("ddim", schedule, grid, x_init=x, prediction="eps", backend="cpu", seed=0)
    while not st.done:
        st.step(model(st.x_model, st.t_model))      # e.g. a torch.nn.Module returning eps
    x0 = st.x

Each ``step`` converts the model's prediction into the solver's (exactly, :mod:`diffsolve.predictions`), stores
it as the current stage output and forms the next stage input (or the step output with the segment's
corrections, shifting the history) with the engine of the chosen backend (:mod:`diffsolve.backends`).  Noise is
keyed by (seed, sample_offset + i, step, draw).  :func:`diffsolve.sample` with a model callable runs this same
loop, so a Stepper loop reproduces ``sample(...)`` with the same model bit for bit.

Arrays: NumPy arrays, torch tensors (CPU tensors shared zero-copy through ``.numpy()``; CUDA tensors through
``__cuda_array_interface__`` on the ``cuda`` backend) or numba device arrays.  ``x_model`` and ``x`` come back in
the kind of ``x_init`` and are views of the stepper's buffers: valid until the next ``step``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import backends
from .errors import DiffsolveError, ModelOutputError
from .grids import validate_grid
from .kernels import plan
from .models import check_output_type
from .noise.normals import split_seed
from .predictions import check_prediction, conversion
from .program import Program
from .schedules import Schedule
from .solvers import Solver, get_solver

__all__ = ["Run", "Stepper", "prepare_run"]


class Run(NamedTuple):
    """A validated run: its program, the prediction type the program's rows combine, the schedule, the noise keys
    and (for a registered solver) the solver with its parameters applied."""

    name: str
    prediction: str
    schedule: Schedule
    program: Program
    seed: int
    sample_offset: int
    history: int  # number of exact history values the run starts from (0: the solver's warm-up)
    solver: Solver | None = None
    grid: np.ndarray | None = None  # the validated time grid (a solver's run)

    @staticmethod
    def for_program(program, schedule, *, prediction, name="program", seed=0, sample_offset=0, history=0) -> "Run":
        """A run of any program (e.g. a hand-built table) whose rows combine ``prediction`` outputs."""
        _check_keys(seed, sample_offset)
        if not isinstance(schedule, Schedule):
            raise DiffsolveError(f"schedule must be a diffsolve Schedule, got {type(schedule).__name__}; "
                                 "use ds.get_schedule(...)")
        return Run(name, check_prediction(prediction), schedule, Program.of(program), int(seed), int(sample_offset),
                   int(history))

    def sample_index(self, n: int) -> np.ndarray:
        """Global sample indices (noise keys) of a batch of ``n`` samples."""
        return self.sample_offset + np.arange(n, dtype=np.int64)


def _check_keys(seed, sample_offset):
    if isinstance(sample_offset, bool) or not isinstance(sample_offset, (int, np.integer)) or sample_offset < 0:
        raise DiffsolveError(f"sample_offset must be a non-negative integer (the global index of the first sample), "
                             f"got {sample_offset!r}; pass e.g. sample_offset=0")
    split_seed(seed)  # the noise stream's own check of the seed


def prepare_run(solver, schedule, grid, *, seed=0, sample_offset=0, history=0, **params) -> Run:
    """Validate a run's arguments once, before anything uses them, and build its program."""
    solver = get_solver(solver, **params)
    if not isinstance(schedule, Schedule):
        raise DiffsolveError(f"schedule must be a diffsolve Schedule, got {type(schedule).__name__}; "
                             "use ds.get_schedule(...)")
    grid = validate_grid(schedule, grid)
    _check_keys(seed, sample_offset)
    if history and history != solver.history:
        raise DiffsolveError(f"solver {solver.name!r} keeps {solver.history} history values (newest first); "
                             f"pass all of them or none, got {history}")
    program = solver.program(schedule, grid, start=history, exact_history=bool(history))
    return Run(solver.name, solver.prediction, schedule, program, int(seed), int(sample_offset), int(history), solver,
               grid)


class _Segment:
    """The running state of one program segment: its rows (host and engine side), slot stack, conversions."""

    def __init__(self, engine, segment, schedule, prediction, solver_prediction, dtype, flat, first_step):
        table = segment.table
        self.rows = plan.segment_rows(segment, dtype)
        self.bound = engine.bind(self.rows)
        self.tau, self.steps, self.stages = table.tau, table.steps, table.stages
        self.first_step = first_step  # program step index of this segment's first step
        self.V = engine.zeros((max(table.stages + table.history, 1),) + flat, dtype)
        self.convs = [[conversion(schedule, float(table.tau[m, s]), prediction, solver_prediction)
                       for s in range(table.stages)] for m in range(table.steps)]
        # rows that are u = x exactly (usually stage 0): the state itself is the model input, no pass needed
        S = table.stages
        r = np.arange(S + 1)
        lower = r[None, :, None] > np.arange(S)[None, None, :]  # B[m, r, s] is used for s < r only
        self.ident = ((table.A == 1.0) & ~np.any((table.B != 0) & lower, axis=2)
                      & ~np.any(table.E != 0, axis=2) & ~np.any(table.C != 0, axis=2))


def _check_state(x, what):
    shape = tuple(x.shape)
    if len(shape) < 2 or shape[0] == 0 or 0 in shape:
        raise DiffsolveError(f"{what} must have a batch axis first, shape (n, ...) with n >= 1 and no empty axis, "
                             f"got {shape}; for one sample use x[None]")
    dtype = np.dtype(x.dtype)
    if dtype not in (np.float32, np.float64):
        raise DiffsolveError(f"{what} must be float32 or float64, got {dtype}; convert it first "
                             "(e.g. x.astype(np.float64))")
    if isinstance(x, np.ndarray) and not np.isfinite(x).all():
        raise DiffsolveError(f"{what} contains NaN or inf values; pass finite states")
    return shape, dtype


class Stepper:
    """One solver run, advanced one model evaluation at a time (see the module docstring).

    Parameters mirror :func:`diffsolve.sample`: ``solver`` (name or Solver), ``schedule``, ``grid`` (decreasing
    times), ``x_init`` (n, ...) the state at ``grid[0]`` (or at ``grid[M]`` with ``history``), ``prediction`` the
    type the model returns (``eps``, ``data``, ``v``, ``score``, ``flow``), ``backend`` (``cpu``, ``cuda``,
    ``numpy`` or an engine instance), ``seed`` and ``sample_offset`` (noise keys), ``history`` (newest first) for
    an exact multistep start; extra keywords are solver parameters.

    Attributes: ``done``; ``x_model`` / ``t_model`` the next model call's input and time; ``x`` the current
    state; ``step_index`` / ``stage`` the position; ``steps`` the number of solver steps; ``nfe`` the model
    calls so far.
    """

    def __init__(self, solver, schedule, grid, *, x_init, prediction="eps", backend="cpu", seed=0,
                 sample_offset=0, history=None, **params):
        history = [] if history is None else list(history)
        run = prepare_run(solver, schedule, grid, seed=seed, sample_offset=sample_offset, history=len(history),
                          **params)
        self._start(run, x_init, check_prediction(prediction), backends.engine(backend), history)

    @classmethod
    def from_run(cls, run: Run, x_init, prediction: str, engine, history=()) -> "Stepper":
        """A Stepper for an already validated :class:`Run` (what :func:`diffsolve.sample` uses)."""
        self = cls.__new__(cls)
        self._start(run, x_init, prediction, engine, list(history))
        return self

    def _start(self, run, x_init, prediction, engine, history):
        eng = self._engine = engine
        x, self._kind = eng.to_engine(x_init, "x_init")
        self.shape, dtype = _check_state(x, "x_init")
        n = self.shape[0]
        flat = (n, int(np.prod(self.shape[1:])))
        self._flat, self._dtype, self._prediction = flat, dtype, prediction
        self.solver, self._run = run.solver, run
        self._X = eng.empty(flat, dtype)
        eng.copy_in(self._X, x.reshape(flat))
        self._U = eng.empty(flat, dtype)
        self._keys = eng.keys(run.seed, run.sample_index(n))
        self._offset = run.history  # noise steps are counted from the grid's first node
        self.steps = run.program.steps
        self.step_index, self.stage, self.nfe = 0, 0, 0
        self._views = {id(a): self._kind.wrap(a.reshape(self.shape)) for a in (self._U, self._X)}
        self._segment_index = -1
        self._next_segment()
        S = self._seg.stages
        for m, h in enumerate(history):
            h, _ = eng.to_engine(h, f"history[{m}]")
            if tuple(h.shape) != self.shape:
                raise DiffsolveError(f"history[{m}] has shape {tuple(h.shape)}, expected x_init's {self.shape}")
            eng.copy_in(self._seg.V[S + m], h.reshape(flat))
        self._u = self._stage_input(0, 0) if self.steps else self._U

    def _next_segment(self):
        self._segment_index += 1
        run = self._run
        first = 0 if self._segment_index == 0 else self._seg.first_step + self._seg.steps
        self._seg = _Segment(self._engine, run.program.segments[self._segment_index], run.schedule,
                             self._prediction, run.prediction, self._dtype, self._flat, first)

    def _form_row(self, out, m, r):
        seg = self._seg
        self._engine.combine(out, self._X, seg.V, seg.bound, m, r, self._keys,
                             self._offset + seg.first_step + m + 1)

    def _stage_input(self, m, s):
        """The engine array holding stage s's input of segment step m (forming it unless the row is u = x)."""
        if self._seg.ident[m, s]:
            return self._X
        self._form_row(self._U, m, s)
        return self._U

    @property
    def done(self) -> bool:
        """True once every step has been taken."""
        return self.step_index >= self.steps

    @property
    def stages(self) -> int:
        """Model calls per step of the current segment."""
        return self._seg.stages

    @property
    def x_model(self):
        """The next model call's input (a view of the stepper's buffers: valid until the next ``step``)."""
        self._check_not_done()
        return self._views[id(self._u)]

    @property
    def t_model(self) -> float:
        """The next model call's time."""
        self._check_not_done()
        return float(self._seg.tau[self.step_index - self._seg.first_step, self.stage])

    @property
    def x(self):
        """The current state (after the last completed step), in x_init's kind (a view: valid until ``step``)."""
        return self._views[id(self._X)]

    def host_x(self) -> np.ndarray:
        """The current state as a NumPy array shaped like ``x_init`` (copied from the device on CUDA; on the host
        engines the stepper's buffer itself: valid until the next ``step``)."""
        return self._engine.to_host(self._X).reshape(self.shape)

    def _check_not_done(self):
        if self.done:
            raise DiffsolveError(f"the stepper is done ({self.steps} steps taken); read .x for the result")

    def step(self, model_output) -> None:
        """Consume the model's output at (x_model, t_model) and advance by one stage (one model evaluation)."""
        self._check_not_done()
        seg, eng = self._seg, self._engine
        m, s = self.step_index - seg.first_step, self.stage
        where = f"at t = {float(seg.tau[m, s])!r} (step {self._offset + self.step_index})"
        check_output_type(model_output, where)
        vals, _ = eng.to_engine(model_output, f"the model output {where}")
        if tuple(vals.shape) != self.shape:
            raise ModelOutputError(f"the model returned shape {tuple(vals.shape)} {where} for an input of shape "
                                   f"{self.shape}; it must return an array of the same shape as x")
        if not np.issubdtype(np.dtype(vals.dtype), np.floating):
            raise ModelOutputError(f"the model returned dtype {vals.dtype} {where}; return floating-point values "
                                   "(float32 or float64)")
        slot, conv = int(seg.rows.fslot[m, s]), seg.convs[m][s]
        vals = vals.reshape(self._flat)
        self.nfe += 1
        r = s + 1  # the row formed next: stage s + 1, or the step output (row S)
        step = self._offset + seg.first_step + m + 1
        if r < seg.stages and seg.ident[m, r]:
            bad = eng.convert(seg.V, slot, vals, self._u, conv)
            nxt = self._X
        else:
            nxt = self._U if r < seg.stages else self._X
            bad = eng.advance(seg.V, slot, vals, self._u, conv, nxt, self._X, seg.bound, m, r, self._keys, step)
        if bad:
            raise ModelOutputError(f"the model returned {bad} NaN/inf value(s) {where}; check the model (and its "
                                   "time conditioning) at this noise level; diffsolve never passes non-finite outputs "
                                   "on (this stepper's state is now invalid: build a new one)")
        if r < seg.stages:
            self.stage, self._u = r, nxt
            return
        self.step_index, self.stage = self.step_index + 1, 0
        if self.done:
            return
        if self.step_index == seg.first_step + seg.steps:
            self._next_segment()
        self._u = self._stage_input(self.step_index - self._seg.first_step, 0)

    def run(self, model, progress=None):
        """Drive the remaining steps with ``model(x_model, t_model)``; returns ``x``.  ``progress`` (optional)
        has ``update(k)``, called once per completed step."""
        while not self.done:
            before = self.step_index
            self.step(model(self.x_model, self.t_model))
            if progress is not None and self.step_index != before:
                progress.update(1)
        return self.x

    def __repr__(self):
        return (f"Stepper({self._run.name!r}, step {self.step_index}/{self.steps}, stage {self.stage}, "
                f"shape {self.shape})")
