"""The numba kernels every index algorithm shares: the bounded top-k heap, the threshold helpers and the Block-Max
probe of one list for one document.

Public, one module: the exact index (``inverted_index``: DAAT in ``daat``, TAAT and two-phase in
``taat``) and the approximate index (``approximate``) keep their top-k the same way, so a tie is broken
the same way everywhere (the smaller document index wins).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always", cache=True)
def worse(hs, hd, i, j):
    """Entry i ranks below entry j: lower score, or equal score and larger doc index."""
    return hs[i] < hs[j] or (hs[i] == hs[j] and hd[i] > hd[j])


@numba.njit(cache=True)
def sift_down(hs, hd, size, i):
    while True:
        left, right, worst = 2 * i + 1, 2 * i + 2, i
        if left < size and worse(hs, hd, left, worst):
            worst = left
        if right < size and worse(hs, hd, right, worst):
            worst = right
        if worst == i:
            return
        hs[i], hs[worst] = hs[worst], hs[i]
        hd[i], hd[worst] = hd[worst], hd[i]
        i = worst


@numba.njit(cache=True)
def heap_offer(hs, hd, size, k, score, doc):
    """Offer (score, doc) to a min-heap of the k best; returns the new size."""
    if size < k:
        i = size
        hs[i], hd[i] = score, doc
        while i > 0:
            parent = (i - 1) // 2
            if worse(hs, hd, i, parent):
                hs[i], hs[parent] = hs[parent], hs[i]
                hd[i], hd[parent] = hd[parent], hd[i]
                i = parent
            else:
                break
        return size + 1
    if score > hs[0] or (score == hs[0] and doc < hd[0]):
        hs[0], hd[0] = score, doc
        sift_down(hs, hd, size, 0)
    return size


@numba.njit(cache=True)
def write_sorted(hs, hd, size, out_s, out_d):
    """Heap -> output row, best first (score desc, doc asc): heapsort, O(k log k) (an insertion sort was O(k^2): 0.29
    ms a query at k=1000). The heap is consumed."""
    n = size
    while n > 0:
        n -= 1
        out_s[n], out_d[n] = hs[0], hd[0]  # the worst left goes last
        hs[0], hd[0] = hs[n], hd[n]
        sift_down(hs, hd, n, 0)


@numba.njit(inline="always", cache=True)
def theta0(terms, weights, term_kth, kth_column):
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
def prune_level(theta, boost):
    """The pruning threshold: theta itself (exact) or theta x boost (approximate, ``boost`` > 1)."""
    if boost <= 1.0 or theta < 0:
        return theta
    return np.int64(theta * boost)


@numba.njit(inline="always", cache=True)
def block_probe(d, i, weight, score, rest, prune, docs, impacts, block_first, block_last, block_max, block_size,
                pos, cpos, bend, bstart, start_of, end):
    """Block-Max probe of list ``i`` for document ``d`` (documents come in increasing order, so every cursor only
    moves forward): the bound of the one block that could hold ``d`` (none when ``d`` falls between two blocks: the
    list cannot hold it), then a search of that block's postings only. Returns ``(score, pruned)``: ``pruned`` when
    ``score + rest`` plus that block's bound cannot beat ``prune`` (a negative ``prune``: nothing is pruned yet)."""
    b = cpos[i]
    while b < bend[i] and block_last[b] < d:
        b += 1
    cpos[i] = b
    if b == bend[i] or block_first[b] > d:
        return score, False
    if prune >= 0 and score + rest + weight * np.int64(block_max[b]) <= prune:
        return score, True
    p = max(pos[i], start_of[i] + (b - bstart[i]) * block_size)
    e = min(start_of[i] + (b - bstart[i] + 1) * block_size, end[i])
    if docs[p] < d:
        p = p + 1 + np.searchsorted(docs[p + 1:e], d)
    pos[i] = p
    if p < e and docs[p] == d:
        score += weight * np.int64(impacts[p])
    return score, False


@numba.njit(inline="always", cache=True)
def take_candidate(acc, j, cut, cand, cand_score, n_cand):
    """Read and clear accumulator ``j``; keep it as a candidate when it beats ``cut``. Returns the new count."""
    v = acc[j]
    acc[j] = 0
    if v > cut:
        cand[n_cand] = j
        cand_score[n_cand] = v
        n_cand += 1
    return n_cand


@numba.njit(inline="always", cache=True)
def offer_in_doc_order(hs, hd, size, k, score, d, theta, prune, boost):
    """Offer a document met in increasing document order (so a tie never beats the heap's worst); when the heap is
    full and its worst rises, so do the threshold and the pruning level. Returns ``(size, theta, prune)``."""
    if score > theta:
        size = heap_offer(hs, hd, size, k, score, np.int32(d))
        if size == k and hs[0] > theta:
            theta = hs[0]
            prune = prune_level(theta, boost)
    return size, theta, prune


@numba.njit(inline="always", cache=True)
def list_cursors(offsets, block_offsets, terms):
    """Each query list's posting range and block range, as cursors that move forward: (pos, end, start_of, bpos,
    bend, bstart) - ``start_of`` and ``bstart`` keep where the list's postings and blocks begin."""
    m = terms.shape[0]
    pos = np.empty(m, np.int64)
    end = np.empty(m, np.int64)
    bpos = np.empty(m, np.int64)
    bend = np.empty(m, np.int64)
    for i in range(m):
        pos[i], end[i] = offsets[terms[i]], offsets[terms[i] + 1]
        bpos[i], bend[i] = block_offsets[terms[i]], block_offsets[terms[i] + 1]
    return pos, end, pos.copy(), bpos, bend, bpos.copy()
