"""``Stepper``: the one driver.  Any registered solver's program, advanced one model call at a time.

    st = Stepper("ddim", schedule, grid, x_init=x, prediction="eps", backend="cpu", seed=0)
    while not st.done:
        st.step(model(st.x_model, st.t_model))      # e.g. a torch.nn.Module returning eps
    x0 = st.x

The program's segments run in order; each segment kind has a *driver* (:data:`DRIVERS`): a generator that yields
the model calls it needs (:class:`Call`) and receives the model's outputs.  The driver of a coefficient table
converts every prediction into the solver's (exactly, :mod:`diffsolve.predictions`), stores it as the current stage
output and forms the next stage input (or the step output with the segment's corrections, shifting the history)
with the engine of the chosen backend (:mod:`diffsolve.backends`); the Langevin segments
(:mod:`diffsolve.langevin`) register their own.  Noise is keyed by (seed, sample_offset + i, step, draw).
:func:`diffsolve.sample` with a model callable runs this same loop, so a Stepper loop reproduces ``sample(...)``
with the same model bit for bit.

Arrays: NumPy arrays, torch tensors (CPU tensors shared zero-copy through ``.numpy()``; CUDA tensors through
``__cuda_array_interface__`` on the ``cuda`` backend) or numba device arrays.  ``x_model`` and ``x`` come back in
the kind of ``x_init`` and are views of the stepper's buffers: valid until the next ``step``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from . import backends
from .errors import DiffsolveError, DiffsolveTypeError, ModelOutputError
from .grids import validate_grid
from .kernels import plan
from .models import check_output_type
from .noise.normals import split_seed
from .predictions import check_prediction, conversion, conversions
from .program import Program, Segment
from .schedules import Schedule
from .solvers import Solver, get_solver
from .solvers.registry import build_program, trim_final

__all__ = ["Call", "DRIVERS", "Run", "RunState", "Stepper", "prepare_run"]


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
        if self.sample_offset + n > MAX_SAMPLES:
            raise DiffsolveError(f"sample_offset + n must be at most 2**32 (the noise keys of one seed), got "
                                 f"sample_offset={self.sample_offset} with n={n}; use another seed for more samples")
        return self.sample_offset + np.arange(n, dtype=np.int64)


MAX_SAMPLES = 2**32  # global sample indices of one seed (the noise counter's sample word)


def _check_keys(seed, sample_offset):
    if isinstance(sample_offset, bool) or not isinstance(sample_offset, (int, np.integer)) or sample_offset < 0:
        cls = DiffsolveTypeError if not isinstance(sample_offset, (int, np.integer)) else DiffsolveError
        raise cls(f"sample_offset must be a non-negative integer (the global index of the first sample), "
                  f"got {sample_offset!r}; pass e.g. sample_offset=0")
    if sample_offset >= MAX_SAMPLES:
        raise DiffsolveError(f"sample_offset must be below 2**32 (the noise keys of one seed), got {int(sample_offset)}; "
                             "use another seed for more samples")
    split_seed(seed)  # the noise stream's own check of the seed


def prepare_run(solver, schedule, grid, *, seed=0, sample_offset=0, history=0, final="solver", **params) -> Run:
    """Validate a run's arguments once, before anything uses them, and build its program (``final``: the
    end-point policy of :func:`~diffsolve.solvers.registry.build_program`)."""
    solver = get_solver(solver, **params)
    if not isinstance(schedule, Schedule):
        raise DiffsolveError(f"schedule must be a diffsolve Schedule, got {type(schedule).__name__}; "
                             "use ds.get_schedule(...)")
    grid = trim_final(schedule, validate_grid(schedule, grid), final, history)
    _check_keys(seed, sample_offset)
    if history and history != solver.history:
        raise DiffsolveError(f"solver {solver.name!r} keeps {solver.history} history values (newest first); "
                             f"pass all of them or none, got {history}")
    program = build_program(solver, schedule, grid, start=history, exact_history=bool(history), final=final)
    return Run(solver.name, solver.prediction, schedule, program, int(seed), int(sample_offset), int(history), solver,
               grid)


class Call(NamedTuple):
    """A model evaluation a segment's driver asks for: input ``u`` (an engine array (n, D)) at time ``t``, for
    program step ``step`` (0-based), call ``stage`` of ``stages`` in that step.  ``energy``: the driver also needs
    log p_t(u) per sample (MALA with the exact energy)."""

    u: object
    t: float
    step: int
    stage: int
    stages: int
    energy: bool = False


class RunState:
    """What segment drivers share: the engine, the state ``X`` and a stage buffer ``U`` (engine arrays (n, D)),
    the noise keys, the run (schedule, the prediction its rows combine) and the model's prediction type."""

    def __init__(self, engine, run, X, U, keys, dtype, flat, native, history):
        self.engine, self.run, self.X, self.U, self.keys = engine, run, X, U, keys
        self.dtype, self.flat, self.native = dtype, flat, native
        self.history = history  # initial history values (newest first): the first segment takes them
        self.offset = run.history  # noise steps are counted from the grid's first node
        self.cache = {}  # what a segment leaves for the next one (e.g. the score of the final state)
        self.stats = {}  # what segments report (e.g. MALA acceptance rates, one per segment)

    def conversion(self, t: float, to: str):
        """The conversion of the model's outputs at time ``t`` into prediction type ``to``."""
        return conversion(self.run.schedule, float(t), self.native, to)

    def noise_step(self, step: int) -> int:
        """The noise step key of program step ``step`` (0-based)."""
        return self.offset + step + 1


