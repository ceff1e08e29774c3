"""Monte Carlo: the generated noise coefficients C reproduce the derived stage-noise covariance (3-node layout).

SEEDS-3-type tableau (stage nodes c1 = 0.3, c2 = 0.55 and the step end), generated on demand; n = 2e6 draws;
every entry of the sample covariance within 4 standard errors, se_ij = sqrt((S_ii S_jj + S_ij^2) / n).
"""

import numpy as np
import pytest
import sympy as sp

from diffsolve.codegen.emit import generate, load
from diffsolve.symbolic import symbols as sy
from diffsolve.symbolic.covariance import ito_covariance
from diffsolve.symbolic.singlestep import derive_singlestep

N_DRAWS = 2_000_000
FRACTIONS = (0.3, 0.55)


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    directory = tmp_path_factory.mktemp("seeds")
    return {p: load(generate(derive_singlestep(3, p, "interp", sde=True), directory)) for p in ("data", "eps")}


@pytest.mark.parametrize("prediction", ["data", "eps"])
@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_noise_covariance_monte_carlo(modules, prediction, eta):
    m = modules[prediction]
    h = 0.8
    ls = np.array([[-0.2, -0.5, -0.9, -1.4]])  # log sigma at the nodes (start, c1, c2, end)
    la = np.array([[-1.0, -0.8, -0.6, -0.3]])
    params = np.array([*FRACTIONS, eta])
    arrays = (np.zeros((1, 4)), np.zeros((1, 4, 3)), np.zeros((1, 4, 0)), np.zeros((1, 4, 3)))
    m.fill(np.array([h]), np.zeros((1, 0)), la, ls, params, *arrays)
    C = arrays[3][0, 1:]  # rows of the three noisy nodes
    # the derived covariance sigma_i sigma_j Cov(N_i, N_j), evaluated from SymPy
    fr = tuple(sp.Float(f) for f in FRACTIONS) + (1,)
    cov = ito_covariance((sy.c1, sy.c2, 1), prediction).subs({sy.c1: fr[0], sy.c2: fr[1], sy.h: h, sy.eta: eta})
    sig = np.exp(ls[0, 1:])
    target = np.array(cov.evalf(20), dtype=float) * np.outer(sig, sig)
    np.testing.assert_allclose(C @ C.T, target, rtol=1e-13)
    z = np.random.default_rng(7).standard_normal((N_DRAWS, 3))
    noise = z @ C.T
    sample = noise.T @ noise / N_DRAWS
    se = np.sqrt((np.outer(np.diag(target), np.diag(target)) + target**2) / N_DRAWS)
    assert np.all(np.abs(sample - target) <= 4 * se), (sample - target) / se
