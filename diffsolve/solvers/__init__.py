"""Solver registry and the registered solvers (built from the generated tableau modules)."""

from . import generated  # noqa: F401  (registers ddim, ddpm, dpmpp-{k}m[-sde], dpm-solver-{1,2,3}, dpmpp-{2,3}s)
from . import papers  # noqa: F401  (registers seeds-{1,2,3}, accel-ddim, accel-ddpm, accel-sde)
from .registry import Builder, Solver, get_solver, list_solvers, register, register_pattern, solver_names

__all__ = ["Builder", "Solver", "get_solver", "list_solvers", "register", "register_pattern", "solver_names"]
