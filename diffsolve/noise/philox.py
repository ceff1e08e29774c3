"""Philox4x32-10 counter-based random numbers, written once for the CPU (``numba.njit``) and the GPU
(``numba.cuda.jit(device=True)``).

Reference: J. K. Salmon, M. A. Moraes, R. O. Dror, D. E. Shaw, "Parallel random numbers: as easy as 1, 2, 3",
SC 2011 (the Random123 library).  Philox4x32-R maps a 128-bit counter (c0, c1, c2, c3) and a 64-bit key
(k0, k1) to 128 random bits; R = 10 rounds of

    (c0, c1, c2, c3) <- (hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0))

with M0 = 0xD2511F53, M1 = 0xCD9E8D57, and the key bumped between rounds by the Weyl constants
(k0, k1) += (0x9E3779B9, 0xBB67AE85) mod 2**32.

The scalar functions below use only scalar integer/float arithmetic and ``math``: every word is cast to
``numba.uint64`` (a NumPy ``uint64`` scalar when run as plain Python), 32x32-bit products are taken in 64 bits
and split into their high and low words (mulhilo).  They run unchanged as plain Python (slow; reference and
known-answer tests), under ``numba.njit`` and under ``numba.cuda.jit(device=True)``.  Because the composite
functions call each other, build a consistent compiled set with :func:`make_noise_functions`::

    from numba import cuda
    gpu = make_noise_functions(cuda.jit(device=True))
    z = gpu.normal_at(seed_lo, seed_hi, sample_index, step, draw, coord)   # inside a kernel

Keying convention of diffsolve (docs/architecture.md, "Noise"; the invariances it buys are tested as in
docs/verification.md §5.2), fixed for the whole project:

    key     = (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)             seed: int in [0, 2**64)
    counter = (block, sample_index & 0xFFFFFFFF, step, draw)              block = coordinate // 2

One Philox call gives 4 words -> 2 uniforms (53 bits each) -> 2 normals (Box-Muller), which fill coordinates
2*block and 2*block + 1.  Counter words 0 with the top bit set (block >= 2**31) are reserved for the virtual
Brownian tree (:mod:`diffsolve.noise.brownian`), so its normals never coincide with solver draws of the same seed.
"""

import math
from types import SimpleNamespace

import numba
from numba import uint64

__all__ = [
    "PHILOX_M0",
    "PHILOX_M1",
    "PHILOX_W0",
    "PHILOX_W1",
    "BLOCK_TAG_TREE_NODE",
    "BLOCK_TAG_TREE_LEAF",
    "MAX_BLOCK",
    "philox4x32_10",
    "philox4x32_10_jit",
    "uniform53",
    "box_muller",
    "normal_pair",
    "normal_at",
    "uniform53_jit",
    "box_muller_jit",
    "normal_pair_jit",
    "normal_at_jit",
    "make_noise_functions",
    "fill_normals",
    "fill_uniforms",
]

# Published Philox4x32 constants (Salmon et al. 2011, Random123 philox.h).
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9  # golden ratio
PHILOX_W1 = 0xBB67AE85  # sqrt(3) - 1

# Counter word 0 = block | tag.  Solver draws use tag 0 (block < 2**31); the Brownian tree uses the two tags below.
MAX_BLOCK = 0x3FFFFFFF  # the largest block a tagged (tree) counter can carry
BLOCK_TAG_TREE_NODE = 0x80000000  # dyadic midpoint nodes of the Brownian tree
BLOCK_TAG_TREE_LEAF = 0xC0000000  # bridge draws inside a leaf, keyed by the query time

