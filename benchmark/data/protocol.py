"""The training protocol: which pairs a trained retriever learns from and which queries it is evaluated on.

Its own module because every trained result depends on it (``benchmark.records.rows`` marks results stale when it changes),
while the runner around it only moves data and files.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from benchmark.data.files import Dataset


@dataclass
class Fold:
    """Which pairs a trained retriever learns from and which dev queries it is then evaluated on."""

    name: str
    train_queries: dict[str, str]
    train_qrels: dict[str, dict[str, int]]
    eval_qids: list[str]


def training_folds(dataset: Dataset, n_folds: int = 2, seed: int = 13) -> tuple[str, list[Fold]]:
    """The training protocol for ``dataset``.

    Pool protocol (``corpus_label == 'pool'``): the pool holds only 182 train positives, so the 1,000 dev queries are
    split in ``n_folds`` seeded folds; a model is trained on the train pairs plus the other folds' dev pairs and
    evaluated on its own fold; the folds' runs are merged, so every dev query is scored by a model that never saw it
    (with equal folds, the metrics of the merged run are the mean of the folds' metrics). Otherwise: the official
    train split, evaluated on all dev queries.
    """
    if dataset.corpus_label != "pool":
        return "official-train-split", [Fold("all", dataset.train_queries, dataset.train_qrels, list(dataset.queries))]
    qids = sorted(dataset.qrels)
    random.Random(seed).shuffle(qids)
    parts = [sorted(qids[i::n_folds]) for i in range(n_folds)]
    folds = []
    for i, held_out in enumerate(parts):
        train_q = dict(dataset.train_queries)
        train_r = {q: dict(v) for q, v in dataset.train_qrels.items()}
        for j, other in enumerate(parts):
            if j != i:
                for q in other:
                    train_q[q] = dataset.queries[q]
                    train_r[q] = dict(dataset.qrels[q])
        folds.append(Fold(f"fold-{i}", train_q, train_r, held_out))
    protocol = (f"pool-{n_folds}fold-cv (train pairs + other folds' dev pairs; "
                "each dev query scored by a model that never saw it)")
    return protocol, folds
