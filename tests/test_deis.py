"""DEIS (diffsolve.solvers.deis, diffsolve.symbolic.deis; docs/algorithms/deis.md).

* the log-rho form of diffusers' DEISMultistepScheduler is dpm-solver-{k}m (symbolic identity, equal tables);
* the tAB quadrature against exact references: SymPy closed forms (edm, ve, flow), mpmath at 30 digits (vp-linear,
  a discrete schedule across its kinks), the dpm-solver tables where t is affine in lam (ve);
* measured orders on exact Gaussian laws, the default-variant measurement, the backends, the step to sigma = 0;
* peer: diffusers' DEISMultistepScheduler, orders 1-3, step by step, float32 and float64.
"""

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import diffsolve as ds
from diffsolve.accuracy.order import exact_error
from diffsolve.solvers.deis import tab_weights
from diffsolve.symbolic import deis as sym
from diffsolve.symbolic.checks import SymbolicCheckError
from diffsolve.symbolic.schedule import T
from helpers import GAUSSIAN_D8, ORDER_SETUP, VP, order_setup, schedule

EDM, VE, FLOW = schedule("edm"), schedule("ve"), schedule("flow")


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


# -- diffusers' DEIS is dpm-solver-{k}m -----------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3])
def test_logrho_weights_are_dpm_solver_multistep(k):
    sym.check_logrho(k)


@pytest.mark.parametrize("k", [2, 3])
def test_logrho_check_fails_for_the_published_forms(k):
    with pytest.raises(SymbolicCheckError, match="published"):
        sym.check_logrho(k, "published")


def test_logrho_variant_runs_the_dpm_solver_tables():
    grid = ds.time_grid(VP, 9, "karras")
    for k in (1, 2, 3):  # the shipped tables (higher k are generated on first use, the same way)
        ours, ref = ds.get_solver(f"deis-{k}", variant="logrho"), ds.get_solver(f"dpm-solver-{k}m")
        assert ours.extra["levels"] == ref.extra["levels"] and ours.order == k and ours.variant == "logrho"
        a, b = ours.table(VP, grid), ref.table(VP, grid)
        for name in "ABE":
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert ds.get_solver("deis-2").variant == "logrho"  # the default (docs/algorithms/deis.md §5)


# -- the tAB quadrature against exact references ----------------------------------------------------------------------
def _closed_form(log_alpha, log_sigma, nodes, t_end, values=None):
    exact = [sp.Rational(float(v)) for v in nodes]  # the float64 nodes, exactly
    weights = sym.tab_weights(log_alpha, log_sigma, exact, sp.Rational(float(t_end)))
    assert weights is not None
    return np.array([float(sp.N(w.subs(values or {}), 30)) for w in weights])


def test_quadrature_is_the_closed_form_on_edm_ve_and_flow():
    a, c = sp.Symbol("a", real=True), sp.Symbol("c", positive=True)  # ve: log sigma = a + c t
    cases = [
        (EDM, sp.Integer(0), sp.log(T), None, [1.3, 2.1, 3.7, 4.05], 0.6),
        (EDM, sp.Integer(0), sp.log(T), None, [0.05, 0.2, 0.3], 0.0),  # the step to sigma = 0
        (VE, sp.Integer(0), a + c * T, {a: sp.log(sp.Rational(1, 100)), c: sp.log(5000)}, [0.5, 0.61, 0.8], 0.3),
        (FLOW, sp.log(1 - T), sp.log(T), None, [0.52, 0.6, 0.75], 0.31),
    ]
    for sch, log_alpha, log_sigma, values, nodes, t_end in cases:
        ref = _closed_form(log_alpha, log_sigma, nodes, t_end, values)
        ours = tab_weights(sch, [nodes], [t_end])[0]
        assert _rel(ours, ref) < 2e-15, (sch.name, ours, ref)


def _mp_weights(drho, nodes, t_end, pieces=(), digits=30):
    """int_{t_n}^{t_end} L_j(t) rho'(t) dt to ``digits`` digits (mpmath tanh-sinh, split at ``pieces``)."""
    with mp.workdps(digits):
        T_ = [mp.mpf(float(v)) for v in nodes]
        cuts = [mp.mpf(float(t_end))] + sorted(mp.mpf(float(p)) for p in pieces) + [T_[0]]
        out = []
        for j, tj in enumerate(T_):
            def integrand(t):
                basis = mp.fprod((t - tm) / (tj - tm) for m, tm in enumerate(T_) if m != j)
                return basis * drho(t)
            out.append(-sum(mp.quad(integrand, [lo, hi]) for lo, hi in zip(cuts[:-1], cuts[1:])))
        return np.array([float(v) for v in out])


