"""Encoding in length order: texts of similar length share a batch, so little of any batch is padding.

Why: a batch is padded to its longest text; in input order a 60-token title pads a batch of 15-token queries to 60.
Sorted by length (longest first, so a memory problem shows at once), the e5 encoder reads the 2,987 pool passages in
half the time (measured: 256 passages, 13.1 s -> 6.5 s on 2 CPU cores). Rows come back in the caller's order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm


def length_batches(texts: Sequence[str], batch_size: int) -> list[list[int]]:
    """Indices of ``texts`` in batches of ``batch_size``, longest texts first (ties in input order)."""
    order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
    return [order[start:start + batch_size] for start in range(0, len(order), max(1, batch_size))]


def iter_length_batches(texts: Sequence[str], batch_size: int) -> Iterator[tuple[list[int], list[str]]]:
    for indices in length_batches(texts, batch_size):
        yield indices, [texts[i] for i in indices]


def encode_in_length_order(texts: Sequence[str], batch_size: int, encode: Callable[[list[str]], Any],
                           desc: str | None = None) -> Any:
    """``encode(batch) -> rows`` (numpy or scipy.sparse) over length-sorted batches; the rows in ``texts``' order."""
    batches = length_batches(texts, batch_size)
    blocks, order = [], []
    for indices in tqdm(batches, desc=desc, leave=False, disable=None if desc else True):
        blocks.append(encode([texts[i] for i in indices]))
        order.extend(indices)
    if not blocks:
        return None
    joined = sp.vstack(blocks, format="csr") if sp.issparse(blocks[0]) else np.vstack(blocks)
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[np.asarray(order, dtype=np.int64)] = np.arange(len(order))
    return joined[inverse]
