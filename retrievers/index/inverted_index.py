"""The learned-sparse inverted index: quantized impacts, block and window maxima, exact top-k by several algorithms.

Every learned sparse retriever here (SPLADE family, DeepCT's impact option, PROSPER) is served from this index, as the
paper serves PROSPER (section 5.1: postings with weights, Block-Max MaxScore, top-16 query terms online).

Design, and why:

- **Quantization.** Document weights are stored as 8-bit impacts with one global scale,
  ``impact = round(w / scale)``, ``scale = max(w) / 255`` (weights that round to 0 are dropped). Query weights are
  quantized per query the same way to ``query_bits`` bits (default 8, as PISA does). Scores are then *integers*
  (sum of ``q_int * impact``), so every algorithm - whatever order it adds terms in - returns bit-identical scores, and
  "exact" has one meaning: equal to brute-force dot products on the quantized weights, ties broken by smaller doc
  index. Reported float scores are ``int_score * query_scale * scale``.
- **Layout.** Postings are sorted by doc index: ``offsets`` (int64, vocab+1), ``docs`` (int32), ``impacts`` (uint8).
  Blocks of ``block_size`` postings (default 64) carry their first and last doc index and max impact; ``term_max``
  is each list's max impact. Per list and per *index window* of ``window`` documents (default 4096) the largest impact
  (``win_*``: one entry per window the list occurs in) gives Block-Max MaxScore its window bounds without scanning
  blocks. ``term_kth`` holds each list's 10th/100th/1000th/10000th largest impact: w x kth is a safe starting
  threshold (at least that many documents score that much). All arrays are ``.npy`` files, memory-mapped on load.
- **Algorithms.** ``exhaustive`` (term-at-a-time into one accumulator: the reference), ``taat`` (term-at-a-time in
  document windows with a cache-resident accumulator: every posting read, at streaming speed), ``maxscore``
  (document-at-a-time with essential / non-essential lists), ``bmm`` (MaxScore with per-window bounds and block-max
  checks before probing), ``two-phase`` (the threshold first: the heaviest lists term-at-a-time into a collection-wide
  accumulator, the k-th largest partial score as a safe threshold, then the remaining lists probed block by block for
  the few documents that can still beat it - for large k and for dense, PROSPER-shaped lists, where DAAT's threshold
  rises too late), and ``auto`` (bmm, or two-phase for k > 50 or dense lists). ``share`` (< 1) makes the DAAT and
  two-phase splits stream more lists so that far fewer candidates are probed (a 1M-document PROSPER-shaped workload:
  a single heavy list's partial score plus MaxScore's non-essential bounds beat the threshold for ~30% of the
  collection; with share 0.25, 0.2%). A document enters the top-k only with a positive score. ``boost`` > 1 turns
  the DAAT algorithms approximate (prune against threshold x boost).
- **Speed.** The loops are numba-compiled (cached on disk: a new process does not recompile) with the GIL released;
  batches are split over threads; each thread reuses its accumulators across calls.
"""

from __future__ import annotations

import json
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import scipy.sparse as sp

from retrievers.index.daat import daat
from retrievers.index.format import (
    ARRAYS,
    FORMAT_VERSION,
    INDEX_WINDOW,
    KTH_RANKS,
    SINCE,
    block_arrays,
    derived_arrays,
    postings_from_rows,
)
from retrievers.index.kernels import theta0
from retrievers.index.taat import exhaustive, taat_windows, two_phase

ALGORITHMS = ("exhaustive", "maxscore", "bmm", "taat", "two-phase")
AUTO_LARGE_K = 50  # "auto": two-phase above this k (a DAAT threshold rises too slowly when it is the 1000th best)
AUTO_DENSE_FLOPS = 8.0  # "auto": two-phase at any k when the query lists hold >= this many postings per document
_ARRAYS = ARRAYS
_SEARCH_ARRAYS = _ARRAYS  # the order _search_chunk takes them in
_SINCE = SINCE


