"""SEEDS-1/2/3 (docs/algorithms/seeds.md): reductions, stage-noise law, exact-law weak orders, the §6.4 golden
table."""

import numpy as np
import pytest
import sympy as sp

import diffsolve as ds
import diffsolve.solvers.papers  # noqa: F401  (registers seeds-{1,2,3}, accel-*)
from diffsolve.accuracy import propagate
from diffsolve.symbolic import symbols as sy
from diffsolve.symbolic.covariance import ito_covariance
from diffsolve.targets import Gaussian
from helpers import EDM, GAUSSIAN_D8, ORDER_SETUP, VP


def _table(name, schedule, grid, variant=None, **params):
    return ds.get_solver(name, variant=variant, **params).table(schedule, grid)


# ------------------------------------------------------------------------------------------- metadata
@pytest.mark.parametrize("k,order", [(1, 1), (2, 2), (3, 2)])
def test_metadata(k, order):
    s = ds.get_solver(f"seeds-{k}")
    assert (s.order, s.strong_order, s.nfe_per_step, s.stochastic, s.prediction) == (order, 1.0, k, True, "data")
    assert "2305.14267" in s.reference and s.params[s.param_names.index("eta")] == 1.0
    assert ds.get_solver(f"seeds-{k}", variant="eps").prediction == "eps"


def test_bad_variant_is_a_clear_error():
    with pytest.raises(ds.DiffsolveError, match="combine"):
        ds.get_solver("seeds-2", variant="3a")


def test_runtime_combine_table_matches_the_derivation_table():
    from diffsolve.solvers.papers import SEEDS_COMBINES
    from diffsolve.symbolic.seeds import COMBINES, DEFAULT_COMBINE

    assert {k: set(v) for k, v in SEEDS_COMBINES.items()} == {k: set(v) for k, v in COMBINES.items()}
    assert all(SEEDS_COMBINES[k][0] == DEFAULT_COMBINE[k] for k in COMBINES)
    assert all(w in ds.get_solver("seeds-1").reference for w in ("Gonzalez", "SEEDS", "2305.14267"))


def test_cached_lookup_does_not_import_sympy(tmp_path):
    """docs/architecture.md: the paper solvers ship pre-generated (diffsolve/_generated), so a fresh interpreter
    with an empty user cache builds their tables without importing SymPy and without generating anything."""
    import os
    import subprocess
    import sys

    cache = tmp_path / "cache"
    cache.mkdir()
    code = ("import sys, diffsolve as ds, diffsolve.solvers.papers\n"
            "s = ds.get_schedule('vp-linear'); grid = ds.time_grid(s, 6, 'karras')\n"
            "for n, v in [('seeds-1', None), ('seeds-2', '2b-eps'), ('seeds-2', '2b-mirrored'), ('seeds-3', 'eps'),\n"
            "             ('seeds-3', '3b-eps-mirrored'), ('accel-ddim', None), ('accel-ddim', 'phi-psi'),\n"
            "             ('accel-ddpm', None), ('accel-ddpm', 'ddpm-type'), ('accel-sde', None),\n"
            "             ('accel-sde', 'constant')]:\n"
            "    p = ds.get_solver(n, variant=v).program(s, grid)\n"
            "    assert p.steps == len(grid) - 1, (n, v, p.steps)\n"
            "assert 'sympy' not in sys.modules, 'sympy imported'\n"
            "print('ok')\n")
    env = {**os.environ, "DIFFSOLVE_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr
    assert list(cache.iterdir()) == []  # nothing generated on demand


# ------------------------------------------------------------------------------------------- reductions (§6.2)
@pytest.mark.parametrize("schedule", ["vp-linear", "edm"])
def test_seeds1_dp_eta1_is_ddpm(schedule):
    s = ds.get_schedule(schedule)
    grid = ds.time_grid(s, 12, "karras")
    a, b = _table("seeds-1", s, grid), _table("ddpm", s, grid)
    for name in "ABC":
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k,variant,peer,peer_variant", [
    (1, None, "ddim", None), (2, "2a", "dpmpp-2s", "published"), (2, "2b", "dpmpp-2s", None),
    (3, "3a", "dpmpp-3s", "published"), (3, "3b", "dpmpp-3s", None)])