def check_finite(bad: int, call: Call, state: RunState):
    """Raise when a model returned non-finite values (``bad`` of them) at ``call``."""
    if bad:
        raise ModelOutputError(f"the model returned {bad} NaN/inf value(s) {where(call, state)}; check the model "
                               "(and its time conditioning) at this noise level; diffsolve never passes non-finite "
                               "outputs on (this stepper's state is now invalid: build a new one)")


class _Where:
    """The location of a model call in error messages, formatted only when a message is (every ``step`` passes one
    to its checks: eager f-strings with a float repr cost about a microsecond per step); ``prefix`` names what is
    located there."""

    __slots__ = ("t", "step", "prefix")

    def __init__(self, t: float, step: int, prefix: str = ""):
        self.t, self.step, self.prefix = t, step, prefix

    def of(self, what: str) -> "_Where":
        """``what`` at this location (e.g. "the model output at t = ...")."""
        return _Where(self.t, self.step, f"{what} ")

    def __str__(self):
        return f"{self.prefix}at t = {self.t!r} (step {self.step})"

    def __format__(self, spec):  # what f-strings call
        return format(str(self), spec)


def where(call: Call, state: RunState) -> _Where:
    return _Where(call.t, state.offset + call.step)


class _Table:
    """The running state of one table segment: its rows (host and engine side), slot stack, conversions, and per
    step the stage plan (:class:`_Stage`), resolved once so that a step does no indexing of its own."""

    def __init__(self, state, segment, first):
        table, eng = segment.table, state.engine
        self.rows = plan.segment_rows(segment, state.dtype, last_in_place=eng.last_in_place)
        self.bound = eng.bind(self.rows)
        self.steps, self.history = table.steps, table.history
        self.V = eng.zeros((self.rows.slots,) + state.flat, state.dtype)
        # rows that are u = x exactly (usually stage 0): the state itself is the model input, no pass needed
        S = table.stages
        r = np.arange(S + 1)
        lower = r[None, :, None] > np.arange(S)[None, None, :]  # B[m, r, s] is used for s < r only
        ident = ((table.A == 1.0) & ~np.any((table.B != 0) & lower, axis=2)
                 & ~np.any(table.E != 0, axis=2) & ~np.any(table.C != 0, axis=2))
        self.combine_first = [not bool(ident[m, 0]) for m in range(table.steps)]
        X, U = state.X, state.U
        convs = iter(conversions(state.run.schedule, table.tau, state.native, state.run.prediction))
        self.stages = []
        for m in range(table.steps):
            u, row = (U if self.combine_first[m] else X), []
            for s in range(S):
                r = s + 1
                convert_only = r < S and bool(ident[m, r])
                nxt = X if convert_only or r == S else U
                conv = eng.bind_conversion(next(convs), state.dtype)
                row.append(_Stage(Call(u, float(table.tau[m, s]), first + m, s, S), int(self.rows.fslot[m, s]),
                                  conv, r, convert_only, nxt))
                u = nxt
            self.stages.append(row)


class _Stage(NamedTuple):
    """One model call of a table step: the call, the slot its converted output goes to, the conversion, the row
    formed next (``r``: the next stage input, or the step output at r = stages) into ``out``, or (``convert_only``)
    none where that input is the state itself."""

    call: Call
    slot: int
    conv: object
    r: int
    convert_only: bool
    out: object


