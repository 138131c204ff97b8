"""Which rows a report shows: each row's current result (a row's seeds folded into one line), and its significance
marks against BM25 and the best real-weight row. The markdown report and the page both draw from these."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.evaluation.perquery import read_per_query, sidecar_path
from benchmark.records.results import current_results, load_result, provenance_label
from benchmark.records.rows import flatten, registered_as
from benchmark.records.staleness import staleness

BASELINE = "bm25-bert"
SIGNIFICANCE_METRIC = ("MRR@10", "RR@10")  # result metric, per-query column


@dataclass
class Row:
    """One line of a table: a row's current result, or the mean of its seeds."""

    name: str
    payloads: list[dict[str, Any]]
    files: list[Path]
    per_query: dict[str, float] | None = None
    marks: str = ""
    stale: list[str] = field(default_factory=list)

    @property
    def first(self) -> dict[str, Any]:
        return self.payloads[0]

    def metric(self, name: str) -> float | None:
        values = [p["metrics"].get(name) for p in self.payloads]
        return None if any(v is None for v in values) else statistics.fmean(values)

    def spread(self, name: str) -> float | None:
        values = [p["metrics"].get(name) for p in self.payloads]
        return statistics.stdev(values) if len(values) > 1 and None not in values else None

    def cost(self, name: str) -> float | None:
        values = [p.get("cost", {}).get(name) for p in self.payloads]
        return None if any(v is None for v in values) else statistics.fmean(values)

    @property
    def provenance(self) -> str:
        return provenance_label(self.first)

    @property
    def real(self) -> bool:
        return self.provenance == "pretrained"


def _seed_family(payload: dict[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """(registered row, its other overrides) when ``payload``'s overrides include a seed; None otherwise."""
    flat = flatten(payload.get("retriever", {}).get("overrides") or {})
    if not any(k.endswith(".seed") for k in flat):
        return None
    return registered_as(payload), tuple(sorted((k, repr(v)) for k, v in flat.items() if not k.endswith(".seed")))


def collect(results: Path, dataset: str) -> tuple[list[Row], dict[str, tuple[Path, str]]]:
    """The dataset's current rows (seed replicates folded into their row) and its superseded ones."""
    current, superseded = current_results(results, dataset)
    loaded = {name: load_result(path) for name, path in current.items()}
    families: dict[tuple, list[str]] = {}
    for name, payload in loaded.items():
        family = _seed_family(payload)
        if family is not None:
            families.setdefault(family, []).append(name)
    rows, folded = [], set()
    for (base, rest), members in families.items():
        if rest or base not in loaded:
            continue
        names = [base, *sorted(members)]
        folded.update(names)
        rows.append(Row(base, [loaded[n] for n in names], [current[n] for n in names]))
    rows += [Row(name, [payload], [current[name]]) for name, payload in loaded.items() if name not in folded]
    for row in rows:
        row.per_query = _mean_per_query(row.files)
        row.stale = [why for p in row.payloads if (why := staleness(p)) and why.startswith("stale")]
    return sorted(rows, key=lambda r: -(r.metric("MRR@10") or 0.0)), superseded


def _mean_per_query(files: list[Path]) -> dict[str, float] | None:
    column = SIGNIFICANCE_METRIC[1]
    tables = []
    for file in files:
        sidecar = sidecar_path(file)
        if not sidecar.exists():
            return None
        tables.append(read_per_query(sidecar)[column])
    return {q: statistics.fmean(t[q] for t in tables) for q in tables[0]}


def mark_significance(rows: list[Row]) -> dict[str, Any]:
    """Set each row's marks (see the module docstring); returns what was compared, for the report's note."""
    from benchmark.evaluation.significance import compare_rows

    scored = [r for r in rows if r.per_query is not None]
    by_name = {r.name: r for r in scored}
    note: dict[str, Any] = {}
    real = [r for r in scored if r.real]
    best = real[0] if real else None
    families = [(BASELINE, "†", by_name.get(BASELINE))]
    if best is not None and best is not by_name.get(BASELINE):  # the best row being BM25 itself: one family is enough
        families.append(("best", "‡", best))
    for label, mark, anchor in families:
        if anchor is None:
            continue
        others = [r for r in scored if r is not anchor]
        if not others:
            continue
        scores = {r.name: r.per_query for r in [anchor, *others]}
        comparisons = compare_rows(scores, SIGNIFICANCE_METRIC[0], [(r.name, anchor.name) for r in others])
        for comparison in comparisons:
            if comparison.significant:
                by_name[comparison.a].marks += mark
        note[label] = anchor.name
    return note
