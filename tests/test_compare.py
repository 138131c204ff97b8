"""Paired significance tests (``benchmark.evaluation.significance``), the per-query files they read, and their peers.

Comparison tier: our sign-flip randomization p-values agree with ranx's Fisher randomization test (within its
Monte-Carlo error - ranx reseeds per thread, so it is not deterministic and is not used), the t-test with scipy's and
ranx's; ranx's own per-query RR breaks ties differently from trec_eval, so per-query scores come from our evaluation
(pinned to pytrec_eval) and only arrays go to the tests.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmark.evaluation.measures import evaluate_with_per_query, per_query
from benchmark.evaluation.perquery import read_per_query, sidecar_path, write_per_query
from benchmark.evaluation.significance import bootstrap_interval, compare_rows, holm, paired_t_p, sign_flip_p


def test_holm_matches_a_hand_computed_example():
    # sorted 0.005, 0.01, 0.03, 0.04 x 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])  # 1.2 capped at 1; the next never below an earlier one


def test_randomization_is_deterministic_and_calibrated():
    rng = np.random.default_rng(1)
    same = rng.random(400)
    assert sign_flip_p(same - same) == 1.0  # identical systems: nothing to see
    noise = rng.normal(0, 0.3, 400)
    assert sign_flip_p(noise) == sign_flip_p(noise)  # fixed seed: the same p every time
    assert sign_flip_p(noise + 0.2) < 0.001  # a clear shift
    nulls = [sign_flip_p(np.random.default_rng(s).normal(0, 1, 200), draws=2000) for s in range(60)]
    assert 0.02 <= np.mean(np.array(nulls) < 0.05) <= 0.12  # ~5% false positives under the null


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_queries():
    rng = np.random.default_rng(2)
    small, large = rng.normal(0.01, 0.2, 100), rng.normal(0.01, 0.2, 10_000)
    low, high = bootstrap_interval(small)
    assert low < small.mean() < high
    low_l, high_l = bootstrap_interval(large, draws=2000)
    assert high_l - low_l < (high - low) / 5


def test_randomization_and_t_test_agree_with_ranx_and_scipy():
    """ranx's Fisher test permutes labels per query - the same null as our sign flips; its p agrees within the
    Monte-Carlo error of 20,000 draws. The t-test is scipy's ttest_rel, as ranx's paired_student_t_test is."""
    from ranx.statistical_tests import fisher_randomization_test, paired_student_t_test
    from scipy.stats import ttest_rel

    rng = np.random.default_rng(3)
    for shift in (0.0, 0.015, 0.04):
        a = rng.random(1000)
        b = np.clip(a + rng.normal(shift, 0.25, 1000), 0, 1)
        ours = sign_flip_p(a - b)
        theirs, _ = fisher_randomization_test(a, b, 20_000, 0.05, 42)
        assert ours == pytest.approx(theirs, abs=0.015), shift
        assert paired_t_p(a, b) == pytest.approx(ttest_rel(a, b).pvalue)
        assert paired_t_p(a, b) == pytest.approx(paired_student_t_test(a, b)[0])


def test_ranx_breaks_ties_unlike_trec_eval_so_per_query_scores_are_ours():
    """Queries without results agree (0); tied scores do not: trec_eval ranks ties by docid descending (pytrec_eval
    gives RR 1/3 below), ranx by its own order. Our evaluation follows trec_eval, so our per-query values feed the
    tests."""
    import pytrec_eval
    from ranx import Qrels, Run, evaluate

    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
    run = {"q1": [("a", 1.0), ("x", 1.0), ("y", 1.0)], "q2": [("z", 2.0), ("b", 1.0)]}
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(
        {q: dict(h) for q, h in run.items()})
    ours = per_query(run, qrels)["MRR@10"]
    assert ours["q1"] == pytest.approx(reference["q1"]["recip_rank"]) == pytest.approx(1 / 3)
    assert ours["q3"] == 0.0  # no results: counted, as 0
    theirs = evaluate(Qrels(qrels), Run({q: dict(h) for q, h in run.items()}), "mrr@10", return_mean=False,
                      make_comparable=True)
    assert theirs[2] == 0.0 and theirs[1] == pytest.approx(0.5)
    assert theirs[0] != pytest.approx(ours["q1"])  # ties: ranx differs from trec_eval


def test_per_query_file_round_trips_exactly_and_its_means_are_the_metrics(tmp_path):
    rng = np.random.default_rng(4)
    qrels = {f"q{i}": {f"d{rng.integers(50)}": 1} for i in range(300)}
    run = {q: [(f"d{j}", float(rng.random())) for j in rng.choice(50, 20, replace=False)] for q in list(qrels)[:280]}
    metrics, values = evaluate_with_per_query(run, qrels)
    path = write_per_query(tmp_path / "x.perquery.tsv.gz", values)
    first = path.read_bytes()
    assert write_per_query(tmp_path / "x.perquery.tsv.gz", values).read_bytes() == first  # deterministic bytes
    back = read_per_query(path)
    assert back == values
    for metric, column in (("MRR@10", "RR@10"), ("nDCG@10", "nDCG@10"), ("MAP", "AP"), ("Hit@10", "Hit@10")):
        assert metrics[metric] == math.fsum(back[column].values()) / len(qrels)  # to the last bit


def test_compare_rows_orders_pairs_and_corrects_them_together():
    rng = np.random.default_rng(5)
    base = rng.random(500)
    scores = {"a": dict(enumerate(base)), "b": dict(enumerate(np.clip(base + 0.1, 0, 1))),
              "c": dict(enumerate(base + rng.normal(0, 1e-3, 500)))}
    out = compare_rows({k: {str(q): v for q, v in s.items()} for k, s in scores.items()}, "MRR@10")
    assert [(c.a, c.b) for c in out] == [("a", "b"), ("a", "c"), ("b", "c")]
    by_pair = {(c.a, c.b): c for c in out}
    assert by_pair[("a", "b")].significant and by_pair[("a", "b")].difference < 0
    assert by_pair[("a", "b")].ci_low < by_pair[("a", "b")].difference < by_pair[("a", "b")].ci_high
    assert all(c.p_randomization_holm >= c.p_randomization for c in out)
    with pytest.raises(ValueError, match="different queries"):
        compare_rows({"a": {"1": 0.0}, "b": {"2": 0.0}}, "MRR@10")


@pytest.mark.slow
def test_on_the_pool_bm25_tokenizers_differ_and_the_two_bm25_engines_do_not(tmp_path, multicpr_dir, capsys):
    """The issue's acceptance pair: BERT vs Qwen tokenization is a real difference on the 1,000 pool queries; Lucene
    vs bm25s with the same tokenizer is not. Run through the CLI, JSON written, per-query files beside each result."""
    from benchmark.cli.main import main

    out = tmp_path / "results"
    data = ["--dataset", "multicpr-ecom-pool", "--data-dir", str(multicpr_dir)]
    assert main(["run", "bm25-bert", "bm25-qwen", "bm25s-bert", *data, "--output", str(out),
                 "--set", "latency_queries=20"]) == 0
    for row in ("bm25-bert", "bm25-qwen", "bm25s-bert"):
        (result,) = (out / "multicpr-ecom-pool" / row).glob("*.json")
        assert sidecar_path(result).exists()
    capsys.readouterr()
    report = tmp_path / "comparisons" / "pool.json"  # a folder that does not exist yet is made
    assert main(["compare", "bm25-bert", "bm25-qwen", "bm25s-bert", "--dataset", "multicpr-ecom-pool",
                 "--results", str(out), "--metric", "MRR@10", "nDCG@10", "--json", str(report)]) == 0
    text = capsys.readouterr().out
    assert "bm25-bert - bm25-qwen" in text and "95% CI" in text
    written = json.loads(report.read_text())
    assert written["results"]["bm25-bert"].startswith("multicpr-ecom-pool/bm25-bert/")  # relative: portable
    pairs = {(c["a"], c["b"], c["metric"]): c for c in written["comparisons"]}
    assert pairs[("bm25-bert", "bm25-qwen", "MRR@10")]["significant"]
    assert pairs[("bm25-bert", "bm25-qwen", "MRR@10")]["difference"] > 0.03
    assert not pairs[("bm25-bert", "bm25s-bert", "MRR@10")]["significant"]
    assert pairs[("bm25-bert", "bm25s-bert", "MRR@10")]["p_randomization"] > 0.2
    assert {m for _, _, m in pairs} == {"MRR@10", "nDCG@10"}
    assert main(["compare", "bm25-bert", "nonesuch", "--dataset", "multicpr-ecom-pool", "--results", str(out)]) == 2
    assert "no result of 'nonesuch'" in capsys.readouterr().err
