"""accel-ddim / accel-ddpm (docs/algorithms/accelerated.md A.2, Part C): coefficients, reductions, exact-law TV
slopes and golden values (C.1), grid-density TV on the C.3 mixture."""

import mpmath
import numpy as np
import pytest

import diffsolve as ds
import diffsolve.solvers.papers  # noqa: F401  (registers accel-ddim, accel-ddpm, seeds-*)
from helpers import GAUSSIAN_D8, order_setup
from diffsolve.accuracy import initial_law, propagate
from diffsolve.targets import Gaussian

from diffsolve.claims import slope
from diffsolve.claims.accelerated import (C1_TARGET, CLIP_SPEC, VP, c1_tv, c3_tv,  # the docs' harness
                                          clip_fractions, mixture_run, tv_1d)


# ------------------------------------------------------------------------------------------- metadata
def test_metadata():
    a, b = ds.get_solver("accel-ddim"), ds.get_solver("accel-ddpm")
    assert (a.order, a.nfe_per_step, a.history, a.stochastic, a.prediction) == (2, 1, 1, False, "eps")
    assert (b.order, b.nfe_per_step, b.noises, b.stochastic, b.prediction) == (1, 1, 2, True, "eps")
    assert "2403.03852" in a.reference and "2403.03852" in b.reference
    f = ds.get_solver("accel-ddim", variant="phi-psi")
    assert (f.order, f.nfe_per_step, f.stochastic, f.uncertain) == (2, 2, False, True)
    assert "reconstructed" in f.reference
    with pytest.raises(ds.DiffsolveError, match="no variant 'phi'.*phi-psi"):
        ds.get_solver("accel-ddim", variant="phi")


# ------------------------------------------------------------------------------------------- coefficients
def _paper_weight(ab_prev, ab, ab_next):
    """w_t of A.2.2 (b), in mpmath at 50 digits: sqrt(abar_{t-1})/(abar_t - abar_{t+1}) [abar_t (r(abar_{t-1}) -
    r(abar_t)) + arcsin sqrt(abar_{t-1}) - arcsin sqrt(abar_t)], r(a) = sqrt((1-a)/a)."""
    mpmath.mp.dps = 50
    r = lambda a: mpmath.sqrt((1 - a) / a)  # noqa: E731
    ab_prev, ab, ab_next = (mpmath.mpf(x) for x in (ab_prev, ab, ab_next))
    w = mpmath.sqrt(ab_prev) / (ab - ab_next) * (ab * (r(ab_prev) - r(ab)) + mpmath.asin(mpmath.sqrt(ab_prev))
                                                - mpmath.asin(mpmath.sqrt(ab)))
    return float(w)


@pytest.mark.parametrize("grid", [np.linspace(1.0, 1e-3, 12), np.array([0.9, 0.6, 0.6 - 2e-5, 0.6 - 3e-5, 0.3]),
                                  np.array([0.5, 0.5 - 1e-6, 0.5 - 2.5e-6])])
def test_accel_ddim_weight_is_the_papers_arcsin_weight(grid):
    """The emitted history coefficient E equals w_t of the authors' formula (VP: x_bar = x), also in the
    Taylor branch (h < 1e-3), where the paper's direct formula needs extended precision."""
    table = ds.get_solver("accel-ddim").table(VP, grid, exact_history=True, start=1)
    abar = VP.alpha(grid) ** 2
    for n in range(table.steps):
        g = n + 1
        w = _paper_weight(abar[g + 1], abar[g], abar[g - 1])
        assert table.E[n, 1, 0] == pytest.approx(w, rel=1e-11, abs=1e-300)


def test_accel_ddim_first_step_and_zero_weight_are_ddim():
    grid = ds.time_grid(VP, 10, "time", t_max=1.0, t_min=1e-3)
    acc = ds.get_solver("accel-ddim").table(VP, grid)
    ddim = ds.get_solver("dpm-solver-1").table(VP, grid)  # DDIM in eps form
    np.testing.assert_allclose(acc.A, ddim.A, rtol=1e-13)
    np.testing.assert_allclose(acc.B[0], ddim.B[0], rtol=1e-13)  # first step: plain DDIM
    assert acc.E[0, 1, 0] == 0 and np.all(acc.E[1:, 1, 0] > 0)
    # with the correction removed (w = 0) every step is DDIM
    np.testing.assert_allclose(acc.B[1:, 1, 0] + acc.E[1:, 1, 0], ddim.B[1:, 1, 0], rtol=1e-12)


