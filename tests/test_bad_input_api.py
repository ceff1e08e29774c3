"""The error contract over the public API, as a table of hostile inputs: every public entry point (sample, the
Stepper, solver parameters, order studies, derive, the noise functions, the CLI) answers bad input with a
diffsolve error (DiffsolveError / DiffsolveTypeError, subclasses of ValueError / TypeError) whose message names
the parameter, quickly, or returns a correct result; nothing else escapes.

The cases are generated: every runtime parameter of every registered solver with every kind of bad value, every
keyword of sample() and the Stepper, every CLI flag.  Schedules, grids and target specs have their own suite
(tests/test_bad_input_schedules.py, tests/test_fuzz_schedules.py).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

import diffsolve as ds
from diffsolve import cli
from diffsolve.errors import DiffsolveError, DiffsolveTypeError, ModelOutputError
from diffsolve.noise import standard_normal, standard_uniform
from helpers import registered_solvers, solver

VP = ds.get_schedule("vp-linear")
GRID = ds.time_grid(VP, 6)
TARGET = ds.targets.from_spec("gmm:d=3,k=4,seed=1")
GAUSS = ds.targets.from_spec("gaussian:d=2")
X0 = np.random.default_rng(0).standard_normal((4, 3))
GUARD_S = 20.0  # a hang guard, not a benchmark

NOT_NUMBERS = ["x", None, [1.0, 2.0], {"a": 1}, 1 + 2j, object()]
NOT_FINITE = [math.nan, math.inf, -math.inf]


def _expect_error(fn, *fragments, kinds=(DiffsolveError,)):
    """``fn()`` raises one of ``kinds`` (never another exception) within the guard, and the message has every
    fragment."""
    start = time.perf_counter()
    with pytest.raises(Exception) as info:
        fn()
    assert time.perf_counter() - start < GUARD_S
    assert isinstance(info.value, kinds), f"{type(info.value).__name__}: {info.value}"
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    assert "np.float64(" not in text and "np.int64(" not in text, text  # plain values in messages


# -- solver parameters: every parameter of every registered solver -------------------------------------------------
def _param_cases():
    cases = []
    for name in registered_solvers():
        s = solver(name)
        for key, default in zip(s.param_names, s.params):
            numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
            bad = (NOT_NUMBERS + [math.nan]) if numeric else [None, "no-such-value", [1, 2]]
            if numeric and key != "radius":
                bad = bad + [-1.0, -math.inf]
            if key in ("inner", "tau") and s.family == "rtk":  # one value per segment: lists are valid
                bad = [v for v in bad if not isinstance(v, list)]
            for value in bad:
                cases.append(pytest.param(name, key, value, id=f"{name}-{key}-{value!r}"[:80]))
        cases.append(pytest.param(name, "no_such_parameter", 1.0, id=f"{name}-unknown"))
    return cases


@pytest.mark.parametrize("name,key,value", _param_cases())
def test_solver_parameter_refused(name, key, value):
    _expect_error(lambda: ds.get_solver(name, **{key: value}), key)


@pytest.mark.parametrize("name", [n for n in registered_solvers() if "c1" in solver(n).param_names])
def test_stage_fractions_must_lie_in_the_step_and_increase(name):
    _expect_error(lambda: ds.get_solver(name, c1=0.0), "c1", "(0, 1]")
    _expect_error(lambda: ds.get_solver(name, c1=1.5), "c1")
    if "c2" in solver(name).param_names:
        _expect_error(lambda: ds.get_solver(name, c1=0.7, c2=0.5), "c1", "c2")


# -- sample(): every keyword -------------------------------------------------------------------------------------
SAMPLE_CASES = [
    ("solver", dict(solver=3), "solver"), ("solver", dict(solver="no-such-solver"), "no-such-solver"),
    ("solver", dict(solver=None), "solver"), ("model", dict(model=None), "model"),
    ("model", dict(model="gmm:d=3"), "model"), ("schedule", dict(schedule="vp-linear"), "schedule"),
    ("schedule", dict(schedule=None), "schedule"), ("grid", dict(grid="abc"), "grid"),
    ("grid", dict(grid=[0.5]), "grid"), ("grid", dict(grid=[0.2, 0.5]), "grid"),
    ("grid", dict(grid=[1.0, math.nan]), "grid"), ("grid", dict(grid=np.zeros((2, 2))), "grid"),
    ("n", dict(n=0), "n"), ("n", dict(n=-3), "n"), ("n", dict(n=2.5), "n"), ("n", dict(n="10"), "n"),
    ("n", dict(n=True), "n"), ("n", dict(n=10**12), "n"), ("n", dict(n=4, x_init=X0[:2]), "n="),
    ("x_init", dict(n=None, x_init=np.zeros((4, 2))), "x_init"),
    ("x_init", dict(n=None, x_init=np.full((4, 3), math.nan)), "x_init"),
    ("x_init", dict(n=None, x_init=np.zeros((4, 3), dtype=np.int64)), "x_init"),
    ("x_init", dict(n=None, x_init=np.zeros(3)), "x_init"), ("x_init", dict(n=None, x_init="abc"), "x_init"),
    ("x_init", dict(n=None, x_init=np.zeros((0, 3))), "x_init"),
    ("seed", dict(seed=-1), "seed"), ("seed", dict(seed=2**64), "seed"), ("seed", dict(seed=1.5), "seed"),
    ("seed", dict(seed="a"), "seed"), ("seed", dict(seed=None), "seed"), ("seed", dict(seed=True), "seed"),
    ("backend", dict(backend="tpu"), "backend"), ("backend", dict(backend=None), "backend"),
    ("backend", dict(backend=3), "backend"),
    ("prediction", dict(prediction="noise", model=lambda x, t: x, x_init=X0, n=None), "prediction"),
    ("prediction", dict(prediction=3, model=lambda x, t: x, x_init=X0, n=None), "prediction"),
    ("history", dict(solver="dpmpp-2m", history=[np.zeros((4, 2))], x_init=X0, n=None), "history"),
    ("history", dict(solver="ddim", history=[X0], x_init=X0, n=None), "history"),
    ("sample_offset", dict(sample_offset=-1), "sample_offset"),
    ("sample_offset", dict(sample_offset=1.5), "sample_offset"),
    ("sample_offset", dict(sample_offset=2**40), "sample_offset"),
    ("sample_offset", dict(sample_offset="0"), "sample_offset"),
    ("dtype", dict(dtype=np.int64), "dtype"), ("dtype", dict(dtype=np.float16), "dtype"),
    ("dtype", dict(dtype="banana"), "dtype"), ("dtype", dict(dtype=np.complex128), "dtype"),
    ("params", dict(eta=-1.0, solver="dpmpp-2m-sde"), "eta"), ("params", dict(eta=math.nan, solver="ddpm"), "eta"),
    ("params", dict(bogus=1.0), "bogus"),
    ("model", dict(model=lambda x, t: x * math.nan, x_init=X0, n=None, prediction="eps"), "NaN"),
    ("model", dict(model=lambda x, t: x[:, :2], x_init=X0, n=None, prediction="eps"), "shape"),
    ("model", dict(model=lambda x, t: None, x_init=X0, n=None, prediction="eps"), "NoneType"),
    ("model", dict(model=lambda x, t: "eps", x_init=X0, n=None, prediction="eps"), "str"),
    ("model", dict(model=lambda x, t: x.astype(np.int64), x_init=X0, n=None, prediction="eps"), "dtype"),
    ("model", dict(model=lambda x, t: x, x_init=X0, n=None), "prediction"),
]


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("what,kwargs,fragment", SAMPLE_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(SAMPLE_CASES)])
def test_sample_refuses(what, kwargs, fragment, backend):
    args = dict(solver="ddim", model=TARGET, schedule=VP, grid=GRID, n=4, backend=backend) | kwargs
    if what == "backend":
        args["backend"] = kwargs["backend"]
    pos = [args.pop(k) for k in ("solver", "model", "schedule", "grid")]
    _expect_error(lambda: ds.sample(*pos, **args), fragment)


def test_unstable_sde_runs_are_refused_not_diverging():
    """Large eta * h: the noise-prediction and multistep SDE solvers would amplify errors geometrically."""
    for name, eta in (("dpmpp-3m-sde", 1e3), ("dpm-solver-2m-sde", 30.0), ("euler-maruyama", 100.0)):
        _expect_error(lambda: ds.sample(name, GAUSS, VP, ds.time_grid(VP, 128), n=8, eta=eta), "eta", "diverges")
    with pytest.warns(ds.errors.DiffsolveWarning, match="diverges"):  # the published method (eta <= 1): warned
        ds.sample("dpm-solver-2m-sde", GAUSS, VP, ds.time_grid(VP, 8), n=8)
    # the same solvers at moderate eta, and the stable ones at any eta, run and stay accurate
    grid = ds.time_grid(VP, 64)
    exact = np.sqrt(GAUSS.variances.mean())
    for name, eta in (("dpmpp-3m-sde", 1.0), ("dpm-solver-2m-sde", 1.0), ("ddpm", 1e3), ("seeds-1", 1e3)):
        x = ds.sample(name, GAUSS, VP, grid, n=4000, eta=eta, backend="cpu")
        assert abs(x.std() - exact) < 0.35 * exact, (name, eta, x.std())


# -- the Stepper ---------------------------------------------------------------------------------------------------
STEPPER_CASES = [
    (dict(x_init=np.full((2, 3), math.inf)), "x_init"), (dict(x_init=np.zeros((2, 3), dtype=np.int32)), "x_init"),
    (dict(x_init=np.zeros(3)), "x_init"), (dict(x_init=np.zeros((0, 3))), "x_init"),
    (dict(prediction="velocity"), "prediction"), (dict(backend="gpu0"), "backend"),
    (dict(seed=-5), "seed"), (dict(sample_offset=-1), "sample_offset"), (dict(eta=-0.5, solver="ddpm"), "eta"),
    (dict(history=[np.zeros((2, 3))], solver="ddim"), "history"), (dict(solver="nope"), "nope"),
]


@pytest.mark.parametrize("kwargs,fragment", STEPPER_CASES, ids=[str(i) for i in range(len(STEPPER_CASES))])
def test_stepper_refuses(kwargs, fragment):
    args = dict(solver="ddim", x_init=np.zeros((2, 3))) | kwargs
    name = args.pop("solver")
    _expect_error(lambda: ds.Stepper(name, VP, GRID, **args), fragment)


STEP_OUTPUTS = [(np.full((2, 3), math.nan), "NaN"), (np.zeros((2, 2)), "shape"), (None, "NoneType"),
                ("x", "str"), (np.zeros((2, 3), dtype=np.int64), "dtype"), ({"a": 1}, "dict")]


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("out,fragment", STEP_OUTPUTS, ids=[str(i) for i in range(len(STEP_OUTPUTS))])
def test_stepper_step_refuses_bad_model_outputs(out, fragment, backend):
    st = ds.Stepper("ddim", VP, GRID, x_init=np.zeros((2, 3)), backend=backend)
    _expect_error(lambda: st.step(out), fragment)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_stepper_takes_torch_outputs_as_they_come(backend):
    """Model outputs that require grad (a model called without torch.no_grad) are read, not refused; a tensor on
    another device gets an error naming the fix; a non-contiguous NumPy output gives the contiguous one's bits."""
    torch = pytest.importorskip("torch")
    x0 = np.random.default_rng(0).standard_normal((2, 3))
    ref = ds.Stepper("dpmpp-2m", VP, GRID, x_init=x0, backend=backend)
    st = ds.Stepper("dpmpp-2m", VP, GRID, x_init=torch.tensor(x0), backend=backend)
    wide = ds.Stepper("dpmpp-2m", VP, GRID, x_init=x0, backend=backend)
    w = torch.nn.Parameter(torch.tensor(0.3, dtype=torch.float64))
    while not st.done:
        out = w * st.x_model
        assert out.requires_grad
        st.step(out)
        ref.step(0.3 * ref.x_model)
        wide.step(np.asfortranarray(np.repeat(0.3 * wide.x_model, 2, axis=1))[:, ::2])
    np.testing.assert_array_equal(st.x.numpy(), ref.x)
    np.testing.assert_array_equal(wide.x, ref.x)
    st = ds.Stepper("ddim", VP, GRID, x_init=torch.zeros((2, 3)), backend=backend)
    _expect_error(lambda: st.step(torch.zeros((2, 3), device="meta")), "tensor.cpu()")


