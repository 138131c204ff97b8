"""TREC run files (``qid Q0 docid rank score tag``), the format every IR tool reads - plain or gzipped.

Here, beside the retrievers, because Lucene's batch search hands its hits back as one; ``benchmark.evaluation.runfile`` adds the
checks a user's run file needs before evaluation.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

Run = dict[str, list[tuple[str, float]]]


class RunFormatError(ValueError):
    """A run file line that cannot be read: names the file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        self.path, self.line, self.message = str(path), line, message
        super().__init__(f"{path}:{line}: {message}" if line is not None else f"{path}: {message}")


def write_trec_run(run: Run, path: Path, tag: str = "prosper-bench") -> None:
    """Write ``run`` atomically; on any failure (a full disk) no half-written hidden file is left behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for qid, hits in run.items():
                for rank, (docid, score) in enumerate(hits, start=1):
                    fh.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _open(path: Path):
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gzipped else open(path, encoding="utf-8")


def read_trec_run(path: Path) -> Run:
    """Read a TREC run (gzip detected by its magic bytes); hits in file order per query (trec_eval re-sorts by score).

    A line without 6 fields, a score that is not a finite number (``nan`` would rank at random), or a file that is not
    UTF-8 text is a :class:`RunFormatError` naming the line.
    """
    run: Run = {}
    try:
        with _open(Path(path)) as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 6:
                    raise RunFormatError(path, number, f"malformed run line: expected 6 fields "
                                                       f"'qid Q0 docid rank score tag', got {len(parts)}")
                try:
                    score = float(parts[4])
                except ValueError:
                    raise RunFormatError(path, number, f"score {parts[4]!r} is not a number") from None
                if not math.isfinite(score):
                    raise RunFormatError(path, number, f"score {parts[4]!r} is not a finite number: a run with "
                                                       "NaN or infinite scores has no ranking to evaluate")
                run.setdefault(parts[0], []).append((parts[2], score))
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as err:
        raise RunFormatError(path, None, f"not a readable TREC run (plain or gzipped UTF-8 text): {err}") from None
    return run