# ------------------------------------------------------------------------------------------- form (a)
def test_accel_ddim_phi_psi_coefficients_are_the_papers_formula():
    """A.2.2 (a) on VP (x_bar = x): Y- = sqrt(alpha_{t+1}) (Y - beta_{t+1}/2 s_t), evaluated at the previous grid
    node; Y_{t-1} = (Y + beta_t/2 s_t + beta_t^2/(4 beta_{t+1}) (s_t - sqrt(alpha_{t+1}) s_{t+1}(Y-)))/sqrt(alpha_t),
    with s = -eps/sqrt(1 - abar); on an uneven grid (beta_{t+1} != beta_t)."""
    grid = np.array([1.0, 0.8, 0.7, 0.45, 0.3, 0.29, 0.1, 1e-3])
    tab = ds.get_solver("accel-ddim", variant="phi-psi").table(VP, grid)
    ab = VP.alpha(grid) ** 2
    for n in range(1, tab.steps):
        at, at_prev = ab[n] / ab[n + 1], ab[n - 1] / ab[n]
        bt, bprev = 1 - at, 1 - at_prev
        k0, k1 = -1 / np.sqrt(1 - ab[n]), -1 / np.sqrt(1 - ab[n - 1])  # score per unit eps
        corr = bt**2 / (4 * bprev)
        assert tab.tau[n, 1] == grid[n - 1]  # the stage sits exactly on the previous node
        np.testing.assert_allclose(tab.A[n], [1, np.sqrt(at_prev), 1 / np.sqrt(at)], rtol=1e-12)
        np.testing.assert_allclose(tab.B[n, 1, 0], -np.sqrt(at_prev) * bprev / 2 * k0, rtol=1e-10)
        np.testing.assert_allclose(tab.B[n, 2], [(bt / 2 + corr) * k0 / np.sqrt(at),
                                                 -corr * np.sqrt(at_prev) * k1 / np.sqrt(at)], rtol=1e-10)
        assert np.all(tab.E[n] == 0)
    first = ds.get_solver("dpm-solver-2").table(VP, grid[:2])  # no previous node: DPM-Solver-2 (c1 = 1/2)
    np.testing.assert_allclose(tab.B[0], first.B[0], rtol=1e-13)
    np.testing.assert_allclose(tab.tau[0], first.tau[0], rtol=1e-13)


# C.1, row "accelerated ODE (a)": the reference run's first step is not stated (it needs alpha_{T+1}); ours is
# DPM-Solver-2, so the small-T values differ (-13% at T = 25) while T >= 200 agree to 2%.
C1_PHI_PSI = {200: 1.23e-3, 400: 3.28e-4, 800: 8.44e-5, 1600: 2.14e-5}


def test_accel_ddim_phi_psi_golden_and_slope():
    errs = [c1_tv("accel-ddim", T, "phi-psi") for T in C1_PHI_PSI]
    np.testing.assert_allclose(errs, list(C1_PHI_PSI.values()), rtol=0.03)
    assert -2.2 <= slope(list(C1_PHI_PSI), errs) <= -1.7


@pytest.mark.parametrize("schedule", ["vp-cosine", "edm", "flow"])
def test_non_vp_schedules_use_the_normalised_chain(schedule):
    """A.6: on any schedule the step is the VP-normalised chain of x_bar = x/sqrt(alpha^2 + sigma^2)."""
    s = ds.get_schedule(schedule)
    grid = ds.time_grid(s, 6)
    if schedule == "flow":
        grid = grid[1:]  # alpha = 0 at t = 1: eps-form steps need alpha > 0
    lam = s.lam(grid)
    abar = 1 / (1 + np.exp(-2 * lam))
    nu = np.sqrt(s.alpha(grid) ** 2 + s.sigma(grid) ** 2)
    t = ds.get_solver("accel-ddpm").table(s, grid)
    alpha_t = abar[:-1] / abar[1:]
    beta = 1 - alpha_t
    np.testing.assert_allclose(t.C[:, 0, 0], nu[:-1] * np.sqrt(beta / 2), rtol=1e-10)
    np.testing.assert_allclose(t.C[:, 1, 1], nu[1:] * np.sqrt(beta / 2), rtol=1e-10)
    np.testing.assert_allclose(t.A[:, 1], nu[1:] / nu[:-1] / np.sqrt(alpha_t), rtol=1e-12)
    # (the reference's 1 - alpha_t cancels, hence rtol 1e-10)
    np.testing.assert_allclose(t.B[:, 1, 0], -nu[1:] * beta / np.sqrt(alpha_t * (1 - abar[:-1])), rtol=1e-10)


