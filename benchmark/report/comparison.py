"""``compare``: paired significance between rows over the same queries, as a table and as a file that says how to
make it again.

Which pairs: every pair of the rows given (Holm over all of them), or with ``against`` each row against that one
(Holm over those pairs only: an ablation family). A written file records the exact command that regenerates it, so a
comparison the README cites can be checked by running that command.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.evaluation.measures import PER_QUERY
from benchmark.evaluation.significance import PairComparison, compare_rows
from benchmark.records.results import named_under
from benchmark.records.selection import Selected, select_results


@dataclass
class Comparison:
    dataset: str
    selected: dict[str, Selected]
    comparisons: list[PairComparison]
    against: str | None = None

    def as_dict(self, results: Path, command: str) -> dict[str, Any]:
        return {"dataset": self.dataset, "command": command, "against": self.against,
                "holm_family": (f"each row against {self.against}, per metric" if self.against
                                else "every pair of the rows, per metric"),
                "results": {n: named_under(p.path, Path(results)) for n, p in self.selected.items()},
                "comparisons": [c.as_dict() for c in self.comparisons]}


def compare(results: Path, dataset: str, rows: list[str], metrics: list[str], against: str | None = None
            ) -> Comparison:
    """The comparisons of ``rows`` (row names or result files) on each metric; ValueError says what is wrong."""
    columns = {**PER_QUERY, **{v: v for v in PER_QUERY.values()}}
    unknown = [m for m in metrics if m not in columns]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(PER_QUERY)}")
    if against is not None and against not in rows:
        rows = [against, *rows]
    if len(rows) < 2:
        raise ValueError("compare needs at least two rows")
    selected = select_results(Path(results), dataset, rows)
    pairs = None if against is None else [(name, against) for name in selected if name != against]
    comparisons = []
    for metric in metrics:
        column = columns[metric]
        comparisons += compare_rows({name: pick.per_query[column] for name, pick in selected.items()}, metric, pairs)
    return Comparison(dataset, selected, comparisons, against)


def command_line(dataset: str, rows: list[str], metrics: list[str], against: str | None, json_path: str) -> str:
    """The command that writes this comparison again (row names as given; the current result of each is taken)."""
    parts = ["python", "-m", "benchmark", "compare", *rows, "--dataset", dataset, "--metric", *metrics]
    if against:
        parts += ["--against", against]
    return shlex.join([*parts, "--json", json_path])


def write(comparison: Comparison, results: Path, target: Path, command: str) -> Path:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(comparison.as_dict(results, command), indent=2) + "\n", encoding="utf-8")
    return target
