"""What every learned sparse retriever shares: encode to term weights, index into the inverted index, search it.

Subclasses (SPLADE/PROSPER in ``sparse.py``, DeepCT in ``deepct.py``) provide the model: ``encode(texts, side)``
returning a (texts x vocab) CSR matrix of non-negative weights, and ``load_model(dir)``; serving, cost accounting
(index size, latency at k=10 excluding query encoding, FLOPS, active dimensions) is written once, here.
"""

from __future__ import annotations

import abc
import json
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from retrievers.base import Retriever, Run, Timer, latency_summary, write_json_atomic
from retrievers.index.inverted_index import InvertedIndex
from retrievers.sharding import encode_corpus


class ImpactRetriever(Retriever):
    """Config fields used: ``block_size``, ``algorithm``, ``threads``, ``latency_queries``, optional ``query_top_m``
    and ``serving`` (``exact``, or ``approximate``: statically pruned lists chosen from the collection's impact
    histogram, ``retrievers.index.approximate.choose_pruning``; the result records its recall of the exact top-k on the
    same queries)."""

    search_fields = ("query_top_m", "algorithm", "threads", "latency_queries", "serving")
    shards_encoding = True

    def __init__(self, config=None):
        super().__init__(config)
        self.index_: InvertedIndex | None = None
        self._approximate = None

    @property
    def approximate(self) -> bool:
        return getattr(self.config, "serving", "exact") == "approximate"

    def approximate_index(self):
        """The approximate index, pruned from the exact one as the collection's impact histogram suggests (built once
        per process: at 1M documents in seconds, so it is derived rather than cached)."""
        from retrievers.index.approximate import ApproximateIndex, choose_pruning

        if self._approximate is None:
            pruning = choose_pruning(np.asarray(self.index_.impacts), self.index_.n_docs)
            index = ApproximateIndex.from_index(self.index_, pruning.postings_per_list, pruning.impact_floor,
                                                pruning.forward)
            self._approximate = (index, pruning)
        return self._approximate

    @abc.abstractmethod
    def encode(self, texts: list[str], side: str) -> sp.csr_matrix:
        """Term weights of ``texts`` (``side``: ``query`` or ``doc``)."""

    @abc.abstractmethod
    def load_model(self, model_dir: Path) -> None:
        """Reopen the model that ``fit`` saved under ``model_dir``."""

    @property
    def query_top_m(self) -> int | None:
        return getattr(self.config, "query_top_m", None)

    def index(self, corpus: Mapping[str, str], index_dir: Path) -> None:
        pids = list(corpus)
        with Timer() as timer:
            with Timer() as encoding:
                docs = encode_corpus(lambda texts: self.encode(texts, "doc"), [corpus[p] for p in pids], index_dir)
            if docs is None:  # another torchrun process builds the index from every process's shard
                return
            self.index_ = InvertedIndex.build(docs, doc_ids=pids, block_size=self.config.block_size)
            self.index_.save(Path(index_dir) / "inverted")
        self.stats.extra["stages"] = {"encode": encoding.seconds, "build": timer.seconds - encoding.seconds}
        write_json_atomic(Path(index_dir) / "provenance.json", self._provenance)
        self.stats.index_time_s = timer.seconds
        self.stats.index_size_bytes = self.index_.size_bytes()
        self.stats.doc_terms_mean = float(docs.getnnz(axis=1).mean()) if docs.shape[0] else 0.0

    def load(self, index_dir: Path) -> None:
        index_dir = Path(index_dir)
        self.load_model(index_dir / "model")
        self.index_ = InvertedIndex.load(index_dir / "inverted")
        self._provenance = json.loads((index_dir / "provenance.json").read_text())
        self.stats.index_size_bytes = self.index_.size_bytes()

    def search(self, queries: Mapping[str, str], k: int = 1000) -> Run:
        if self.index_ is None:
            raise RuntimeError("index() or load() before search()")
        qids = list(queries)
        with Timer() as encode_timer:
            reps = self.encode([queries[q] for q in qids], "query")
        top_m, algorithm = self.query_top_m, self.config.algorithm
        result = self.index_.search(reps, k=k, algorithm=algorithm, top_m=top_m, threads=self.config.threads)
        searcher = lambda rows, depth: self.index_.search(rows, k=depth, algorithm=algorithm, top_m=top_m)  # noqa: E731
        if self.approximate:
            approx, pruning = self.approximate_index()
            exact = result
            result = approx.search(reps, k=k, candidates=max(pruning.candidates, k), top_m=top_m,
                                   threads=self.config.threads)
            searcher = lambda rows, depth: approx.search(rows, k=depth, candidates=pruning.candidates,  # noqa: E731
                                                         top_m=top_m)
            self.stats.extra["approximate"] = {**pruning.as_dict(), "size_bytes": approx.size_bytes(),
                                               "exact_size_bytes": self.index_.size_bytes(),
                                               **recall_of_exact(result, exact, (10, k))}
        run = {qid: result.hits(n, self.index_.doc_ids) for n, qid in enumerate(qids)}
        latencies = []
        for n in range(min(len(qids), self.config.latency_queries)):
            start = time.perf_counter()
            searcher(reps[n], min(k, 10))
            latencies.append(time.perf_counter() - start)
        for key, value in latency_summary(latencies).items():
            setattr(self.stats, key, value)
        kept = reps if top_m is None else keep_top(reps, top_m)
        self.stats.flops = self.index_.overlap_flops(reps, top_m=top_m)
        self.stats.query_terms_mean = float(kept.getnnz(axis=1).mean()) if kept.shape[0] else 0.0
        self.stats.extra.update({"latency_k": 10, "latency_excludes_query_encoding": True,
                                 "query_encoding_ms_mean": 1000 * encode_timer.seconds / max(1, len(qids)),
                                 "active_query_dims": self.stats.query_terms_mean,
                                 "active_doc_dims": self.stats.doc_terms_mean})
        return run


def keep_top(matrix: sp.csr_matrix, m: int) -> sp.csr_matrix:
    """Each row's ``m`` heaviest entries (the online query pruning)."""
    rows = []
    for i in range(matrix.shape[0]):
        row = matrix.getrow(i)
        if row.nnz > m:
            order = np.argsort(-row.data, kind="stable")[:m]
            row = sp.csr_matrix((row.data[order], (np.zeros(m, int), row.indices[order])), shape=row.shape)
        rows.append(row)
    return sp.vstack(rows, format="csr")


def recall_of_exact(found, exact, cutoffs: tuple[int, ...]) -> dict[str, float]:
    """Mean share of the exact top-c documents an approximate search found in its own top-c, per cutoff c."""
    out = {}
    for c in sorted(set(cutoffs)):
        shares = []
        for row_found, row_exact in zip(found.doc_index[:, :c], exact.doc_index[:, :c], strict=True):
            truth = set(row_exact[row_exact >= 0].tolist())
            if truth:
                shares.append(len(truth & set(row_found[row_found >= 0].tolist())) / len(truth))
        out[f"recall@{c}"] = float(np.mean(shares)) if shares else 1.0
    return out
