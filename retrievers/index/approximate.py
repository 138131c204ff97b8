"""Approximate serving: candidates from statically pruned lists, optionally rescored exactly from a forward index.

Why: exact top-k on learned sparse vectors must read every posting that could matter; an approximate engine such as
Seismic (Bruch et al., SIGIR 2024) keeps only the heaviest postings of each list, finds candidates there, and ranks
them by their exact scores read from a forward index (document -> its terms). Most of a top-10 document's score sits
in postings that are among the heaviest of their lists, so a few dozen candidates hold the exact top-10 almost
always (``index-bench`` measures the recall against the exact top-k).

Design:

- **Two pruning rules, combinable.** ``postings_per_list``: each list keeps its N highest impacts (term-centric,
  Seismic-style; ties at the cut kept: the list is cut at an impact value, so the choice is deterministic).
  ``impact_floor``: every posting whose quantized impact (1..255; 255 = the collection's largest weight) is below
  the floor is dropped, whatever its list (term-agnostic pruning, Lassance et al., SIGIR 2023). They suit different
  shapes: per-list pruning fails on PROSPER-shaped vectors (a top document's score is a sum of several near-maximal
  literal weights, none among the top 1,000 of a list that holds a third of the collection - recall 0.17 at 1M,
  results/index-bench), while the floor removes their low expansion mode (half the postings sit below 6% of the
  largest weight) and keeps recall >= 0.99. The kept postings form an ordinary :class:`InvertedIndex` over the
  same global quantization scale, searched by any exact algorithm (``auto``).
- **Forward index (``forward=True``).** Every document's (term, impact) pairs, quantized with the same scale; term
  ids are ``uint16`` when the vocabulary allows (30,522 BERT ids do; Qwen's 151,643 do not: ``int32``). It costs 3
  (or 5) bytes per posting of the *full* collection, which is why it is optional.
- **Rescoring (with a forward index).** The exact top-``candidates`` on the pruned lists are rescored with the
  *whole* quantized query (all terms, not only the ``top_m`` that found them), so every returned score is the exact
  score the exact index would give the document. Without a forward index the pruned index's top-k is the answer and
  its scores are the pruned scores (a lower bound of the exact ones). Either way documents are ranked by (score desc,
  doc index asc), as the exact index ranks them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import scipy.sparse as sp

from retrievers.index.inverted_index import InvertedIndex, SearchResult, quantize_queries, run_in_chunks
from retrievers.index.kernels import heap_offer, write_sorted

FORMAT_VERSION = 2  # 2: impact_floor and an optional forward index
BIMODAL_LOW = 25  # quantized impacts (of 255) at or below which a posting is in the low (expansion) mode
BIMODAL_HIGH = 100  # ... at or above which it is in the high (literal) mode
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
                size = heap_offer(hs, hd, size, k, score, d)
        write_sorted(hs, hd, size, out_s[q], out_d[q])
        for i in range(q_indptr[q], q_indptr[q + 1]):
            dense[q_terms[i]] = 0


class ApproximateIndex:
    """Pruned inverted lists for candidates (+ an optional forward index for exact rescoring); see the module
    docstring."""

    def __init__(self, pruned: InvertedIndex, forward: dict[str, np.ndarray] | None, postings_per_list: int | None,
                 impact_floor: int = 0):
        self.pruned = pruned
        self.has_forward = forward is not None
        self.forward_indptr, self.forward_terms, self.forward_impacts = (
            (forward[name] for name in _FORWARD) if forward is not None else (None, None, None))
        self.postings_per_list, self.impact_floor = postings_per_list, impact_floor
        self.n_docs, self.vocab_size, self.scale = pruned.n_docs, pruned.vocab_size, pruned.scale
        self.doc_ids = pruned.doc_ids
        self._buffers = threading.local()

    @classmethod
    def build(cls, matrix: sp.spmatrix, postings_per_list: int | None = 1000, impact_floor: int = 0,
              forward: bool = True, doc_ids: list[str] | None = None, block_size: int = 64,
              chunk: int = 1 << 24) -> ApproximateIndex:
        """From a (n_docs x vocab) non-negative sparse matrix of document weights (as :meth:`InvertedIndex.build`).
        ``postings_per_list`` (None: no per-list cut) and ``impact_floor`` (0: none) prune; ``forward`` keeps the
        forward index for exact rescoring."""
        full = InvertedIndex.build(matrix, doc_ids=doc_ids, block_size=block_size, chunk=chunk)
        return cls.from_index(full, postings_per_list, impact_floor, forward)

    @classmethod
    def from_index(cls, full: InvertedIndex, postings_per_list: int | None = 1000, impact_floor: int = 0,
                   forward: bool = True) -> ApproximateIndex:
        """Pruned from an exact index's quantized postings (same scale, so kept impacts are unchanged)."""
        if postings_per_list is not None and postings_per_list < 1:
            raise ValueError("postings_per_list must be >= 1 (or None: no per-list cut)")
        if not 0 <= impact_floor <= 255:
            raise ValueError("impact_floor is a quantized impact, 0 (no floor) to 255")
        block_size = full.block_size
        offsets, docs, impacts = (np.asarray(a) for a in (full.offsets, full.docs, full.impacts))
        cut = (_cut_impacts(offsets, impacts, postings_per_list) if postings_per_list is not None
               else np.zeros(full.vocab_size, np.uint8))
        np.maximum(cut, np.uint8(impact_floor), out=cut)
        terms = np.repeat(np.arange(full.vocab_size, dtype=np.int32), np.diff(offsets))
        kept = impacts >= cut[terms]
        pruned_matrix = sp.csc_matrix((impacts[kept].astype(np.float32) * np.float32(full.scale),
                                       (docs[kept], terms[kept])), shape=(full.n_docs, full.vocab_size)).tocsr()
        del terms, kept
        pruned = InvertedIndex.build(pruned_matrix, doc_ids=full.doc_ids, block_size=block_size, scale=full.scale)
        arrays = None
        if forward:  # the full index read document by document (the same quantized impacts)
            matrix_by_doc = full.document_matrix(np.uint8)
            term_dtype = np.uint16 if full.vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32
            arrays = {"forward_indptr": matrix_by_doc.indptr.astype(np.int64),
                      "forward_terms": matrix_by_doc.indices.astype(term_dtype),
                      "forward_impacts": matrix_by_doc.data.astype(np.uint8)}
        return cls(pruned, arrays, postings_per_list, impact_floor)

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        self.pruned.save(path / "pruned")
        if self.has_forward:
            for name in _FORWARD:
                np.save(path / f"{name}.npy", getattr(self, name))
        meta = {"format_version": FORMAT_VERSION, "postings_per_list": self.postings_per_list,
                "impact_floor": self.impact_floor, "forward": self.has_forward}
        (path / "approximate.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> ApproximateIndex:
        path = Path(path)
        meta = json.loads((path / "approximate.json").read_text())
        if meta.get("format_version") not in (1, FORMAT_VERSION):
            raise ValueError(f"{path}: approximate index format {meta.get('format_version')}, expected 1 or "
                             f"{FORMAT_VERSION}")
        forward = ({name: np.load(path / f"{name}.npy", mmap_mode="r" if mmap else None) for name in _FORWARD}
                   if meta.get("forward", True) else None)
        return cls(InvertedIndex.load(path / "pruned", mmap=mmap), forward, meta["postings_per_list"],
                   meta.get("impact_floor", 0))

    def size_bytes(self) -> int:
        forward = sum(getattr(self, name).nbytes for name in _FORWARD) if self.has_forward else 0
        return self.pruned.size_bytes() + int(forward)

    def search(self, queries: sp.spmatrix, k: int = 10, candidates: int = 50, top_m: int | None = None,
               query_bits: int = 8, threads: int = 1) -> SearchResult:
        """Top-k per query. With a forward index: the exact top-``max(candidates, k)`` on the pruned lists (with the
        query's ``top_m`` heaviest terms), rescored exactly with every query term. Without one: the pruned index's
        top-k (``candidates`` unused). Approximate: a document none of whose heavy postings survived the pruning
        is not found."""
        if k < 1:
            raise ValueError("k must be >= 1")
        if not self.has_forward:
            return self.pruned.search(queries, k=k, top_m=top_m, query_bits=query_bits, threads=threads)
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


@dataclass(frozen=True)
class Pruning:
    """How to prune a collection for approximate serving, chosen from its impact histogram (:func:`choose_pruning`)."""

    rule: str  # "impact_floor" | "postings_per_list" | "none"
    impact_floor: int = 0
    postings_per_list: int | None = None
    forward: bool = True
    candidates: int = 50
    reason: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def choose_pruning(impacts: np.ndarray, n_docs: int, postings_per_list: int = 1000) -> Pruning:
    """The pruning rule that fits a collection's shape, from its histogram of quantized impacts (1..255).

    - **Bimodal** (PROSPER's expansion and literal weights: a low mode of at least 30% of the postings at or below
      ``BIMODAL_LOW``, a high mode of at least 15% at or above ``BIMODAL_HIGH``, and between them a trough under a
      fifth of the lower peak, on a 5-wide moving average): drop the low mode with an impact
      floor just above it (:func:`_valley`), no forward index (index-bench, fitted workload: floor 5,
      recall 0.9954 at k=10). A top document's score is a sum of near-maximal literal weights, so per-list cuts fail
      there (recall 0.17).
    - **Otherwise** (a Zipf-like, unimodal shape): keep each list's ``postings_per_list`` heaviest postings and rescore
      50 candidates exactly from a forward index (synthetic workload: recall 0.9974 at k=10). A collection whose
      lists are all shorter than that keeps everything: serving is then exact.
    """
    counts = np.bincount(np.asarray(impacts, dtype=np.int64), minlength=256)[1:].astype(np.float64)
    total = counts.sum()
    if total == 0:
        return Pruning("none", reason="empty index")
    low = counts[:BIMODAL_LOW].sum() / total
    high = counts[BIMODAL_HIGH - 1:].sum() / total
    smooth = np.convolve(counts, np.ones(5) / 5, mode="same")
    peaks = smooth[:BIMODAL_LOW].max(), smooth[BIMODAL_HIGH - 1:].max()
    valley = smooth[BIMODAL_LOW:BIMODAL_HIGH - 1].min()
    if low >= 0.30 and high >= 0.15 and valley < 0.2 * min(peaks):  # two modes with a trough between them
        return Pruning("impact_floor", impact_floor=_valley(counts), forward=False,
                       reason=f"bimodal: {low:.0%} of postings at impacts <= {BIMODAL_LOW}, {high:.0%} at >= "
                              f"{BIMODAL_HIGH}; the floor drops the low mode")
    return Pruning("postings_per_list", postings_per_list=postings_per_list, forward=True, candidates=50,
                   reason=f"unimodal: {low:.0%} low, {high:.0%} high; each list's {postings_per_list} heaviest "
                          f"postings (of {n_docs:,} documents), 50 candidates rescored exactly")


def _valley(counts: np.ndarray) -> int:
    """The floor for a bimodal histogram: one above the last impact of the low mode's bulk - the first impact after
    the low mode's peak where the count falls below 1% of that peak (so the whole low mode is dropped)."""
    peak = int(np.argmax(counts[:BIMODAL_LOW]))
    threshold = counts[peak] * 0.01
    for value in range(peak, BIMODAL_HIGH - 1):
        if counts[value] < threshold:
            return value + 1  # counts[value] is impact value + 1
    return BIMODAL_LOW + 1
