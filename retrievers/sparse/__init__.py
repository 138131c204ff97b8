"""Learned sparse retrievers: SPLADE, SP-Qwen and PROSPER with its ablations, as options of one encoder.

``config`` (the settings), ``ops`` (the tensor operations, pure functions), ``encoder`` (the model and the retriever
that serves it from the inverted index). May import ``retrievers.index``, ``.resources``, ``.training``; never
``benchmark``. The registry names ``retrievers.sparse:SparseRetriever``, importable from here.
"""

from retrievers.sparse.config import SparseConfig, SparseScratch
from retrievers.sparse.encoder import SparseEncoder, SparseRetriever

__all__ = ["SparseConfig", "SparseEncoder", "SparseRetriever", "SparseScratch"]
