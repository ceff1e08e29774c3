"""Compiled engines against the NumPy engine (the oracle): cpu (fused mixture path and the Stepper's passes for a
model), thread-count and batch-split invariance, float32, cuda on Numba's simulator, the unavailable-backend error.

Registry-driven: every registered solver is checked; a synthetic tableau with several stages, history values and
noise draws covers solver structures before such solvers are registered.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import diffsolve as ds
from helpers import table_solvers, thread_split_runs
from diffsolve.backends.numpy_backend import NumpyEngine
from diffsolve.errors import DiffsolveError, ModelOutputError
from diffsolve.models import ModelAdapter
from diffsolve.program import Program, Segment
from diffsolve.sampling import run_program
from diffsolve.stepper import Run
from diffsolve.tableau import StepTable
from diffsolve.targets import GaussianMixture, from_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VP = ds.get_schedule("vp-linear")
GRID = ds.time_grid(VP, 8, "time")
TGT = from_spec("gmm:d=5,k=6,seed=3")  # isotropic components
DIAG = GaussianMixture([0.3, 0.5, 0.2], np.random.default_rng(7).standard_normal((3, 4)) * 1.5,
                       np.random.default_rng(8).uniform(0.05, 0.5, (3, 4)))
DIAG9 = GaussianMixture(np.full(9, 1 / 9), np.random.default_rng(1).standard_normal((9, 6)) * 2.0,
                        np.random.default_rng(2).uniform(0.05, 0.5, (9, 6)))  # blocks of four and a tail
SOLVERS = table_solvers()  # Langevin samplers: tests/test_langevin.py
RTOL = 1e-12


def _close(a, b, rtol=RTOL):
    """Relative agreement, scaled by the size of the samples (entries near zero are not relative)."""
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * float(np.max(np.abs(b))))


def _eps_model(tgt):
    return lambda x, t: tgt.predict(x, t, VP, "eps")


def _x0(tgt, n=40, seed=2):
    return ds.sampling.prior_sample(VP, GRID[0], n, tgt.dim, seed=seed)


def run_on(backend, program, model, x, *, seed, sample_offset=0, history=(), events=None):
    """Any program (a hand-built table, say) on ``backend``; ``model`` a ModelAdapter (its solver_prediction is
    the type the rows combine)."""
    r = Run.for_program(program, VP, prediction=model.solver_prediction, seed=seed, sample_offset=sample_offset,
                        history=len(history))
    engine = NumpyEngine(events=events) if backend == "numpy" else backend
    return run_program(r, model, x, history, backend=engine)


def synthetic_table(steps=4, stages=3, history=2, noises=2, keep=1, seed=0):
    """A random explicit tableau with every feature: S stages, M history values, Q draws (sparse)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.9, 0.2, steps + 1)
    table = StepTable.empty(steps, stages, history, noises)
    table.A[:] = rng.uniform(0.5, 1.0, table.A.shape)
    for i in range(stages + 1):
        table.B[:, i, :i] = rng.uniform(-0.3, 0.3, (steps, min(i, stages)))
    table.E[:] = rng.uniform(-0.2, 0.2, table.E.shape) * (rng.random(table.E.shape) < 0.7)
    table.C[:] = rng.uniform(0.0, 0.2, table.C.shape) * (rng.random(table.C.shape) < 0.6)
    table.tau[:] = t[:-1, None] + (t[1:] - t[:-1])[:, None] * np.linspace(0, 0.8, stages)[None]
    return StepTable(table.A, table.B, table.E, table.C, table.tau, keep=keep)


# -- cpu against numpy ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("tgt", [TGT, DIAG], ids=["iso", "diag"])
def test_cpu_fused_matches_numpy(solver, tgt):
    x0 = _x0(tgt)
    ref = ds.sample(solver, tgt, VP, GRID, x_init=x0, seed=3, backend="numpy")
    out = ds.sample(solver, tgt, VP, GRID, x_init=x0, seed=3, backend="cpu")
    _close(out, ref)


