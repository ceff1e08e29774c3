"""diffsolve: diffusion-model samplers whose coefficients SymPy derives and Numba compiles.

Public surface: get_schedule, Schedule, time_grid, get_solver, list_solvers, targets, sample (and its Solution),
sample_adaptive, Stepper, order_study, derive (docs/architecture.md); ``distributed`` (Dask scale-out) is imported
on first use.
"""

from . import targets
from .accuracy import OrderStudy, order_study
from .derive import derive
from .errors import DiffsolveError, DiffsolveTypeError, DiffsolveWarning, ModelOutputError
from .grids import time_grid
from .sampling import sample
from .adaptive import sample_adaptive
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
    "sample_adaptive",
    "targets",
    "time_grid",
]


def __getattr__(name):
    """``ds.distributed`` (Dask scale-out, docs/distributed.md) is imported on first use, so that
    ``import diffsolve`` never imports dask."""
    if name == "distributed":
        import importlib

        return importlib.import_module(".distributed", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
