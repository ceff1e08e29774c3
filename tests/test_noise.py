"""Tests of diffsolve.noise: Philox4x32-10 known answers, the keying convention, normal statistics, execution-layout
invariance, the virtual Brownian tree (docs/verification.md §5.2) and input validation."""

import math
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from diffsolve.errors import DiffsolveError
from diffsolve.noise import BrownianTree, philox4x32_10, standard_normal
from diffsolve.noise.philox import (
    box_muller,
    box_muller_jit,
    make_noise_functions,
    normal_at,
    normal_at_jit,
    normal_pair,
    philox4x32_10_jit,
    uniform53,
    uniform53_jit,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ----------------------------------------------------------------------------------------------------------------
# Philox4x32-10 known answers: Random123 examples/kat_vectors, lines "philox4x32 10 CTR[4] KEY[2] EXPECTED[4]".

KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("fn", [philox4x32_10, philox4x32_10_jit], ids=["python", "njit"])
@pytest.mark.parametrize("ctr,key,expected", KAT, ids=["zeros", "ones", "pi"])
def test_philox_known_answers(fn, ctr, key, expected):
    out = fn(*ctr, *key)
    assert tuple(int(w) for w in out) == expected


def _philox_reference(ctr, key, rounds=10):
    """Independent big-int Philox4x32-R (key bump written after each round instead of before)."""
    c = list(ctr)
    k0, k1 = key
    for r in range(rounds):
        p0 = 0xD2511F53 * c[0]
        p1 = 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & 0xFFFFFFFF, (p0 >> 32) ^ c[3] ^ k1, p0 & 0xFFFFFFFF]
        k0 = (k0 + 0x9E3779B9) % 2**32
        k1 = (k1 + 0xBB67AE85) % 2**32
    return tuple(c)


def test_reference_matches_known_answers():
    for ctr, key, expected in KAT:
        assert _philox_reference(ctr, key) == expected


u32 = st.integers(0, 2**32 - 1)


@settings(max_examples=60, deadline=None)
@given(u32, u32, u32, u32, u32, u32)
def test_philox_python_and_njit_agree_with_reference(c0, c1, c2, c3, k0, k1):
    ref = _philox_reference((c0, c1, c2, c3), (k0, k1))
    assert tuple(int(w) for w in philox4x32_10(c0, c1, c2, c3, k0, k1)) == ref
    assert tuple(int(w) for w in philox4x32_10_jit(c0, c1, c2, c3, k0, k1)) == ref


# ----------------------------------------------------------------------------------------------------------------
# Uniform conversion, Box-Muller and the keying convention.


def test_uniform53_open_interval_and_resolution():
    for f in (uniform53, uniform53_jit):
        assert f(0, 0) == 2.0**-54  # k = 0 is moved off zero
        assert f(0xFFFFFFFF, 0xFFFFFFFF) == 1.0 - 2.0**-53  # never 1
        assert f(0, 1 << 11) == 2.0**-53  # lowest used bit of the low word
        assert f(0, (1 << 11) - 1) == 2.0**-54  # the 11 discarded bits do not matter
        assert f(0x80000000, 0) == 0.5
        assert f(0x12345678, 0x9ABCDEF0) == ((0x12345678 << 21) | (0x9ABCDEF0 >> 11)) * 2.0**-53


def test_box_muller_formula():
    for f in (box_muller, box_muller_jit):
        z0, z1 = f(0.3, 0.1)
        r = math.sqrt(-2.0 * math.log(0.3))
        assert z0 == pytest.approx(r * math.cos(0.2 * math.pi), rel=1e-15)
        assert z1 == pytest.approx(r * math.sin(0.2 * math.pi), rel=1e-15)