@pytest.mark.parametrize("solver", SOLVERS)
def test_cpu_generic_matches_numpy(solver):
    x0 = _x0(TGT)
    kw = dict(x_init=x0, seed=3, prediction="eps")
    ref = ds.sample(solver, _eps_model(TGT), VP, GRID, backend="numpy", **kw)
    out = ds.sample(solver, _eps_model(TGT), VP, GRID, backend="cpu", **kw)
    np.testing.assert_array_equal(out, ref)  # same arithmetic in the same order: bitwise


@pytest.mark.parametrize("path", ["fused", "generic"])
def test_clipped_momentum_matches_numpy(path):
    """accel-sde with a clip constant that caps the momentum (docs/algorithms/accelerated.md B.2.1): cpu == numpy on both paths, and the
    cap really acts (clip events counted by the NumPy interpreter)."""
    solver = ds.get_solver("accel-sde", c=0.05)
    x0 = _x0(TGT)
    model = ModelAdapter(TGT, VP, "eps") if path == "fused" else ModelAdapter(_eps_model(TGT), VP, "eps", "eps")
    program = solver.program(VP, GRID)
    events = []
    ref = run_on("numpy", program, model, x0, seed=3, events=events)
    assert np.mean(events[1:]) > 0.5  # (the start-up step has no momentum)
    out = run_on("cpu", program, model, x0, seed=3)
    if path == "generic":
        np.testing.assert_array_equal(out, ref)  # the norm is summed in the same order: bitwise
    _close(out, ref)
    unclipped = run_on("numpy", Segment(program.segments[0].linear_table()), model, x0, seed=3)
    assert np.max(np.abs(unclipped - ref)) > 1e-3 * np.max(np.abs(ref))


@pytest.mark.parametrize("keep", [1, 2], ids=["keep-middle", "keep-last"])
@pytest.mark.parametrize("prediction", ["data", "eps"])
def test_synthetic_tableau_both_paths_match_numpy(prediction, keep):
    """S = 3 stages, M = 2 history values (given), Q = 2 sparse draws, keep = 1 or the last stage (whose output
    the CPU Stepper path stores in place of the oldest history value): the general tableau form
    (docs/tableau.md)."""
    table = synthetic_table(keep=keep)
    x0 = _x0(TGT, n=24)
    hist = [0.1 * _x0(TGT, n=24, seed=s) for s in (5, 6)]
    kw = dict(seed=11, sample_offset=100, history=hist)
    fused = ModelAdapter(TGT, VP, prediction)
    _close(run_on("cpu", table, fused, x0, **kw), run_on("numpy", table, fused, x0, **kw))
    generic = ModelAdapter(_eps_model(TGT), VP, prediction, "eps")
    np.testing.assert_array_equal(run_on("cpu", table, generic, x0, **kw), run_on("numpy", table, generic, x0, **kw))


@pytest.mark.parametrize("last_in_place", [False, True])
@pytest.mark.parametrize("steps,stages,history,keep", [(5, 3, 2, 1), (5, 3, 2, 2), (5, 1, 1, 0), (4, 2, 0, 1),
                                                       (4, 2, 3, 0), (4, 3, 1, 2), (3, 1, 0, 0)])
def test_slot_plan_keeps_every_value_until_it_is_read(steps, stages, history, keep, last_in_place):
    """Replay a slot plan with labels: every stage output F_s is stored after the rows that read the values it
    overwrites (the stage-s+1 row reads F_0..F_s and every H_m; in place, the output row reads all before F_{S-1}
    is stored), and each step starts with H_0 = the previous step's F_keep, H_m = its H_{m-1}."""
    from diffsolve.kernels.plan import slot_plan

    fslot, hslot, final, slots = slot_plan(steps, stages, history, keep, last_in_place)
    assert slots == stages + history - (1 if last_in_place else 0)
    V = {int(hslot[0, m]): ("h", m) for m in range(history)}
    want_h = [("h", m) for m in range(history)]

    def intact(n, stored):  # the values the next row reads: F_0..F_{stored-1} and every H_m
        labels = [V.get(int(fslot[n, q])) for q in range(stored)] + [V.get(int(k)) for k in hslot[n]]
        return labels == [("f", n, q) for q in range(stored)] + want_h

    for n in range(steps):
        assert intact(n, 0)
        for s in range(stages):
            in_place = last_in_place and s == stages - 1
            if in_place:
                assert intact(n, s)  # the output row reads everything, then stores F_{S-1}
            if fslot[n, s] >= 0 or not in_place:
                assert 0 <= fslot[n, s] < slots
                V[int(fslot[n, s])] = ("f", n, s)
            if not in_place:
                assert intact(n, s + 1)
        want_h = ([("f", n, keep)] + want_h[:-1]) if history else []
    assert [V.get(int(k)) for k in final] == want_h


