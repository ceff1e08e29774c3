"""UniPC of any order (diffsolve.symbolic.unipc, diffsolve.solvers.unipc; docs/algorithms/unipc.md).

Symbolic: the paper's system R rho = b solved by SymPy's own linear solver agrees with the derivation and B(h)
cancels from it; solved UniP-k is the exact multistep integrator; local orders on the series test problem
(UniP-k: k + 1, the corrected point of UniPC-k: k + 2; the one-stage tableau with the predicted point as state: c + 1,
and c + 2 on uniform steps).  Registry: exact-law orders (UniC raises UniP's order by one), names and variants, the
step to sigma = 0.  Peer: diffusers' UniPCMultistepScheduler step by step on the same timesteps and model outputs.
"""

import numpy as np
import pytest
import sympy as sp

import diffsolve as ds
from diffsolve.symbolic import symbols as sy
from diffsolve.symbolic import unipc
from diffsolve.symbolic.checks import SymbolicCheckError, check_series, series_defect
from diffsolve.symbolic.multistep import derive_multistep, multistep_weights
from diffsolve.symbolic.psi import Psi, PsiTilde
from diffsolve.symbolic.tableau import SymbolicTableau
from helpers import GAUSSIAN_D8, ORDER_SETUP, VP, order_setup

MOMENT = {"data": Psi, "eps": PsiTilde}


def _zero(expr) -> bool:
    """expr == 0 with the moments as independent symbols (their coefficients are rational in r)."""
    atoms = sorted(sp.sympify(expr).atoms(Psi, PsiTilde), key=sp.default_sort_key)
    free = sp.sympify(expr).xreplace({a: sp.Symbol(f"P{i}") for i, a in enumerate(atoms)})
    return sp.cancel(sp.expand(free)) == 0


def _lead(defect) -> int:
    """The lowest power of h with a non-zero coefficient in a series."""
    return next(m for m, c in enumerate(defect.c) if c != 0)


# ------------------------------------------------------------------------------------------------------ symbolic
@pytest.mark.parametrize("role,order", [("predictor", 2), ("predictor", 3), ("predictor", 4), ("corrector", 1),
                                        ("corrector", 2), ("corrector", 3)])
def test_paper_system_solved_by_sympy_and_B_cancels(role, order):
    """rho = R^-1 b with R_im = v_m^(i-1), b_i = i! psi_i(h) / B (SymPy's LUsolve, B and the moments free symbols):
    B rho is free of B and is the derivation's beta rho, in both parameterisations."""
    B, P = sp.Symbol("B"), sp.symbols(f"P_1:{order + 2}")
    nodes = unipc.rho_nodes(role, order)
    n = len(nodes)
    R = sp.Matrix(n, n, lambda i, m: nodes[m] ** i)
    rho = R.LUsolve(sp.Matrix(n, 1, lambda i, _: sp.factorial(i + 1) * P[i] / B))
    solved = [sp.cancel(B * x) for x in rho]
    assert not any(x.has(B) for x in solved)
    for prediction, M in MOMENT.items():
        derived = [y.xreplace({M(q, sy.h): P[q - 1] for q in range(1, n + 1)})
                   for y in unipc.beta_rho(role, order, prediction, "exact")]
        assert all(sp.cancel(x - y) == 0 for x, y in zip(solved, derived))


@pytest.mark.parametrize("k,prediction", [(1, "data"), (2, "data"), (3, "data"), (4, "data"), (3, "eps")])
def test_solved_unip_is_the_exact_multistep(k, prediction):
    """UniP-k with solved rho integrates the interpolant through its k nodes exactly: the weights of
    derive_multistep (DPM-Solver++(kM) / DPM-Solver-kM), derived independently by Lagrange quadrature."""
    for got, want in zip(unipc.update_weights("predictor", k, prediction, "exact"), multistep_weights(k, prediction)):
        assert _zero(got - want)


