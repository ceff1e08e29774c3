"""``ds.sample`` with a Python model callable (the model returns a fixed array): runs of S and 2S steps and one
NumPy axpy over the state (the baseline) at 200 000 x 8; the cost per step beyond the model is
(T(2S) - T(S)) / S (``python benchmarks/python_model_path.py`` prints it and the scaling in n)."""

import numpy as np
import pytest

import python_model_path as pmp

N, D = 200_000, 8


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("steps", [pmp.STEPS, 2 * pmp.STEPS])
def test_sample_with_python_model(benchmark, record, dtype, steps):
    group = f"python-model-{np.dtype(dtype).name}"
    fn = pmp.sample_case(N, D, steps, dtype)
    fn()
    benchmark.group = group
    benchmark.pedantic(fn, rounds=5)
    record(group, f"ds.sample {pmp.SOLVER} x{steps} steps", benchmark, 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_numpy_axpy(benchmark, record, dtype):
    group = f"python-model-{np.dtype(dtype).name}"
    fn = pmp.axpy_case(N, D, dtype)
    benchmark.group = group
    benchmark.pedantic(fn, rounds=20, iterations=5)
    record(group, "one NumPy axpy", benchmark, 0, baseline=True)
