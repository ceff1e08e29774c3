"""ds.distributed on a LocalCluster of two worker processes: sample, order_study and claims equal the local runs
bit for bit, whatever the chunking (docs/distributed.md)."""

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

dd = pytest.importorskip("distributed")

import dask  # noqa: E402

import diffsolve as ds  # noqa: E402
from diffsolve.cli import main  # noqa: E402
from diffsolve.errors import DiffsolveError, DiffsolveTypeError  # noqa: E402

N = 600
SCH = ds.get_schedule("vp-linear")
GRID = ds.time_grid(SCH, 12, "logsnr")
GMM = ds.targets.from_spec("gmm:d=3,k=4,seed=0")


@pytest.fixture(scope="module")
def client():
    with dd.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            dd.Client(cluster) as c:
        yield c


@pytest.mark.parametrize("solver", ["dpmpp-3m", "dpmpp-2m-sde"])
def test_sample_equals_one_local_call_for_every_chunk_size(client, solver):
    ref = ds.sample(solver, GMM, SCH, GRID, n=N, seed=7, sample_offset=5)
    for chunk in (N, 150, 97):  # one chunk, four, and a size that does not divide n (7 chunks, the last of 18)
        x = ds.distributed.sample(solver, GMM, SCH, GRID, n=N, seed=7, sample_offset=5, client=client,
                                  chunk_size=chunk)
        assert x.dtype == np.float64 and x.shape == (N, 3)
        assert np.array_equal(x, ref), (solver, chunk)
    # the keys matter: the same chunk drawn as samples 0.. instead of 5.. is another sample
    assert not np.array_equal(ds.sample(solver, GMM, SCH, GRID, n=97, seed=7), ref[:97])


def test_lambda_model_with_x_init_and_per_sample_kwargs(client):
    """x_init, history-free SDE run of a cloudpickled lambda; the labels ``y`` are split with x_init's rows."""
    x_init = ds.sampling.prior_sample(SCH, GRID[0], 250, 3, seed=1)
    labels = np.linspace(-1.0, 1.0, 250)
    model = lambda x, t, y: GMM.predict(x + 0.01 * y[:, None], t, SCH, "eps")  # noqa: E731
    kw = dict(x_init=x_init, prediction="eps", seed=2, model_kwargs={"y": labels})
    ref = ds.sample("dpmpp-2m-sde", model, SCH, GRID, **kw)
    x = ds.distributed.sample("dpmpp-2m-sde", model, SCH, GRID, client=client, chunk_size=77, batched_kwargs=("y",),
                              **kw)
    assert np.array_equal(x, ref)


def test_npy_output_is_written_chunk_by_chunk(client, tmp_path):
    ref = ds.sample("ddpm", GMM, SCH, GRID, n=N, seed=3)
    x = ds.distributed.sample("ddpm", GMM, SCH, GRID, n=N, seed=3, client=client, chunk_size=128,
                              out=tmp_path / "x.npy")
    assert isinstance(x, np.memmap) and not x.flags.writeable
    assert np.array_equal(np.load(tmp_path / "x.npy"), ref)


def test_zarr_output(client, tmp_path):
    zarr = pytest.importorskip("zarr")
    ref = ds.sample("ddpm", GMM, SCH, GRID, n=N, seed=3)
    z = ds.distributed.sample("ddpm", GMM, SCH, GRID, n=N, seed=3, client=client, chunk_size=128,
                              out=str(tmp_path / "x.zarr"))
    assert np.array_equal(zarr.open_array(str(tmp_path / "x.zarr"), mode="r")[:], ref) and z.shape == (N, 3)


def test_order_study_equals_the_local_one(client, vp, gaussian_d8):
    for steps in ([8, 16, 32, 64], [64, 8, 24, 16, 32]):  # two groups; two groups of 2 and 3, unsorted
        local = ds.order_study("dpmpp-3m", gaussian_d8, vp, steps=steps, spacing="karras")
        remote = ds.distributed.order_study("dpmpp-3m", gaussian_d8, vp, steps=steps, spacing="karras",
                                            client=client)
        assert remote == local and remote.steps == sorted(steps)
    with pytest.raises(DiffsolveError, match="at least two distinct"):  # the local study's own check, from a worker
        ds.distributed.order_study("ddim", gaussian_d8, vp, steps=[8, 8], client=client)


