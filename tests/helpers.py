"""Shared test helpers: common schedules, targets, the order-study set-up and the solver registry.

Importable as ``import helpers`` from every test module (``tests/conftest.py`` puts this folder on ``sys.path``);
``conftest.py`` also exposes the most used objects as fixtures.

* Schedules: :data:`VP` (vp-linear, beta 0.1 -> 20), :data:`EDM` (sigma 0.002 .. 80), :func:`schedule` (cached by
  name and parameters), the name lists :data:`CONTINUOUS_SCHEDULES` and :data:`CATALOG_SCHEDULES`.
* Targets: :func:`target` (``ds.targets.from_spec``, cached by spec string) and the order-study target
  :data:`GAUSSIAN_D8`.
* Order studies: :func:`order_setup` (lam in [-2.5, 3], Karras grid, 64/128/256 steps), :data:`ORDER_SETUP` on VP.
* Registry: :func:`registered_solvers`, :func:`solver` (``"name:variant"``), :func:`solver_params` and
  :func:`parametrize_solvers` / :func:`parametrize_schedules` for ``pytest.mark.parametrize``.
* Layout invariance: :func:`thread_split_runs` (1 vs 2 threads, two batch splits).

Shared objects are never modified by the tests; a test that needs to change one builds its own.
"""

from __future__ import annotations

from functools import lru_cache

import pytest

import diffsolve as ds
import diffsolve.solvers.papers  # noqa: F401  (registers seeds-*, accel-* before the registry is listed)

__all__ = ["VP", "EDM", "CONTINUOUS_SCHEDULES", "CATALOG_SCHEDULES", "GAUSSIAN_D8", "ORDER_SETUP", "schedule",
           "target", "order_setup", "registered_solvers", "solver", "solver_params", "parametrize_solvers",
           "parametrize_schedules", "table_solvers", "langevin_solvers", "thread_split_runs"]

# ----------------------------------------------------------------------------------------------- schedules
# the six continuous catalog schedules (closed-form lam, t(lam), f, g^2)
CONTINUOUS_SCHEDULES = ("vp-linear", "vp-cosine", "ve", "edm", "flow", "ou")
# every name ds.get_schedule accepts without arguments, the discrete DDPM betas included
CATALOG_SCHEDULES = CONTINUOUS_SCHEDULES + ("discrete",)


@lru_cache(maxsize=None)
def _schedule(name: str, params: tuple):
    return ds.get_schedule(name, **dict(params))


def schedule(name: str, **params):
    """``ds.get_schedule(name, **params)``, one shared object per (name, parameters)."""
    return _schedule(name, tuple(sorted(params.items())))


VP = schedule("vp-linear")  # beta 0.1 -> 20
EDM = schedule("edm", sigma_min=0.002, sigma_max=80.0)


# ------------------------------------------------------------------------------------------------- targets
@lru_cache(maxsize=None)
def target(spec: str):
    """``ds.targets.from_spec(spec)``, one shared object per spec string (e.g. ``"gaussian:d=8"``)."""
    return ds.targets.from_spec(spec)


GAUSSIAN_D8 = target("gaussian:d=8")  # the anisotropic Gaussian of the registry order tests


# ------------------------------------------------------------------------------------------- order studies
def order_setup(sched=VP, steps=(64, 128, 256)) -> dict:
    """Keyword arguments of ``ds.order_study`` for the asymptotic regime used by the order tests: lam in
    [-2.5, 3] (docs/algorithms/exponential_integrators.md §7), Karras spacing, ``steps`` steps."""
    return {"t_max": float(sched.t_of_lam(-2.5)), "t_min": float(sched.t_of_lam(3.0)), "spacing": "karras",
            "steps": list(steps)}


ORDER_SETUP = order_setup()


# ------------------------------------------------------------------------------------------------ registry
def registered_solvers() -> list[str]:
    """Every registered solver name, variants spelled ``"name:variant"`` (``ds.solvers.solver_names()``)."""
    return list(ds.solvers.solver_names())


def table_solvers() -> list[str]:
    """The registered names whose solver is one generated table per warm-up level (``ds.solvers.Solver``): every
    name but the Langevin samplers, whose programs are built from parameters."""
    return [n for n in registered_solvers() if isinstance(solver(n), ds.solvers.Solver)]


def langevin_solvers() -> list[str]:
    """The registered Langevin samplers (``ula``, ``mala``, ``uld``, ``rtk-*``, ``pc``, ``pc-song``)."""
    return [n for n in registered_solvers() if not isinstance(solver(n), ds.solvers.Solver)]


def solver(name: str, **params):
    """The solver for ``"name"`` or ``"name:variant"``, with runtime parameters."""
    base, _, variant = name.partition(":")
    return ds.get_solver(base, variant=variant or None, **params)


def solver_params(names=None, *, extra=(), where=None, marks=None) -> list:
    """``pytest.param`` entries (id = the name) for ``names`` (default: the registry) plus ``extra`` names,
    deduplicated and sorted; ``where(solver)`` keeps only matching solvers; ``marks`` maps a name to the marks
    of its entry."""
    names = registered_solvers() if names is None else list(names)
    chosen = sorted(set(names) | set(extra))
    if where is not None:
        chosen = [n for n in chosen if where(solver(n))]
    marks = marks or {}
    return [pytest.param(n, id=n, marks=marks.get(n, ())) for n in chosen]


def parametrize_solvers(argname: str = "name", names=None, **kw):
    """``pytest.mark.parametrize`` over solver names (see :func:`solver_params`)."""
    return pytest.mark.parametrize(argname, solver_params(names, **kw))


def parametrize_schedules(argname: str = "name", names=CONTINUOUS_SCHEDULES):
    """``pytest.mark.parametrize`` over schedule names (default: the six continuous catalog schedules)."""
    return pytest.mark.parametrize(argname, list(names))


# ----------------------------------------------------------------------------------------------- layout invariance
def thread_split_runs(run, n: int = 64, cut: int = 23):
    """``run(lo, hi)`` (samples lo..hi-1, with sample_offset lo) on one Numba thread, on two, and as two batches
    split at ``cut``: the three results, which a backend must make bitwise equal."""
    import numba
    import numpy as np

    default = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run(0, n)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = run(0, n)
        split = np.concatenate([run(0, cut), run(cut, n)])
    finally:
        numba.set_num_threads(default)
    return one, two, split
