"""Trajectories of ``sample(...)``: :class:`Solution` (``save_every=k``) and the records a ``callback`` receives.

Every state handed out here is a copy in the kind of ``x_init`` (NumPy array or torch tensor): nothing aliases the
stepper's buffers, so a saved or reported state never changes afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .errors import DiffsolveError, DiffsolveTypeError

__all__ = ["Solution", "StepRecord", "step_times"]


class StepRecord(NamedTuple):
    """What ``callback`` receives after each completed program step: ``step`` (completed steps, 1 .. steps), ``t``
    (the time of the state), ``x`` (the state, a copy), ``model_output`` (a copy of the model's output at the step's
    last call, as the model returned it) and ``nfe`` (model calls so far)."""

    step: int
    t: float
    x: object
    model_output: object
    nfe: int


@dataclass
class Solution:
    """A saved trajectory: ``ys[j]`` (a stacked array/tensor (len(ts), n, ...), each entry its own memory) is the
    state after ``steps[j]`` program steps, at time ``ts[j]``; ``steps[0] == 0`` is the initial state, the last
    entry the result.  ``nfe``: model calls; ``stats``: what the program reports (e.g. MALA ``acceptance``)."""

    ys: object
    ts: np.ndarray
    steps: np.ndarray
    nfe: int
    stats: dict = field(default_factory=dict)

    @property
    def x(self):
        """The final state (``ys[-1]``)."""
        return self.ys[-1]

    def __repr__(self):
        return (f"Solution({len(self.ts)} states of shape {tuple(self.ys.shape[1:])}, t {self.ts[0]:.4g} -> "
                f"{self.ts[-1]:.4g}, nfe={self.nfe})")


def step_times(run) -> np.ndarray:
    """The time of the state after each program step of ``run`` (index 0: the initial state): a table step ends at
    the next step's first stage time (the last step of the program at the grid's end), a Langevin iteration stays
    at its segment's score time."""
    from .langevin import LangevinSegment

    segs = run.program.segments

    def start(seg):
        if isinstance(seg, LangevinSegment):
            return float(seg.t_init if seg.init == "tweedie" and seg.t_init is not None else seg.t)
        return float(seg.table.tau[0, 0])

    times = [start(segs[0])]
    for k, seg in enumerate(segs):
        if isinstance(seg, LangevinSegment):
            times += [float(seg.t)] * seg.steps
            continue
        tau = seg.table.tau
        times += [float(tau[m + 1, 0]) for m in range(seg.steps - 1)]
        if k + 1 < len(segs):
            times.append(start(segs[k + 1]))
        else:
            times.append(float(run.grid[-1]) if run.grid is not None else float(tau[-1, -1]))
    return np.asarray(times, dtype=np.float64)


def check_recording(callback, save_every):
    """Refuse a ``callback`` that is not callable and a ``save_every`` that is not a positive integer."""
    if callback is not None and not callable(callback):
        raise DiffsolveTypeError(f"callback must be a callable taking one StepRecord (called after every step), got "
                                 f"{type(callback).__name__}; pass e.g. callback=lambda rec: print(rec.step, rec.t)")
    if save_every is not None:
        if isinstance(save_every, bool) or not isinstance(save_every, (int, np.integer)):
            raise DiffsolveTypeError(f"save_every must be a positive integer (save the state every k steps) or None, "
                                     f"got {save_every!r} ({type(save_every).__name__}); pass e.g. save_every=1")
        if save_every < 1:
            raise DiffsolveError(f"save_every must be a positive integer (save the state every k steps), got "
                                 f"{int(save_every)}; pass e.g. save_every=1")


class Recorder:
    """Feeds ``callback`` and fills a :class:`Solution` while a Stepper loop runs.  ``kind`` makes copies in the
    user's kind: ``kind.state(stepper)`` (a copy of the current state), ``kind.output(obj)`` (a copy of a model
    output), ``kind.stack(list of states)``."""

    def __init__(self, run, kind, callback=None, save_every=None):
        self.kind, self.callback = kind, callback
        self.times = step_times(run)
        self.every = save_every
        self.ys, self.saved = [], []

    def start(self, st):
        if self.every is not None:
            self._save(st, 0)

    def _save(self, st, step):
        self.ys.append(self.kind.state(st))
        self.saved.append(step)

    def after(self, st, before, out):
        """The loop completed steps ``before + 1 .. st.step_index``; ``out`` the model output just consumed."""
        now = st.step_index
        if self.every is not None and (now == st.steps or now // self.every > before // self.every):
            self._save(st, now)
        if self.callback is not None:
            x = self.ys[-1] if self.saved and self.saved[-1] == now else None
            x = self.kind.state(st) if x is None else self.kind.copy(x)
            self.callback(StepRecord(now, float(self.times[now]), x, self.kind.output(out), st.nfe))

    def solution(self, st) -> Solution:
        steps = np.asarray(self.saved, dtype=np.int64)
        stats = {k: list(v) if isinstance(v, list) else v for k, v in st.stats.items()}
        return Solution(self.kind.stack(self.ys), self.times[steps], steps, st.nfe, stats)
