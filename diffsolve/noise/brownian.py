"""Virtual Brownian tree on the Philox4x32-10 generator: one Brownian path per (seed, sample index), queried at any
time, the same path whatever the step count, query order or batch split.

References: Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011 (the generator);
the virtual Brownian tree idea of Gaines & Lyons (1997) and Li, Wong, Chen, Duvenaud (AISTATS 2020, torchsde),
here made stateless: every node value is a pure function of its position, so no cache or query history matters.

Construction on [t0, t1] with T = t1 - t0:

* W(t0) = 0 and W(t1) = sqrt(T) * Z[node 0].
* Dyadic interval (d, i) = [s, u] with s = t0 + T * i / 2**d, u = t0 + T * (i + 1) / 2**d.  Its midpoint m gets
  the Brownian-bridge value W(m) = (W(s) + W(u)) / 2 + sqrt(T / 2**d) / 2 * Z[node 2**d + i]
  (node = heap number of the interval, so every dyadic point has its own normal).
* Subdivision stops at depth D, the smallest d with T / 2**d <= tol (the leaf width).  A query t that is not a
  dyadic point of depth <= D lies in one leaf [s, u] and gets the bridge value
  W(t) = W(s) + (t - s) / (u - s) * (W(u) - W(s)) + sqrt((t - s)(u - t) / (u - s)) * Z[leaf, bits of t],
  a draw keyed by the query time's float64 bit pattern, so it is deterministic too.

Law: the dyadic skeleton is an exact Brownian path.  Any set of query times with at most one non-dyadic time per
leaf has exactly the Brownian joint law (given the skeleton, the path on distinct leaves is independent bridges).
Two non-dyadic times closer than tol, inside one leaf, get conditionally independent bridge draws: keep tol below
the finest step (grid points closer than the leaf width are the only approximation; a UserWarning names them).
Refining tol keeps every coarser dyadic value unchanged.

Keys: Philox key = seed words; counter = (block | 0x80000000, sample_index, node & 0xFFFFFFFF, node >> 32) for
skeleton nodes and (block | 0xC0000000, sample_index, bits(t) & 0xFFFFFFFF, bits(t) >> 32) for leaf draws, where
block = coordinate // 2.  Solver draws (:func:`diffsolve.noise.standard_normal`) use block < 2**31, so the tree
never reuses a solver normal of the same seed.  Every value is elementwise per sample, hence identical for any
batch split.
"""

import math
import numbers
import warnings

import numpy as np

from ..errors import DiffsolveError, DiffsolveTypeError
from .normals import check_sample_index, check_uint, split_seed
from .philox import BLOCK_TAG_TREE_LEAF, BLOCK_TAG_TREE_NODE, MAX_BLOCK, fill_normals

__all__ = ["BrownianTree", "MAX_DEPTH"]

MAX_DEPTH = 50  # dyadic fractions i / 2**d stay exact in float64 and heap numbers stay below 2**51


def _check_time(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise DiffsolveTypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}; pass a float")
    value = float(value)
    if not math.isfinite(value):
        raise DiffsolveError(f"{name} must be finite, got {value}; pass a finite float")
    return value