def test_stepper_after_done_and_log_density_misuse():
    st = ds.Stepper("ddim", VP, GRID[:2], x_init=np.zeros((2, 3)))
    _expect_error(lambda: st.step(np.zeros((2, 3)), log_density=np.zeros(2)), "log_density")
    st.step(np.zeros((2, 3)))
    _expect_error(lambda: st.step(np.zeros((2, 3))), "done")
    _expect_error(lambda: st.x_model, "done")


def test_half_precision_is_computed_in_float32():
    """float16 / bfloat16 model outputs (and states) are accepted, the arithmetic is float32."""
    torch = pytest.importorskip("torch")
    ref = ds.Stepper("ddim", VP, GRID, x_init=np.zeros((2, 3), dtype=np.float32), backend="numpy")
    for half in (torch.float16, torch.bfloat16):
        st = ds.Stepper("ddim", VP, GRID, x_init=torch.zeros((2, 3), dtype=half), backend="cpu")
        while not st.done:
            st.step(0.1 * torch.ones((2, 3), dtype=half))
        assert st.x.dtype == torch.float32 and torch.isfinite(st.x).all()
    st = ds.Stepper("ddim", VP, GRID, x_init=np.zeros((2, 3), dtype=np.float16), backend="numpy")
    half = np.full((2, 3), 0.1, dtype=np.float16)
    while not st.done:
        st.step(half)
        ref.step(half.astype(np.float32))  # the float32 arithmetic on the same (half-precision) values
    assert st.x.dtype == np.float32
    np.testing.assert_array_equal(st.x, ref.x)
    out = ds.sample("ddim", TARGET, VP, GRID, x_init=X0.astype(np.float16), dtype=np.float32)
    assert out.dtype == np.float32


