"""Metric values on hand-made runs whose answers are worked out by hand."""

from __future__ import annotations

import pytest

from benchmark.evaluation.measures import evaluate, per_query
from benchmark.evaluation.runfile import read_trec_run, write_trec_run

QRELS = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}, "q4": {"d": 1}}


def test_hand_computed_values():
    run = {
        "q1": [("a", 9.0), ("x", 8.0)],  # rank 1 -> RR 1
        "q2": [("x", 9.0), ("y", 8.0), ("b", 7.0)],  # rank 3 -> RR 1/3
        "q3": [(f"n{i}", 100.0 - i) for i in range(10)] + [("c", 1.0)],  # rank 11 -> RR@10 0, in top 100
        # q4: no results at all -> counts as 0, not left out of the mean
    }
    m = evaluate(run, QRELS)
    assert m["MRR@10"] == pytest.approx((1 + 1 / 3 + 0 + 0) / 4)
    assert m["Hit@1"] == pytest.approx(1 / 4)
    assert m["Hit@10"] == pytest.approx(2 / 4)
    assert m["Hit@100"] == pytest.approx(3 / 4)
    assert m["Recall@1000"] == pytest.approx(3 / 4)
    assert m["queries"] == 4 and m["queries_without_results"] == 1


def test_recall_differs_from_hit_with_two_positives():
    qrels = {"q": {"a": 1, "b": 1}}
    run = {"q": [("a", 2.0), ("z", 1.0)]}
    m = evaluate(run, qrels)
    assert m["Hit@10"] == 1.0 and m["Recall@10"] == 0.5


def test_queries_outside_qrels_are_ignored_and_empty_run_scores_zero():
    m = evaluate({"other": [("a", 1.0)]}, QRELS)
    assert m["MRR@10"] == 0.0 and m["queries_without_results"] == 4
    assert per_query({}, QRELS)["MRR@10"] == dict.fromkeys(QRELS, 0.0)


def test_trec_run_round_trip(tmp_path):
    run = {"q1": [("a", 2.5), ("b", 1.25)], "q2": [("c", 0.5)]}
    path = tmp_path / "run.trec"
    write_trec_run(run, path, tag="t")
    assert path.read_text().splitlines()[0] == "q1 Q0 a 1 2.500000 t"
    assert read_trec_run(path) == run
    assert evaluate(read_trec_run(path), QRELS)["MRR@10"] == pytest.approx(1 / 4)


def _pytrec(run, qrels, measures):
    import pytrec_eval

    evaluator = pytrec_eval.RelevanceEvaluator({q: dict(d) for q, d in qrels.items()}, measures)
    return evaluator.evaluate({q: {d: float(s) for d, s in hits} for q, hits in run.items()})


def test_ties_follow_trec_eval_for_every_measure():
    """A fully tied run: every measure reads one order, trec_eval's (score desc, then docid desc)."""
    import random

    rng = random.Random(3)
    qrels = {f"q{i}": {f"d{rng.randrange(300)}": 1} for i in range(200)}
    run = {q: [(f"d{j}", 1.0) for j in rng.sample(range(300), 60)] for q in qrels}
    for qid, hits in run.items():  # the positive often among the tied hits
        positive = next(iter(qrels[qid]))
        if rng.random() < 0.7 and positive not in dict(hits):
            hits.append((positive, 1.0))
    ours = per_query(run, qrels)
    reference = _pytrec(run, qrels, {"recip_rank", "success_1", "success_10", "success_100", "ndcg_cut_10", "map"})
    for qid in qrels:
        assert ours["nDCG@10"][qid] == pytest.approx(reference[qid]["ndcg_cut_10"], abs=1e-9), qid
        assert ours["MAP"][qid] == pytest.approx(reference[qid]["map"], abs=1e-9), qid
        rr = reference[qid]["recip_rank"]
        assert ours["MRR@10"][qid] == pytest.approx(rr if rr >= 0.1 else 0.0), qid
        assert ours["Hit@10"][qid] == reference[qid]["success_10"], qid
        assert ours["Hit@1"][qid] == reference[qid]["success_1"], qid
        assert (ours["MRR@10"][qid] > 0) == (ours["Hit@10"][qid] == 1.0), qid  # the two once disagreed on 505 of 1000


def test_partial_ties_rank_by_docid_descending():
    qrels = {"q": {"a": 1}}
    # a, b, c tie below x: trec_eval order is x, c, b, a -> a at rank 4 (docid ascending would put it at 2)
    run = {"q": [("a", 1.0), ("b", 1.0), ("x", 2.0), ("c", 1.0)]}
    metrics = evaluate(run, qrels)
    assert metrics["MRR@10"] == pytest.approx(1 / 4) and metrics["Hit@1"] == 0.0


def test_duplicate_hits_keep_their_best_score(caplog):
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    run = {"q1": [("a", 9.0), ("x", 8.0), ("y", 7.0), ("a", 0.5)],  # top-1 repeated at the bottom
           "q2": [("z", 3.0), ("b", 2.0)]}
    with caplog.at_level("WARNING"):
        metrics = evaluate(run, qrels)
    assert metrics["MRR@10"] == pytest.approx((1 + 1 / 2) / 2)  # the last line winning gave (1/3 + 1/2) / 2
    assert metrics["duplicate_hits_dropped"] == 1
    assert "duplicate" in caplog.text