class BrownianTree:
    """Virtual Brownian tree: W(t) - W(t0) on [t0, t1] for n independent paths of dimension dim.

    ``BrownianTree(seed, t0, t1, shape, tol=None, sample_index=None)``

    * seed: int in [0, 2**64) (the Philox key, as for :func:`diffsolve.noise.standard_normal`).
    * shape: ``(n, dim)`` for a batch (values of shape (n, dim)), or an int ``dim`` for one path (values (dim,)).
    * tol: leaf width bound; the tree is subdivided until T / 2**depth <= tol.  Default ``(t1 - t0) * 2**-20``.
    * sample_index: global sample numbers in [0, 2**32), one per row (default ``arange(n)``, or 0 for one path).
      A row's path depends only on (seed, its sample index, t0, t1, tol), so splitting a batch into several trees
      with the matching sample indices gives the same paths.

    ``tree(t)`` is W(t) - W(t0); ``tree.increment(a, b)`` is W(b) - W(a); ``tree.increments(grid)`` stacks
    W(grid[k+1]) - W(grid[k]).  All are bitwise identical whatever the order or grouping of the queries.
    """

    def __init__(self, seed, t0, t1, shape, tol=None, sample_index=None):
        self.seed = check_uint(seed, "seed", 2**64, "pass a non-negative integer below 2**64 (e.g. seed % 2**64)")
        self._seed_lo, self._seed_hi = split_seed(self.seed)
        self.t0 = _check_time(t0, "t0")
        self.t1 = _check_time(t1, "t1")
        if not self.t0 < self.t1:
            raise DiffsolveError(
                f"BrownianTree needs t0 < t1, got t0={self.t0}, t1={self.t1}; pass the interval in increasing order "
                f"(a reverse-time solver can still query increment(a, b) with a > b)"
            )
        self._T = self.t1 - self.t0

        if isinstance(shape, numbers.Integral) and not isinstance(shape, (bool, np.bool_)):
            self._single = True
            n, dim = 1, int(shape)
        elif isinstance(shape, (tuple, list)) and len(shape) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in shape
        ):
            self._single = False
            n, dim = int(shape[0]), int(shape[1])
        else:
            raise DiffsolveTypeError(
                f"shape must be an int dim or a tuple (n, dim) of ints, got {shape!r}; e.g. shape=(1024, 64)"
            )
        if n < 1 or dim < 1 or dim > 2 * (MAX_BLOCK + 1):
            raise DiffsolveError(
                f"shape must have n >= 1 and 1 <= dim <= 2**31, got shape {shape!r}; pass positive sizes"
            )
        self.dim = dim

        if sample_index is None:
            idx = np.zeros(1, dtype=np.int64) if self._single else np.arange(n, dtype=np.int64)
        elif self._single:
            idx = np.array(
                [check_uint(sample_index, "sample_index", 2**32, "pass one int in [0, 2**32) for a single path")],
                dtype=np.int64,
            )
        else:
            idx = check_sample_index(sample_index)
            if idx.shape[0] != n:
                raise DiffsolveError(
                    f"sample_index has {idx.shape[0]} entries but shape={shape!r} asks for n={n} paths; "
                    f"pass one global index per row"
                )
        self.sample_index = idx
        self.shape = (dim,) if self._single else (n, dim)

        if tol is None:
            tol = self._T * 2.0**-20
        tol = _check_time(tol, "tol")
        if tol <= 0:
            raise DiffsolveError(f"tol must be > 0, got {tol}; pass a leaf width below your finest step")
        depth = 0
        while self._T * 2.0**-depth > tol:
            depth += 1
            if depth > MAX_DEPTH:
                raise DiffsolveError(
                    f"tol={tol} needs more than {MAX_DEPTH} dyadic levels on [{self.t0}, {self.t1}]; "
                    f"pass tol >= {self._T * 2.0**-MAX_DEPTH:.3g}"
                )
        leaf = self._T * 2.0**-depth
        ulp = float(np.spacing(max(abs(self.t0), abs(self.t1))))
        if leaf < 8 * ulp:
            raise DiffsolveError(
                f"tol={tol} gives leaves of width {leaf:.3g}, below the float64 resolution of t near "
                f"{max(abs(self.t0), abs(self.t1))}; pass tol >= {16 * ulp:.3g}"
            )
        self.tol = tol
        self.depth = depth

    # ----------------------------------------------------------------------------------------------- internals

    def _normals(self, tag, c2, c3):
        out = np.empty((self.sample_index.shape[0], self.dim), dtype=np.float64)
        fill_normals(out, self._seed_lo, self._seed_hi, self.sample_index, tag, c2, c3)
        return out

    def _node_normal(self, node):
        return self._normals(BLOCK_TAG_TREE_NODE, node & 0xFFFFFFFF, node >> 32)

    def _leaf_normal(self, t):
        bits = int(np.float64(t).view(np.uint64))
        return self._normals(BLOCK_TAG_TREE_LEAF, bits & 0xFFFFFFFF, bits >> 32)

    def _point(self, d, i):
        """Time of the dyadic point i / 2**d (exact fraction for d <= MAX_DEPTH)."""
        return self.t0 + self._T * (i * 2.0**-d)

    def _values(self, times):
        """W at each distinct time of ``times`` (validated floats), as a dict; depth-first over the sorted times."""
        zero = np.zeros((self.sample_index.shape[0], self.dim), dtype=np.float64)
        w1 = math.sqrt(self._T) * self._node_normal(0)
        # frame: [d, i, s, u, W(s), W(u), W(mid) or None]
        stack = [[0, 0, self.t0, self.t1, zero, w1, None]]
        values = {}
        leaf_of = {}  # leaf index -> first non-dyadic query time in it
        for t in sorted(set(times)):
            while not (stack[-1][2] <= t <= stack[-1][3]):
                stack.pop()
            while True:
                d, i, s, u, ws, wu, wm = stack[-1]
                if t == s:
                    values[t] = ws
                    break
                if t == u:
                    values[t] = wu
                    break
                if d == self.depth:  # inside a leaf: bridge draw keyed by the query time
                    if i in leaf_of:
                        warnings.warn(
                            f"BrownianTree: times {leaf_of[i]} and {t} lie in one leaf of width {u - s:.3g} "
                            f"(tol={self.tol}); their joint law is approximate (conditionally independent bridges). "
                            f"Pass tol below the smallest spacing of your query times.",
                            stacklevel=3,
                        )
                    leaf_of.setdefault(i, t)
                    h = u - s
                    mean = ws + ((t - s) / h) * (wu - ws)
                    values[t] = mean + math.sqrt((t - s) * (u - t) / h) * self._leaf_normal(t)
                    break
                m = self._point(d + 1, 2 * i + 1)
                if wm is None:
                    std = 0.5 * math.sqrt(self._T * 2.0**-d)
                    wm = 0.5 * (ws + wu) + std * self._node_normal((1 << d) + i)
                    stack[-1][6] = wm
                if t < m:
                    stack.append([d + 1, 2 * i, s, m, ws, wm, None])
                else:
                    stack.append([d + 1, 2 * i + 1, m, u, wm, wu, None])
        return values

    def _check_query(self, t, name):
        t = _check_time(t, name) + 0.0  # -0.0 -> 0.0: one key per time
        if not self.t0 <= t <= self.t1:
            raise DiffsolveError(
                f"{name}={t} is outside the tree's interval [{self.t0}, {self.t1}]; "
                f"build the BrownianTree on an interval that covers every query time"
            )
        return t

    def _shape_out(self, w):
        return w[0] if self._single else w

    # ----------------------------------------------------------------------------------------------- public API

    def __call__(self, t):
        """W(t) - W(t0), shape ``self.shape``."""
        t = self._check_query(t, "t")
        return self._shape_out(self._values([t])[t].copy())

    def increment(self, a, b):
        """W(b) - W(a), shape ``self.shape`` (a > b is allowed and gives the negative)."""
        a = self._check_query(a, "a")
        b = self._check_query(b, "b")
        v = self._values([a, b])
        return self._shape_out(v[b] - v[a])

    def increments(self, grid_times):
        """W(grid[k+1]) - W(grid[k]) for k = 0..len-2: shape (len - 1,) + ``self.shape``."""
        g = np.asarray(grid_times)
        if g.dtype == np.bool_ or not (np.issubdtype(g.dtype, np.floating) or np.issubdtype(g.dtype, np.integer)):
            raise DiffsolveTypeError(
                f"grid_times must be a 1-D array of real times, got dtype {g.dtype}; pass np.linspace(...)"
            )
        if g.ndim != 1 or g.shape[0] < 2:
            raise DiffsolveError(
                f"grid_times must be 1-D with at least 2 times, got shape {g.shape}; "
                f"pass e.g. np.linspace(t0, t1, N + 1)"
            )
        g = g.astype(np.float64) + 0.0  # -0.0 -> 0.0: one key per time
        bad = ~np.isfinite(g) | (g < self.t0) | (g > self.t1)
        if bad.any():
            raise DiffsolveError(
                f"grid_times has {int(bad.sum())} value(s) outside [{self.t0}, {self.t1}] (first: {g[bad][0]}); "
                f"build the BrownianTree on an interval that covers the grid"
            )
        times = [float(x) for x in g]
        v = self._values(times)
        out = np.stack([v[times[k + 1]] - v[times[k]] for k in range(len(times) - 1)])
        return out[:, 0] if self._single else out
