"""Scale-out on a Dask cluster (``ds.distributed``; docs/distributed.md): ``sample`` in chunks of samples,
``order_study`` over its step counts, ``claims`` one experiment per task, each result equal to the local one.

Needs ``pip install 'diffsolve[distributed]'``; importing this module does not import dask (the functions do).
Without a ``client`` each call starts a :class:`distributed.LocalCluster` of processes and closes it afterwards.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from itertools import islice
from pathlib import Path

import numpy as np

from .errors import DiffsolveError, DiffsolveTypeError, plain

__all__ = ["claims", "connect", "order_study", "sample"]

_CHUNK_BYTES = 64 << 20  # the default chunk holds about this much state (float64)
_CHUNKS_PER_THREAD = 4  # default chunks per worker thread: some balance, few tasks
# The local cluster's Dask settings (docs/distributed.md): Dask's MALLOC_TRIM_THRESHOLD_=65536 in the workers turns
# off glibc's adaptive mmap threshold, so every large temporary of the NumPy engine is mapped and faulted in afresh
# (1.5-1.7x the CPU time of the same run, measured); the workers' profiler samples their stacks every 10 ms.
_LOCAL_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                 "distributed.worker.profile.enabled": False}


def _dask():
    """The ``distributed`` package, or a DiffsolveError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise DiffsolveError("ds.distributed needs dask: pip install 'diffsolve[distributed]'") from None
    return distributed


@contextmanager
def connect(client=None, name: str = "client"):
    """``with connect(client) as c``: a :class:`distributed.Client` to run on.

    ``client``: a Client (used as it is), a scheduler address such as ``"tcp://host:8786"`` (connected, closed
    afterwards) or None: a :class:`distributed.LocalCluster` of one single-threaded process per core (Numba's
    threads too: ``NUMBA_NUM_THREADS=1``; no profiler, glibc's default malloc), closed afterwards.  ``name``: the
    parameter named in messages.
    """
    dd = _dask()
    import dask

    if isinstance(client, dd.Client):
        yield client
        return
    if client is None:
        with dask.config.set(_LOCAL_CONFIG):  # read by the nannies as the cluster starts
            cluster = dd.LocalCluster(processes=True, threads_per_worker=1, dashboard_address=":0",
                                      env={"NUMBA_NUM_THREADS": "1"})
        with cluster, dd.Client(cluster) as local:
            yield local
        return
    if not isinstance(client, str) or ":" not in client:
        cls = DiffsolveError if isinstance(client, str) else DiffsolveTypeError
        raise cls(f"{name} must be a scheduler address like 'tcp://host:8786' (the one `dask scheduler` prints), a "
                  f"distributed.Client, or None for a local cluster; got {plain(client)}")
    try:
        remote = dd.Client(client)
    except (OSError, ValueError) as exc:
        raise DiffsolveError(f"{name} {client!r}: cannot connect to a Dask scheduler there ({exc}); start one "
                             "(dask scheduler) or pass no address for a local cluster") from None
    with remote:
        yield remote


class _Payload:
    """A job serialised once (cloudpickle) that the workers unpickle as the job itself."""

    def __init__(self, data: bytes):
        self.data = data

    def __reduce__(self):
        import pickle

        return pickle.loads, (self.data,)


def _ship(client, job, named: dict):
    """A future of ``job`` held by every worker.  ``named``: the user's arguments inside the job, by parameter
    name, to say which one cannot be sent or loaded."""
    import cloudpickle

    try:
        data = cloudpickle.dumps(job)
    except Exception:
        for name, value in named.items():
            try:
                cloudpickle.dumps(value)
            except Exception as exc:
                raise DiffsolveError(
                    f"{name} cannot be sent to the Dask workers ({type(exc).__name__}: {exc}); got "
                    f"{plain(value)}: pass something picklable (a diffsolve target, a module-level function or a "
                    "model object without open files, locks or threads)") from None
        raise
    try:
        return client.scatter(_Payload(data), broadcast=True, hash=False)
    except Exception as exc:
        raise DiffsolveError(f"the Dask workers cannot load {', '.join(named)} ({type(exc).__name__}: {exc}); "
                             "they need this diffsolve version and every module the arguments come from "
                             "(for a module they lack: cloudpickle.register_pickle_by_value(module))") from None


def _positive(value, name, fix):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DiffsolveTypeError(f"{name} must be a positive integer, got {plain(value)}; {fix}")
    if value < 1:
        raise DiffsolveError(f"{name} must be a positive integer, got {plain(value)}; {fix}")
    return int(value)


# -- sample ----------------------------------------------------------------------------------------------------