def drive_table(segment: Segment, state: RunState, first: int):
    """The driver of a table segment: one call per stage; the rows formed by the engine."""
    seg, eng, X, U = _Table(state, segment, first), state.engine, state.X, state.U
    state.cache.clear()  # a table changes the state: nothing a previous segment left about it stays valid
    for m, h in enumerate(state.history[: seg.history]):  # shapes checked by the Stepper; a table that reads
        h, _ = eng.to_engine(h, f"history[{m}]")              # fewer (a denoising step) takes the newest ones
        eng.copy_in(seg.V[seg.rows.hslot[0, m]], h.reshape(state.flat))
    state.history = []
    V, bound, keys = seg.V, seg.bound, state.keys
    for m in range(seg.steps):
        step = state.noise_step(first + m)
        if seg.combine_first[m]:
            eng.combine(U, X, V, bound, m, 0, keys, step)
        for call, slot, conv, r, convert_only, out in seg.stages[m]:
            vals = yield call
            if convert_only:
                bad = eng.convert(V, slot, vals, call.u, conv)
            else:
                bad = eng.advance(V, slot, vals, call.u, conv, out, X, bound, m, r, keys, step)
            if bad:
                check_finite(bad, call, state)


DRIVERS: dict[type, Callable] = {Segment: drive_table}  # segment kind -> its driver (Langevin kinds add theirs)


def _driver(segment):
    for cls in type(segment).__mro__:
        if cls in DRIVERS:
            return DRIVERS[cls]
    raise DiffsolveTypeError(f"no driver for program segments of type {type(segment).__name__}")


def _check_state(x, what):
    shape = tuple(x.shape)
    if len(shape) < 2 or shape[0] == 0 or 0 in shape:
        raise DiffsolveError(f"{what} must have a batch axis first, shape (n, ...) with n >= 1 and no empty axis, "
                             f"got {shape}; for one sample use x[None]")
    dtype = np.dtype(x.dtype)
    if dtype not in (np.float32, np.float64):
        raise DiffsolveError(f"{what} must be float32 or float64 (float16 / bfloat16 are computed in float32), got "
                             f"{dtype}; convert it first (e.g. x.astype(np.float64))")
    host = x if isinstance(x, np.ndarray) else np.asarray(x.copy_to_host())  # CUDA: checked once, on the host
    if not np.isfinite(host).all():
        raise DiffsolveError(f"{what} contains NaN or inf values; pass finite states")
    return shape, dtype


