"""Langevin programs (ULA, MALA, ULD), RTK and predictor-corrector against exact references
(docs/algorithms/langevin.md, "Verification")."""

import math

import numpy as np
import pytest
import scipy.linalg

import diffsolve as ds
from diffsolve import targets
from diffsolve._generated.uld import uld_coefficients
from diffsolve.accuracy.density import mala_kernel
from diffsolve.accuracy.gaussian_law import propagate
from diffsolve.errors import DiffsolveError
from diffsolve.langevin import line_integral, mala_log_acceptance
from helpers import langevin_solvers

OU = ds.get_schedule("ou")
MIX = targets.FullGaussianMixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]],
                                  [np.diag([0.3, 0.5]), [[0.5, 0.2], [0.2, 0.4]]])
Y = np.array([0.5, -0.3])  # the conditioning point of the reference segment (s = 0.3, eta = 0.25)


def _score(target, sch=OU):
    return lambda x, t: target.score(x, t, sch)


def _within(x, mean, cov, k=4.0):
    """Sample mean within k standard errors of ``mean`` and the covariance entries within k standard errors
    (4th-moment estimate) of ``cov``."""
    n = x.shape[0]
    c = x - x.mean(0)
    assert np.all(np.abs(x.mean(0) - mean) <= k * np.sqrt(np.diag(cov) / n)), (x.mean(0), mean)
    prods = c[:, :, None] * c[:, None, :]
    se = prods.std(0) / math.sqrt(n)
    assert np.all(np.abs(np.cov(x.T).reshape(cov.shape) - cov) <= k * se + 1e-12), (np.cov(x.T), cov)


# -- outer loop --------------------------------------------------------------------------------------------------
def test_rtk_outer_loop_with_exact_kernels_recovers_the_data():
    """Gaussian data, exact p_T start, exact kernel draws at the program's segment times: p_0 (mean 1.5,
    variance 0.16) to Monte Carlo error.  An index shifted by one segment fails this."""
    data = targets.Gaussian([1.5], [0.16])
    grid = np.linspace(4.0, 0.0, 6)
    program = ds.get_solver("rtk-uld").program(OU, grid)
    n = 400_000
    x = data.marginal(4.0, OU).sample(n, seed=0)
    for k, seg in enumerate(program.segments):
        eta = seg.t_init - seg.t
        assert seg.t_init == grid[k] and seg.t == grid[k + 1]
        assert seg.a == pytest.approx(math.exp(-eta), rel=1e-14)
        assert seg.q == pytest.approx(-math.expm1(-2 * eta), rel=1e-14)
        assert seg.tilt == pytest.approx(1 / math.expm1(2 * eta), rel=1e-13)
        x = data.rtk_kernel(x, seg.t, eta, OU).sample(seed=k + 1)
    se = math.sqrt(0.16 / n)
    assert abs(x.mean() - 1.5) < 4 * se
    assert abs(x.var() - 0.16) < 4 * 0.16 * math.sqrt(2 / n)


def test_segment_target_score_is_the_kernel_score():
    """The score a segment's chain follows, s(x, s) - c (x - y/a), is the score of the closed-form kernel."""
    seg = ds.get_solver("rtk-mala").program(OU, [0.55, 0.3]).segments[0]
    x = np.random.default_rng(0).standard_normal((7, 2))
    y = np.tile(Y, (7, 1))
    mine = MIX.score(x, seg.t, OU) - seg.tilt * (x - y / seg.a)
    np.testing.assert_allclose(mine, MIX.rtk_kernel(y, 0.3, 0.25, OU).score(x), rtol=0, atol=1e-12)


