"""Schedules: derived identities, inverse maps, catalog vs user expressions, discrete betas, grids."""

import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import diffsolve as ds
from diffsolve.schedules import DiscreteSchedule
from helpers import CATALOG_SCHEDULES as CATALOG
from helpers import CONTINUOUS_SCHEDULES


def probe_times(s, n=4000):
    lo, hi = s.t_min, s.t_max
    pts = [np.linspace(lo, hi, n)]
    if lo > 0:
        pts.append(np.geomspace(lo, hi, n))
    t = np.unique(np.concatenate(pts))
    return t[t > 0] if s.lam(t[:1])[0] == np.inf else t


@pytest.mark.parametrize("name", CATALOG)
def test_inverse_round_trip_whole_range(name):
    """t(lam(t)) = t to 1e-12 relative over the default range, up to the float64 resolution of lam itself."""
    s = ds.get_schedule(name)
    t = probe_times(s)
    lam = s.lam(t)
    back = s.t_of_lam(lam)
    # resolution floor: lam is a float64, so t is only determined to ~ulp(lam)/|dlam/dt|
    floor = 4 * np.spacing(np.abs(lam)) / np.abs(s.dlam_dt(t))
    err = np.abs(back - t)
    assert np.all(err <= 1e-12 * t + floor), (name, float(np.max(err / t)))
    # away from a finite-lam endpoint the floor is irrelevant: plain relative 1e-12
    away = (floor < 1e-14 * t) & (t > 0)
    assert np.max(err[away] / t[away]) < 1e-12


@pytest.mark.parametrize("name", CATALOG)
def test_lam_decreasing_and_g2_positive(name):
    s = ds.get_schedule(name)
    t = probe_times(s, 500)
    assert np.all(np.diff(s.lam(t)) < 0)
    assert np.all(s.g2(t) > 0)
    assert np.all(s.dlam_dt(t) < 0)


@pytest.mark.parametrize("name", CONTINUOUS_SCHEDULES)
def test_f_and_g2_match_finite_differences(name):
    """f = d log alpha/dt and g^2 = d sigma^2/dt - 2 f sigma^2 against 5-point central differences."""
    s = ds.get_schedule(name)
    t = np.linspace(s.t_min + 0.2 * (s.t_max - s.t_min), s.t_max - 0.2 * (s.t_max - s.t_min), 7)
    eps = 1e-4 * (s.t_max - s.t_min)

    def deriv(fn):
        return (-fn(t + 2 * eps) + 8 * fn(t + eps) - 8 * fn(t - eps) + fn(t - 2 * eps)) / (12 * eps)

    np.testing.assert_allclose(s.f(t), deriv(s.log_alpha), rtol=1e-8, atol=1e-10)
    sig2 = lambda x: np.exp(2 * s.log_sigma(x))  # noqa: E731
    np.testing.assert_allclose(s.g2(t), deriv(sig2) - 2 * s.f(t) * sig2(t), rtol=1e-7)
    np.testing.assert_allclose(s.dlam_dt(t), deriv(s.lam), rtol=1e-8)


@pytest.mark.parametrize("name", CONTINUOUS_SCHEDULES)
def test_symbolic_identities(name):
    """g^2 = d sigma^2/dt - 2 f sigma^2 = -2 sigma^2 dlam/dt holds symbolically
    (docs/algorithms/exponential_integrators.md Appendix A, V-01, V-11a)."""
    c = ds.get_schedule(name).calculus
    t = sp.Symbol("t", positive=True)
    sig2 = sp.exp(2 * c.log_sigma)
    lhs = sp.diff(sig2, t) - 2 * c.f * sig2
    for point in (sp.Rational(1, 7), sp.Rational(1, 3)):
        assert abs(sp.N((lhs - c.g2).subs(t, point), 30)) < 1e-25