def test_accel_ddpm_reductions():
    """A.5: all noise after the score call (variant ddpm-type) is the DDPM-type step; both share A and B."""
    grid = ds.time_grid(VP, 8, "time", t_max=1.0, t_min=1e-3)
    a = ds.get_solver("accel-ddpm").table(VP, grid)
    b = ds.get_solver("accel-ddpm", variant="ddpm-type").table(VP, grid)
    np.testing.assert_allclose(a.A, b.A, rtol=1e-14)
    np.testing.assert_allclose(a.B, b.B, rtol=1e-14)
    assert np.all(b.C[:, 0] == 0)
    total_a = a.C[:, 1, 0] ** 2 + a.C[:, 1, 1] ** 2  # beta (1 + alpha)/(2 alpha) in VP
    abar = VP.alpha(grid) ** 2
    alpha_t, beta = abar[:-1] / abar[1:], 1 - abar[:-1] / abar[1:]
    np.testing.assert_allclose(total_a, beta * (1 + alpha_t) / (2 * alpha_t), rtol=1e-12)
    np.testing.assert_allclose(b.C[:, 1, 0] ** 2, beta / alpha_t, rtol=1e-12)


# ------------------------------------------------------------------------------------------- C.1 (exact law)
C1_GOLDEN = {  # T -> (DDIM eps form, accel-ddim (b), DDPM-type, accel-ddpm README)
    25: (5.70e-2, 2.25e-2, 7.05e-2, 1.18e-2),
    50: (2.79e-2, 7.40e-3, 3.45e-2, 7.28e-3),
    100: (1.38e-2, 2.31e-3, 1.70e-2, 3.97e-3),
    200: (6.87e-3, 6.91e-4, 8.45e-3, 2.07e-3),
    400: (3.43e-3, 1.99e-4, 4.21e-3, 1.05e-3),
    800: (1.71e-3, 5.51e-5, 2.10e-3, 5.31e-4),
    1600: (8.56e-4, 1.48e-5, 1.05e-3, 2.67e-4),
}
C1_SOLVERS = [("ddim", None), ("accel-ddim", None), ("accel-ddpm", "ddpm-type"), ("accel-ddpm", None)]


@pytest.mark.parametrize("T", [25, 50, 100, 200])
def test_c1_golden_values(T):
    got = [c1_tv(name, T, variant) for name, variant in C1_SOLVERS]
    for value, ref in zip(got, C1_GOLDEN[T]):
        assert value == pytest.approx(ref, rel=6e-3), (T, got)


def _slopes(ts):
    errs = {name + (variant or ""): [c1_tv(name, T, variant) for T in ts] for name, variant in C1_SOLVERS}
    return {k: slope(ts, v) for k, v in errs.items()}


def test_c1_slopes_reduced_grid():
    s = _slopes([100, 200, 400, 800])
    assert -2.2 <= s["accel-ddim"] <= -1.7 and -1.1 <= s["ddim"] <= -0.9, s
    assert -1.1 <= s["accel-ddpm"] <= -0.9 and -1.1 <= s["accel-ddpmddpm-type"] <= -0.9, s


@pytest.mark.slow
def test_c1_slopes_full_grid():
    """docs/algorithms/accelerated.md C.1: last four of T = 25..1600: accel-ddim -1.85, ddim -1.00 (tv, exact law)."""
    s = _slopes([200, 400, 800, 1600])
    assert -2.2 <= s["accel-ddim"] <= -1.7 and -1.1 <= s["ddim"] <= -0.9, s
    for T in (400, 800, 1600):
        got = [c1_tv(name, T, variant) for name, variant in C1_SOLVERS]
        np.testing.assert_allclose(got, C1_GOLDEN[T], rtol=6e-3)


