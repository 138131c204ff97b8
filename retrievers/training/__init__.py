"""The one trainer every trained retriever uses (``loop.train``) and its parts, one concern a module.

``config`` (settings and the model contract), ``pairs`` (training pairs, BM25 negatives), ``batches`` (global batches
across processes), ``losses``, ``optim`` (AdamW on master weights), ``validation``, ``checkpoints``, ``progress``.
May import ``retrievers.options``, ``retrievers.sharding`` and ``retrievers.resources``; never ``benchmark``.
"""