def _sample_keywords() -> frozenset:
    """``ds.sample``'s own keywords (the rest of its keyword arguments are solver parameters)."""
    from .sampling import sample as local

    return frozenset(p.name for p in inspect.signature(local).parameters.values() if p.kind is p.KEYWORD_ONLY)


def _host(x):
    """A chunk's result as a NumPy array (a torch tensor is moved to the host)."""
    from .backends.arrays import torch_module

    return x.detach().cpu().numpy() if torch_module(x) is not None else np.asarray(x)


def _rows(value, lo, hi):
    """Rows lo:hi of an array or tensor as their own memory (a pickled torch view would carry its storage)."""
    from .backends.arrays import torch_module

    part = value[lo:hi]
    return part.clone() if torch_module(part) is not None else part


@dataclass(frozen=True)
class _Rows:
    """The per-sample inputs of one chunk: x_init rows, history rows, per-sample model_kwargs rows."""

    x: object = None
    history: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _SampleJob:
    """``ds.sample`` of one chunk of samples: rows ``lo:hi`` are samples ``sample_offset + lo ..``."""

    solver: object
    model: object
    schedule: object
    grid: object
    sample_offset: int
    options: dict

    def __call__(self, lo: int, hi: int, rows: _Rows | None) -> np.ndarray:
        from .sampling import sample as local

        kw = dict(self.options, sample_offset=self.sample_offset + lo)
        if rows is None:
            kw["n"] = hi - lo
        else:
            kw["x_init"] = rows.x
            if rows.history:
                kw["history"] = rows.history
            if rows.kwargs:
                kw["model_kwargs"] = {**(kw.get("model_kwargs") or {}), **rows.kwargs}
        return _host(local(self.solver, self.model, self.schedule, self.grid, **kw))


def _sample_chunk(job, lo, hi, rows):
    return job(lo, hi, rows)


def _check_out(out):
    """``out`` as (path, kind) with kind ``npy`` or ``zarr``, checked before any work; None stays None."""
    if out is None:
        return None
    if not isinstance(out, (str, os.PathLike)):
        raise DiffsolveTypeError(f"out must be a path ending in .npy or .zarr, got {plain(out)}; pass e.g. "
                                 "out='samples.npy'")
    path = Path(out)
    kind = path.suffix.lstrip(".")
    if kind not in ("npy", "zarr"):
        raise DiffsolveError(f"out must end in .npy (a NumPy file) or .zarr (a Zarr store), got {str(out)!r}; "
                             "pass e.g. out='samples.npy'")
    if kind == "zarr" and importlib.util.find_spec("zarr") is None:
        raise DiffsolveError(f"out={str(out)!r} is a Zarr store, which needs zarr: pip install zarr (or write a "
                             ".npy file)")
    parent = path.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise DiffsolveError(f"out={str(out)!r}: the directory {str(parent)!r} does not exist or is not "
                             "writable; create it first or pass another path")
    if kind == "npy" and path.is_dir():
        raise DiffsolveError(f"out={str(out)!r} is a directory; pass a file name ending in .npy")
    return str(path), kind


def _open_sink(target, shape, dtype, chunk):
    """Where the samples go: an array in memory, a .npy memmap or a Zarr array (chunks of ``chunk`` rows)."""
    if target is None:
        return np.empty(shape, dtype)
    path, kind = target
    if kind == "npy":
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    import zarr

    return zarr.open_array(path, mode="w", shape=shape, chunks=(chunk,) + shape[1:], dtype=dtype)


def _close_sink(sink, target):
    if target is None or target[1] == "zarr":
        return sink
    sink.flush()
    return np.load(target[0], mmap_mode="r")


def _length(value):
    try:
        return len(value)
    except TypeError:
        return None


@dataclass(frozen=True)
class _Inputs:
    """What a run's chunks are cut from: ``total`` samples of ``width`` values each, and the per-sample inputs
    (x_init, history, the model_kwargs entries named in batched_kwargs) split by rows."""

    total: int
    width: int
    x: object = None
    history: list = field(default_factory=list)
    batched: dict = field(default_factory=dict)

    def rows(self, lo, hi) -> _Rows | None:
        if self.x is None:
            return None
        return _Rows(_rows(self.x, lo, hi), [_rows(h, lo, hi) for h in self.history],
                     {k: _rows(v, lo, hi) for k, v in self.batched.items()})


