"""Approximate serving, Seismic-style: candidates from statically pruned lists, exact rescoring from a forward index.

Why: exact top-k on learned sparse vectors must read every posting that could matter; an approximate engine such as
Seismic (Bruch et al., SIGIR 2024) keeps only the heaviest postings of each list, finds candidates there, and ranks
them by their exact scores read from a forward index (document -> its terms). Most of a top-10 document's score sits
in postings that are among the heaviest of their lists, so a few dozen candidates hold the exact top-10 almost
always (``index-bench`` measures the recall against the exact top-k).

Design:

- **Pruned lists.** Each list keeps its ``postings_per_list`` highest impacts (ties at the cut kept: the list is cut at
  an impact value, so the choice is deterministic), stored as an ordinary :class:`InvertedIndex` over the same global
  quantization scale - candidates are its exact top-``candidates`` by partial score (any exact algorithm; ``auto``).
- **Forward index.** Every document's (term, impact) pairs, quantized with the same scale; term ids are ``uint16``
  when the vocabulary allows (30,522 BERT ids do; Qwen's 151,643 do not: ``int32``).
- **Rescoring.** A candidate's score is its dot product with the *whole* quantized query (all terms, not only the
  ``top_m`` that found it), so every returned score is the exact score the exact index would give the document.
  Returned documents are ranked by (score desc, doc index asc), as the exact index ranks them.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numba
import numpy as np
import scipy.sparse as sp

from retrievers.inverted_index import InvertedIndex, SearchResult, _heap_offer, _write_sorted, quantize_queries, run_in_chunks

FORMAT_VERSION = 1
_FORWARD = ("forward_indptr", "forward_terms", "forward_impacts")


@numba.njit(cache=True)
def _cut_impacts(offsets, impacts, keep):
    """Per list, the impact value at which to cut so that at least ``keep`` postings (or all) stay: a histogram."""
    vocab = offsets.shape[0] - 1
    cut = np.zeros(vocab, np.uint8)
    hist = np.zeros(256, np.int64)
    for t in range(vocab):
        if offsets[t + 1] - offsets[t] <= keep:
            continue  # cut 0: the whole list stays
        hist[:] = 0
        for p in range(offsets[t], offsets[t + 1]):
            hist[impacts[p]] += 1
        total = 0
        for v in range(255, 0, -1):
            total += hist[v]
            if total >= keep:
                cut[t] = v
                break
    return cut


@numba.njit(nogil=True, cache=True)
def _rescore(f_indptr, f_terms, f_impacts, q_indptr, q_terms, q_weights, cand, start, stop, k, dense, out_s, out_d):
    """Queries ``start..stop``: each candidate's exact score from the forward index, the best k into the output."""
    hs = np.empty(k, np.int64)
    hd = np.empty(k, np.int32)
    for q in range(start, stop):
        for i in range(q_indptr[q], q_indptr[q + 1]):
            dense[q_terms[i]] = q_weights[i]
        size = 0
        for j in range(cand.shape[1]):
            d = cand[q, j]
            if d < 0:
                break
            score = np.int64(0)
            for p in range(f_indptr[d], f_indptr[d + 1]):
                score += dense[f_terms[p]] * np.int64(f_impacts[p])
            if score > 0:
                size = _heap_offer(hs, hd, size, k, score, d)
        _write_sorted(hs, hd, size, out_s[q], out_d[q])
        for i in range(q_indptr[q], q_indptr[q + 1]):
            dense[q_terms[i]] = 0