def test_published_unip_2_is_dpmpp_2m_published():
    """rho = 1/2 with B(h) = e^h - 1 is DPM-Solver++(2M)'s published form; with B(h) = h it is not."""
    tab, ref = unipc.derive_unipc(2, "data", "published-p"), derive_multistep(2, "data", variant="published")
    assert _zero(tab.b[1, 0] - ref.b[1, 0]) and _zero(tab.e[1, 0] - ref.e[1, 0])
    bh1 = unipc.derive_unipc(2, "data", "published-bh1-p")
    assert not _zero(bh1.e[1, 0] - ref.e[1, 0])


@pytest.mark.parametrize("k,prediction", [(1, "data"), (2, "data"), (3, "data"), (2, "eps")])
def test_local_orders(k, prediction):
    """The derivations' sharp series checks on the nonlinear test problem (unequal history ratios): UniP-k local error
    O(h^{k+1}); the corrected point of UniPC-k (the paper's evaluation form) O(h^{k+2}); the one-stage tableau with
    the predicted point as state O(h^{k+1}) per step, but O(h^{k+2}) on uniform steps (its errors telescope: global
    order k + 1)."""
    pair = unipc.derive_unipc_pair(k, prediction)
    assert (pair.order, pair.deterministic_order, pair.checked[-1]) == (k + 1, k + 1, "series")
    if k > 1:
        alone = unipc.derive_unipc(k, prediction, "exact-p")
        assert (alone.order, alone.deterministic_order, alone.checked[-1]) == (k, k, "series")
    tab = unipc.derive_unipc(k, prediction)
    assert (tab.order, tab.deterministic_order, tab.history, tab.checked[-1]) == (k + 1, k, k, "series")
    uniform = {sy.r(j): sp.Integer(1) for j in range(1, tab.history + 1)}
    assert not any(series_defect(tab, n=k + 1, ratios=uniform).c)  # the h^{k+1} term of unequal steps is gone


@pytest.mark.parametrize("rule", ["published", "published-bh1"])
def test_published_pairs_keep_the_orders(rule):
    """rho = 1/2 (UniP-2, UniC-1) keeps the orders: the published UniPC-1 and UniPC-2 correct to local order 3 and
    4 with either B(h) (sharp series checks)."""
    for k in (1, 2):
        pair = unipc.derive_unipc_pair(k, "data", rule)
        assert (pair.deterministic_order, pair.checked[-1]) == (k + 1, "series")


def test_the_checks_catch_a_wrong_rho():
    """UniC-1 with rho = 0.4 instead of 1/2 corrects only to local order 2: the series check refuses order 2."""
    tab = unipc.derive_unipc_pair(1, "data", "published")
    k, psi0 = sp.exp(sy.la(2)), Psi(0, sy.h)
    assert _zero(tab.b[2, 1] - k * psi0 / 2) and _zero(tab.b[2, 0] - k * psi0 / 2)
    wrong = sp.Matrix(tab.b)
    wrong[2, 0], wrong[2, 1] = k * psi0 * sp.Rational(3, 5), k * psi0 * sp.Rational(2, 5)
    liar = SymbolicTableau(**{**tab.__dict__, "b": sp.ImmutableMatrix(wrong), "checked": ()})
    with pytest.raises(SymbolicCheckError, match="local error has an h\\^2 term"):
        check_series(liar)


@pytest.mark.parametrize("variant,changed", [("", False), ("-p", False), ("-warmup", True)])
def test_published_differs_only_where_rho_is_fixed(variant, changed):
    """Published and solved UniPC-3 tableaux coincide unless a rho is fixed (UniP-2, UniC-1, or the previous step's
    UniP-2 inside the correction of the warm-up level): the registry then takes the exact tableau."""
    from diffsolve.solvers.unipc import unipc_levels

    c = {"": 3, "-p": 0, "-warmup": 2}[variant]
    assert unipc.fixes("published", 3, c) is changed
    same = [e for _, _, e in unipc.derive_unipc(3, "data", "published" + variant).entries()]
    other = [e for _, _, e in unipc.derive_unipc(3, "data", "exact" + variant).entries()]
    assert all(_zero(x - y) for x, y in zip(same, other)) is not changed
    levels = unipc_levels(3, "published", "data", corrected=bool(c))
    own = ("unipc", 3, "data", False, ("published" if changed else "exact") + variant)
    assert (own if c else ("multistep", 3, "data", False, "exact")) in levels  # UniP-3 alone: dpmpp-3m's tableau


