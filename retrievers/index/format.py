"""The inverted index's on-disk format and its build: postings from CSR rows, block and window maxima, each list's
k-th largest impacts. See ``retrievers.index.inverted_index`` for the layout."""

from __future__ import annotations

import numba
import numpy as np

FORMAT_VERSION = 3  # 2 added block_first; 3 added win_offsets/win_ids/win_max and term_kth (older ones still load)
INDEX_WINDOW = 4096
KTH_RANKS = np.array([10, 100, 1000, 10000], np.int64)
ARRAYS = ("offsets", "docs", "impacts", "block_offsets", "block_first", "block_last", "block_max", "term_max",
          "win_offsets", "win_ids", "win_max", "term_kth")
SINCE = {1: ("block_first", "win_offsets", "win_ids", "win_max", "term_kth"),
         2: ("win_offsets", "win_ids", "win_max", "term_kth")}


# ------------------------------------------------------------------------------------------------------- build
@numba.njit(cache=True)
def postings_from_rows(indptr, indices, quant, vocab):
    """CSR rows of quantized impacts -> postings sorted by (term, doc); impacts that rounded to 0 are dropped.

    A counting sort in place of scipy's tocsc(): no float64 copy of the input, no intermediate matrices - the build
    holds the caller's matrix, one byte per entry, and the postings it writes.
    """
    counts = np.zeros(vocab + 1, np.int64)
    for p in range(quant.shape[0]):
        if quant[p] > 0:
            counts[indices[p] + 1] += 1
    offsets = np.cumsum(counts)
    cursor = offsets[:-1].copy()
    docs = np.empty(offsets[-1], np.int32)
    impacts = np.empty(offsets[-1], np.uint8)
    for d in range(indptr.shape[0] - 1):
        for p in range(indptr[d], indptr[d + 1]):
            if quant[p] > 0:
                t = indices[p]
                docs[cursor[t]] = d
                impacts[cursor[t]] = quant[p]
                cursor[t] += 1
    return offsets, docs, impacts


@numba.njit(cache=True)
def window_maxima(offsets, docs, impacts, window):
    """Per list, one entry per index window the list occurs in: (window id, largest impact there)."""
    vocab = offsets.shape[0] - 1
    counts = np.zeros(vocab + 1, np.int64)
    for t in range(vocab):
        last = -1
        for p in range(offsets[t], offsets[t + 1]):
            w = docs[p] // window
            if w != last:
                counts[t + 1] += 1
                last = w
    win_offsets = np.cumsum(counts)
    ids = np.empty(win_offsets[-1], np.int32)
    maxima = np.zeros(win_offsets[-1], np.uint8)
    for t in range(vocab):
        j, last = win_offsets[t] - 1, -1
        for p in range(offsets[t], offsets[t + 1]):
            w = docs[p] // window
            if w != last:
                j += 1
                ids[j] = w
                last = w
            if impacts[p] > maxima[j]:
                maxima[j] = impacts[p]
    return win_offsets, ids, maxima


@numba.njit(cache=True)
def term_kth_impacts(offsets, impacts, ranks):
    """Per list, its r-th largest impact for every r of ``ranks`` (0 when the list is shorter): a 256-bin histogram."""
    vocab = offsets.shape[0] - 1
    out = np.zeros((vocab, ranks.shape[0]), np.uint8)
    hist = np.zeros(256, np.int64)
    for t in range(vocab):
        if offsets[t + 1] - offsets[t] < ranks[0]:
            continue
        hist[:] = 0
        for p in range(offsets[t], offsets[t + 1]):
            hist[impacts[p]] += 1
        for j in range(ranks.shape[0]):
            total = 0
            for v in range(255, 0, -1):
                total += hist[v]
                if total >= ranks[j]:
                    out[t, j] = v
                    break
    return out


def block_arrays(offsets: np.ndarray, docs: np.ndarray, impacts: np.ndarray, block_size: int) -> dict[str, np.ndarray]:
    vocab = offsets.size - 1
    lengths = np.diff(offsets)
    n_blocks = (lengths + block_size - 1) // block_size
    block_offsets = np.zeros(vocab + 1, np.int64)
    np.cumsum(n_blocks, out=block_offsets[1:])
    term_of_block = np.repeat(np.arange(vocab), n_blocks)
    within = np.arange(block_offsets[-1]) - block_offsets[term_of_block]
    starts = offsets[term_of_block] + within * block_size
    ends = np.minimum(starts + block_size, offsets[term_of_block + 1])
    block_max = np.maximum.reduceat(impacts, starts) if starts.size else np.zeros(0, np.uint8)
    term_max = np.zeros(vocab, np.uint8)
    nonempty = lengths > 0
    if nonempty.any():
        term_max[nonempty] = np.maximum.reduceat(impacts, offsets[:-1][nonempty])
    return {"block_offsets": block_offsets,
            "block_first": docs[starts].astype(np.int32) if starts.size else np.zeros(0, np.int32),
            "block_last": docs[ends - 1].astype(np.int32) if starts.size else np.zeros(0, np.int32),
            "block_max": block_max.astype(np.uint8), "term_max": term_max}


def derived_arrays(arrays: dict[str, np.ndarray], window: int) -> dict[str, np.ndarray]:
    """The window maxima and k-th impacts, from the postings (format 3; derived on load for older indexes)."""
    offsets, docs, impacts = (np.asarray(arrays[n]) for n in ("offsets", "docs", "impacts"))
    win_offsets, win_ids, win_max = window_maxima(offsets, docs, impacts, window)
    return {"win_offsets": win_offsets, "win_ids": win_ids, "win_max": win_max,
            "term_kth": term_kth_impacts(offsets, impacts, KTH_RANKS)}


