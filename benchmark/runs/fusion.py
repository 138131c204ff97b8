"""``python -m benchmark fuse``: hybrid rows - two or more rows' runs fused, as pyserini and ranx users combine BM25
with a dense model.

Methods (ranx's implementations, ``ranx.fuse``; a comparison test pins them to a hand computation): ``rrf``
(reciprocal rank fusion, Cormack et al. 2009: sum of 1/(k + rank), k chosen) and ``wsum`` (a weighted sum of
min-max-normalised scores, the weights chosen). The parameters are chosen on held-out queries, never on the ones they
are evaluated on: the dataset's queries are split into two seeded folds (as the training protocol splits the pool),
each fold is fused with the parameters that score best (MRR@10, ``ranx.optimize_fusion``) on the *other* fold, and
the folds' fused runs are merged - every query's ranking comes from parameters chosen without it.

The result is an ordinary result file (with its per-query file and run) under its own row name, recording its parts
(their rows, configs and result files) and each fold's parameters; it is current while every part's result is.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from benchmark.evaluation.measures import evaluate_with_per_query
from benchmark.evaluation.runfile import read_trec_run
from benchmark.records.results import environment, load_result, named_under, write_result
from benchmark.records.selection import select_results

METHODS = ("rrf", "wsum")


def _ranx_run(run: dict[str, list[tuple[str, float]]], qids: list[str]):
    from ranx import Run

    return Run({q: {d: float(s) for d, s in run.get(q, [])} for q in qids})  # every query, empty where no hits


def fuse_runs(runs: list[dict[str, list[tuple[str, float]]]], qrels: dict[str, dict[str, int]], method: str,
              folds: int = 2, seed: int = 13, k: int = 1000) -> tuple[dict[str, list[tuple[str, float]]], list[dict]]:
    """The fused run (top ``k`` per query) and each fold's chosen parameters (chosen on the other folds' queries)."""
    from ranx import Qrels, fuse, optimize_fusion

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    qids = sorted(qrels)
    random.Random(seed).shuffle(qids)
    parts = [sorted(qids[i::folds]) for i in range(folds)]
    fused: dict[str, list[tuple[str, float]]] = {}
    chosen = []
    for i, held_out in enumerate(parts):
        tune = sorted(q for j, other in enumerate(parts) if j != i for q in other)
        norm = "min-max" if method == "wsum" else None
        tune_runs = [_ranx_run(run, tune) for run in runs]
        params = optimize_fusion(Qrels({q: dict(qrels[q]) for q in tune}), tune_runs, norm=norm, method=method,
                                 metric="mrr@10", show_progress=False)
        result = fuse([_ranx_run(run, held_out) for run in runs], norm=norm, method=method, params=params)
        for q in held_out:
            scores = dict(result.run[q]) if q in result.run else {}  # a numba typed dict: no .get with a default
            hits = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
            fused[q] = [(d, float(s)) for d, s in hits]
        chosen.append({"fold": i, "evaluated_queries": len(held_out), "tuned_on_queries": len(tune),
                       "params": {key: ([float(x) for x in v] if isinstance(v, tuple | list) else float(v))
                                  for key, v in params.items()}})
    return fused, chosen


def fuse_rows(results: Path, dataset, rows: list[str], method: str, output: Path, name: str | None = None
              ) -> tuple[Path, dict[str, Any]]:
    """Fuse the current results of ``rows`` on ``dataset`` (a loaded :class:`benchmark.data.files.Dataset`)."""
    selected = select_results(results, dataset.name, rows)
    runs, parts = [], []
    for row, pick in selected.items():
        trec = pick.path.with_suffix(".trec")
        if not trec.exists():
            raise ValueError(f"{row}: its run file {trec} is not here (run files are not committed): rerun "
                             f"'python -m benchmark run {row} --dataset {dataset.name}' first")
        runs.append(read_trec_run(trec))
        payload = load_result(pick.path)
        parts.append({"row": row, "file": named_under(pick.path, results), "retriever": payload.get("retriever", {}),
                      "provenance": payload.get("provenance", {}),
                      "git": payload.get("environment", {}).get("git", {})})
    fused, chosen = fuse_runs(runs, dataset.qrels, method)
    metrics, per_query = evaluate_with_per_query(fused, dataset.qrels)
    name = name or f"{'+'.join(rows)}@{method}"
    payload = {
        "dataset": dataset.describe(),
        "retriever": {"name": name, "registered_as": None, "overrides": {}, "class": None, "paper_row": None,
                      "description": f"{method} fusion of {', '.join(rows)} (parameters chosen on held-out queries)",
                      "config": {"method": method, "parts": rows}},
        "fusion": {"method": method, "norm": "min-max" if method == "wsum" else None, "parts": parts,
                   "params_per_fold": chosen, "library": "ranx",
                   "protocol": "2 seeded folds of the dataset's queries: each fold fused with the parameters that "
                               "score best (MRR@10) on the other fold"},
        "provenance": {"parts": {p["row"]: p["provenance"] for p in parts}},
        "k": max((len(h) for h in fused.values()), default=0),
        "metrics": metrics, "cost": {}, "environment": environment(),
    }
    digest = hashlib.sha256(json.dumps([p["file"] for p in parts] + [method]).encode()).hexdigest()[:12]
    path = write_result(payload, output, dataset.name, name, digest, run=fused, per_query=per_query)
    return path, payload
