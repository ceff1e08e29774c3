"""k-diffusion-style sampling functions: ``sample_<solver>(model, x, sigmas, extra_args, callback, disable)`` for
every registered diffsolve solver (docs/interop/kdiffusion.md).

Conventions (k-diffusion's): ``model(x, sigma * s_in, **extra_args)`` is a denoiser D(x, sigma) ~ E[x_0 | x]
(data prediction) on the variance-exploding parameterisation x_sigma = x_0 + sigma * noise; ``x`` is the state at
``sigmas[0]`` (already scaled, e.g. ``noise * sigmas[0]``); ``sigmas`` is a strictly decreasing 1-D grid that may
end with 0.  Tensors come back on the input's device and dtype; float16 / bfloat16 states are computed in float32
(the model is called in the input's dtype), float32 / float64 ones in their own precision.

The sigma / time map: the schedule is ``edm`` (alpha = 1, sigma(t) = t), so diffsolve's time grid *is* the sigma
grid, t_i = sigmas[i], and the log-SNR is lam = -log sigma.  A final sigma = 0 (lam = +inf) is part of the grid:
a table solver takes it as k-diffusion's samplers do (``final="denoise"``: the one-call denoising step
x = D(x, sigmas[-2]); EDM's euler / heun their own churned Euler step), and multistep solvers step without
diffsolve's warm-down (``warm_down=inf``), so the results are k-diffusion's; pass ``warm_down=2`` for diffsolve's
(docs/algorithms/exponential_integrators.md §3.8).  The Langevin samplers run on the positive sigmas, then one
more call denoises.

Noise: stochastic solvers draw diffsolve's keyed Philox normals, keyed by (``seed``, ``sample_offset`` + i, step,
draw), instead of torch's global RNG, so their samples differ from k-diffusion's (the law is the same);
``noise_sampler`` is refused.  Other keywords are the solver's parameters (``variant="published"``, ``eta``,
``c1``, ...; unknown ones raise), plus ``seed``, ``sample_offset`` and ``backend`` (default ``cuda`` for CUDA
tensors, else ``cpu``).  ``callback({"x", "i", "sigma", "sigma_hat", "denoised"})`` is called once per program
step at its first model call; for the table solvers a program step is a sigma step, i = 0 .. len(sigmas) - 2 as in
k-diffusion (the last one the denoising step when sigmas end with 0); the Langevin samplers (``mala``, ``ula``,
``uld``, ``pc``, ``pc-song``, ``rtk-*``) take several program steps per sigma step and count those.

Functions (one per registered solver name, ``-`` as ``_``; variants through ``variant=``): sample_accel_ddim,
sample_accel_ddpm, sample_accel_sde, sample_ddim, sample_ddpm, sample_dpm_solver_1, sample_dpm_solver_1m,
sample_dpm_solver_1m_sde, sample_dpm_solver_2, sample_dpm_solver_2m, sample_dpm_solver_2m_sde, sample_dpm_solver_3,
sample_dpm_solver_3m, sample_dpmpp_1m, sample_dpmpp_1m_sde, sample_dpmpp_2m, sample_dpmpp_2m_sde, sample_dpmpp_2s,
sample_dpmpp_3m, sample_dpmpp_3m_sde, sample_dpmpp_3s, sample_dpmpp_4m, sample_dpmpp_5m, sample_euler_maruyama,
sample_mala, sample_pc, sample_pc_song, sample_rtk_mala, sample_rtk_uld, sample_seeds_1, sample_seeds_2,
sample_seeds_3, sample_ula, sample_uld, sample_unipc_1, sample_unipc_2, sample_unipc_3; :func:`sample` takes any
solver name (e.g. ``"dpmpp-6m"``).  Adaptive step size: :func:`sample_dpm_adaptive` (k-diffusion's signature;
docs/algorithms/adaptive.md).  Grids:
:func:`get_sigmas_karras`, :func:`get_sigmas_exponential`, :func:`get_sigmas_polyexponential`.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DiffsolveError
from ..progress import Progress
from ..schedules import get_schedule
from ..solvers import get_solver
from ..solvers.registry import Solver, peer_conventions, solver_names
from ..stepper import Stepper

__all__ = ["sample", "sample_dpm_adaptive", "sigma_schedule", "get_sigmas_karras", "get_sigmas_exponential",
           "get_sigmas_polyexponential"]


def _torch():
    import torch

    return torch


def _check_sigmas(sigmas) -> np.ndarray:
    """``sigmas`` as a float64 NumPy array, checked: 1-D, >= 2 finite values, strictly decreasing, >= 0."""
    torch = _torch()
    if isinstance(sigmas, torch.Tensor):
        arr = sigmas.detach().to("cpu", torch.float64).numpy()
    else:
        try:
            arr = np.asarray(sigmas, dtype=np.float64)
        except (TypeError, ValueError):
            raise DiffsolveError(f"sigmas must be a 1-D tensor of noise levels, got {type(sigmas).__name__}") from None
    if arr.ndim != 1 or arr.size < 2:
        raise DiffsolveError(f"sigmas must be a 1-D tensor with at least 2 values (1 step), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        where = np.flatnonzero(~np.isfinite(arr))[:10].tolist()
        raise DiffsolveError(f"sigmas contains non-finite values at positions {where}")
    bad = np.flatnonzero(np.diff(arr) >= 0)
    if bad.size:
        i = int(bad[0])
        raise DiffsolveError(f"sigmas must be strictly decreasing (noisiest first), but sigmas[{i}] = {arr[i]!r} <= "
                             f"sigmas[{i + 1}] = {arr[i + 1]!r}")
    if arr[-1] < 0:
        raise DiffsolveError(f"sigmas must be >= 0, got sigmas[-1] = {arr[-1]!r}")
    return arr


def sigma_schedule(sigmas):
    """The diffsolve schedule and time grid of a k-diffusion sigma grid: ``edm`` (alpha = 1, sigma(t) = t) and
    t = sigmas (float64), so that x_t = x_0 + t * noise; sigma_min is only the schedule's default range."""
    grid = _check_sigmas(sigmas)
    positive = grid[grid > 0]
    top = float(grid[0])
    low = min(float(positive[-1]), top / 2)
    return get_schedule("edm", sigma_min=low, sigma_max=top), grid