def test_eta0_is_dpmpp_singlestep(k, variant, peer, peer_variant):
    grid = ds.time_grid(VP, 9, "karras")
    a = _table(f"seeds-{k}", VP, grid, variant, eta=0.0)
    b = _table(peer, VP, grid, peer_variant)
    np.testing.assert_allclose(a.A, b.A, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.B, b.B, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.tau, b.tau, rtol=1e-12)
    assert np.all(a.C == 0)


def test_eps_seeds1_halved_without_noise_is_ddim():
    """NP SEEDS-1: model coefficient 2x that of DPM-Solver-1 (-2 sigma_t expm1(h)), noise sigma_t sqrt(expm1(2h))."""
    grid = ds.time_grid(VP, 7)
    a, b = _table("seeds-1", VP, grid, "eps"), _table("dpm-solver-1", VP, grid)
    np.testing.assert_allclose(a.A, b.A, rtol=1e-12)
    np.testing.assert_allclose(a.B / 2, b.B, rtol=1e-12)
    h = np.diff(VP.lam(grid))
    np.testing.assert_allclose(a.C[:, 1, 0], VP.sigma(grid[1:]) * np.sqrt(np.expm1(2 * h)), rtol=1e-12)


# ------------------------------------------------------------------------------------------- noise law (§6.3)
def _node_factor(k, h, variant=None, prediction="data", **params):
    """(L, grid) with N = L z the node-normalised stage noises of one EDM step of log-SNR length h."""
    grid = np.array([1.0, np.exp(-h)])
    tab = _table(f"seeds-{k}", EDM, grid, variant, **params)
    sigma = np.exp(EDM.log_sigma(np.concatenate([tab.tau[0], grid[1:]])))
    return tab.C[0, 1:, :] / sigma[1:, None]


@pytest.mark.parametrize("noise,cov_ref", [("exact", 0.210102), ("mirrored", 0.375187)])
def test_reference_noise_values(noise, cov_ref):
    """docs/algorithms/seeds.md §6.3, DP, h = 0.7, r = 0.3: Var N_1 = 0.342953, Var N_t = 0.753403,
    Cov = 0.210102 / 0.375187."""
    L = _node_factor(2, 0.7, "2a" + ("-mirrored" if noise == "mirrored" else ""), c1=0.3)
    cov = L @ L.T
    assert cov[0, 0] == pytest.approx(0.342953, abs=1e-6)
    assert cov[1, 1] == pytest.approx(0.753403, abs=1e-6)
    assert cov[0, 1] == pytest.approx(cov_ref, abs=1e-6)


def test_reference_noise_values_eps():
    """docs/algorithms/seeds.md §6.3, NP: Var N_1 = 0.521962, Var N_t = 3.055200, Cov = 0.852006 (exact) /
    1.149893 (mirrored)."""
    for variant, ref in (("eps", 0.852006), ("eps-mirrored", 1.149893)):
        cov = (lambda L: L @ L.T)(_node_factor(2, 0.7, variant, c1=0.3))
        assert (cov[0, 0], cov[1, 1], cov[0, 1]) == pytest.approx((0.521962, 3.055200, ref), abs=1e-6)


