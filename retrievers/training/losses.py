"""The losses and schedules shared by the trained retrievers: in-batch InfoNCE and the FLOPS weight's quadratic warm-up."""

from __future__ import annotations

import torch


def info_nce(q: torch.Tensor, d: torch.Tensor, targets: torch.Tensor | None = None, scale: float = 1.0
             ) -> torch.Tensor:
    """InfoNCE with in-batch negatives: query i's positive is passage ``targets[i]`` (default i); every other passage
    of the (gathered) batch is a negative."""
    scores = (q @ d.T) * scale
    if targets is None:
        targets = torch.arange(q.shape[0], device=q.device)
    return torch.nn.functional.cross_entropy(scores, targets.to(q.device))


def quadratic_warmup(step: int, horizon: float) -> float:
    """0 -> 1 quadratically over the first ``horizon`` steps (the FLOPS lambda schedule), then 1."""
    return min(1.0, ((step + 1) / max(1.0, horizon)) ** 2)
