"""Term-at-a-time algorithms of the inverted index: exhaustive (the reference), windowed TAAT, and two-phase
(the threshold first from the heaviest lists streamed into a collection-wide accumulator, then block-max probing of
the rest). See ``retrievers.index.inverted_index`` for the design."""

from __future__ import annotations

import numba
import numpy as np

from retrievers.index.kernels import block_probe, heap_offer, list_cursors, offer_in_doc_order, prune_level, write_sorted


# -------------------------------------------------------------------------------------------------------- TAAT
@numba.njit(nogil=True, cache=True)
def exhaustive(offsets, docs, impacts, terms, weights, k, acc, touched, out_s, out_d):
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
        size = heap_offer(hs, hd, size, k, acc[d], d)
        acc[d] = 0
    write_sorted(hs, hd, size, out_s, out_d)


@numba.njit(nogil=True, cache=True)
def taat_windows(offsets, docs, impacts, terms, weights, k, theta, n_docs, window, acc, out_s, out_d):
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
                    size = heap_offer(hs, hd, size, k, v, np.int32(w0 + s))
                    if size == k and hs[0] > theta:
                        theta = hs[0]
    write_sorted(hs, hd, size, out_s, out_d)


@numba.njit(nogil=True, cache=True)
def stream_lists(offsets, docs, impacts, terms, weights, order, lo, hi, acc):
    """Lists ``order[lo:hi]`` term-at-a-time into the collection-wide ``acc`` (0.8 ns a posting at 1M documents:
    blocking the accumulator into cache-sized spans measured slower)."""
    for r in range(lo, hi):
        i = order[r]
        t, w = terms[i], weights[i]
        for p in range(offsets[t], offsets[t + 1]):
            acc[docs[p]] += w * np.int64(impacts[p])


@numba.njit(nogil=True, cache=True)
def kth_lower_bound(acc, n_docs, k, top):
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
def two_phase(offsets, docs, impacts, block_offsets, block_first, block_last, block_max, term_max, block_size, terms,
               weights, k, theta, n_docs, share, boost, acc, out_s, out_d):
    """Two-phase MaxScore for dense, low-threshold workloads (large k, lists covering much of the collection).

    DAAT in document order starts with a low threshold and raises it only as the collection is read; at k=1000 most
    of the work is done before the threshold is useful. Here the threshold comes first: phase 1 streams the heaviest
    lists (largest upper bounds) term-at-a-time into a collection-wide accumulator - every document gets a partial
    score, and since full scores are >= partial ones, the k-th largest partial score (a histogram) is a safe
    threshold. Lists are added, heaviest first, until the remaining lists' bounds sum to at most ``share`` x that
    threshold. Phase 2 walks the accumulator in document order; a document whose partial score plus the remaining
    bounds can beat the threshold has the remaining lists probed (gallop, heaviest first, stopping as soon as it cannot
    make it) and competes for the heap. Exact (``boost`` > 1: approximate, as in ``daat``).
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
    stream_lists(offsets, docs, impacts, terms, weights, order, 0, taken, acc)
    if taken < m:
        lower = kth_lower_bound(acc, n_docs, k, top)
        if lower - 1 > theta:
            theta = lower - 1
        # 1b: more lists until the rest is a small share of the threshold (fewer candidates to probe)
        first = taken
        rest_added = np.int64(0)
        while taken < m and rest > theta * share:
            rest -= ub[order[taken]]
            rest_added += ub[order[taken]]
            taken += 1
        stream_lists(offsets, docs, impacts, terms, weights, order, first, taken, acc)
        if taken > first and taken < m:  # the added lists raised the partial scores: a tighter threshold, fewer probes
            lower = kth_lower_bound(acc, n_docs, k, top + rest_added)
            if lower - 1 > theta:
                theta = lower - 1
    # phase 2: candidates in document order, the remaining lists probed heaviest first, block by block: a list is
    # searched only inside the one block that can hold the document, and only when that block's maximum allows it
    pos, end, start_of, bpos, bend, bstart = list_cursors(offsets, block_offsets, terms)
    hs = np.empty(k, np.int64)
    hd = np.empty(k, np.int32)
    size = 0
    prune = prune_level(theta, boost)
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
            score, pruned = block_probe(d, i, weights[i], score, left, prune, docs, impacts, block_first, block_last,
                                        block_max, block_size, pos, bpos, bend, bstart, start_of, end)
            if pruned:
                break
        if pruned:
            continue
        size, theta, prune = offer_in_doc_order(hs, hd, size, k, score, d, theta, prune, boost)
    write_sorted(hs, hd, size, out_s, out_d)