def test_two_segment_program_runs_like_its_segments_in_turn():
    """A program's segments run in order on one state, the noise counter running on and the history restarting:
    the same bits as the segments run one after another, the second with its noise steps offset by the first's."""
    first, second = synthetic_table(steps=2, seed=1), synthetic_table(steps=3, seed=2)
    x0 = _x0(TGT, n=12)
    model = ModelAdapter(_eps_model(TGT), VP, "data", "eps")
    for backend in ("numpy", "cpu"):
        both = run_on(backend, Program((Segment(first), Segment(second))), model, x0, seed=4)
        mid = run_on(backend, first, model, x0, seed=4)
        offset = Run.for_program(second, VP, prediction="data", seed=4, history=first.steps)  # noise steps 3..5
        tail = run_program(offset, model, mid, backend=backend)
        np.testing.assert_array_equal(both, tail)
        unshifted = run_on(backend, second, model, mid, seed=4)
        assert not np.allclose(both, unshifted)  # the offset matters: the segments draw fresh noise


def test_concatenated_tables_run_like_their_segments():
    """StepTable.concat of tables without history (noise columns padded) is the two-segment program, bit for bit;
    a clipped program is not affine, a plain one is."""
    first = synthetic_table(steps=2, history=0, noises=1, seed=3)
    second = synthetic_table(steps=3, history=0, noises=2, seed=4)
    joined = StepTable.concat([first, second])
    assert (joined.steps, joined.noises, joined.history) == (5, 2, 0)
    x0 = _x0(TGT, n=10)
    model = ModelAdapter(_eps_model(TGT), VP, "data", "eps")
    for backend in ("numpy", "cpu"):
        np.testing.assert_array_equal(run_on(backend, joined, model, x0, seed=6),
                                      run_on(backend, Program((Segment(first), Segment(second))), model, x0, seed=6))
    with pytest.raises(ValueError, match="one stage structure"):
        StepTable.concat([first, synthetic_table(stages=2, history=0)])
    assert ds.get_solver("ddim").program(VP, GRID).affine
    assert not ds.get_solver("accel-sde").program(VP, GRID).affine


def test_scalar_source_runs_as_plain_python_with_the_same_numbers():
    """One scalar source: the identity-decorated build equals the compiled CPU build (and pair == span)."""
    from diffsolve.kernels import cpu as kc
    from diffsolve.kernels import plan
    from diffsolve.kernels.scalar import make_kernels

    py = make_kernels(lambda f: f)
    table = synthetic_table(steps=1)
    rows = plan.segment_rows(Segment(table), np.float64)
    g = plan.gmm_stage_tables(DIAG, VP, table.tau, "eps", np.float64)
    u = _x0(DIAG, n=2)
    V = np.random.default_rng(3).standard_normal((5, 2, 4))
    a, b = V.copy(), V.copy()
    py.gmm_predict(a, 1, u, 1, g.tab, g.aux, 0, 2, np.empty(3), g.iso)
    _compiled_predict(kc.gmm_predict, b, u, g.tab, g.aux)
    np.testing.assert_allclose(a, b, rtol=1e-14)
    o1, o2 = np.zeros_like(u), np.zeros_like(u)
    args = (rows.A, rows.B, rows.E, rows.C, 0, 3, rows.fslot, rows.hslot, 5, 1, 77, 4)
    py.combine_row(o1, u, V, 1, *args, False)
    for pair in range(2):
        py.combine_pair(o2, u, V, 1, pair, *args)
    np.testing.assert_array_equal(o1, o2)


