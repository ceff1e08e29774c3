"""The symbolic tableau: one solver step as SymPy expressions of the per-step variables (docs/tableau.md).

A step has S stages, M history values and Q standard normals; row S is the output:

    u_i     = a[i] x_n + sum_{j<i} b[i, j] F_j + sum_m e[i, m] H_m + sum_q c[i, q] xi_q     (i < S)
    x_{n+1} = a[S] x_n + sum_j    b[S, j] F_j + sum_m e[S, m] H_m + sum_q c[S, q] xi_q

Coefficients are expressions in ``h``, ``r_1..r_M``, ``la_0..la_S``, ``ls_0..ls_S`` (log alpha / log sigma at the
nodes; only ever inside exp) and the tableau's ``params``.  ``fractions[p]`` is the stage node's position
c_p in the step (lam_n + c_p h), c_0 = 0.  The runtime counterpart is :class:`diffsolve.tableau.StepTable`.

A tableau is frozen and self-checking: :meth:`SymbolicTableau.check` runs the structural checks and the
symbolic series / covariance checks of :mod:`diffsolve.symbolic.checks` (derivations call it and raise).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from . import symbols as sy

__all__ = ["SymbolicTableau"]


@dataclass(frozen=True)
class SymbolicTableau:
    """A derived step.  ``order`` is the declared order (ODE global order, or SDE weak order);
    ``deterministic_order`` the order of the noise-free part (the eta-ODE), which the series check verifies;
    ``strong_order`` the pathwise order of stochastic tableaux (None for ODE tableaux); ``generic_order`` the
    order that holds for every value of the stage-fraction parameters (None: the same as ``deterministic_order``);
    ``order_condition`` the ((parameter, value), ...) under which ``deterministic_order`` holds (e.g. c2 = 2/3;
    the defaults satisfy it); ``uncertain`` marks a declared order that is measured or reconstructed, not proven
    (shown as 'order?' by ``diffsolve solvers``); ``derivation`` the call that re-derives the tableau."""

    name: str
    family: str
    variant: str
    k: int
    prediction: str
    sde: bool
    stages: int
    history: int
    noises: int
    params: tuple
    defaults: tuple
    fractions: tuple
    a: sp.ImmutableMatrix
    b: sp.ImmutableMatrix
    e: sp.ImmutableMatrix
    c: sp.ImmutableMatrix
    order: int
    deterministic_order: int
    strong_order: int | None = None
    generic_order: int | None = None
    order_condition: tuple = ()
    uncertain: bool = False
    keep: int = 0
    reference: str = ""
    notes: str = ""
    derivation: str = ""
    checked: tuple = field(default=(), compare=False)

    # ------------------------------------------------------------------ structure
    @property
    def stochastic(self) -> bool:
        return self.noises > 0

    @property
    def nfe_per_step(self) -> int:
        return self.stages

    @property
    def key(self) -> tuple:
        """(family, k, prediction, sde, variant): the catalog key."""
        return (self.family, self.k, self.prediction, self.sde, self.variant)

    @property
    def step_symbols(self) -> tuple:
        """Every symbol a coefficient may contain, in the fixed order used by code generation."""
        return (
            (sy.h,)
            + sy.rs(self.history)
            + tuple(sy.la(p) for p in range(self.stages + 1))
            + tuple(sy.ls(p) for p in range(self.stages + 1))
            + tuple(self.params)
        )

    def entries(self):
        """(array name, index tuple, expression) for every coefficient, in a fixed order."""
        for i in range(self.stages + 1):
            yield "A", (i,), self.a[i]
            for j in range(self.stages):
                yield "B", (i, j), self.b[i, j]
            for m in range(self.history):
                yield "E", (i, m), self.e[i, m]
            for q in range(self.noises):
                yield "C", (i, q), self.c[i, q]

    def substitute(self, values: dict) -> "SymbolicTableau":
        """A copy with ``values`` substituted into every coefficient (e.g. {c2: 2/3} or {eta: 0})."""
        subs = lambda m: m.subs(values)  # noqa: E731
        return SymbolicTableau(
            **{
                **self.__dict__,
                "a": subs(self.a),
                "b": subs(self.b),
                "e": subs(self.e),
                "c": subs(self.c),
                "fractions": tuple(sp.sympify(f).subs(values) for f in self.fractions),
                "checked": (),
            }
        )

    def __post_init__(self):
        s1 = self.stages + 1
        shapes = {"a": (s1, 1), "b": (s1, self.stages), "e": (s1, self.history), "c": (s1, self.noises)}
        for name, shape in shapes.items():
            mat = getattr(self, name)
            if not isinstance(mat, sp.ImmutableMatrix) or mat.shape != shape:
                raise ValueError(f"SymbolicTableau.{name} must be an ImmutableMatrix of shape {shape}, got {mat!r}")
        if len(self.fractions) != self.stages or sp.sympify(self.fractions[0]) != 0:
            raise ValueError(f"fractions must have S = {self.stages} entries starting with 0, got {self.fractions}")
        if len(self.params) != len(self.defaults):
            raise ValueError(f"params {self.params} and defaults {self.defaults} differ in length")
        if self.prediction not in ("data", "eps"):
            raise ValueError(f"prediction must be 'data' or 'eps', got {self.prediction!r}")
        if self.sde != (sy.eta in self.params):
            raise ValueError("an SDE tableau carries the parameter eta; an ODE tableau must not")

    # ------------------------------------------------------------------ checks
    def check(self, done: tuple = ()) -> "SymbolicTableau":
        """Run the tableau-level symbolic checks (structure, order series, noise covariance, first-order
        reduction); raise on failure.  ``done`` names checks the derivation already ran (kept in ``checked``)."""
        from .checks import check_tableau

        names = check_tableau(self)
        object.__setattr__(self, "checked", tuple(done) + tuple(names))
        return self
