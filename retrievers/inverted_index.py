"""The learned-sparse inverted index: quantized impacts, per-block maxima, exact top-k by Block-Max MaxScore.

Every learned sparse retriever here (SPLADE family, DeepCT, PROSPER) is served from this index, as the paper serves
PROSPER (section 5.1: postings with weights, Block-Max MaxScore, top-16 query terms online).

Design, and why:

- **Quantization.** Document weights are stored as 8-bit impacts with one global scale,
  ``impact = round(w / scale)``, ``scale = max(w) / 255`` (weights that round to 0 are dropped). Query weights are
  quantized per query the same way to ``query_bits`` bits (default 8, as PISA does). Scores are then *integers*
  (sum of ``q_int * impact``), so every algorithm - whatever order it adds terms in - returns bit-identical scores, and
  "exact" has one meaning: equal to brute-force dot products on the quantized weights, ties broken by smaller doc
  index. Reported float scores are ``int_score * query_scale * scale``.
- **Layout.** Postings are sorted by doc index (CSC of the doc x term matrix): ``offsets`` (int64, vocab+1), ``docs``
  (int32), ``impacts`` (uint8). Blocks of ``block_size`` postings (default 64) carry their first and last doc index
  and max impact (the first doc is kept beside the block so that bounding a window reads a small array rather than
  a random position of ``docs``: one cache miss per block was most of Block-Max MaxScore's time at 1M documents);
  ``term_max`` is each list's max impact. All arrays are ``.npy`` files, memory-mapped on load.
- **Algorithms.** ``exhaustive`` (term-at-a-time accumulators, the reference), ``maxscore`` (document-at-a-time with
  essential / non-essential lists), ``bmm`` (MaxScore plus block-max bounds on the non-essential lists before they are
  probed). A document enters the top-k only with a positive score.
- **Speed.** The loops are numba-compiled with the GIL released; batches are split over threads.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import scipy.sparse as sp

ALGORITHMS = ("exhaustive", "maxscore", "bmm")
FORMAT_VERSION = 2  # 2 added block_first; a version-1 index still loads (block_first is derived on load)
_ARRAYS = ("offsets", "docs", "impacts", "block_offsets", "block_first", "block_last", "block_max", "term_max")


# ------------------------------------------------------------------------------------------------------- top-k heap
@numba.njit(inline="always")
def _worse(hs, hd, i, j):
    """Entry i ranks below entry j: lower score, or equal score and larger doc index."""
    return hs[i] < hs[j] or (hs[i] == hs[j] and hd[i] > hd[j])


@numba.njit
def _sift_down(hs, hd, size, i):
    while True:
        left, right, worst = 2 * i + 1, 2 * i + 2, i
        if left < size and _worse(hs, hd, left, worst):
            worst = left
        if right < size and _worse(hs, hd, right, worst):
            worst = right
        if worst == i:
            return
        hs[i], hs[worst] = hs[worst], hs[i]
        hd[i], hd[worst] = hd[worst], hd[i]
        i = worst


@numba.njit
def _heap_offer(hs, hd, size, k, score, doc):
    """Offer (score, doc) to a min-heap of the k best; returns the new size."""
    if size < k:
        i = size
        hs[i], hd[i] = score, doc
        while i > 0:
            parent = (i - 1) // 2
            if _worse(hs, hd, i, parent):
                hs[i], hs[parent] = hs[parent], hs[i]
                hd[i], hd[parent] = hd[parent], hd[i]
                i = parent
            else:
                break
        return size + 1
    if score > hs[0] or (score == hs[0] and doc < hd[0]):
        hs[0], hd[0] = score, doc
        _sift_down(hs, hd, size, 0)
    return size


@numba.njit
def _write_sorted(hs, hd, size, out_s, out_d):
    """Heap -> output row, best first (score desc, doc asc)."""
    keys = np.empty(size, np.int64)
    for i in range(size):
        keys[i] = i
    # insertion sort is fine for k <= a few thousand and keeps this numba-simple
    for i in range(1, size):
        j = i
        while j > 0:
            a, b = keys[j - 1], keys[j]
            if hs[a] < hs[b] or (hs[a] == hs[b] and hd[a] > hd[b]):
                keys[j - 1], keys[j] = b, a
                j -= 1
            else:
                break
    for r in range(size):
        out_s[r] = hs[keys[r]]
        out_d[r] = hd[keys[r]]


# -------------------------------------------------------------------------------------------------------- TAAT
@numba.njit(nogil=True)
def _exhaustive(offsets, docs, impacts, terms, weights, k, acc, out_s, out_d):
    for i in range(terms.shape[0]):
        t, w = terms[i], weights[i]
        for p in range(offsets[t], offsets[t + 1]):
            acc[docs[p]] += w * np.int64(impacts[p])
    hs = np.empty(k, np.int64)
    hd = np.empty(k, np.int32)
    size = 0
    for d in range(acc.shape[0]):
        if acc[d] > 0:
            size = _heap_offer(hs, hd, size, k, acc[d], d)
    for i in range(terms.shape[0]):  # reset only what was touched
        t = terms[i]
        for p in range(offsets[t], offsets[t + 1]):
            acc[docs[p]] = 0
    _write_sorted(hs, hd, size, out_s, out_d)


# --------------------------------------------------------------------------------------------- MaxScore / BMM
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_INDEX = np.zeros(64, np.int64)
for _bit in range(64):
    _DEBRUIJN_INDEX[((1 << _bit) * 0x03F79D71B4CB0A89 & (2**64 - 1)) >> 58] = _bit


@numba.njit(inline="always")
def _gallop(docs, p, e, d):
    """First position in [p, e) whose doc is >= d, given docs[p] < d: exponential then binary search.

    Candidates arrive in increasing doc order, so the target is usually a few postings ahead; galloping costs
    O(log distance) where a binary search over the rest of a long list costs O(log length) cache misses.
    """
    lo, step, hi = p, 1, p + 1
    while hi < e and docs[hi] < d:
        lo = hi
        step *= 2
        hi = p + step
    if hi > e:
        hi = e
    return lo + 1 + np.searchsorted(docs[lo + 1:hi], d)


@numba.njit(nogil=True)
def _seed_threshold(offsets, docs, impacts, terms, weights, ub, k):
    """A safe starting threshold: the k-th best exact score among a few likely-good documents, or -1.

    The candidates are the highest-impact postings of the lists with the largest upper bounds (a 256-bin histogram
    finds each list's cut-off in one pass); each is scored exactly by binary search in every query list. Any k
    exactly-scored documents prove that the k-th best score is at least their k-th best, so a document scoring
    *below* it can be pruned from the start instead of after the heap fills (ties still compete: the caller prunes
    ``score <= seed - 1``). Results are unchanged; only the early windows get cheaper.
    """
    m = terms.shape[0]
    order = np.argsort(-ub, kind="mergesort")
    cand = np.empty(2 * k, np.int32)
    n = 0
    for r in range(m):
        t = terms[order[r]]
        s, e = offsets[t], offsets[t + 1]
        if e == s:
            continue
        need = 2 * k - n
        hist = np.zeros(256, np.int64)
        for p in range(s, e):
            hist[impacts[p]] += 1
        cut, total = 255, hist[255]
        while cut > 0 and total < need:
            cut -= 1
            total += hist[cut]
        for p in range(s, e):
            if impacts[p] >= cut and n < 2 * k:
                cand[n] = docs[p]
                n += 1
        if n >= k:
            break
    if n < k:
        return np.int64(-1)
    uniq = np.unique(cand[:n])
    if uniq.shape[0] < k:
        return np.int64(-1)
    scores = np.zeros(uniq.shape[0], np.int64)
    for i in range(m):
        t = terms[i]
        s, e = offsets[t], offsets[t + 1]
        for c in range(uniq.shape[0]):
            p = s + np.searchsorted(docs[s:e], uniq[c])
            if p < e and docs[p] == uniq[c]:
                scores[c] += weights[i] * np.int64(impacts[p])
    scores.sort()
    return scores[uniq.shape[0] - k]


@numba.njit(nogil=True)
def _daat(offsets, docs, impacts, block_offsets, block_first, block_last, block_max, term_max, terms, weights, k,
          use_blocks,
          n_docs, block_size, window, seed, acc, touched_bits, out_s, out_d):
    """MaxScore over windows of ``window`` documents, as Lucene's MaxScoreBulkScorer does.

    Per window, lists are split into essential and non-essential by their upper bounds: the lists with the smallest
    bounds whose bounds sum to at most theta (the k-th best score so far) are non-essential - a document found only in
    them cannot enter the top k. Essential lists are scored term-at-a-time into a small accumulator; each touched
    document is checked against theta with the non-essential bounds, and only then are those lists probed (binary
    search), heaviest first, stopping as soon as the rest cannot lift it above theta. The touched documents are found
    through a bitmap (one bit per window slot, walked lowest set bit first, in doc order), not by scanning the whole
    accumulator: a window holds a few hundred candidates among thousands of slots.

    ``use_blocks`` (Block-Max MaxScore): a list's bound in a window is the largest block maximum among its blocks that
    overlap the window, not its global maximum, so the split is redone per window, much tighter; a window whose bounds
    sum to at most theta is skipped whole.
    """
    m = terms.shape[0]
    ub = np.empty(m, np.int64)
    for i in range(m):
        ub[i] = weights[i] * np.int64(term_max[terms[i]])
    pos = np.empty(m, np.int64)
    end = np.empty(m, np.int64)
    start_of = np.empty(m, np.int64)
    bpos = np.empty(m, np.int64)
    bend = np.empty(m, np.int64)
    bstart = np.empty(m, np.int64)
    for i in range(m):
        pos[i], end[i] = offsets[terms[i]], offsets[terms[i] + 1]
        start_of[i] = pos[i]
        bpos[i], bend[i] = block_offsets[terms[i]], block_offsets[terms[i] + 1]
        bstart[i] = bpos[i]
    order = np.argsort(ub, kind="mergesort")  # ascending bound: non-essential candidates first
    prefix = np.cumsum(ub[order])
    bound = ub.copy()
    cpos = bpos.copy()  # per-candidate block cursor (Block-Max MaxScore), monotone like the documents
    hs = np.empty(k, np.int64)
    hd = np.empty(k, np.int32)
    size = 0
    theta = np.int64(-1)  # a document scoring <= theta cannot enter the top k; -1: no bound yet
    if seed:
        found = _seed_threshold(offsets, docs, impacts, terms, weights, ub, k)
        if found > 0:
            theta = found - 1
    for w0 in range(0, n_docs, window):
        w1 = min(w0 + window, n_docs)
        if use_blocks and theta >= 0:
            total = np.int64(0)
            for i in range(m):
                b = bpos[i]
                while b < bend[i] and block_last[b] < w0:
                    b += 1
                bpos[i] = b
                best = 0
                while b < bend[i] and block_first[b] < w1:
                    if block_max[b] > best:
                        best = block_max[b]
                    if block_last[b] >= w1:
                        break
                    b += 1
                bound[i] = weights[i] * np.int64(best)
                total += bound[i]
            if total <= theta:
                continue  # no document of this window can enter the top k
            order = np.argsort(bound, kind="mergesort")
            prefix = np.cumsum(bound[order])
        first = 0
        if theta >= 0:
            while first < m and prefix[first] <= theta:
                first += 1
        if first == m:
            if not use_blocks:
                break  # with global bounds, no later window can do better either
            continue
        touched = False
        for r in range(first, m):
            i = order[r]
            p, e, wi = pos[i], end[i], weights[i]
            if p < e and docs[p] < w0:
                p = _gallop(docs, p, e, w0)
            while p < e and docs[p] < w1:
                slot = docs[p] - w0
                acc[slot] += wi * np.int64(impacts[p])
                touched_bits[slot >> 6] |= np.uint64(1) << np.uint64(slot & 63)
                p += 1
                touched = True
            pos[i] = p
        if not touched:
            continue
        for word in range((w1 - w0 + 63) >> 6):
            bits = touched_bits[word]
            touched_bits[word] = 0
            while bits != 0:
                low = bits & (~bits + np.uint64(1))
                bits ^= low
                j = (word << 6) + _DEBRUIJN_INDEX[(low * _DEBRUIJN) >> np.uint64(58)]
                score = acc[j]
                acc[j] = 0
                d = w0 + j
                if first > 0:
                    if theta >= 0 and score + prefix[first - 1] <= theta:
                        continue
                    rest = prefix[first - 1]
                    pruned = False
                    for r in range(first - 1, -1, -1):
                        if theta >= 0 and score + rest <= theta:
                            pruned = True
                            break
                        i = order[r]
                        rest -= bound[i]
                        if use_blocks:
                            # Block-Max: the bound of the one block of list i that could hold d (0 when d falls between
                            # two blocks: list i cannot hold d and is not probed); the block cursor only moves forward
                            b = cpos[i]
                            while b < bend[i] and block_last[b] < d:
                                b += 1
                            cpos[i] = b
                            if b == bend[i] or block_first[b] > d:
                                continue
                            if theta >= 0 and score + rest + weights[i] * np.int64(block_max[b]) <= theta:
                                pruned = True
                                break
                            # d can only be in block b: search its postings, not the list from the cursor on
                            p = max(pos[i], start_of[i] + (b - bstart[i]) * block_size)
                            e = min(start_of[i] + (b - bstart[i] + 1) * block_size, end[i])
                            if docs[p] < d:
                                p = p + 1 + np.searchsorted(docs[p + 1:e], d)
                            pos[i] = p
                            if p < e and docs[p] == d:
                                score += weights[i] * np.int64(impacts[p])
                            continue
                        p, e = pos[i], end[i]
                        if p < e and docs[p] < d:
                            p = _gallop(docs, p, e, d)
                            pos[i] = p
                        if p < e and docs[p] == d:
                            score += weights[i] * np.int64(impacts[p])
                    if pruned:
                        continue
                if size < k or score > theta:  # documents come in increasing order: a tie never beats the heap's worst
                    size = _heap_offer(hs, hd, size, k, score, np.int32(d))
                    if size == k and hs[0] > theta:
                        theta = hs[0]
    _write_sorted(hs, hd, size, out_s, out_d)


@numba.njit(nogil=True)
def _search_chunk(offsets, docs, impacts, block_offsets, block_first, block_last, block_max, term_max, n_docs,
                  block_size, window,
                  q_indptr, q_terms, q_weights, start, stop, k, algorithm, seed, out_s, out_d):
    acc = np.zeros(n_docs if algorithm == 0 else window, np.int64)
    touched_bits = np.zeros((window + 63) // 64, np.uint64)
    for q in range(start, stop):
        terms = q_terms[q_indptr[q]:q_indptr[q + 1]]
        weights = q_weights[q_indptr[q]:q_indptr[q + 1]]
        if terms.shape[0] == 0:
            continue
        if algorithm == 0:
            _exhaustive(offsets, docs, impacts, terms, weights, k, acc, out_s[q], out_d[q])
        else:
            _daat(offsets, docs, impacts, block_offsets, block_first, block_last, block_max, term_max, terms, weights, k,
                  algorithm == 2, n_docs, np.int64(block_size), window, seed, acc, touched_bits, out_s[q], out_d[q])


# ------------------------------------------------------------------------------------------------------- index
def quantize_queries(queries: sp.csr_matrix, bits: int = 8, top_m: int | None = None):
    """Keep each query's ``top_m`` heaviest terms (ties: smaller term id), quantize to ``bits``; drop zeros.

    Returns (indptr, terms int32, weights int64, scales float64 per query).
    """
    queries = sp.csr_matrix(queries, dtype=np.float64, copy=True)
    queries.sum_duplicates()
    levels = (1 << bits) - 1
    indptr, terms, weights, scales = [0], [], [], np.zeros(queries.shape[0])
    for q in range(queries.shape[0]):
        cols = queries.indices[queries.indptr[q]:queries.indptr[q + 1]]
        vals = queries.data[queries.indptr[q]:queries.indptr[q + 1]]
        keep = vals > 0
        cols, vals = cols[keep], vals[keep]
        if top_m is not None and cols.size > top_m:
            order = np.lexsort((cols, -vals))[:top_m]
            cols, vals = cols[order], vals[order]
        if cols.size:
            scales[q] = vals.max() / levels
            qint = np.rint(vals / scales[q]).astype(np.int64)
            nz = qint > 0
            order = np.argsort(cols[nz], kind="stable")
            terms.append(cols[nz][order].astype(np.int32))
            weights.append(qint[nz][order])
        indptr.append(indptr[-1] + (int(nz.sum()) if cols.size else 0))
    cat_t = np.concatenate(terms) if terms else np.zeros(0, np.int32)
    cat_w = np.concatenate(weights) if weights else np.zeros(0, np.int64)
    return np.asarray(indptr, np.int64), cat_t, cat_w, scales


@dataclass
class SearchResult:
    """Top-k per query: doc indices (-1 padded), integer scores and float scores; ``ids`` maps indices to pids."""

    doc_index: np.ndarray  # (n_queries, k) int32
    int_scores: np.ndarray  # (n_queries, k) int64
    scores: np.ndarray  # (n_queries, k) float64

    def hits(self, q: int, ids: list[str]) -> list[tuple[str, float]]:
        row = self.doc_index[q]
        n = int((row >= 0).sum())
        return [(ids[row[i]], float(self.scores[q, i])) for i in range(n)]


def _derive_block_first(arrays: dict[str, np.ndarray], block_size: int) -> np.ndarray:
    """First doc of every block, for an index saved before ``block_first`` was stored (format 1)."""
    offsets, block_offsets = np.asarray(arrays["offsets"]), np.asarray(arrays["block_offsets"])
    term_of_block = np.repeat(np.arange(block_offsets.size - 1), np.diff(block_offsets))
    within = np.arange(block_offsets[-1]) - block_offsets[term_of_block]
    return np.asarray(arrays["docs"])[offsets[term_of_block] + within * block_size].astype(np.int32)


class InvertedIndex:
    """Impact-ordered-by-doc inverted index over a vocabulary of term ids; see the module docstring."""

    def __init__(self, arrays: dict[str, np.ndarray], n_docs: int, vocab_size: int, scale: float, block_size: int,
                 doc_ids: list[str] | None = None):
        for name in _ARRAYS:
            setattr(self, name, arrays[name])
        self.n_docs, self.vocab_size, self.scale, self.block_size = n_docs, vocab_size, scale, block_size
        self.doc_ids = doc_ids if doc_ids is not None else [str(i) for i in range(n_docs)]

    # -- construction --------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, matrix: sp.spmatrix, doc_ids: list[str] | None = None, block_size: int = 64,
              scale: float | None = None) -> InvertedIndex:
        """Build from a (n_docs x vocab) non-negative sparse matrix of document weights."""
        if block_size < 1:
            raise ValueError("block_size must be >= 1")
        csr = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
        csr.sum_duplicates()
        if csr.nnz and csr.data.min() < 0:
            raise ValueError("document weights must be non-negative")
        n_docs, vocab = csr.shape
        if doc_ids is not None and len(doc_ids) != n_docs:
            raise ValueError(f"{len(doc_ids)} doc ids for {n_docs} documents")
        top = float(csr.data.max()) if csr.nnz else 1.0
        scale = float(scale) if scale else (top / 255.0 if top > 0 else 1.0)
        quant = np.clip(np.rint(csr.data / scale), 0, 255).astype(np.uint8)
        # copies: eliminate_zeros() compacts in place and must not touch the caller's matrix
        csr = sp.csr_matrix((quant, csr.indices.copy(), csr.indptr.copy()), shape=csr.shape)
        csr.eliminate_zeros()
        csc = csr.tocsc()
        csc.sort_indices()
        offsets = csc.indptr.astype(np.int64)
        docs = csc.indices.astype(np.int32)
        impacts = csc.data.astype(np.uint8)
        lengths = np.diff(offsets)
        n_blocks = (lengths + block_size - 1) // block_size
        block_offsets = np.zeros(vocab + 1, np.int64)
        np.cumsum(n_blocks, out=block_offsets[1:])
        # start of every block, as a posting position
        term_of_block = np.repeat(np.arange(vocab), n_blocks)
        within = np.arange(block_offsets[-1]) - block_offsets[term_of_block]
        starts = offsets[term_of_block] + within * block_size
        ends = np.minimum(starts + block_size, offsets[term_of_block + 1])
        block_max = np.maximum.reduceat(impacts, starts) if starts.size else np.zeros(0, np.uint8)
        block_last = docs[ends - 1] if starts.size else np.zeros(0, np.int32)
        block_first = docs[starts] if starts.size else np.zeros(0, np.int32)
        term_max = np.zeros(vocab, np.uint8)
        nonempty = lengths > 0
        if nonempty.any():
            term_max[nonempty] = np.maximum.reduceat(impacts, offsets[:-1][nonempty])
        arrays = {"offsets": offsets, "docs": docs, "impacts": impacts, "block_offsets": block_offsets,
                  "block_first": block_first.astype(np.int32), "block_last": block_last.astype(np.int32),
                  "block_max": block_max.astype(np.uint8),
                  "term_max": term_max}
        return cls(arrays, n_docs, vocab, scale, block_size, doc_ids)

    # -- persistence ---------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name in _ARRAYS:
            np.save(path / f"{name}.npy", getattr(self, name))
        meta = {"format_version": FORMAT_VERSION, "n_docs": self.n_docs, "vocab_size": self.vocab_size,
                "scale": self.scale, "block_size": self.block_size, "postings": int(self.docs.shape[0])}
        (path / "meta.json").write_text(json.dumps(meta, indent=2))
        (path / "doc_ids.json").write_text(json.dumps(self.doc_ids, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> InvertedIndex:
        path = Path(path)
        meta = json.loads((path / "meta.json").read_text())
        version = meta.get("format_version")
        if version not in (1, FORMAT_VERSION):
            raise ValueError(f"{path}: index format {version}, expected 1 or {FORMAT_VERSION}")
        stored = [name for name in _ARRAYS if version > 1 or name != "block_first"]
        arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r" if mmap else None) for name in stored}
        if version == 1:
            arrays["block_first"] = _derive_block_first(arrays, meta["block_size"])
        doc_ids = json.loads((path / "doc_ids.json").read_text())
        return cls(arrays, meta["n_docs"], meta["vocab_size"], meta["scale"], meta["block_size"], doc_ids)

    def size_bytes(self) -> int:
        return int(sum(getattr(self, name).nbytes for name in _ARRAYS))

    # -- search --------------------------------------------------------------------------------------------------
    def search(self, queries: sp.spmatrix, k: int = 10, algorithm: str = "bmm", top_m: int | None = None,
               query_bits: int = 8, threads: int = 1, window: int = 8192, seed: bool = True) -> SearchResult:
        """Exact top-k for each row of ``queries`` (n_queries x vocab, non-negative weights).

        ``window``: documents per MaxScore window (DAAT algorithms only); ``seed``: start DAAT from a safe threshold
        (see ``_seed_threshold``). Both are speed knobs, never a change in results.
        """
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}; choose from {ALGORITHMS}")
        if queries.shape[1] != self.vocab_size:
            raise ValueError(f"queries have {queries.shape[1]} columns, the index vocabulary has {self.vocab_size}")
        if k < 1:
            raise ValueError("k must be >= 1")
        indptr, terms, weights, q_scales = quantize_queries(queries, query_bits, top_m)
        n = len(indptr) - 1
        k_eff = min(k, max(self.n_docs, 1))
        out_d = np.full((n, k_eff), -1, np.int32)
        out_s = np.zeros((n, k_eff), np.int64)
        code = ALGORITHMS.index(algorithm)
        arrays = [np.asarray(getattr(self, name)) for name in _ARRAYS]

        def work(bounds: tuple[int, int]) -> None:
            _search_chunk(*arrays, self.n_docs, self.block_size, window, indptr, terms, weights, bounds[0], bounds[1],
                          k_eff, code, seed, out_s, out_d)

        threads = max(1, min(threads, n))
        step = max(1, math.ceil(n / (threads * 4)))
        chunks = [(s, min(s + step, n)) for s in range(0, n, step)]
        if threads == 1:
            for chunk in chunks:
                work(chunk)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(work, chunks))
        scores = out_s.astype(np.float64) * (q_scales[:, None] * self.scale)
        return SearchResult(out_d, out_s, scores)

    def overlap_flops(self, queries: sp.spmatrix, top_m: int | None = None) -> float:
        """Average number of terms a query shares with a document, over all (query, document) pairs."""
        indptr, terms, _, _ = quantize_queries(queries, 8, top_m)
        lengths = np.diff(np.asarray(self.offsets))
        n = len(indptr) - 1
        return float(lengths[terms].sum() / max(self.n_docs, 1) / max(n, 1))


def brute_force(index: InvertedIndex, queries: sp.spmatrix, k: int, top_m: int | None = None,
                query_bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Reference: dense integer dot products on the quantized weights, ties by smaller doc index."""
    indptr, terms, weights, _ = quantize_queries(queries, query_bits, top_m)
    q = sp.csr_matrix((weights, terms, indptr), shape=(len(indptr) - 1, index.vocab_size)).astype(np.int64)
    d = sp.csc_matrix((np.asarray(index.impacts).astype(np.int64), np.asarray(index.docs), np.asarray(index.offsets)),
                      shape=(index.n_docs, index.vocab_size))
    scores = (q @ d.T).toarray()
    k_eff = min(k, index.n_docs)
    docs = np.full((scores.shape[0], k_eff), -1, np.int32)
    out = np.zeros((scores.shape[0], k_eff), np.int64)
    for i, row in enumerate(scores):
        order = np.lexsort((np.arange(row.size), -row))
        order = order[row[order] > 0][:k_eff]
        docs[i, : order.size] = order
        out[i, : order.size] = row[order]
    return docs, out
