"""DeepCT, Doc2Query and BM25 hard negatives, each tiny on the demo set."""

from __future__ import annotations

import json

from benchmark.cli import main
from benchmark.results import find_results, load_result
from retrievers.training import _with_negatives, mine_bm25_negatives

TINY_BERT = ["--set", "train.epochs=1", "--set", "train.validation_pairs=0", "--set", "scratch.hidden_size=32",
             "--set", "scratch.layers=1", "--set", "scratch.intermediate_size=64", "--set", "max_length=32",
             "--set", "latency_queries=20"]


def test_bm25_negatives_exclude_positives_and_come_from_the_corpus(demo):
    pairs = [(demo.train_queries[q], demo.corpus[p]) for q, rels in list(demo.train_qrels.items())[:50] for p in rels]
    corpus = list(demo.corpus.values())
    mined = mine_bm25_negatives(pairs, corpus, depth=10, seed=0)
    positives = {}
    for q, p in pairs:
        positives.setdefault(q, set()).add(p)
    assert set(mined) == set(positives)
    for query, negatives in mined.items():
        assert negatives and not set(negatives) & positives[query]
        assert set(negatives) <= set(corpus) and len(negatives) <= 10
    batch = pairs[:4]
    passages = _with_negatives(batch, mined)
    assert passages[:4] == [p for _, p in batch] and len(set(passages)) == len(passages) > 4


def test_deepct_learns_term_weights_served_from_the_index(tmp_path):
    assert main(["run", "deepct", "--dataset", "demo", "--output", str(tmp_path), *TINY_BERT]) == 0
    payload = load_result(find_results(tmp_path, "demo", "deepct")[0])
    assert payload["metrics"]["MRR@10"] > 0.2
    assert payload["cost"]["flops"] > 0 and payload["provenance"]["model"]["kind"] == "scratch"
    history = payload["provenance"]["training"]["history"]
    assert history[0]["mse"] < 0.5 and 0 < history[0]["target_mean"] < 1


def test_doc2query_appends_sampled_queries_then_bm25(tmp_path, isolated_cache):
    sets = ["--set", "train.epochs=1", "--set", "scratch.d_model=32", "--set", "scratch.layers=1",
            "--set", "scratch.d_ff=64", "--set", "n_samples=2", "--set", "max_query_length=8",
            "--set", "bm25.backend=bm25s"]
    assert main(["run", "doc2query", "--dataset", "demo", "--output", str(tmp_path), *sets]) == 0
    payload = load_result(find_results(tmp_path, "demo", "doc2query")[0])
    assert payload["metrics"]["MRR@10"] > 0.3  # BM25 over the passage text is the floor; expansions add to it
    assert payload["provenance"]["model"]["kind"] == "scratch" and payload["cost"]["train_time_s"] > 0
    (expansions,) = list(isolated_cache.rglob("expansions.jsonl"))
    rows = [json.loads(line) for line in expansions.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2000 and all(len(r["queries"]) == 2 for r in rows)
    assert sum(bool(q) for r in rows for q in r["queries"]) > 1000  # mostly non-empty generations