def _normal_by_hand(seed, sample_index, step, draw, coord):
    """The documented convention, spelled out with the reference Philox and big-int arithmetic."""
    key = (seed & 0xFFFFFFFF, seed >> 32)
    r = _philox_reference((coord // 2, sample_index & 0xFFFFFFFF, step, draw), key)
    u1 = ((r[0] << 21) | (r[1] >> 11)) * 2.0**-53 or 2.0**-54
    u2 = ((r[2] << 21) | (r[3] >> 11)) * 2.0**-53 or 2.0**-54
    rad = math.sqrt(-2.0 * math.log(u1))
    return rad * (math.cos(2.0 * math.pi * u2) if coord % 2 == 0 else math.sin(2.0 * math.pi * u2))


def test_keying_convention():
    seed = 0x0123456789ABCDEF
    idx = np.array([0, 1, 7, 2**32 - 1], dtype=np.int64)
    step, draw, dim = 2**32 - 2, 123456, 5
    z = standard_normal(seed, idx, step, draw, dim)
    for i, s in enumerate(idx):
        for j in range(dim):
            want = _normal_by_hand(seed, int(s), step, draw, j)
            assert z[i, j] == pytest.approx(want, rel=1e-14, abs=1e-14)
            args = (seed & 0xFFFFFFFF, seed >> 32, int(s), step, draw, j)
            assert z[i, j] == normal_at_jit(*args)
            assert z[i, j] == pytest.approx(normal_at(*args), rel=1e-14, abs=1e-14)


def test_seed_high_word_is_used():
    idx = np.arange(4)
    a = standard_normal(5, idx, 0, 0, 4)
    b = standard_normal(5 + 2**32, idx, 0, 0, 4)
    assert not np.any(a == b)


# ----------------------------------------------------------------------------------------------------------------
# Statistics of the normals.


@pytest.fixture(scope="module")
def big_batch():
    # 25_000 samples x 8 coordinates = 200_000 normals
    return standard_normal(20240601, np.arange(25_000, dtype=np.int64), 3, 0, 8)


def test_normals_ks(big_batch):
    assert stats.kstest(big_batch.ravel(), "norm").pvalue > 1e-3
    # each coordinate parity separately (cosine and sine halves of Box-Muller)
    assert stats.kstest(big_batch[:, 0::2].ravel(), "norm").pvalue > 1e-3
    assert stats.kstest(big_batch[:, 1::2].ravel(), "norm").pvalue > 1e-3


def test_normal_moments(big_batch):
    x = big_batch.ravel()
    n = x.size
    assert abs(x.mean()) < 5 / math.sqrt(n)
    assert abs(x.var() - 1.0) < 5 * math.sqrt(2.0 / n)
    assert abs(stats.skew(x)) < 5 * math.sqrt(6.0 / n)
    assert abs(stats.kurtosis(x)) < 5 * math.sqrt(24.0 / n)


def _corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_normals_uncorrelated(big_batch):
    n = big_batch.shape[0]
    band = 5 / math.sqrt(n)
    # coordinates: same Philox call (0, 1), neighbouring calls (1, 2), further (0, 7)
    for j, k in [(0, 1), (1, 2), (0, 7), (2, 3)]:
        assert abs(_corr(big_batch[:, j], big_batch[:, k])) < band
    # neighbouring sample indices
    assert abs(_corr(big_batch[:-1], big_batch[1:])) < 5 / math.sqrt(big_batch.size)
    idx = np.arange(n, dtype=np.int64)
    other_draw = standard_normal(20240601, idx, 3, 1, 8)
    other_step = standard_normal(20240601, idx, 4, 0, 8)
    other_seed = standard_normal(20240602, idx, 3, 0, 8)
    for other in (other_draw, other_step, other_seed):
        assert abs(_corr(big_batch, other)) < 5 / math.sqrt(big_batch.size)
    # squares too (dependence that a plain correlation misses)
    assert abs(_corr(big_batch[:, 0] ** 2, big_batch[:, 1] ** 2)) < band


# ----------------------------------------------------------------------------------------------------------------
# Execution-layout invariance (docs/verification.md §5.2 item 5).


def test_batch_split_permutation_and_dim_invariance():
    seed, step, draw, dim = 99, 7, 2, 7
    idx = np.arange(1000, 1500, dtype=np.int64)
    full = standard_normal(seed, idx, step, draw, dim)
    chunks = np.concatenate([standard_normal(seed, c, step, draw, dim) for c in np.array_split(idx, [1, 17, 250])])
    np.testing.assert_array_equal(chunks, full)
    perm = np.random.default_rng(0).permutation(idx.size)
    np.testing.assert_array_equal(standard_normal(seed, idx[perm], step, draw, dim), full[perm])
    np.testing.assert_array_equal(standard_normal(seed, idx.astype(np.uint32), step, draw, dim), full)
    np.testing.assert_array_equal(standard_normal(seed, idx, step, draw, dim + 1)[:, :dim], full)
    np.testing.assert_array_equal(standard_normal(seed, idx, step, draw, 4), full[:, :4])
    one = standard_normal(seed, idx[123:124], step, draw, dim)
    np.testing.assert_array_equal(one[0], full[123])
    assert standard_normal(seed, np.zeros(0, np.int64), step, draw, dim).shape == (0, dim)


def test_thread_count_invariance():
    idx = np.arange(5000, dtype=np.int64)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = standard_normal(3, idx, 1, 1, 6)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = standard_normal(3, idx, 1, 1, 6)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(one, two)
    # 30_000 normals take the prange kernel, chunks of 3_000 the serial one: same values
    serial = np.concatenate([standard_normal(3, c, 1, 1, 6) for c in np.array_split(idx, 10)])
    np.testing.assert_array_equal(serial, one)


# ----------------------------------------------------------------------------------------------------------------
# The same scalar code under numba.cuda.


def test_cuda_device_functions_compile_to_ptx():
    try:
        from numba import cuda
        from numba.cuda.cudadrv import nvvm

        if not nvvm.is_available():
            pytest.skip("libNVVM not available")
    except Exception as exc:  # numba-cuda missing or broken on this machine
        pytest.skip(f"numba.cuda unavailable: {exc}")
    from numba import float64, int64, uint64

    for fn, sig in [(philox4x32_10, (int64,) * 6), (uniform53, (uint64, uint64)), (box_muller, (float64, float64))]:
        try:
            ptx, restype = cuda.compile_ptx(fn, sig, device=True, cc=(8, 0))
        except Exception as exc:  # CUDA toolkit libraries (NVRTC/NVVM) not installed: nothing to compile with
            if "Failure finding" in str(exc) or "NotFound" in type(exc).__name__:
                pytest.skip(f"CUDA toolkit libraries missing: {exc}")
            raise
        assert ".func" in ptx


_SIM_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from numba import cuda
    from diffsolve.noise.philox import make_noise_functions, normal_at_jit
    normal_at_dev = make_noise_functions(cuda.jit(device=True)).normal_at

    @cuda.jit
    def kernel(out, seed_lo, seed_hi, step, draw):
        i = cuda.grid(1)
        if i < out.shape[0]:
            out[i] = normal_at_dev(seed_lo, seed_hi, i, step, draw, i % 5)

    out = np.zeros(16)
    kernel[1, 16](out, 11, 3, 4, 2)
    want = np.array([normal_at_jit(11, 3, i, 4, 2, i % 5) for i in range(16)])
    assert np.array_equal(out, want), (out, want)
    print("OK")
    """
)


def test_cuda_kernel_in_simulator_matches_cpu():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", _SIM_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    if res.returncode != 0 and "No module named 'numba.cuda'" in res.stderr:
        pytest.skip("numba.cuda not installed")
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-3000:]


# ----------------------------------------------------------------------------------------------------------------
# Brownian tree (docs/verification.md §5.2 items 1-5).

N_PATHS = 20_000


@pytest.fixture(scope="module")
def tree():
    return BrownianTree(77, 0.0, 1.0, (N_PATHS, 2), tol=1e-4)


def test_brownian_additivity(tree):
    a, c, b = 0.113, 0.42, 0.871
    np.testing.assert_allclose(tree.increment(a, b), tree.increment(a, c) + tree.increment(c, b), rtol=0, atol=1e-13)
    np.testing.assert_allclose(tree.increment(0.0, b), tree(b), rtol=0, atol=0)
    np.testing.assert_array_equal(tree.increment(b, a), -tree.increment(a, b))
    np.testing.assert_array_equal(tree(0.0), np.zeros((N_PATHS, 2)))


@pytest.mark.parametrize("a,b", [(0.113, 0.871), (0.0, 1.0), (0.25, 0.5), (0.3001, 0.3203), (0.7, 0.7007)])
def test_brownian_increments_normal(tree, a, b):
    z = tree.increment(a, b) / math.sqrt(b - a)
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    assert abs(z.var() - 1.0) < 5 * math.sqrt(2.0 / z.size)


@pytest.mark.parametrize("a,c,b", [(0.1, 0.37, 0.8), (0.25, 0.5, 0.75), (0.0, 0.5, 1.0), (0.6, 0.6002, 0.6005)])
def test_brownian_bridge_conditional_normality(tree, a, c, b):
    wa, wc, wb = tree(a), tree(c), tree(b)
    mean = wa + (c - a) / (b - a) * (wb - wa)
    sd = math.sqrt((c - a) * (b - c) / (b - a))
    resid = ((wc - mean) / sd).ravel()
    assert stats.kstest(resid, "norm").pvalue > 1e-3
    # the residual is independent of the conditioning values
    assert abs(_corr(resid, (wb - wa).ravel())) < 5 / math.sqrt(resid.size)


def test_brownian_disjoint_increments_uncorrelated(tree):
    grid = np.array([0.0, 0.07, 0.2, 0.2001, 0.55, 0.93, 1.0])
    inc = tree.increments(grid)
    band = 5 / math.sqrt(inc[0].size)
    for k in range(len(grid) - 1):
        dt = grid[k + 1] - grid[k]
        assert abs(inc[k].var() / dt - 1.0) < 5 * math.sqrt(2.0 / inc[k].size)
        for m in range(k + 1, len(grid) - 1):
            assert abs(_corr(inc[k], inc[m])) < band
    # coordinates and neighbouring paths are independent too
    assert abs(_corr(inc[2][:, 0], inc[2][:, 1])) < band
    assert abs(_corr(inc[4][:-1], inc[4][1:])) < band


def test_brownian_warns_when_query_times_share_a_leaf():
    tr = BrownianTree(3, 0.0, 1.0, (2, 1), tol=1e-2)  # leaves of width 2**-7
    with pytest.warns(UserWarning, match=r"one leaf of width 0\.00781.*Pass tol below"):
        tr.increments([0.0, 0.3001, 0.3002, 1.0])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tr.increments([0.0, 0.3001, 0.5, 0.7, 1.0])


@pytest.mark.filterwarnings("ignore:BrownianTree")  # 0.3 and 0.30001 share a leaf: still deterministic
def test_brownian_query_order_independence():
    times = [0.0, 0.9, 0.3, 0.123456, 0.5, 1.0, 0.30001, 0.75, 0.2]
    ref = BrownianTree(5, 0.0, 1.0, (64, 3), tol=1e-3)
    want = {t: ref(t) for t in times}
    rng = np.random.default_rng(1)
    for _ in range(3):
        tr = BrownianTree(5, 0.0, 1.0, (64, 3), tol=1e-3)
        for t in rng.permutation(times):
            np.testing.assert_array_equal(tr(float(t)), want[float(t)])
        perm = [float(t) for t in rng.permutation(times)]
        inc = tr.increments(perm)
        for k in range(len(perm) - 1):
            np.testing.assert_array_equal(inc[k], want[perm[k + 1]] - want[perm[k]])
            np.testing.assert_array_equal(tr.increment(perm[k], perm[k + 1]), inc[k])


def test_brownian_step_count_consistency():
    tr = BrownianTree(2024, 0.001, 1.0, (500, 4), tol=1e-5)
    g40 = np.linspace(1.0, 0.001, 41)  # reverse time, as a sampler walks it
    g20 = g40[::2]
    inc40 = tr.increments(g40)
    inc20 = tr.increments(g20)
    np.testing.assert_allclose(inc40[0::2] + inc40[1::2], inc20, rtol=0, atol=1e-13)
    np.testing.assert_allclose(inc20.sum(axis=0), tr(0.001) - tr(1.0), rtol=0, atol=1e-13)
    # path values at the shared grid points are bitwise the same (fresh tree, single queries)
    for t in g20[1:-1]:
        np.testing.assert_array_equal(BrownianTree(2024, 0.001, 1.0, (500, 4), tol=1e-5)(t), tr(t))


def test_brownian_refining_tol_keeps_dyadic_skeleton():
    coarse = BrownianTree(8, 0.0, 2.0, (32, 2), tol=0.1)
    fine = BrownianTree(8, 0.0, 2.0, (32, 2), tol=1e-6)
    for t in (0.5, 1.0, 1.25, 2.0, 0.125):
        np.testing.assert_array_equal(coarse(t), fine(t))
    assert not np.array_equal(coarse(0.3), fine(0.3))


def test_brownian_batch_split_invariance():
    grid = np.linspace(0.0, 1.0, 9)
    full = BrownianTree(13, 0.0, 1.0, (10, 3), tol=1e-3).increments(grid)
    first = BrownianTree(13, 0.0, 1.0, (4, 3), tol=1e-3, sample_index=np.arange(4)).increments(grid)
    rest = BrownianTree(13, 0.0, 1.0, (6, 3), tol=1e-3, sample_index=np.arange(4, 10)).increments(grid)
    np.testing.assert_array_equal(np.concatenate([first, rest], axis=1), full)
    perm = np.array([9, 3, 0, 7, 1, 8, 2, 6, 5, 4])
    permuted = BrownianTree(13, 0.0, 1.0, (10, 3), tol=1e-3, sample_index=perm).increments(grid)
    np.testing.assert_array_equal(permuted, full[:, perm])
    single = BrownianTree(13, 0.0, 1.0, 3, tol=1e-3, sample_index=7)
    assert single(0.4).shape == (3,)
    np.testing.assert_array_equal(single.increments(grid), full[:, 7])


def test_brownian_does_not_reuse_solver_normals():
    tr = BrownianTree(21, 0.0, 1.0, (100, 4), tol=0.5)
    w1 = tr(1.0)
    for step in range(3):
        for draw in range(3):
            assert not np.any(w1 == standard_normal(21, np.arange(100), step, draw, 4))


# ----------------------------------------------------------------------------------------------------------------
# Input validation: the message names the received value and the fix.


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(seed=-1), DiffsolveError, r"seed.*got -1.*non-negative"),
        (dict(seed=2**64), DiffsolveError, r"seed.*got 18446744073709551616"),
        (dict(seed=1.5), TypeError, r"seed.*got 1\.5.*float"),
        (dict(seed=True), TypeError, r"seed.*got True"),
        (dict(sample_index=np.array([0.0, 1.0])), TypeError, r"sample_index.*float64.*astype"),
        (dict(sample_index=np.array([[0, 1]])), DiffsolveError, r"sample_index.*shape \(1, 2\).*ravel"),
        (dict(sample_index=np.array([-3, 1])), DiffsolveError, r"sample_index.*\[-3, 1\]"),
        (dict(sample_index=np.array([2**32])), DiffsolveError, r"sample_index.*4294967296"),
        (dict(step=-1), DiffsolveError, r"step.*got -1"),
        (dict(step=2**32), DiffsolveError, r"step.*got 4294967296"),
        (dict(draw=0.5), TypeError, r"draw.*got 0\.5"),
        (dict(dim=0), DiffsolveError, r"dim.*got 0"),
        (dict(dim=3.0), TypeError, r"dim.*got 3\.0"),
    ],
)
def test_standard_normal_rejects_bad_input(kwargs, exc, match):
    args = dict(seed=1, sample_index=np.arange(3), step=0, draw=0, dim=2)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        standard_normal(**args)


def test_validation_errors_are_value_errors():
    assert issubclass(DiffsolveError, ValueError)
    with pytest.raises(ValueError):
        standard_normal(-5, np.arange(2), 0, 0, 1)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(t0=1.0, t1=0.0), DiffsolveError, r"t0 < t1.*t0=1\.0, t1=0\.0"),
        (dict(t1=float("nan")), DiffsolveError, r"t1 must be finite, got nan"),
        (dict(tol=0.0), DiffsolveError, r"tol must be > 0, got 0\.0"),
        (dict(tol=1e-30), DiffsolveError, r"tol=1e-30.*pass tol >="),
        (dict(shape=(3, 0)), DiffsolveError, r"shape.*\(3, 0\)"),
        (dict(shape="3"), TypeError, r"shape.*'3'"),
        (dict(sample_index=np.arange(5)), DiffsolveError, r"sample_index has 5 entries.*n=4"),
        (dict(seed=-2), DiffsolveError, r"seed.*got -2"),
    ],
)
def test_brownian_rejects_bad_input(kwargs, exc, match):
    args = dict(seed=1, t0=0.0, t1=1.0, shape=(4, 2), tol=1e-3)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        BrownianTree(**args)


def test_brownian_rejects_bad_queries():
    tr = BrownianTree(1, 0.0, 1.0, (2, 2), tol=1e-2)
    with pytest.raises(DiffsolveError, match=r"t=1\.5 is outside .*\[0\.0, 1\.0\]"):
        tr(1.5)
    with pytest.raises(DiffsolveError, match=r"b=-0\.1 is outside"):
        tr.increment(0.2, -0.1)
    with pytest.raises(DiffsolveError, match=r"grid_times has 1 value.*first: 2\.0"):
        tr.increments([0.0, 0.5, 2.0])
    with pytest.raises(DiffsolveError, match=r"at least 2 times, got shape \(1,\)"):
        tr.increments([0.5])
    with pytest.raises(TypeError, match=r"t must be a real number, got '0\.5'"):
        tr("0.5")


def test_make_noise_functions_plain_python_matches_njit():
    py = make_noise_functions(lambda f: f)
    for args in [(1, 2, 3, 4, 5, 6), (0, 0, 0, 0, 0, 0), (2**32 - 1, 2**32 - 1, 2**32 - 1, 2**32 - 1, 2**32 - 1, 9)]:
        assert py.normal_at(*args) == pytest.approx(normal_at_jit(*args), rel=1e-14, abs=1e-14)
    z0, z1 = normal_pair(7, 8, 0, 1, 2, 3)
    assert z0 == pytest.approx(normal_at(7, 8, 1, 2, 3, 0), rel=0, abs=0)
    assert z1 == pytest.approx(normal_at(7, 8, 1, 2, 3, 1), rel=0, abs=0)
