"""Commands over result files: ``eval`` (an external run), ``fuse``, ``compare``, ``report``, ``plot``, ``check``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from benchmark.cli.common import UsageError, load_data, refuse_output, unknown_datasets
from benchmark.data.datasets import load_dataset
from benchmark.data.files import DataError


def cmd_eval(args: argparse.Namespace) -> int:
    from benchmark.evaluation.measures import evaluate_with_per_query
    from benchmark.evaluation.runfile import read_trec_run
    from benchmark.records.results import ResultWriteError
    from benchmark.records.rows import own_name_problem
    from benchmark.registry import load_registry
    from benchmark.runs.external import check_run, external_result

    path = Path(args.runfile)
    if not path.is_file():
        raise UsageError(f"run file {path} does not exist")
    if args.name is not None:
        problem = own_name_problem(args.name, load_registry())
        if problem:
            raise UsageError(problem)
        refuse_output(Path(args.output))
    dataset = load_data(args, with_train=False)
    run = read_trec_run(path)
    for warning in check_run(run, dataset, path, args.min_coverage):
        print(f"warning: {warning}", file=sys.stderr)
    metrics, per_query = evaluate_with_per_query(run, dataset.qrels)
    for name, value in metrics.items():
        print(f"{name:<34} {value:.4f}" if isinstance(value, float) else f"{name:<34} {value}")
    if args.name:
        try:
            written = external_result(path, run, dataset, metrics, per_query, args.name, Path(args.output))
        except ResultWriteError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"wrote {written}")
    return 0


def cmd_fuse(args: argparse.Namespace) -> int:
    from benchmark.records.rows import own_name_problem
    from benchmark.registry import load_registry
    from benchmark.runs.fusion import fuse_rows

    if args.dataset is None:
        raise UsageError("fuse needs --dataset")
    if len(args.rows) < 2:
        raise UsageError("fuse needs at least two rows")
    problem = None if args.name is None else own_name_problem(args.name, load_registry())
    if problem:
        raise UsageError(problem)
    output = Path(args.output or args.results)
    refuse_output(output)
    dataset = load_data(args, with_train=False)
    try:
        path, payload = fuse_rows(Path(args.results), dataset, args.rows, args.method, output, args.name)
    except ValueError as err:  # SelectionError is one
        raise UsageError(str(err)) from None
    m = payload["metrics"]
    print(f"{payload['retriever']['name']}: MRR@10 {m['MRR@10'] * 100:.2f}  nDCG@10 {m['nDCG@10'] * 100:.2f}  "
          f"Hit@1000 {m['Hit@1000'] * 100:.2f}")
    for fold in payload["fusion"]["params_per_fold"]:
        print(f"  fold {fold['fold']}: {fold['params']} (chosen on {fold['tuned_on_queries']} other queries)")
    print(f"wrote {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from benchmark.evaluation.significance import render
    from benchmark.report.comparison import command_line, compare, write

    try:
        comparison = compare(Path(args.results), args.dataset, args.rows, args.metric, args.against)
    except ValueError as err:  # SelectionError too: a row without a current result, a file that is not one
        raise UsageError(str(err)) from None
    for metric in args.metric:
        print(render([c for c in comparison.comparisons if c.metric == metric]) + "\n")
    for name, pick in comparison.selected.items():
        print(f"{name}: {pick.path}" + (f" ({pick.note})" if pick.note else ""))
    if args.json:
        command = command_line(args.dataset, args.rows, args.metric, args.against, args.json)
        try:
            print(f"wrote {write(comparison, Path(args.results), Path(args.json), command)}")
        except OSError as err:
            raise UsageError(f"could not write {args.json}: {err.strerror or err} (the comparisons are printed above)"
                             ) from None
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark.report.markdown import write_report
    from benchmark.report.readme import write_readme

    results = Path(args.results)
    problem = unknown_datasets(results, args.dataset)
    if problem:
        raise UsageError(problem)
    path = write_report(results, Path(args.out) if args.out else results / "REPORT.md", args.dataset)
    print(f"wrote {path} and {path.with_name('index.html')}")
    readme = write_readme(results)
    if readme is not None:
        print(f"refreshed the tables of {readme}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from benchmark.records.results import result_datasets
    from benchmark.report.plot import plot_tradeoff

    results = Path(args.results)
    problem = unknown_datasets(results, args.dataset)
    if problem:
        raise UsageError(problem)
    datasets = args.dataset or result_datasets(results)
    written = [p for d in datasets if (p := plot_tradeoff(results, d, Path(args.out) if args.out else results / "plots"))]
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"error: no results to plot under {results} for {datasets or 'any dataset'}", file=sys.stderr)
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from benchmark.records.leaderboard import LEADERBOARD_FILE, LeaderboardError, load_leaderboard, run_check
    from benchmark.registry import load_registry
    from benchmark.runs.runner import run_one
    from retrievers.resources.cache import temporary_cache

    registry = load_registry()
    try:
        board = load_leaderboard(Path(args.leaderboard) if args.leaderboard else LEADERBOARD_FILE, set(registry))
    except LeaderboardError as err:
        raise UsageError(str(err)) from None
    known = list(dict.fromkeys(e.dataset for e in board.entries))
    unknown = [d for d in args.dataset or [] if d not in known]
    if unknown:
        raise UsageError(f"the leaderboard has no entries for {unknown}; it has: {', '.join(known)}")
    datasets = args.dataset or known
    loaded: dict[str, object] = {}

    def load_ok(name: str) -> str | None:
        try:
            loaded[name] = load_dataset(name, data_dir=args.data_dir, with_train=True, verify=not args.no_verify)
        except DataError as err:
            return f"{'FAIL' if args.require_data else 'skipped'}: {err}"
        return None

    def rerun(entry, output: Path) -> dict:
        _, payload = run_one(registry[entry.retriever], loaded[entry.dataset], output)
        return payload

    cache = contextlib.nullcontext() if args.reuse_cache else temporary_cache("prosper-bench-check-cache-")
    with cache:
        counts = run_check(board, datasets, Path(args.results), rerun, registry, load_ok,
                           Path(args.output) if args.output else None, require_results=args.require_data)
    stale = strict_findings(Path(args.results), datasets) if args.strict else []
    return 1 if counts["fail"] or stale else 0


def strict_findings(results: Path, datasets: list[str]) -> list[tuple]:
    """``check --strict``: every stale current result of the datasets checked, one line each on stdout."""
    from benchmark.records.staleness import stale_results

    found = stale_results(results, [d for d in datasets if (results / d).is_dir()])
    for dataset, row, path, why in found:
        print(f"[STALE] {dataset}/{row}: {why} ({path.name})")
    print(f"--strict: {len(found)} stale result(s)" + (": rerun them, or declare a neutral change with evidence"
                                                       if found else ""))
    return found