# ------------------------------------------------------------------------------------------------------ registry
@pytest.mark.parametrize("k", [1, 2, 3])
def test_unic_raises_the_order_by_one(k):
    """Exact-law W2 on an anisotropic Gaussian (the registry order set-up): UniP-k measures k, UniPC-k k + 1."""
    predictor = ds.get_solver(f"unipc-{k}", variant="p")
    corrected = ds.get_solver(f"unipc-{k}")
    assert (predictor.order, corrected.order) == (k, k + 1)
    p = ds.order_study(predictor, GAUSSIAN_D8, VP, **ORDER_SETUP)
    c = ds.order_study(corrected, GAUSSIAN_D8, VP, **ORDER_SETUP)
    assert abs(p.order - k) <= 0.2 and abs(c.order - (k + 1)) <= 0.2, (p.table(), c.table())
    assert c.errors[-1] < 0.1 * p.errors[-1]


@pytest.mark.parametrize("name,variant,order", [("unipc-1", "eps", 2), ("unipc-2", "published-bh1-eps", 3),
                                                ("unipc-2", "published-eps", 3)])
def test_noise_prediction_orders(name, variant, order):
    study = ds.order_study(ds.get_solver(name, variant=variant), GAUSSIAN_D8, VP, **ORDER_SETUP)
    assert abs(study.order - order) <= 0.2, study.table()


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["exact", "published-bh1", "eps"])
def test_unipc_4_and_3_eps_orders(variant):
    """Derived on demand: UniPC-4 order 5; UniPC-3 in noise prediction approaches 4 only on finer grids (local orders
    3.4 -> 3.8 -> 3.9 over 64 .. 1024 steps, like the pre-asymptotic noise-prediction multistep methods)."""
    if variant == "eps":
        study = ds.order_study(ds.get_solver("unipc-3", variant="eps"), GAUSSIAN_D8, VP,
                               **order_setup(VP, steps=(256, 512, 1024)))
        assert abs(study.order - 4) <= 0.3, study.table()
        return
    study = ds.order_study(ds.get_solver("unipc-4", variant=variant), GAUSSIAN_D8, VP, **ORDER_SETUP)
    assert abs(study.order - 5) <= 0.3, study.table()


def test_names_levels_and_metadata():
    s = ds.get_solver("unipc-3")
    assert (s.family, s.order, s.nfe_per_step, s.history, s.prediction) == ("unipc", 4, 1, 3, "data")
    assert [key[1:] for key in s.extra["levels"]] == [(1, "data", False, "exact"), (2, "data", False, "exact-warmup"),
                                                      (3, "data", False, "exact-warmup"), (3, "data", False, "exact")]
    pub = ds.get_solver("unipc-3:published-bh1-eps")
    assert [key[4] for key in pub.extra["levels"]] == ["exact", "published-bh1-warmup", "published-bh1-warmup",
                                                       "exact"]
    assert pub.variant == "published-bh1-eps" and pub.prediction == "eps"
    assert ds.get_solver("unipc-2", variant="eps-bh2-published").variant == "published-eps"
    alone = ds.get_solver("unipc-3:p")
    assert (alone.order, alone.history, alone.extra["corrected"]) == (3, 2, False)
    assert "UniPC" in s.reference and "2302.04867" in s.reference
    assert ds.get_solver("unipc-1:p").order == 1  # UniP-1 is DDIM