def test_accel_ddim_tv_bound_order_study():
    """Registry harness: metric "tv-bound" on a Gaussian target, slope within [-2.2, -1.7] vs 1/T."""
    kw = dict(spacing="time", t_max=1.0, t_min=1e-3, exact_history=False)
    # (the study's own slope is against the largest log-SNR step, which on a tau-uniform grid sits at the noisy
    # end and shrinks slower than 1/T; the paper's rate is in T)
    st = ds.order_study("accel-ddim", C1_TARGET, VP, steps=[99, 199, 399, 799], metric="tv-bound", **kw)
    assert -2.2 <= slope(st.steps, st.errors) <= -1.7, st.table()
    st = ds.order_study("ddim", C1_TARGET, VP, steps=[99, 199, 399, 799], metric="tv-bound", **kw)
    assert -1.1 <= slope(st.steps, st.errors) <= -0.9, st.table()


# ------------------------------------------------------------------------------------------- C.3 (mixture)
C3_GOLDEN = {  # T -> (DDPM-type, accel-ddpm README), docs/algorithms/accelerated.md C.3
    20: (2.51e-1, 1.17e-1), 40: (1.23e-1, 3.34e-2), 80: (6.11e-2, 1.05e-2), 160: (3.03e-2, 4.13e-3),
}


@pytest.mark.parametrize("T", [20, 40])
def test_c3_accel_ddpm_beats_ddpm_type_at_equal_nfe(T):
    base, acc = c3_tv("accel-ddpm", T, "ddpm-type"), c3_tv("accel-ddpm", T)
    assert (base, acc) == pytest.approx(C3_GOLDEN[T], rel=5e-3)
    assert 2.0 <= base / acc <= 8.5


@pytest.mark.slow
@pytest.mark.parametrize("T", [80, 160])
def test_c3_accel_ddpm_beats_ddpm_type_slow(T):
    base, acc = c3_tv("accel-ddpm", T, "ddpm-type"), c3_tv("accel-ddpm", T)
    assert (base, acc) == pytest.approx(C3_GOLDEN[T], rel=5e-3)
    assert 2.0 <= base / acc <= 8.5


@pytest.mark.parametrize("T", [20, 40])
def test_c3_accel_sde_at_equal_nfe_logsnr_grid(T):
    """B.2.4 (2), log-SNR grid: accel-sde below DDPM at every T; 'constant' below accel-ddpm at every T; the
    default 'ratio' ties accel-ddpm at T = 40 (and wins from T = 80: slow test)."""
    ddpm, readme = c3_tv("accel-ddpm", T, "ddpm-type", spacing="logsnr"), c3_tv("accel-ddpm", T, spacing="logsnr")
    ratio, constant = c3_tv("accel-sde", T, spacing="logsnr"), c3_tv("accel-sde", T, "constant", spacing="logsnr")
    assert (ratio, constant) == pytest.approx({20: (7.30e-2, 2.33e-2), 40: (2.19e-2, 6.43e-3)}[T], rel=0.05)
    assert ratio < ddpm and constant < readme < ddpm
    if T == 40:
        assert ratio == pytest.approx(readme, rel=0.02)


@pytest.mark.slow
def test_c3_accel_sde_wins_asymptotically():
    """B.2.4 (2): ratio below accel-ddpm from T = 80 on the log-SNR grid; constant from T = 80 on the tau grid."""
    assert c3_tv("accel-sde", 80, spacing="logsnr") < c3_tv("accel-ddpm", 80, spacing="logsnr")
    assert c3_tv("accel-sde", 80, "constant") < c3_tv("accel-ddpm", 80) < c3_tv("accel-ddpm", 80, "ddpm-type")


# ------------------------------------------------------------------------------------------- accel-sde (B.2)
ACCEL_SDE_GOLDEN = [2.02e-2, 5.54e-3, 1.45e-3, 3.72e-4, 9.40e-5, 2.36e-5, 5.93e-6]  # T = 25 .. 1600, B.2.3


