"""Effectiveness metrics through ir-measures, averaged over *all* qrels queries.

Why our own averaging: trec_eval (and so ir-measures' default aggregate) averages over queries present in the run,
and Multi-CPR's own script does the same; a retriever that returns nothing for a hard query would then look better.
Here every qrels query counts, and a query with no results scores 0 on every measure.

Names follow the paper: MRR@10 (= RR@10), Hit@k (= Success@k: the positive is in the top k; with Multi-CPR's one
positive per query this equals Recall@k), Recall@k (= R@k). Ties in score are ordered as trec_eval orders them.
"""

from __future__ import annotations

from collections.abc import Mapping

import ir_measures
from ir_measures import RR, R, Success

from retrievers.base import Run

CUTOFFS = (1, 10, 100, 1000)
MEASURES = {"MRR@10": RR @ 10}
MEASURES.update({f"Hit@{k}": Success @ k for k in CUTOFFS})
MEASURES.update({f"Recall@{k}": R @ k for k in CUTOFFS})


def per_query(run: Run, qrels: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, float]]:
    """{measure name: {qid: value}} for every qrels query (0 where the run has nothing for it)."""
    by_measure = {name: dict.fromkeys(qrels, 0.0) for name in MEASURES}
    reverse = {measure: name for name, measure in MEASURES.items()}
    scored = [ir_measures.ScoredDoc(q, d, float(s)) for q, hits in run.items() if q in qrels for d, s in hits]
    judged = [ir_measures.Qrel(q, d, int(r)) for q, docs in qrels.items() for d, r in docs.items()]
    if scored:
        for metric in ir_measures.iter_calc(list(MEASURES.values()), judged, scored):
            by_measure[reverse[metric.measure]][metric.query_id] = float(metric.value)
    return by_measure


def evaluate(run: Run, qrels: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """Mean of each measure over all qrels queries, plus how many queries had no results."""
    if not qrels:
        raise ValueError("no qrels to evaluate against")
    values = per_query(run, qrels)
    metrics = {name: sum(v.values()) / len(qrels) for name, v in values.items()}
    metrics["queries"] = len(qrels)
    metrics["queries_without_results"] = sum(1 for q in qrels if not run.get(q))
    return metrics
