"""Sparse-vector workloads for ``index-bench``: a Zipfian synthetic one, and ones fitted to the suite's own encoders.

Why fitted workloads: the speed of an inverted index depends on how many terms documents and queries have, how
often each term occurs and how weights spread over them - and PROSPER's vectors (LFW: up to 512 document / 256
query terms, query-L2) do not look like SPLADE's or like a textbook Zipf. :func:`fit_profile` reads those marginals from
real encodings (an index the suite built and the queries its model encodes); :func:`generate` draws any number of
documents and queries with the same marginals: the document and query length distributions, the term popularity (df
ranks, separately for documents and queries), and the weight distribution within each popularity decile. What it
cannot reproduce is co-occurrence between terms (documents are drawn term by term), which a real collection has and
which helps block-based pruning; the report says which workload each row ran on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

DECILES = 10
QUANTILES = 101


def synthetic_sparse(n: int, vocab: int, terms: int, seed: int, exponent: float = 1.0, offset: float = 20.0,
                     rarity_power: float = 2.0, chunk: int = 100_000) -> sp.csr_matrix:
    """``n`` SPLADE-like rows: about ``terms`` distinct Zipfian term ids each; weights gamma(1.5) scaled by term rarity
    ``0.05 + (log(1+rank)/log(1+vocab)) ** rarity_power``, as learned weights correlate with idf."""
    rng = np.random.default_rng(seed)
    p = (np.arange(vocab) + offset) ** -exponent
    cdf = np.cumsum(p / p.sum())
    parts = []
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        draws = int(terms * 1.15)  # duplicates are removed below
        cols = np.searchsorted(cdf, rng.random((rows, draws)), side="right").clip(0, vocab - 1)
        cols.sort(axis=1)  # per-row sort + neighbour test: much faster than np.unique on ~10^8 keys
        first = np.ones(cols.shape, bool)
        first[:, 1:] = cols[:, 1:] != cols[:, :-1]
        row = np.broadcast_to(np.arange(rows)[:, None], cols.shape)[first]
        col = cols[first]
        # learned sparse weights correlate with idf: FLOPS regularisation penalises a term's squared mean weight, so
        # frequent terms end up with small weights (rarity_power sets how strongly; 0 = no correlation)
        rarity = 0.05 + (np.log1p(col) / np.log1p(vocab)) ** rarity_power
        data = (rng.gamma(1.5, 1.0, size=col.size) * rarity).astype(np.float32)
        parts.append(sp.csr_matrix((data, (row, col)), shape=(rows, vocab)))
    return sp.vstack(parts, format="csr")


# ----------------------------------------------------------------------------------------------------- fitting
def _side_profile(matrix: sp.csr_matrix, order: np.ndarray) -> dict[str, np.ndarray]:
    """Length distribution, term popularity in ``order``'s rank space, weight quantiles per popularity decile."""
    matrix = sp.csr_matrix(matrix)
    lengths = np.diff(matrix.indptr)
    rank_of = np.empty(order.size, np.int64)
    rank_of[order] = np.arange(order.size)
    ranks = rank_of[matrix.indices]
    popularity = np.bincount(ranks, minlength=order.size).astype(np.float64)
    decile = np.minimum(ranks * DECILES // max(order.size, 1), DECILES - 1)
    quantiles = np.zeros((DECILES, QUANTILES))
    levels = np.linspace(0, 1, QUANTILES)
    for d in range(DECILES):
        values = matrix.data[decile == d]
        quantiles[d] = np.quantile(values, levels) if values.size else quantiles[d - 1] if d else 0.0
    return {"lengths": lengths[lengths > 0], "popularity": popularity, "weight_quantiles": quantiles}


def fit_profile(docs: sp.csr_matrix, queries: sp.csr_matrix, name: str, source: dict[str, Any]) -> dict[str, Any]:
    """The marginals :func:`generate` reproduces, from real document and query vectors over one vocabulary."""
    docs, queries = sp.csr_matrix(docs), sp.csr_matrix(queries)
    df = np.bincount(docs.indices, minlength=docs.shape[1])
    qf = np.bincount(queries.indices, minlength=docs.shape[1])
    used = np.flatnonzero((df > 0) | (qf > 0))
    order = used[np.lexsort((used, -df[used]))]  # terms by document frequency, most frequent first
    remap = np.full(docs.shape[1], -1, np.int64)
    remap[order] = np.arange(order.size)

    def compact(matrix):
        coo = matrix.tocoo()
        keep = remap[coo.col] >= 0
        return sp.csr_matrix((coo.data[keep], (coo.row[keep], remap[coo.col[keep]])), shape=(matrix.shape[0], order.size))

    identity = np.arange(order.size)
    return {"name": name, "source": source, "vocab": int(order.size),
            "docs": _side_profile(compact(docs), identity), "queries": _side_profile(compact(queries), identity),
            "fitted_on": {"docs": int(docs.shape[0]), "queries": int(queries.shape[0]),
                          "doc_terms_mean": float(np.diff(docs.indptr).mean()),
                          "query_terms_mean": float(np.diff(queries.indptr).mean())}}


def save_profile(profile: dict[str, Any], path: Path) -> Path:
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{side}_{key}": value for side in ("docs", "queries") for key, value in profile[side].items()}
    meta = {k: v for k, v in profile.items() if k not in ("docs", "queries")}
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    return path


def load_profile(path: Path) -> dict[str, Any]:
    import json

    with np.load(path) as data:
        profile = json.loads(str(data["meta"]))
        for side in ("docs", "queries"):
            profile[side] = {key: data[f"{side}_{key}"] for key in ("lengths", "popularity", "weight_quantiles")}
    return profile


# -------------------------------------------------------------------------------------------------- generating
def _draw_sets(weights: np.ndarray, lengths: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per row, ``lengths[i]`` distinct terms drawn one after another with probability ~ ``weights`` among those not
    yet drawn (draws with replacement, first occurrences kept in draw order): (row ids, term ids)."""
    cdf = np.cumsum(weights / weights.sum())
    rows, vocab = lengths.size, weights.size
    draws = int(lengths.max() * 2.5) + 16
    cols = np.searchsorted(cdf, rng.random((rows, draws)), side="right").clip(0, vocab - 1)
    order = np.argsort(cols, axis=1, kind="stable")
    ordered = np.take_along_axis(cols, order, axis=1)
    first = np.ones(cols.shape, bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    position = np.where(first, order, draws + 1)  # where each distinct term first came up
    rank = np.argsort(np.argsort(position, axis=1, kind="stable"), axis=1, kind="stable")
    keep = first & (rank < lengths[:, None])
    return np.broadcast_to(np.arange(rows)[:, None], cols.shape)[keep], ordered[keep]


def _generate_side(side: dict[str, np.ndarray], vocab: int, n: int, rng: np.random.Generator,
                   chunk: int = 20_000, calibration_rows: int = 4000) -> sp.csr_matrix:
    # inclusion frequencies to reproduce: the share of rows holding each term; sampling weights start there and are
    # corrected a few times on a sample (drawing without replacement saturates the head terms)
    target = side["popularity"] / max(side["popularity"].sum(), 1) * np.mean(side["lengths"])
    weights = target + 1e-6
    for _ in range(4):
        sample = np.minimum(rng.choice(side["lengths"], size=calibration_rows), vocab)
        _, cols = _draw_sets(weights, sample, rng)
        measured = np.bincount(cols, minlength=vocab) / calibration_rows
        weights = weights * np.clip((target + 1e-4) / (measured + 1e-4), 0.2, 5.0)
    quantiles = side["weight_quantiles"]
    parts = []
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        lengths = np.minimum(rng.choice(side["lengths"], size=rows), vocab)
        row, col = _draw_sets(weights, lengths, rng)
        decile = np.minimum(col * DECILES // vocab, DECILES - 1)
        u = rng.random(col.size) * (QUANTILES - 1)
        low = np.floor(u).astype(np.int64)
        frac = u - low
        high = np.minimum(low + 1, QUANTILES - 1)
        data = quantiles[decile, low] * (1 - frac) + quantiles[decile, high] * frac
        data = np.maximum(data, 1e-6).astype(np.float32)
        parts.append(sp.csr_matrix((data, (row, col)), shape=(rows, vocab)))
    return sp.vstack(parts, format="csr")


def generate(profile: dict[str, Any], n_docs: int, n_queries: int, seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Documents and queries drawn with the profile's marginals (see the module docstring)."""
    rng = np.random.default_rng(seed)
    vocab = profile["vocab"]
    return (_generate_side(profile["docs"], vocab, n_docs, rng),
            _generate_side(profile["queries"], vocab, n_queries, rng))


def profile_from_retriever(name: str, dataset_name: str, data_dir: str | None = None) -> dict[str, Any]:
    """A profile fitted to a trained retriever's own vectors: its cached index (documents) and its encoding of the
    dataset's queries. The retriever must have been run on the dataset (``python -m benchmark run NAME``)."""
    from benchmark.data.datasets import load_dataset
    from benchmark.records.results import utc_stamp
    from benchmark.registry import get_spec
    from benchmark.runs.runner import cache_key, trained_retriever

    dataset = load_dataset(dataset_name, data_dir=data_dir)
    retriever = trained_retriever(get_spec(name), dataset)
    index = retriever.index_
    if index is None:
        raise ValueError(f"{name} is not served from the inverted index: no sparse vectors to fit")
    docs = index.document_matrix(np.float32) * np.float32(index.scale)
    queries = retriever.encode(list(dataset.queries.values()), "query")
    return fit_profile(docs, queries, f"{name}@{dataset_name}",
                       {"retriever": name, "dataset": dataset_name, "fingerprint": dataset.fingerprint,
                        "provenance": retriever.provenance().get("model", {}).get("kind"),
                        "cache_key": cache_key(retriever), "fitted": utc_stamp()})  # which model, and when