@pytest.mark.parametrize("name", ["vp-linear", "vp-cosine", "ou"])
def test_vp_numeric_forms_agree_with_sympy_expressions(name):
    """VP schedules evaluate sigma as sqrt(-expm1(2 log alpha)); the SymPy-derived forms agree where both are accurate."""
    s = ds.get_schedule(name)
    t = np.linspace(0.2, 0.9, 9) * s.t_max
    np.testing.assert_allclose(s.log_sigma(t), s._eval(s._log_sigma, t), rtol=1e-12)
    np.testing.assert_allclose(s.dlam_dt(t), s._eval(s._dlam, t), rtol=1e-10)
    np.testing.assert_allclose(s.alpha(t) ** 2 + s.sigma(t) ** 2, 1.0, rtol=1e-14)


def test_vp_linear_matches_high_precision_reference():
    s = ds.get_schedule("vp-linear")
    mp.mp.dps = 40
    for t in [1e-6, 1e-3, 0.1, 0.5, 1.0]:
        ell = -mp.mpf("19.9") * mp.mpf(t) ** 2 / 4 - mp.mpf("0.1") * mp.mpf(t) / 2
        lam = ell - mp.log(1 - mp.exp(2 * ell)) / 2
        assert abs(float(s.lam(t)) - float(lam)) <= 1e-15 * max(1.0, abs(float(lam)))
    # endpoint values of docs/algorithms/exponential_integrators.md §5.1
    assert s.lam(1.0) == pytest.approx(-5.025, abs=5e-4)
    assert s.lam(1e-3) == pytest.approx(4.558, abs=5e-4)


def test_from_expr_copy_of_vp_linear_agrees_with_catalog():
    cat = ds.get_schedule("vp-linear", beta_min=0.1, beta_max=20.0)
    user = ds.Schedule.from_expr(alpha="exp(-199/40*t**2 - t/20)", sigma="sqrt(1 - exp(-199/20*t**2 - t/10))")
    t = np.unique(np.concatenate([np.geomspace(1e-6, 1, 3000), np.linspace(1e-3, 1, 3000)]))
    for m in ("lam", "alpha", "sigma", "log_sigma", "f", "g2", "dlam_dt"):
        np.testing.assert_allclose(getattr(user, m)(t), getattr(cat, m)(t), rtol=1e-12, err_msg=m)
    lam = cat.lam(t)
    np.testing.assert_allclose(user.t_of_lam(lam), cat.t_of_lam(lam), rtol=1e-12)
    assert user.has_closed_form_inverse and user.variance_preserving


def test_readme_example_expression_is_vp_linear_with_beta_max_20_1():
    user = ds.Schedule.from_expr(alpha="exp(-5*t**2 - t/20)", sigma="sqrt(1 - exp(-10*t**2 - t/10))")
    cat = ds.get_schedule("vp-linear", beta_min=0.1, beta_max=20.1)
    t = np.geomspace(1e-5, 1, 500)
    np.testing.assert_allclose(user.lam(t), cat.lam(t), rtol=1e-12)


def test_user_schedule_without_closed_form_uses_newton():
    s = ds.Schedule.from_expr(alpha="cos(pi/2*t)", sigma="sin(pi/2*t)", t_max=0.99)
    assert not s.has_closed_form_inverse
    t = np.geomspace(1e-6, 0.99, 2000)
    np.testing.assert_allclose(s.t_of_lam(s.lam(t)), t, rtol=1e-13)
    # cosine without offset: lam = -log tan(pi t/2)
    np.testing.assert_allclose(s.lam(t), -np.log(np.tan(np.pi * t / 2)), rtol=1e-12)