@pytest.mark.parametrize("tgt", [TGT, DIAG9], ids=["iso", "diag"])
def test_grouped_model_is_the_one_sample_model_per_sample(tgt):
    """The grouped forms of the mixture model (the CPU fused kernel's register blocking: four isotropic samples,
    two diagonal ones per sweep) do per sample the operations of the one-sample form: equal bits in plain
    Python, whatever the group's other members; rounding-level agreement compiled."""
    from diffsolve.kernels import cpu as kc
    from diffsolve.kernels import plan
    from diffsolve.kernels.scalar import make_kernels

    py = make_kernels(lambda f: f)
    g = plan.gmm_stage_tables(tgt, VP, np.array([[0.3], [0.02]]), "data", np.float64)
    K = g.aux.shape[2] - 2
    u = _x0(tgt, n=5, seed=4) * 0.4
    order = [4, 0, 2, 1] if g.iso else [4, 0]  # a group of rows in no particular order
    form, size = ("iso", 4) if g.iso else ("diag", 2)
    for m in range(2):
        one, grouped = np.zeros((2, 5, tgt.dim)), np.zeros((2, 5, tgt.dim))
        for i in order:
            getattr(py, f"gmm_predict_{form}")(one, 1, u, i, g.tab, g.aux, m, 0, np.empty(K))
        _run_group(py, form, grouped, u[order], g, m, K)
        np.testing.assert_array_equal(grouped[1, :size], one[1, order])
        compiled = np.zeros_like(grouped)
        run = _compiled_iso4 if g.iso else _compiled_diag2
        run(getattr(kc._kf, f"gmm_predict_{form}{size}"), compiled, u[order], g.tab, g.aux, m, K)
        np.testing.assert_allclose(compiled[1, :size], one[1, order], rtol=1e-13, atol=1e-14)


def _run_group(kernels, form, V, u, g, m, K):
    scratch = [np.empty(K) for _ in range(4)]
    if form == "iso":
        kernels.gmm_predict_iso4(V, 1, u, 0, g.tab, g.aux, m, 0, *scratch)
    else:
        kernels.gmm_predict_diag2(V, 1, u, 0, 1, g.tab, g.aux, m, 0, *scratch[:2])


@numba.njit
def _compiled_iso4(fn, V, u, tab, aux, m, K):
    fn(V, 1, u, 0, tab, aux, m, 0, np.empty(K), np.empty(K), np.empty(K), np.empty(K))


@numba.njit
def _compiled_diag2(fn, V, u, tab, aux, m, K):
    fn(V, 1, u, 0, 1, tab, aux, m, 0, np.empty(K), np.empty(K))


@numba.njit
def _compiled_predict(fn, V, u, tab, aux):
    fn(V, 1, u, 1, tab, aux, 0, 2, np.empty(3), False)


def test_subclassed_target_takes_the_generic_path():
    class Shifted(GaussianMixture):
        def denoise(self, x, t, schedule):
            return super().denoise(x, t, schedule) + 0.25

    tgt = Shifted(TGT.weights, TGT.means, TGT.variances)
    x0 = _x0(TGT, n=8)
    ref = ds.sample("ddim", tgt, VP, GRID, x_init=x0, backend="numpy")
    _close(ds.sample("ddim", tgt, VP, GRID, x_init=x0, backend="cpu"), ref)


# -- layout invariance ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["fused", "fused-diag", "generic", "synthetic", "generic-parallel"])
def test_cpu_bitwise_invariant_to_threads_and_batch_split(path):
    """The fused kernel runs the model on groups of samples (four isotropic, two diagonal): a split at 23 regroups
    every later sample and completes the group of samples 20-22 with a spare row, which must not change a bit."""
    x0 = _x0(TGT, n=64, seed=9)
    table = synthetic_table(seed=4)
    big = np.random.default_rng(5).standard_normal((64, 1, 32, 32))  # above PARALLEL_MIN_SIZE

    def run(lo, hi):
        if path == "generic-parallel":
            return ds.sample("ddpm", lambda x, t: -0.3 * x, VP, GRID[:3], x_init=big[lo:hi], seed=1, sample_offset=lo,
                             backend="cpu", prediction="eps")
        if path == "synthetic":
            return run_on("cpu", table, ModelAdapter(TGT, VP, "data"), x0[lo:hi], seed=1, sample_offset=lo)
        if path == "fused-diag":
            return ds.sample("dpmpp-2m", DIAG9, VP, GRID, x_init=_x0(DIAG9, n=64, seed=9)[lo:hi], sample_offset=lo,
                             backend="cpu")
        model = TGT if path == "fused" else _eps_model(TGT)
        return ds.sample("ddpm", model, VP, GRID, x_init=x0[lo:hi], seed=1, sample_offset=lo, backend="cpu",
                         prediction=None if path == "fused" else "eps")

    one, two, split = thread_split_runs(run)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, split)