def _state(x):
    torch = _torch()
    if not isinstance(x, torch.Tensor):
        raise DiffsolveError(f"x must be a torch tensor (the state at sigmas[0], shape (n, ...)), got "
                             f"{type(x).__name__}")
    if x.ndim < 2 or 0 in x.shape:
        raise DiffsolveError(f"x must have a batch axis first and no empty axis, shape (n, ...), got {tuple(x.shape)}; "
                             "for one sample use x[None]")
    if not x.dtype.is_floating_point:
        raise DiffsolveError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if not torch.isfinite(x).all():
        raise DiffsolveError("x contains NaN or inf values; pass finite initial states")
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch, work


class _Model:
    """Calls D(x, sigma) in the input's dtype and checks what it returns."""

    def __init__(self, model, x, extra_args, torch):
        if not callable(model):
            raise DiffsolveError(f"model must be callable as model(x, sigma, **extra_args), got {type(model).__name__}")
        if extra_args is not None and not isinstance(extra_args, dict):
            raise DiffsolveError(f"extra_args must be a dict of keyword arguments for the model, got "
                                 f"{type(extra_args).__name__}")
        self.model, self.extra, self.torch = model, extra_args or {}, torch
        self.shape, self.dtype, self.device, self.n = tuple(x.shape), x.dtype, x.device, x.shape[0]

    def __call__(self, xm, sigma: float):
        torch = self.torch
        s = torch.full((self.n,), sigma, dtype=self.dtype, device=self.device)
        out = self.model(xm.to(self.dtype), s, **self.extra)
        if not isinstance(out, torch.Tensor):
            raise DiffsolveError(f"the model returned {type(out).__name__} at sigma = {sigma!r}; it must return a "
                                 "tensor shaped like x (the denoised estimate)")
        if tuple(out.shape) != self.shape:
            raise DiffsolveError(f"the model returned shape {tuple(out.shape)} at sigma = {sigma!r} for an input of "
                                 f"shape {self.shape}; a denoiser returns a tensor shaped like x")
        if out.device != self.device:
            raise DiffsolveError(f"the model returned a tensor on {out.device} for an input on {self.device}")
        if not out.dtype.is_floating_point:
            raise DiffsolveError(f"the model returned dtype {out.dtype} at sigma = {sigma!r}; return floating values")
        return out.detach()