def test_flow_schedule_forms():
    s = ds.get_schedule("flow")
    t = np.linspace(0.01, 0.99, 50)
    np.testing.assert_allclose(s.lam(t), np.log((1 - t) / t), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(s.f(t), -1 / (1 - t), rtol=1e-13)
    np.testing.assert_allclose(s.g2(t), 2 * t / (1 - t), rtol=1e-12)
    assert s.lam(1.0) == -np.inf and s.lam(0.0) == np.inf


def test_discrete_schedule_matches_cumprod_and_inverts():
    betas = np.linspace(1e-4, 0.02, 1000)
    s = DiscreteSchedule(betas)
    n = np.arange(1, 1001)
    alphas_cumprod = np.cumprod(1 - betas)
    np.testing.assert_allclose(s.alpha(n / 1000) ** 2, alphas_cumprod, rtol=1e-12)
    t = np.linspace(1e-3, 1.0, 11000)
    assert np.max(np.abs(s.t_of_lam(s.lam(t)) - t)) < 1e-15 * 8
    # the lam range of docs/algorithms/exponential_integrators.md V-12 (§5.4)
    assert s.lam(1.0) == pytest.approx(-5.06, abs=0.01)
    # f is the slope of the segment: piecewise constant
    assert s.f(0.1005) == pytest.approx((s.log_alpha(0.101) - s.log_alpha(0.1)) / 0.001, rel=1e-9)


@pytest.mark.parametrize("spacing", ["time", "logsnr", "karras", "quadratic"])
@pytest.mark.parametrize("name", ["vp-linear", "edm", "flow"])
def test_grid_spacings(name, spacing):
    s = ds.get_schedule(name)
    g = ds.time_grid(s, 12, spacing)
    assert g.shape == (13,) and g[0] == s.t_max and g[-1] == pytest.approx(s.t_min, rel=1e-12)
    assert np.all(np.diff(g) < 0)
    lam = s.lam(g)
    if spacing == "logsnr":
        np.testing.assert_allclose(np.diff(lam), np.diff(lam)[0], rtol=1e-9)
    if spacing == "time":
        np.testing.assert_allclose(np.diff(g), np.diff(g)[0], rtol=1e-9)
    if spacing == "karras":
        inner = np.exp(-lam / 7)  # sigma-tilde^(1/rho) is linear in i
        np.testing.assert_allclose(np.diff(inner), np.diff(inner)[0], rtol=1e-7)


def test_karras_edm_defaults():
    s = ds.get_schedule("edm")
    g = ds.time_grid(s, 18, "karras")
    assert g[0] == pytest.approx(80.0) and g[-1] == pytest.approx(0.002)


def test_explicit_grid_is_validated_and_returned():
    s = ds.get_schedule("vp-linear")
    g = ds.time_grid(s, None, [1.0, 0.5, 0.1, 0.001])
    np.testing.assert_array_equal(g, [1.0, 0.5, 0.1, 0.001])


def test_generated_schedule_module_is_fresh():
    """diffsolve/_generated/schedules.py is what `python -m diffsolve.codegen.schedules` prints today."""
    from diffsolve.codegen.schedules import TARGET, module_source

    assert TARGET.read_text(encoding="utf-8") == module_source()


def test_catalog_schedules_do_not_import_sympy():
    import subprocess
    import sys

    code = ("import sys, numpy as np, diffsolve as ds\n"
            "for n in ds.list_schedules():\n"
            "    s = ds.get_schedule(n); s.t_of_lam(s.lam(np.array([0.5 * (s.t_min + s.t_max)])))\n"
            "x = ds.sample('dpmpp-3m', ds.targets.from_spec('gaussian:d=2'), s, ds.time_grid(s, 8), n=4)\n"
            "assert 'sympy' not in sys.modules, 'sympy imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", CONTINUOUS_SCHEDULES)
def test_generated_functions_match_a_fresh_derivation(name):
    """The printed functions (float parameters) agree with lambdified expressions of the SymPy calculus."""
    from diffsolve.symbolic import schedule as calc

    s = ds.get_schedule(name)
    fresh = calc.numpy_functions(s.calculus)
    t = np.linspace(s.t_min, s.t_max, 50)[1:-1]
    for q in ("log_alpha", "f", "dalpha_dt"):
        np.testing.assert_allclose(getattr(s, "_" + {"log_alpha": "log_alpha", "f": "f", "dalpha_dt": "dalpha"}[q])(t),
                                   s._eval(fresh[q], t), rtol=1e-13, atol=1e-15, err_msg=q)
    lam = s.lam(t)
    np.testing.assert_allclose(s._inverse(lam), s._eval(fresh["t_of_lam"], lam), rtol=1e-12, err_msg="t_of_lam")
