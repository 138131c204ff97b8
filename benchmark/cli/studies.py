"""Commands that measure the suite itself: ``index-bench``, ``projection``, ``cost-growth``, ``spread``, ``choose``."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.cli.common import UsageError


def cmd_index_bench(args: argparse.Namespace) -> int:
    from benchmark.records.results import utc_stamp
    from benchmark.serving.bench_report import markdown, render, write_reports
    from benchmark.serving.index_bench import IndexBenchConfig, run_index_bench
    from benchmark.serving.workloads import profile_from_retriever, save_profile

    if args.render:
        for path in args.render:
            print(f"wrote {render(Path(path))}")
        return 0
    workloads = list(args.workload)
    if args.fit_from:
        profile = profile_from_retriever(args.fit_from, args.dataset, args.data_dir)
        path = save_profile(profile, Path(args.output) / "index-bench" / "workloads" /
                            f"{args.fit_from}-{args.dataset}.npz")
        print(f"fitted {profile['name']}: {profile['fitted_on']} -> {path}")
        workloads.append(f"fitted:{path}")
    reports, stamp = [], utc_stamp()
    for workload in workloads:
        for n_docs in args.docs:
            cfg = IndexBenchConfig(n_docs=n_docs, n_queries=args.queries, workload=workload, ks=tuple(args.ks),
                                   peers=tuple(args.peers), work_dir=args.work_dir)
            reports.append(run_index_bench(cfg))
            print(markdown(reports[-1:]))
            json_path, md_path = write_reports(reports, Path(args.output), stamp)  # every finished report kept
    print(f"wrote {json_path} and {md_path}")
    return 0


def cmd_projection(args: argparse.Namespace) -> int:
    from benchmark.serving.projection import ProjectionConfig, markdown, run_projection

    cfg = ProjectionConfig(measure_model=args.measure_model, measure_batch=args.measure_batch, device=args.device,
                           gpu_tflops=args.gpu_tflops, mfu=args.mfu)
    path, payload = run_projection(cfg, Path(args.output))
    print(markdown(payload))
    print(f"\nwrote {path}")
    return 0


def cmd_cost_growth(args: argparse.Namespace) -> int:
    from benchmark.serving.cost_growth import markdown, write

    results = Path(args.results)
    try:
        path, rows = write(results, args.dataset, Path(args.output) if args.output else results / "cost-growth")
    except FileNotFoundError as err:
        raise UsageError(f"{err}; run e.g. 'python -m benchmark run bm25-bert --dataset scale-10k' first") from None
    print(markdown(rows))
    print(f"\nwrote {path}")
    return 0


def cmd_spread(args: argparse.Namespace) -> int:
    from benchmark.records.spread import measure, resummarize, write
    from benchmark.registry import load_registry

    if args.name not in load_registry():
        raise UsageError(f"unknown retriever {args.name!r}")
    try:
        summary = (resummarize(args.name, args.dataset, Path(args.output)) if args.resummarize else
                   measure(args.name, args.dataset, Path(args.output), args.seeds, args.kernels, args.seed_key,
                           args.data_dir, args.native))
    except ValueError as err:
        raise UsageError(str(err)) from None
    for key, run in summary["runs"].items():
        print(f"{key:<14} {run['capability'] or '-':<8} " + " ".join(f"{m} {v:.4f}" for m, v in run["metrics"].items()))
    print(f"tolerance {summary['tolerance']} ({summary['rule']})")
    print(f"wrote {write(summary, Path(args.output))}")
    return 0


def cmd_choose(args: argparse.Namespace) -> int:
    from benchmark.records.tuning import choose, write

    try:
        choice = choose(Path(args.results), args.dataset, args.name, args.knob, args.tolerance)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(f"{'value':>10} {'validation MRR':>15} {'terms/passage':>14} {'terms/query':>12}")
    for point in choice["points"]:
        mrr = point["validation_mrr"]
        print(f"{point['value']!s:>10} {'-' if mrr is None else f'{mrr:.4f}':>15} "
              f"{point['doc_terms_mean'] or 0:14.1f} {point['query_terms_mean'] or 0:12.1f}")
    print(f"chosen {args.knob} = {choice['chosen']} ({choice['rule']})")
    print(f"wrote {write(choice, Path(args.output))}")
    return 0