class Stepper:
    """One solver run, advanced one model evaluation at a time (see the module docstring).

    Parameters mirror :func:`diffsolve.sample`: ``solver`` (name or Solver), ``schedule``, ``grid`` (decreasing
    times), ``x_init`` (n, ...) the state at ``grid[0]`` (or at ``grid[M]`` with ``history``), ``prediction`` the
    type the model returns (``eps``, ``data``, ``v``, ``score``, ``flow``), ``backend`` (``cpu``, ``cuda``,
    ``numpy`` or an engine instance), ``seed`` and ``sample_offset`` (noise keys), ``history`` (newest first) for
    an exact multistep start, ``final`` the end-point policy of a grid ending at sigma = 0 (``solver``, ``denoise``
    or ``none``; :func:`diffsolve.sample`); extra keywords are solver parameters.

    Attributes: ``done``; ``x_model`` / ``t_model`` the next model call's input and time; ``needs_energy``
    whether that call also needs log p_t (pass it to :meth:`step`); ``x`` the current state; ``step_index`` /
    ``stage`` the position; ``steps`` the number of program steps; ``nfe`` the model calls so far.
    """

    def __init__(self, solver, schedule, grid, *, x_init, prediction="eps", backend="cpu", seed=0,
                 sample_offset=0, history=None, final="solver", **params):
        history = [] if history is None else list(history)
        run = prepare_run(solver, schedule, grid, seed=seed, sample_offset=sample_offset, history=len(history),
                          final=final, **params)
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
        for m, h in enumerate(history):
            if tuple(h.shape) != self.shape:
                raise DiffsolveError(f"history[{m}] has shape {tuple(h.shape)}, expected x_init's {self.shape}")
        self.solver, self._run = run.solver, run
        X = eng.empty(flat, dtype)
        eng.copy_in(X, x.reshape(flat))
        self._state = RunState(eng, run, X, eng.empty(flat, dtype), eng.keys(run.seed, run.sample_index(n)), dtype,
                               flat, prediction, history)
        self.steps = run.program.steps
        self.nfe = 0
        self._views = {}
        self._calls = self._program_calls()
        self._call = next(self._calls, None)

    def _program_calls(self):
        first = 0
        for segment in self._run.program.segments:
            yield from _driver(segment)(segment, self._state, first)
            first += segment.steps

    def _view(self, arr):
        view = self._views.get(id(arr))
        if view is None or view[0] is not arr:
            view = self._views[id(arr)] = (arr, self._kind.wrap(arr.reshape(self.shape)))
        return view[1]

    @property
    def done(self) -> bool:
        """True once every step has been taken."""
        return self._call is None

    @property
    def step_index(self) -> int:
        """The program step the next model call belongs to (``steps`` once done)."""
        return self.steps if self._call is None else self._call.step

    @property
    def stage(self) -> int:
        """The next model call's index within its step."""
        return 0 if self._call is None else self._call.stage

    @property
    def stages(self) -> int:
        """Model calls in the current step."""
        return 0 if self._call is None else self._call.stages

    @property
    def stats(self) -> dict:
        """What the program's segments report so far, e.g. ``{"acceptance": [rate per MALA segment]}``."""
        return self._state.stats

    @property
    def needs_energy(self) -> bool:
        """Whether the next call also needs the log-density log p_t(x_model) (``step(out, log_density=...)``)."""
        return self._call is not None and self._call.energy

    @property
    def x_model(self):
        """The next model call's input (a view of the stepper's buffers: valid until the next ``step``)."""
        self._check_not_done()
        return self._view(self._call.u)

    @property
    def t_model(self) -> float:
        """The next model call's time."""
        self._check_not_done()
        return self._call.t

    @property
    def x(self):
        """The current state (after the last completed step), in x_init's kind (a view: valid until ``step``)."""
        return self._view(self._state.X)

    def host_x(self) -> np.ndarray:
        """The current state as a NumPy array shaped like ``x_init`` (copied from the device on CUDA; on the host
        engines the stepper's buffer itself: valid until the next ``step``)."""
        return self._engine.to_host(self._state.X).reshape(self.shape)

    def _check_not_done(self):
        if self.done:
            raise DiffsolveError(f"the stepper is done ({self.steps} steps taken); read .x for the result")

    def step(self, model_output, log_density=None) -> None:
        """Consume the model's output at (x_model, t_model) and advance to the next model call.  Where
        ``needs_energy``, also pass ``log_density``: log p_t(x_model) per sample, shape (n,)."""
        call, eng = self._call, self._engine
        if call is None:
            self._check_not_done()
        at = where(call, self._state)
        check_output_type(model_output, at)
        vals = eng.array(model_output, at.of("the model output"))
        if tuple(vals.shape) != self.shape:
            raise ModelOutputError(f"the model returned shape {tuple(vals.shape)} {at} for an input of shape "
                                   f"{self.shape}; it must return an array of the same shape as x")
        if vals.dtype.kind != "f":
            raise ModelOutputError(f"the model returned dtype {vals.dtype} {at}; return floating-point values "
                                   "(float32 or float64)")
        if len(self.shape) > 2:
            vals = vals.reshape(self._state.flat)
        if call.energy:
            vals = (vals, self._log_density(log_density, at))
        elif log_density is not None:
            raise DiffsolveError(f"log_density was passed {at}, but this call needs none (see needs_energy)")
        self.nfe += 1
        try:
            self._call = self._calls.send(vals)
        except StopIteration:
            self._call = None

    def _log_density(self, value, at):
        if value is None:
            raise DiffsolveError(f"this call {at} needs log_density (log p_t(x_model) per sample, shape "
                                 f"({self.shape[0]},)): the program's MALA uses energy='exact'; pass it, or use "
                                 "energy='trapezoid' or 'simpson' (score only)")
        arr, _ = self._engine.to_engine(value, f"log_density {at}")
        if tuple(arr.shape) != (self.shape[0],):
            raise ModelOutputError(f"log_density {at} has shape {tuple(arr.shape)}; expected ({self.shape[0]},)")
        return arr

    def run(self, model, progress=None, log_density=None):
        """Drive the remaining steps with ``model(x_model, t_model)`` (and ``log_density(x_model, t_model)``
        where a call needs it); returns ``x``.  ``progress`` (optional) has ``update(k)``, called once per
        completed step."""
        while not self.done:
            before = self.step_index
            energy = log_density(self.x_model, self.t_model) if self.needs_energy and log_density else None
            self.step(model(self.x_model, self.t_model), energy)
            if progress is not None and self.step_index != before:
                progress.update(self.step_index - before)
        return self.x

    def __repr__(self):
        return (f"Stepper({self._run.name!r}, step {self.step_index}/{self.steps}, stage {self.stage}, "
                f"shape {self.shape})")
