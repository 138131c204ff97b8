"""``python -m benchmark tradeoff``: effectiveness against cost for the learned sparse retrievers.

A sweep varies one knob at a time around a retriever's registered config (the grid is data, in
``benchmark/configs/tradeoff.yaml``):

- ``flops_scale``: multiplies both FLOPS weights (``lambda_q``, ``lambda_d``) - retrains;
- ``lfw``: (query, document) Lexical Focusing Window sizes - retrains;
- ``query_top_m``: online query pruning to the m heaviest terms - reuses the trained model and index (search-only);
- ``serving``: ``approximate`` serving (statically pruned lists; the result records recall of the exact top-k) -
  reuses the trained model and index (search-only).

Every point is an ordinary result file under ``results/tradeoff/<dataset>/<retriever>/`` with a ``sweep`` record
(knob, value), so ``plot`` can draw MRR@10 against FLOPS and against measured latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmark import REPO_ROOT
from benchmark.registry import RetrieverSpec

GRID_FILE = REPO_ROOT / "benchmark" / "configs" / "tradeoff.yaml"


@dataclass(frozen=True)
class SweepPoint:
    retriever: str
    knob: str
    value: Any
    overrides: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.retriever} {self.knob}={self.value}"


def load_grid(path: Path = GRID_FILE) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def sweep_points(spec: RetrieverSpec, grid: dict[str, Any], overrides: dict[str, Any] | None = None
                 ) -> list[SweepPoint]:
    """The points of every knob for ``spec`` (with ``overrides`` applied); ``flops_scale`` 1.0 is the base config."""
    base = spec.build(overrides).config
    points = []
    for scale in grid.get("flops_scale", []):
        points.append(SweepPoint(spec.name, "flops_scale", scale,
                                 {"lambda_q": base.lambda_q * scale, "lambda_d": base.lambda_d * scale}))
    for window in grid.get("lfw", []):
        q, d = (None, None) if window is None else window
        points.append(SweepPoint(spec.name, "lfw", None if window is None else f"{q}/{d}",
                                 {"lfw_query": q, "lfw_doc": d}))
    for m in grid.get("query_top_m", []):
        points.append(SweepPoint(spec.name, "query_top_m", m, {"query_top_m": m}))
    for mode in grid.get("serving", []) if hasattr(base, "serving") else []:
        points.append(SweepPoint(spec.name, "serving", mode, {"serving": mode}))
    return points
