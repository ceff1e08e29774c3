"""Langevin samplers and the samplers built from them: ``ula``, ``mala``, ``uld``, ``rtk-mala``, ``rtk-uld``, ``pc``,
``pc-song``.

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
* ``pc-song`` (Song et al. 2021, Algorithms 2-5, in the order of their released code): at every grid time t_k
  but the last, ``n_corrector`` SNR-rule Langevin corrector iterations at t_k (:class:`~diffsolve.langevin.
  SnrLangevin`), then one step t_k -> t_{k+1} of a one-step ODE/SDE solver (``predictor``, ``ddpm`` by default);
  the last predictor step returns its mean (``denoise``).  Its cost is per grid step (``nfe_per_step`` =
  ``n_corrector`` + the predictor's), so a run's total is ``nfe_per_step`` x the grid's steps.

Parameter defaults are this project's choices (the papers' are not known): docs/algorithms/langevin.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple

import numpy as np

from ..errors import DiffsolveError, DiffsolveTypeError
from ..langevin import ALPHA_RULES, ENERGIES, INITS, NORMS, LangevinSegment, Mala, SnrLangevin, Uld, corrector_alpha
from ..predictions import coefficients
from ..program import Program, Segment
from ..tableau import StepTable
from .registry import Sampler, get_solver, register

__all__ = ["LangevinSampler", "Param", "ula_table", "rtk_program", "pc_program", "pc_song_program", "table_step"]


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
    try:
        whole = not isinstance(value, (bool, np.bool_)) and float(value).is_integer() and int(value) >= 1
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole:
        raise DiffsolveTypeError(f"{where} must be a positive integer, got {value!r}")
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
    try:
        solver = get_solver(value)
    except DiffsolveError as exc:
        raise DiffsolveError(f"{where}: {exc}") from None
    if isinstance(solver, LangevinSampler):
        raise DiffsolveError(f"{where} must be an ODE/SDE solver, not the Langevin sampler {value!r}")
    return value


def _one_step_predictor(value, where):
    """A predictor that takes one grid step on its own: history does not cross the corrector segments."""
    value = _predictor(value, where)
    solver = get_solver(value)
    if solver.history:
        raise DiffsolveError(f"{where} = {value!r} is a multistep solver (it keeps {solver.history} history "
                             "value(s)), and history does not cross the corrector segments between its steps; pass "
                             "a one-step solver, e.g. 'ddpm' (reverse SDE), 'ddim', 'dpm-solver-2' or 'dpmpp-2s'")
    return value


def _auto(parse):
    """A parser that also accepts the word ``"auto"`` (a default resolved from the schedule when the program is
    built)."""

    def parse_or_auto(value, where):
        return value if isinstance(value, str) and value == "auto" else parse(value, where)

    return parse_or_auto


def _flag(value, where):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "yes", "false", "no"):
        return value.lower() in ("true", "yes")
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return bool(value)
    raise DiffsolveError(f"{where} must be True or False, got {value!r}")


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
    per_step: Callable | None = None  # model calls per grid step from the parameters (None: the NFE is a budget)
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
        predictor's); for a sampler with ``per_step`` (``pc-song``) the calls per grid step, the run's total being
        ``nfe_per_step`` x the grid's steps."""
        if self.per_step is not None:
            return self.per_step(self)
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
                "uncertain": self.uncertain, "reference": self.reference,
                "nfe": "budget" if self.per_step is None else "per_step"}

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


def table_step(table: StepTable, m: int, *, mean: bool = False) -> StepTable:
    """Step ``m`` of ``table`` as a one-step table (its own arrays); ``mean``: without the noise of its output row
    (the step's mean given its stage inputs)."""
    rows = slice(m, m + 1)
    C = table.C[rows].copy()
    if mean:
        C[:, table.stages, :] = 0.0
    return StepTable(A=table.A[rows].copy(), B=table.B[rows].copy(), E=table.E[rows].copy(), C=C,
                     tau=table.tau[rows].copy(), keep=table.keep)


