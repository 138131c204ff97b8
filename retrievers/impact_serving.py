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
from retrievers.inverted_index import InvertedIndex
from retrievers.sharding import encode_corpus


class ImpactRetriever(Retriever):
    """Config fields used: ``block_size``, ``algorithm``, ``threads``, ``latency_queries``, optional ``query_top_m``."""

    search_fields = ("query_top_m", "algorithm", "threads", "latency_queries")
    shards_encoding = True

    def __init__(self, config=None):
        super().__init__(config)
        self.index_: InvertedIndex | None = None

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
        run = {qid: result.hits(n, self.index_.doc_ids) for n, qid in enumerate(qids)}
        latencies = []
        for n in range(min(len(qids), self.config.latency_queries)):
            start = time.perf_counter()
            self.index_.search(reps[n], k=min(k, 10), algorithm=algorithm, top_m=top_m)
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
