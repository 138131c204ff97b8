"""The trainer across processes and in chunks: the same loss and gradients as one process holding the whole batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HELPER = Path(__file__).with_name("helpers") / "one_step.py"


def _one_step(out: Path, backbone: str, processes: int, chunk: int = 0) -> dict:
    if processes == 1:
        cmd = [sys.executable, str(HELPER), str(out), backbone, str(chunk)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
               str(HELPER), str(out), backbone, str(chunk)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out / f"step-{processes}-{chunk}.pt", weights_only=False)  # our own file


@pytest.fixture(scope="module")
def batch(tmp_path_factory, demo):
    out = tmp_path_factory.mktemp("steps")
    pairs = [(demo.train_queries[q], demo.corpus[next(iter(r))]) for q, r in list(demo.train_qrels.items())[:16]]
    (out / "batch.json").write_text(json.dumps({"queries": [q for q, _ in pairs], "passages": [p for _, p in pairs]},
                                               ensure_ascii=False))
    return out


def _assert_same(a: dict, b: dict) -> None:
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6)
    assert a["grads"].keys() == b["grads"].keys() and a["grads"]
    for name, grad in a["grads"].items():
        torch.testing.assert_close(grad, b["grads"][name], rtol=1e-4, atol=1e-6, msg=name)


def test_two_processes_with_batch_b_equal_one_process_with_batch_2b(batch):
    """In-batch negatives gathered across processes (the paper's 64 x 8): 2 x 8 queries on 2 processes give the loss
    and gradients of 16 queries on one, FLOPS regulariser included (a Qwen2 has no dropout to draw differently)."""
    single = _one_step(batch, "qwen2", 1)
    double = _one_step(batch, "qwen2", 2)
    _assert_same(double, single)


def test_grad_cache_chunks_give_the_gradients_of_the_whole_batch(batch):
    """GradCache: 16 queries encoded 4 at a time give the loss and gradients of one pass over all 16."""
    _assert_same(_one_step(batch, "qwen2", 1, chunk=4), _one_step(batch, "qwen2", 1, chunk=0))


def test_grad_cache_re_encodes_with_the_same_dropout(batch):
    """With dropout (BERT), GradCache's re-encoding must draw the masks of its first pass: its gradients equal those of
    the same chunks encoded once, in one graph."""
    reference = _one_step(batch, "bert", 1, chunk=-4)
    _assert_same(_one_step(batch, "bert", 1, chunk=4), reference)


def test_training_reports_progress_and_says_when_it_resumes(demo, tmp_path, capsys, monkeypatch):
    from retrievers.sparse import SparseConfig, SparseEncoder, SparseScratch
    from retrievers.training import TrainConfig, train

    monkeypatch.setenv("PROSPER_BENCH_PROGRESS_SECONDS", "0")  # a line per step (not a terminal here)
    pairs = [(demo.train_queries[q], demo.corpus[next(iter(r))]) for q, r in list(demo.train_qrels.items())[:96]]
    config = SparseConfig(scratch=SparseScratch(hidden_size=16, layers=1, heads=2, kv_heads=1, intermediate_size=32),
                          max_length=24, device="cpu")
    schedule = TrainConfig(epochs=2, batch_size=32, lr=1e-3, validation_pairs=0)
    work = tmp_path / "prosper-abc" / "checkpoints"

    def stop_after_first_epoch(epoch, record):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(SparseEncoder(config, texts=[t for pair in pairs for t in pair]), pairs, schedule, work,
              on_epoch=stop_after_first_epoch)
    err = capsys.readouterr().err
    assert "training prosper-abc: epoch 1/2, step 1/6" in err and "loss" in err and "ETA" in err
    summary = train(SparseEncoder(config, texts=[t for pair in pairs for t in pair]), pairs, schedule, work)
    err = capsys.readouterr().err
    assert "resuming from the checkpoint after epoch 1 of 2" in err and "epoch 2/2" in err and "epoch 1/2" not in err
    assert summary["steps"] == 6 and [r["epoch"] for r in summary["history"]] == [1, 2]
    assert not (work / "last" / "optimizer.pt").exists()  # a finished training keeps no optimizer state