def sample(solver, model, x, sigmas, extra_args=None, callback=None, disable=None, *, seed=0, sample_offset=0,
           backend=None, noise_sampler=None, variant=None, **solver_params):
    """Sample with diffsolve ``solver`` (any registered name) under k-diffusion's conventions (module docstring):
    ``model(x, sigma * s_in, **extra_args)`` a denoiser, ``x`` the state at ``sigmas[0]``, ``sigmas`` decreasing
    (may end with 0).  Returns the final state, on ``x``'s device and in its dtype."""
    if noise_sampler is not None:
        raise DiffsolveError("noise_sampler is not supported: diffsolve draws its own keyed noise (pass seed= and "
                             "sample_offset= instead); samples of stochastic solvers therefore differ from "
                             "k-diffusion's, their law does not")
    if callback is not None and not callable(callback):
        raise DiffsolveError(f"callback must be callable (or None), got {type(callback).__name__}")
    torch, work = _state(x)
    schedule, grid = sigma_schedule(sigmas)
    conventions, final = peer_conventions(solver, variant)  # k-diffusion's stepping and last step
    sampler = get_solver(solver, variant=variant, **{**conventions, **solver_params})
    if backend is None:
        backend = "cuda" if x.device.type == "cuda" else "cpu"
    D = _Model(model, x, extra_args, torch)
    # a table solver's program takes the step to sigma = 0 itself (its own formula, or the one-call denoising step);
    # other samplers (the Langevin programs) run on the positive sigmas, then one call denoises
    to_zero = grid[-1] == 0.0 and not isinstance(sampler, Solver)
    positive = grid[:-1] if to_zero else grid
    name = getattr(sampler, "name", str(solver))
    with torch.no_grad():
        x0 = x.detach().to(work)
        st = None
        if positive.size >= 2:
            st = Stepper(sampler, schedule, positive, x_init=x0, prediction="data", backend=backend, seed=seed,
                         sample_offset=sample_offset, final=final)
        per_sigma = st is None or st.steps == positive.size - 1
        steps = (st.steps if st is not None else 0) + int(to_zero)
        sigma_of = (lambda i, t: sigmas[i]) if isinstance(sigmas, torch.Tensor) else (lambda i, t: float(grid[i]))
        with Progress(steps, f"sample_{name}", enabled=not disable) as bar:
            last = -1
            while st is not None and not st.done:
                i, t, xm = st.step_index, st.t_model, st.x_model
                if st.needs_energy:
                    raise DiffsolveError(f"solver {name!r} needs log p_t (energy='exact'), which a denoiser does not "
                                         "give; pass energy='simpson' or 'trapezoid'")
                xin = xm.to(x.dtype, copy=True) if callback is not None and i != last else xm
                out = D(xin, t)
                if callback is not None and i != last:
                    sig = sigma_of(i, t) if per_sigma else torch.tensor(t)
                    callback({"x": xin, "i": i, "sigma": sig, "sigma_hat": torch.tensor(t) if not per_sigma
                              or t != grid[i] else sig, "denoised": out})
                st.step(out.to(work))
                if st.step_index != i:
                    bar.update(st.step_index - i)
                last = i
            xs = st.x if st is not None else x0
            if to_zero:
                i, t = grid.size - 2, float(grid[-2])
                xin = xs.to(x.dtype, copy=True)
                out = D(xin, t)
                if callback is not None:
                    sig = sigma_of(i, t)
                    callback({"x": xin, "i": (st.steps if st is not None else 0), "sigma": sig, "sigma_hat": sig,
                              "denoised": out})
                bar.update(1)
                return out.to(x.dtype, copy=True)
            return xs.to(x.dtype, copy=True)