# -- order studies, derive, noise ---------------------------------------------------------------------------------
OTHER_CASES = [
    ("order_study solver", lambda: ds.order_study("nope", GAUSS, VP), "nope"),
    ("order_study target", lambda: ds.order_study("ddim", TARGET, VP), "Gaussian"),
    ("order_study metric", lambda: ds.order_study("ddim", GAUSS, VP, metric="l7"), "metric"),
    ("order_study steps", lambda: ds.order_study("ddim", GAUSS, VP, steps=[0, 4]), "steps"),
    ("order_study steps str", lambda: ds.order_study("ddim", GAUSS, VP, steps="abc"), "steps"),
    ("order_study spacing", lambda: ds.order_study("ddim", GAUSS, VP, spacing="weird"), "spacing"),
    ("derive family", lambda: ds.derive("no-family", 2), "family"),
    ("derive order", lambda: ds.derive("dpmpp-multistep", 0), "order"),
    ("derive order str", lambda: ds.derive("dpmpp-multistep", "two"), "order"),
    ("derive order float", lambda: ds.derive("dpmpp-multistep", 2.5), "order"),
    ("derive prediction", lambda: ds.derive("dpmpp-multistep", 2, prediction="velocity"), "prediction"),
    ("derive variant", lambda: ds.derive("dpmpp-multistep", 2, variant="nonsense"), "variant"),
    ("derive schedule", lambda: ds.derive("dpmpp-multistep", 2, schedule="vp"), "schedule"),
    ("normal seed", lambda: standard_normal(-1, np.arange(2), 0, 0, 2), "seed"),
    ("normal seed type", lambda: standard_normal("s", np.arange(2), 0, 0, 2), "seed"),
    ("normal index", lambda: standard_normal(0, np.array([-1]), 0, 0, 2), "sample_index"),
    ("normal index float", lambda: standard_normal(0, np.array([0.5]), 0, 0, 2), "sample_index"),
    ("normal index 2-D", lambda: standard_normal(0, np.zeros((2, 2), dtype=int), 0, 0, 2), "sample_index"),
    ("normal step", lambda: standard_normal(0, np.arange(2), -1, 0, 2), "step"),
    ("normal step big", lambda: standard_normal(0, np.arange(2), 2**32, 0, 2), "step"),
    ("normal draw", lambda: standard_normal(0, np.arange(2), 0, 1.5, 2), "draw"),
    ("normal dim", lambda: standard_normal(0, np.arange(2), 0, 0, 0), "dim"),
    ("normal dim type", lambda: standard_normal(0, np.arange(2), 0, 0, "2"), "dim"),
    ("uniform seed", lambda: standard_uniform(2**64, np.arange(2), 0, 1), "seed"),
    ("uniform draw", lambda: standard_uniform(0, np.arange(2), 0, -1), "draw"),
]


