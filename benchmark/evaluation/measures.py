"""Effectiveness metrics through ir-measures, averaged over *all* qrels queries, with one tie rule for every measure.

Why our own averaging: trec_eval (and so ir-measures' default aggregate) averages over queries present in the run,
and Multi-CPR's own script does the same; a retriever that returns nothing for a hard query would then look better.
Here every qrels query counts, and a query with no results scores 0 on every measure.

Why one tie rule: ir-measures hands RR@10 to its msmarco provider (ties broken by docid *ascending*) and Success/R to
pytrec_eval (ties by docid *descending*), so on a run with tied scores a query could have RR@10 > 0 and Hit@10 = 0.
:func:`canonical_run` therefore ranks every query once, by trec_eval's convention - score descending, then docid
descending (string order) - and the providers get rank-derived, tie-free scores, so every measure reads the same order.

Duplicates: a passage listed twice for one query keeps its *best* score (the official Multi-CPR script keeps the
first, highest-ranked line; the last line winning, as a plain dict would do, silently moves a top-1 hit to the bottom).
The count is reported in the metrics (``duplicate_hits_dropped``) and logged as a warning.

Names follow the paper: MRR@10 (= RR@10), Hit@k (= Success@k: the positive is in the top k; with Multi-CPR's one
positive per query this equals Recall@k), Recall@k (= R@k); nDCG@10 is C-MTEB's main score for this data, MAP the
mean of trec_eval's AP over the whole returned list.

Per-query values (:func:`per_query`) are what significance tests pair; a result's averages are their means over all
qrels queries, and the per-query file written beside each result (``benchmark.evaluation.perquery``) holds them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import ir_measures
from ir_measures import AP, RR, R, Success, nDCG

from retrievers.base import Run

log = logging.getLogger("benchmark.evaluation.measures")

CUTOFFS = (1, 10, 100, 1000)
MEASURES = {"MRR@10": RR @ 10, "nDCG@10": nDCG @ 10, "MAP": AP}
MEASURES.update({f"Hit@{k}": Success @ k for k in CUTOFFS})
MEASURES.update({f"Recall@{k}": R @ k for k in CUTOFFS})
#: The per-query file's columns: result metric -> the per-query measure whose mean it is.
PER_QUERY = {"MRR@10": "RR@10", "nDCG@10": "nDCG@10", "MAP": "AP", **{f"Hit@{k}": f"Hit@{k}" for k in CUTOFFS}}
TIE_RULE = "score descending, then docid descending (trec_eval)"


def canonical_run(run: Run) -> tuple[dict[str, list[str]], int]:
    """Each query's passages in evaluation order (see the module docstring) and the number of duplicates dropped."""
    ranked: dict[str, list[str]] = {}
    dropped = 0
    for qid, hits in run.items():
        best: dict[str, float] = {}
        for docid, score in hits:
            score = float(score)
            if docid in best:
                dropped += 1
                if score <= best[docid]:
                    continue
            best[docid] = score
        # two stable sorts: docid descending, then score descending (ties keep the docid order)
        order = sorted(best, reverse=True)
        order.sort(key=best.__getitem__, reverse=True)
        ranked[qid] = order
    return ranked, dropped


def per_query(run: Run, qrels: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, float]]:
    """{measure name: {qid: value}} for every qrels query (0 where the run has nothing for it)."""
    values, _ = _per_query(run, qrels)
    return values


def _per_query(run: Run, qrels: Mapping[str, Mapping[str, int]]) -> tuple[dict[str, dict[str, float]], int]:
    by_measure = {name: dict.fromkeys(qrels, 0.0) for name in MEASURES}
    reverse = {measure: name for name, measure in MEASURES.items()}
    ranked, dropped = canonical_run({q: hits for q, hits in run.items() if q in qrels})
    # strictly decreasing scores in canonical order: no provider has a tie left to break
    scored = [ir_measures.ScoredDoc(q, d, float(len(docs) - rank)) for q, docs in ranked.items()
              for rank, d in enumerate(docs)]
    judged = [ir_measures.Qrel(q, d, int(r)) for q, docs in qrels.items() for d, r in docs.items()]
    if scored:
        for metric in ir_measures.iter_calc(list(MEASURES.values()), judged, scored):
            by_measure[reverse[metric.measure]][metric.query_id] = float(metric.value)
    return by_measure, dropped


def evaluate(run: Run, qrels: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """Mean of each measure over all qrels queries, plus how many queries had no results and duplicates dropped."""
    metrics, _ = evaluate_with_per_query(run, qrels)
    return metrics


def judged(qrels: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """The queries that have at least one relevant passage (relevance > 0): only they can be scored. A query judged
    only "not relevant" has no right answer; counting it as 0 would lower every row alike and say nothing."""
    return {q: dict(docs) for q, docs in qrels.items() if any(r > 0 for r in docs.values())}


def evaluate_with_per_query(run: Run, qrels: Mapping[str, Mapping[str, int]]
                            ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """:func:`evaluate`'s metrics and the per-query values they average ({per-query measure: {qid: value}}, the
    columns of :data:`PER_QUERY`), from one evaluation - so the averages are exactly the per-query means."""
    scorable = judged(qrels)
    unjudged = len(qrels) - len(scorable)
    if unjudged:
        log.warning("%d queries have no relevant passage in the qrels (relevance 0 only): left out of the averages",
                    unjudged)
    qrels = scorable
    if not qrels:
        raise ValueError("no qrels to evaluate against: no query has a passage judged relevant (relevance > 0)")
    values, dropped = _per_query(run, qrels)
    if dropped:
        log.warning("%d duplicate (query, passage) lines in the run: each passage kept its best score", dropped)
    metrics = {name: math.fsum(v.values()) / len(qrels) for name, v in values.items()}  # exact: order-free
    metrics["queries"] = len(qrels)
    metrics["queries_without_results"] = sum(1 for q in qrels if not run.get(q))
    metrics["queries_without_relevant_passages"] = unjudged
    metrics["duplicate_hits_dropped"] = dropped
    return metrics, {column: values[name] for name, column in PER_QUERY.items()}