def sample_dpm_adaptive(model, x, sigma_min, sigma_max, extra_args=None, callback=None, disable=None, order=3,
                        rtol=0.05, atol=0.0078, h_init=0.05, pcoeff=0.0, icoeff=1.0, dcoeff=0.0, accept_safety=0.81,
                        eta=0.0, s_noise=1.0, noise_sampler=None, return_info=False, *, variant="published",
                        seed=0, backend=None):
    """k-diffusion's ``sample_dpm_adaptive`` (DPM-Solver-12 / 23 with a PID controller) run by
    :func:`diffsolve.adaptive.sample_adaptive` on the ``edm`` schedule from ``sigma_max`` to ``sigma_min``: the
    same pair (``variant="published"``: the papers' formulas, as k-diffusion; ``"exact"`` the interpolant
    integrated exactly), error norm and controller, hence the same steps.  Returns the state at ``sigma_min``
    (and with ``return_info`` k-diffusion's info dict: ``steps``, ``nfe``, ``n_accept``, ``n_reject``; ``nfe``
    counts the calls made: after a rejection the start's call is reused, so it is ``n_reject`` below
    k-diffusion's).  ``callback`` gets k-diffusion's record after every trial.  ``eta > 0`` (ancestral steps)
    draws diffsolve's keyed normals (``seed``), so its samples differ from k-diffusion's (the law does not);
    ``noise_sampler`` is refused; ``disable`` is accepted (no progress bar)."""
    from ..adaptive import sample_adaptive

    if noise_sampler is not None:
        raise DiffsolveError("noise_sampler is not supported: diffsolve draws its own keyed noise (pass seed= "
                             "instead); samples with eta > 0 therefore differ from k-diffusion's, their law does not")
    bounds = []
    for nm, v in (("sigma_min", sigma_min), ("sigma_max", sigma_max)):
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise DiffsolveError(f"{nm} must be a positive number, got {type(v).__name__}") from None
        if not math.isfinite(v) or v <= 0:
            raise DiffsolveError(f"{nm} must be a finite positive number (the adaptive steps end at sigma_min > 0), "
                                 f"got {v!r}")
        bounds.append(v)
    if not bounds[1] > bounds[0]:
        raise DiffsolveError(f"need sigma_max > sigma_min, got sigma_min={bounds[0]!r}, sigma_max={bounds[1]!r}")
    if callback is not None and not callable(callback):
        raise DiffsolveError(f"callback must be callable (or None), got {type(callback).__name__}")
    torch, work = _state(x)
    schedule = get_schedule("edm", sigma_min=bounds[0], sigma_max=bounds[1])
    D = _Model(model, x, extra_args, torch)
    if backend is None:
        backend = "cuda" if x.device.type == "cuda" else "cpu"

    def record(r):
        sig = torch.tensor(r["t"])
        callback({"x": r["x"], "i": r["i"], "sigma": sig, "sigma_hat": sig, "denoised": r["model_output"],
                  "error": r["error"], "h": r["h_next"], **r["stats"].info()})

    with torch.no_grad():
        res = sample_adaptive(D, schedule, bounds[1], bounds[0], x_init=x.detach().to(work), order=order,
                              prediction="data", variant=variant, rtol=rtol, atol=atol, h_init=h_init, pcoeff=pcoeff,
                              icoeff=icoeff, dcoeff=dcoeff, accept_safety=accept_safety, eta=eta, s_noise=s_noise,
                              seed=seed, backend=backend,
                              callback=record if callback is not None else None)
    out = res.x.to(x.dtype, copy=True)
    return (out, res.stats.info()) if return_info else out


