"""Langevin samplers and the samplers built from them: ``ula``, ``mala``, ``uld``, ``rtk-mala``, ``rtk-uld``, ``pc``.

They are registry entries like the tableau solvers, but their programs are built from parameters, not from one
generated table: :class:`LangevinSampler` holds the parameters and a program builder.  Their cost is a budget
(``nfe_per_step`` is the cost of one inner iteration; a run's total is reported by ``Stepper.nfe``).

* ``ula`` / ``mala`` / ``uld``: a chain at the fixed time ``grid[0]`` (the grid's later nodes are not used),
  started from the run's state: a sampler of p_t (or of the data at a small t).
* ``rtk-mala`` / ``rtk-uld`` (Huang, Zou, Dong, Ma, Zhang 2024, Algorithms 1-3): one segment per grid step
  t_k -> t_{k+1}, each sampling the reverse transition kernel (the law of X_{t_{k+1}} given X_{t_k} = y) with
  ``inner`` iterations of step ``tau`` (both scalars or one value per segment).  On any schedule: the kernel uses
  the forward transition X_{t_k} | X_{t_{k+1}} ~ N(a X_{t_{k+1}}, q I) between the nodes, which on a VP schedule is
  the OU time change of the paper.
* ``pc`` (Pedrotti, Maas, Mondelli 2024): a Langevin corrector (ULA by default; ``corrector="mala"`` or ``"uld"``)
  of ``corrector_steps`` iterations at T1 = ``grid[0]``, then any registered ODE/SDE solver (``predictor``,
  ``ddpm`` by default; ``ddim`` is the probability-flow option) along the grid.

Parameter defaults are this project's choices (the papers' are not known): docs/algorithms/langevin.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple

import numpy as np

from ..errors import DiffsolveError
from ..langevin import ENERGIES, INITS, LangevinSegment, Mala, Uld
from ..predictions import coefficients
from ..program import Program, Segment
from ..tableau import StepTable
from .registry import Sampler, get_solver, register

__all__ = ["LangevinSampler", "Param", "ula_table", "rtk_program", "pc_program"]


class Param(NamedTuple):
    """A sampler parameter: its default and its parser ``parse(value, where) -> value`` (raises DiffsolveError)."""

    name: str
    default: object
    parse: Callable


def _positive(value, where):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DiffsolveError(f"{where} must be a positive number, got {value!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise DiffsolveError(f"{where} must be a finite number > 0, got {value!r}")
    return v


def _radius(value, where):
    v = float(value) if isinstance(value, (int, float, np.floating, np.integer)) else value
    if v == math.inf:
        return v
    return _positive(value, where)


def _count(value, where):
    if isinstance(value, (bool, np.bool_)) or not float(value).is_integer() or int(value) < 1:
        raise DiffsolveError(f"{where} must be a positive integer, got {value!r}")
    return int(value)


def _per_segment(parse):
    """A parser accepting one value or one per segment (a sequence), kept as a tuple."""

    def per(value, where):
        if isinstance(value, (list, tuple, np.ndarray)):
            values = tuple(parse(v, f"{where}[{i}]") for i, v in enumerate(np.asarray(value, dtype=object).ravel()))
            if not values:
                raise DiffsolveError(f"{where} must not be empty")
            return values
        return parse(value, where)

    return per


def _choice(options):
    def choose(value, where):
        if value not in options:
            raise DiffsolveError(f"{where} must be one of {', '.join(map(repr, options))}, got {value!r}")
        return value

    return choose


def _predictor(value, where):
    if not isinstance(value, str):
        raise DiffsolveError(f"{where} must be the name of a registered ODE/SDE solver (e.g. 'ddpm'), got {value!r}")
    solver = get_solver(value)
    if isinstance(solver, LangevinSampler):
        raise DiffsolveError(f"{where} must be an ODE/SDE solver, not the Langevin sampler {value!r}")
    return value


@dataclass(frozen=True)
class LangevinSampler(Sampler):
    """A registry entry whose program is built from its parameters (see the module docstring)."""

    name: str
    family: str
    build: Callable
    spec: tuple  # Param, ...
    params: tuple = ()  # values, in the order of spec
    reference: str = ""
    description: str = ""
    uncertain: bool = True  # the papers' parameter choices are not known: ours are documented
    order = None
    strong_order = None
    stochastic = True
    history = 0
    variant = "exact"

    def __post_init__(self):
        if not self.params:
            object.__setattr__(self, "params", tuple(p.default for p in self.spec))

    @property
    def param_names(self) -> tuple:
        return tuple(p.name for p in self.spec)

    def param(self, name: str):
        return dict(zip(self.param_names, self.params))[name]

    def with_params(self, **params) -> "LangevinSampler":
        values = dict(zip(self.param_names, self.params))
        specs = {p.name: p for p in self.spec}
        for key, value in params.items():
            if key not in specs:
                raise DiffsolveError(f"solver {self.name!r} has no parameter {key!r}; its parameters are "
                                     f"{list(self.param_names)}")
            values[key] = specs[key].parse(value, f"solver {self.name!r}: parameter {key}")
        out = replace(self, params=tuple(values[k] for k in self.param_names))
        out.prediction  # noqa: B018 (checks the predictor)
        return out

    @property
    def prediction(self) -> str:
        """The prediction type the program's table rows combine (the predictor's for ``pc``; else ``score``)."""
        if "predictor" in self.param_names:
            return get_solver(self.param("predictor")).prediction
        return "score"

    @property
    def eta(self) -> float:
        return 1.0

    @property
    def nfe_per_step(self) -> int:
        """Model calls per inner iteration (MALA with the Simpson energy: 2; a ``pc`` predictor step: the
        predictor's)."""
        if "predictor" in self.param_names:
            return get_solver(self.param("predictor")).nfe_per_step
        return 2 if "energy" in self.param_names and self.param("energy") == "simpson" else 1

    def program(self, schedule, grid, *, start: int = 0, exact_history: bool = False) -> Program:
        if start:
            raise DiffsolveError(f"solver {self.name!r} keeps no history values; do not pass history")
        return self.build(self, schedule, np.asarray(grid, dtype=np.float64))

    def metadata(self) -> dict:
        return {"name": self.name, "family": self.family, "order": None, "strong_order": None, "stochastic": True,
                "nfe_per_step": self.nfe_per_step, "prediction": self.prediction, "history": 0,
                "variant": self.variant, "params": dict(zip(self.param_names, self.params)),
                "uncertain": self.uncertain, "reference": self.reference, "nfe": "budget"}

    def __repr__(self):
        return f"LangevinSampler({self.name!r}, {dict(zip(self.param_names, self.params))})"


# -- program builders ------------------------------------------------------------------------------------------
def ula_table(schedule, t: float, tau, prediction: str) -> StepTable:
    """ULA iterations x <- x + tau s(x, t) + sqrt(2 tau) xi at the fixed time ``t`` as a one-stage table whose rows
    combine ``prediction`` outputs P (the score is affine in them: s = k_x x + k_P P, exactly)."""
    tau = np.asarray(tau, dtype=np.float64)
    n = tau.size
    if prediction == "score":
        kx, kp = 0.0, 1.0
    else:
        fx, fd = coefficients(prediction, schedule, t)
        sx, sd = coefficients("score", schedule, t)
        kx, kp = float(sx - sd * fx / fd), float(sd / fd)
    table = StepTable.empty(n, 1, 0, 1)
    table.A[:, 0] = 1.0
    table.A[:, 1] = 1.0 + tau * kx
    table.B[:, 1, 0] = tau * kp
    table.C[:, 1, 0] = np.sqrt(2.0 * tau)
    table.tau[:, 0] = t
    return table


def _steps(value, count, where):
    values = np.broadcast_to(np.asarray(value, dtype=np.float64), (count,)) if np.ndim(value) == 0 else \
        np.asarray(value, dtype=np.float64)
    if values.shape != (count,):
        raise DiffsolveError(f"{where} has {values.size} values for {count} segments; pass one value or {count}")
    return values


def _transition(schedule, t_hi: float, t_lo: float):
    """(a, q) of the forward transition X_{t_hi} | X_{t_lo} ~ N(a X_{t_lo}, q I)."""
    log_a = float(schedule.log_alpha(t_hi) - schedule.log_alpha(t_lo))
    a = math.exp(log_a)
    if getattr(schedule, "variance_preserving", False):
        q = -math.expm1(2.0 * log_a)  # sigma^2 = 1 - alpha^2: no cancellation for short steps
    else:
        q = float(schedule.sigma(t_hi)) ** 2 - a * a * float(schedule.sigma(t_lo)) ** 2
    if not q > 0:
        raise DiffsolveError(f"the forward transition from t = {t_lo!r} to {t_hi!r} adds no noise (q = {q!r}); "
                             "use grid nodes further apart")
    return a, q


def rtk_program(method, schedule, grid, inner, tau, init) -> Program:
    """One reverse-transition-kernel segment per grid step (Huang et al. 2024, Algorithm 1)."""
    K = grid.size - 1
    inner = _steps(inner, K, "inner").astype(np.int64)
    tau = _steps(tau, K, "tau")
    segments = []
    for k in range(K):
        a, q = _transition(schedule, float(grid[k]), float(grid[k + 1]))
        segments.append(LangevinSegment(method, float(grid[k + 1]), np.full(int(inner[k]), tau[k]), tilt=a * a / q,
                                        a=a, q=q, init=init, t_init=float(grid[k])))
    return Program(tuple(segments))


def _mala(sampler) -> Mala:
    return Mala(sampler.param("energy"), sampler.param("radius") if "radius" in sampler.param_names else math.inf)


def _uld(sampler) -> Uld:
    return Uld(sampler.param("gamma"))


def _ula(sampler, schedule, grid):
    """ULA at grid[0] as a table of score rows."""
    return Program.of(ula_table(schedule, float(grid[0]), np.full(sampler.param("iterations"), sampler.param("tau")),
                                "score"))


def _chain(method):
    """The builder of a chain of ``method`` at grid[0], started from the run's state."""

    def build(sampler, schedule, grid):
        tau = np.full(sampler.param("iterations"), sampler.param("tau"))
        return Program((LangevinSegment(method(sampler), float(grid[0]), tau),))

    return build


def _rtk(method):
    """The builder of RTK with ``method`` inner chains."""

    def build(sampler, schedule, grid):
        return rtk_program(method(sampler), schedule, grid, sampler.param("inner"), sampler.param("tau"),
                           sampler.param("init"))

    return build


def _ula_corrector(sampler, schedule, t, tau, prediction):
    return Segment(ula_table(schedule, t, tau, prediction))


def _method_corrector(method):
    def corrector(sampler, schedule, t, tau, prediction):
        return LangevinSegment(method(sampler), t, tau)

    return corrector


CORRECTORS = {"ula": _ula_corrector, "mala": _method_corrector(_mala), "uld": _method_corrector(_uld)}


def pc_program(sampler, schedule, grid) -> Program:
    """The corrector at T1 = grid[0], then the predictor along the grid (Pedrotti, Maas, Mondelli 2024)."""
    predictor = get_solver(sampler.param("predictor"))
    tau = np.full(sampler.param("corrector_steps"), sampler.param("corrector_step"))
    corrector = CORRECTORS[sampler.param("corrector")](sampler, schedule, float(grid[0]), tau, predictor.prediction)
    return Program((corrector,) + predictor.program(schedule, grid).segments)


# -- registration ----------------------------------------------------------------------------------------------
RTK_REF = ("Huang, Zou, Dong, Ma, Zhang, 'Reverse Transition Kernel: A Flexible Framework to Accelerate Diffusion "
           "Inference', NeurIPS 2024")
PC_REF = ("Pedrotti, Maas, Mondelli, 'Improved Convergence of Score-Based Diffusion Models via "
          "Prediction-Correction', TMLR 2024")
MALA_REF = "Roberts & Tweedie, Bernoulli 1996 (MALA)"
ULD_REF = "Cheng, Chatterji, Bartlett & Jordan, COLT 2018 (underdamped Langevin MCMC)"
ULA_REF = "Roberts & Tweedie, Bernoulli 1996 (ULA)"

_ITER = Param("iterations", 100, _count)
_ENERGY = Param("energy", "simpson", _choice(ENERGIES))
_RADIUS = Param("radius", math.inf, _radius)
_GAMMA = Param("gamma", 2.0, _positive)

_ENTRIES = {
    "ula": dict(family="langevin", build=_ula, spec=(_ITER, Param("tau", 0.05, _positive)), reference=ULA_REF,
                description="unadjusted Langevin at the fixed time grid[0]"),
    "mala": dict(family="langevin", build=_chain(_mala), spec=(_ITER, Param("tau", 0.05, _positive), _ENERGY, _RADIUS),
                 reference=MALA_REF, description="Metropolis-adjusted Langevin at the fixed time grid[0]"),
    "uld": dict(family="langevin", build=_chain(_uld), spec=(_ITER, Param("tau", 0.1, _positive), _GAMMA),
                reference=ULD_REF, description="underdamped Langevin (exponential integrator) at grid[0]"),
    "rtk-mala": dict(family="rtk", build=_rtk(_mala), spec=(Param("inner", 10, _per_segment(_count)),
                                                     Param("tau", 0.2, _per_segment(_positive)), _ENERGY, _RADIUS,
                                                     Param("init", "tweedie", _choice(INITS[:2]))),
                     reference=RTK_REF, description="reverse transition kernel, MALA inner chains (Algorithm 2)"),
    "rtk-uld": dict(family="rtk", build=_rtk(_uld), spec=(Param("inner", 10, _per_segment(_count)),
                                                    Param("tau", 0.3, _per_segment(_positive)), _GAMMA,
                                                    Param("init", "tweedie", _choice(INITS[:2]))),
                    reference=RTK_REF, description="reverse transition kernel, ULD inner chains (Algorithm 3)"),
    "pc": dict(family="pc", build=pc_program,
               spec=(Param("corrector", "ula", _choice(("ula", "mala", "uld"))), Param("corrector_steps", 20, _count),
                     Param("corrector_step", 0.1, _positive), Param("predictor", "ddpm", _predictor), _ENERGY,
                     _GAMMA),
               reference=PC_REF, description="Langevin corrector at T1 = grid[0], then an ODE/SDE predictor"),
}


for _name, _entry in _ENTRIES.items():
    register(_name, LangevinSampler(name=_name, **_entry))
