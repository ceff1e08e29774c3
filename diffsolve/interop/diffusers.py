"""``DiffsolveScheduler``: a diffusers scheduler (``SchedulerMixin`` + ``ConfigMixin``) backed by any diffsolve table
solver (docs/interop/diffusers.md).

    pipe.scheduler = DiffsolveScheduler.from_config(pipe.scheduler.config, solver="dpmpp-2m")

The schedule is ``Schedule.from_diffusers(...)`` of the config's schedule keys: DDPM-family (discrete, VP) or
flow matching (``shift``, or ``use_flow_sigmas`` + ``flow_shift``).  ``set_timesteps`` builds a diffsolve time
grid and lists one timestep per model call (the schedule's timestep convention: ``N t - 1`` for DDPM, ``N sigma(t)``
for flow; stage times of multi-stage solvers included), so the pipeline's ``for t in scheduler.timesteps`` loop
calls ``step`` once per model call.  ``step`` drives a :class:`diffsolve.Stepper`, created on the first call from
``sample``; ``prev_sample`` is the next model input (for a stage call) or the state after the step.  Noise of
stochastic solvers is diffsolve's keyed noise, keyed by (seed, sample, step, draw); ``seed`` is
``generator.initial_seed()`` when a generator is passed to the first ``step``, else the config's ``seed``.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin, SchedulerOutput

from ..errors import DiffsolveError
from ..grids import SPACINGS, time_grid
from ..program import Segment
from ..schedules import Schedule
from ..solvers.registry import peer_conventions
from ..stepper import Stepper, prepare_run

__all__ = ["DiffsolveScheduler", "GRIDS", "PREDICTIONS"]

# diffusers prediction_type -> the diffsolve prediction the Stepper gets; flow_prediction (v = eps - x0) is turned
# into the data prediction x0 = (x - sigma v)/(alpha + sigma) at each call (exact on any schedule; x - sigma v on flow)
PREDICTIONS = {"epsilon": "eps", "sample": "data", "v_prediction": "v", "flow_prediction": "data"}
GRIDS = tuple(SPACINGS) + ("linspace", "trailing", "leading")  # diffsolve spacings + diffusers' timestep spacings
FINALS = ("zero", "sigma_min")  # diffusers' final_sigmas_type: end at sigma = 0, or at the schedule's t_min


class DiffsolveScheduler(SchedulerMixin, ConfigMixin):
    """A diffusers scheduler that runs diffsolve's ``solver`` (``variant``, ``solver_params``) on the schedule of its
    config (DDPM-family or flow matching).  ``grid``: a :func:`diffsolve.time_grid` spacing (``logsnr``, ``time``,
    ``karras``, ``quadratic``) or diffusers' ``linspace`` / ``trailing`` / ``leading`` timestep spacing (for flow
    configs ``linspace`` is FlowMatchEulerDiscreteScheduler's sigmas); ``timestep_spacing`` is stored but not used
    (``grid`` chooses).  ``final_sigmas_type``: ``"zero"`` ends the grid at sigma = 0 (the clean state),
    ``"sigma_min"`` at the schedule's t_min (timestep 0 for DDPM); ``None``: ``"zero"`` for flow configs,
    ``"sigma_min"`` otherwise.  ``backend``: diffsolve's engine (``None``: ``cuda`` for CUDA tensors, else
    ``numpy``).  ``order`` is diffusers' sense: model calls per step (the solver's stages).  It steps as diffusers'
    schedulers do: multistep solvers without diffsolve's warm-down and a last step to sigma = 0 that denoises
    (``solver_params={"warm_down": 2.0, "final": "solver"}`` for diffsolve's defaults;
    docs/algorithms/exponential_integrators.md §3.8)."""

    _compatibles = []
    order = 1

    @register_to_config
    def __init__(self, solver: str = "dpmpp-2m", variant: str | None = None, solver_params: dict | None = None,
                 grid: str = "logsnr", seed: int = 0, backend: str | None = None, num_train_timesteps: int = 1000,
                 beta_start: float = 0.0001, beta_end: float = 0.02, beta_schedule: str = "linear",
                 trained_betas=None, prediction_type: str = "epsilon", timestep_spacing: str = "linspace",
                 final_sigmas_type: str | None = None, steps_offset: int = 0, rescale_betas_zero_snr: bool = False,
                 shift: float | None = None, use_dynamic_shifting: bool = False, use_flow_sigmas: bool = False,
                 flow_shift: float = 1.0):
        if trained_betas is not None and not isinstance(trained_betas, list):  # the config must stay JSON
            self.register_to_config(trained_betas=np.asarray(trained_betas, dtype=np.float64).tolist())
        if prediction_type not in PREDICTIONS:
            raise DiffsolveError(f"prediction_type must be one of {', '.join(PREDICTIONS)}, got {prediction_type!r}")
        if grid not in GRIDS:
            raise DiffsolveError(f"grid must be one of {', '.join(GRIDS)}, got {grid!r}")
        if final_sigmas_type is not None and final_sigmas_type not in FINALS:
            raise DiffsolveError(f"final_sigmas_type must be one of {', '.join(FINALS)} or None, got "
                                 f"{final_sigmas_type!r}")
        if isinstance(steps_offset, bool) or not isinstance(steps_offset, (int, np.integer)) or steps_offset < 0:
            raise DiffsolveError(f"steps_offset must be a non-negative integer, got {steps_offset!r}")
        if solver_params is not None and not isinstance(solver_params, dict):
            raise DiffsolveError(f"solver_params must be a dict of solver parameters, got "
                                 f"{type(solver_params).__name__}")
        self.schedule = Schedule.from_diffusers(self._schedule_config(),
                                                terminal_alpha_cumprod=2.0**-24 if rescale_betas_zero_snr else None)
        self._flow = self.schedule.timestep_map is not None and self.schedule.timestep_map.kind == "sigma"
        if not self._flow and (self.schedule.timestep_map is None or self.schedule.timestep_map.kind != "index"):
            raise DiffsolveError("DiffsolveScheduler needs a DDPM-family (discrete) or flow-matching config; got "
                                 f"schedule {self.schedule.name!r}")
        if self._flow and grid in ("trailing", "leading"):
            raise DiffsolveError(f"grid={grid!r} is a DDPM timestep spacing; a flow-matching config takes 'linspace' "
                                 f"(FlowMatchEulerDiscreteScheduler's sigmas) or one of {', '.join(SPACINGS)}")
        self._final = final_sigmas_type or ("zero" if self._flow else "sigma_min")
        self._params = dict(solver_params or {})
        if variant is not None:
            self._params["variant"] = variant
        # the peers' stepping: no warm-down, and their last step to sigma = 0 (the denoising step; EDM's Euler step)
        conventions, final = peer_conventions(solver, variant)
        self._params = {**conventions, "final": final, **self._params}
        probe = self._run(time_grid(self.schedule, 2, "time"))  # refuses unknown solvers / parameters now
        self._solver = probe.solver
        self.init_noise_sigma = 1.0  # VP and flow: x_T ~ N(0, 1)
        self.num_inference_steps = None
        self.timesteps = None
        self._begin_index = None
        self.order = self._calls_per_step(probe)
        self._reset()

    def _schedule_config(self) -> dict:
        """The config as ``Schedule.from_diffusers`` reads it (flow matching when ``shift`` is set)."""
        c = self.config
        if c.shift is not None or c.use_dynamic_shifting:
            return {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": c.num_train_timesteps,
                    "shift": 1.0 if c.shift is None else c.shift, "use_dynamic_shifting": c.use_dynamic_shifting}
        keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
                "rescale_betas_zero_snr", "use_flow_sigmas", "flow_shift")
        return {k: c[k] for k in keys}

    def _run(self, grid):
        run = prepare_run(self.config.solver, self.schedule, grid, **self._params)
        for seg in run.program.segments:
            if not isinstance(seg, Segment):
                raise DiffsolveError(f"solver {self.config.solver!r} has a {type(seg).__name__} segment: "
                                     "DiffsolveScheduler runs table solvers only (model calls known in advance)")
        return run

    @staticmethod
    def _calls_per_step(run) -> int:
        calls = sum(seg.table.tau.size for seg in run.program.segments)
        return calls // run.program.steps if calls % run.program.steps == 0 else 1

    def _reset(self):
        self._stepper, self._index, self._last = None, self._begin_index or 0, None

    @property
    def begin_index(self):
        """The index in ``timesteps`` of the first model call (``set_begin_index``; ``None``: the first)."""
        return self._begin_index

    @property
    def step_index(self):
        """The index in ``timesteps`` of the next model call."""
        return self._index

    def set_begin_index(self, begin_index: int = 0):
        """Start the run at ``timesteps[begin_index]`` (img2img: ``t_start * scheduler.order``), which must be a
        step's first model call.  The solver starts afresh there (multistep solvers warm up again, as diffusers'
        do); ``add_noise`` gives the starting sample."""
        if self.timesteps is None:
            raise DiffsolveError("call set_timesteps(...) before set_begin_index(...)")
        firsts = self._first_calls
        if isinstance(begin_index, bool) or not isinstance(begin_index, (int, np.integer)) \
                or int(begin_index) not in firsts:
            raise DiffsolveError(f"begin_index must be the index of a step's first model call, one of "
                                 f"{firsts[:8].tolist()}{' ...' if firsts.size > 8 else ''} (multiples of order = "
                                 f"{self.order} for this solver), got {begin_index!r}")
        self._begin_index = int(begin_index)
        self._reset()

    def _end(self) -> float:
        return 0.0 if self._final == "zero" else float(self.schedule.t_min)

    def _close(self, nodes, what):
        """The grid through the model-call ``nodes`` (times, noisiest first) and the final end point."""
        end = self._end()
        if not nodes[-1] > end:
            hint = ("pass final_sigmas_type='zero' to end the grid at sigma = 0" if self._final == "sigma_min"
                    else "leave the final sigma = 0 out")
            raise DiffsolveError(f"the last of {what} is the grid's end point (t = {end:g}): it cannot be a model "
                                 f"call; {hint}")
        return time_grid(self.schedule, len(nodes), np.append(nodes, end))

    @staticmethod
    def _array(values, name):
        arr = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
        if arr.ndim != 1 or arr.size < 1 or not np.all(np.isfinite(arr)):
            raise DiffsolveError(f"{name} must be a 1-D sequence of finite numbers (noisiest first), got shape "
                                 f"{arr.shape}{' with non-finite entries' if arr.size else ''}; pass e.g. another "
                                 f"scheduler's {name} after its set_timesteps(...)")
        return arr

    def _spacing_nodes(self, steps, spacing):
        """Model-call nodes of diffusers' timestep spacings (times), or None for a diffsolve spacing."""
        s, n = self.schedule, self.config.num_train_timesteps
        if self._flow and spacing == "linspace":  # FlowMatchEulerDiscrete: linspace(1, sigma_min, steps), shifted
            return np.linspace(1.0, float(s.timestep_map.shift / (n + s.timestep_map.shift - 1.0)), steps)
        ks = {"linspace": lambda: np.linspace(0, n - 1, steps + 1).round()[::-1][:-1],
              "trailing": lambda: np.round(np.arange(n, 0, -n / steps)) - 1,
              "leading": lambda: (np.arange(steps) * (n // steps)).round()[::-1] + self.config.steps_offset,
              }.get(spacing)
        return None if ks is None else s.time_of_timestep(ks())

    def _grid(self, num_inference_steps):
        s, n = self.schedule, self.config.num_train_timesteps
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, (int, np.integer)):
            raise DiffsolveError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        steps, spacing = int(num_inference_steps), self.config.grid
        if not 1 <= steps < n:
            raise DiffsolveError(f"num_inference_steps must be in [1, {n - 1}], got {steps}")
        nodes = self._spacing_nodes(steps, spacing)
        if nodes is not None:
            return self._close(nodes, f"the {spacing!r} timesteps")
        if self._final == "sigma_min":
            return time_grid(s, steps, spacing)
        head = time_grid(s, steps - 1, spacing) if steps > 1 else np.array([s.t_max])  # the last hop: t_min -> 0
        return self._close(head, "the grid")

    def _sigma_grid(self, sigmas):
        """The grid through the noise levels ``sigmas``: diffusers' sigma = sigma_t / alpha_t (VP; noisiest first,
        the last one the grid's end, 0 for the clean state), or FlowMatchEulerDiscreteScheduler's unshifted sigmas
        (flow: one per step, the end point appended)."""
        sig = self._array(sigmas, "sigmas")
        if self._flow:
            if np.any(sig <= 0) or np.any(sig > 1):
                raise DiffsolveError(f"sigmas must lie in (0, 1] for a flow-matching config (one per step, the final "
                                     f"0 appended), got [{sig.min():.4g}, {sig.max():.4g}]")
            return self._close(sig, "sigmas")
        if sig.size < 2 or np.any(sig < 0) or np.any(sig[:-1] <= 0):
            raise DiffsolveError(f"sigmas must be at least 2 noise levels, positive but the last (0 ends at the clean "
                                 f"state), got shape {sig.shape} with values in [{sig.min():g}, {sig.max():g}]")
        lo = float(self.schedule.lam(self.schedule.t_max))
        hi = float(self.schedule.lam(self.schedule.t_min))
        with np.errstate(divide="ignore"):
            lam = -np.log(sig)
        inner = lam[np.isfinite(lam)]
        if inner.min() < lo - 1e-9 or inner.max() > hi + 1e-9:
            raise DiffsolveError(f"sigmas must lie in [{np.exp(-hi):.4g}, {np.exp(-lo):.4g}] (this schedule's "
                                 f"timesteps {self.config.num_train_timesteps - 1} .. 0), or be a final 0, got "
                                 f"[{sig[sig > 0].min():.4g}, {sig.max():.4g}]")
        t = np.where(np.isfinite(lam), self.schedule.t_of_lam(np.clip(lam, lo, hi)), 0.0)
        return time_grid(self.schedule, sig.size - 1, t)

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, timesteps=None, sigmas=None):
        """Build the grid (``num_inference_steps`` steps; or the model-call nodes ``timesteps`` of each step's first
        stage, noisiest first, in the model's timestep convention, the end point appended; or ``sigmas``, see
        :meth:`_sigma_grid`) and list one timestep per model call in ``timesteps``.  Resets the run (and the begin
        index)."""
        if sum(v is not None for v in (num_inference_steps, timesteps, sigmas)) != 1:
            given = [k for k, v in (("num_inference_steps", num_inference_steps), ("timesteps", timesteps),
                                    ("sigmas", sigmas)) if v is not None]
            raise DiffsolveError(f"set_timesteps takes exactly one of num_inference_steps, timesteps and sigmas, got "
                                 f"{', '.join(given) if given else 'none'}; pass e.g. set_timesteps(25)")
        if sigmas is not None:
            grid = self._sigma_grid(sigmas)
        elif timesteps is not None:
            grid = self._close(self.schedule.time_of_timestep(self._array(timesteps, "timesteps")), "timesteps")
        else:
            grid = self._grid(num_inference_steps)
        run = self._run(grid)
        taus = np.concatenate([seg.table.tau.ravel() for seg in run.program.segments])
        calls = np.concatenate([np.full(seg.table.tau.shape[0], seg.table.tau.shape[1]) for seg in run.program.segments])
        ks = np.asarray(self.schedule.timestep_of(taus), dtype=np.float64)
        integral = not self._flow and np.all(np.abs(ks - np.round(ks)) < 1e-6)
        self._grid_times, self._call_times = grid, taus
        self._first_calls = np.concatenate([[0], np.cumsum(calls)[:-1]]).astype(np.int64)
        self._call_timesteps = np.round(ks) if integral else ks
        self.timesteps = torch.from_numpy(self._call_timesteps.astype(np.int64 if integral else np.float32)).to(device)
        self.sigmas = torch.from_numpy(np.append(self._noise_levels(taus), self._noise_levels(grid[-1:]))
                                       .astype(np.float32))
        self.num_inference_steps = run.program.steps
        self.order = self._calls_per_step(run)
        self._begin_index = None
        self._reset()

    def _noise_levels(self, t):
        """diffusers' ``sigmas`` at times ``t``: sigma(t) for flow, sigma(t)/alpha(t) for VP (0 at the clean end)."""
        s = self.schedule
        if self._flow:
            return np.asarray(s.sigma(t), dtype=np.float64)
        with np.errstate(divide="ignore", over="ignore"):
            return np.exp(-np.asarray(s.lam(t), dtype=np.float64))

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        """The model input is the state itself (VP and flow)."""
        return sample

    def _start(self, sample, generator):
        seed = self.config.seed
        if generator is not None:
            gen = generator[0] if isinstance(generator, (list, tuple)) else generator
            seed = int(gen.initial_seed())
        backend = self.config.backend or ("cuda" if sample.is_cuda else "numpy")
        first = int(np.searchsorted(self._first_calls, self._index))  # the grid node of the first call
        return Stepper(self.config.solver, self.schedule, self._grid_times[first:], x_init=sample,
                       prediction=PREDICTIONS[self.config.prediction_type], backend=backend, seed=seed, **self._params)

    def _as_data(self, model_output, x, i):
        """flow_prediction v = eps - x0 at call i as the data prediction x0 = (x - sigma v)/(alpha + sigma)."""
        t = self._call_times[i]
        a, s = float(self.schedule.alpha(t)), float(self.schedule.sigma(t))
        return (x - s * model_output.to(x.dtype)) / (a + s)

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None, return_dict=True,
             eta: float | None = None, use_clipped_model_output: bool | None = None):
        """Consume the model output at ``timestep`` (the next entry of ``timesteps``); ``prev_sample`` is the next
        model input, or the final state after the last call.  ``eta`` (DDIMPipeline's) must agree with the
        solver's (``solver_params={"eta": ...}``; 0 for the ODE solvers); ``use_clipped_model_output`` is accepted
        and has no effect (nothing is clipped)."""
        if eta is not None:
            have = float(getattr(self._solver, "eta", 0.0) or 0.0)
            if not float(eta) == have:
                raise DiffsolveError(f"step(eta={eta!r}): the solver {self.config.solver!r} runs with eta = {have:g}, "
                                     "and the scheduler's solver decides: DDIM's eta = 1 is solver='ddpm'; the "
                                     "stochastic solvers take their eta in solver_params (e.g. solver='dpmpp-2m-sde', "
                                     f"solver_params={{'eta': {float(eta)!r}}}); then pass the pipeline eta={have:g} "
                                     "or leave it at its default")
        if self.timesteps is None:
            raise DiffsolveError("call set_timesteps(...) before step(...)")
        i = self._index
        if i >= len(self._call_timesteps):
            raise DiffsolveError(f"all {len(self._call_timesteps)} model calls of this run are done; call "
                                 "set_timesteps(...) to start another")
        k = float(timestep.item() if isinstance(timestep, torch.Tensor) else timestep)
        want = float(self._call_timesteps[i])
        if not abs(k - want) <= 1e-3 * max(1.0, abs(want)):
            raise DiffsolveError(f"step {i} was called with timestep {k:g}, but the next model call is at timestep "
                                 f"{want:g} (scheduler.timesteps[{i}]); call step once per entry of timesteps, in "
                                 "order (set_begin_index(...) starts mid-way)")
        if self._stepper is None:
            self._stepper = self._start(sample, generator)
        elif sample is not self._last and not torch.equal(sample.to(self._last.dtype), self._last):
            raise DiffsolveError(f"step {i}: sample is not the prev_sample returned by step {i - 1}; the diffsolve "
                                 "run keeps its own state, so changing the sample between steps is not supported")
        st = self._stepper
        if self.config.prediction_type == "flow_prediction":
            model_output = self._as_data(model_output, st.x_model, i)
        st.step(model_output)
        self._index += 1
        out = (st.x if st.done else st.x_model).clone().to(sample.dtype)
        self._last = out
        if not return_dict:
            return (out,)
        return SchedulerOutput(prev_sample=out)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps) -> torch.Tensor:
        """x_t = alpha(t) x_0 + sigma(t) noise at each sample's timestep (DDPM: alpha^2 = alphas_cumprod[timestep];
        flow: alpha = 1 - sigma)."""
        ks = torch.as_tensor(timesteps).detach().cpu().numpy().astype(np.float64).reshape(-1)
        t = self.schedule.time_of_timestep(ks)
        shape = (-1,) + (1,) * (original_samples.ndim - 1)
        alpha = torch.as_tensor(np.asarray(self.schedule.alpha(t)), dtype=original_samples.dtype)
        sigma = torch.as_tensor(np.asarray(self.schedule.sigma(t)), dtype=original_samples.dtype)
        dev = original_samples.device
        return alpha.to(dev).reshape(shape) * original_samples + sigma.to(dev).reshape(shape) * noise

    def scale_noise(self, sample: torch.Tensor, timestep, noise: torch.Tensor) -> torch.Tensor:
        """FlowMatchEulerDiscreteScheduler's name for :meth:`add_noise` (flow pipelines' img2img)."""
        return self.add_noise(sample, noise, timestep)

    def __len__(self):
        return self.config.num_train_timesteps