def _inputs(n, model, x_init, history, model_kwargs, batched_kwargs) -> _Inputs:
    """The :class:`_Inputs` of ``sample``'s arguments, checked where the chunking depends on them (the rest is
    checked by ``ds.sample`` in the workers)."""
    names = [batched_kwargs] if isinstance(batched_kwargs, str) else list(batched_kwargs or ())
    if x_init is None:
        if history or names:
            raise DiffsolveError("history and batched_kwargs are split by the rows of x_init; pass x_init too")
        return _Inputs(_positive(n, "n", "pass n (the number of samples) or x_init"), getattr(model, "dim", 1))
    if getattr(x_init, "ndim", None) is None:
        x_init = np.asarray(x_init)
    if x_init.ndim < 1 or x_init.shape[0] < 1:
        raise DiffsolveError(f"x_init must be an array of shape (n, ...), got shape {tuple(x_init.shape)}; "
                             "for one sample use x[None]")
    total = int(x_init.shape[0])
    if n is not None and n != total:
        raise DiffsolveError(f"n={plain(n)} disagrees with x_init's batch size {total}; pass one of them")
    kwargs = model_kwargs if isinstance(model_kwargs, dict) else {}
    for name in names:
        if _length(kwargs.get(name)) != total:
            raise DiffsolveError(f"batched_kwargs names {name!r}, which must be a model_kwargs entry with one row "
                                 f"per sample ({total}), got {plain(kwargs.get(name))}; name per-sample entries "
                                 "only")
    return _Inputs(total, int(np.prod(x_init.shape[1:])), x_init, list(history), {k: kwargs[k] for k in names})


def _default_chunk(n, width, threads):
    """About ``_CHUNKS_PER_THREAD`` chunks per worker thread, none above ``_CHUNK_BYTES`` of float64 state."""
    cap = max(1, _CHUNK_BYTES // (8 * max(int(width), 1)))
    return max(1, min(math.ceil(n / (_CHUNKS_PER_THREAD * max(threads, 1))), cap))


def sample(solver, model, schedule, grid, *, n=None, client=None, chunk_size=None, out=None, x_init=None,
           history=None, sample_offset=0, progress=False, batched_kwargs=(), **options):
    """:func:`diffsolve.sample` on a Dask cluster, in chunks of ``chunk_size`` samples; the result equals one
    ``ds.sample(..., n=n)`` call bit for bit, whatever the chunking and the workers (docs/distributed.md).

    Chunk ``[lo, hi)`` is ``ds.sample(..., n=hi - lo, sample_offset=sample_offset + lo)``: noise and the prior
    are keyed by the global sample index, so a sample does not depend on its chunk.  ``x_init`` (and
    ``history``, and the ``model_kwargs`` entries named in ``batched_kwargs``, e.g. ``("y",)`` for per-sample
    labels) are split by rows.  ``model`` must be picklable (a target, a module-level function, a lambda, a torch
    module).  ``client``: see :func:`connect`.  ``chunk_size`` (default: about four chunks per worker thread, at
    most 64 MiB of state each).  Returns a NumPy array, or with ``out`` (a ``.npy`` path, or a ``.zarr`` store
    when zarr is installed) writes chunks as they complete and returns the file opened read-only (a memmap, or
    the Zarr array).  ``progress``: a bar over the samples done.  Other keywords go to ``ds.sample`` (``seed``,
    ``backend``, ``prediction``, ``dtype``, ``model_kwargs``, solver parameters); ``callback`` and
    ``save_every`` are refused (they would run inside the workers).
    """
    from .progress import Progress
    from .stepper import prepare_run

    for key in ("callback", "save_every"):
        if options.get(key) is not None:
            raise DiffsolveError(f"{key} is not supported by ds.distributed.sample (it would run in the workers); "
                                 "use ds.sample for recorded runs")
    if chunk_size is not None:
        chunk_size = _positive(chunk_size, "chunk_size", "pass e.g. chunk_size=10_000 or None (automatic)")
    target = _check_out(out)
    history = [] if history is None else list(history)
    params = {k: v for k, v in options.items() if k not in _sample_keywords()}
    run = prepare_run(solver, schedule, grid, seed=options.get("seed", 0), sample_offset=sample_offset,
                      history=len(history), final=options.get("final", "solver"), **params)
    inputs = _inputs(n, model, x_init, history, options.get("model_kwargs"), batched_kwargs)
    run.sample_index(inputs.total)  # the noise keys' bound, before any work
    if inputs.batched:  # the per-sample entries travel with their chunks
        options = dict(options, model_kwargs={k: v for k, v in options["model_kwargs"].items()
                                              if k not in inputs.batched})
    job = _SampleJob(solver, model, schedule, grid, sample_offset, options)
    with connect(client) as c:
        threads = sum(c.nthreads().values())
        size = chunk_size or _default_chunk(inputs.total, inputs.width, threads)
        spans = iter([(lo, min(lo + size, inputs.total)) for lo in range(0, inputs.total, size)])
        shipped = _ship(c, job, {"solver": solver, "model": model, "schedule": schedule, "grid": grid, **options})
        pending = {}

        def submit(span):
            rows = inputs.rows(*span)
            rows = None if rows is None else c.scatter(rows, hash=False)
            fut = c.submit(_sample_chunk, shipped, *span, rows, pure=False)
            pending[fut] = span, rows
            return fut

        sink = None
        try:
            done = _dask().as_completed([submit(s) for s in islice(spans, max(2 * threads, 2))])
            with Progress(inputs.total, f"{run.name} on dask", progress, unit="samples") as bar:
                for fut in done:
                    (lo, hi), _ = pending.pop(fut)
                    block = fut.result()
                    if sink is None:
                        sink = _open_sink(target, (inputs.total,) + block.shape[1:], block.dtype, size)
                    sink[lo:hi] = block
                    bar.update(hi - lo)
                    nxt = next(spans, None)
                    if nxt is not None:
                        done.add(submit(nxt))
        except BaseException:
            c.cancel(list(pending))  # the chunks still queued or running
            raise
    return _close_sink(sink, target)


# -- order studies ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OrderJob:
    """``ds.order_study`` on a subset of the step counts."""

    solver: object
    target: object
    schedule: object
    options: dict

    def __call__(self, steps):
        from .accuracy import order_study as local

        return local(self.solver, self.target, self.schedule, steps=steps, progress=False, **self.options)


def _order_group(job, steps):
    return job(steps)


def _step_groups(steps) -> list:
    """Step counts in groups of at least two (``ds.order_study`` needs two), each group a small count with a large
    one so that the groups cost alike; one group when they cannot be split (the local study validates them)."""
    if isinstance(steps, (str, bytes)):
        return [steps]
    try:
        counts = list(steps)
    except TypeError:
        return [steps]
    valid = all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in counts)
    if not valid or len(set(counts)) != len(counts) or len(counts) < 4:
        return [counts]
    counts = sorted(int(s) for s in counts)
    half = len(counts) // 2
    groups = [[counts[i], counts[-1 - i]] for i in range(half)]
    if len(counts) % 2:
        groups[-1].append(counts[half])
    return [sorted(g) for g in groups]


