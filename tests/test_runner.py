"""The training protocol: the pool's 2-fold cross-validation never scores a query with a model trained on it."""

from __future__ import annotations

from benchmark.data.protocol import training_folds


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


def test_an_interrupted_training_resumes_from_its_checkpoints(demo, tmp_path, monkeypatch):
    """A run killed mid-training leaves checkpoints; the next run drops the half-built index but keeps them."""
    from benchmark.data.protocol import Fold
    from benchmark.registry import RetrieverSpec
    from benchmark.runs.runner import _fit_and_index
    from retrievers.bm25 import BM25Retriever

    seen = {}

    class Trained(BM25Retriever):
        needs_training = True

        def fit(self, train_queries, train_qrels, corpus, work_dir):
            seen["checkpoint"] = (work_dir / "checkpoints" / "trainer_state.json").read_text()
            seen["stale"] = (work_dir / "half-built.bin").exists()

    index_dir = tmp_path / "index"
    (index_dir / "checkpoints").mkdir(parents=True)
    (index_dir / "checkpoints" / "trainer_state.json").write_text('{"epoch": 3}')
    (index_dir / "half-built.bin").write_bytes(b"\0" * 10)
    retriever = Trained()
    retriever.config.backend = "bm25s"
    spec = RetrieverSpec("trained-bm25", "x:y")
    reused = _fit_and_index(retriever, spec, demo, Fold("all", {}, {}, []), index_dir, reuse_index=True)
    assert not reused and seen == {"checkpoint": '{"epoch": 3}', "stale": False}
    assert (index_dir / "DONE").exists()


def test_validation_mrr_counts_ties_against_the_positive():
    """A collapsed model scoring everything equal must not look perfect (it once picked a dead SPLADE epoch)."""
    import torch

    from retrievers.training.validation import validation_mrr

    class Constant:
        def scoring_vectors(self, texts, side):
            return torch.zeros(len(texts), 4)

    class Oracle:
        def scoring_vectors(self, texts, side):
            return torch.nn.functional.one_hot(torch.tensor([int(t[1:]) for t in texts]), 4).float()

    pairs = [(f"q{i}", f"p{i}") for i in range(4)]
    assert validation_mrr(Oracle(), pairs) == 1.0
    assert validation_mrr(Constant(), pairs) == 0.25


def test_the_device_is_where_a_model_runs_not_what_it_is():
    """``device`` never enters the config hash (a GPU-trained model shares the CPU one's cache and result series);
    ``auto`` falls back to the CPU, and asking for a GPU that torch cannot see fails with a message, not a crash."""
    import pytest
    import torch

    from retrievers.base import config_hash, torch_device
    from retrievers.sparse import SparseConfig

    assert config_hash(SparseConfig(device="cpu")) == config_hash(SparseConfig(device="cuda:1"))
    assert config_hash(SparseConfig(lambda_q=1e-2)) != config_hash(SparseConfig())
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert torch_device("auto").type == expected and torch_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            torch_device("cuda")