def test_cpu_float32_and_image_shaped_states():
    """float32 states compute in float32 (generic path here; the fused float32 kernel is checked on the CUDA
    simulator, the CPU one would only add a long compile); (n, c, h, w) states key noise by flattened coordinate."""
    x0 = _x0(TGT, n=16)
    table = ds.get_solver("ddpm").table(VP, GRID)
    model = ModelAdapter(_eps_model(TGT), VP, "data", "eps")
    ref = run_on("numpy", table, model, x0, seed=0)
    out32 = run_on("cpu", table, model, x0.astype(np.float32), seed=0)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    model = ModelAdapter(lambda x, t: -0.3 * x, VP, "data", "eps")
    for shape in ((3, 2, 3, 4), (2, 2, 64, 64)):  # the second is processed as two pieces per sample
        img = np.random.default_rng(1).standard_normal(shape)
        kw = dict(seed=4, sample_offset=1)
        np.testing.assert_array_equal(run_on("cpu", table, model, img, **kw), run_on("numpy", table, model, img, **kw))


def test_cpu_generic_path_validates_model_outputs():
    x0 = _x0(TGT, n=4)
    with pytest.raises(ModelOutputError, match="NaN/inf"):
        ds.sample("ddim", lambda x, t: x * np.nan, VP, GRID, x_init=x0, prediction="eps", backend="cpu")
    with pytest.raises(ModelOutputError, match="shape"):
        ds.sample("ddim", lambda x, t: x[:, :2], VP, GRID, x_init=x0, prediction="eps", backend="cpu")


def test_cpu_rejects_bad_inputs_with_clear_errors():
    model = ModelAdapter(_eps_model(TGT), VP, "data", "eps")
    with pytest.raises(DiffsolveError, match="float32 or float64"):
        ds.Stepper("ddim", VP, GRID, x_init=np.zeros((2, 5), dtype=np.int64), backend="cpu")
    with pytest.raises(DiffsolveError, match="float32 or float64"):
        run_on("cpu", ds.get_solver("ddim").table(VP, GRID), model, np.zeros((2, 5), dtype=np.int64), seed=0)
    for offset in (-1, 1.5, True):
        with pytest.raises(DiffsolveError, match=f"sample_offset must be a non-negative integer.*got {offset!r}"):
            ds.sample("ddim", TGT, VP, GRID, n=2, sample_offset=offset, backend="cpu")
        with pytest.raises(DiffsolveError, match="sample_offset"):
            ds.Stepper("ddim", VP, GRID, x_init=np.zeros((2, 5)), sample_offset=offset)