# -- MALA ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [0.05, 0.5, 2.0])
def test_mala_exact_energy_leaves_the_segment_target_invariant(tau):
    """Started from exact draws of a Gaussian segment target, exact-energy MALA keeps its law (any step)."""
    data = targets.Gaussian([1.0, -0.5], [0.3, 1.2])
    n = 40_000
    law = data.rtk_kernel(np.tile([0.4, 0.2], (n, 1)), 0.5, 0.3, OU)
    x0 = law.sample(seed=2)
    st = ds.Stepper("mala", OU, [0.5, 0.4], x_init=x0, prediction="score", backend="numpy", iterations=10, tau=tau,
                    energy="exact")
    st.run(lambda x, t: law.score(x), log_density=lambda x, t: law.logpdf(x))
    _within(st.host_x(), law.mean()[0], law.cov()[0])
    assert 0.0 < st.stats["acceptance"][0] < 1.0


def test_mala_grid_kernel_detailed_balance():
    nodes = np.linspace(-6, 6, 401)
    logp = lambda x: np.logaddexp(np.log(0.3) - (x + 2) ** 2 / 0.6, np.log(0.7) - (x - 1.5) ** 2 / 1.0)  # noqa: E731
    h = 1e-6
    score = lambda x: (logp(x + h) - logp(x - h)) / (2 * h)  # noqa: E731
    for tau in (0.02, 0.3):
        K = mala_kernel(nodes, logp, score, tau)
        pi = np.exp(logp(nodes))
        flow = pi[:, None] * K
        np.testing.assert_allclose(flow, flow.T, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(K.sum(axis=1), 1.0, atol=1e-14)
        np.testing.assert_allclose(pi @ K, pi, rtol=1e-11)


def test_mala_log_acceptance_is_antisymmetric():
    rng = np.random.default_rng(1)
    z, p = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    G, Gp, b = -z, -p, rng.standard_normal((5, 3))
    dE = -0.5 * ((p ** 2).sum(1) - (z ** 2).sum(1))
    fwd = mala_log_acceptance(z, p, G, Gp, 0.1, dE, c=0.7, b=b)
    bwd = mala_log_acceptance(p, z, Gp, G, 0.1, -dE, c=0.7, b=b)
    np.testing.assert_allclose(fwd, -bwd, rtol=1e-13, atol=1e-13)


def test_safe_and_raw_log_acceptance():
    """They agree to rounding in moderate d; at d = 1e4 with a small step the raw form loses digits the safe one
    keeps (reference in extended precision)."""
    for d, tau, tol_raw in ((10, 0.1, 1e-12), (10_000, 1e-4, None)):
        rng = np.random.default_rng(d)
        z = rng.standard_normal((4, d)) * 3
        G = -z
        p = z + tau * G + math.sqrt(2 * tau) * rng.standard_normal((4, d))
        Gp, b, c = -p, rng.standard_normal((4, d)), 0.4
        dE = -0.5 * np.einsum("nd,nd->n", p - z, p + z)
        safe = mala_log_acceptance(z, p, G, Gp, tau, dE, c, b)
        raw = mala_log_acceptance(z, p, G, Gp, tau, dE, c, b, safe=False)
        L = np.longdouble
        zl, pl, Gl, Gpl, bl = (a.astype(L) for a in (z, p, G, Gp, b))
        fwd, bwd = pl - zl - L(tau) * Gl, zl - pl - L(tau) * Gpl
        ref = (dE.astype(L) - L(c) / 2 * (((pl - bl) ** 2).sum(1) - ((zl - bl) ** 2).sum(1))
               + ((fwd ** 2).sum(1) - (bwd ** 2).sum(1)) / (4 * L(tau)))
        err_safe = np.abs(safe - ref.astype(np.float64)).max()
        err_raw = np.abs(raw - ref.astype(np.float64)).max()
        if tol_raw is not None:
            assert np.abs(safe - raw).max() < tol_raw * max(1.0, np.abs(safe).max())
        else:
            assert err_safe < 1e-9 and err_raw > 10 * err_safe, (err_safe, err_raw)


def test_energy_quadratures_converge_at_their_orders():
    """Simpson / trapezoid estimates of log p_s(z + delta) - log p_s(z) on the mixture: errors shrink like
    |delta|^5 / |delta|^3 (ratios 32 / 8 on halving), Simpson ~1e-11 for a move of scale 0.15."""
    rng = np.random.default_rng(5)
    z = rng.standard_normal((1, 2)) * 0.5
    direction = rng.standard_normal((1, 2))
    errs = {"trapezoid": [], "simpson": []}
    for scale in (0.15, 0.075, 0.0375):
        delta = scale * direction
        p = z + delta
        exact = MIX.logpdf(p, 0.3, OU) - MIX.logpdf(z, 0.3, OU)
        sz, sp, sm = (MIX.score(u, 0.3, OU) for u in (z, p, z + delta / 2))
        for rule in errs:
            errs[rule].append(abs(line_integral(rule, delta, sz, sp, sm)[0] - exact[0]))
    for rule, order in (("trapezoid", 3), ("simpson", 5)):
        ratios = np.array(errs[rule][:-1]) / np.array(errs[rule][1:])
        assert np.all(np.abs(np.log2(ratios) - order) < 0.3), (rule, ratios)
    assert errs["simpson"][0] < 1e-8


# -- ULD -----------------------------------------------------------------------------------------------------------
def test_uld_with_zero_gradient_matches_the_derived_covariance():
    """G = 0 (zero model score, no tilt): z1 = c_zv v0 + zeta, z2 = z1 + c_zv v1 + zeta' with v0 ~ N(0, I);
    the sampled covariance of (z1, z2) per coordinate against the derived coefficients."""
    gamma, tau, n = 1.5, 0.4, 200_000
    c_vv, _, c_zv, _, l11, l21, l22 = uld_coefficients(gamma, tau)
    var_z, cov_zv, var_v = l11 ** 2, l11 * l21, l21 ** 2 + l22 ** 2
    cz1v1 = c_zv * c_vv + cov_zv
    v11 = c_zv ** 2 + var_z
    v12 = v11 + c_zv * cz1v1
    v22 = v11 + 2 * c_zv * cz1v1 + c_zv ** 2 * (c_vv ** 2 + var_v) + var_z
    assert c_vv ** 2 + var_v == pytest.approx(1.0, rel=1e-14)  # the velocity stays N(0, 1)
    snaps = []
    st = ds.Stepper("uld", OU, [0.5, 0.4], x_init=np.zeros((n, 1)), prediction="score", backend="numpy",
                    iterations=2, tau=tau, gamma=gamma)
    while not st.done:
        st.step(np.zeros((n, 1)))
        snaps.append(st.host_x().copy())
    _within(np.hstack(snaps), np.zeros(2), np.array([[v11, v12], [v12, v22]]))


def _uld_stationary_var(h, gamma, tau):
    """Exact stationary position variance of the frozen-gradient chain on the energy x^2 / (2 v), h = 1/v."""
    c_vv, c_vG, c_zv, c_zG, l11, l21, l22 = uld_coefficients(gamma, tau)
    A = np.array([[1 + c_zG * h, c_zv], [c_vG * h, c_vv]])
    L = np.array([[l11, 0.0], [l21, l22]])
    return scipy.linalg.solve_discrete_lyapunov(A, L @ L.T)[0, 0]


def test_uld_stationary_covariance_on_a_quadratic():
    """On a quadratic energy the chain's stationary covariance -> H^-1 with an O(tau) bias, for every gamma; the
    sampled chain matches the exact stationary law."""
    V = np.array([0.5, 2.0])
    for gamma in (1.0, 4.0):
        bias = [abs(_uld_stationary_var(1 / V[0], gamma, tau) - V[0]) for tau in (0.04, 0.02, 0.01)]
        assert all(1.7 < b0 / b1 < 2.3 for b0, b1 in zip(bias, bias[1:])), bias
        assert bias[-1] < 0.05 * V[0]
    n, tau, gamma = 40_000, 0.1, 1.0
    st = ds.Stepper("uld", OU, [0.5, 0.4], x_init=np.zeros((n, 2)), prediction="score", backend="numpy",
                    iterations=300, tau=tau, gamma=gamma)
    st.run(lambda x, t: -x / V)
    exact = np.array([_uld_stationary_var(1 / V[0], gamma, tau), _uld_stationary_var(1 / V[1], gamma, tau)])
    var = st.host_x().var(0)
    assert np.all(np.abs(var - exact) < 4 * exact * math.sqrt(2 / n)), (var, exact)


# -- inner samplers on the reference segment -----------------------------------------------------------------------
@pytest.mark.parametrize("name, params", [
    ("rtk-mala", dict(energy="exact", tau=0.3)),
    ("rtk-mala", dict(energy="simpson", tau=0.3)),
    ("rtk-uld", dict(tau=0.05, gamma=2.0)),
])
def test_inner_samplers_match_the_closed_form_kernel(name, params):
    """The 2-D mixture segment s = 0.3, eta = 0.25, y = (0.5, -0.3): mean (0.8217, 0.0975), covariance
    [[0.5593, 0.0751], [0.0751, 0.3419]] (closed form), 5000 chains x 200 iterations."""
    n = 5000
    law = MIX.rtk_kernel(Y[None], 0.3, 0.25, OU)
    np.testing.assert_allclose(law.mean()[0], [0.8217, 0.0975], atol=6e-5)
    st = ds.Stepper(name, OU, [0.55, 0.3], x_init=np.tile(Y, (n, 1)), prediction="score", backend="numpy",
                    inner=200, **params)
    st.run(_score(MIX), log_density=lambda x, t: MIX.logpdf(x, t, OU))
    _within(st.host_x(), law.mean()[0], law.cov()[0], k=4.5)


# -- ULA and PC ----------------------------------------------------------------------------------------------------
def test_ula_exact_law_on_a_gaussian():
    """ULA is a table: its exact law on a Gaussian marginal N(m, V) tends to N(m, V / (1 - h / (2V)))."""
    data = targets.Gaussian([0.8], [0.3])
    t, h = 0.7, 0.05
    m, V = data.marginal_moments(t, OU)
    program = ds.get_solver("ula", tau=h, iterations=400).program(OU, [t, 0.1])
    mean, cov = propagate(program, data, OU, "score", np.zeros((1, 1)), np.ones((1, 1, 1)))
    assert mean[0, 0] == pytest.approx(m[0], rel=1e-10)
    assert cov[0, 0, 0] == pytest.approx(V[0] / (1 - h / (2 * V[0])), rel=1e-10)
    x = ds.sample("ula", data, OU, [t, 0.1], n=40_000, tau=h, iterations=400, backend="cpu")
    _within(x, mean[:, 0], cov[0])


def _marginal_accuracy(x, ref, bins=100, lo=-6.0, hi=6.0):
    """1 - mean over coordinates of the TV distance between histograms."""
    tv = []
    for j in range(x.shape[1]):
        p, _ = np.histogram(x[:, j], bins=bins, range=(lo, hi))
        q, _ = np.histogram(ref[:, j], bins=bins, range=(lo, hi))
        tv.append(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())
    return 1 - float(np.mean(tv))


def test_pc_corrector_helps_at_small_t1():
    """The corrector removes the N(0, I)-at-T1 bias: at T1 = 0.5 PC beats the bare predictor clearly."""
    n = 20_000
    ref = MIX.sample(n, seed=9)
    grid = ds.time_grid(OU, 50, "time", t_max=0.5, t_min=1e-3)
    x_init = np.random.default_rng(3).standard_normal((n, 2))
    pc = ds.sample("pc", MIX, OU, grid, x_init=x_init, corrector_steps=20, corrector_step=0.1)
    bare = ds.sample("ddpm", MIX, OU, grid, x_init=x_init)
    acc_pc, acc_bare = _marginal_accuracy(pc, ref), _marginal_accuracy(bare, ref)
    assert acc_pc > acc_bare + 0.05, (acc_pc, acc_bare)


# -- reproducibility and backends ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", langevin_solvers())
def test_batch_split_and_backend_invariance(name):
    data = targets.from_spec("gmm:d=3,k=4,seed=1")
    grid = ds.time_grid(OU, 4, "time", t_max=2.0, t_min=0.05)
    short = dict(iterations=5, inner=3, corrector_steps=4)
    params = {k: v for k, v in short.items() if k in ds.get_solver(name).param_names}
    whole = ds.sample(name, data, OU, grid, n=12, seed=4, **params)
    parts = [ds.sample(name, data, OU, grid, n=k, seed=4, sample_offset=o, **params) for o, k in ((0, 5), (5, 7))]
    np.testing.assert_array_equal(whole, np.vstack(parts))
    cpu = ds.sample(name, data, OU, grid, n=12, seed=4, backend="cpu", **params)
    np.testing.assert_allclose(cpu, whole, rtol=0, atol=1e-12)
    assert np.isfinite(whole).all()


def test_nfe_budget_of_rtk():
    """RTK-MALA with the Tweedie start: the first segment calls at (y, T), every segment at z0, then S (x2 with
    Simpson) per iteration; later Tweedie starts reuse the cached score.  RTK-ULD: 1 + S per segment."""
    grid = [2.0, 1.5, 1.0]
    x0 = np.zeros((3, 2))
    for name, params, nfe in (("rtk-mala", dict(inner=4, energy="simpson"), 1 + 2 * (1 + 8)),
                              ("rtk-mala", dict(inner=4, energy="trapezoid"), 1 + 2 * (1 + 4)),
                              ("rtk-uld", dict(inner=4), 2 * (1 + 4))):
        st = ds.Stepper(name, OU, grid, x_init=x0, prediction="score", backend="numpy", **params)
        st.run(_score(MIX))
        assert st.nfe == nfe, (name, params, st.nfe)


def test_langevin_bad_input():
    with pytest.raises(DiffsolveError, match="tau"):
        ds.get_solver("rtk-uld", tau=-1.0)
    with pytest.raises(DiffsolveError, match="inner"):
        ds.get_solver("rtk-mala", inner=0)
    with pytest.raises(DiffsolveError, match="energy"):
        ds.get_solver("mala", energy="exactly")
    with pytest.raises(DiffsolveError, match="predictor"):
        ds.get_solver("pc", predictor="rtk-uld")
    with pytest.raises(DiffsolveError, match="2 segments"):
        ds.sample("rtk-uld", MIX, OU, [2.0, 1.0, 0.5], n=4, tau=[0.1, 0.2, 0.3])
    with pytest.raises(DiffsolveError, match="log_density"):  # exact energy with a score-only model
        ds.sample("mala", lambda x, t: -x, OU, [0.5, 0.4], x_init=np.zeros((3, 2)), prediction="score",
                  energy="exact", iterations=2)


@pytest.mark.parametrize("name", ["mala", "uld", "rtk-mala", "rtk-uld", "pc"])
def test_stepper_loop_reproduces_sample(name):
    """A user's loop over the Stepper (torch CPU tensors in and out) gives sample()'s bits."""
    torch = pytest.importorskip("torch")
    data = targets.from_spec("gmm:d=2,k=3,seed=2")
    grid = ds.time_grid(OU, 3, "time", t_max=1.5, t_min=0.05)
    params = dict(iterations=4) if name in ("mala", "uld") else dict(inner=3) if name.startswith("rtk") else {}
    x0 = np.random.default_rng(0).standard_normal((6, 2))
    ref = ds.sample(name, data, OU, grid, x_init=x0, seed=2, **params)
    st = ds.Stepper(name, OU, grid, x_init=torch.tensor(x0), prediction="eps", backend="cpu", seed=2, **params)
    while not st.done:
        x, t = st.x_model, st.t_model
        assert isinstance(x, torch.Tensor)
        st.step(torch.tensor(data.predict(x.numpy(), t, OU, "eps")))
    np.testing.assert_allclose(st.x.numpy(), ref, rtol=0, atol=1e-12)
