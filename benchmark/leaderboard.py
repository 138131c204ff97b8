"""Leaderboard regression, as pyserini's two-click reproductions (2CR) do it.

``results/leaderboard.yaml`` lists, per dataset and retriever, the expected metrics and a tolerance. A measured value
is **ok** when it equals the expectation to the 4 printed decimals (|diff| <= 5e-5), **okish** when it is within the
entry's tolerance, and **fail** otherwise. Entries marked ``check: true`` are cheap enough to rerun on every CI run
(BM25 on the pool, small demo models); the others - the paper's Table 2 rows on the full corpus with pretrained weights
- are compared against the latest result file a user has produced, when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LEADERBOARD_FILE = Path(__file__).resolve().parent.parent / "results" / "leaderboard.yaml"
EXACT = 5e-5  # expectations are written with 4 decimals


@dataclass
class Entry:
    dataset: str
    retriever: str
    metrics: dict[str, float]
    tolerance: float
    check: bool = False
    source: str = "measured"
    note: str = ""


@dataclass
class Leaderboard:
    entries: list[Entry]
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_dataset(self, dataset: str) -> list[Entry]:
        return [e for e in self.entries if e.dataset == dataset]


def load_leaderboard(path: Path = LEADERBOARD_FILE) -> Leaderboard:
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    default_tol = float(raw.get("defaults", {}).get("tolerance", 0.01))
    entries, datasets = [], {}
    for dataset, block in (raw.get("datasets") or {}).items():
        datasets[dataset] = {k: v for k, v in block.items() if k != "entries"}
        for retriever, entry in (block.get("entries") or {}).items():
            metrics = {k: float(v) for k, v in (entry.get("metrics") or {}).items()}
            if not metrics:
                raise ValueError(f"{path}: {dataset}/{retriever} has no metrics")
            entries.append(Entry(dataset, retriever, metrics, float(entry.get("tolerance", default_tol)),
                                 bool(entry.get("check", False)), entry.get("source", block.get("source", "measured")),
                                 entry.get("note", "")))
    return Leaderboard(entries, datasets)


def status(expected: float, actual: float | None, tolerance: float) -> str:
    if actual is None:
        return "fail"
    diff = abs(actual - expected)
    if diff <= EXACT:
        return "ok"
    return "okish" if diff <= tolerance + EXACT else "fail"


def compare(entry: Entry, metrics: dict[str, Any]) -> list[tuple[str, float, float | None, str]]:
    """(metric, expected, actual, status) for each metric the entry lists."""
    rows = []
    for name, expected in entry.metrics.items():
        actual = metrics.get(name)
        rows.append((name, expected, None if actual is None else float(actual), status(expected, actual, entry.tolerance)))
    return rows
