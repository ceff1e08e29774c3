"""Command line: ``diffsolve solvers | sample | derive | order | claims`` (docs/architecture.md); every command
has ``--json``."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from .errors import DiffsolveError

__all__ = ["main"]


def _schedule(args):
    from .schedules import Schedule, get_schedule

    if args.alpha or args.sigma:
        if not (args.alpha and args.sigma):
            raise DiffsolveError("pass both --alpha and --sigma for a user schedule")
        try:
            return Schedule.from_expr(alpha=args.alpha, sigma=args.sigma)
        except DiffsolveError as exc:
            raise DiffsolveError(f"--alpha {args.alpha!r} / --sigma {args.sigma!r}: {exc}") from None
    return get_schedule(args.schedule or "vp-linear")


def _steps_list(text):
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise DiffsolveError(f"--steps must be a comma-separated list of integers like 8,16,32, got {text!r}") from None
    return steps


def _param_value(text):
    """A number, a comma-separated list of numbers (one per segment, e.g. tau=0.3,0.2,0.1) or a word (e.g.
    energy=exact, predictor=ddim)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        if len(parts) > 1 or not parts[0].replace("-", "").replace("_", "").isalnum():
            raise
        return parts[0]
    return numbers[0] if len(numbers) == 1 else numbers


def _json_param(value):
    """A parameter value for JSON output: infinities as the string 'inf' (JSON has none), sequences as lists."""
    if isinstance(value, (tuple, list)):
        return [_json_param(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not np.isfinite(value):
        return str(value)
    return value


def _params(items):
    """Runtime solver parameters from repeated ``--param KEY=VALUE`` (e.g. eta=0.5, c=inf, energy=exact,
    tau=0.3,0.2)."""
    out = {}
    for item in items or ():
        key, eq, value = item.partition("=")
        try:
            if not eq or not value.strip() or not key.strip():
                raise ValueError
            out[key.strip()] = _param_value(value)
        except ValueError:
            raise DiffsolveError(f"--param must look like KEY=VALUE with a number, a list of numbers or a word "
                                 f"(e.g. eta=0.5, c=inf, energy=exact, tau=0.3,0.2), got {item!r}") from None
    return out


def _solver(name, params):
    from .solvers import get_solver

    return get_solver(name.strip(), **params)


def _dask(args):
    """``--dask [ADDRESS]``: a context giving a distributed.Client (a LocalCluster without an address), or None
    when the option is absent (run here)."""
    if args.dask is None:
        from contextlib import nullcontext

        return nullcontext()
    from .distributed import connect

    return connect(args.dask or None, "--dask")


def _on(client, local, name):
    """``local``, or on a ``--dask`` cluster the ``ds.distributed`` function ``name`` bound to ``client``."""
    if client is None:
        return local
    from functools import partial

    from . import distributed

    return partial(getattr(distributed, name), client=client)


def _output_file(path, flag, suffix=""):
    """Check before any work that ``path`` (with ``suffix`` appended as NumPy/matplotlib would) can be written;
    returns the path that will be written."""
    import os
    from pathlib import Path

    if Path(path).is_dir() or str(path).endswith(("/", os.sep)):
        raise DiffsolveError(f"{flag} {path!r} is a directory; pass a file name (e.g. {flag} samples{suffix})")
    out = Path(path if not suffix or str(path).endswith(suffix) else f"{path}{suffix}")
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise DiffsolveError(f"{flag} {path!r} is a directory; pass a file name (e.g. {flag} samples{suffix})")
    if not parent.is_dir():
        raise DiffsolveError(f"{flag} {path!r}: the directory {str(parent)!r} does not exist; create it first")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise DiffsolveError(f"{flag} {path!r}: {str(out)!r} is not writable; pass a path you can write")
    return str(out)


def _output_dir(path, flag):
    """Check before any work that the directory ``path`` exists (or can be created) and is writable."""
    import os
    from pathlib import Path

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise DiffsolveError(f"{flag} {path!r} is a file, not a directory; pass a directory")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise DiffsolveError(f"{flag} {path!r}: {str(probe)!r} is not a writable directory; pass one you can write")
    return str(out)


def _print_table(rows, columns):
    """``rows`` (dicts) as a plain text table of ``columns`` (tabulate's "simple" format; cells printed as given)."""
    from tabulate import tabulate

    print(tabulate([[r.get(c, "") for c in columns] for r in rows], headers=columns, tablefmt="simple",
                   disable_numparse=True, missingval="-"))


def cmd_solvers(args):
    from .solvers import list_solvers
    from .solvers.registry import _PATTERNS

    rows = list_solvers()
    if args.json:
        print(json.dumps({"solvers": rows, "patterns": [ex for _, _, ex in _PATTERNS]}, indent=2))
        return 0
    short = [{**r, "reference": r["reference"][:48] + ("..." if len(r["reference"]) > 48 else ""),
              "order": "-" if r["order"] is None else f"{r['order']}{'?' if r['uncertain'] else ''}"} for r in rows]
    _print_table(short, ["name", "variant", "order", "strong_order", "stochastic", "nfe_per_step", "prediction", "reference"])
    print("\norder: ODE global order, or weak order for stochastic solvers ('?': measured, not proven)")
    print("Langevin samplers (order -): nfe_per_step is per inner iteration (pc-song: per grid step); their NFE is "
          "a budget set by their parameters")
    if _PATTERNS:
        print("\nparameterised names: " + ", ".join(ex for _, _, ex in _PATTERNS))
    return 0


def _sliced_w1(x, y, seed=0, projections=64, block=2):
    """Average 1-D Wasserstein-1 distance over random directions (equal sample sizes), ``block`` directions at a
    time so that the report never holds more than a few copies of the samples (memory: docs/benchmarks.md)."""
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((projections, x.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    total = 0.0
    for lo in range(0, projections, block):
        px, py = x @ dirs[lo:lo + block].T, y @ dirs[lo:lo + block].T
        px.sort(axis=0)
        py.sort(axis=0)
        px -= py
        total += float(np.abs(px, out=px).sum())
    return total / (projections * x.shape[0])


def cmd_sample(args):
    from .grids import time_grid
    from .sampling import sample
    from .program import Segment
    from .solvers.registry import trim_final
    from .targets import Gaussian, from_spec

    out = _output_file(args.out, "--out", ".npy") if args.out else None  # before any work
    sch = _schedule(args)
    target = from_spec(args.target)
    grid = time_grid(sch, args.steps, args.spacing, to_zero=args.to_zero)
    solver = _solver(args.solver, _params(args.param))
    with _dask(args) as client:
        start = time.perf_counter()
        x = _on(client, sample, "sample")(solver, target, sch, grid, n=args.n, seed=args.seed, backend=args.backend,
                                          progress=not args.quiet, final=args.final)
        elapsed = time.perf_counter() - start
    grid = trim_final(sch, grid, args.final)  # final="none" ends at the last positive sigma
    t_end = float(grid[-1])
    ref = target.sample(args.n, seed=args.seed + 1, t=t_end, schedule=sch)
    ref2 = target.sample(args.n, seed=args.seed + 2, t=t_end, schedule=sch)
    report = {
        "solver": args.solver, "params": {k: _json_param(v) for k, v in zip(solver.param_names, solver.params)}, "schedule": sch.name,
        "spacing": args.spacing, "steps": args.steps,
        "target": args.target, "n": args.n, "backend": args.backend, "seed": args.seed,
        "t_start": float(grid[0]), "t_end": t_end, "seconds": elapsed,
        "mean_abs_error": float(np.max(np.abs(x.mean(0) - ref.mean(0)))),
        "sliced_w1_to_target": _sliced_w1(x, ref),
        "sliced_w1_between_exact_samples": _sliced_w1(ref2, ref),
        "mean_log_density": float(np.mean(target.logpdf(x, t_end, sch))),
        "mean_log_density_exact": float(np.mean(target.logpdf(ref, t_end, sch))),
    }
    if isinstance(target, Gaussian) and all(isinstance(seg, Segment) for seg in solver.program(sch, grid).segments):
        from .accuracy import exact_error  # exact laws of table programs (a Langevin chain has none)

        report["exact_w2_of_output_law"] = exact_error(solver, target, sch, grid, "w2", exact_history=False,
                                                       final=args.final)
    if out:
        np.save(out, x)
        report["out"] = out
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"sampled {args.n} x {target.dim}-d points of {args.target} with {args.solver} on {sch.name} "
          f"({args.steps} {args.spacing} steps, t {grid[0]:.4g} -> {t_end:.4g}, backend {args.backend}) in {elapsed:.2f} s")
    print(f"  sliced W1 to exact samples of the target : {report['sliced_w1_to_target']:.4f}"
          f"   (two exact sample sets differ by {report['sliced_w1_between_exact_samples']:.4f})")
    print(f"  mean log-density under the target        : {report['mean_log_density']:.4f}"
          f"   (exact samples: {report['mean_log_density_exact']:.4f})")
    print(f"  largest error of the sample mean         : {report['mean_abs_error']:.4f}")
    if "exact_w2_of_output_law" in report:
        print(f"  exact W2 of the output law to the target : {report['exact_w2_of_output_law']:.4e}")
    if out:
        print(f"  samples saved to {out}")
    return 0


def cmd_order(args):
    from .accuracy import order_study, plot_studies
    from .targets import from_spec

    if args.plot:
        _output_file(args.plot, "--plot")
    sch = _schedule(args)
    target = from_spec(args.target)
    steps = _steps_list(args.steps)
    params = _params(args.param)
    with _dask(args) as client:
        study = _on(client, order_study, "order_study")
        studies = [study(_solver(name, params), target, sch, steps=steps, metric=args.metric, spacing=args.spacing,
                         progress=not args.quiet)
                   for name in args.solver.split(",") if name.strip()]
    if args.plot:
        plot_studies(studies, args.plot)
    if args.json:
        print(json.dumps({"target": args.target, "schedule": sch.name, "studies": [s.to_dict() for s in studies],
                          "plot": args.plot}, indent=2))
        return 0
    for st in studies:
        print(st.table())
        print()
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def cmd_derive(args):
    from .cache import copy_module
    from .derive import derive
    from .solvers.modules import tableau_module

    if args.out:
        _output_dir(args.out, "--out")
    sch = _schedule(args) if (args.alpha or args.sigma or args.schedule) else None
    start = time.perf_counter()
    solver = derive(args.family, args.order, args.prediction, args.sde, args.variant, schedule=sch,
                    progress=not args.quiet)
    elapsed = time.perf_counter() - start
    # the coefficients as the generated module of the full method recorded them at generation time (no re-derivation)
    loaded = tableau_module(*solver.extra["key"])
    coefficients = dict(loaded.COEFFICIENTS_LATEX if args.latex else loaded.COEFFICIENTS)
    printer = _latex_printer() if args.latex else str  # the schedule's expressions below
    module = solver.extra.get("module")
    if args.out:
        module = str(copy_module(loaded, args.out))
    report = {"family": args.family, "name": solver.name, "variant": solver.variant, "prediction": solver.prediction,
              "sde": args.sde, "order": solver.order, "strong_order": solver.strong_order,
              "nfe_per_step": solver.nfe_per_step, "stages": solver.stages, "history": solver.history,
              "noises": solver.noises, "params": dict(zip(solver.param_names, solver.params)), "module": module,
              "seconds": elapsed, "symbols": "h: log-SNR step; r_j: history ratios; la_p, ls_p: log alpha, log sigma "
              "at node p (0 = start, S = end); psi_q / psi~_q: exponential moment functions "
              "(docs/algorithms/exponential_integrators.md §3.2)",
              "coefficients": coefficients}
    if sch is not None:
        report["schedule"] = {"name": sch.name}
        c = getattr(sch, "calculus", None)  # expression schedules; the discrete one is a table
        if c is not None:
            inverse = printer(c.t_of_lam) if c.t_of_lam is not None else "Newton solve with the derived dlam/dt"
            report["schedule"].update({"lam(t)": printer(c.lam), "t(lam)": inverse, "f(t)": printer(c.f),
                                       "g2(t)": printer(c.g2)})
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{solver.name} ({solver.variant}, {solver.prediction} prediction{', SDE' if args.sde else ''}): declared order "
          f"{solver.order}, {solver.nfe_per_step} NFE/step, S={solver.stages} M={solver.history} Q={solver.noises}")
    print(f"module: {module}  ({elapsed:.2f} s)")
    for key, value in coefficients.items():
        print(f"  {key} = {value}")
    for key, value in report.get("schedule", {}).items():
        print(f"  schedule {key}: {value}")
    return 0


def cmd_claims(args):
    from .claims import PAPERS, experiments, run

    if args.list:
        for paper in PAPERS if args.paper is None else [args.paper]:
            for name, exp in experiments(paper).items():
                print(f"{paper:12s} {name:14s} {exp.summary}")
        return 0
    if args.paper is None:
        raise DiffsolveError(f"name a paper: diffsolve claims {{{','.join(PAPERS)}}} (or --list)")
    if args.plots:
        _output_dir(args.plots, "--plots")
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    with _dask(args) as client:
        _on(client, run, "claims")(args.paper, only=only, quick=args.quick, plots=args.plots, as_json=args.json,
                                   progress=not args.quiet)
    return 0


def _latex_printer():
    import sympy as sp

    return sp.latex


def _common(p, sched=True):
    p.add_argument("--json", action="store_true", help="machine-readable output")
    if sched:
        p.add_argument("--schedule", default="vp-linear", help="catalog schedule name (default vp-linear)")
        p.add_argument("--alpha", help="user schedule alpha(t) expression (with --sigma)")
        p.add_argument("--sigma", help="user schedule sigma(t) expression (with --alpha)")
        p.add_argument("--spacing", default="logsnr", help="time, logsnr (default), karras, quadratic")
        _quiet(p)


def _quiet(p):
    p.add_argument("-q", "--quiet", "--no-progress", action="store_true", dest="quiet",
                   help="no progress on stderr (else a bar on a terminal, a line every 30 s in a log; "
                        "DIFFSOLVE_PROGRESS=0|1 overrides: never | always a bar)")


def _dask_option(p):
    p.add_argument("--dask", nargs="?", const="", metavar="ADDRESS",
                   help="run on a Dask cluster (docs/distributed.md): a local one of processes, or the scheduler at "
                        "ADDRESS (tcp://host:8786); after the positional arguments")


def build_parser():
    from .claims import PAPERS, durations
    from .solvers.registry import FINALS

    parser = argparse.ArgumentParser(prog="diffsolve", description="diffusion samplers derived by SymPy, compiled by Numba")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("solvers", help="list registered solvers")
    _common(p, sched=False)
    p.set_defaults(func=cmd_solvers)
    p = sub.add_parser("sample", help="sample a target and report the distance to it")
    p.add_argument("--solver", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--target", required=True, help="gaussian:d=16 or gmm:d=2,k=8,seed=0 (options scale=, var=)")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="save samples to FILE.npy")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="solver parameter (repeatable), e.g. eta=0.5")
    p.add_argument("--to-zero", action="store_true",
                   help="end the grid with one more step, to sigma = 0 (the grid's steps include it)")
    p.add_argument("--final", choices=FINALS, default="solver",
                   help="how a grid ending at sigma = 0 takes its last step: solver (default; its own step), "
                        "denoise (one denoising call) or none (stop at the last positive sigma)")
    _common(p)
    _dask_option(p)
    p.set_defaults(func=cmd_sample)
    p = sub.add_parser("derive", help="derive (or load) a solver of any order; print its coefficients")
    p.add_argument("family", help="dpmpp-multistep, dpm-solver-multistep, dpmpp-singlestep, dpm-solver-singlestep")
    p.add_argument("--order", type=int, required=True)
    p.add_argument("--prediction", choices=["data", "eps"], help="default: the family's parameterisation")
    p.add_argument("--sde", action="store_true", help="reverse-SDE (eta) version")
    p.add_argument("--variant", default="exact", help="exact (default) or published")
    p.add_argument("--latex", action="store_true", help="print coefficients as LaTeX")
    p.add_argument("--out", help="also write a copy of the generated module into this directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _quiet(p)
    p.add_argument("--schedule", help="catalog schedule whose derived quantities to show")
    p.add_argument("--alpha", help="user schedule alpha(t) (with --sigma)")
    p.add_argument("--sigma", help="user schedule sigma(t) (with --alpha)")
    p.set_defaults(func=cmd_derive)
    p = sub.add_parser("order", help="measure empirical orders on exact Gaussian laws")
    p.add_argument("--solver", required=True, help="one or more names, comma-separated")
    p.add_argument("--target", required=True)
    p.add_argument("--steps", default="8,16,32,64")
    p.add_argument("--metric", default="w2", help="w2 (default), kl, tv-bound, hellinger")
    p.add_argument("--plot", help="write a log-log PNG")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="solver parameter (repeatable), e.g. c=inf")
    _common(p)
    _dask_option(p)
    p.set_defaults(func=cmd_order)
    p = sub.add_parser("claims", help="regenerate the claim-vs-measured tables (and plots) of docs/papers",
                       epilog=durations(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paper", nargs="?", help=", ".join(PAPERS))
    p.add_argument("--only", help="comma-separated experiment names (see --list)")
    p.add_argument("--quick", action="store_true", help="the reduced grids of the tests (durations below)")
    p.add_argument("--plots", help="write a log-log PNG per experiment into this directory")
    p.add_argument("--list", action="store_true", help="list the experiments")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _quiet(p)
    _dask_option(p)
    p.set_defaults(func=cmd_claims)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DiffsolveError as exc:  # bad input: one line, no traceback (exit code 2, like argparse's usage errors)
        print(f"diffsolve {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the command writes, after the checks made before any work (e.g. disk full)
        print(f"diffsolve {args.command}: error: cannot write {exc.filename or ''}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"diffsolve {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
