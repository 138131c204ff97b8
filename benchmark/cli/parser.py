"""The command line: every subcommand's arguments, and nothing else."""

from __future__ import annotations

import argparse

from benchmark.cli.common import DEFAULT_OUTPUT


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
    comp.add_argument("--against", metavar="ROW", help="compare each row with ROW only (Holm over those pairs: an "
                                                       "ablation family); default: every pair")
    comp.add_argument("--json", metavar="FILE", help="also write the comparisons as JSON, with the command that "
                                                     "regenerates them")

    check = sub.add_parser("check", help="rerun the cheap leaderboard entries and compare (ok / okish / fail)")
    check.add_argument("--dataset", nargs="*", help="datasets (default: all in the leaderboard)")
    check.add_argument("--data-dir", help="folder with the official Multi-CPR files (or set PROSPER_BENCH_DATA)")
    check.add_argument("--no-verify", action="store_true")
    check.add_argument("--leaderboard", help="leaderboard YAML (default: results/leaderboard.yaml)")
    check.add_argument("--strict", action="store_true",
                       help="also fail (exit 1) on any stale current result under --results, naming each row and file")
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