def _make(name):
    def fn(model, x, sigmas, extra_args=None, callback=None, disable=None, **solver_params):
        return sample(name, model, x, sigmas, extra_args, callback, disable, **solver_params)

    fn.__name__ = fn.__qualname__ = "sample_" + name.replace("-", "_")
    fn.__doc__ = (f"diffsolve's {name!r} with k-diffusion's calling convention (see :func:`sample`; keywords: "
                  f"``seed``, ``sample_offset``, ``backend``, ``variant`` and the solver's parameters).")
    return fn


SOLVERS = tuple(sorted({n.split(":")[0] for n in solver_names()}))  # the names registered at import
for _name in SOLVERS:
    globals()["sample_" + _name.replace("-", "_")] = _make(_name)
    __all__.append("sample_" + _name.replace("-", "_"))
del _name


def __getattr__(attr):
    """``sample_<name>`` for any other name the registry resolves: one registered after this module was imported
    (e.g. by ``diffsolve.derive``) or a parameterised one (``sample_heun``, ``sample_euler``, ``sample_deis_3``,
    ``sample_dpmpp_6m``)."""
    if attr.startswith("sample_"):
        name = attr[len("sample_"):].replace("_", "-")
        try:
            get_solver(name)
        except DiffsolveError:
            pass
        else:
            fn = globals()[attr] = _make(name)
            return fn
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


# -- grids (k-diffusion's get_sigmas_*: n noise levels from sigma_max down to sigma_min, then a final 0) -----------
def _grid_args(n, sigma_min, sigma_max, rho=None):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DiffsolveError(f"n must be a positive integer (the number of nonzero sigmas), got {n!r}")
    for nm, v in (("sigma_min", sigma_min), ("sigma_max", sigma_max)) + ((("rho", rho),) if rho is not None else ()):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) \
                or v <= 0:
            raise DiffsolveError(f"{nm} must be a finite positive number, got {v!r}")
    if not sigma_max > sigma_min:
        raise DiffsolveError(f"need sigma_max > sigma_min, got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}")


def _out(sig, device, dtype):
    torch = _torch()
    dtype = torch.get_default_dtype() if dtype is None else dtype
    return torch.as_tensor(np.append(sig, 0.0), dtype=dtype, device=device)


def get_sigmas_karras(n, sigma_min, sigma_max, rho=7.0, device="cpu", dtype=None):
    """Karras et al. (2022) eq. 5: sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
    i = 0..n-1, then 0 (computed in float64; ``dtype`` default torch's default dtype)."""
    _grid_args(n, sigma_min, sigma_max, rho)
    ramp = np.linspace(0.0, 1.0, n)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    sig[0], sig[-1] = sigma_max, sigma_min if n > 1 else sigma_max  # exact end points
    return _out(sig, device, dtype)


def get_sigmas_exponential(n, sigma_min, sigma_max, device="cpu", dtype=None):
    """n sigmas uniform in log sigma from sigma_max to sigma_min, then 0."""
    _grid_args(n, sigma_min, sigma_max)
    sig = np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), n))
    sig[0], sig[-1] = sigma_max, sigma_min if n > 1 else sigma_max
    return _out(sig, device, dtype)


def get_sigmas_polyexponential(n, sigma_min, sigma_max, rho=1.0, device="cpu", dtype=None):
    """log sigma_i = log sigma_min + (1 - i/(n-1))^rho (log sigma_max - log sigma_min), i = 0..n-1, then 0."""
    _grid_args(n, sigma_min, sigma_max, rho)
    ramp = np.linspace(1.0, 0.0, n) ** rho
    sig = np.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min))
    sig[0], sig[-1] = sigma_max, sigma_min if n > 1 else sigma_max
    return _out(sig, device, dtype)