# -- cuda -------------------------------------------------------------------------------------------------------
def _python(script, env_extra):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None, reason="numba-cuda is not installed")
def test_cuda_simulator_matches_numpy():
    """Small cases on Numba's CUDA simulator (a subprocess: the variable must be set before numba.cuda loads)."""
    script = """
    import numpy as np, diffsolve as ds
    from numba import cuda
    from diffsolve.models import ModelAdapter
    from diffsolve.targets import from_spec
    import sys; sys.path.insert(0, "tests")
    from helpers import table_solvers
    from tests.test_backends import synthetic_table, run_on, DIAG
    VP = ds.get_schedule("vp-linear"); grid = ds.time_grid(VP, 3, "time")
    def close(a, b, what):
        err = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
        assert err < 1e-12, (what, err)
    tgt = from_spec("gmm:d=3,k=5,seed=1")
    x0 = ds.sampling.prior_sample(VP, grid[0], 6, 3, seed=2)
    dev_eps = lambda x, t: cuda.to_device(tgt.predict(x.copy_to_host(), t, VP, "eps"))
    host_eps = lambda x, t: tgt.predict(x.copy_to_host(), t, VP, "eps")   # NumPy outputs are accepted too
    for solver in table_solvers() + [ds.get_solver("accel-sde", c=0.05)]:  # the last one clips
        ref = ds.sample(solver, tgt, VP, grid, x_init=x0, seed=3)
        close(ds.sample(solver, tgt, VP, grid, x_init=x0, seed=3, backend="cuda"), ref, str(solver) + " fused")
        for model in (dev_eps, host_eps):
            close(ds.sample(solver, model, VP, grid, x_init=x0, seed=3, backend="cuda", prediction="eps"), ref,
                  str(solver) + " generic")
    to_zero = ds.time_grid(VP, 4, "time", to_zero=True)  # final rows (data, eps), Euler in u, denoising
    for name in ("dpmpp-3m", "dpm-solver-2m", "dpmpp-2s", "ddpm"):
        ref = ds.sample(name, tgt, VP, to_zero, x_init=x0, seed=3)
        close(ds.sample(name, tgt, VP, to_zero, x_init=x0, seed=3, backend="cuda"), ref, name + " to zero, fused")
        close(ds.sample(name, dev_eps, VP, to_zero, x_init=x0, seed=3, backend="cuda", prediction="eps"), ref,
              name + " to zero, generic")
    table = synthetic_table(steps=2)
    x1 = ds.sampling.prior_sample(VP, 0.9, 4, 4, seed=5)
    hist = [0.1 * x1[::-1], -0.2 * x1]
    kw = dict(seed=7, sample_offset=10, history=hist)
    model = ModelAdapter(DIAG, VP, "eps")
    ref = run_on("numpy", table, model, x1, **kw)
    close(run_on("cuda", table, model, x1, **kw), ref, "synthetic fused")
    diag_eps = ModelAdapter(lambda x, t: DIAG.predict(x.copy_to_host(), t, VP, "eps"), VP, "eps", "eps")
    close(run_on("cuda", table, diag_eps, x1, **kw), ref, "synthetic stepper")
    out32 = run_on("cuda", table, model, x1.astype(np.float32), **kw)
    assert out32.dtype == np.float32 and np.max(np.abs(out32 - ref)) < 1e-4 * np.max(np.abs(ref))
    from diffsolve.kernels import cuda as kc
    kc.SHARED_BYTES = 0  # the fallback reading the stage tables from global memory
    kc.fused_kernel.cache_clear()
    close(run_on("cuda", table, model, x1, **kw), ref, "synthetic fused, no shared")
    print("ok")
    """
    proc = _python(script, {"NUMBA_ENABLE_CUDASIM": "1"})
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_cuda_unavailable_error_names_the_fix():
    no_gpu = """
    import diffsolve as ds
    from diffsolve.errors import DiffsolveError
    try:
        from numba import cuda
        gpu = cuda.is_available()
    except ImportError:
        gpu = False
    if not gpu:  # no GPU (or no numba-cuda) here: the real error
        try:
            ds.backends.engine("cuda")
        except DiffsolveError as exc:
            msg = str(exc)
            assert "NUMBA_ENABLE_CUDASIM=1" in msg and ("diffsolve[cuda]" in msg or "backend='cpu'" in msg), msg
        else:
            raise AssertionError("engine('cuda') did not raise")
    print("ok")
    """
    no_numba_cuda = """
    import sys
    sys.modules["numba.cuda"] = None  # as if numba-cuda were not installed
    import diffsolve as ds
    from diffsolve.errors import DiffsolveError
    try:
        ds.backends.engine("cuda")
    except DiffsolveError as exc:
        assert 'pip install "diffsolve[cuda]"' in str(exc) and "NUMBA_ENABLE_CUDASIM=1" in str(exc), str(exc)
    else:
        raise AssertionError("engine('cuda') did not raise without numba.cuda")
    print("ok")
    """
    for script in (no_gpu, no_numba_cuda):
        proc = _python(script, {})
        assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]
