"""diffsolve: diffusion-model samplers whose coefficients SymPy derives and Numba compiles.

Public surface: get_schedule, Schedule, time_grid, get_solver, list_solvers, targets, sample (and its Solution),
Stepper, order_study, derive (docs/architecture.md).
"""

from . import targets
from .accuracy import OrderStudy, order_study
from .derive import derive
from .errors import DiffsolveError, DiffsolveTypeError, DiffsolveWarning, ModelOutputError
from .grids import time_grid
from .sampling import sample
from .solution import Solution, StepRecord
from .schedules import Schedule, get_schedule, list_schedules
from .solvers import Solver, get_solver, list_solvers
from .stepper import Stepper

__version__ = "0.1.0"

__all__ = [
    "DiffsolveError",
    "DiffsolveTypeError",
    "DiffsolveWarning",
    "ModelOutputError",
    "OrderStudy",
    "Schedule",
    "Solution",
    "Solver",
    "StepRecord",
    "Stepper",
    "derive",
    "get_schedule",
    "get_solver",
    "list_schedules",
    "list_solvers",
    "order_study",
    "sample",
    "targets",
    "time_grid",
]
