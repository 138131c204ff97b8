"""What the commands share: where results go, loading the dataset a command names, and the checks made before any work
(so a long run never ends in a traceback with its metrics lost)."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark import REPO_ROOT
from benchmark.data.datasets import load_dataset

DEFAULT_OUTPUT = REPO_ROOT / "results"


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


def load_data(args: argparse.Namespace, with_train: bool):
    return load_dataset(args.dataset, data_dir=args.data_dir, corpus_path=args.corpus, with_train=with_train,
                        verify=not args.no_verify, download=not args.no_download)


def unknown_datasets(results: Path, asked: list[str] | None) -> str | None:
    """An error line when ``asked`` names a dataset with no results (a typo must not write an empty report)."""
    from benchmark.records.results import result_datasets

    known = result_datasets(results)
    unknown = [d for d in asked or [] if d not in known]
    if unknown:
        return f"no results for {unknown} under {results}; datasets with results: {', '.join(known) or 'none'}"
    return None


def print_summary(dataset, results: list[tuple[Path, dict]]) -> None:
    """The run's table: each row's headline metrics and cost, and the result file it wrote."""
    rows = [(p["retriever"]["name"], p["metrics"], p["cost"], path) for path, p in results]
    print(f"\n{dataset.name} ({dataset.corpus_label}, {len(dataset.corpus):,} passages, {len(dataset.qrels):,} queries)")
    width = max([16, *(len(row[0]) for row in rows)])
    print(f"{'retriever':<{width}} {'MRR@10':>7} {'nDCG@10':>7} {'Hit@10':>7} {'Hit@1k':>7} {'FLOPS':>9} {'p50 ms':>7}"
          "  result")
    for name, m, c, path in rows:
        flops, p50 = c.get("flops"), c.get("latency_ms_p50")
        flops_s = f"{flops:9.3f}" if flops is not None else f"{'-':>9}"
        p50_s = f"{p50:7.2f}" if p50 is not None else f"{'-':>7}"
        print(f"{name:<{width}} {m['MRR@10'] * 100:7.2f} {m['nDCG@10'] * 100:7.2f} {m['Hit@10'] * 100:7.2f} "
              f"{m['Hit@1000'] * 100:7.2f} {flops_s} {p50_s}  {path}")


class UsageError(Exception):
    """What the user asked cannot be done as asked: ``main`` prints the message as one ``error:`` line, exit 2."""


def refuse_output(folder: Path) -> None:
    """Raise :class:`UsageError` when results cannot be written under ``folder`` (see :func:`output_problem`)."""
    problem = output_problem(Path(folder))
    if problem:
        raise UsageError(problem)
