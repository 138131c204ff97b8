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
