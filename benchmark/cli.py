"""``python -m benchmark``: list, run, eval."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from benchmark.data import DataError, list_manifests, load_dataset

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "results"


def _add_data_args(parser: argparse.ArgumentParser, default_dataset: str | None = "demo") -> None:
    parser.add_argument("--dataset", default=default_dataset, help="dataset manifest name (see 'list')")
    parser.add_argument("--data-dir", help="folder with the official Multi-CPR files (or set PROSPER_BENCH_DATA)")
    parser.add_argument("--corpus", help="use this corpus file instead of the manifest's (e.g. the 2,987-passage pool)")
    parser.add_argument("--no-verify", action="store_true", help="accept files whose sha256 or row count differ")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list retrievers and datasets")

    run = sub.add_parser("run", help="index, search and evaluate retrievers; write versioned result files")
    run.add_argument("names", nargs="*", help="retriever names (see 'list')")
    run.add_argument("--all", action="store_true", help="run every registered retriever")
    _add_data_args(run)
    run.add_argument("--output", default=str(DEFAULT_OUTPUT), help="results folder (default: results/)")
    run.add_argument("--k", type=int, default=1000, help="hits per query (default 1000)")
    run.add_argument("--rebuild", action="store_true", help="rebuild indexes even when a cached one exists")

    bench = sub.add_parser("index-bench", help="benchmark the inverted index against Lucene, PISA and Seismic")
    bench.add_argument("--docs", type=int, nargs="+", default=[100_000, 1_000_000], help="collection sizes")
    bench.add_argument("--queries", type=int, default=500)
    bench.add_argument("--peers", nargs="*", default=["lucene", "pisa", "seismic"])
    bench.add_argument("--threads", type=int, default=2)
    bench.add_argument("--work-dir", help="scratch folder for the indexes (default: system temp)")
    bench.add_argument("--output", default=str(DEFAULT_OUTPUT))

    ev = sub.add_parser("eval", help="evaluate a TREC run file against a dataset's qrels")
    ev.add_argument("runfile")
    _add_data_args(ev)
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    from benchmark.registry import load_registry

    print("Retrievers:")
    for name, spec in load_registry().items():
        row = f"  [paper: {spec.paper_row}]" if spec.paper_row else ""
        print(f"  {name:<16} {spec.description}{row}")
    print("\nDatasets:")
    for manifest in list_manifests():
        label = "" if manifest.comparable_to_paper else f"  ({manifest.corpus_label}: not comparable with the paper)"
        print(f"  {manifest.name:<20} {manifest.description.split('. ')[0].split(': ')[0]}{label}")
    return 0


def _load(args: argparse.Namespace, with_train: bool):
    return load_dataset(args.dataset, data_dir=args.data_dir, corpus_path=args.corpus, with_train=with_train,
                        verify=not args.no_verify)


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.registry import load_registry
    from benchmark.runner import run_one

    registry = load_registry()
    names = list(registry) if args.all else args.names
    if not names:
        print("error: name one or more retrievers, or pass --all (see 'python -m benchmark list')", file=sys.stderr)
        return 2
    unknown = [n for n in names if n not in registry]
    if unknown:
        print(f"error: unknown retriever(s) {unknown}; known: {', '.join(registry)}", file=sys.stderr)
        return 2
    dataset = _load(args, with_train=True)
    for note in dataset.notes:
        print(f"[{dataset.name}] {note}")
    rows, failures = [], 0
    for name in names:
        try:
            path, payload = run_one(registry[name], dataset, Path(args.output), k=args.k,
                                    reuse_index=not args.rebuild)
        except ImportError as err:  # a missing optional requirement: skip with a clear message
            print(f"skipped {name}: missing requirement ({err})", file=sys.stderr)
            failures += 1
            continue
        m, c = payload["metrics"], payload["cost"]
        rows.append((name, m["MRR@10"], m["Hit@10"], m["Hit@1000"], c.get("flops"), c.get("latency_ms_p50"), path))
    _print_summary(dataset, rows)
    return 1 if failures and not rows else 0


def _print_summary(dataset, rows) -> None:
    print(f"\n{dataset.name} ({dataset.corpus_label}, {len(dataset.corpus):,} passages, {len(dataset.qrels):,} queries)")
    print(f"{'retriever':<16} {'MRR@10':>7} {'Hit@10':>7} {'Hit@1k':>7} {'FLOPS':>9} {'p50 ms':>7}  result")
    for name, mrr, h10, h1k, flops, p50, path in rows:
        flops_s = f"{flops:9.3f}" if flops is not None else f"{'-':>9}"
        p50_s = f"{p50:7.2f}" if p50 is not None else f"{'-':>7}"
        print(f"{name:<16} {mrr * 100:7.2f} {h10 * 100:7.2f} {h1k * 100:7.2f} {flops_s} {p50_s}  {path}")


def cmd_index_bench(args: argparse.Namespace) -> int:
    from benchmark.index_bench import IndexBenchConfig, markdown, run_index_bench, write_reports

    reports = []
    for n_docs in args.docs:
        cfg = IndexBenchConfig(n_docs=n_docs, n_queries=args.queries, peers=tuple(args.peers), threads=args.threads,
                               work_dir=args.work_dir)
        reports.append(run_index_bench(cfg))
        print(markdown(reports[-1:]))
    json_path, md_path = write_reports(reports, Path(args.output))
    print(f"wrote {json_path} and {md_path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from benchmark.evaluation import evaluate
    from benchmark.runfile import read_trec_run

    dataset = _load(args, with_train=False)
    metrics = evaluate(read_trec_run(Path(args.runfile)), dataset.qrels)
    for name, value in metrics.items():
        print(f"{name:<26}{value:.4f}" if isinstance(value, float) else f"{name:<26}{value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    for noisy in ("bm25s", "jieba", "sentence_transformers", "transformers", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    handlers = {"list": cmd_list, "run": cmd_run, "eval": cmd_eval, "index-bench": cmd_index_bench}
    try:
        return handlers[args.command](args)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