def test_accel_sde_metadata_marks_the_reconstruction():
    s = ds.get_solver("accel-sde")
    assert (s.order, s.nfe_per_step, s.history, s.stochastic, s.uncertain) == (2, 1, 1, True, True)
    assert dict(zip(s.param_names, s.params)) == {"a": 0.0, "c": 2.0}
    assert "reconstruction following Li & Cai's description" in s.reference
    assert "reconstruction following Li & Cai's description" in s.description
    for bad in ({"a": 0.7}, {"a": -0.1}, {"c": -1.0}, {"c": float("nan")}):
        with pytest.raises(ds.DiffsolveError, match="outside its range"):
            ds.get_solver("accel-sde", **bad)
    with pytest.raises(ds.DiffsolveError, match="no variant 'adams'.*constant"):
        ds.get_solver("accel-sde", variant="adams")


# B.2.3 exact-law table (C.1 harness), T = 25, 50, 100, 200
ACCEL_SDE_MEMBERS = {  # (variant, a) -> golden TV
    ("ratio", 0.0): ACCEL_SDE_GOLDEN[:4],
    ("constant", 0.0): [6.87e-3, 1.54e-3, 3.56e-4, 8.47e-5],
    ("ratio", 0.25): [1.42e-2, 3.65e-3, 9.21e-4, 2.31e-4],
    ("constant", 0.25): [8.50e-3, 2.03e-3, 4.94e-4, 1.22e-4],
    ("ratio", 0.5): [1.08e-2, 2.64e-3, 6.48e-4, 1.60e-4],  # a = 1/2: the derived momentum vanishes
}


@pytest.mark.parametrize("variant,a", list(ACCEL_SDE_MEMBERS))
def test_accel_sde_members_golden(variant, a):
    solver = ds.get_solver("accel-sde", variant=None if variant == "ratio" else variant, a=a)  # ratio: default
    errs = [c1_tv(solver, T) for T in (25, 50, 100, 200)]
    np.testing.assert_allclose(errs, ACCEL_SDE_MEMBERS[variant, a], rtol=8e-3)
    assert slope([50, 100, 200], errs[1:]) <= -1.85


def test_accel_sde_reductions():
    """B.2.4 (4): a = 0 without momentum is DDPM (score form); a = 1/2 without momentum differs from accel-ddpm
    only in the post-score noise (beta/(2 alpha) instead of beta/2); a = 1/2 has no momentum at all."""
    grid = ds.time_grid(VP, 9, "time", t_max=1.0, t_min=1e-3)
    base_seg = ds.get_solver("accel-sde").program(VP, grid).segments[0]
    base, clip = base_seg.table, base_seg.corrections[0]
    ddpm = ds.get_solver("accel-ddpm", variant="ddpm-type").table(VP, grid)
    np.testing.assert_allclose(base.A[1:], ddpm.A[1:], rtol=1e-13)
    np.testing.assert_allclose(base.B[1:], ddpm.B[1:], rtol=1e-12)  # the clip term holds the momentum
    np.testing.assert_allclose(np.sum(base.C[1:] ** 2, axis=2), np.sum(ddpm.C[1:] ** 2, axis=2), rtol=1e-12)
    assert np.all(clip.B[1:] != 0) and np.all(clip.E[1:] != 0) and np.all(clip.B[0] == 0)
    half_seg = ds.get_solver("accel-sde", a=0.5).program(VP, grid).segments[0]
    half, half_clip = half_seg.table, half_seg.corrections[0]
    readme = ds.get_solver("accel-ddpm").table(VP, grid)
    assert np.all(half_clip.B == 0) and np.all(half_clip.E == 0)
    np.testing.assert_allclose(half.A, readme.A, rtol=1e-13)
    np.testing.assert_allclose(half.B, readme.B, rtol=1e-12)
    np.testing.assert_allclose(half.C[:, 0], readme.C[:, 0], rtol=1e-12)
    abar = VP.alpha(grid) ** 2
    alpha_t = abar[:-1] / abar[1:]
    np.testing.assert_allclose(half.C[:, 1, 1] ** 2, readme.C[:, 1, 1] ** 2 / alpha_t, rtol=1e-12)