@pytest.mark.parametrize("name,variant,fragments", [
    ("unipc-2", "bh1", ["'bh1'", "cancels", "published-bh1"]),
    ("unipc-2", "published-nope", ["'published-nope'", "tokens", "e.g."]),
    ("unipc-2", "eps-data", ["'eps-data'", "at most one"]),
    ("unipc-13", None, ["between 1 and 12", "got 13"]),
    ("unipc-0", None, ["got 0"]),
])
def test_bad_names_and_variants(name, variant, fragments):
    with pytest.raises(ds.DiffsolveError) as err:
        ds.get_solver(name, variant=variant)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_noise_prediction_unip_3_is_dpm_solver_3m():
    """Exact laws: UniP-3 in noise prediction (solved) is DPM-Solver-3M, warm-up included."""
    tgt = ds.targets.from_spec("gaussian:d=4")
    grid = ds.time_grid(VP, 12, "karras")
    a = ds.accuracy.exact_error(ds.get_solver("unipc-3", variant="eps-p"), tgt, VP, grid, exact_history=False)
    b = ds.accuracy.exact_error("dpm-solver-3m", tgt, VP, grid, exact_history=False)
    assert a == pytest.approx(b, rel=1e-9)


def test_final_step_to_sigma_zero_is_the_denoiser():
    """A grid ending at sigma = 0 under final="denoise": the last step is D(x_n) at the predicted point (the
    corrected state would enter with sigma_t / sigma_s = 0), as in diffusers with lower_order_final; under the
    default final="solver" it is the fit of Solver.final_row instead (tests/test_final_step.py)."""
    s = ds.get_schedule("edm")
    tgt = ds.targets.from_spec("gaussian:d=3")
    grid = np.concatenate([ds.time_grid(s, 8, "karras"), [0.0]])
    x_prev = ds.sample("unipc-3", tgt, s, grid[:-1], n=50, seed=2)
    x = ds.sample("unipc-3", tgt, s, grid, n=50, seed=2, final="denoise")
    np.testing.assert_allclose(x, tgt.denoise(x_prev, grid[-2], s), rtol=1e-12)
    assert not np.allclose(ds.sample("unipc-3", tgt, s, grid, n=50, seed=2), x, rtol=1e-6)


# ------------------------------------------------------------------------------------------------------ peer
BETAS = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
TARGET = ds.targets.from_spec("gmm:d=4,k=3,seed=1")


@pytest.fixture(scope="module")
def peer():
    """(torch, diffusers, DiffsolveScheduler), or skip."""
    torch, diffusers = pytest.importorskip("torch"), pytest.importorskip("diffusers")
    from diffsolve.interop.diffusers import DiffsolveScheduler

    return torch, diffusers, DiffsolveScheduler


def _run(scheduler, schedule, x, timesteps=None):
    """Drive ``scheduler`` with the exact mixture eps-model (a fixed function of (x, t), in x's dtype); the states
    after each step, stacked (float64).  ``timesteps``: set them first (a DiffsolveScheduler)."""
    import torch

    if timesteps is not None:
        scheduler.set_timesteps(timesteps=timesteps)
    out = []
    for t in scheduler.timesteps:
        time = schedule.time_of_timestep(np.array([float(t)]))[0]
        eps = torch.from_numpy(np.asarray(TARGET.predict(x.double().numpy(), time, schedule, "eps"))).to(x.dtype)
        x = scheduler.step(eps, t, x).prev_sample
        out.append(x.double())
    return torch.stack(out)


def _rel(a, b):
    return float(((a - b).abs().amax(dim=(1, 2)) / b.abs().amax(dim=(1, 2))).max())


def _float64_sigmas(scheduler, final):
    """diffusers keeps its sigmas in float32: the same noise levels recomputed in float64 from its alphas_cumprod."""
    import torch

    ac = scheduler.alphas_cumprod.double()
    sig = ((1 - ac) / ac) ** 0.5
    end = sig[:1] if final == "sigma_min" else torch.zeros(1, dtype=torch.float64)
    scheduler.sigmas = torch.cat([sig[scheduler.timesteps], end])


def _pair(peer, k, bh, predict_x0, corrector=True, steps=10):
    _, diffusers, DiffsolveScheduler = peer
    kw = dict(solver_order=k, solver_type=bh, predict_x0=predict_x0, lower_order_final=False,
              final_sigmas_type="sigma_min", disable_corrector=[] if corrector else list(range(steps)))
    variant = "-".join(["published", bh] + ([] if predict_x0 else ["eps"]) + ([] if corrector else ["p"]))
    theirs = lambda: diffusers.UniPCMultistepScheduler(**BETAS, **kw)  # noqa: E731
    ours = lambda: DiffsolveScheduler(solver=f"unipc-{k}", variant=variant, **BETAS)  # noqa: E731
    return theirs, ours