def test_plot_labels_never_overlap_and_paper_rows_are_labelled_first():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmark.report.plot import _place_labels

    fig, ax = plt.subplots()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    items = [(5.0, 5.0, f"ablation-{i}", 1) for i in range(8)] + [(5.0, 5.0, "paper-row", 0), (1.0, 9.0, "alone", 1)]
    hidden = _place_labels(fig, ax, items)
    texts = [t for t in ax.texts]
    shown = [t.get_text() for t in texts]
    assert "paper-row" in shown and "alone" in shown
    assert hidden == len(items) - len(shown) and hidden >= 5  # at most 4 positions around one point
    boxes = [t.get_window_extent(fig.canvas.get_renderer()) for t in texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(fig)


def test_validation_ranks_each_positive_against_corpus_distractors(demo):
    """Ranked among only their own ~100 positives the held-out queries saturate; the corpus sample makes it a test."""
    import torch

    from retrievers.training.validation import validation_distractors, validation_mrr

    class CharacterOverlap:  # a query's score for a passage: the characters they share
        def scoring_vectors(self, texts, side):
            out = torch.zeros(len(texts), 65536)
            for row, text in enumerate(texts):
                out[row, [ord(c) for c in set(text)]] = 1.0
            return out

    pairs = [(demo.train_queries[q], demo.corpus[next(iter(r))]) for q, r in list(demo.train_qrels.items())[:100]]
    distractors = validation_distractors(pairs, list(demo.corpus.values()), total=2000, seed=0)
    assert len(distractors) + len({p for _, p in pairs}) == 2000 and not set(distractors) & {p for _, p in pairs}
    assert validation_distractors(pairs, list(demo.corpus.values()), 2000, 0) == distractors  # seeded
    alone = validation_mrr(CharacterOverlap(), pairs)
    among = validation_mrr(CharacterOverlap(), pairs, distractors, memory_bytes=2**20)
    assert among < alone - 0.1


def test_a_paper_comparable_dataset_refuses_a_scratch_model(pool, monkeypatch, tmp_path, capsys):
    """No silent toys: without the pretrained weights, `run prosper --dataset multicpr-ecom` names what is missing."""
    import dataclasses

    import benchmark.cli.common as common
    from benchmark.cli.main import main

    full = dataclasses.replace(pool, name="multicpr-ecom", corpus_label="full", comparable_to_paper=True)
    monkeypatch.setattr(common, "load_dataset", lambda *args, **kwargs: full)
    code = main(["run", "prosper", "--dataset", "multicpr-ecom", "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "Qwen/Qwen2.5-3B" in err and "--allow-scratch" in err and "model_path" in err
    assert not list(tmp_path.rglob("*.json"))  # nothing trained, nothing written


def test_no_verify_never_makes_a_partial_corpus_comparable(tmp_path, multicpr_dir):
    from benchmark.data.datasets import load_dataset

    ecom = tmp_path / "ecom"
    ecom.mkdir()
    for name in ("dev.query.txt", "qrels.dev.tsv"):
        (ecom / name).write_bytes((multicpr_dir / "ecom" / name).read_bytes())
    (ecom / "corpus.tsv").write_bytes((multicpr_dir / "ecom" / "corpus.partial.tsv").read_bytes())
    dataset = load_dataset("multicpr-ecom", data_dir=tmp_path, with_train=False, verify=False, download=False)
    assert len(dataset.corpus) == 2987 and not dataset.comparable_to_paper


def test_result_files_hold_no_machine_local_absolute_paths(tmp_path, multicpr_dir):
    """Data files relative to their data folder; artefacts, cache entries and packages relative to where they live;
    only the config keeps what the user gave."""
    import json

    from benchmark.cli.main import main
    from benchmark.records.results import find_results

    assert main(["run", "bm25s-bert", "e5-small", "--dataset", "multicpr-ecom-pool", "--data-dir", str(multicpr_dir),
                 "--output", str(tmp_path), "--set", "latency_queries=5"]) == 0
    for path in find_results(tmp_path):
        payload = json.loads(path.read_text())

        absolute = [s for s in _strings(payload, skip=("config", "overrides")) if s.startswith("/")]
        assert absolute == [], (path, absolute)
        assert payload["dataset"]["files"]["corpus"]["path"] == "ecom/corpus.partial.tsv"


def _strings(node, skip=()):
    """Every string in a JSON payload, leaving out the values under the keys in ``skip``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in skip:
                yield from _strings(value, skip)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value, skip)
    elif isinstance(node, str):
        yield node


def test_no_committed_result_file_names_a_machine_local_path():
    """Every JSON file under results/ (runs, index-bench, cost growth, spread, tuning): no absolute path anywhere, so a
    result reads the same on every machine (files written before portable paths were rewritten to the same form)."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "results"
    found = {}
    for path in sorted(root.rglob("*.json")):
        bad = [s for s in _strings(json.loads(path.read_text(encoding="utf-8")))
               if s.startswith("/") or ":/" in s[:12] and "://" not in s]
        if bad:
            found[str(path.relative_to(root))] = bad[:3]
    assert len(list(root.rglob("*.json"))) > 100 and found == {}
