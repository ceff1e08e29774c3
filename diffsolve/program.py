"""Programs: what a solver produces for one grid, and what every backend, the Stepper and the exact-law harnesses
run (docs/tableau.md, "Programs and corrections").

A :class:`Program` is a sequence of segments (:class:`Update` s) run one after another on the same state.  The
table segment, :class:`Segment`, is a :class:`~diffsolve.tableau.StepTable` plus the per-sample corrections
(:mod:`diffsolve.corrections`) applied after its output row; a Langevin chain
(:class:`~diffsolve.langevin.LangevinSegment`) is the other kind.  A tableau solver is a one-segment program; composite samplers join segments.  The noise counter
runs on across segments (step ``k`` of the program draws with step key ``k + 1``), so a sample never depends on how
a program is cut into segments.  History values do not cross segment boundaries: each segment starts with no
history (the first one with the history a run is given).
"""

from __future__ import annotations

from dataclasses import dataclass

from .corrections import Correction
from .errors import DiffsolveTypeError
from .tableau import StepTable

__all__ = ["Program", "Segment", "Update"]


class Update:
    """Base of the segment kinds: ``steps`` (noise steps it takes) and ``affine`` (whether the exact-law harnesses
    can propagate it exactly).  Each kind has a driver (:data:`diffsolve.stepper.DRIVERS`)."""

    steps: int
    affine: bool


@dataclass(frozen=True)
class Segment(Update):
    """A table of steps and the corrections applied after each of its output rows (in order)."""

    table: StepTable
    corrections: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "corrections", tuple(self.corrections))
        for c in self.corrections:
            if not isinstance(c, Correction):
                raise DiffsolveTypeError(f"a Segment's corrections must be Correction instances, got {type(c).__name__}")
            c.check(self.table)

    @property
    def steps(self) -> int:
        return self.table.steps

    @property
    def affine(self) -> bool:
        return all(c.affine for c in self.corrections)

    def linear_table(self) -> StepTable:
        """The table with every correction's linear part folded in (exact where all corrections are affine)."""
        table = self.table
        for c in self.corrections:
            table = c.linear_part(table)
        return table


@dataclass(frozen=True)
class Program:
    """Segments run in order (see the module docstring)."""

    segments: tuple

    def __post_init__(self):
        object.__setattr__(self, "segments", tuple(self.segments))
        if not self.segments or not all(isinstance(s, Update) for s in self.segments):
            raise DiffsolveTypeError("a Program is a non-empty sequence of segments (Segment, LangevinSegment)")

    @staticmethod
    def of(obj) -> "Program":
        """``obj`` as a program: a Program, a Segment, or a StepTable (a one-segment program)."""
        if isinstance(obj, Program):
            return obj
        if isinstance(obj, Segment):
            return Program((obj,))
        if isinstance(obj, StepTable):
            return Program((Segment(obj),))
        raise DiffsolveTypeError(f"expected a Program, Segment or StepTable, got {type(obj).__name__}")

    @property
    def steps(self) -> int:
        """Steps of all segments."""
        return sum(s.steps for s in self.segments)

    @property
    def affine(self) -> bool:
        """Whether every step is affine (no correction, or only affine ones): exact laws are then exact."""
        return all(s.affine for s in self.segments)

    @property
    def table(self) -> StepTable:
        """The table of a one-segment program (raises for a longer one: iterate ``segments`` instead)."""
        if len(self.segments) != 1:
            raise ValueError(f"this program has {len(self.segments)} segments; iterate program.segments")
        return self.segments[0].table
