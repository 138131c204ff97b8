"""Where a run's time and memory go: wall time and peak resident memory per stage, for the cost-growth table.

Stages: ``load`` (read and verify the data), ``train``, ``tokenize`` / ``encode`` (turn passages into tokens or
vectors), ``build`` (write the index), ``search``, ``evaluate``. Peak RSS is the process's high-water mark at the end of
each stage (``getrusage``): it only grows, so the stage where it jumps is the one that needed the memory.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from collections.abc import Iterator
from typing import Any


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 1024)


class StageClock:
    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}

    def add(self, name: str, seconds: float) -> None:
        entry = self.stages.setdefault(name, {"wall_s": 0.0})
        entry["wall_s"] += seconds
        entry["peak_rss_mb"] = round(peak_rss_mb(), 1)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def merge_index_stages(self, extra: dict[str, Any], index_seconds: float) -> None:
        """Split an ``index`` call into the sub-stages a retriever timed (``stats.extra['stages']``)."""
        parts = dict(extra.get("stages") or {})
        for name, seconds in parts.items():
            self.add(name, seconds)
        rest = index_seconds - sum(parts.values())
        if not parts or rest > 0.05:
            self.add("build" if parts else "index", max(rest, 0.0))
