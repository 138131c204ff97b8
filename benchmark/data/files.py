"""What every loader shares: the :class:`Dataset` they return, their errors, and checked reading of data files.

Below the loaders (``datasets`` for Multi-CPR manifests, ``beir`` for a user's folder), so neither imports the other's
internals. Why strict: a silently dropped line or an unknown pid in the qrels changes every metric without anyone
noticing; every problem raises :class:`DataFormatError` naming the file and line, or is skipped and counted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DataError(RuntimeError):
    """A dataset cannot be found, fetched or verified."""


class DataFormatError(DataError):
    """A data file has a line the loader will not guess about."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        self.path, self.line = str(path), line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


# ----------------------------------------------------------------------------------------------------------- dataset
@dataclass
class Dataset:
    """Plain data, in the shapes ir-measures and pyserini use: ids are strings, qrels map qid -> {pid: relevance}."""

    name: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    train_queries: dict[str, str] = field(default_factory=dict)
    train_qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    corpus_label: str = "full"
    comparable_to_paper: bool = False
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> {path, sha256, rows}
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    notes: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """One hash over the data files used, so indexes and results can be tied to the exact data."""
        h = hashlib.sha256()
        for role in sorted(self.files):
            h.update(f"{role}={self.files[role]['sha256']};".encode())
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "corpus_label": self.corpus_label,
            "comparable_to_paper": self.comparable_to_paper,
            "fingerprint": self.fingerprint,
            "corpus_size": len(self.corpus),
            "queries": len(self.queries),
            "qrels_queries": len(self.qrels),
            "train_queries": len(self.train_queries),
            "train_pairs": sum(len(v) for v in self.train_qrels.values()),
            "files": self.files,
            "skipped": self.skipped,
            "notes": self.notes,
        }


# ------------------------------------------------------------------------------------------------------- TSV parsing
def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) for non-blank lines; a non-UTF-8 byte is an error naming the line."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFormatError(
                    path, number, f"not valid UTF-8 (byte {raw[err.start]:#04x} at column {err.start + 1})"
                ) from None
            text = text.rstrip("\r\n")
            if number == 1:
                text = text.removeprefix("\ufeff")
            if text.strip():
                yield number, text


def read_id_text(path: Path, kind: str, empty: str = "error", skipped: dict[str, int] | None = None) -> dict[str, str]:
    """Read ``id \\t text`` (corpus.tsv, *.query.txt). A tab inside the text is kept; a missing tab is malformed."""
    rows: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, line in read_lines(path):
        if "\t" not in line:
            raise DataFormatError(path, number, f"malformed {kind} line: expected '<id>\\t<text>', got {line[:60]!r}")
        key, text = line.split("\t", 1)
        key, text = key.strip(), text.strip()
        if not key:
            raise DataFormatError(path, number, f"empty {kind} id")
        if key in first_line:
            raise DataFormatError(path, number, f"duplicate {kind} id {key!r} (first seen on line {first_line[key]})")
        first_line[key] = number
        if not text:
            if empty == "error":
                raise DataFormatError(path, number, f"empty {kind} text for id {key!r}")
            if skipped is not None:
                skipped[f"empty {kind}"] = skipped.get(f"empty {kind}", 0) + 1
            continue
        rows[key] = text
    return rows


def read_qrels(path: Path) -> Iterator[tuple[int, str, str, int]]:
    """Yield (line, qid, pid, relevance) from TREC qrels (``qid 0 pid rel``, tab or space separated)."""
    for number, line in read_lines(path):
        parts = line.split()
        if len(parts) != 4:
            raise DataFormatError(path, number, f"malformed qrels line: expected 4 fields 'qid 0 pid rel', got {len(parts)}")
        try:
            rel = int(parts[3])
        except ValueError:
            raise DataFormatError(path, number, f"relevance {parts[3]!r} is not an integer") from None
        yield number, parts[0], parts[2], rel


def build_qrels(
    path: Path,
    queries: dict[str, str],
    corpus: dict[str, str],
    unknown_pid: str,
    skipped: dict[str, int],
    unknown_qid: str = "error",
) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    first_line: dict[tuple[str, str], int] = {}
    for number, qid, pid, rel in read_qrels(path):
        if (qid, pid) in first_line:
            if qrels.get(qid, {}).get(pid, rel) != rel:
                raise DataFormatError(path, number, f"query {qid!r} judges passage {pid!r} again with relevance {rel}, "
                                                    f"after {qrels[qid][pid]} on line {first_line[qid, pid]}: "
                                                    "keep one judgement per (query, passage)")
            skipped["repeated qrels lines"] = skipped.get("repeated qrels lines", 0) + 1
            continue
        first_line[qid, pid] = number
        if qid not in queries:
            if unknown_qid == "error":
                raise DataFormatError(path, number, f"qrels names query {qid!r}, which is not in the queries file")
            skipped["train qrels without query text"] = skipped.get("train qrels without query text", 0) + 1
            continue
        if pid not in corpus:
            if unknown_pid == "error":
                raise DataFormatError(path, number, f"qrels names passage {pid!r}, which is not in the corpus")
            skipped["train qrels whose passage is not in the corpus"] = (
                skipped.get("train qrels whose passage is not in the corpus", 0) + 1
            )
            continue
        qrels.setdefault(qid, {})[pid] = rel
    return qrels