def test_accel_sde_clip_bound_is_c_sqrt_d_in_eps_units():
    """B.2.1: |sqrt(1 - abar_t) C_t| <= c sqrt(d) with C_t the momentum in score units: in x units the bound is
    c sqrt(d) nu_{t-1} beta_t / (sqrt(alpha_t) sqrt(1 - abar_t)) (VP: nu = 1)."""
    grid = ds.time_grid(VP, 7, "time", t_max=1.0, t_min=1e-3)
    clip = ds.get_solver("accel-sde", c=1.5).program(VP, grid).segments[0].corrections[0]
    abar = VP.alpha(grid) ** 2
    alpha_t, beta = abar[:-1] / abar[1:], 1 - abar[:-1] / abar[1:]
    np.testing.assert_allclose(clip.bound[1:], 1.5 * beta[1:] / np.sqrt(alpha_t[1:] * (1 - abar[1:-1])),
                               rtol=1e-10)
    assert clip.bound[0] == np.inf
    never = ds.get_solver("accel-sde", c=np.inf).program(VP, grid).segments[0].corrections[0]
    assert np.all(never.bound == np.inf)


def test_accel_sde_paths_without_clip_events_are_bitwise_unclipped():
    """B.2.4 (3): same Philox stream; every path with no clip event is bit-identical between c = 1 and c = inf."""
    x1, ev = mixture_run(1.0, 20, 20_000)
    xinf, ev_inf = mixture_run(np.inf, 20, 20_000)
    clean = ~ev.any(axis=0)
    assert 0.3 < clean.mean() < 0.8 and not ev_inf.any()
    np.testing.assert_array_equal(x1[clean], xinf[clean])
    assert np.all(np.any(x1[~clean] != xinf[~clean], axis=1))


@pytest.mark.parametrize("c,T", [(2.0, 20), (1.0, 20), (1.0, 40)])
def test_accel_sde_clip_fractions(c, T):
    """B.2.1 clip rates on the C.3 mixture (a = 0, ratio), per step that carries a momentum;
    docs/algorithms/accelerated.md gives two digits (hence 5%), and the events of one path are correlated (hence
    the s.e. inflated by sqrt(T))."""
    n = 200_000
    frac, ref = clip_fractions(c, T, n), CLIP_SPEC[c, T]
    se = np.sqrt(ref * (1 - ref) / (n * (T - 2))) * np.sqrt(T)
    assert abs(frac - ref) <= 4 * se + 0.05 * ref, (frac, ref)


def test_accel_sde_alternating_grid_keeps_order_two():
    """B.2.2: the derived ratio momentum stays order 2 on a grid alternating steps h and 3h in tau."""
    errs = []
    for T in (100, 200, 400, 800):
        steps = np.tile([1.0, 3.0], T // 2)
        tau = 1.0 - np.concatenate([[0.0], np.cumsum(steps)]) / steps.sum() * (1.0 - 1e-3)
        solver = ds.get_solver("accel-sde")
        mean, cov = initial_law(C1_TARGET, VP, tau, 0, "eps", 0.0)
        mean = np.concatenate([mean, np.zeros((1, 1))], axis=1)
        pad = np.zeros((1, 2, 2))
        pad[:, 0, 0] = cov[:, 0, 0]
        mean, cov = propagate(solver.program(VP, tau), C1_TARGET, VP, "eps", mean, pad)
        m_ref, v_ref = C1_TARGET.marginal_moments(tau[-1], VP)
        errs.append(tv_1d(mean[0, 0], cov[0, 0, 0], m_ref[0], v_ref[0]))
    assert slope([100, 200, 400, 800], errs) <= -1.7, errs


@pytest.mark.parametrize("schedule", ["edm", "vp-cosine", "flow"])
@pytest.mark.parametrize("name,variant", [("accel-ddim", "phi-psi"), ("accel-sde", None), ("accel-sde", "constant")])
def test_declared_order_on_other_schedules(name, variant, schedule):
    """A.6: the discrete-abar mapping runs every accelerated sampler on any schedule at its declared order."""
    s = ds.get_schedule(schedule)
    solver = ds.get_solver(name, variant=variant)
    study = ds.order_study(solver, GAUSSIAN_D8, s, **order_setup(s))
    assert abs(study.order - solver.order) <= 0.3, study.table()
