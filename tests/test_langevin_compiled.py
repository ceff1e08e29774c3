"""The compiled Langevin loops against the NumPy reference (the oracle), registry-driven over every Langevin
sampler: the fused chain kernel on mixture targets (cpu; cuda on Numba's simulator), the Stepper's compiled
passes for a model called from Python, identical accept decisions, thread-count and batch-split invariance."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import diffsolve as ds
from diffsolve import backends, targets
from diffsolve.kernels import plan
from diffsolve.stepper import prepare_run
from helpers import langevin_solvers, solver, thread_split_runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OU = ds.get_schedule("ou")
VP = ds.get_schedule("vp-linear")
ISO = targets.from_spec("gmm:d=3,k=5,seed=1")
DIAG = targets.GaussianMixture([0.3, 0.5, 0.2], np.random.default_rng(7).standard_normal((3, 4)) * 1.5,
                               np.random.default_rng(8).uniform(0.05, 0.5, (3, 4)))
SMALL = {"iterations": 6, "inner": 3, "corrector_steps": 5}  # short chains: the comparisons are per operation


def _small(name, **extra):
    """Keyword parameters that shorten ``name``'s chains (whatever its parameters are)."""
    return {k: v for k, v in SMALL.items() if k in solver(name).param_names} | extra


def _grid(sch):
    return ds.time_grid(sch, 3, "time", t_max=1.5 if sch is OU else 0.8, t_min=0.05)


def _close(a, b, rtol=1e-12):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * float(np.max(np.abs(b))))


def _numpy_stepper(name, model, sch, grid, x0, seed, params):
    st = ds.Stepper(name, sch, grid, x_init=x0, prediction="score", backend="numpy", seed=seed, **params)
    st.run(model, log_density=getattr(model, "log_density", None))
    return st.host_x().copy(), st.stats


def _score_model(tgt, sch):
    model = lambda x, t: tgt.predict(x, t, sch, "score")  # noqa: E731
    model.log_density = lambda x, t: tgt.logpdf(x, t, sch)
    return model


NAMES = [(n, {}) for n in langevin_solvers()]
OPTIONS = [("rtk-mala", dict(energy="exact")), ("rtk-mala", dict(energy="trapezoid", radius=0.8)),
           ("rtk-mala", dict(init="anchor")), ("pc", dict(corrector="mala", energy="exact")),
           ("pc", dict(corrector="uld"))]
VARIANTS = NAMES + OPTIONS


def _ids(variants):
    return [f"{n}-{'-'.join(map(str, p.values()))}".rstrip("-") for n, p in variants]


@pytest.mark.parametrize("name,params", VARIANTS, ids=_ids(VARIANTS))
@pytest.mark.parametrize("tgt,sch", [(ISO, OU), (DIAG, VP)], ids=["iso-ou", "diag-vp"])
def test_fused_chains_match_numpy_with_identical_accepts(name, params, tgt, sch):
    params = _small(name, **params)
    grid = _grid(sch)
    x0 = np.random.default_rng(3).standard_normal((40, tgt.dim))
    ref, ref_stats = _numpy_stepper(name, _score_model(tgt, sch), sch, grid, x0, 5, params)
    run = prepare_run(name, sch, grid, seed=5, **params)
    engine = backends.engine("cpu")
    if not engine.fuses(tgt, run.program):  # segments the chain kernel does not run: the Stepper's passes
        _close(ds.sample(name, tgt, sch, grid, x_init=x0, seed=5, backend="cpu", **params), ref)
        return
    X, stats = x0.copy(), {}
    engine.fused(run.program, tgt, sch, run.prediction, X, [], engine.keys(5, run.sample_index(40)), run.history,
                 stats)
    _close(X, ref)
    assert stats.get("acceptance") == ref_stats.get("acceptance")  # every accept decision, counted per segment
    _close(ds.sample(name, tgt, sch, grid, x_init=x0, seed=5, backend="cpu", **params), ref)


@pytest.mark.parametrize("name,params", NAMES + OPTIONS[:2], ids=_ids(NAMES + OPTIONS[:2]))
def test_stepper_compiled_passes_are_bitwise_the_reference(name, params):
    """A model called from Python: the cpu engine's compiled proposal / accept / ULD passes give the NumPy
    engine's bits, and the same acceptance."""
    params = _small(name, **params)
    model = _score_model(DIAG, VP)
    x0 = np.random.default_rng(4).standard_normal((30, DIAG.dim))
    ref, ref_stats = _numpy_stepper(name, model, VP, _grid(VP), x0, 2, params)
    st = ds.Stepper(name, VP, _grid(VP), x_init=x0, prediction="score", backend="cpu", seed=2, **params)
    st.run(model, log_density=model.log_density)
    np.testing.assert_array_equal(st.host_x(), ref)
    assert st.stats == ref_stats


@pytest.mark.parametrize("name", ["rtk-mala", "rtk-uld", "pc"])
def test_fused_chains_bitwise_invariant_to_threads_and_batch_split(name):
    params = _small(name, **({"corrector": "mala"} if name == "pc" else {}))
    grid = _grid(OU)
    x0 = np.random.default_rng(9).standard_normal((64, ISO.dim))

    def run(lo, hi):
        return ds.sample(name, ISO, OU, grid, x_init=x0[lo:hi], seed=1, sample_offset=lo, backend="cpu", **params)

    one, two, split = thread_split_runs(run)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, split)