def _variance_preserving(schedule, grid) -> bool:
    """Whether the schedule is VP on the grid: alpha^2 + sigma^2 = 1 at its nodes (a catalog VP schedule says
    so itself; the discrete DDPM schedule and user schedules are checked numerically)."""
    if getattr(schedule, "variance_preserving", False):
        return True
    a2 = np.exp(2.0 * np.asarray(schedule.log_alpha(grid), dtype=np.float64))
    s2 = np.asarray(schedule.sigma(grid), dtype=np.float64) ** 2
    return bool(np.allclose(a2 + s2, 1.0, rtol=0, atol=1e-9))


SONG_SNR = {"ve": 0.16, "vp": 0.01}  # the "auto" snr: score_sde's CIFAR-10 VE value; VP unverified (langevin.md §8)
SONG_ALPHA = {"ve": "one", "vp": "grid"}  # the "auto" alpha rule (ours for VP: docs/algorithms/langevin.md §8)


def pc_song_program(sampler, schedule, grid) -> Program:
    """Song et al. (2021) PC sampling: at every grid time t_k but the last, ``n_corrector`` SNR-rule corrector
    iterations at t_k, then step k of the predictor's table as its own segment (the last one without the noise of
    its output row when ``denoise``).  The program's step counter runs on across the segments, so every corrector
    iteration and every predictor step draws with its own noise step key."""
    predictor = get_solver(sampler.param("predictor"))
    if predictor.history:  # the parser refuses these; defaults are not parsed, so check here too
        _one_step_predictor(sampler.param("predictor"), f"solver {sampler.name!r}: parameter predictor")
    (segment,) = predictor.program(schedule, grid).segments
    if segment.corrections:
        raise DiffsolveError(f"solver {sampler.name!r}: the predictor {predictor.name!r} applies corrections after "
                             "its rows, which pc-song does not cut into single steps; pass e.g. 'ddpm'")
    kind = "vp" if _variance_preserving(schedule, grid) else "ve"
    snr = sampler.param("snr")
    method = SnrLangevin(SONG_SNR[kind] if snr == "auto" else snr, sampler.param("norms"))
    rule = sampler.param("alpha")
    rule = SONG_ALPHA[kind] if rule == "auto" else rule
    count, K, denoise = sampler.param("n_corrector"), grid.size - 1, sampler.param("denoise")
    segments = []
    for k in range(K):
        alpha = corrector_alpha(rule, schedule, float(grid[k]), float(grid[k + 1]))
        segments.append(LangevinSegment(method, float(grid[k]), np.full(count, alpha)))
        segments.append(Segment(table_step(segment.table, k, mean=denoise and k == K - 1)))
    return Program(tuple(segments))


def _pc_song_cost(sampler) -> int:
    return sampler.param("n_corrector") + get_solver(sampler.param("predictor")).nfe_per_step


# -- registration ----------------------------------------------------------------------------------------------
RTK_REF = ("Huang, Zou, Dong, Ma, Zhang, 'Reverse Transition Kernel: A Flexible Framework to Accelerate Diffusion "
           "Inference', NeurIPS 2024")
PC_REF = ("Pedrotti, Maas, Mondelli, 'Improved Convergence of Score-Based Diffusion Models via "
          "Prediction-Correction', TMLR 2024")
SONG_REF = ("Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole, 'Score-Based Generative Modeling through Stochastic "
            "Differential Equations', ICLR 2021 (Algorithms 2-5, PC sampling)")
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
    "pc-song": dict(family="pc", build=pc_song_program, per_step=_pc_song_cost,
                    spec=(Param("predictor", "ddpm", _one_step_predictor), Param("n_corrector", 1, _count),
                          Param("snr", "auto", _auto(_positive)),
                          Param("alpha", "auto", _choice(("auto",) + ALPHA_RULES)),
                          Param("denoise", True, _flag), Param("norms", "sample", _choice(NORMS))),
                    reference=SONG_REF,
                    description="SNR-rule Langevin corrector at every grid time, then one predictor step"),
}


for _name, _entry in _ENTRIES.items():
    register(_name, LangevinSampler(name=_name, **_entry))
