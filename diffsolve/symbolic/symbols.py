"""The per-step SymPy symbols every derived tableau is written in (docs/algorithms/exponential_integrators.md §0,
§8 step 1).

``h``  log-SNR step (> 0);  ``r(j)``  history ratio r_j, j = 1..M;  ``la(p)``, ``ls(p)``  log alpha and log sigma
at the step's node p = 0..S (0 = start, S = end);  ``eta``  stochasticity (>= 0);  ``c1``, ``c2``  stage
fractions of singlestep solvers;  ``a_pre``  accel-sde's pre-score noise fraction (named ``a``).  Symbols are cached by name, so every module shares the same objects.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

__all__ = ["h", "eta", "c1", "c2", "a_pre", "r", "la", "ls", "rs", "PARAM_DEFAULTS", "NAMES"]

h = sp.Symbol("h", positive=True)
eta = sp.Symbol("eta", nonnegative=True)
c1 = sp.Symbol("c1", positive=True)
c2 = sp.Symbol("c2", positive=True)
a_pre = sp.Symbol("a", nonnegative=True)  # accel-sde: fraction of the step's noise injected before the score call


@lru_cache(maxsize=None)
def r(j: int) -> sp.Symbol:
    """History ratio r_j = (lam_{n-j+1} - lam_{n-j}) / h, j >= 1."""
    if j < 1:
        raise ValueError(f"history ratio index must be >= 1, got {j}")
    return sp.Symbol(f"r_{j}", positive=True)


@lru_cache(maxsize=None)
def la(p: int) -> sp.Symbol:
    """log alpha at node p of the step (0 = start, S = end)."""
    return sp.Symbol(f"la_{p}", real=True)


@lru_cache(maxsize=None)
def ls(p: int) -> sp.Symbol:
    """log sigma at node p of the step (0 = start, S = end)."""
    return sp.Symbol(f"ls_{p}", real=True)


def rs(m: int) -> tuple[sp.Symbol, ...]:
    """(r_1, ..., r_m)."""
    return tuple(r(j) for j in range(1, m + 1))


# Default values of the named runtime parameters (eta = 1 is the reverse SDE).
PARAM_DEFAULTS = {eta: sp.Integer(1)}

# Names of the runtime parameters as they appear in generated code.
NAMES = {eta: "eta", c1: "c1", c2: "c2", a_pre: "a"}