# Typed constants (uint64 scalars: NumPy scalars in plain Python, frozen uint64 constants under Numba/CUDA).
_M0 = uint64(PHILOX_M0)
_M1 = uint64(PHILOX_M1)
_W0 = uint64(PHILOX_W0)
_W1 = uint64(PHILOX_W1)
_MASK32 = uint64(0xFFFFFFFF)
_SH32 = uint64(32)
_SH21 = uint64(21)
_SH11 = uint64(11)
_TWO_M53 = 2.0**-53
_TWO_M54 = 2.0**-54
_TWO_PI = 2.0 * math.pi


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 block function: counter (c0..c3) and key (k0, k1), each a 32-bit word, to 4 words.

    Returns ``(r0, r1, r2, r3)`` as uint64 scalars holding 32-bit values.  Matches the Random123 known-answer
    vectors (``kat_vectors``), e.g. counter 0, key 0 -> (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8).
    Plain scalar Python: compile it with ``numba.njit`` or ``numba.cuda.jit(device=True)``.
    """
    x0 = uint64(c0) & _MASK32
    x1 = uint64(c1) & _MASK32
    x2 = uint64(c2) & _MASK32
    x3 = uint64(c3) & _MASK32
    y0 = uint64(k0) & _MASK32
    y1 = uint64(k1) & _MASK32
    for rnd in range(10):
        if rnd > 0:  # key schedule: bump before every round but the first
            y0 = (y0 + _W0) & _MASK32
            y1 = (y1 + _W1) & _MASK32
        p0 = _M0 * x0  # < 2**64: exact in uint64
        p1 = _M1 * x2
        n0 = (p1 >> _SH32) ^ x1 ^ y0
        n1 = p1 & _MASK32
        n2 = (p0 >> _SH32) ^ x3 ^ y1
        n3 = p0 & _MASK32
        x0 = n0
        x1 = n1
        x2 = n2
        x3 = n3
    return x0, x1, x2, x3


def uniform53(hi, lo):
    """Two 32-bit words to a uniform double in (0, 1) with 53 random bits.

    k = (hi << 21) | (lo >> 11) is uniform on [0, 2**53); u = k * 2**-53, except k = 0 gives 2**-54.  So u lies
    on the 2**-53 lattice in [2**-53, 1 - 2**-53] plus the single point 2**-54 (probability 2**-53): never 0,
    never 1 (an offset of half a lattice step is not representable near 1 and would round up to 1.0).
    """
    k = ((uint64(hi) & _MASK32) << _SH21) | ((uint64(lo) & _MASK32) >> _SH11)
    u = float(k) * _TWO_M53
    if u == 0.0:
        u = _TWO_M54
    return u


def box_muller(u1, u2):
    """Box-Muller: two uniforms in (0, 1] x (0, 1) to two independent standard normals (r cos, r sin)."""
    r = math.sqrt(-2.0 * math.log(u1))
    theta = _TWO_PI * u2
    return r * math.cos(theta), r * math.sin(theta)


def make_noise_functions(decorate):
    """Build the scalar noise functions with ``decorate`` applied to each, callees included.

    ``decorate`` is ``numba.njit`` (CPU), ``numba.cuda.jit(device=True)`` (GPU) or the identity (plain Python).
    Returns a namespace with ``philox4x32_10``, ``uniform53``, ``box_muller``, ``normal_pair`` and ``normal_at``.
    """
    philox = decorate(philox4x32_10)
    u53 = decorate(uniform53)
    bm = decorate(box_muller)

    def normal_pair(k0, k1, c0, c1, c2, c3):
        """Two standard normals from one Philox4x32-10 call: words (r0, r1) -> u1, (r2, r3) -> u2, Box-Muller."""
        r0, r1, r2, r3 = philox(c0, c1, c2, c3, k0, k1)
        return bm(u53(r0, r1), u53(r2, r3))

    normal_pair_d = decorate(normal_pair)

    def normal_at(seed_lo, seed_hi, sample_index, step, draw, coord):
        """Standard normal for (seed, sample index, step, draw, coordinate) under the diffsolve keying.

        seed_lo/seed_hi are the low/high 32 bits of the seed; counter = (coord // 2, sample_index & 0xFFFFFFFF,
        step, draw); even coordinates take the cosine normal of the pair, odd ones the sine normal.
        """
        z0, z1 = normal_pair_d(seed_lo, seed_hi, coord // 2, sample_index & 0xFFFFFFFF, step, draw)
        if coord % 2 == 0:
            return z0
        return z1

    normal_at_d = decorate(normal_at)
    return SimpleNamespace(
        philox4x32_10=philox,
        uniform53=u53,
        box_muller=bm,
        normal_pair=normal_pair_d,
        normal_at=normal_at_d,
    )


def _identity(f):
    return f


_py = make_noise_functions(_identity)
_cpu = make_noise_functions(numba.njit)

# Plain-Python references (slow) and their CPU-compiled twins.
normal_pair = _py.normal_pair
normal_at = _py.normal_at
philox4x32_10_jit = _cpu.philox4x32_10
uniform53_jit = _cpu.uniform53
box_muller_jit = _cpu.box_muller
normal_pair_jit = _cpu.normal_pair
normal_at_jit = _cpu.normal_at


@numba.njit(cache=True)
def _fill_row(out, i, seed_lo, seed_hi, s, tag, c2, c3):
    dim = out.shape[1]
    for b in range((dim + 1) // 2):
        z0, z1 = normal_pair_jit(seed_lo, seed_hi, tag | uint64(b), s, c2, c3)
        out[i, 2 * b] = z0
        if 2 * b + 1 < dim:
            out[i, 2 * b + 1] = z1


@numba.njit(parallel=True, cache=True)
def _fill_normals_parallel(out, seed_lo, seed_hi, sample_index, block_tag, c2, c3):
    tag = uint64(block_tag)
    for i in numba.prange(out.shape[0]):
        _fill_row(out, i, seed_lo, seed_hi, sample_index[i] & 0xFFFFFFFF, tag, c2, c3)


@numba.njit(cache=True)
def _fill_normals_serial(out, seed_lo, seed_hi, sample_index, block_tag, c2, c3):
    tag = uint64(block_tag)
    for i in range(out.shape[0]):
        _fill_row(out, i, seed_lo, seed_hi, sample_index[i] & 0xFFFFFFFF, tag, c2, c3)


PARALLEL_MIN_SIZE = 16384  # below this many normals the thread launch costs more than it saves


def fill_normals(out, seed_lo, seed_hi, sample_index, block_tag, c2, c3):
    """Fill ``out`` (n, dim) float64: out[i, j] = normal of counter (block_tag | j // 2, sample_index[i], c2, c3).

    Each entry is a pure function of its own counter, so the result does not depend on n, on the other samples
    in the batch, on the thread count or on the serial/parallel choice (``numba.prange`` over samples from
    ``PARALLEL_MIN_SIZE`` normals on).  The kernels live in this file so Numba's on-disk cache is invalidated
    whenever the scalar generator changes.  No validation here: use :func:`diffsolve.noise.standard_normal`.
    """
    if out.size >= PARALLEL_MIN_SIZE:
        _fill_normals_parallel(out, seed_lo, seed_hi, sample_index, block_tag, c2, c3)
    else:
        _fill_normals_serial(out, seed_lo, seed_hi, sample_index, block_tag, c2, c3)


@numba.njit(cache=True)
def fill_uniforms(out, seed_lo, seed_hi, sample_index, c2, c3):
    """Fill ``out`` (n,) float64: out[i] = the uniform53 of words (r0, r1) of counter (0, sample_index[i], c2, c3)
    (one per sample: a Metropolis test).  Callers pick a draw ``c3`` that no normal of step ``c2`` uses."""
    for i in range(out.shape[0]):
        r0, r1, _, _ = philox4x32_10_jit(0, sample_index[i] & 0xFFFFFFFF, c2, c3, seed_lo, seed_hi)
        out[i] = uniform53_jit(r0, r1)