def test_what_the_fused_kernels_run():
    run = prepare_run("rtk-mala", OU, _grid(OU))
    engine = backends.engine("cpu")
    assert engine.fuses(ISO, run.program) and engine.fuses(DIAG, run.program)
    full = targets.FullGaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], [np.eye(2), np.eye(2)])
    assert not engine.fuses(full, run.program)  # full covariances: the Stepper with the target's score

    class Tempered(targets.GaussianMixture):
        def logpdf(self, x, t=None, schedule=None):
            return 0.5 * super().logpdf(x, t, schedule)

    assert not engine.fuses(Tempered(ISO.weights, ISO.means, ISO.variances), run.program)
    assert engine.fuses(ISO, prepare_run("pc-song", OU, _grid(OU)).program)
    assert not engine.fuses(ISO, prepare_run("pc-song", OU, _grid(OU), norms="batch").program)  # couples samples
    parts = plan.fused_parts(prepare_run("pc", OU, _grid(OU), corrector="mala").program)
    assert [type(p).__name__ for p, _ in parts] == ["tuple", "Segment"]  # the chain run, then the predictor
    assert parts[1][1] == 20  # the predictor's first program step (after the 20 corrector iterations)


def test_fused_chain_plan_shares_the_score_tables():
    """RTK's K segments need K + 1 times (t_k and t_init = t_{k-1} coincide), one table each."""
    grid = ds.time_grid(OU, 5, "time", t_max=2.0, t_min=0.05)
    run = prepare_run("rtk-mala", OU, grid, inner=2)
    (segments, firsts), = plan.fused_parts(run.program)
    chains = plan.chain_plan(segments, firsts, ISO, OU, np.float64)
    assert chains.tables.tab.shape[0] == len(grid)
    assert list(chains.segs[:, 3]) == list(firsts) and chains.cf.shape == (10, 8)


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None, reason="numba-cuda is not installed")
def test_cuda_simulator_chain_kernel_matches_numpy():
    """The chain kernel on Numba's CUDA simulator (a subprocess: the variable must be set before numba.cuda
    loads): the same numbers as the NumPy reference, float32 within float32 error."""
    script = """
    import numpy as np, diffsolve as ds
    from diffsolve import targets
    OU = ds.get_schedule("ou")
    tgt = targets.from_spec("gmm:d=3,k=4,seed=2")
    grid = ds.time_grid(OU, 3, "time", t_max=1.5, t_min=0.05)
    x0 = np.random.default_rng(1).standard_normal((5, 3))
    def close(a, b, what, rtol=1e-12):
        err = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
        assert err < rtol, (what, err)
    cases = [("rtk-mala", dict(inner=3)), ("rtk-mala", dict(inner=2, energy="exact", radius=0.7)),
             ("rtk-mala", dict(inner=2, energy="trapezoid")), ("rtk-uld", dict(inner=3)),
             ("pc", dict(corrector="mala", corrector_steps=3)), ("uld", dict(iterations=4)),
             ("pc-song", dict(n_corrector=2))]
    for name, params in cases:
        ref = ds.sample(name, tgt, OU, grid, x_init=x0, seed=3, backend="numpy", **params)
        close(ds.sample(name, tgt, OU, grid, x_init=x0, seed=3, backend="cuda", **params), ref, name)
    ref = ds.sample("rtk-uld", tgt, OU, grid, x_init=x0, seed=3, inner=3)
    out = ds.sample("rtk-uld", tgt, OU, grid, x_init=x0.astype(np.float32), seed=3, inner=3, backend="cuda",
                    dtype=None)
    assert out.dtype == np.float32
    close(out, ref, "float32", rtol=1e-4)
    from diffsolve.errors import DiffsolveError
    try:  # a model callable: the Stepper cannot drive a chain on the device
        ds.sample("rtk-uld", lambda x, t: -x, OU, grid, x_init=x0, prediction="score", backend="cuda", inner=2)
        raise AssertionError("no error")
    except DiffsolveError as exc:
        assert "backend='cpu'" in str(exc), str(exc)
    print("ok")
    """
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["NUMBA_ENABLE_CUDASIM"] = "1"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_sample_with_a_mixture_takes_the_chain_kernel(monkeypatch):
    """sample() with the library's mixture and backend='cpu' runs no Stepper (no model call from Python)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the Stepper was used")

    monkeypatch.setattr(ds.stepper.Stepper, "from_run", refuse)
    for name in ("rtk-mala", "rtk-uld", "mala"):
        assert np.isfinite(ds.sample(name, ISO, OU, _grid(OU), n=4, backend="cpu", **_small(name))).all()
    with pytest.raises(AssertionError, match="Stepper"):
        ds.sample("rtk-mala", ISO, OU, _grid(OU), n=4, backend="numpy", inner=2)


def test_batch_norms_follow_the_reference_code():
    """pc-song with norms='batch': one step size from the batch means of the norms (score_sde, diffusers), checked
    against a hand computation of the first corrector step; the sample then depends on its batch."""
    x0 = np.random.default_rng(2).standard_normal((6, ISO.dim))
    grid = _grid(OU)
    st = ds.Stepper("pc-song", OU, grid, x_init=x0, prediction="score", seed=4, norms="batch", snr=0.2, alpha="one")
    g = ISO.score(x0, grid[0], OU)
    st.step(g)
    z = ds.noise.standard_normal(4, np.arange(6), 1, 0, ISO.dim)
    eps = 2.0 * (0.2 * np.linalg.norm(z, axis=1).mean() / np.linalg.norm(g, axis=1).mean()) ** 2
    np.testing.assert_allclose(st.x, x0 + eps * g + np.sqrt(2 * eps) * z, rtol=1e-13)
    whole = ds.sample("pc-song", ISO, OU, grid, x_init=x0, seed=4, norms="batch")
    part = ds.sample("pc-song", ISO, OU, grid, x_init=x0[:3], seed=4, norms="batch")
    assert not np.allclose(whole[:3], part)  # as documented: a batch-dependent rule
