"""Commands that train, index and search: ``list``, ``run``, ``tradeoff``, ``explain``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.cli.common import UsageError, load_data, print_summary, refuse_output
from benchmark.data.datasets import list_manifests


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


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.records.results import ResultWriteError
    from benchmark.registry import load_registry
    from benchmark.runs.plan import plan_run
    from benchmark.runs.runner import run_one
    from retrievers.base import Timer
    from retrievers.resources.model_loading import ScratchRefused
    from retrievers.sharding import is_main

    registry = load_registry()
    own = {"model_id": args.model_id, "model_path": args.model_path, "pooling": args.pooling,
           "query_instruction": args.query_prefix, "passage_prefix": args.passage_prefix}
    plan = plan_run(registry, args.names, all_rows=args.all, settings=args.set, own=own, k=args.k, name=args.name)
    refuse_output(Path(args.output))
    with Timer() as loading:
        dataset = load_data(args, with_train=True)
    for note in dataset.notes if is_main() else ():
        print(f"[{dataset.name}] {note}")
    summary, failures = [], 0
    for name in plan.names:
        try:
            path, payload = run_one(registry[name], dataset, Path(args.output), k=args.k, reuse_index=not args.rebuild,
                                    overrides=plan.overrides, allow_scratch=args.allow_scratch,
                                    extra={"load_s": loading.seconds}, name=args.name)
        except ImportError as err:  # a missing optional requirement: said in one line, the next row still runs
            print(f"skipped {name}: missing requirement ({err})", file=sys.stderr)
            failures += 1
            continue
        except (ScratchRefused, ResultWriteError) as err:  # ResultWriteError: the work is done, its metrics are said
            print(f"error: {name}: {err}", file=sys.stderr)
            failures += 1
            continue
        if payload is not None:  # None: a torchrun helper process (rank > 0); rank 0 reports
            summary.append((path, payload))
    if is_main() and summary:
        print_summary(dataset, summary)
    return 1 if failures else 0


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
        raise UsageError(f"unknown retriever(s) {unknown}")
    if args.knobs:
        grid = {k: v for k, v in grid.items() if k in set(args.knobs) | {"retrievers"}}
    dataset = load_data(args, with_train=True)
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


def cmd_explain(args: argparse.Namespace) -> int:
    from benchmark.registry import load_registry, parse_overrides
    from benchmark.runs.runner import NotTrained, trained_retriever

    registry = load_registry()
    if args.name not in registry:
        raise UsageError(f"unknown retriever {args.name!r}")
    overrides = parse_overrides(args.set)
    registry[args.name].build(overrides)  # settings checked before the data is read
    dataset = load_data(args, with_train=True)
    try:
        retriever = trained_retriever(registry[args.name], dataset, overrides, build_if_missing=args.train)
    except NotTrained as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not hasattr(retriever, "explain"):
        raise UsageError(f"{args.name} has no term view (only learned sparse retrievers do)")
    text = " ".join(args.text)
    print(f"{args.name} ({dataset.name}) {args.side}: {text}")
    print(f"{'term':<16} {'weight':>8}  origin")
    for term, weight, literal in retriever.explain(text, args.side, args.top):
        print(f"{term:<16} {weight:8.3f}  {'literal' if literal else 'expansion'}")
    return 0
