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

ALGORITHMS = ("exhaustive", "maxscore", "bmm", "taat", "two-phase")
AUTO_LARGE_K = 50  # "auto": two-phase above this k (a DAAT threshold rises too slowly when it is the 1000th best)
AUTO_DENSE_FLOPS = 8.0  # "auto": two-phase at any k when the query lists hold >= this many postings per document
FORMAT_VERSION = 3  # 2 added block_first; 3 added win_offsets/win_ids/win_max and term_kth (older ones still load)
INDEX_WINDOW = 4096
DENSE_FROM = 8  # a DAAT window whose essential postings fill >= 1/8 of its slots is scanned, not bit-walked
KTH_RANKS = np.array([10, 100, 1000, 10000], np.int64)
_ARRAYS = ("offsets", "docs", "impacts", "block_offsets", "block_first", "block_last", "block_max", "term_max",
           "win_offsets", "win_ids", "win_max", "term_kth")
_SEARCH_ARRAYS = _ARRAYS  # the order _search_chunk takes them in
_SINCE = {1: ("block_first", "win_offsets", "win_ids", "win_max", "term_kth"),
          2: ("win_offsets", "win_ids", "win_max", "term_kth")}


# ------------------------------------------------------------------------------------------------------- top-k heap
@numba.njit(inline="always", cache=True)
def _worse(hs, hd, i, j):
    """Entry i ranks below entry j: lower score, or equal score and larger doc index."""
    return hs[i] < hs[j] or (hs[i] == hs[j] and hd[i] > hd[j])


@numba.njit(cache=True)
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


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def _write_sorted(hs, hd, size, out_s, out_d):
    """Heap -> output row, best first (score desc, doc asc): heapsort, O(k log k) (an insertion sort was O(k^2): 0.29
    ms a query at k=1000). The heap is consumed."""
    n = size
    while n > 0:
        n -= 1
        out_s[n], out_d[n] = hs[0], hd[0]  # the worst left goes last
        hs[0], hd[0] = hs[n], hd[n]
        _sift_down(hs, hd, n, 0)


@numba.njit(inline="always", cache=True)
def _theta0(terms, weights, term_kth, kth_column):
    """A safe starting threshold from the index alone: term t has at least r postings of impact >= kth[t], so at
    least r >= k documents score >= w_t * kth[t]; a document scoring below the best such product cannot enter the
    top k. Returns that product - 1 (documents scoring <= theta are pruned; ties still compete), or -1."""
    theta = np.int64(-1)
    if kth_column >= 0:
        for i in range(terms.shape[0]):
            lower = weights[i] * np.int64(term_kth[terms[i], kth_column]) - 1
            if lower > theta:
                theta = lower
    return theta


@numba.njit(inline="always", cache=True)
def _prune_level(theta, boost):
    """The pruning threshold: theta itself (exact) or theta x boost (approximate, ``boost`` > 1)."""
    if boost <= 1.0 or theta < 0:
        return theta
    return np.int64(theta * boost)


# -------------------------------------------------------------------------------------------------------- TAAT
@numba.njit(nogil=True, cache=True)
def _exhaustive(offsets, docs, impacts, terms, weights, k, acc, touched, out_s, out_d):
    """The reference: term-at-a-time into one accumulator over the collection (reused across calls), then every
    touched document into the heap. Scores every document that shares a term with the query."""
    n_touched = 0
    for i in range(terms.shape[0]):
        t, w = terms[i], weights[i]
        for p in range(offsets[t], offsets[t + 1]):
            d = docs[p]
            if acc[d] == 0:
                touched[n_touched] = d
                n_touched += 1
            acc[d] += w * np.int64(impacts[p])
    hs = np.empty(k, np.int64)
    hd = np.empty(k, np.int32)
    size = 0
    for j in range(n_touched):
        d = touched[j]
        size = _heap_offer(hs, hd, size, k, acc[d], d)
        acc[d] = 0
    _write_sorted(hs, hd, size, out_s, out_d)


