"""The numba kernels every index algorithm shares: the bounded top-k heap and the threshold helpers.

Public, one module: the exact index (``inverted_index``: DAAT in ``index_daat``, TAAT and two-phase in
``index_taat``) and the approximate index (``approximate_index``) keep their top-k the same way, so a tie is broken
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


