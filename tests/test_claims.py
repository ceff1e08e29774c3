"""`diffsolve claims`: the experiments behind docs/papers run, print their tables and plots, and measure what the
papers claim (reduced grids; the full tables are in docs/papers)."""

import json

import numpy as np
import pytest

from diffsolve.claims import experiments, run, slope
from diffsolve.claims.accelerated import PerturbedGaussian, c1_tv
from diffsolve.cli import main
from diffsolve.errors import DiffsolveError


def test_every_paper_lists_its_experiments(capsys):
    assert main(["claims", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("weak-order", "variance", "strong-order", "nfe", "c1", "c2", "grids", "c3", "clip", "score-error"):
        assert name in out


def test_cli_prints_markdown_and_writes_plots(tmp_path, capsys):
    assert main(["claims", "accelerated", "--only", "score-error", "--quick", "--plots", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### A.5.4") and "| accel-sde |" in out
    assert (tmp_path / "accelerated-score-error.png").stat().st_size > 10_000


def test_json_output(capsys):
    assert main(["claims", "seeds", "--only", "variance", "--quick", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = data["variance"]["rows"]
    assert [r[0] for r in rows] == [11, 21, 41]
    measured, documented = rows[0][1].split(" (")  # "value (documented value)"
    assert float(measured) == pytest.approx(float(documented.rstrip(")")), rel=1e-3)


def test_bad_names_are_clear_errors():
    with pytest.raises(DiffsolveError, match="unknown paper 'seed'.*seeds, accelerated"):
        experiments("seed")
    with pytest.raises(DiffsolveError, match="no experiment.*'c4'.*c1, c2, grids"):
        run("accelerated", only=["c4"], out=lambda _: None)
    assert main(["claims"]) == 2


@pytest.mark.parametrize("name", ["accel-ddim", "accel-ddpm", "accel-sde"])
def test_score_error_bias_is_linear_in_delta(name):
    """docs/algorithms/accelerated.md A.5.4 / B.2.4 (5): with eps_hat = eps* + delta the TV bias grows linearly in
    delta."""
    deltas = [0.005, 0.01, 0.02]
    base = c1_tv(name, 400)
    bias = [c1_tv(name, 400, target=PerturbedGaussian([1.0], [0.25], d)) - base for d in deltas]
    assert slope(deltas, bias) == pytest.approx(1.0, abs=0.1), bias
    assert c1_tv(name, 400, target=PerturbedGaussian([1.0], [0.25], 0.0)) == base


def test_theory_schedule_slopes_against_h():
    """docs/algorithms/accelerated.md C.2: on the theory's learning-rate schedule the error is a power of
    h_T = c1 log T / T with the sampler's order (documented +0.99 for DDIM, +1.95 for accel-ddim (b))."""
    from diffsolve.claims.accelerated import c2_tv, theory_betas

    Ts = [200, 400, 800]
    h = [6 * np.log(T) / T for T in Ts]
    assert slope(h, [c2_tv("ddim", T) for T in Ts]) == pytest.approx(1.0, abs=0.1)
    assert slope(h, [c2_tv("accel-ddim", T) for T in Ts]) > 1.7
    with pytest.raises(DiffsolveError, match="c1 log T / T < 1.*use more steps"):
        theory_betas(10)


def test_seeds2_needs_fewer_nfe_than_ddpm_on_the_mixture():
    """SEEDS' NFE claim on a non-Gaussian target (grid density): SEEDS-2 at 40 NFE is below DDPM at 80 NFE."""
    from diffsolve.claims.seeds import mixture_tv

    seeds, ddpm = mixture_tv("seeds-2", 20), mixture_tv("ddpm", 80)
    assert seeds == pytest.approx(1.28e-2, rel=0.02) and seeds < 0.7 * ddpm