def _merge_studies(parts):
    """One :class:`~diffsolve.accuracy.OrderStudy` from studies of disjoint step counts: per-step lists joined in
    step order, every other field taken from the first."""
    steps = [s for p in parts for s in p.steps]
    order = np.argsort(steps, kind="stable")
    merged = {}
    for f in fields(parts[0]):
        values = [getattr(p, f.name) for p in parts]
        if all(isinstance(v, list) and len(v) == len(p.steps) for v, p in zip(values, parts)):
            joined = [x for v in values for x in v]
            merged[f.name] = [joined[i] for i in order]
    return replace(parts[0], **merged)


def order_study(solver, target, schedule, steps=(8, 16, 32, 64), *, client=None, progress=False, **options):
    """:func:`diffsolve.order_study` with its step counts spread over a Dask cluster: the result equals the local
    study (every point is computed by the local function; groups of two or more step counts per task).
    ``client``: see :func:`connect`; ``progress``: a bar over the step counts done; other keywords (``metric``,
    ``spacing``, ``exact_history``, grid options) go to ``ds.order_study``."""
    from .progress import Progress

    groups = _step_groups(steps)
    job = _OrderJob(solver, target, schedule, options)
    named = {"solver": solver, "target": target, "schedule": schedule, **options}
    with connect(client) as c:
        shipped = _ship(c, job, named)
        futures = [c.submit(_order_group, shipped, g, pure=False) for g in groups]
        parts = []
        try:
            with Progress(len(groups), "order study on dask", progress, unit="step-count groups") as bar:
                for fut in futures:
                    parts.append(fut.result())
                    bar.update(1)
        except BaseException:
            c.cancel(futures)
            raise
    return _merge_studies(parts)


# -- claims ----------------------------------------------------------------------------------------------------


def _claim(paper, name, quick):
    from .claims import experiments

    return experiments(paper)[name].run(quick)


def claims(paper: str, only=None, *, quick: bool = False, plots=None, as_json: bool = False, out=print,
           progress: bool = False, client=None) -> dict:
    """:func:`diffsolve.claims.run` with one task per experiment: the same results (each experiment is the local
    one), printed (markdown, or JSON at the end) and plotted in the order of ``only`` as they arrive.
    ``progress``: a count of the experiments done; ``client``: see :func:`connect`."""
    from .claims import run

    with connect(client) as c:
        futures = []

        def on_cluster(names):
            futures.extend(c.submit(_claim, paper, name, quick, pure=False) for name in names)
            return (fut.result() for fut in futures)

        try:
            return run(paper, only, quick=quick, plots=plots, as_json=as_json, out=out, progress=progress,
                       results_of=on_cluster)
        except BaseException:
            c.cancel(futures)
            raise