@numba.njit(nogil=True, cache=True)
def _taat_windows(offsets, docs, impacts, terms, weights, k, theta, n_docs, window, acc, out_s, out_d):
    """Term-at-a-time in windows of ``window`` documents: every list streams its postings of the window into an
    accumulator that stays in the L1/L2 cache, then the window's documents that beat theta go to the heap. Exact; it
    reads every posting of the query's lists (no skipping), at streaming speed - what a large k wants."""
    m = terms.shape[0]
    pos = np.empty(m, np.int64)
    end = np.empty(m, np.int64)
    for i in range(m):
        pos[i], end[i] = offsets[terms[i]], offsets[terms[i] + 1]
    hs = np.empty(k, np.int64)
    hd = np.empty(k, np.int32)
    size = 0
    for w0 in range(0, n_docs, window):
        w1 = min(w0 + window, n_docs)
        touched = False
        for i in range(m):
            p, e, wi = pos[i], end[i], weights[i]
            while p < e and docs[p] < w1:
                acc[docs[p] - w0] += wi * np.int64(impacts[p])
                p += 1
            if p != pos[i]:
                touched = True
                pos[i] = p
        if not touched:
            continue
        for s in range(w1 - w0):
            v = acc[s]
            if v != 0:
                acc[s] = 0
                if v > theta:  # documents come in increasing order: a tie never beats the heap's worst
                    size = _heap_offer(hs, hd, size, k, v, np.int32(w0 + s))
                    if size == k and hs[0] > theta:
                        theta = hs[0]
    _write_sorted(hs, hd, size, out_s, out_d)


@numba.njit(nogil=True, cache=True)
def _stream_lists(offsets, docs, impacts, terms, weights, order, lo, hi, acc):
    """Lists ``order[lo:hi]`` term-at-a-time into the collection-wide ``acc`` (0.8 ns a posting at 1M documents:
    blocking the accumulator into cache-sized spans measured slower)."""
    for r in range(lo, hi):
        i = order[r]
        t, w = terms[i], weights[i]
        for p in range(offsets[t], offsets[t + 1]):
            acc[docs[p]] += w * np.int64(impacts[p])


@numba.njit(nogil=True, cache=True)
def _kth_lower_bound(acc, n_docs, k, top):
    """A value L such that at least k documents have acc >= L (0 if fewer than k are positive): a 4,096-bucket
    histogram of acc in [0, top], one pass, its k-th bucket from the top read at the bucket's lower edge."""
    shift = 0
    while (top >> shift) >= 4096:
        shift += 1
    hist = np.zeros(4097, np.int64)
    for d in range(n_docs):
        hist[acc[d] >> shift] += 1  # zeros land in bucket 0, never read: no branch in the loop
    total = 0
    for b in range(4096, 0, -1):
        total += hist[b]
        if total >= k:
            return np.int64(b) << shift
    return np.int64(0)


