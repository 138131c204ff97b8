"""Leaderboard regression, as pyserini's two-click reproductions (2CR) do it.

``results/leaderboard.yaml`` lists, per dataset and retriever, the expected metrics. Grading, per metric:

- **ok**: equal to the expectation to the 4 printed decimals (|diff| <= 5e-5);
- **okish**: within the entry's ``tolerance`` - allowed only where the result cannot be bit-reproducible: a result
  file that says it ran on a GPU, or a paper row (``source: paper``), which a reproduction approaches but never equals;
- **fail**: otherwise. A CPU run is deterministic, so anything but ok is a regression.

Entries marked ``check: true`` are rerun on every CI run, in a fresh cache (:func:`retrievers.cache.temporary_cache`)
so a stale cached index cannot stand in for the code under test. Other entries are compared with the newest result file
*of the registered config* (same config hash): a result of another config says nothing about this row. Paper rows are
graded only against results that are comparable with the paper - full corpus, pretrained weights and real tokenizers -
and anything else is reported as ``not comparable``, never as a pass or a failure.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmark.results import find_results, load_result, provenance_label, ran_on

LEADERBOARD_FILE = Path(__file__).resolve().parent.parent / "results" / "leaderboard.yaml"
EXACT = 5e-5  # expectations are written with 4 decimals
STATES = ("ok", "okish", "fail", "not comparable", "no result")


@dataclass
class Entry:
    dataset: str
    retriever: str
    metrics: dict[str, float]
    tolerance: float
    check: bool = False
    source: str = "measured"
    note: str = ""

    @property
    def is_paper_row(self) -> bool:
        return self.source.startswith("paper")


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


def status(expected: float, actual: float | None, tolerance: float, reproducible: bool = True) -> str:
    """ok / okish / fail for one metric; ``reproducible`` results (CPU runs) get no tolerance."""
    if actual is None:
        return "fail"
    diff = abs(actual - expected)
    if diff <= EXACT:
        return "ok"
    if not reproducible and diff <= tolerance + EXACT:
        return "okish"
    return "fail"


def comparable_with_paper(payload: dict[str, Any]) -> str | None:
    """None when ``payload`` may be graded against a paper row; otherwise why not."""
    dataset = payload.get("dataset", {})
    if not dataset.get("comparable_to_paper", False):
        return f"{dataset.get('corpus_label', 'this')} corpus, not the paper's full corpus"
    label = provenance_label(payload)
    if label != "pretrained":
        return f"{label} model/tokenizer, not the paper's pretrained weights"
    return None


def compare(entry: Entry, payload: dict[str, Any]) -> list[tuple[str, float, float | None, str]]:
    """(metric, expected, actual, status) for each metric the entry lists."""
    metrics = payload.get("metrics", {})
    if entry.is_paper_row:
        why = comparable_with_paper(payload)
        if why is not None:
            return [(name, expected, metrics.get(name), "not comparable") for name, expected in entry.metrics.items()]
    reproducible = ran_on(payload) == "cpu" and not entry.is_paper_row
    rows = []
    for name, expected in entry.metrics.items():
        actual = metrics.get(name)
        actual = None if actual is None else float(actual)
        rows.append((name, expected, actual, status(expected, actual, entry.tolerance, reproducible)))
    return rows


#: Config fields that cannot change a result's metrics: how an exact index is searched, how many queries are timed,
#: where the model ran. A result of the registered config with another value here is still a result of that config.
NON_RESULT_FIELDS = ("algorithm", "latency_queries", "device")


def result_config(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in NON_RESULT_FIELDS}


def newest_result_of_config(results: Path, dataset: str, retriever: str, config: dict[str, Any]) -> Path | None:
    """The newest result file of ``retriever`` on ``dataset`` whose config is ``config`` (up to NON_RESULT_FIELDS)."""
    import json

    wanted = json.loads(json.dumps(result_config(config), default=str))  # tuples read back as lists
    for path in reversed(find_results(results, dataset, retriever)):
        stored = load_result(path).get("retriever", {}).get("config")
        if stored is not None and result_config(stored) == wanted:
            return path
    return None


@dataclass
class CheckLine:
    dataset: str
    retriever: str
    metric: str
    expected: float | None
    actual: float | None
    state: str
    origin: str
    tolerance: float

    def render(self) -> str:
        got = "missing" if self.actual is None else f"{self.actual:.4f}"
        expected = "-" if self.expected is None else f"{self.expected:.4f}"
        return (f"[{self.state.upper():5}] {self.dataset:<20} {self.retriever:<16} {self.metric:<9} expected {expected} "
                f"got {got} (tolerance {self.tolerance}; {self.origin})")


@contextlib.contextmanager
def _output_folder(output: Path | None) -> Iterator[Path]:
    if output is not None:
        yield Path(output)
        return
    folder = Path(tempfile.mkdtemp(prefix="prosper-bench-check-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_check(board: Leaderboard, datasets: list[str], results: Path,
              rerun: Callable[[Entry, Path], dict[str, Any]], config_of: Callable[[str], dict[str, Any]],
              load_ok: Callable[[str], str | None], output: Path | None = None,
              emit: Callable[[str], None] = print) -> dict[str, int]:
    """Grade every entry of ``datasets``; returns counts per state.

    ``rerun(entry, output)`` runs a ``check: true`` entry and returns its payload; ``config_of(name)`` is the
    registered config (as a dict); ``load_ok(dataset)`` is None when the dataset's files are there, else why not (a line
    that counts as a failure or a skip, as the caller decides by returning ``"FAIL: ..."`` or ``"skipped: ..."``).
    """
    counts = dict.fromkeys(STATES, 0)
    with _output_folder(output) as folder:
        for name in datasets:
            entries = board.for_dataset(name)
            if not entries:
                emit(f"[{name}] no leaderboard entries")
                continue
            if any(e.check for e in entries):
                problem = load_ok(name)
                if problem is not None:
                    emit(f"[{name}] {problem}")
                    counts["fail"] += problem.startswith("FAIL")
                    continue
            for entry in entries:
                if entry.check:
                    payload, origin = rerun(entry, folder), "rerun in a fresh cache"
                else:
                    path = newest_result_of_config(results, name, entry.retriever, config_of(entry.retriever))
                    if path is None:
                        if not entry.is_paper_row:
                            counts["no result"] += 1
                            emit(f"[SKIP ] {name:<20} {entry.retriever:<16} no result of the registered config "
                                 f"under {results}")
                        continue  # a paper row with no reproduction of ours to compare
                    payload, origin = load_result(path), str(path)
                rows = compare(entry, payload)
                if rows and rows[0][3] == "not comparable":
                    counts["not comparable"] += 1
                    emit(f"[N/C  ] {name:<20} {entry.retriever:<16} not comparable with the paper row: "
                         f"{comparable_with_paper(payload)} ({origin})")
                    continue
                for metric, expected, actual, state in rows:
                    counts[state] += 1
                    emit(CheckLine(name, entry.retriever, metric, expected, actual, state, origin,
                                   entry.tolerance).render())
    emit(f"\ncheck: {counts['ok']} ok, {counts['okish']} okish, {counts['fail']} fail"
         + "".join(f", {counts[s]} {s}" for s in ("not comparable", "no result") if counts[s]))
    return counts