class ApproximateIndex:
    """Pruned inverted lists for candidates + a forward index for exact rescoring; see the module docstring."""

    def __init__(self, pruned: InvertedIndex, forward: dict[str, np.ndarray], postings_per_list: int):
        self.pruned = pruned
        self.forward_indptr, self.forward_terms, self.forward_impacts = (forward[name] for name in _FORWARD)
        self.postings_per_list = postings_per_list
        self.n_docs, self.vocab_size, self.scale = pruned.n_docs, pruned.vocab_size, pruned.scale
        self.doc_ids = pruned.doc_ids
        self._buffers = threading.local()

    @classmethod
    def build(cls, matrix: sp.spmatrix, postings_per_list: int = 1000, doc_ids: list[str] | None = None,
              block_size: int = 64, chunk: int = 1 << 24) -> ApproximateIndex:
        """From a (n_docs x vocab) non-negative sparse matrix of document weights (as :meth:`InvertedIndex.build`)."""
        if postings_per_list < 1:
            raise ValueError("postings_per_list must be >= 1")
        full = InvertedIndex.build(matrix, doc_ids=doc_ids, block_size=block_size, chunk=chunk)
        offsets, docs, impacts = (np.asarray(a) for a in (full.offsets, full.docs, full.impacts))
        cut = _cut_impacts(offsets, impacts, postings_per_list)
        terms = np.repeat(np.arange(full.vocab_size, dtype=np.int32), np.diff(offsets))
        kept = impacts >= cut[terms]
        pruned_matrix = sp.csc_matrix((impacts[kept].astype(np.float32) * np.float32(full.scale),
                                       (docs[kept], terms[kept])), shape=(full.n_docs, full.vocab_size)).tocsr()
        del terms, kept
        pruned = InvertedIndex.build(pruned_matrix, doc_ids=full.doc_ids, block_size=block_size, scale=full.scale)
        # the forward index is the full index read document by document (the same quantized impacts)
        forward = full.document_matrix(np.uint8)
        term_dtype = np.uint16 if full.vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32
        arrays = {"forward_indptr": forward.indptr.astype(np.int64), "forward_terms": forward.indices.astype(term_dtype),
                  "forward_impacts": forward.data.astype(np.uint8)}
        return cls(pruned, arrays, postings_per_list)

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        self.pruned.save(path / "pruned")
        for name in _FORWARD:
            np.save(path / f"{name}.npy", getattr(self, name))
        meta = {"format_version": FORMAT_VERSION, "postings_per_list": self.postings_per_list}
        (path / "approximate.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> ApproximateIndex:
        path = Path(path)
        meta = json.loads((path / "approximate.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: approximate index format {meta.get('format_version')}, expected {FORMAT_VERSION}")
        forward = {name: np.load(path / f"{name}.npy", mmap_mode="r" if mmap else None) for name in _FORWARD}
        return cls(InvertedIndex.load(path / "pruned", mmap=mmap), forward, meta["postings_per_list"])

    def size_bytes(self) -> int:
        return self.pruned.size_bytes() + int(sum(getattr(self, name).nbytes for name in _FORWARD))

    def search(self, queries: sp.spmatrix, k: int = 10, candidates: int = 50, top_m: int | None = None,
               query_bits: int = 8, threads: int = 1) -> SearchResult:
        """Top-k per query: the exact top-``max(candidates, k)`` on the pruned lists (with the query's ``top_m``
        heaviest terms), rescored exactly with every query term. Approximate: a document none of whose heavy
        postings survived the pruning is not found."""
        if k < 1:
            raise ValueError("k must be >= 1")
        n_cand = max(int(candidates), k)
        found = self.pruned.search(queries, k=n_cand, top_m=top_m, query_bits=query_bits, threads=threads)
        indptr, terms, weights, q_scales = quantize_queries(queries, query_bits)
        n = len(indptr) - 1
        k_eff = min(k, max(self.n_docs, 1))
        out_d = np.full((n, k_eff), -1, np.int32)
        out_s = np.zeros((n, k_eff), np.int64)
        forward = [np.asarray(getattr(self, name)) for name in _FORWARD]

        def work(bounds: tuple[int, int]) -> None:
            dense = getattr(self._buffers, "dense", None)  # this thread's query vector, left zeroed by every call
            if dense is None:
                dense = self._buffers.dense = np.zeros(self.vocab_size, np.int64)
            _rescore(*forward, indptr, terms, weights, found.doc_index, bounds[0], bounds[1], k_eff, dense, out_s,
                     out_d)

        run_in_chunks(work, n, threads, chunks_per_thread=1)
        scores = out_s.astype(np.float64) * (q_scales[:, None] * self.scale)
        return SearchResult(out_d, out_s, scores)