@numba.njit(nogil=True, cache=True)
def _search_chunk(offsets, docs, impacts, block_offsets, block_first, block_last, block_max, term_max, win_offsets,
                  win_ids, win_max, term_kth, n_docs, block_size, index_window, window, q_indptr, q_terms, q_weights,
                  start, stop, k, algorithm, kth_column, boost, share, acc, touched, out_s, out_d):
    """Queries ``start..stop`` with one algorithm; ``acc`` / ``touched`` are this thread's reusable buffers."""
    touched_bits = np.zeros((window + 63) // 64, np.uint64)
    for q in range(start, stop):
        terms = q_terms[q_indptr[q]:q_indptr[q + 1]]
        weights = q_weights[q_indptr[q]:q_indptr[q + 1]]
        if terms.shape[0] == 0:
            continue
        if algorithm == 0:
            exhaustive(offsets, docs, impacts, terms, weights, k, acc, touched, out_s[q], out_d[q])
            continue
        theta = theta0(terms, weights, term_kth, kth_column)
        if algorithm == 4:
            two_phase(offsets, docs, impacts, block_offsets, block_first, block_last, block_max, term_max,
                       np.int64(block_size), terms, weights, k, theta, n_docs, share, boost, acc, out_s[q], out_d[q])
        elif algorithm == 3:
            taat_windows(offsets, docs, impacts, terms, weights, k, theta, n_docs, window, acc, out_s[q], out_d[q])
        else:
            daat(offsets, docs, impacts, block_offsets, block_first, block_last, block_max, term_max, win_offsets,
                  win_ids, win_max, index_window, terms, weights, k, algorithm == 2, n_docs, np.int64(block_size),
                  window, theta, boost, share, acc, touched_bits, out_s[q], out_d[q])




# ------------------------------------------------------------------------------------------------------ queries
def quantize_queries(queries: sp.spmatrix, bits: int = 8, top_m: int | None = None):
    """Keep each query's ``top_m`` heaviest terms (ties: smaller term id), quantize to ``bits``; drop zeros.

    Returns (indptr, terms int32, weights int64, scales float64 per query). Vectorised over all queries at once (a
    Python loop per query cost 0.06 ms, a third of a top-16 search).
    """
    csr = sp.csr_matrix(queries)
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    n = csr.shape[0]
    rows = np.repeat(np.arange(n), np.diff(csr.indptr))
    vals = csr.data.astype(np.float64)
    cols = csr.indices.astype(np.int64)
    keep = vals > 0
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    if top_m is not None:
        order = np.lexsort((cols, -vals, rows))  # per row: heaviest first, ties by smaller term id
        rows, cols, vals = rows[order], cols[order], vals[order]
        starts = np.searchsorted(rows, np.arange(n))
        rank = np.arange(rows.size) - starts[rows]
        keep = rank < top_m
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
    levels = (1 << bits) - 1
    scales = np.zeros(n)
    if rows.size:
        np.maximum.at(scales, rows, vals)
    scales /= levels
    qint = np.rint(vals / np.where(scales[rows] > 0, scales[rows], 1.0)).astype(np.int64)
    nz = qint > 0
    rows, cols, qint = rows[nz], cols[nz], qint[nz]
    order = np.lexsort((cols, rows))
    rows, cols, qint = rows[order], cols[order], qint[order]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, cols.astype(np.int32), qint, scales


def run_in_chunks(work, n: int, threads: int, chunks_per_thread: int = 4) -> None:
    """Call ``work((start, stop))`` over ``range(n)`` in chunks, on ``threads`` threads (the kernels release the GIL);
    several chunks per thread even out queries of unequal cost."""
    threads = max(1, min(threads, n))
    step = max(1, math.ceil(n / (threads * chunks_per_thread)))
    chunks = [(s, min(s + step, n)) for s in range(0, n, step)]
    if threads == 1:
        for chunk in chunks:
            work(chunk)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, chunks))


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
                 doc_ids: list[str] | None = None, window: int = INDEX_WINDOW):
        for name in _ARRAYS:
            setattr(self, name, arrays[name])
        self.n_docs, self.vocab_size, self.scale, self.block_size = n_docs, vocab_size, scale, block_size
        self.window = window
        self.doc_ids = doc_ids if doc_ids is not None else [str(i) for i in range(n_docs)]
        self._buffers = threading.local()

    # -- construction --------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, matrix: sp.spmatrix, doc_ids: list[str] | None = None, block_size: int = 64,
              scale: float | None = None, window: int = INDEX_WINDOW, chunk: int = 1 << 24) -> InvertedIndex:
        """Build from a (n_docs x vocab) non-negative sparse matrix of document weights.

        Memory: the caller's matrix is read as it is (CSR, any float dtype); impacts are quantized chunk by chunk into
        one byte per entry, and postings are written by a counting sort - peak memory is the input plus ~6 bytes per
        entry, not a float64 copy of it.
        """
        if block_size < 1:
            raise ValueError("block_size must be >= 1")
        csr = matrix.tocsr() if sp.issparse(matrix) else sp.csr_matrix(matrix)
        if not csr.has_canonical_format:
            csr = csr.copy()
            csr.sum_duplicates()
        n_docs, vocab = csr.shape
        if doc_ids is not None and len(doc_ids) != n_docs:
            raise ValueError(f"{len(doc_ids)} doc ids for {n_docs} documents")
        data = csr.data
        if data.size and data.min() < 0:
            raise ValueError("document weights must be non-negative")
        top = float(data.max()) if data.size else 1.0
        scale = float(scale) if scale else (top / 255.0 if top > 0 else 1.0)
        quant = np.empty(data.size, np.uint8)
        for start in range(0, data.size, chunk):
            part = np.rint(data[start:start + chunk].astype(np.float64) / scale)
            quant[start:start + chunk] = np.clip(part, 0, 255)
        offsets, docs, impacts = postings_from_rows(csr.indptr.astype(np.int64), csr.indices.astype(np.int32),
                                                     quant, vocab)
        del quant
        arrays = {"offsets": offsets, "docs": docs, "impacts": impacts,
                  **block_arrays(offsets, docs, impacts, block_size)}
        arrays.update(derived_arrays(arrays, window))
        return cls(arrays, n_docs, vocab, scale, block_size, doc_ids, window)

    def document_matrix(self, dtype=np.int64) -> sp.csr_matrix:
        """The quantized impacts as a (n_docs x vocab) CSR matrix, for readers that want documents, not lists."""
        matrix = sp.csc_matrix((np.asarray(self.impacts).astype(dtype), np.asarray(self.docs), np.asarray(self.offsets)),
                               shape=(self.n_docs, self.vocab_size)).tocsr()
        matrix.sort_indices()
        return matrix

    # -- persistence ---------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name in _ARRAYS:
            np.save(path / f"{name}.npy", getattr(self, name))
        meta = {"format_version": FORMAT_VERSION, "n_docs": self.n_docs, "vocab_size": self.vocab_size,
                "scale": self.scale, "block_size": self.block_size, "window": self.window,
                "postings": int(self.docs.shape[0])}
        (path / "meta.json").write_text(json.dumps(meta, indent=2))
        (path / "doc_ids.json").write_text(json.dumps(self.doc_ids, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> InvertedIndex:
        path = Path(path)
        meta = json.loads((path / "meta.json").read_text())
        version = meta.get("format_version")
        if version not in (1, 2, FORMAT_VERSION):
            raise ValueError(f"{path}: index format {version}, expected 1 to {FORMAT_VERSION}")
        stored = [name for name in _ARRAYS if name not in _SINCE.get(version, ())]
        arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r" if mmap else None) for name in stored}
        if version == 1:
            arrays["block_first"] = _derive_block_first(arrays, meta["block_size"])
        window = meta.get("window", INDEX_WINDOW)
        if version < 3:  # window maxima and k-th impacts are derived from the postings (seconds at 1M documents)
            arrays.update(derived_arrays(arrays, window))
        doc_ids = json.loads((path / "doc_ids.json").read_text())
        return cls(arrays, meta["n_docs"], meta["vocab_size"], meta["scale"], meta["block_size"], doc_ids, window)

    def size_bytes(self) -> int:
        return int(sum(getattr(self, name).nbytes for name in _ARRAYS))

    # -- search --------------------------------------------------------------------------------------------------
    def _thread_buffers(self, algorithm: int, window: int) -> tuple[np.ndarray, np.ndarray]:
        """This thread's accumulator (and touched list): allocated once, reused by every call (they are left zeroed)."""
        size = self.n_docs if algorithm in (0, 4) else window
        buffers = getattr(self._buffers, "arrays", None)
        if buffers is None or buffers[0].shape[0] < max(size, 1):
            buffers = (np.zeros(max(size, 1), np.int64), np.zeros(max(self.n_docs if algorithm == 0 else 1, 1),
                                                                   np.int32))
            self._buffers.arrays = buffers
        elif algorithm == 0 and buffers[1].shape[0] < self.n_docs:
            buffers = (buffers[0], np.zeros(self.n_docs, np.int32))
            self._buffers.arrays = buffers
        return buffers

    def search(self, queries: sp.spmatrix, k: int = 10, algorithm: str = "auto", top_m: int | None = None,
               query_bits: int = 8, threads: int = 1, window: int | None = None, seed: bool = True,
               boost: float = 1.0, share: float | None = None) -> SearchResult:
        """Top-k for each row of ``queries`` (n_queries x vocab, non-negative weights); exact unless ``boost`` > 1.

        ``algorithm``: ``auto`` picks by measurement (1M documents, 1 thread; results/index-bench): Block-Max MaxScore
        (``bmm``) for k <= 50 on lists of ordinary density, ``two-phase`` for larger k or when the query's lists hold
        >= 8 postings per document (a PROSPER-shaped workload: few heavy terms that occur in a third of the
        collection); or any of ``bmm``, ``maxscore``, ``two-phase``, ``taat``, ``exhaustive``. ``window``: documents
        per DAAT/TAAT window (default: the index's); ``seed``: start from the k-th-impact threshold; ``share``: the
        non-essential lists' bounds may sum to at most ``share`` x the threshold (1 is MaxScore's classic split; less
        streams more lists and probes far fewer candidates; default: 0.5 for DAAT, 0.25 / 0.1 for two-phase at small /
        large k, as measured). All three are speed knobs, never a change in results. ``boost`` > 1 (DAAT only): prune
        against the threshold x boost - approximate.
        """
        if algorithm not in ("auto", *ALGORITHMS):
            raise ValueError(f"unknown algorithm {algorithm!r}; choose from {('auto', *ALGORITHMS)}")
        if queries.shape[1] != self.vocab_size:
            raise ValueError(f"queries have {queries.shape[1]} columns, the index vocabulary has {self.vocab_size}")
        if k < 1:
            raise ValueError("k must be >= 1")
        if boost < 1.0:
            raise ValueError("boost must be >= 1 (1 = exact)")
        if share is not None and not 0.0 <= share <= 1.0:
            raise ValueError("share must be in [0, 1]")
        window = int(window or self.window)
        indptr, terms, weights, q_scales = quantize_queries(queries, query_bits, top_m)
        n = len(indptr) - 1
        if algorithm == "auto":
            algorithm = self._auto(terms, n, k)
        if share is None:
            share = (0.25 if k <= AUTO_LARGE_K else 0.1) if algorithm == "two-phase" else 0.5
        k_eff = min(k, max(self.n_docs, 1))
        out_d = np.full((n, k_eff), -1, np.int32)
        out_s = np.zeros((n, k_eff), np.int64)
        code = ALGORITHMS.index(algorithm)
        kth_column = int(np.searchsorted(KTH_RANKS, k_eff)) if seed else -1
        kth_column = kth_column if kth_column < KTH_RANKS.size else -1
        arrays = [np.asarray(getattr(self, name)) for name in _SEARCH_ARRAYS]

        def work(bounds: tuple[int, int]) -> None:
            acc, touched = self._thread_buffers(code, window)
            _search_chunk(*arrays, self.n_docs, self.block_size, self.window, window, indptr, terms, weights,
                          bounds[0], bounds[1], k_eff, code, kth_column, float(boost), float(share), acc, touched,
                          out_s, out_d)

        run_in_chunks(work, n, threads)
        scores = out_s.astype(np.float64) * (q_scales[:, None] * self.scale)
        return SearchResult(out_d, out_s, scores)

    def _auto(self, terms: np.ndarray, n_queries: int, k: int) -> str:
        dense = self._postings_per_doc(terms, n_queries) >= AUTO_DENSE_FLOPS
        return "two-phase" if k > AUTO_LARGE_K or dense else "bmm"

    def _postings_per_doc(self, terms: np.ndarray, n_queries: int) -> float:
        """Postings of the queries' lists per document and query: the overlap FLOPS, and ``auto``'s density."""
        return float(self.list_lengths()[terms].sum() / max(self.n_docs, 1) / max(n_queries, 1))

    def auto_algorithm(self, queries: sp.spmatrix, k: int, top_m: int | None = None) -> str:
        """The algorithm ``algorithm="auto"`` runs for this batch (see :meth:`search`)."""
        indptr, terms, _, _ = quantize_queries(queries, 8, top_m)
        return self._auto(terms, len(indptr) - 1, k)

    def list_lengths(self) -> np.ndarray:
        """Postings per term (computed once)."""
        if getattr(self, "_lengths", None) is None:
            self._lengths = np.diff(np.asarray(self.offsets))
        return self._lengths

    def overlap_flops(self, queries: sp.spmatrix, top_m: int | None = None) -> float:
        """Average number of terms a query shares with a document, over all (query, document) pairs."""
        indptr, terms, _, _ = quantize_queries(queries, 8, top_m)
        return self._postings_per_doc(terms, len(indptr) - 1)


def brute_force(index: InvertedIndex, queries: sp.spmatrix, k: int, top_m: int | None = None,
                query_bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Reference: dense integer dot products on the quantized weights, ties by smaller doc index."""
    indptr, terms, weights, _ = quantize_queries(queries, query_bits, top_m)
    q = sp.csr_matrix((weights, terms, indptr), shape=(len(indptr) - 1, index.vocab_size)).astype(np.int64)
    d = index.document_matrix()
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