@pytest.mark.parametrize("k,fractions", [(2, {"c1": 0.5}), (2, {"c1": 0.3}), (3, {}), (3, {"c1": 0.3, "c2": 0.7})])
@pytest.mark.parametrize("prediction", ["data", "eps"])
def test_stage_noise_monte_carlo_matches_ito_covariance(k, fractions, prediction):
    """10^6 draws of N = L z (L from the emitted C coefficients) against the symbolic Ito covariance, within 4
    standard errors sqrt((S_ii S_jj + S_ij^2)/n) per entry (docs/verification.md §5.2 item 6)."""
    h, eta, n = 0.7, 1.0, 1_000_000
    L = _node_factor(k, h, "eps" if prediction == "eps" else None, **fractions)
    defaults = {2: {"c1": 0.5}, 3: {"c1": 1 / 3, "c2": 2 / 3}}[k]
    fr = [sp.nsimplify({**defaults, **fractions}[c]) for c in ("c1", "c2")[: k - 1]] + [sp.Integer(1)]
    sym = ito_covariance(fr, prediction).subs({sy.h: h, sy.eta: eta})
    cov = np.array(sym.evalf(), dtype=float)
    z = np.random.default_rng(1234).standard_normal((k, n))
    emp = np.cov(L @ z, bias=True)
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(emp - cov) < 4 * se), (emp, cov)
    np.testing.assert_allclose(L @ L.T, cov, rtol=1e-12, atol=1e-14)  # the emitted factor is exact


def test_semigroup_seeds1_model_off():
    """Two SEEDS-1 half-steps with the model off have the law of one full step (mean factor and variance)."""
    g1, g2 = np.array([2.0, 0.5]), np.array([2.0, 1.0, 0.5])
    one, two = _table("seeds-1", EDM, g1), _table("seeds-1", EDM, g2)
    a2 = two.A[1, 1] * two.A[0, 1]
    v2 = two.A[1, 1] ** 2 * two.C[0, 1, 0] ** 2 + two.C[1, 1, 0] ** 2
    assert a2 == pytest.approx(one.A[0, 1], rel=1e-13) and v2 == pytest.approx(one.C[0, 1, 0] ** 2, rel=1e-13)


# ------------------------------------------------------------------------------------------- §6.4 golden table
# docs/algorithms/seeds.md §6.4 values (N -> SEEDS-1, '2a' r=1/2, '2b' r=1/2, '3a', '2b' r=0.3 exact, '2b' r=0.3
# mirrored) and the harness are the ones `diffsolve claims seeds --only variance` prints
from diffsolve.claims.seeds import VARIANCE_COLUMNS as COLUMNS  # noqa: E402
from diffsolve.claims.seeds import VARIANCE_SPEC as GOLDEN  # noqa: E402
from diffsolve.claims.seeds import seeds_variance_error  # noqa: E402


@pytest.mark.parametrize("n_points", sorted(GOLDEN))
def test_gaussian_variance_table(n_points):
    got = [seeds_variance_error(n_points, name, variant, **p) for name, variant, p in COLUMNS]
    for value, ref in zip(got, GOLDEN[n_points]):
        assert value == pytest.approx(ref, rel=6e-4, abs=0), (got, GOLDEN[n_points])


# ------------------------------------------------------------------------------------------- weak orders
@pytest.mark.parametrize("name,variant", [("seeds-1", None), ("seeds-2", None), ("seeds-2", "2b"), ("seeds-3", None),
                                          ("seeds-2", "eps"), ("seeds-3", "3a-eps")])
def test_exact_law_weak_order(name, variant):
    solver = ds.get_solver(name, variant=variant)
    study = ds.order_study(solver, GAUSSIAN_D8, VP, **ORDER_SETUP)
    assert abs(study.order - solver.order) <= 0.3, study.table()


def test_mirrored_unequal_fractions_is_weak_order_one():
    """docs/algorithms/seeds.md §3.3: the mirrored rule with r != 1/2 keeps only weak order 1."""
    errs = [abs(seeds_variance_error(n, "seeds-2", "2b-mirrored", c1=0.3)) for n in (161, 321)]
    assert np.log2(errs[0] / errs[1]) == pytest.approx(1.0, abs=0.1)
