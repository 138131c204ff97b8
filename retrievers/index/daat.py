"""Document-at-a-time algorithms of the inverted index: MaxScore and Block-Max MaxScore (window and block bounds,
essential / non-essential lists, dense windows scanned slot by slot). See ``retrievers.index.inverted_index``."""

from __future__ import annotations

import numba
import numpy as np

from retrievers.index.kernels import block_probe, list_cursors, offer_in_doc_order, prune_level, take_candidate, write_sorted

DENSE_FROM = 8  # a DAAT window whose essential postings fill >= 1/8 of its slots is scanned, not bit-walked


# --------------------------------------------------------------------------------------------- MaxScore / BMM
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_INDEX = np.zeros(64, np.int64)
for _bit in range(64):
    _DEBRUIJN_INDEX[((1 << _bit) * 0x03F79D71B4CB0A89 & (2**64 - 1)) >> 58] = _bit


@numba.njit(inline="always", cache=True)
def gallop(docs, p, e, d):
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
def daat(offsets, docs, impacts, block_offsets, block_first, block_last, block_max, term_max, win_offsets, win_ids,
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

    ``theta``: the starting threshold (``theta0``; -1 none). ``boost`` > 1 prunes against theta x boost: faster,
    approximate (documents scoring within that factor of the k-th may be missed); 1 is exact.
    """
    m = terms.shape[0]
    ub = np.empty(m, np.int64)
    for i in range(m):
        ub[i] = weights[i] * np.int64(term_max[terms[i]])
    pos, end, start_of, bpos, bend, bstart = list_cursors(offsets, block_offsets, terms)
    wpos = np.empty(m, np.int64)
    wend = np.empty(m, np.int64)
    for i in range(m):
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
    prune = prune_level(theta, boost)
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
                p = gallop(docs, p, e, w0)
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
                n_cand = take_candidate(acc, j, cut, cand, cand_score, n_cand)
        else:
            for word in range((w1 - w0 + 63) >> 6):
                bits = touched_bits[word]
                touched_bits[word] = 0
                while bits != 0:
                    low = bits & (~bits + np.uint64(1))
                    bits ^= low
                    j = (word << 6) + _DEBRUIJN_INDEX[(low * _DEBRUIJN) >> np.uint64(58)]
                    n_cand = take_candidate(acc, j, cut, cand, cand_score, n_cand)
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
                    if use_blocks:  # Block-Max: probe only the one block of list i that could hold d
                        score, pruned = block_probe(d, i, weights[i], score, rest, prune, docs, impacts, block_first,
                                                    block_last, block_max, block_size, pos, cpos, bend, bstart,
                                                    start_of, end)
                        if pruned:
                            break
                        continue
                    p, e = pos[i], end[i]
                    if p < e and docs[p] < d:
                        p = gallop(docs, p, e, d)
                        pos[i] = p
                    if p < e and docs[p] == d:
                        score += weights[i] * np.int64(impacts[p])
                if pruned:
                    continue
            size, theta, prune = offer_in_doc_order(hs, hd, size, k, score, d, theta, prune, boost)
    write_sorted(hs, hd, size, out_s, out_d)


