"""Leaderboard regression, as pyserini's two-click reproductions (2CR) do it - with checks that can fail.

``results/leaderboard.yaml`` lists, per dataset and row, the expected metrics. Grading, per metric:

- **ok**: equal to the expectation to the 4 printed decimals (|diff| <= 5e-5);
- **okish**: within the entry's ``tolerance`` - only entries that declare one: trained models (float training
  differs across CPU families and seeds; the entry states the measured spread its tolerance comes from) and paper
  rows (a reproduction approaches them, never equals them). Entries without a tolerance are graded exactly: BM25 and
  zero-shot encoders compute the same numbers on every x86-64 CPU;
- **fail**: otherwise.

Entries marked ``check: true`` are rerun on every CI run, in a fresh cache (:func:`retrievers.resources.cache.temporary_cache`)
so a stale cached index cannot stand in for the code under test. Other entries are graded against the newest result
of the row's *current* registered config (``benchmark.records.rows.currency``): a result of another config says nothing about
the row. Where there is none, the entry is "no result" - a failure under ``--require-data`` (CI), so changing a
registered config without rerunning its row fails. A result whose code changed after it ran is graded and marked
stale, naming the files. Paper rows are graded only against results comparable with the paper - full corpus,
pretrained weights and real tokenizers, the registered config up to where the weights are and how the run was fitted
on a GPU (``benchmark.records.rows.PAPER_NEUTRAL``) - and anything else is reported as ``not comparable``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmark import REPO_ROOT
from benchmark.records.results import current_results, find_results, load_result, provenance_label
from benchmark.records.rows import PAPER_NEUTRAL, meaningful_overrides, registered_as, same_result_config
from benchmark.records.staleness import staleness

LEADERBOARD_FILE = REPO_ROOT / "results" / "leaderboard.yaml"
EXACT = 5e-5  # expectations are written with 4 decimals
STATES = ("ok", "okish", "fail", "not comparable", "no result", "stale")


class LeaderboardError(ValueError):
    """The leaderboard file cannot be read: one line naming the file and the entry."""


@dataclass
class Entry:
    dataset: str
    retriever: str
    metrics: dict[str, float]
    tolerance: float = 0.0
    check: bool = False
    source: str = "measured"
    note: str = ""
    tolerance_source: str = ""

    @property
    def is_paper_row(self) -> bool:
        return self.source.startswith("paper")

    def needed_k(self) -> int:
        """The smallest run depth that can give every listed metric (Hit@1000 needs 1,000 hits per query)."""
        return max((int(m.group(1)) for name in self.metrics if (m := re.search(r"@(\d+)$", name))), default=10)


@dataclass
class Leaderboard:
    entries: list[Entry]
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_dataset(self, dataset: str) -> list[Entry]:
        return [e for e in self.entries if e.dataset == dataset]


def load_leaderboard(path: Path = LEADERBOARD_FILE, known_rows: set[str] | None = None) -> Leaderboard:
    """Read and check the leaderboard; every problem is a :class:`LeaderboardError` naming the file and entry."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise LeaderboardError(f"{path}: cannot be read ({err.strerror or err})") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise LeaderboardError(f"{path}: not valid YAML{where} ({getattr(err, 'problem', None) or err})") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("datasets", {}), dict):
        raise LeaderboardError(f"{path}: expected a mapping with a 'datasets' key")
    defaults = raw.get("defaults") or {}
    entries, datasets = [], {}
    for dataset, block in (raw.get("datasets") or {}).items():
        if not isinstance(block, dict):
            raise LeaderboardError(f"{path}: datasets.{dataset} must be a mapping")
        datasets[dataset] = {k: v for k, v in block.items() if k != "entries"}
        for retriever, entry in (block.get("entries") or {}).items():
            where = f"{path}: {dataset}/{retriever}"
            if not isinstance(entry, dict):
                raise LeaderboardError(f"{where}: an entry must be a mapping")
            if known_rows is not None and retriever not in known_rows:
                import difflib

                close = difflib.get_close_matches(retriever, known_rows, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise LeaderboardError(f"{where}: no registered retriever {retriever!r}{hint}")
            metrics = {}
            for name, value in (entry.get("metrics") or {}).items():
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise LeaderboardError(f"{where}: metric {name} = {value!r} is not a number")
                metrics[name] = float(value)
            if not metrics:
                raise LeaderboardError(f"{where}: has no metrics")
            tolerance = entry.get("tolerance", defaults.get("tolerance", 0.0))
            if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance < 0:
                raise LeaderboardError(f"{where}: tolerance {tolerance!r} must be a number >= 0")
            entries.append(Entry(dataset, retriever, metrics, float(tolerance), bool(entry.get("check", False)),
                                 entry.get("source", block.get("source", "measured")), entry.get("note", ""),
                                 entry.get("tolerance_source", "")))
    return Leaderboard(entries, datasets)


def status(expected: float, actual: float | None, tolerance: float) -> str:
    """ok / okish / fail for one metric (see the module docstring)."""
    if actual is None:
        return "fail"
    diff = abs(actual - expected)
    if diff <= EXACT:
        return "ok"
    if diff <= tolerance + EXACT:
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
    if entry.is_paper_row and comparable_with_paper(payload) is not None:
        return [(name, expected, metrics.get(name), "not comparable") for name, expected in entry.metrics.items()]
    rows = []
    for name, expected in entry.metrics.items():
        actual = metrics.get(name)
        actual = None if actual is None else float(actual)
        rows.append((name, expected, actual, status(expected, actual, entry.tolerance)))
    return rows


def paper_result(results: Path, dataset: str, row: str, registry: dict[str, Any]) -> Path | None:
    """The newest result that reproduces paper row ``row``: its registered config, up to where the weights are and how
    the run was fitted on a GPU (``--set model_path=DIR`` files the run as a variant; it is still this row's
    reproduction)."""
    import dataclasses

    if row not in registry:
        return None
    registered = dataclasses.asdict(registry[row].build().config)
    for path in reversed(find_results(results, dataset)):
        payload = load_result(path)
        if registered_as(payload) != row:
            continue
        if meaningful_overrides(payload.get("retriever", {}).get("overrides"), PAPER_NEUTRAL):
            continue
        if same_result_config(registered, payload.get("retriever", {}).get("config") or {}, PAPER_NEUTRAL):
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
        grading = "exact" if self.tolerance == 0 else f"tolerance {self.tolerance}"
        return (f"[{self.state.upper():5}] {self.dataset:<20} {self.retriever:<16} {self.metric:<9} expected {expected} "
                f"got {got} ({grading}; {self.origin})")


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
              rerun: Callable[[Entry, Path], dict[str, Any]], registry: dict[str, Any],
              load_ok: Callable[[str], str | None], output: Path | None = None,
              emit: Callable[[str], None] = print, require_results: bool = False) -> dict[str, int]:
    """Grade every entry of ``datasets``; returns counts per state.

    ``rerun(entry, output)`` runs a ``check: true`` entry and returns its payload; ``registry`` is the registry (a
    result is graded only if it comes from its row's current config); ``load_ok(dataset)`` is None when the dataset's
    files are there, else why not (``"FAIL: ..."`` or ``"skipped: ..."``, as the caller decides).
    ``require_results``: an entry with no current result is a failure, not a skip.
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
            current = current_results(results, name, registry)[0] if any(not e.check for e in entries) else {}
            for entry in entries:
                _grade(entry, name, results, folder, rerun, registry, current, counts, emit, require_results)
    emit(f"\ncheck: {counts['ok']} ok, {counts['okish']} okish, {counts['fail']} fail"
         + "".join(f", {counts[s]} {s}" for s in ("not comparable", "no result", "stale") if counts[s]))
    return counts


def _grade(entry: Entry, name: str, results: Path, folder: Path, rerun, registry, current: dict[str, Path],
           counts: dict[str, int], emit, require_results: bool) -> None:
    if entry.check:
        payload, origin = rerun(entry, folder), "rerun in a fresh cache"
    else:
        path = (paper_result(results, name, entry.retriever, registry) if entry.is_paper_row
                else current.get(entry.retriever))
        if path is None:
            if entry.is_paper_row:
                return  # a paper row with no reproduction of ours to compare
            counts["no result"] += 1
            counts["fail"] += require_results
            state = "FAIL " if require_results else "SKIP "
            emit(f"[{state}] {name:<20} {entry.retriever:<16} no result of the current registered config under "
                 f"{results}: run 'python -m benchmark run {entry.retriever} --dataset {name}' and commit its result")
            return
        payload, origin = load_result(path), str(path)
        stale = staleness(payload)
        if stale and stale.startswith("stale"):
            counts["stale"] += 1
            origin += f"; {stale}"
    rows = compare(entry, payload)
    if rows and rows[0][3] == "not comparable":
        counts["not comparable"] += 1
        emit(f"[N/C  ] {name:<20} {entry.retriever:<16} not comparable with the paper row: "
             f"{comparable_with_paper(payload)} ({origin})")
        return
    k = payload.get("k", 1000)
    if k < entry.needed_k():
        counts["fail"] += 1
        emit(f"[FAIL ] {name:<20} {entry.retriever:<16} the result has k={k}; its metrics need k >= "
             f"{entry.needed_k()} ({origin})")
        return
    for metric, expected, actual, state in rows:
        counts[state] += 1
        emit(CheckLine(name, entry.retriever, metric, expected, actual, state, origin, entry.tolerance).render())
