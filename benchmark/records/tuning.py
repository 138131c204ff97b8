"""``python -m benchmark choose``: pick a knob's value on *validation*, never on the evaluated queries.

A sweep (``tradeoff``) trains a row at several values of one knob; every point's result file records its training
curve, whose ``val_mrr`` comes from held-out *training* pairs. The chosen value is the sparsest one (for
``flops_scale``: the largest FLOPS weight) whose validation MRR, averaged over the folds' best epochs, is within
``tolerance`` of the best point's: as sparse as possible at no measurable loss on validation. The dev queries the
report evaluates play no part. The choice and every point are written to ``results/tuning/``, and the registry cites
that file where it sets the value.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from benchmark.records.results import environment, find_results, load_result, named_under


def validation_mrr(payload: dict[str, Any]) -> float | None:
    """Mean over folds of the best epoch's validation MRR (None: no validation recorded)."""
    provenance = payload.get("provenance", {})
    folds = provenance.get("training_per_fold") or [provenance.get("training") or {}]
    bests = [max((r["val_mrr"] for r in fold.get("history", []) if "val_mrr" in r), default=None) for fold in folds]
    bests = [b for b in bests if b is not None]
    return statistics.fmean(bests) if bests else None


def choose(results: Path, dataset: str, row: str, knob: str, tolerance: float = 0.01) -> dict[str, Any]:
    """The sweep points of ``row``'s ``knob`` on ``dataset`` (newest per value) and the value chosen on validation."""
    points: dict[str, dict[str, Any]] = {}
    for path in find_results(Path(results), dataset, row):
        payload = load_result(path)
        sweep = payload.get("sweep") or {}
        if sweep.get("knob") != knob:
            continue
        cost = payload.get("cost", {})
        points[str(sweep["value"])] = {
            "value": sweep["value"], "validation_mrr": validation_mrr(payload),
            "doc_terms_mean": cost.get("doc_terms_mean"), "query_terms_mean": cost.get("query_terms_mean"),
            "flops": cost.get("flops"), "file": named_under(path, Path(results).parent)}
    scored = [p for p in points.values() if p["validation_mrr"] is not None]
    if not scored:
        raise ValueError(f"no {knob} sweep points of {row} with validation scores under {results}/{dataset}")
    best = max(p["validation_mrr"] for p in scored)
    eligible = [p for p in scored if p["validation_mrr"] >= best - tolerance]
    chosen = max(eligible, key=lambda p: float(p["value"]))  # the sparsest within tolerance
    return {"dataset": dataset, "row": row, "knob": knob, "tolerance": tolerance,
            "rule": f"the largest {knob} whose validation MRR (held-out training pairs, mean over folds of the best "
                    f"epoch) is within {tolerance} of the best point's",
            "points": sorted(points.values(), key=lambda p: float(p["value"])), "chosen": chosen["value"],
            "environment": environment()}


def write(choice: dict[str, Any], output: Path) -> Path:
    path = Path(output) / f"{choice['dataset']}-{choice['row']}-{choice['knob']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(choice, indent=2, default=str) + "\n", encoding="utf-8")
    return path