def test_quadrature_matches_mpmath_on_vp_linear():
    b0, b1 = mp.mpf("0.1"), mp.mpf(20)

    def drho(t):  # rho = sqrt(e^E - 1), E = -2 log alpha = (b1 - b0) t^2/2 + b0 t
        e = (b1 - b0) * t**2 / 2 + b0 * t
        return ((b1 - b0) * t + b0) * mp.exp(e) / (2 * mp.sqrt(mp.expm1(e)))

    for nodes, t_end in [([0.004, 0.01, 0.02], 1e-3),  # the last step, near the sqrt(t) behaviour of sigma
                         ([0.6, 0.65, 0.7, 0.8], 0.55),
                         ([1.0], 1e-3)]:  # one step over the whole range
        assert _rel(tab_weights(VP, [nodes], [t_end])[0], _mp_weights(drho, nodes, t_end)) < 1e-14


def test_quadrature_matches_mpmath_across_the_kinks_of_a_discrete_schedule():
    sch = ds.Schedule.discrete(betas=np.linspace(1e-3, 0.2, 40))
    la = [mp.mpf(0)] + [mp.mpf(float(v)) for v in sch.log_alpha_nodes]  # log alpha at t = 0, 1/40, ..., 1

    def drho(t):  # rho = sqrt(e^{-2 s} - 1), s = log alpha linear on each piece
        k = min(int(mp.floor(t * 40)), 39)
        slope = (la[k + 1] - la[k]) * 40
        s = la[k] + slope * (t - mp.mpf(k) / 40)
        return -slope * mp.exp(-2 * s) / mp.sqrt(mp.expm1(-2 * s))

    nodes, t_end = [0.5125, 0.6, 0.7], 0.3125  # 8 kinks inside the step, none at its ends
    kinks = [k / 40 for k in range(13, 21)]
    assert _rel(tab_weights(sch, [nodes], [t_end])[0], _mp_weights(drho, nodes, t_end, kinks, 20)) < 1e-14


@pytest.mark.parametrize("k", [1, 2, 3])
def test_tab_is_logrho_where_t_is_affine_in_lam(k):
    """On ve, lam = -log sigma is affine in t: Lagrange in t is Lagrange in log rho, so tAB = dpm-solver-{k}m."""
    grid = ds.time_grid(VE, 11, "karras")
    a, b = ds.get_solver(f"deis-{k}", variant="tab").table(VE, grid), ds.get_solver(f"dpm-solver-{k}m").table(VE, grid)
    np.testing.assert_allclose(a.A, b.A, rtol=1e-14)
    assert _rel(np.concatenate([a.B, a.E], axis=2), np.concatenate([b.B, b.E], axis=2)) < 1e-13


# -- orders, the default variant, sampling ----------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_tab_measures_order_k(k):
    """Exact-law W2 on the anisotropic Gaussian, exact history, lam in [-2.5, 3] on Karras grids (the registry
    order set-up): slope within 0.3 of k (measured 1.00, 1.99, 2.97, 3.94)."""
    solver = ds.get_solver(f"deis-{k}", variant="tab")
    study = ds.order_study(solver, GAUSSIAN_D8, VP, **ORDER_SETUP)
    assert solver.order == k and abs(study.order - k) <= 0.3, study.table()


def test_tab_order_on_edm():
    study = ds.order_study(ds.get_solver("deis-3", variant="tab"), GAUSSIAN_D8, EDM, **order_setup(EDM))
    assert abs(study.order - 3) <= 0.3, study.table()


def test_default_variant_measurement():
    """docs/algorithms/deis.md §5: W2 on gaussian:d=8 with warm-up, vp-linear 1 -> 1e-3.  logrho is smaller on the
    log-SNR grid (the library's default spacing), tab on the grid uniform in t."""
    tgt = ds.targets.from_spec("gaussian:d=8")

    def err(variant, spacing, k=3, steps=20):
        grid = ds.time_grid(VP, steps, spacing)
        return exact_error(ds.get_solver(f"deis-{k}", variant=variant), tgt, VP, grid, exact_history=False)

    assert err("logrho", "logsnr") < 0.3 * err("tab", "logsnr")
    assert err("tab", "time") < 0.5 * err("logrho", "time")


