"""BM25 on both engines and both tokenizers, on real data (the pool) and the demo set."""

from __future__ import annotations

import pytest

from retrievers.bm25 import BM25Config, BM25Retriever, overlap_flops
from retrievers.resources.tokenization import load_tokenizer

pytestmark = pytest.mark.slow


def _both_engines(corpus, queries, tmp_path_factory, k=100):
    runs, retrievers = {}, {}
    for backend in ("lucene", "bm25s"):
        retriever = BM25Retriever(BM25Config(backend=backend, latency_queries=50))
        index_dir = tmp_path_factory.mktemp(backend)
        retriever.index(corpus, index_dir)
        runs[backend] = retriever.search(queries, k=k)
        retrievers[backend] = (retriever, index_dir)
    return runs, retrievers


@pytest.fixture(scope="module")
def pool_runs(pool, tmp_path_factory):
    return _both_engines(pool.corpus, pool.queries, tmp_path_factory)


def test_lucene_and_bm25s_agree_exactly_on_short_passages(pool, tmp_path_factory):
    """Same k1/b, same tokens: the same scores and the same ranking up to ties.

    Lucene stores a document's length in one byte (SmallFloat.intToByte4), exact only below 24 tokens, so the exact
    comparison uses the pool's passages cut to 16 characters (at most 16 tokens each); Lucene also rounds scores to
    4 decimals.
    """
    corpus = {pid: text[:16] for pid, text in pool.corpus.items()}
    runs, _ = _both_engines(corpus, pool.queries, tmp_path_factory)
    lucene, bm25s = runs["lucene"], runs["bm25s"]
    assert lucene.keys() == bm25s.keys()
    compared = 0
    for qid, hits in lucene.items():
        other = dict(bm25s[qid])
        assert len(hits) == len(bm25s[qid])
        for pid, score in hits[:20]:
            assert other[pid] == pytest.approx(score, abs=2e-4), qid
            compared += 1
        # Lucene's order is non-increasing in bm25s's scores: equal rankings but for tied documents
        reference = [other[pid] for pid, _ in hits[:20]]
        assert all(a >= b - 2e-4 for a, b in zip(reference, reference[1:], strict=False))
    assert compared > 10_000


def test_lucene_and_bm25s_differ_only_by_length_quantization_on_full_passages(pool_runs):
    """On full passages the one difference left is Lucene's lossy length norm (4 significant bits): a few percent."""
    runs, _ = pool_runs
    worst = 0.0
    for qid, hits in runs["lucene"].items():
        other = dict(runs["bm25s"][qid])
        for pid, score in hits[:10]:
            if pid in other:
                worst = max(worst, abs(other[pid] - score) / score)
    assert 0 < worst < 0.08


def test_bm25_is_strong_on_the_pool(pool_runs, pool):
    from benchmark.evaluation.measures import evaluate

    metrics = evaluate(pool_runs[0]["lucene"], pool.qrels)
    # pool numbers (not comparable with the paper), real bert-base-chinese tokens: deterministic, so exact
    assert round(metrics["MRR@10"], 4) == 0.8168 and round(metrics["Hit@10"], 4) == 0.9210
    assert metrics["queries_without_results"] == 0


def test_index_reopens_without_rebuilding(pool_runs, pool):
    runs, retrievers = pool_runs
    for backend, (built, index_dir) in retrievers.items():
        reopened = BM25Retriever(BM25Config(backend=backend, latency_queries=5))
        reopened.load(index_dir)
        sample = dict(list(pool.queries.items())[:50])
        again = reopened.search(sample, k=100)
        assert again == {q: runs[backend][q] for q in sample}
        assert reopened.provenance() == built.provenance()


def test_cost_statistics_are_filled(pool_runs):
    _, retrievers = pool_runs
    stats = retrievers["lucene"][0].cost()
    assert stats.index_size_bytes > 100_000 and stats.index_time_s > 0
    assert 0 < stats.latency_ms_p50 <= stats.latency_ms_p95
    assert 0 < stats.flops < stats.query_terms_mean
    assert retrievers["lucene"][0].provenance()["tokenizer"]["kind"] in ("stand-in", "pretrained")


def test_overlap_flops_by_hand():
    df = {"a": 2, "b": 1}
    # query 1 shares 'a' with 2 of 4 docs and 'b' with 1 -> 0.75 per pair; query 2 shares nothing
    assert overlap_flops([["a", "b", "a"], ["z"]], df, 4) == pytest.approx(0.375)


def test_stand_in_tokenizers_are_deterministic(tmp_path, pool):
    texts = list(pool.corpus.values())[:500]
    for model in ("bert-base-chinese", "Qwen/Qwen2.5-3B"):  # the last resort, when no real copy can be found
        a = load_tokenizer(model, texts, cache=tmp_path / "a", packaged=False)
        b = load_tokenizer(model, texts, cache=tmp_path / "b", packaged=False)
        assert a.hf.get_vocab() == b.hf.get_vocab()
        assert a.provenance["kind"] == "stand-in" and a.provenance["model_id"] == model


def test_bert_stand_in_splits_chinese_per_character(pool):
    tok = load_tokenizer("bert-base-chinese", list(pool.corpus.values()), packaged=False)
    assert tok.tokenize("华硕主板 B560M") == ["华", "硕", "主", "板", *tok.tokenize("b560m")]
    assert "[UNK]" not in tok.tokenize("罕见字龘")  # every CJK ideograph is in the vocabulary, as in bert-base-chinese
