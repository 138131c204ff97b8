"""DeepCT, Doc2Query and BM25 hard negatives, each tiny on the demo set."""

from __future__ import annotations

import json
import random

import pytest

from benchmark.cli.main import main
from benchmark.records.results import find_results, load_result
from retrievers.training.pairs import choose_negatives, mine_bm25_negatives

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
    chosen = choose_negatives(batch, mined, random.Random(0))
    passages = [p for _, p in batch] + [n for n in chosen if n is not None]
    assert len(chosen) == 4 and len(set(passages)) == len(passages) > 4
    for (query, _), negative in zip(batch, chosen, strict=True):
        assert negative is None or negative in mined[query]


def test_deepct_learns_term_weights_served_as_bm25_term_frequencies(tmp_path):
    """The original DeepCT: round(100 * w) becomes a term's frequency in a BM25 index; the impact variant is an option."""
    assert main(["run", "deepct", "--dataset", "demo", "--output", str(tmp_path), *TINY_BERT]) == 0
    (first,) = find_results(tmp_path, "demo")
    payload = load_result(first)
    assert payload["retriever"]["config"]["serving"] == "bm25" and payload["cost"]["extra"]["tf_scale"] == 100.0
    assert payload["metrics"]["MRR@10"] > 0.2
    assert payload["cost"]["flops"] > 0 and payload["provenance"]["model"]["kind"] == "scratch"
    history = payload["provenance"]["training"]["history"]
    assert history[0]["mse"] < 0.5 and 0 < history[0]["target_mean"] < 1
    assert main(["run", "deepct", "--dataset", "demo", "--output", str(tmp_path), *TINY_BERT,
                 "--set", "serving=impact"]) == 0
    (second,) = set(find_results(tmp_path, "demo")) - {first}
    impact = load_result(second)
    assert impact["retriever"]["overrides"]["serving"] == "impact" and first.parent != second.parent  # rows apart
    assert impact["retriever"]["config"]["serving"] == "impact" and impact["index"]["reused"] is False
    assert impact["metrics"] != payload["metrics"]


def test_deepct_term_frequencies_score_as_bm25_over_the_materialised_pseudo_documents(tmp_path):
    """Lucene over {term: tf} equals bm25s over texts repeating each term tf times (short documents: Lucene's
    one-byte length norm is exact below 24 tokens)."""
    import bm25s
    import numpy as np
    import scipy.sparse as sp

    from retrievers.deepct import DeepCTConfig, DeepCTRetriever

    retriever = DeepCTRetriever(DeepCTConfig(tf_scale=10.0, latency_queries=2))
    weights = sp.csr_matrix(np.array([[0.31, 0.0, 0.54, 0.0], [0.0, 0.12, 0.26, 0.04], [0.77, 0.5, 0.0, 0.1]]))
    vectors = retriever.term_frequencies(weights)
    assert vectors == [{"0": 3, "2": 5}, {"1": 1, "2": 3}, {"0": 8, "1": 5, "3": 1}]  # round(10 * w), zeros dropped
    retriever.bm25.index_term_frequencies(["a", "b", "c"], vectors, tmp_path)
    queries = [["0", "2"], ["1"], ["3", "2", "2"]]
    run = retriever.bm25.search_tokens(["q0", "q1", "q2"], queries, k=3)
    reference = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    reference.index([[t for t, tf in v.items() for _ in range(tf)] for v in vectors], show_progress=False)
    for qid, terms in zip(["q0", "q1", "q2"], queries, strict=True):
        expected = reference.get_scores(terms)
        for pid, score in run[qid]:
            assert score == pytest.approx(expected["abc".index(pid)], abs=2e-4)


def test_doc2query_appends_sampled_queries_then_bm25(tmp_path, isolated_cache):
    sets = ["--set", "train.epochs=1", "--set", "scratch.d_model=32", "--set", "scratch.layers=1",
            "--set", "scratch.d_ff=64", "--set", "n_samples=2", "--set", "max_query_length=8",
            "--set", "bm25.backend=bm25s"]
    assert main(["run", "doc2query", "--dataset", "demo", "--output", str(tmp_path), *sets]) == 0
    payload = load_result(find_results(tmp_path, "demo")[0])
    assert payload["metrics"]["MRR@10"] > 0.3  # BM25 over the passage text is the floor; expansions add to it
    assert payload["provenance"]["model"]["kind"] == "scratch" and payload["cost"]["train_time_s"] > 0
    (expansions,) = list((isolated_cache / payload["index"]["entry"]).rglob("expansions.jsonl"))
    rows = [json.loads(line) for line in expansions.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2000 and all(len(r["queries"]) == 2 for r in rows)
    assert sum(bool(q) for r in rows for q in r["queries"]) > 1000  # mostly non-empty generations


def test_doc2query_decoding_keeps_latin_and_digit_token_boundaries(demo):
    from retrievers.doc2query import join_decoded
    from retrievers.resources.tokenization import load_tokenizer

    assert join_decoded("华 为 iphone 14 手 机") == "华为 iphone 14 手机"  # "iphone14" was a token no passage had
    assert join_decoded(" 小 米 ， 5g 手 机 ") == "小米， 5g 手机"  # a space beside Latin or digits stays
    tok = load_tokenizer("bert-base-chinese", list(demo.corpus.values()))
    text = "华为 iphone 14 手机 8gb+128gb"
    decoded = join_decoded(tok.hf.decode(tok.hf(text, add_special_tokens=False)["input_ids"]))
    assert tok.tokenize(decoded) == tok.tokenize(text)  # BM25 sees the generated query's tokens unchanged
