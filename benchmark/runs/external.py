"""Runs made elsewhere: ``eval RUN --dataset D --name NAME`` files them as results (marked external), so ``report``,
``compare`` and the page list them beside the suite's own rows, with what is known of them (the file's sha256)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.records.results import environment, write_result
from retrievers.resources.artefacts import sha256_of


def external_result(run_file: Path, run: dict[str, list], dataset, metrics: dict[str, Any],
                    per_query: dict[str, dict[str, float]], name: str, output: Path) -> Path:
    digest = sha256_of(run_file)
    payload = {
        "dataset": dataset.describe(),
        "retriever": {"name": name, "registered_as": None, "overrides": {}, "class": None, "paper_row": None,
                      "description": f"external run {Path(run_file).name}", "config": {}},
        "external": {"run_file": Path(run_file).name, "sha256": digest,
                     "note": "made elsewhere and evaluated here; nothing about its model is known to the suite"},
        "provenance": {"run": {"kind": "external", "file": Path(run_file).name, "sha256": digest}},
        "k": max((len(hits) for hits in run.values()), default=0),
        "metrics": metrics, "cost": {}, "environment": environment(),
    }
    return write_result(payload, output, dataset.name, name, digest[:12], run=run, per_query=per_query)


class RunRefused(ValueError):
    """A run file that would be evaluated wrongly (another dataset's run, another corpus): the message says which."""


def check_run(run: dict[str, list], dataset, path: Path, min_coverage: float) -> list[str]:
    """Refuse a run that covers less than ``min_coverage`` of the queries or names no passage of the corpus (it is
    another dataset's); returns the warnings for what only lowers its scores (unknown passages, queries with none)."""
    covered = sum(1 for q in dataset.qrels if run.get(q))
    if covered / len(dataset.qrels) < min_coverage:
        what = "none" if covered == 0 else f"only {covered:,}"
        raise RunRefused(f"{path} ranks passages for {what} of the {len(dataset.qrels):,} queries of {dataset.name} "
                         f"({len(run):,} queries in the file): is it a run for another dataset? (--min-coverage "
                         f"{min_coverage} to evaluate it anyway; missing queries score 0)")
    docids = {d for hits in run.values() for d, _ in hits}
    unknown = docids - set(dataset.corpus)
    if docids and unknown == docids:
        raise RunRefused(f"none of the {len(docids):,} passage ids in {path} is in the corpus of {dataset.name} (e.g. "
                         f"{next(iter(sorted(unknown)))!r}): is it a run over another corpus?")
    warnings = []
    if unknown:
        warnings.append(f"{len(unknown):,} of the {len(docids):,} passage ids in {path} are not in the corpus of "
                        f"{dataset.name}; they count as non-relevant")
    if covered < len(dataset.qrels):
        warnings.append(f"{len(dataset.qrels) - covered:,} of {len(dataset.qrels):,} queries have no results in "
                        f"{path}; they score 0")
    return warnings
