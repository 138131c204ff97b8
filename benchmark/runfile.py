"""TREC run files (``qid Q0 docid rank score tag``), the format every IR tool reads."""

from __future__ import annotations

from pathlib import Path

from benchmark.data import DataFormatError
from retrievers.base import Run


def write_trec_run(run: Run, path: Path, tag: str = "prosper-bench") -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for qid, hits in run.items():
            for rank, (docid, score) in enumerate(hits, start=1):
                fh.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
    tmp.replace(path)


def read_trec_run(path: Path) -> Run:
    """Read a TREC run; hits are returned in file order per query (which trec_eval re-sorts by score)."""
    run: Run = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 6:
                raise DataFormatError(path, number, f"malformed run line: expected 6 fields, got {len(parts)}")
            try:
                score = float(parts[4])
            except ValueError:
                raise DataFormatError(path, number, f"score {parts[4]!r} is not a number") from None
            run.setdefault(parts[0], []).append((parts[2], score))
    return run
