"""The training protocol: the pool's 2-fold cross-validation never scores a query with a model trained on it."""

from __future__ import annotations

from benchmark.runner import training_folds


def test_pool_folds_are_disjoint_and_leak_nothing(pool):
    protocol, folds = training_folds(pool)
    assert protocol.startswith("pool-2fold-cv") and len(folds) == 2
    a, b = (set(f.eval_qids) for f in folds)
    assert not a & b and a | b == set(pool.qrels) and abs(len(a) - len(b)) <= 1
    for fold in folds:
        assert not set(fold.eval_qids) & set(fold.train_qrels)  # never trained on its own queries
        assert set(pool.train_qrels) <= set(fold.train_qrels)  # the 182 official train pairs are always used
        assert len(fold.train_qrels) == 182 + 1000 - len(fold.eval_qids)


def test_other_datasets_use_the_official_split(demo):
    protocol, folds = training_folds(demo)
    assert protocol == "official-train-split" and len(folds) == 1
    assert folds[0].train_qrels == demo.train_qrels and set(folds[0].eval_qids) == set(demo.queries)