@pytest.mark.parametrize("what,fn,fragment", OTHER_CASES, ids=[c[0] for c in OTHER_CASES])
def test_other_entry_points_refuse(what, fn, fragment):
    _expect_error(fn, fragment)


def test_type_errors_are_also_typeerrors():
    with pytest.raises(TypeError):
        standard_normal("s", np.arange(2), 0, 0, 2)
    with pytest.raises(DiffsolveTypeError):
        ds.sample("ddim", TARGET, VP, GRID, n=2, dtype="banana")
    assert issubclass(ModelOutputError, ValueError) and issubclass(DiffsolveTypeError, ValueError)


# -- the CLI: every flag -------------------------------------------------------------------------------------------
CLI_CASES = [
    (["sample", "--solver", "nope", "--steps", "5", "--target", "gaussian:d=2"], "nope"),
    (["sample", "--solver", "ddim", "--steps", "0", "--target", "gaussian:d=2"], "steps"),
    (["sample", "--solver", "ddim", "--steps", "5", "--target", "nonsense"], "target"),
    (["sample", "--solver", "ddim", "--steps", "5", "--target", "gaussian:d=2", "--n", "0"], "n"),
    (["sample", "--solver", "ddim", "--steps", "5", "--target", "gaussian:d=2", "--seed", "-1"], "seed"),
    (["sample", "--solver", "ddim", "--steps", "5", "--target", "gaussian:d=2", "--backend", "tpu"], "backend"),
    (["sample", "--solver", "ddim", "--steps", "5", "--target", "gaussian:d=2", "--schedule", "nope"], "nope"),
    (["sample", "--solver", "ddim", "--steps", "5", "--target", "gaussian:d=2", "--spacing", "odd"], "spacing"),
    (["sample", "--solver", "ddpm", "--steps", "5", "--target", "gaussian:d=2", "--param", "eta=-1"], "eta"),
    (["sample", "--solver", "ddpm", "--steps", "5", "--target", "gaussian:d=2", "--param", "eta"], "--param"),
    (["sample", "--solver", "ddpm", "--steps", "5", "--target", "gaussian:d=2", "--param", "=1"], "--param"),
    (["sample", "--solver", "ddim", "--steps", "5", "--target", "gaussian:d=2", "--alpha", "exp(-t)"], "--sigma"),
    (["sample", "--solver", "ddim", "--steps", "5", "--target", "gaussian:d=2", "--alpha", "__import__('os')",
      "--sigma", "t"], "alpha"),
    (["sample", "--solver", "ddim", "--steps", "5", "--target", "gaussian:d=2", "--out", "missing/y.npy"], "--out"),
    (["sample", "--solver", "ddim", "--steps", "5", "--target", "gaussian:d=2", "--out", "/"], "--out"),
    (["order", "--solver", "ddim", "--target", "gaussian:d=2", "--steps", "a,b"], "--steps"),
    (["order", "--solver", "ddim", "--target", "gmm:d=2,k=2", "--steps", "8,16"], "Gaussian"),
    (["order", "--solver", "ddim", "--target", "gaussian:d=2", "--steps", "8,16", "--metric", "l9"], "metric"),
    (["order", "--solver", "ddim", "--target", "gaussian:d=2", "--steps", "8,16", "--plot", "no/dir/x.png"], "--plot"),
    (["derive", "no-family", "--order", "2"], "family"),
    (["derive", "dpmpp-multistep", "--order", "2", "--out", "a-file.txt"], "--out"),
    (["claims", "nopaper"], "nopaper"),
    (["claims", "seeds", "--only", "nothing"], "nothing"),
    (["claims", "seeds", "--plots", "a-file.txt"], "--plots"),
]


