"""The inverted index is exact: every algorithm equals brute force on the quantized weights, ties by doc index."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrievers.index.inverted_index import ALGORITHMS, AUTO_DENSE_FLOPS, InvertedIndex, brute_force, quantize_queries


def random_sparse(rng, rows, vocab, nnz_per_row, zipf=1.1, integer=False):
    ranks = np.arange(1, vocab + 1, dtype=np.float64)
    p = ranks ** -zipf
    p /= p.sum()
    data, cols, indptr = [], [], [0]
    for _ in range(rows):
        n = int(rng.integers(0, nnz_per_row + 1))
        c = np.unique(rng.choice(vocab, size=n, p=p)) if n else np.zeros(0, int)
        w = rng.integers(1, 6, size=c.size).astype(float) if integer else rng.gamma(1.5, 1.0, size=c.size)
        data.append(w)
        cols.append(c)
        indptr.append(indptr[-1] + c.size)
    return sp.csr_matrix((np.concatenate(data), np.concatenate(cols), indptr), shape=(rows, vocab))


@st.composite
def collections(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n_docs = draw(st.integers(1, 400))
    vocab = draw(st.integers(1, 60))
    integer = draw(st.booleans())  # small integer weights make many exact ties
    docs = random_sparse(rng, n_docs, vocab, draw(st.integers(1, 25)), integer=integer)
    queries = random_sparse(rng, draw(st.integers(1, 6)), vocab, draw(st.integers(1, 20)), integer=integer)
    block = draw(st.sampled_from([1, 2, 4, 16, 64]))
    index_window = draw(st.sampled_from([1, 5, 64, 4096]))  # the stored window maxima, any DAAT window over them
    return docs, queries, block, index_window


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(collections(), st.sampled_from([1, 10, 1000]), st.sampled_from([None, 1, 3, 16]), st.sampled_from([1, 7, 64, 100, 4096]),
       st.booleans(), st.sampled_from([1.0, 0.5, 0.1, 0.0]))
def test_every_algorithm_equals_brute_force(data, k, top_m, window, seed, share):
    docs, queries, block, index_window = data
    index = InvertedIndex.build(docs, block_size=block, window=index_window)
    ref_docs, ref_scores = brute_force(index, queries, k, top_m=top_m)
    for algorithm in ALGORITHMS:
        got = index.search(queries, k=k, algorithm=algorithm, top_m=top_m, window=window, seed=seed, share=share)
        np.testing.assert_array_equal(got.doc_index, ref_docs, err_msg=algorithm)
        np.testing.assert_array_equal(got.int_scores, ref_scores, err_msg=algorithm)


@pytest.mark.parametrize("k", [1, 10, 1000])
@pytest.mark.parametrize("top_m", [None, 16])
def test_exact_on_a_larger_zipfian_collection(k, top_m):
    rng = np.random.default_rng(7)
    docs = random_sparse(rng, 5000, 3000, 120)
    queries = random_sparse(rng, 40, 3000, 30)
    index = InvertedIndex.build(docs, block_size=64)
    ref_docs, ref_scores = brute_force(index, queries, k, top_m=top_m)
    for algorithm in ALGORITHMS:
        for share in (None, 1.0, 0.25):
            got = index.search(queries, k=k, algorithm=algorithm, top_m=top_m, threads=2, window=256, share=share)
            np.testing.assert_array_equal(got.doc_index, ref_docs, err_msg=f"{algorithm} share {share}")
            np.testing.assert_array_equal(got.int_scores, ref_scores, err_msg=f"{algorithm} share {share}")


def test_auto_serves_exactly_with_bmm_for_small_k_and_two_phase_for_large_k():
    rng = np.random.default_rng(9)
    index = InvertedIndex.build(random_sparse(rng, 3000, 500, 60), window=256)
    queries = random_sparse(rng, 12, 500, 25)
    for k, expected in ((10, "bmm"), (1000, "two-phase")):
        assert index.auto_algorithm(queries, k) == expected
        ref_docs, ref_scores = brute_force(index, queries, k)
        auto, same = index.search(queries, k=k), index.search(queries, k=k, algorithm=expected)
        np.testing.assert_array_equal(auto.doc_index, ref_docs)
        np.testing.assert_array_equal(auto.int_scores, ref_scores)
        np.testing.assert_array_equal(auto.doc_index, same.doc_index)


def test_auto_takes_two_phase_at_small_k_when_the_query_lists_are_dense():
    """Lists holding >= AUTO_DENSE_FLOPS postings per document (a PROSPER-shaped workload) go to two-phase."""
    rng = np.random.default_rng(3)
    dense = InvertedIndex.build(sp.random(2000, 40, density=0.5, format="csr", random_state=rng))
    queries = sp.random(5, 40, density=0.8, format="csr", random_state=rng)
    assert dense.overlap_flops(queries) >= AUTO_DENSE_FLOPS
    assert dense.auto_algorithm(queries, 10) == "two-phase"
    sparse_index = InvertedIndex.build(random_sparse(rng, 2000, 4000, 20))
    assert sparse_index.auto_algorithm(random_sparse(rng, 5, 4000, 10), 10) == "bmm"
    ref_docs, ref_scores = brute_force(dense, queries, 10)
    np.testing.assert_array_equal(dense.search(queries, k=10).doc_index, ref_docs)
    np.testing.assert_array_equal(dense.search(queries, k=10).int_scores, ref_scores)


def test_boost_is_approximate_and_only_loses_documents_near_the_threshold():
    """boost > 1 prunes against theta x boost: a returned document is still scored exactly, and every exact top-k
    document it misses scores at most boost x the k-th score."""
    rng = np.random.default_rng(5)
    index = InvertedIndex.build(random_sparse(rng, 4000, 300, 40))
    queries = random_sparse(rng, 20, 300, 20)
    ref_docs, ref_scores = brute_force(index, queries, 10)
    got = index.search(queries, k=10, algorithm="bmm", boost=1.5)
    assert (got.doc_index != ref_docs).any()  # it does prune
    indptr, terms, weights, _ = quantize_queries(queries)
    q_int = sp.csr_matrix((weights, terms, indptr), shape=queries.shape)
    d_int = index.document_matrix()
    dense = (q_int @ d_int.T).toarray()
    for q in range(20):
        found = got.doc_index[q][got.doc_index[q] >= 0]
        assert (dense[q, found] == got.int_scores[q, :found.size]).all()  # exact scores for what it returns
        missed = set(ref_docs[q]) - set(found)
        assert all(dense[q, d] <= 1.5 * ref_scores[q, -1] for d in missed)
    with pytest.raises(ValueError, match="boost"):
        index.search(queries, k=10, boost=0.5)


def test_float_scores_approximate_the_unquantized_dot_product():
    rng = np.random.default_rng(3)
    docs = random_sparse(rng, 300, 200, 40)
    queries = random_sparse(rng, 5, 200, 20)
    index = InvertedIndex.build(docs)
    got = index.search(queries, k=5)
    exact = (queries @ docs.T).toarray()
    for q in range(5):
        for j, d in enumerate(got.doc_index[q]):
            assert got.scores[q, j] == pytest.approx(exact[q, d], rel=0.05)


def test_quantization_by_hand():
    docs = sp.csr_matrix(np.array([[0.0, 2.55, 1.0], [0.004, 0.0, 0.5]]))
    index = InvertedIndex.build(docs, block_size=1)
    assert index.scale == pytest.approx(0.01)
    # term 0: 0.004 rounds to 0 and is dropped; term 1: 255; term 2: 100 then 50
    assert list(np.diff(index.offsets)) == [0, 1, 2]
    assert list(index.impacts) == [255, 100, 50]
    assert list(index.term_max) == [0, 255, 100]
    assert list(index.block_max) == [255, 100, 50] and list(index.block_last) == [0, 0, 1]
    indptr, terms, weights, scales = quantize_queries(sp.csr_matrix(np.array([[0.2, 0.0, 0.1, 0.3]])), top_m=2)
    assert list(terms) == [0, 3] and list(weights) == [170, 255] and scales[0] == pytest.approx(0.3 / 255)


def test_window_maxima_and_kth_impacts_by_brute_force():
    rng = np.random.default_rng(6)
    index = InvertedIndex.build(random_sparse(rng, 3000, 50, 30), window=100)
    for t in range(index.vocab_size):
        docs = np.asarray(index.docs[index.offsets[t]:index.offsets[t + 1]])
        impacts = np.asarray(index.impacts[index.offsets[t]:index.offsets[t + 1]])
        entries = range(index.win_offsets[t], index.win_offsets[t + 1])
        assert [index.win_ids[j] for j in entries] == sorted(set((docs // 100).tolist()))
        for j in entries:
            assert index.win_max[j] == impacts[docs // 100 == index.win_ids[j]].max()
        ranked = np.sort(impacts)[::-1]
        for c, r in enumerate((10, 100, 1000, 10000)):
            assert index.term_kth[t, c] == (ranked[r - 1] if ranked.size >= r else 0)


def test_block_maxima_bound_every_posting():
    rng = np.random.default_rng(1)
    index = InvertedIndex.build(random_sparse(rng, 2000, 100, 50), block_size=16)
    for t in range(index.vocab_size):
        for b in range(index.block_offsets[t], index.block_offsets[t + 1]):
            start = index.offsets[t] + (b - index.block_offsets[t]) * 16
            stop = min(start + 16, index.offsets[t + 1])
            assert index.block_max[b] == index.impacts[start:stop].max()
            assert index.block_last[b] == index.docs[stop - 1]


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    docs, queries = random_sparse(rng, 500, 300, 30), random_sparse(rng, 10, 300, 10)
    index = InvertedIndex.build(docs, doc_ids=[f"p{i}" for i in range(500)])
    index.save(tmp_path / "idx")
    loaded = InvertedIndex.load(tmp_path / "idx")
    assert isinstance(loaded.docs, np.memmap)
    a, b = index.search(queries, k=10), loaded.search(queries, k=10)
    np.testing.assert_array_equal(a.doc_index, b.doc_index)
    assert loaded.doc_ids[3] == "p3" and b.hits(0, loaded.doc_ids)[0][0].startswith("p")


def test_an_index_saved_in_format_1_still_loads_and_searches_the_same(tmp_path):
    """Format 2 stores each block's first doc, format 3 the window maxima and k-th impacts; a format-1 index
    (without any of them) derives them on load, identically."""
    import json

    rng = np.random.default_rng(4)
    docs, queries = random_sparse(rng, 700, 200, 40), random_sparse(rng, 8, 200, 12)
    index = InvertedIndex.build(docs, block_size=4)
    index.save(tmp_path / "v1")
    for name in ("block_first", "win_offsets", "win_ids", "win_max", "term_kth"):
        (tmp_path / "v1" / f"{name}.npy").unlink()
    meta = json.loads((tmp_path / "v1" / "meta.json").read_text())
    (tmp_path / "v1" / "meta.json").write_text(json.dumps({**meta, "format_version": 1}))
    old = InvertedIndex.load(tmp_path / "v1")
    for name in ("block_first", "win_offsets", "win_ids", "win_max", "term_kth"):
        np.testing.assert_array_equal(getattr(old, name), getattr(index, name))
    a, b = index.search(queries, k=10), old.search(queries, k=10)
    np.testing.assert_array_equal(a.doc_index, b.doc_index)
    (tmp_path / "v1" / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ValueError, match="index format 99"):
        InvertedIndex.load(tmp_path / "v1")


def test_overlap_flops_by_hand():
    docs = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    index = InvertedIndex.build(docs)
    queries = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    # query 0 shares term 0 with 2 docs and term 1 with 1 doc over 4 docs -> 0.75; query 1 shares nothing
    assert index.overlap_flops(queries) == pytest.approx(0.375)


def test_bad_arguments():
    index = InvertedIndex.build(sp.csr_matrix(np.ones((2, 3))))
    with pytest.raises(ValueError, match="algorithm"):
        index.search(sp.csr_matrix(np.ones((1, 3))), algorithm="wand")
    with pytest.raises(ValueError, match="columns"):
        index.search(sp.csr_matrix(np.ones((1, 4))))
    with pytest.raises(ValueError, match="non-negative"):
        InvertedIndex.build(sp.csr_matrix(-np.ones((2, 3))))


def test_build_leaves_the_callers_matrix_alone():
    docs = sp.csr_matrix(np.array([[0.001, 2.0, 1.0], [0.5, 0.0, 0.002]]))
    before = docs.toarray().copy()
    InvertedIndex.build(docs)  # weights rounding to 0 are dropped inside, never in the caller's matrix
    np.testing.assert_array_equal(docs.toarray(), before)
