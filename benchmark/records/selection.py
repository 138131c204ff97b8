"""Which result stands for a row: the one ``compare`` pairs and ``check`` grades - its current result, or a file named.

A row name means the newest result of the row's *current* config (``benchmark.records.results.current_results``); a path to
a result JSON means that file, whatever its config (said in the output). Either way the per-query file beside it must
exist: significance needs each query's score, not an average.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark.evaluation.perquery import read_per_query, sidecar_path
from benchmark.records.results import current_results, find_results


class SelectionError(ValueError):
    """A row without a usable result: one line saying which and what to do."""


@dataclass
class Selected:
    path: Path
    per_query: dict[str, dict[str, float]]
    note: str = ""


def select_results(results: Path, dataset: str, rows: list[str]) -> dict[str, Selected]:
    current, superseded = current_results(results, dataset)
    chosen: dict[str, Selected] = {}
    for row in rows:
        candidate = Path(row)
        if candidate.suffix == ".json" and candidate.is_file():
            name, path, note = f"{candidate.parent.name}@{candidate.stem}", candidate, "file given"
        elif row in current:
            name, path, note = row, current[row], ""
        elif row in superseded:
            path, why = superseded[row]
            raise SelectionError(f"{row} has no current result on {dataset} (its newest, {path}, is superseded: {why}); "
                                 f"rerun it, or pass that file to compare it anyway")
        else:
            known = sorted({p.parent.name for p in find_results(results, dataset)})
            raise SelectionError(f"no result of {row!r} on {dataset} under {results}; rows there: "
                                 f"{', '.join(known) or 'none'}")
        sidecar = sidecar_path(path)
        if not sidecar.exists():
            raise SelectionError(f"{path} has no per-query file ({sidecar.name}): it predates per-query scores; "
                                 f"rerun {row}")
        if name in chosen:
            raise SelectionError(f"{row} is named twice")
        chosen[name] = Selected(path, read_per_query(sidecar), note)
    return chosen
