"""Per-query scores beside every result file: what paired significance tests need, small enough to commit.

``<result>.perquery.tsv.gz``: a header ``qid RR@10 nDCG@10 AP Hit@1 Hit@10 Hit@100 Hit@1000`` (tab separated) and
one line per qrels query in qid order, values written exactly (``repr``), so each column's mean is the result's
metric to the last digit. Gzip without a timestamp or file name: the same scores give the same bytes.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

SUFFIX = ".perquery.tsv.gz"


def sidecar_path(result: Path) -> Path:
    result = Path(result)
    return result.with_name(result.stem + SUFFIX)


def write_per_query(path: Path, values: dict[str, dict[str, float]]) -> Path:
    """Write {measure: {qid: value}} (every measure over the same qids) atomically; returns the path."""
    path = Path(path)
    columns = list(values)
    qids = sorted(next(iter(values.values()))) if values else []
    text = io.StringIO()
    text.write("\t".join(["qid", *columns]) + "\n")
    for qid in qids:
        text.write("\t".join([qid, *(repr(float(values[c][qid])) for c in columns)]) + "\n")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
        out.write(text.getvalue().encode("utf-8"))
    os.replace(tmp, path)
    return path


def read_per_query(path: Path) -> dict[str, dict[str, float]]:
    """{measure: {qid: value}} from a per-query file."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if not header or header[0] != "qid":
            raise ValueError(f"{path}: not a per-query file (its header must start with 'qid')")
        values: dict[str, dict[str, float]] = {c: {} for c in header[1:]}
        for number, line in enumerate(fh, start=2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != len(header):
                raise ValueError(f"{path}:{number}: expected {len(header)} fields, got {len(parts)}")
            for column, value in zip(header[1:], parts[1:], strict=True):
                values[column][parts[0]] = float(value)
    return values
