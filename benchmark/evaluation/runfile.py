"""TREC run files for the command line: read (plain or gzipped) and written by ``retrievers.trec``; a malformed line is
a :class:`benchmark.data.datasets.DataFormatError` naming it, so ``eval`` refuses it in one line."""

from __future__ import annotations

from pathlib import Path

from benchmark.data.files import DataFormatError
from retrievers.trec import Run, RunFormatError, write_trec_run
from retrievers.trec import read_trec_run as _read

__all__ = ["read_trec_run", "write_trec_run"]


def read_trec_run(path: Path) -> Run:
    try:
        return _read(path)
    except RunFormatError as err:
        raise DataFormatError(err.path, err.line, err.message) from None