@numba.njit(nogil=True, cache=True)
def _two_phase(offsets, docs, impacts, block_offsets, block_first, block_last, block_max, term_max, block_size, terms,
               weights, k, theta, n_docs, share, boost, acc, out_s, out_d):
    """Two-phase MaxScore for dense, low-threshold workloads (large k, lists covering much of the collection).

    DAAT in document order starts with a low threshold and raises it only as the collection is read; at k=1000 most
    of the work is done before the threshold is useful. Here the threshold comes first: phase 1 streams the heaviest
    lists (largest upper bounds) term-at-a-time into a collection-wide accumulator - every document gets a partial
    score, and since full scores are >= partial ones, the k-th largest partial score (a histogram) is a safe
    threshold. Lists are added, heaviest first, until the remaining lists' bounds sum to at most ``share`` x that
    threshold. Phase 2 walks the accumulator in document order; a document whose partial score plus the remaining
    bounds can beat the threshold has the remaining lists probed (gallop, heaviest first, stopping as soon as it cannot
    make it) and competes for the heap. Exact (``boost`` > 1: approximate, as in ``_daat``).
    """
    m = terms.shape[0]
    ub = np.empty(m, np.int64)
    for i in range(m):
        ub[i] = weights[i] * np.int64(term_max[terms[i]])
    order = np.argsort(-ub, kind="mergesort")  # heaviest first
    rest = np.int64(0)
    for i in range(m):
        rest += ub[i]
    taken = 0
    top = np.int64(0)
    # 1a: heaviest lists until the rest cannot beat the index-only threshold on its own
    while taken < m and (theta < 0 or rest > theta):
        rest -= ub[order[taken]]
        top += ub[order[taken]]
        taken += 1
    _stream_lists(offsets, docs, impacts, terms, weights, order, 0, taken, acc)
    if taken < m:
        lower = _kth_lower_bound(acc, n_docs, k, top)
        if lower - 1 > theta:
            theta = lower - 1
        # 1b: more lists until the rest is a small share of the threshold (fewer candidates to probe)
        first = taken
        rest_added = np.int64(0)
        while taken < m and rest > theta * share:
            rest -= ub[order[taken]]
            rest_added += ub[order[taken]]
            taken += 1
        _stream_lists(offsets, docs, impacts, terms, weights, order, first, taken, acc)
        if taken > first and taken < m:  # the added lists raised the partial scores: a tighter threshold, fewer probes
            lower = _kth_lower_bound(acc, n_docs, k, top + rest_added)
            if lower - 1 > theta:
                theta = lower - 1
    # phase 2: candidates in document order, the remaining lists probed heaviest first, block by block: a list is
    # searched only inside the one block that can hold the document, and only when that block's maximum allows it
    pos = np.empty(m, np.int64)
    end = np.empty(m, np.int64)
    start_of = np.empty(m, np.int64)
    bpos = np.empty(m, np.int64)
    bend = np.empty(m, np.int64)
    bstart = np.empty(m, np.int64)
    for r in range(taken, m):
        i = order[r]
        pos[i], end[i] = offsets[terms[i]], offsets[terms[i] + 1]
        start_of[i] = pos[i]
        bpos[i], bend[i] = block_offsets[terms[i]], block_offsets[terms[i] + 1]
        bstart[i] = bpos[i]
    hs = np.empty(k, np.int64)
    hd = np.empty(k, np.int32)
    size = 0
    prune = _prune_level(theta, boost)
    cut = prune - rest if prune - rest > 0 else np.int64(0)  # a candidate needs acc > cut (and so acc > 0)
    for d in range(n_docs):
        score = acc[d]
        acc[d] = 0
        if score <= cut:  # the one branch of the scan, rarely taken the other way
            continue
        if score + rest <= prune:
            continue
        left = rest
        pruned = False
        for r in range(taken, m):
            if score + left <= prune:
                pruned = True
                break
            i = order[r]
            left -= ub[i]
            b = bpos[i]
            while b < bend[i] and block_last[b] < d:
                b += 1
            bpos[i] = b
            if b == bend[i] or block_first[b] > d:
                continue
            if score + left + weights[i] * np.int64(block_max[b]) <= prune:
                pruned = True
                break
            p = max(pos[i], start_of[i] + (b - bstart[i]) * block_size)
            e = min(start_of[i] + (b - bstart[i] + 1) * block_size, end[i])
            if docs[p] < d:
                p = p + 1 + np.searchsorted(docs[p + 1:e], d)
            pos[i] = p
            if p < e and docs[p] == d:
                score += weights[i] * np.int64(impacts[p])
        if pruned:
            continue
        if score > theta:  # documents come in increasing order: a tie never beats the heap's worst
            size = _heap_offer(hs, hd, size, k, score, np.int32(d))
            if size == k and hs[0] > theta:
                theta = hs[0]
                prune = _prune_level(theta, boost)
    _write_sorted(hs, hd, size, out_s, out_d)


# --------------------------------------------------------------------------------------------- MaxScore / BMM
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_INDEX = np.zeros(64, np.int64)
for _bit in range(64):
    _DEBRUIJN_INDEX[((1 << _bit) * 0x03F79D71B4CB0A89 & (2**64 - 1)) >> 58] = _bit


@numba.njit(inline="always", cache=True)
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


