"""Generated coefficient builders vs 40-digit quadrature of the defining integrals
(docs/algorithms/exponential_integrators.md §8 step 9 (i); docs/verification.md), the h = inf final step, and the
no-division-by-h rule."""

import re

import mpmath
import numpy as np
import pytest

from diffsolve._generated import load as load_shipped
from diffsolve.codegen.emit import generate, load
from diffsolve.symbolic.multistep import derive_multistep

RNG = np.random.default_rng(20261122)


def _module(k, prediction, sde, tmp_path_factory):
    key = ("multistep", k, prediction, sde, "exact")
    try:
        return load_shipped(key)
    except KeyError:
        return load(generate(derive_multistep(k, prediction, sde), tmp_path_factory.mktemp("gen")))


def _fill(m, h, r, eta=None, la=None, ls=None):
    n, S, M, Q = len(h), m.STAGES, m.HISTORY, m.NOISES
    la = np.zeros((n, S + 1)) if la is None else la
    ls = np.zeros((n, S + 1)) if ls is None else ls
    params = np.array([eta] if m.PARAMS else [], dtype=float)
    out = (np.full((n, S + 1), np.nan), np.full((n, S + 1, S), np.nan), np.full((n, S + 1, M), np.nan),
           np.full((n, S + 1, Q), np.nan))
    m.fill(np.asarray(h, float), np.asarray(r, float).reshape(n, M), la, ls, params, *out)
    return out


def _reference_weights(k, prediction, h, r, eta):
    """W_j = Z Integral_0^1 exp(s Z (1-u)) l_j(u) du at 40 digits (mpmath quadrature)."""
    with mpmath.workdps(40):
        h = mpmath.mpf(h)
        z, s = ((1 + mpmath.mpf(eta)) * h, -1) if prediction == "data" else (h, 1)
        nodes = [mpmath.mpf(0)]
        for rj in r:
            nodes.append(nodes[-1] - mpmath.mpf(rj))
        out = []
        for j in range(k):
            def basis(u, j=j):
                p = mpmath.mpf(1)
                for m, um in enumerate(nodes):
                    if m != j:
                        p *= (u - um) / (nodes[j] - um)
                return p
            out.append(z * mpmath.quad(lambda u: mpmath.exp(s * z * (1 - u)) * basis(u), [0, 1]))
        return out


CASES = [(k, "data", True) for k in range(1, 7)] + [(k, "eps", False) for k in range(1, 5)] + [(2, "eps", True)]


@pytest.mark.parametrize("k, prediction, sde", CASES)
def test_weights_match_quadrature(k, prediction, sde, tmp_path_factory):
    m = _module(k, prediction, sde, tmp_path_factory)
    worst = 0.0
    for _ in range(6):
        h = 10 ** RNG.uniform(-12, 1)
        r = RNG.uniform(0.5, 2.0, k - 1)
        eta = RNG.uniform(0, 2) if sde else 0.0
        A, B, E, C = _fill(m, [h], [r], eta)
        got = np.concatenate([B[0, 1], E[0, 1]])
        if prediction == "eps":  # prefactor -(1 + eta) sigma_{n+1}, sigma_{n+1} = 1 here
            got = got / -(1 + eta)
        ref = _reference_weights(k, prediction, h, r, eta)
        scale = max(abs(x) for x in ref)
        worst = max(worst, max(float(abs(g - w) / scale) for g, w in zip(got, ref)))
        # the noise coefficient against the exact step variance (log sigma = 0 at the end node)
        if sde:
            with mpmath.workdps(40):
                hh, ee = mpmath.mpf(h), mpmath.mpf(eta)
                var = 1 - mpmath.exp(-2 * ee * hh) if prediction == "data" else ee * mpmath.expm1(2 * hh)
                assert abs(C[0, 1, 0] - mpmath.sqrt(var)) <= 4e-16 * mpmath.sqrt(var) + 1e-300
    print(f"k={k} {prediction} sde={sde}: max error / max weight = {worst:.2e}")
    assert worst <= 1e-15, worst


@pytest.mark.parametrize("sde, eta", [(False, None), (True, 1.0), (True, 0.5), (True, 0.0)])
def test_final_step_to_sigma_zero(sde, eta):
    # docs/algorithms/exponential_integrators.md §3.8: h = inf, log sigma_end = -inf: x_t = alpha_t D (Phi -> 0,
    # psi_0 -> 1, no noise)
    m = load_shipped(("multistep", 1, "data", sde, "exact"))
    la = np.array([[-0.7, -0.01]])
    ls = np.array([[-0.3, -np.inf]])
    A, B, E, C = _fill(m, [np.inf], np.zeros((1, 0)), eta, la, ls)
    assert A[0, 1] == 0.0 and B[0, 1, 0] == pytest.approx(np.exp(-0.01), rel=1e-15)
    assert np.all(np.isfinite(C)) and np.all(C == 0.0)


def test_no_division_by_h_in_generated_bodies():
    from diffsolve._generated import INDEX

    for name in INDEX.values():
        m = load_shipped(next(k for k, v in INDEX.items() if v == name))
        source = open(m.__file__).read()
        body = source[source.index("def fill("):]
        assert not re.search(r"/\s*\(?\s*hn\b", body), name
