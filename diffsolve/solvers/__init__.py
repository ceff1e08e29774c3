"""Solver registry and the registered solvers, built from the generated tableau modules.

The package mirrors :mod:`diffsolve.symbolic`, one module per family:

    modules       catalog lookup, on-demand generation, Solver assembly from generated modules
    multistep     dpmpp-{k}m[-sde], dpm-solver-{k}m[-sde], and their k = 1 aliases ddim, ddpm
    singlestep    dpm-solver-{1,2,3}, dpmpp-{2,3}s
    euler         euler-maruyama
    seeds         seeds-{1,2,3} (variants [combine][-eps][-mirrored])
    accelerated   accel-ddim, accel-ddpm, accel-sde
    unipc         unipc-{k} (UniPC-k: UniP-k + UniC-k, the predicted point as state; variants published, bh1, eps, p)
    deis          deis-{k} (default logrho = diffusers' DEIS = dpm-solver-{k}m; variant tab: the paper's tAB)
    edm           euler, heun (EDM's samplers with churn s_churn, s_tmin, s_tmax, s_noise; tables from the schedule)
    langevin      ula, mala, uld, rtk-mala, rtk-uld, pc (programs built from parameters, not from one table)
    registry      Solver, Builder, register, register_pattern, get_solver, list_solvers

Every registered name is an entry of SOLVERS (``diffsolve._generated``, written by ``python -m diffsolve.codegen``);
its factory is lazy, so importing the package loads no generated module and never SymPy.
"""

from functools import partial as _partial

from . import accelerated, deis, edm, euler, multistep, seeds, singlestep, unipc
from .modules import table as _table
from .registry import Builder, Sampler, Solver, get_solver, list_solvers, register, register_pattern, solver_names

__all__ = ["Builder", "Sampler", "Solver", "get_solver", "list_solvers", "register", "register_pattern", "solver_names"]

_FAMILIES = {family.FAMILY: family.from_table for family in (multistep, singlestep, euler, seeds, accelerated, unipc)}


def _register_shipped() -> None:
    """Register every name of the shipped SOLVERS table (lazy factories; nothing is imported here)."""
    for name, (family, _, _) in _table("SOLVERS").items():
        register(name, _partial(_FAMILIES[family], name))


_register_shipped()

from . import langevin  # noqa: E402 (registers the Langevin samplers; imports the runtime, which needs the registry)
