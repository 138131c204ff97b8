"""What a training run is given: its settings (:class:`TrainConfig`, the paper's preset) and the contract a model meets
(:class:`Trainable`) so the one trainer can train it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from retrievers.options import above, at_least, between


@dataclass
class TrainConfig:
    epochs: int = at_least(5, 1)  # epochs to run; with patience > 0 the cap, training may stop earlier
    batch_size: int = at_least(32, 1)  # per process; the global batch is batch_size x processes
    lr: float = above(3e-5, 0)
    weight_decay: float = at_least(0.1, 0)
    warmup_fraction: float = between(0.06, 0, 1)  # of all steps the cap allows (the paper: ~0.3 epoch of 5)
    seed: int = 13
    validation_pairs: int = at_least(100, 0)  # held out from the training pairs to pick the best epoch; 0 = keep the last
    validation_candidates: int = at_least(2000, 1)  # each held-out query ranks its positive among this many passages
    patience: int = at_least(0, 0)  # > 0: stop when validation has not improved for this many epochs (early stopping)
    max_grad_norm: float = above(1.0, 0)
    min_steps: int = at_least(0, 0)  # train at least this many optimizer steps (more epochs on a small training set); 0 = off
    hard_negatives: bool = False  # add one BM25 hard negative per query to the batch (SPLADE-v2 style)
    hard_negative_depth: int = at_least(30, 1)  # sampled from the BM25 top-n, positives excluded
    grad_cache_chunk: int = at_least(0, 0)  # > 0: GradCache, groups of at most this many queries; 0: one pass
    max_pairs: int = at_least(0, 0)  # > 0: train on the first this many (shuffled) pairs only - smoke tests, quick looks


def paper_training() -> TrainConfig:
    """The paper's fine-tuning settings (section 4.1), the ``pretrained`` preset of every trained retriever: 5 epochs,
    lr 3e-5 with a linear warm-up over ~0.3 epoch (6% of 5 epochs), AdamW weight decay 0.1, batch 64 per device, best
    epoch on 500 held-out training queries."""
    return TrainConfig(epochs=5, batch_size=64, lr=3e-5, weight_decay=0.1, warmup_fraction=0.06, validation_pairs=500)


class Trainable(Protocol):
    """What a model gives the trainer (``torch.nn.Module`` methods plus these)."""

    def parameters(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...

    def forward(self, queries: Sequence[str], passages: Sequence[str]) -> dict[str, torch.Tensor]: ...

    def batch_loss(self, reps: dict[str, torch.Tensor], targets: torch.Tensor, step: int, total_steps: int
                   ) -> tuple[torch.Tensor, dict[str, float]]: ...

    def scoring_vectors(self, texts: Sequence[str], side: str) -> torch.Tensor: ...

    def save(self, path: Path) -> None: ...

    def load_weights(self, path: Path) -> None: ...
