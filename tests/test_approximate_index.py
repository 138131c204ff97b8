"""The approximate index: exact when nothing is pruned, exact scores for whatever it returns, high recall when pruned."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from retrievers.index.approximate import ApproximateIndex
from retrievers.index.inverted_index import InvertedIndex, brute_force, quantize_queries
from tests.test_inverted_index import random_sparse


@pytest.fixture(scope="module")
def collection():
    rng = np.random.default_rng(11)
    return random_sparse(rng, 3000, 800, 80), random_sparse(rng, 30, 800, 25)


@pytest.mark.parametrize("k", [1, 10, 100])
def test_without_pruning_it_is_the_exact_top_k(collection, k):
    docs, queries = collection
    exact = InvertedIndex.build(docs)
    approx = ApproximateIndex.build(docs, postings_per_list=docs.shape[0])
    assert approx.pruned.list_lengths().sum() == exact.list_lengths().sum()
    ref_docs, ref_scores = brute_force(exact, queries, k)
    got = approx.search(queries, k=k, candidates=k)
    np.testing.assert_array_equal(got.doc_index, ref_docs)
    np.testing.assert_array_equal(got.int_scores, ref_scores)


def test_pruned_lists_keep_their_heaviest_postings_and_scores_stay_exact(collection, tmp_path):
    docs, queries = collection
    exact = InvertedIndex.build(docs)
    approx = ApproximateIndex.build(docs, postings_per_list=150)
    lengths, kept = exact.list_lengths(), approx.pruned.list_lengths()
    assert (kept >= np.minimum(lengths, 150)).all() and kept.sum() < lengths.sum()
    full_columns, kept_columns = exact.document_matrix().tocsc(), approx.pruned.document_matrix().tocsc()
    for t in np.flatnonzero(lengths > 150)[:20]:  # what is kept is at least as heavy as what is dropped
        full = full_columns.data[full_columns.indptr[t]:full_columns.indptr[t + 1]]
        part = kept_columns.data[kept_columns.indptr[t]:kept_columns.indptr[t + 1]]
        assert part.min() >= np.sort(full)[::-1][kept[t]:].max(initial=0)
    got = approx.search(queries, k=10, candidates=50, top_m=16)
    ref_docs, ref_scores = brute_force(exact, queries, 10)
    indptr, terms, weights, _ = quantize_queries(queries)
    q_int = sp.csr_matrix((weights, terms, indptr), shape=queries.shape)
    d_int = exact.document_matrix()
    dense = (q_int @ d_int.T).toarray()
    recall = []
    for q in range(queries.shape[0]):
        found = got.doc_index[q][got.doc_index[q] >= 0]
        assert (dense[q, found] == got.int_scores[q, :found.size]).all()  # exact scores for what it returns
        if (ref_docs[q] >= 0).any():
            recall.append(len(set(found) & set(ref_docs[q][ref_docs[q] >= 0])) / (ref_docs[q] >= 0).sum())
    assert 0.9 <= np.mean(recall) < 1.0  # it prunes, and still finds most of the top 10
    approx.save(tmp_path / "approx")
    again = ApproximateIndex.load(tmp_path / "approx")
    assert again.size_bytes() == approx.size_bytes()
    np.testing.assert_array_equal(again.search(queries, k=10, candidates=50, top_m=16).doc_index, got.doc_index)


def test_an_impact_floor_without_a_forward_index_is_the_exact_top_k_of_what_it_keeps(collection, tmp_path):
    docs, queries = collection
    exact = InvertedIndex.build(docs)
    floor = int(np.median(np.asarray(exact.impacts)))  # drops about half of the postings, from every list
    approx = ApproximateIndex.build(docs, postings_per_list=None, impact_floor=floor, forward=False)
    kept = approx.pruned.document_matrix()
    full = exact.document_matrix()
    assert kept.data.min() >= floor and 0 < kept.nnz < full.nnz
    assert kept.nnz == (full.data >= floor).sum()  # everything at or above the floor stays, in every list
    assert approx.size_bytes() == approx.pruned.size_bytes()  # no forward index
    got = approx.search(queries, k=10, candidates=3)  # candidates has no say without a forward index
    ref_docs, ref_scores = brute_force(approx.pruned, queries, 10)
    np.testing.assert_array_equal(got.doc_index, ref_docs)
    np.testing.assert_array_equal(got.int_scores, ref_scores)
    approx.save(tmp_path / "floor")
    assert not (tmp_path / "floor" / "forward_terms.npy").exists()
    again = ApproximateIndex.load(tmp_path / "floor")
    assert not again.has_forward and again.impact_floor == floor
    np.testing.assert_array_equal(again.search(queries, k=10).doc_index, got.doc_index)


def test_both_rules_combine_and_bad_settings_are_refused(collection):
    docs, _ = collection
    lengths = InvertedIndex.build(docs).list_lengths()
    per_list = ApproximateIndex.build(docs, postings_per_list=100).pruned.list_lengths()
    both = ApproximateIndex.build(docs, postings_per_list=100, impact_floor=200).pruned.list_lengths()
    assert (both <= per_list).all() and both.sum() < per_list.sum() < lengths.sum()
    with pytest.raises(ValueError, match="impact_floor"):
        ApproximateIndex.build(docs, impact_floor=256)
    with pytest.raises(ValueError, match="postings_per_list"):
        ApproximateIndex.build(docs, postings_per_list=0)


def test_a_version_1_index_still_loads_with_its_forward_index(collection, tmp_path):
    import json

    docs, queries = collection
    approx = ApproximateIndex.build(docs, postings_per_list=150)
    approx.save(tmp_path / "v1")
    (tmp_path / "v1" / "approximate.json").write_text(json.dumps({"format_version": 1, "postings_per_list": 150}))
    again = ApproximateIndex.load(tmp_path / "v1")
    assert again.has_forward and again.impact_floor == 0
    np.testing.assert_array_equal(again.search(queries, k=10).doc_index, approx.search(queries, k=10).doc_index)
    (tmp_path / "v1" / "approximate.json").write_text(json.dumps({"format_version": 99, "postings_per_list": 150}))
    with pytest.raises(ValueError, match="format 99"):
        ApproximateIndex.load(tmp_path / "v1")


def test_the_pruning_rule_is_chosen_from_the_impact_histogram():
    """PROSPER's bimodal weights (a low expansion mode, a high literal mode) get an impact floor above the low mode;
    a Zipf-like, unimodal collection gets per-list pruning with exact rescoring."""
    from retrievers.index.approximate import choose_pruning

    rng = np.random.default_rng(0)
    bimodal = np.concatenate([rng.integers(1, 13, 50_000), rng.integers(150, 256, 40_000), rng.integers(13, 150, 500)])
    choice = choose_pruning(bimodal, 1000)
    assert choice.rule == "impact_floor" and 12 < choice.impact_floor < 150 and not choice.forward
    zipf = 1 + np.floor(254 * rng.beta(0.6, 3, 90_000)).astype(int)
    choice = choose_pruning(zipf, 1000)
    assert choice.rule == "postings_per_list" and choice.postings_per_list == 1000 and choice.forward


def test_approximate_serving_is_an_option_that_records_its_recall_of_exact(tmp_path):
    from benchmark.cli.main import main
    from benchmark.records.results import find_results, load_result

    tiny = ["--set", "scratch.hidden_size=16", "--set", "scratch.layers=1", "--set", "scratch.intermediate_size=32",
            "--set", "train.epochs=1", "--set", "latency_queries=5", "--set", "serving=approximate"]
    assert main(["run", "prosper", "--dataset", "demo", "--output", str(tmp_path), *tiny]) == 0
    (path,) = find_results(tmp_path, "demo")
    payload = load_result(path)
    approximate = payload["cost"]["extra"]["approximate"]
    assert approximate["rule"] in ("impact_floor", "postings_per_list") and approximate["reason"]
    assert 0.5 <= approximate["recall@10"] <= 1.0 and 0.5 <= approximate["recall@1000"] <= 1.0
    assert payload["retriever"]["name"].startswith("prosper+") and payload["retriever"]["overrides"]["serving"] == "approximate"
