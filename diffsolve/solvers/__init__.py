"""Solver registry and the registered solvers."""

from . import first_order  # noqa: F401  (registers ddim, ddpm)
from .registry import Builder, Solver, get_solver, list_solvers, register, register_pattern, solver_names

__all__ = ["Builder", "Solver", "get_solver", "list_solvers", "register", "register_pattern", "solver_names"]
