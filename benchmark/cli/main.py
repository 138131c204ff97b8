"""``python -m benchmark``: list, run, eval, compare, tradeoff, plot, report, check, explain, index-bench."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
from pathlib import Path

from benchmark import REPO_ROOT
from benchmark.data.datasets import DataError, list_manifests, load_dataset
from benchmark.records.rows import DEFAULT_K, meaningful_overrides, row_name
from benchmark.registry import ConfigError, check_overrides
from retrievers.resources.artefacts import ArtefactCorrupt
from retrievers.resources.jvm import JavaUnavailable

DEFAULT_OUTPUT = REPO_ROOT / "results"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_set_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                        help="override a config field for this run, e.g. --set train.epochs=1 --set lfw_query=64")


def _add_data_args(parser: argparse.ArgumentParser, default_dataset: str | None = "demo") -> None:
    parser.add_argument("--dataset", default=default_dataset, help="dataset manifest name (see 'list')")
    parser.add_argument("--data-dir", help="folder with the official Multi-CPR files (or set PROSPER_BENCH_DATA)")
    parser.add_argument("--corpus", help="use this corpus file instead of the manifest's (e.g. the 2,987-passage pool)")
    parser.add_argument("--no-verify", action="store_true", help="accept files whose sha256 or row count differ")
    parser.add_argument("--no-download", action="store_true",
                        help="never download official files (also: PROSPER_BENCH_OFFLINE=1 or HF_HUB_OFFLINE=1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list retrievers and datasets")

    run = sub.add_parser("run", help="index, search and evaluate retrievers; write versioned result files")
    run.add_argument("names", nargs="*", help="retriever names (see 'list')")
    run.add_argument("--all", action="store_true", help="run every registered retriever")
    run.add_argument("--name", help="file and report the result under this row name (one retriever); default: the "
                                    "registered name, or one derived from --set values that change results")
    own = run.add_argument_group("your own model (with a template: dense, sparse-mlm, sparse-causal; or any row)")
    own.add_argument("--model-id", help="Hugging Face id of the weights (Hub when online, else the local cache)")
    own.add_argument("--model-path", help="a folder written by save_pretrained / sentence-transformers")
    own.add_argument("--pooling", choices=("mean", "cls", "max", "last"), help="how token vectors become one")
    own.add_argument("--query-prefix", help="prepended to every query (e.g. 'query: ' or an instruction)")
    own.add_argument("--passage-prefix", help="prepended to every passage (e.g. 'passage: ')")
    _add_data_args(run)
    run.add_argument("--output", default=str(DEFAULT_OUTPUT), help="results folder (default: results/)")
    run.add_argument("--k", type=_positive_int, default=1000, help="hits per query (default 1000)")
    run.add_argument("--rebuild", action="store_true", help="rebuild indexes even when a cached one exists")
    run.add_argument("--allow-scratch", action="store_true",
                     help="on a dataset comparable with the paper, train a scratch model when the pretrained weights "
                          "are missing (default there: refuse; result files record which it was)")
    _add_set_arg(run)

    bench = sub.add_parser("index-bench", help="benchmark the inverted index against Lucene, PISA, Seismic and BMP")
    bench.add_argument("--docs", type=int, nargs="+", default=[100_000, 1_000_000], help="collection sizes")
    bench.add_argument("--queries", type=int, default=300,
                       help="evaluation queries (as many tuning queries again, disjoint; default 300)")
    bench.add_argument("--workload", nargs="+", default=["synthetic"],
                       help="synthetic, and/or fitted:PROFILE.npz (see --fit-from)")
    bench.add_argument("--fit-from", metavar="RETRIEVER",
                       help="fit a workload profile to a trained sparse retriever's vectors on --dataset, write it "
                            "under <output>/index-bench/workloads/ and add it to --workload")
    bench.add_argument("--dataset", default="multicpr-ecom-pool", help="dataset for --fit-from")
    bench.add_argument("--data-dir", help="folder with the official Multi-CPR files (or set PROSPER_BENCH_DATA)")
    bench.add_argument("--peers", nargs="*", default=["lucene", "pisa", "seismic", "bmp"],
                       help="peer engines (pip install -e '.[bench]')")
    bench.add_argument("--ks", type=_positive_int, nargs="+", default=[10, 1000])
    bench.add_argument("--work-dir", help="scratch folder for the indexes (default: system temp)")
    bench.add_argument("--render", nargs="+", metavar="RESULT.json",
                       help="rewrite these result files' markdown (goals table first) and figures from their rows; "
                            "runs nothing")
    bench.add_argument("--output", default=str(DEFAULT_OUTPUT))

    growth = sub.add_parser("cost-growth", help="per-stage time and peak memory against corpus size (scale-* results)")
    growth.add_argument("--dataset", nargs="+", default=["scale-10k", "scale-100k", "scale-1m"])
    growth.add_argument("--results", default=str(DEFAULT_OUTPUT))
    growth.add_argument("--output", help="folder for the summary (default: <results>/cost-growth)")
    proj = sub.add_parser("projection", help="measure PROSPER's training/encoding cost small, project Qwen2.5-3B on GPUs")
    proj.add_argument("--measure-model", default="Qwen/Qwen2.5-0.5B", help="architecture to measure here")
    proj.add_argument("--measure-batch", type=_positive_int, default=8)
    proj.add_argument("--device", default="auto")
    proj.add_argument("--gpu-tflops", type=float, default=989.0, help="assumed dense bf16 TFLOPS of one GPU (H100)")
    proj.add_argument("--mfu", type=float, default=0.40, help="assumed model-FLOPs utilisation")
    proj.add_argument("--output", default=str(DEFAULT_OUTPUT))

    ev = sub.add_parser("eval", help="evaluate a TREC run file against a dataset's qrels")
    ev.add_argument("runfile")
    ev.add_argument("--min-coverage", type=float, default=0.5,
                    help="fail when the run has results for fewer than this share of the queries (default 0.5)")
    ev.add_argument("--name", help="also write a result file (marked external) under this row name, so report, "
                                   "compare and the page list the run")
    ev.add_argument("--output", default=str(DEFAULT_OUTPUT), help="results folder for --name (default: results/)")
    _add_data_args(ev)

    trade = sub.add_parser("tradeoff", help="sweep FLOPS weight, LFW size and query top-m; write result files")
    trade.add_argument("names", nargs="*", help="retrievers to sweep (default: the grid file's list)")
    _add_data_args(trade)
    trade.add_argument("--grid", help="sweep grid YAML (default: benchmark/configs/tradeoff.yaml)")
    trade.add_argument("--knobs", nargs="*", help="only these knobs (flops_scale, lfw, query_top_m)")
    trade.add_argument("--output", default=str(DEFAULT_OUTPUT / "tradeoff"))
    trade.add_argument("--k", type=_positive_int, default=1000)
    _add_set_arg(trade)

    plot = sub.add_parser("plot", help="plot MRR@10 against FLOPS and latency to PNG")
    plot.add_argument("--dataset", nargs="*", help="datasets (default: every dataset with results)")
    plot.add_argument("--results", default=str(DEFAULT_OUTPUT))
    plot.add_argument("--out", help="folder for the PNGs (default: <results>/plots)")

    report = sub.add_parser("report", help="write a markdown leaderboard with the plots embedded")
    report.add_argument("--dataset", nargs="*", help="datasets (default: every dataset with results)")
    report.add_argument("--results", default=str(DEFAULT_OUTPUT))
    report.add_argument("--out", help="markdown file (default: <results>/REPORT.md)")

    spread = sub.add_parser("spread", help="measure a trained row's spread across CPU kernels and seeds (the "
                                           "leaderboard's tolerance)")
    spread.add_argument("name", help="a registered trained retriever")
    _add_data_args(spread)
    spread.add_argument("--seeds", type=int, nargs="*", default=[14, 15, 16, 17])
    spread.add_argument("--kernels", nargs="*", default=["avx2", "default"], choices=["default", "avx2", "avx512"])
    spread.add_argument("--seed-key", default="train.seed", help="the --set key of the seed (train_pretrained.seed "
                                                                  "for pretrained weights)")
    spread.add_argument("--output", default=str(DEFAULT_OUTPUT / "spread"))
    spread.add_argument("--native", metavar="RESULT", help="an existing result of the row (current config, this "
                        "machine) to use as the native run instead of training it again")
    spread.add_argument("--resummarize", action="store_true",
                        help="recompute the tolerance of an existing <output>/<dataset>-<name>.json from its runs")

    pick = sub.add_parser("choose", help="choose a swept knob's value on validation (held-out training pairs)")
    pick.add_argument("name", help="the swept retriever")
    pick.add_argument("--knob", default="flops_scale")
    pick.add_argument("--dataset", required=True)
    pick.add_argument("--tolerance", type=float, default=0.01,
                      help="validation MRR a sparser point may lose against the best (default 0.01)")
    pick.add_argument("--results", default=str(DEFAULT_OUTPUT / "tradeoff"), help="where the sweep's results are")
    pick.add_argument("--output", default=str(DEFAULT_OUTPUT / "tuning"))

    fuse = sub.add_parser("fuse", help="a hybrid row: rows' runs fused (rrf / wsum; parameters chosen on held-out "
                                       "queries)")
    fuse.add_argument("rows", nargs="+", metavar="ROW", help="rows to fuse (their current results and run files)")
    fuse.add_argument("--method", choices=("rrf", "wsum"), default="rrf")
    fuse.add_argument("--name", help="the hybrid row's name (default: ROW+ROW@METHOD)")
    fuse.add_argument("--results", default=str(DEFAULT_OUTPUT))
    fuse.add_argument("--output", help="where the result goes (default: --results)")
    _add_data_args(fuse, default_dataset=None)

    comp = sub.add_parser("compare", help="paired significance tests between rows (bootstrap CI, randomization and t-test "
                                          "p-values, Holm-corrected)")
    comp.add_argument("rows", nargs="+", metavar="ROW", help="row names (their current result) or result JSON files")
    comp.add_argument("--dataset", required=True, help="dataset the rows were evaluated on")
    comp.add_argument("--metric", nargs="+", default=["MRR@10"],
                      help="metrics to compare (MRR@10, nDCG@10, MAP, Hit@1, Hit@10, Hit@100, Hit@1000)")
    comp.add_argument("--results", default=str(DEFAULT_OUTPUT))
    comp.add_argument("--json", metavar="FILE", help="also write the comparisons as JSON")

    check = sub.add_parser("check", help="rerun the cheap leaderboard entries and compare (ok / okish / fail)")
    check.add_argument("--dataset", nargs="*", help="datasets (default: all in the leaderboard)")
    check.add_argument("--data-dir", help="folder with the official Multi-CPR files (or set PROSPER_BENCH_DATA)")
    check.add_argument("--no-verify", action="store_true")
    check.add_argument("--leaderboard", help="leaderboard YAML (default: results/leaderboard.yaml)")
    check.add_argument("--results", default=str(DEFAULT_OUTPUT), help="where to find results of entries not rerun")
    check.add_argument("--output", help="where reruns write their result files (default: a temporary folder)")
    check.add_argument("--require-data", action="store_true",
                       help="fail (not skip) when a dataset's files are missing or an entry has no current result (CI)")
    check.add_argument("--reuse-cache", action="store_true",
                       help="rerun entries against the existing cache (default: a fresh one, so stale indexes never pass)")

    explain = sub.add_parser("explain", help="top-weighted terms of a query or passage for a learned sparse model")
    explain.add_argument("name", help="a learned sparse retriever (see 'list'), trained by 'run' on --dataset")
    explain.add_argument("text", nargs="+", help="query or passage text")
    explain.add_argument("--side", choices=("query", "doc"), default="query")
    explain.add_argument("--top", type=_positive_int, default=20)
    explain.add_argument("--train", action="store_true",
                         help="train (and index) the model now when 'run' has not built it yet")
    _add_set_arg(explain)
    _add_data_args(explain)
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    from benchmark.registry import load_registry

    registry = load_registry()
    print("Retrievers:")
    for name, spec in registry.items():
        if not spec.template:
            row = f"  [paper: {spec.paper_row}]" if spec.paper_row else ""
            print(f"  {name:<16} {spec.description}{row}")
    print("\nYour own model (run TEMPLATE --model-id ORG/NAME | --model-path DIR [--name NAME]):")
    for name, spec in registry.items():
        if spec.template:
            print(f"  {name:<16} {spec.description}")
    print("\nDatasets:")
    for manifest in list_manifests():
        label = "" if manifest.comparable_to_paper else f"  ({manifest.corpus_label}: not comparable with the paper)"
        print(f"  {manifest.name:<20} {manifest.description.split('. ')[0].split(': ')[0]}{label}")
    return 0


def output_problem(folder: Path) -> str | None:
    """Why results cannot be written under ``folder`` - checked before any work, so a long run never ends in a
    traceback with its metrics lost: a file where the folder should be, or a folder that refuses a new file."""
    import tempfile

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        return f"--output {folder} is a file, not a folder"
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"--output {folder}: {existing} is a file, not a folder"
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".prosper-bench-probe-"):
            pass
    except OSError as err:
        return f"--output {folder} is not writable ({err.strerror or err}): choose another folder"
    return None


def _load(args: argparse.Namespace, with_train: bool):
    return load_dataset(args.dataset, data_dir=args.data_dir, corpus_path=args.corpus, with_train=with_train,
                        verify=not args.no_verify, download=not args.no_download)


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.records.results import ResultWriteError
    from benchmark.registry import deep_merge, load_registry, parse_overrides
    from benchmark.runs.runner import run_one
    from retrievers.base import Timer
    from retrievers.resources.model_loading import ScratchRefused
    from retrievers.sharding import is_main

    registry = load_registry()
    names = [n for n, spec in registry.items() if not spec.template] if args.all else args.names
    if not names:
        print("error: name one or more retrievers, or pass --all (see 'python -m benchmark list')", file=sys.stderr)
        return 2
    unknown = [n for n in names if n not in registry]
    if unknown:
        print(f"error: unknown retriever(s) {unknown}; known: {', '.join(registry)}", file=sys.stderr)
        return 2
    own = {"model_id": args.model_id, "model_path": args.model_path, "pooling": args.pooling,
           "query_instruction": args.query_prefix, "passage_prefix": args.passage_prefix}
    own = {k: v for k, v in own.items() if v is not None}
    templates = [n for n in names if registry[n].template]
    if templates and not (args.model_id or args.model_path):
        print(f"error: {templates[0]} is a template for your own model: give --model-id ORG/NAME or --model-path DIR",
              file=sys.stderr)
        return 2
    if args.model_path and not args.model_id:
        own["model_id"] = Path(args.model_path).expanduser().resolve().name  # the folder names the model
    if args.name is not None and len(names) != 1:
        print("error: --name names one row: give exactly one retriever with it", file=sys.stderr)
        return 2
    overrides = deep_merge(parse_overrides(args.set), own)
    for name in names:  # every key and value checked against the config dataclasses before any work
        check_overrides(name, registry[name].build(overrides).config, overrides)
    try:
        rows = {name: row_name(name, overrides, args.k, args.name, dataclasses.asdict(registry[name].build().config))
                for name in names}
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    clash = [r for n, r in rows.items() if r in registry and (r != n or meaningful_overrides(overrides) or
                                                              args.k != DEFAULT_K)]
    if clash:
        print(f"error: --name {clash[0]} is a registered retriever's row; a variant (other settings, another k) "
              f"needs a name of its own", file=sys.stderr)
        return 2
    problem = output_problem(Path(args.output))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    with Timer() as loading:
        dataset = _load(args, with_train=True)
    for note in dataset.notes if is_main() else ():
        print(f"[{dataset.name}] {note}")
    summary, failures = [], 0
    for name in names:
        try:
            path, payload = run_one(registry[name], dataset, Path(args.output), k=args.k,
                                    reuse_index=not args.rebuild, overrides=overrides,
                                    allow_scratch=args.allow_scratch, extra={"load_s": loading.seconds},
                                    name=args.name)
        except ImportError as err:  # a missing optional requirement: skip with a clear message
            print(f"skipped {name}: missing requirement ({err})", file=sys.stderr)
            failures += 1
            continue
        except ScratchRefused as err:
            print(f"error: {name}: {err}", file=sys.stderr)
            failures += 1
            continue
        except ResultWriteError as err:  # the work is done; say what it measured rather than lose it
            print(f"error: {name}: {err}", file=sys.stderr)
            failures += 1
            continue
        if payload is None:  # a torchrun helper process (rank > 0): rank 0 reports
            continue
        m, c = payload["metrics"], payload["cost"]
        summary.append((payload["retriever"]["name"], m["MRR@10"], m["nDCG@10"], m["Hit@10"], m["Hit@1000"],
                     c.get("flops"), c.get("latency_ms_p50"), path))
    if is_main() and summary:
        _print_summary(dataset, summary)
    return 1 if failures else 0


def _print_summary(dataset, rows) -> None:
    print(f"\n{dataset.name} ({dataset.corpus_label}, {len(dataset.corpus):,} passages, {len(dataset.qrels):,} queries)")
    width = max([16, *(len(row[0]) for row in rows)])
    print(f"{'retriever':<{width}} {'MRR@10':>7} {'nDCG@10':>7} {'Hit@10':>7} {'Hit@1k':>7} {'FLOPS':>9} {'p50 ms':>7}"
          "  result")
    for name, mrr, ndcg, h10, h1k, flops, p50, path in rows:
        flops_s = f"{flops:9.3f}" if flops is not None else f"{'-':>9}"
        p50_s = f"{p50:7.2f}" if p50 is not None else f"{'-':>7}"
        print(f"{name:<{width}} {mrr * 100:7.2f} {ndcg * 100:7.2f} {h10 * 100:7.2f} {h1k * 100:7.2f} {flops_s} {p50_s}"
              f"  {path}")


def cmd_index_bench(args: argparse.Namespace) -> int:
    from benchmark.records.results import utc_stamp
    from benchmark.serving.index_bench import IndexBenchConfig, markdown, render, run_index_bench, write_reports
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
        print(f"error: {err}; run e.g. 'python -m benchmark run bm25-bert --dataset scale-10k' first", file=sys.stderr)
        return 2
    print(markdown(rows))
    print(f"\nwrote {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from benchmark.evaluation.measures import evaluate_with_per_query
    from benchmark.evaluation.runfile import read_trec_run

    path = Path(args.runfile)
    if not path.is_file():
        print(f"error: run file {path} does not exist", file=sys.stderr)
        return 2
    if args.name is not None:
        from benchmark.records.rows import own_name_problem
        from benchmark.registry import load_registry

        problem = own_name_problem(args.name, load_registry())
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        problem = output_problem(Path(args.output))
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    dataset = _load(args, with_train=False)
    run = read_trec_run(path)
    covered = sum(1 for q in dataset.qrels if run.get(q))
    share = covered / len(dataset.qrels)
    if share < args.min_coverage:
        what = "none" if covered == 0 else f"only {covered:,}"
        print(f"error: {path} ranks passages for {what} of the {len(dataset.qrels):,} queries of {dataset.name} "
              f"({len(run):,} queries in the file): is it a run for another dataset? (--min-coverage "
              f"{args.min_coverage} to evaluate it anyway; missing queries score 0)", file=sys.stderr)
        return 2
    docids = {d for hits in run.values() for d, _ in hits}
    unknown = docids - set(dataset.corpus)
    if docids and unknown == docids:
        print(f"error: none of the {len(docids):,} passage ids in {path} is in the corpus of {dataset.name} (e.g. "
              f"{next(iter(sorted(unknown)))!r}): is it a run over another corpus?", file=sys.stderr)
        return 2
    if unknown:
        print(f"warning: {len(unknown):,} of the {len(docids):,} passage ids in {path} are not in the corpus of "
              f"{dataset.name}; they count as non-relevant", file=sys.stderr)
    if covered < len(dataset.qrels):
        print(f"warning: {len(dataset.qrels) - covered:,} of {len(dataset.qrels):,} queries have no results in "
              f"{path}; they score 0", file=sys.stderr)
    metrics, per_query = evaluate_with_per_query(run, dataset.qrels)
    for name, value in metrics.items():
        print(f"{name:<34} {value:.4f}" if isinstance(value, float) else f"{name:<34} {value}")
    if args.name:
        from benchmark.records.results import ResultWriteError
        from benchmark.runs.external import external_result

        try:
            written = external_result(path, run, dataset, metrics, per_query, args.name, Path(args.output))
        except ResultWriteError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"wrote {written}")
    return 0


def cmd_tradeoff(args: argparse.Namespace) -> int:
    from benchmark.registry import deep_merge, load_registry, parse_overrides
    from benchmark.runs.runner import run_one
    from benchmark.runs.tradeoff import GRID_FILE, load_grid, sweep_points

    overrides = parse_overrides(args.set)
    grid = load_grid(Path(args.grid) if args.grid else GRID_FILE)
    registry = load_registry()
    names = args.names or grid.get("retrievers", [])
    unknown = [n for n in names if n not in registry]
    if unknown:
        print(f"error: unknown retriever(s) {unknown}", file=sys.stderr)
        return 2
    if args.knobs:
        grid = {k: v for k, v in grid.items() if k in set(args.knobs) | {"retrievers"}}
    dataset = _load(args, with_train=True)
    print(f"[{dataset.name}] {dataset.corpus_label}: {len(dataset.corpus):,} passages")
    for name in names:
        for point in sweep_points(registry[name], grid, overrides):
            print(f"{point.label} ...", flush=True)
            path, payload = run_one(registry[name], dataset, Path(args.output), k=args.k,
                                    overrides=deep_merge(overrides, point.overrides),
                                    extra={"sweep": {"knob": point.knob, "value": point.value}}, name=name)
            c = payload["cost"]
            flops = c.get("flops")
            print(f"  MRR@10 {payload['metrics']['MRR@10'] * 100:.2f}  FLOPS {flops if flops is None else round(flops, 3)}"
                  f"  p50 {c.get('latency_ms_p50') or 0:.2f} ms  -> {path}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from benchmark.records.results import result_datasets
    from benchmark.report.plot import plot_tradeoff

    results = Path(args.results)
    problem = _unknown_datasets(results, args.dataset)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    datasets = args.dataset or result_datasets(results)
    written = [p for d in datasets if (p := plot_tradeoff(results, d, Path(args.out) if args.out else results / "plots"))]
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"error: no results to plot under {results} for {datasets or 'any dataset'}", file=sys.stderr)
        return 1
    return 0


def _unknown_datasets(results: Path, asked: list[str] | None) -> str | None:
    """An error line when ``asked`` names a dataset with no results (a typo must not write an empty report)."""
    from benchmark.records.results import result_datasets

    known = result_datasets(results)
    unknown = [d for d in asked or [] if d not in known]
    if unknown:
        return f"no results for {unknown} under {results}; datasets with results: {', '.join(known) or 'none'}"
    return None


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark.report.markdown import write_report

    results = Path(args.results)
    problem = _unknown_datasets(results, args.dataset)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    path = write_report(results, Path(args.out) if args.out else results / "REPORT.md", args.dataset)
    print(f"wrote {path}")
    return 0


def cmd_spread(args: argparse.Namespace) -> int:
    from benchmark.records.spread import measure, resummarize, write
    from benchmark.registry import load_registry

    if args.name not in load_registry():
        print(f"error: unknown retriever {args.name!r}", file=sys.stderr)
        return 2
    try:
        summary = (resummarize(args.name, args.dataset, Path(args.output)) if args.resummarize else
                   measure(args.name, args.dataset, Path(args.output), args.seeds, args.kernels, args.seed_key,
                           args.data_dir, args.native))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
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
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{'value':>10} {'validation MRR':>15} {'terms/passage':>14} {'terms/query':>12}")
    for point in choice["points"]:
        mrr = point["validation_mrr"]
        print(f"{point['value']!s:>10} {'-' if mrr is None else f'{mrr:.4f}':>15} "
              f"{point['doc_terms_mean'] or 0:14.1f} {point['query_terms_mean'] or 0:12.1f}")
    print(f"chosen {args.knob} = {choice['chosen']} ({choice['rule']})")
    print(f"wrote {write(choice, Path(args.output))}")
    return 0


def cmd_fuse(args: argparse.Namespace) -> int:
    from benchmark.records.rows import own_name_problem
    from benchmark.records.selection import SelectionError
    from benchmark.registry import load_registry
    from benchmark.runs.fusion import fuse_rows

    if args.dataset is None:
        print("error: fuse needs --dataset", file=sys.stderr)
        return 2
    if len(args.rows) < 2:
        print("error: fuse needs at least two rows", file=sys.stderr)
        return 2
    problem = None if args.name is None else own_name_problem(args.name, load_registry())
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    output = Path(args.output or args.results)
    problem = output_problem(output)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    dataset = _load(args, with_train=False)
    try:
        path, payload = fuse_rows(Path(args.results), dataset, args.rows, args.method, output, args.name)
    except (SelectionError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    m = payload["metrics"]
    print(f"{payload['retriever']['name']}: MRR@10 {m['MRR@10'] * 100:.2f}  nDCG@10 {m['nDCG@10'] * 100:.2f}  "
          f"Hit@1000 {m['Hit@1000'] * 100:.2f}")
    for fold in payload["fusion"]["params_per_fold"]:
        print(f"  fold {fold['fold']}: {fold['params']} (chosen on {fold['tuned_on_queries']} other queries)")
    print(f"wrote {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import json

    from benchmark.evaluation.measures import PER_QUERY
    from benchmark.evaluation.significance import compare_rows, render
    from benchmark.records.selection import SelectionError, select_results

    columns = {**PER_QUERY, **{v: v for v in PER_QUERY.values()}}
    unknown = [m for m in args.metric if m not in columns]
    if unknown:
        print(f"error: unknown metric(s) {unknown}; choose from {', '.join(PER_QUERY)}", file=sys.stderr)
        return 2
    if len(args.rows) < 2:
        print("error: compare needs at least two rows", file=sys.stderr)
        return 2
    try:
        selected = select_results(Path(args.results), args.dataset, args.rows)
    except SelectionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    everything = []
    for metric in args.metric:
        column = columns[metric]
        try:
            comparisons = compare_rows({name: pick.per_query[column] for name, pick in selected.items()}, metric)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(render(comparisons) + "\n")
        everything += comparisons
    for name, pick in selected.items():
        print(f"{name}: {pick.path}" + (f" ({pick.note})" if pick.note else ""))
    if args.json:
        from benchmark.records.results import named_under

        payload = {"dataset": args.dataset,
                   "results": {n: named_under(p.path, Path(args.results)) for n, p in selected.items()},
                   "comparisons": [c.as_dict() for c in everything]}
        target = Path(args.json)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        except OSError as err:
            print(f"error: could not write {target}: {err.strerror or err} (the comparisons are printed above)",
                  file=sys.stderr)
            return 2
        print(f"wrote {args.json}")
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
        print(f"error: {err}", file=sys.stderr)
        return 2
    known = list(dict.fromkeys(e.dataset for e in board.entries))
    unknown = [d for d in args.dataset or [] if d not in known]
    if unknown:
        print(f"error: the leaderboard has no entries for {unknown}; it has: {', '.join(known)}", file=sys.stderr)
        return 2
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
    return 1 if counts["fail"] else 0


def cmd_explain(args: argparse.Namespace) -> int:
    from benchmark.registry import load_registry, parse_overrides
    from benchmark.runs.runner import NotTrained, trained_retriever

    registry = load_registry()
    if args.name not in registry:
        print(f"error: unknown retriever {args.name!r}", file=sys.stderr)
        return 2
    overrides = parse_overrides(args.set)
    registry[args.name].build(overrides)  # settings checked before the data is read
    dataset = _load(args, with_train=True)
    try:
        retriever = trained_retriever(registry[args.name], dataset, overrides, build_if_missing=args.train)
    except NotTrained as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not hasattr(retriever, "explain"):
        print(f"error: {args.name} has no term view (only learned sparse retrievers do)", file=sys.stderr)
        return 2
    text = " ".join(args.text)
    print(f"{args.name} ({dataset.name}) {args.side}: {text}")
    print(f"{'term':<16} {'weight':>8}  origin")
    for term, weight, literal in retriever.explain(text, args.side, args.top):
        print(f"{term:<16} {weight:8.3f}  {'literal' if literal else 'expansion'}")
    return 0


def _quiet_libraries() -> None:
    """transformers' load reports and per-file progress bars are noise between this tool's own lines."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - a dependency
        pass


def main(argv: list[str] | None = None) -> int:
    from benchmark.records.results import git_state

    git_state()  # the tree as this process starts: what its imports are (results.git_state)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    for noisy in ("bm25s", "jieba", "sentence_transformers", "transformers", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _quiet_libraries()
    handlers = {"list": cmd_list, "run": cmd_run, "eval": cmd_eval, "index-bench": cmd_index_bench,
                "projection": cmd_projection, "cost-growth": cmd_cost_growth,
                "tradeoff": cmd_tradeoff, "plot": cmd_plot, "report": cmd_report, "check": cmd_check,
                "compare": cmd_compare, "spread": cmd_spread, "choose": cmd_choose, "fuse": cmd_fuse,
                "explain": cmd_explain}
    try:
        return handlers[args.command](args)
    except (DataError, ConfigError, ArtefactCorrupt, JavaUnavailable) as err:  # what the user can fix: one line
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: result files already written and finished indexes are kept; an interrupted training "
              "resumes from its last finished epoch on the next run", file=sys.stderr)
        return 130