@pytest.mark.peer
@pytest.mark.parametrize("predict_x0", [True, False], ids=["data", "eps"])
@pytest.mark.parametrize("bh", ["bh1", "bh2"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_matches_diffusers_unipc(peer, k, bh, predict_x0):
    """UniPCMultistepScheduler(solver_order=k, solver_type=bh, predict_x0, lower_order_final=False,
    final_sigmas_type="sigma_min") on its 10 linspace timesteps, both fed the same model outputs at their own states.
    float64 (diffusers' float32 sigmas recomputed in float64 from its alphas_cumprod): equal to 1e-11.  float32 as
    shipped: our error and the difference stay within 3x diffusers' own float32 rounding error (against the float64
    run; up to 4e-5 relative at the last step of order 3); before the two last steps ours is within 1e-5 of the
    float64 run, and of diffusers' float32 run unless diffusers' own error there is larger."""
    torch = peer[0]
    theirs, ours = _pair(peer, k, bh, predict_x0)
    schedule = ours().schedule
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    ref32 = theirs()
    ref32.set_timesteps(10)
    ts = ref32.timesteps
    th32, ou32 = _run(ref32, schedule, x), _run(ours(), schedule, x, ts)
    ref64 = theirs()
    ref64.set_timesteps(10)
    _float64_sigmas(ref64, "sigma_min")
    th64, ou64 = _run(ref64, schedule, x.double()), _run(ours(), schedule, x.double(), ts)
    assert _rel(ou64, th64) < 1e-11
    own = max(_rel(th32, ou64), 1e-6)  # diffusers' float32 rounding error
    assert _rel(ou32, ou64) <= 3 * own and _rel(ou32, th32) <= 3 * own, (_rel(ou32, th32), _rel(ou32, ou64), own)
    early = slice(None, -2)  # before the two long last steps (timesteps 200 -> 100 -> 0)
    assert _rel(ou32[early], ou64[early]) < 1e-5
    # the gap to diffusers there: below 1e-5, or below diffusers' own error where that is larger (its float32
    # rounding depends on the CPU torch runs on: 1.5e-5 for order 3 eps on an AMD EPYC guest)
    assert _rel(ou32[early], th32[early]) < max(1e-5, _rel(th32[early], ou64[early]))


@pytest.mark.peer
@pytest.mark.parametrize("k,bh,predict_x0", [(2, "bh2", True), (3, "bh1", False)])
def test_predictor_alone_matches_diffusers_without_corrector(peer, k, bh, predict_x0):
    """Variant p is UniPCMultistepScheduler with every step in disable_corrector (float64 sigmas as above)."""
    torch = peer[0]
    theirs, ours = _pair(peer, k, bh, predict_x0, corrector=False)
    th = theirs()
    th.set_timesteps(10)
    _float64_sigmas(th, "sigma_min")
    schedule = ours().schedule
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert _rel(_run(ours(), schedule, x, th.timesteps), _run(th, schedule, x)) < 1e-11


@pytest.mark.peer
def test_diffusers_default_unipc_is_unipc_2_published(peer):
    """UniPCMultistepScheduler() as configured by default (solver_order=2, bh2, predict_x0, final sigma 0,
    lower_order_final: a first-order last step) is unipc-2:published on the linspace grid ending at sigma = 0."""
    torch, diffusers, DiffsolveScheduler = peer
    th = diffusers.UniPCMultistepScheduler(**BETAS)
    th.set_timesteps(10)
    _float64_sigmas(th, "zero")
    ours = DiffsolveScheduler(solver="unipc-2", variant="published", final_sigmas_type="zero", **BETAS)
    schedule = ours.schedule
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert _rel(_run(ours, schedule, x, th.timesteps), _run(th, schedule, x)) < 1e-11