@numba.njit(nogil=True, cache=True)
def _daat(offsets, docs, impacts, block_offsets, block_first, block_last, block_max, term_max, win_offsets, win_ids,
          win_max, index_window, terms, weights, k, use_blocks, n_docs, block_size, window, theta, boost, share, acc,
          touched_bits, out_s, out_d):
    """MaxScore over windows of ``window`` documents, as Lucene's MaxScoreBulkScorer does.

    Per window, lists are split into essential and non-essential by their upper bounds: the lists with the smallest
    bounds whose bounds sum to at most theta (the k-th best score so far) are non-essential - a document found only in
    them cannot enter the top k. Essential lists are scored term-at-a-time into a small accumulator; each touched
    document is checked against theta with the non-essential bounds, and only then are those lists probed (binary
    search), heaviest first, stopping as soon as the rest cannot lift it above theta. The touched documents are found
    through a bitmap (one bit per window slot, walked lowest set bit first, in doc order), not by scanning the whole
    accumulator: a window holds a few hundred candidates among thousands of slots.

    ``use_blocks`` (Block-Max MaxScore): a list's bound in a window is its largest impact in the window, read from the
    index's per-window maxima (``win_*``: one entry per list and index window it occurs in, built once) rather than
    recomputed from block maxima in every window, so the split is redone per window, much tighter; a window whose
    bounds sum to at most theta is skipped whole. A candidate's non-essential lists are probed only when the one
    block that can hold it allows it in.

    ``theta``: the starting threshold (``_theta0``; -1 none). ``boost`` > 1 prunes against theta x boost: faster,
    approximate (documents scoring within that factor of the k-th may be missed); 1 is exact.
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
    wpos = np.empty(m, np.int64)
    wend = np.empty(m, np.int64)
    for i in range(m):
        pos[i], end[i] = offsets[terms[i]], offsets[terms[i] + 1]
        start_of[i] = pos[i]
        bpos[i], bend[i] = block_offsets[terms[i]], block_offsets[terms[i] + 1]
        bstart[i] = bpos[i]
        wpos[i], wend[i] = win_offsets[terms[i]], win_offsets[terms[i] + 1]
    order = np.argsort(ub, kind="mergesort")  # ascending bound: non-essential candidates first
    prefix = np.cumsum(ub[order])
    bound = ub.copy()
    length = np.empty(m, np.float64)
    for i in range(m):
        length[i] = end[i] - pos[i]
    cand = np.empty(window, np.int32)
    cand_score = np.empty(window, np.int64)
    cpos = bpos.copy()  # per-candidate block cursor (Block-Max MaxScore), monotone like the documents
    hs = np.empty(k, np.int64)
    hd = np.empty(k, np.int32)
    size = 0
    # theta: a document scoring <= theta cannot enter the top k (-1: no bound yet); prune: the level pruned against
    prune = _prune_level(theta, boost)
    for w0 in range(0, n_docs, window):
        w1 = min(w0 + window, n_docs)
        if use_blocks and prune >= 0:
            first_win, last_win = w0 // index_window, (w1 - 1) // index_window
            total = np.int64(0)
            for i in range(m):
                j = wpos[i]
                while j < wend[i] and win_ids[j] < first_win:
                    j += 1
                wpos[i] = j
                best = 0
                while j < wend[i] and win_ids[j] <= last_win:
                    if win_max[j] > best:
                        best = win_max[j]
                    j += 1
                bound[i] = weights[i] * np.int64(best)
                total += bound[i]
            if total <= prune:
                continue  # no document of this window can enter the top k
            for i in range(m):  # insertion sort by bound (m is small); ties keep term order
                order[i] = i
            for a in range(1, m):
                x, c = order[a], a
                while c > 0 and bound[order[c - 1]] > bound[x]:
                    order[c] = order[c - 1]
                    c -= 1
                order[c] = x
            running = np.int64(0)
            for a in range(m):
                running += bound[order[a]]
                prefix[a] = running
        first = 0
        if prune >= 0:
            while first < m and prefix[first] <= prune * share:
                first += 1
        if first == m:
            if not use_blocks:
                break  # with global bounds, no later window can do better either
            continue
        # essential lists -> accumulator; dense windows (expected postings >= 1/DENSE_FROM of the slots) are then
        # scanned slot by slot, sparse ones walked through a bitmap of the touched slots
        expected = 0.0
        for r in range(first, m):
            expected += length[order[r]]
        dense = expected * (w1 - w0) * DENSE_FROM >= (w1 - w0) * np.float64(n_docs)
        touched = False
        for r in range(first, m):
            i = order[r]
            p, e, wi = pos[i], end[i], weights[i]
            if p < e and docs[p] < w0:
                p = _gallop(docs, p, e, w0)
            if dense:
                q0 = p
                while p < e and docs[p] < w1:
                    acc[docs[p] - w0] += wi * np.int64(impacts[p])
                    p += 1
                touched = touched or p != q0
            else:
                while p < e and docs[p] < w1:
                    slot = docs[p] - w0
                    acc[slot] += wi * np.int64(impacts[p])
                    touched_bits[slot >> 6] |= np.uint64(1) << np.uint64(slot & 63)
                    p += 1
                    touched = True
            pos[i] = p
        if not touched:
            continue
        rest0 = prefix[first - 1] if first > 0 else np.int64(0)
        cut = prune - rest0 if prune - rest0 > 0 else np.int64(0)  # a candidate needs acc > cut (and so acc > 0)
        n_cand = 0
        if dense:
            for j in range(w1 - w0):
                v = acc[j]
                acc[j] = 0
                if v > cut:
                    cand[n_cand] = j
                    cand_score[n_cand] = v
                    n_cand += 1
        else:
            for word in range((w1 - w0 + 63) >> 6):
                bits = touched_bits[word]
                touched_bits[word] = 0
                while bits != 0:
                    low = bits & (~bits + np.uint64(1))
                    bits ^= low
                    j = (word << 6) + _DEBRUIJN_INDEX[(low * _DEBRUIJN) >> np.uint64(58)]
                    v = acc[j]
                    acc[j] = 0
                    if v > cut:
                        cand[n_cand] = j
                        cand_score[n_cand] = v
                        n_cand += 1
        for c in range(n_cand):
            score = cand_score[c]
            d = w0 + cand[c]
            if first > 0:
                if prune >= 0 and score + prefix[first - 1] <= prune:
                    continue
                rest = prefix[first - 1]
                pruned = False
                for r in range(first - 1, -1, -1):
                    if prune >= 0 and score + rest <= prune:
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
                        if prune >= 0 and score + rest + weights[i] * np.int64(block_max[b]) <= prune:
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
            if score > theta:  # documents come in increasing order: a tie never beats the heap's worst
                size = _heap_offer(hs, hd, size, k, score, np.int32(d))
                if size == k and hs[0] > theta:
                    theta = hs[0]
                    prune = _prune_level(theta, boost)
    _write_sorted(hs, hd, size, out_s, out_d)


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
            _exhaustive(offsets, docs, impacts, terms, weights, k, acc, touched, out_s[q], out_d[q])
            continue
        theta = _theta0(terms, weights, term_kth, kth_column)
        if algorithm == 4:
            _two_phase(offsets, docs, impacts, block_offsets, block_first, block_last, block_max, term_max,
                       np.int64(block_size), terms, weights, k, theta, n_docs, share, boost, acc, out_s[q], out_d[q])
        elif algorithm == 3:
            _taat_windows(offsets, docs, impacts, terms, weights, k, theta, n_docs, window, acc, out_s[q], out_d[q])
        else:
            _daat(offsets, docs, impacts, block_offsets, block_first, block_last, block_max, term_max, win_offsets,
                  win_ids, win_max, index_window, terms, weights, k, algorithm == 2, n_docs, np.int64(block_size),
                  window, theta, boost, share, acc, touched_bits, out_s[q], out_d[q])


# ------------------------------------------------------------------------------------------------------- build
@numba.njit(cache=True)
def _postings_from_rows(indptr, indices, quant, vocab):
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
def _window_maxima(offsets, docs, impacts, window):
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
def _term_kth(offsets, impacts, ranks):
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


def _block_arrays(offsets: np.ndarray, docs: np.ndarray, impacts: np.ndarray, block_size: int) -> dict[str, np.ndarray]:
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


def _derived_arrays(arrays: dict[str, np.ndarray], window: int) -> dict[str, np.ndarray]:
    """The window maxima and k-th impacts, from the postings (format 3; derived on load for older indexes)."""
    offsets, docs, impacts = (np.asarray(arrays[n]) for n in ("offsets", "docs", "impacts"))
    win_offsets, win_ids, win_max = _window_maxima(offsets, docs, impacts, window)
    return {"win_offsets": win_offsets, "win_ids": win_ids, "win_max": win_max,
            "term_kth": _term_kth(offsets, impacts, KTH_RANKS)}


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
        offsets, docs, impacts = _postings_from_rows(csr.indptr.astype(np.int64), csr.indices.astype(np.int32),
                                                     quant, vocab)
        del quant
        arrays = {"offsets": offsets, "docs": docs, "impacts": impacts,
                  **_block_arrays(offsets, docs, impacts, block_size)}
        arrays.update(_derived_arrays(arrays, window))
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
            arrays.update(_derived_arrays(arrays, window))
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
