"""``DiffsolveScheduler``: a diffusers scheduler (``SchedulerMixin`` + ``ConfigMixin``) backed by any diffsolve table
solver (docs/interop/diffusers.md).

    pipe.scheduler = DiffsolveScheduler.from_config(pipe.scheduler.config, solver="dpmpp-2m")

The schedule is ``Schedule.from_diffusers(self.config)`` (the DDPM-family keys: discrete, VP).  ``set_timesteps``
builds a diffsolve time grid and lists one timestep per model call (``timestep = N t - 1``, diffusers' convention;
stage times of multi-stage solvers included), so the pipeline's ``for t in scheduler.timesteps`` loop calls ``step``
once per model call.  ``step`` drives a :class:`diffsolve.Stepper`, created on the first call from ``sample``;
``prev_sample`` is the next model input (for a stage call) or the state after the step.  Noise of stochastic solvers
is diffsolve's keyed noise, keyed by (seed, sample, step, draw); ``seed`` is ``generator.initial_seed()`` when a
generator is passed to the first ``step``, else the config's ``seed``.
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
from ..stepper import Stepper, prepare_run

__all__ = ["DiffsolveScheduler", "GRIDS", "PREDICTIONS"]

PREDICTIONS = {"epsilon": "eps", "sample": "data", "v_prediction": "v"}  # diffusers prediction_type -> diffsolve
GRIDS = tuple(SPACINGS) + ("linspace", "trailing")  # diffsolve spacings + diffusers' timestep spacings


class DiffsolveScheduler(SchedulerMixin, ConfigMixin):
    """A diffusers scheduler that runs diffsolve's ``solver`` (``variant``, ``solver_params``) on the DDPM-family
    schedule of its config.  ``grid``: a :func:`diffsolve.time_grid` spacing (``logsnr``, ``time``, ``karras``,
    ``quadratic``) or diffusers' ``linspace`` / ``trailing`` timestep spacing; ``timestep_spacing`` is stored but
    not used (``grid`` chooses).  ``backend``: diffsolve's engine (``None``: ``cuda`` for CUDA tensors, else
    ``numpy``).  ``order`` is diffusers' sense: model calls per step (the solver's stages)."""

    _compatibles = []
    order = 1

    @register_to_config
    def __init__(self, solver: str = "dpmpp-2m", variant: str | None = None, solver_params: dict | None = None,
                 grid: str = "logsnr", seed: int = 0, backend: str | None = None, num_train_timesteps: int = 1000,
                 beta_start: float = 0.0001, beta_end: float = 0.02, beta_schedule: str = "linear",
                 trained_betas=None, prediction_type: str = "epsilon", timestep_spacing: str = "linspace"):
        if trained_betas is not None and not isinstance(trained_betas, list):  # the config must stay JSON
            self.register_to_config(trained_betas=np.asarray(trained_betas, dtype=np.float64).tolist())
        if prediction_type not in PREDICTIONS:
            raise DiffsolveError(f"prediction_type must be one of {', '.join(PREDICTIONS)}, got {prediction_type!r}")
        if grid not in GRIDS:
            raise DiffsolveError(f"grid must be one of {', '.join(GRIDS)}, got {grid!r}")
        if solver_params is not None and not isinstance(solver_params, dict):
            raise DiffsolveError(f"solver_params must be a dict of solver parameters, got "
                                 f"{type(solver_params).__name__}")
        self.schedule = Schedule.from_diffusers(dict(self.config))
        if self.schedule.timestep_convention is None or self.schedule.timestep_map.kind != "index":
            raise DiffsolveError("DiffsolveScheduler needs a DDPM-family (discrete) config; got schedule "
                                 f"{self.schedule.name!r}")
        self._params = dict(solver_params or {})
        if variant is not None:
            self._params["variant"] = variant
        probe = self._run(time_grid(self.schedule, 2, "time"))  # refuses unknown solvers / parameters now
        self.init_noise_sigma = 1.0  # VP: x_T ~ N(0, 1)
        self.num_inference_steps = None
        self.timesteps = None
        self.order = self._calls_per_step(probe)
        self._reset()

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
        self._stepper, self._index, self._last = None, 0, None

    def _grid(self, num_inference_steps, timesteps):
        s, n = self.schedule, self.config.num_train_timesteps
        t_min = s.domain[0]
        if timesteps is not None:
            ks = np.asarray(timesteps.cpu() if isinstance(timesteps, torch.Tensor) else timesteps, dtype=np.float64)
            if ks.ndim != 1 or ks.size < 1:
                raise DiffsolveError(f"timesteps must be a 1-D sequence of model-call timesteps, got shape {ks.shape}")
            grid = np.append(s.time_of_timestep(ks), t_min)  # the grid ends at timestep 0 (t_min)
            if grid[-2] <= t_min:
                raise DiffsolveError("the last of timesteps is 0 (t_min, the end of the grid): leave it out; the "
                                     "grid always ends at timestep 0")
            return time_grid(s, len(ks), grid)
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, (int, np.integer)):
            raise DiffsolveError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        steps, spacing = int(num_inference_steps), self.config.grid
        if not 1 <= steps < n:
            raise DiffsolveError(f"num_inference_steps must be in [1, {n - 1}], got {steps}")
        if spacing == "linspace":  # diffusers' linspace: round(linspace(0, N - 1, steps + 1))[::-1][:-1]
            ks = np.linspace(0, n - 1, steps + 1).round()[::-1][:-1]
        elif spacing == "trailing":  # diffusers' trailing: round(arange(N, 0, -N/steps)) - 1
            ks = np.round(np.arange(n, 0, -n / steps)) - 1
        else:
            return time_grid(s, steps, spacing)
        return self._grid(None, ks)

    def _sigma_grid(self, sigmas):
        """The grid through the noise levels ``sigmas`` (diffusers' sigma = sigma_t / alpha_t, noisiest first); a
        final 0 (a step to the clean state) is not a node this schedule has and is refused."""
        sig = np.asarray(sigmas.cpu() if isinstance(sigmas, torch.Tensor) else sigmas, dtype=np.float64)
        if sig.ndim != 1 or sig.size < 2 or not np.all(np.isfinite(sig)) or np.any(sig <= 0):
            raise DiffsolveError(f"sigmas must be a 1-D sequence of at least 2 positive finite noise levels, got "
                                 f"shape {sig.shape} with values in [{sig.min():g}, {sig.max():g}]; leave out a final "
                                 "0 (the grid ends at timestep 0)" if sig.size else "sigmas must not be empty")
        lo, hi = (float(v) for v in self.schedule.lam(np.asarray(self.schedule.domain[::-1], dtype=np.float64)))
        lam = -np.log(sig)
        if lam.min() < lo - 1e-9 or lam.max() > hi + 1e-9:
            raise DiffsolveError(f"sigmas must lie in [{np.exp(-hi):.4g}, {np.exp(-lo):.4g}] (this schedule's "
                                 f"timesteps {self.config.num_train_timesteps - 1} .. 0), got "
                                 f"[{sig.min():.4g}, {sig.max():.4g}]")
        return time_grid(self.schedule, sig.size - 1, self.schedule.t_of_lam(np.clip(lam, lo, hi)))

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, timesteps=None, sigmas=None):
        """Build the grid (``num_inference_steps`` steps; or the grid nodes ``timesteps``: model-call timesteps of
        each step's first stage, noisiest first, the grid then ending at timestep 0; or the nodes ``sigmas``:
        noise levels sigma_t / alpha_t, noisiest first, the last one the grid's end) and list one timestep per
        model call in ``timesteps``.  Resets the run."""
        if sum(v is not None for v in (num_inference_steps, timesteps, sigmas)) != 1:
            raise DiffsolveError("pass exactly one of num_inference_steps, timesteps and sigmas")
        grid = self._sigma_grid(sigmas) if sigmas is not None else self._grid(num_inference_steps, timesteps)
        run = self._run(grid)
        taus = np.concatenate([seg.table.tau.ravel() for seg in run.program.segments])
        ks = np.asarray(self.schedule.timestep_of(taus), dtype=np.float64)
        integral = np.all(np.abs(ks - np.round(ks)) < 1e-6)
        self._grid_times, self._call_times = grid, taus
        self._call_timesteps = np.round(ks) if integral else ks
        self.timesteps = torch.from_numpy(self._call_timesteps.astype(np.int64 if integral else np.float32)).to(device)
        self.num_inference_steps = run.program.steps
        self.order = self._calls_per_step(run)
        self._reset()

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        """The model input is the state itself (VP)."""
        return sample

    def _start(self, sample, generator):
        seed = self.config.seed
        if generator is not None:
            gen = generator[0] if isinstance(generator, (list, tuple)) else generator
            seed = int(gen.initial_seed())
        backend = self.config.backend or ("cuda" if sample.is_cuda else "numpy")
        return Stepper(self.config.solver, self.schedule, self._grid_times, x_init=sample,
                       prediction=PREDICTIONS[self.config.prediction_type], backend=backend, seed=seed, **self._params)

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None, return_dict=True):
        """Consume the model output at ``timestep`` (the next entry of ``timesteps``); ``prev_sample`` is the next
        model input, or the final state after the last call."""
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
                                 "order (starting mid-way is not supported)")
        if self._stepper is None:
            self._stepper = self._start(sample, generator)
        elif sample is not self._last and not torch.equal(sample.to(self._last.dtype), self._last):
            raise DiffsolveError(f"step {i}: sample is not the prev_sample returned by step {i - 1}; the diffsolve "
                                 "run keeps its own state, so changing the sample between steps is not supported")
        st = self._stepper
        st.step(model_output)
        self._index += 1
        out = (st.x if st.done else st.x_model).clone().to(sample.dtype)
        self._last = out
        if not return_dict:
            return (out,)
        return SchedulerOutput(prev_sample=out)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps) -> torch.Tensor:
        """x_t = alpha(t) x_0 + sigma(t) noise at each sample's timestep (alpha^2 = alphas_cumprod[timestep])."""
        ks = torch.as_tensor(timesteps).detach().cpu().numpy().astype(np.float64).reshape(-1)
        t = self.schedule.time_of_timestep(ks)
        shape = (-1,) + (1,) * (original_samples.ndim - 1)
        alpha = torch.as_tensor(np.asarray(self.schedule.alpha(t)), dtype=original_samples.dtype)
        sigma = torch.as_tensor(np.asarray(self.schedule.sigma(t)), dtype=original_samples.dtype)
        dev = original_samples.device
        return alpha.to(dev).reshape(shape) * original_samples + sigma.to(dev).reshape(shape) * noise

    def __len__(self):
        return self.config.num_train_timesteps