@pytest.mark.parametrize("argv,fragment", CLI_CASES, ids=[" ".join(a)[:70] for a, _ in CLI_CASES])
def test_cli_one_line_error_and_exit_code(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file.txt").write_text("")  # a file where a directory is expected
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse usage errors (choices, missing arguments) exit 2 themselves
        rc = exc.code
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) >= 1 and "Traceback" not in err, err
    assert fragment in err, (fragment, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file.txt"]  # nothing written


def test_cli_out_checked_before_sampling_and_reported_as_written(tmp_path, capsys):
    rc = cli.main(["sample", "--solver", "ddim", "--steps", "4", "--target", "gaussian:d=2", "--n", "10", "--json",
                   "--out", str(tmp_path / "outdir")])
    out, _ = capsys.readouterr()
    assert rc == 0
    import json

    report = json.loads(out)
    assert report["out"].endswith("outdir.npy") and (tmp_path / "outdir.npy").is_file()  # what was written


def test_step_to_sigma_zero_without_nan_or_warnings():
    """A solver whose own formula cannot take a step to sigma = 0 (Euler-Maruyama: explicit in lam) ends with the
    denoising step instead: finite coefficients, no RuntimeWarning from the probe of its builder."""
    import warnings

    grid = np.append(ds.time_grid(VP, 5)[:-1], 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ds.DiffsolveWarning)  # 5 steps: the stability check warns, rightly
        solver = ds.get_solver("euler-maruyama")
        program = solver.program(VP, grid)
    assert not solver.takes_final_step() and [seg.table.steps for seg in program.segments] == [4, 1]
    assert all(np.isfinite(getattr(seg.table, k)).all() for seg in program.segments for k in "ABEC")