def test_cli_with_a_scheduler_address(client, tmp_path, capsys):
    address = client.scheduler.address
    common = ["--solver", "dpmpp-3m", "--steps", "10", "--target", "gmm:d=2,k=3,seed=0", "--n", "400", "--json"]
    assert main(["sample", *common, "--out", str(tmp_path / "local.npy")]) == 0
    assert main(["sample", *common, "--out", str(tmp_path / "dask.npy"), "--dask", address]) == 0
    assert np.array_equal(np.load(tmp_path / "dask.npy"), np.load(tmp_path / "local.npy"))
    capsys.readouterr()
    order = ["order", "--solver", "ddim,dpmpp-2m", "--target", "gaussian:d=4", "--steps", "8,16,32,64", "--json"]
    assert main(order) == 0
    local = json.loads(capsys.readouterr().out)
    assert main([*order, "--dask", address]) == 0
    assert json.loads(capsys.readouterr().out) == local


def test_claims_on_a_local_cluster_by_default(capsys):
    """``--dask`` without an address: a LocalCluster started and closed by the command; the same JSON."""
    args = ["claims", "seeds", "--only", "variance", "--quick", "--json"]
    assert main(args) == 0
    local = capsys.readouterr().out
    assert main([*args, "--dask"]) == 0
    assert capsys.readouterr().out == local and json.loads(local)["variance"]["rows"]


class _Locked:
    """A model that cannot be pickled (it holds a lock)."""

    def __init__(self):
        self.lock = threading.Lock()

    def __call__(self, x, t):
        return x


def test_bad_inputs_are_clear_errors(client, capsys):
    run = dict(n=10, client=client)
    with pytest.raises(DiffsolveError, match=r"chunk_size must be a positive integer, got 0"):
        ds.distributed.sample("ddim", GMM, SCH, GRID, chunk_size=0, **run)
    with pytest.raises(DiffsolveTypeError, match=r"chunk_size .* got 2\.5"):
        ds.distributed.sample("ddim", GMM, SCH, GRID, chunk_size=2.5, **run)
    with pytest.raises(DiffsolveTypeError, match=r"client must be a scheduler address .*distributed\.Client.*got 42"):
        ds.distributed.sample("ddim", GMM, SCH, GRID, n=10, client=42)
    with pytest.raises(DiffsolveError, match=r"client must be a scheduler address.*got 'seeds'"):
        ds.distributed.order_study("ddim", GMM, SCH, client="seeds")
    with dask.config.set({"distributed.comm.timeouts.connect": "0.5s"}), \
            pytest.raises(DiffsolveError, match=r"client 'tcp://127\.0\.0\.1:1': cannot connect to a Dask scheduler"):
        ds.distributed.sample("ddim", GMM, SCH, GRID, n=10, client="tcp://127.0.0.1:1")
    with pytest.raises(DiffsolveError, match=r"model cannot be sent to the Dask workers \(TypeError: cannot pickle"):
        ds.distributed.sample("ddim", _Locked(), SCH, GRID, x_init=np.ones((4, 3)), prediction="eps", client=client)
    with pytest.raises(DiffsolveError, match="with a model callable, pass x_init"):  # ds.sample's check, in a worker
        ds.distributed.sample("ddim", lambda x, t: x, SCH, GRID, prediction="eps", **run)
    with pytest.raises(DiffsolveError, match="callback is not supported"):
        ds.distributed.sample("ddim", GMM, SCH, GRID, callback=print, **run)
    with pytest.raises(DiffsolveError, match=r"out must end in \.npy .* got 'x\.txt'"):
        ds.distributed.sample("ddim", GMM, SCH, GRID, out="x.txt", **run)
    with pytest.raises(DiffsolveError, match=r"n=5 disagrees with x_init's batch size 4"):
        ds.distributed.sample("ddim", GMM, SCH, GRID, n=5, x_init=np.ones((4, 3)), client=client)
    with pytest.raises(DiffsolveError, match=r"batched_kwargs names 'y'.*one row per sample \(4\)"):
        ds.distributed.sample("ddim", _Locked(), SCH, GRID, x_init=np.ones((4, 3)), model_kwargs={"y": [1]},
                              batched_kwargs=["y"], client=client)
    with pytest.raises(DiffsolveError, match="unknown solver|no solver"):  # refused before any work
        ds.distributed.sample("no-such-solver", GMM, SCH, GRID, **run)
    capsys.readouterr()
    assert main(["claims", "seeds", "--only", "variance", "--quick", "--dask", "nowhere"]) == 2
    assert "--dask must be a scheduler address" in capsys.readouterr().err


def test_import_diffsolve_does_not_import_dask():
    code = ("import sys, diffsolve as ds; assert not [m for m in sys.modules if m.split('.')[0] in "
            "('dask', 'distributed')]; ds.distributed.sample; assert 'distributed' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