def test_backends_agree_and_paths_converge():
    tgt = ds.targets.from_spec("gmm:d=3,k=4,seed=2")
    grid = ds.time_grid(VP, 12, "time")
    x0 = ds.sampling.prior_sample(VP, grid[0], 50, tgt.dim, seed=1)
    ref = ds.sample("deis-3:tab", tgt, VP, grid, x_init=x0, backend="numpy")
    fused = ds.sample("deis-3:tab", tgt, VP, grid, x_init=x0, backend="cpu")
    np.testing.assert_allclose(fused, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    eps = lambda x, t: tgt.predict(x, t, VP, "eps")  # noqa: E731
    kw = dict(x_init=x0, prediction="eps")
    np.testing.assert_array_equal(ds.sample("deis-3:tab", eps, VP, grid, backend="cpu", **kw),
                                  ds.sample("deis-3:tab", eps, VP, grid, backend="numpy", **kw))
    path = lambda n: ds.sample("deis-3:tab", tgt, VP, ds.time_grid(VP, n, "time"), x_init=x0)  # noqa: E731
    fine = path(400)
    errs = [np.abs(path(n) - fine).max() for n in (24, 48)]
    assert errs[1] < errs[0] / 4, errs  # third order: ~8x per halving


def test_tab_steps_to_sigma_zero():
    """tAB integrates in t, so its own table takes a final step to sigma = 0 (rho = 0) at full order; on a
    Gaussian the exact-law error still falls as the grid is refined, and the samples are the backends' alike."""
    grid = lambda n: np.append(ds.time_grid(EDM, n, "karras"), 0.0)  # noqa: E731
    tgt = ds.targets.from_spec("gaussian:d=4")
    solver = ds.get_solver("deis-3", variant="tab")
    program = solver.program(EDM, grid(10))
    assert len(program.segments) == 1 and np.all(solver.levels(EDM, grid(10)) == np.minimum(np.arange(11), 2))
    last = program.segments[0].table
    assert last.A[-1, 1] == 1.0 and np.all(np.isfinite(last.E[-1])) and np.all(last.E[-1, 1] != 0)
    errs = [exact_error(solver, tgt, EDM, grid(n), exact_history=False) for n in (20, 40)]
    assert errs[1] < errs[0] / 4, errs
    x0 = ds.sampling.prior_sample(EDM, grid(12)[0], 30, tgt.dim, seed=3)
    run = lambda backend: ds.sample(solver, tgt, EDM, grid(12), x_init=x0, backend=backend)  # noqa: E731
    np.testing.assert_allclose(run("cpu"), run("numpy"), rtol=1e-12, atol=1e-12)


def test_bad_input():
    for name, match in [("deis-0", r"between 1 and 12, got 0"), ("deis-13", r"between 1 and 12, got 13")]:
        with pytest.raises(ds.DiffsolveError, match=match):
            ds.get_solver(name)
    with pytest.raises(ds.DiffsolveError, match=r"deis-2 has variants 'logrho', 'tab', got variant = 'rho'"):
        ds.get_solver("deis-2", variant="rho")
    with pytest.raises(ds.DiffsolveError, match=r"cannot start a step at alpha = 0: grid\[0\] = 1.0"):
        ds.get_solver("deis-2", variant="tab").table(FLOW, np.array([1.0, 0.5, 0.2]))
    with pytest.raises(ds.DiffsolveError, match="solver.program"):
        ds.get_solver("deis-2", variant="tab").fills[0].py()
    with pytest.raises(ds.DiffsolveError, match=r"t_end must hold one end time below"):
        tab_weights(VP, [[0.5, 0.6]], [0.7])
    with pytest.raises(ds.DiffsolveError, match=r"must be distinct times"):
        tab_weights(VP, [[0.5, 0.6, 0.6]], [0.4])


# -- peer: diffusers' DEISMultistepScheduler --------------------------------------------------------------------------
def _diffusers(k, steps):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DEISMultistepScheduler(solver_order=k, lower_order_final=False)
    ref.set_timesteps(steps)
    sch = ds.Schedule.from_diffusers(ref.config)
    grid = np.append(sch.time_of_timestep(ref.timesteps.numpy().astype(np.float64)), sch.time_of_timestep(0.0))
    return ref, sch, grid


PEER_TARGET = ds.targets.from_spec("gmm:d=4,k=3,seed=5,scale=1.0,var=0.2")


def _model32(sch):
    """eps of the exact mixture denoiser as a float32 function of (x, t)."""
    def model(x, t):
        x32 = np.asarray(x, np.float32).astype(np.float64)
        return PEER_TARGET.predict(x32, t, sch, "eps").astype(np.float32)
    return model


@pytest.mark.peer
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' np.log of torch tensors
@pytest.mark.parametrize("steps", [10, 25])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_matches_diffusers_deis_step_by_step(k, steps):
    """The scheduler's own step() in float32 and diffsolve, each on its own state with the same float32 model,
    compared after every step; the grid ends where diffusers' does (its final sigma is that of timestep 0).
    Agreement to diffusers' float32 rounding: 1e-5, or for k = 3 twice the distance between its float32 run and
    its own formulas in float64 (its third-order weights cancel in float32 as steps shrink: 9e-6 at 10 steps,
    8e-5 at 25)."""
    torch = pytest.importorskip("torch")
    ref, sch, grid = _diffusers(k, steps)
    assert abs(float(ref.sigmas[-1]) / np.exp(-float(sch.lam(grid[-1]))) - 1) < 1e-6
    model = _model32(sch)
    x0 = np.random.default_rng(0).standard_normal((64, PEER_TARGET.dim)).astype(np.float32)
    st = ds.Stepper(f"deis-{k}", sch, grid, x_init=x0.astype(np.float64), prediction="eps", backend="numpy",
                    warm_down=np.inf)  # diffusers steps without a warm-down
    xb, errs = torch.from_numpy(x0), []
    for n, ts in enumerate(ref.timesteps):
        st.step(model(st.x_model, st.t_model))
        xb = ref.step(torch.from_numpy(model(xb.numpy(), grid[n])), ts, xb).prev_sample
        errs.append(_rel(st.x if st.done else st.x_model, xb.numpy().astype(np.float64)))
    assert st.done
    own64 = _diffusers64(_diffusers(k, steps)[0], sch, grid, x0.astype(np.float64))
    bound = max(1e-5, 2 * _rel(own64, xb.numpy().astype(np.float64)))
    assert max(errs) < bound, (errs, bound)
    assert k == 3 or bound == 1e-5


def _diffusers64(ref, sch, grid, x0):
    """diffusers' own update formulas in float64 (sigmas recomputed from its alphas_cumprod), its warm-up rule."""
    torch = pytest.importorskip("torch")
    ac = ref.alphas_cumprod.numpy().astype(np.float64)
    ks = np.concatenate([ref.timesteps.numpy(), [0]])
    ref.sigmas = torch.from_numpy(np.sqrt((1 - ac[ks]) / ac[ks]))
    k = ref.config.solver_order
    updates = [ref.deis_first_order_update, ref.multistep_deis_second_order_update,
               ref.multistep_deis_third_order_update]
    x, outputs = torch.from_numpy(x0.copy()), [None] * k
    for n in range(len(ref.timesteps)):
        ref._step_index = n
        eps = torch.from_numpy(PEER_TARGET.predict(x.numpy(), grid[n], sch, "eps"))
        outputs = outputs[1:] + [ref.convert_model_output(eps, sample=x)]
        level = min(n, k - 1)
        x = updates[level](outputs[-1] if level == 0 else outputs, sample=x)
    return x.numpy()


@pytest.mark.peer
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("k", [1, 2, 3])
def test_matches_diffusers_deis_formulas_in_float64(k):
    ref, sch, grid = _diffusers(k, 20)
    x0 = np.random.default_rng(2).standard_normal((32, PEER_TARGET.dim))
    theirs = _diffusers64(ref, sch, grid, x0)
    eps = lambda x, t: PEER_TARGET.predict(x, t, sch, "eps")  # noqa: E731
    ours = ds.sample(f"deis-{k}", eps, sch, grid, x_init=x0, prediction="eps", warm_down=np.inf)
    assert _rel(ours, theirs) < 1e-12
    if k > 1:  # the paper's tAB is another method
        tab = ds.sample(f"deis-{k}:tab", eps, sch, grid, x_init=x0, prediction="eps")
        assert _rel(tab, theirs) > 1e-4


@pytest.mark.peer
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_diffsolve_scheduler_runs_deis_like_diffusers():
    """DiffsolveScheduler(solver="deis-3") on DEISMultistepScheduler's timesteps: the same states in float32."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    from diffsolve.interop.diffusers import DiffsolveScheduler

    ref = diffusers.DEISMultistepScheduler(solver_order=3, lower_order_final=False)
    ref.set_timesteps(10)
    ours = DiffsolveScheduler(solver="deis-3")
    ours.set_timesteps(timesteps=ref.timesteps)
    assert torch.equal(ours.timesteps, ref.timesteps)
    model = lambda x, t: torch.sin(x) * (1 + float(t) / 1000)  # noqa: E731  (any deterministic eps(x, t))
    xa = xb = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    for t in ref.timesteps:
        xa = ours.step(model(xa, t), t, xa).prev_sample
        xb = ref.step(model(xb, t), t, xb).prev_sample
    assert float((xa - xb).abs().max() / xb.abs().max()) < 1e-5
