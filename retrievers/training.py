"""The one contrastive trainer every trained retriever uses: InfoNCE over in-batch negatives, AdamW, linear warm-up.

Why one trainer: the paper's comparison is only fair when every model sees the same pairs, seeds, batch size and
schedule. A model supplies two encoders (query texts -> tensor, passage texts -> tensor), a similarity, and optional
regularisers (the FLOPS term of sparse models); the trainer owns everything else:

- seeded shuffling and initialisation (``torch.manual_seed``), deterministic on CPU;
- AdamW (weight decay 0.1 as in the paper), linear warm-up then linear decay;
- a checkpoint after every epoch (``save_pretrained``-style folder written by the model, plus optimizer state), so a
  killed run resumes from the last finished epoch;
- validation on held-out training pairs after every epoch, keeping the best epoch (the paper keeps the best of 5).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

log = logging.getLogger("benchmark.training")


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 32
    lr: float = 3e-5
    weight_decay: float = 0.1
    warmup_fraction: float = 0.06  # of all steps (the paper: ~0.3 epoch of 5)
    seed: int = 13
    validation_pairs: int = 100  # held out from the training pairs to pick the best epoch; 0 = keep the last
    validation_candidates: int = 2000  # each held-out query ranks its positive among this many passages
    max_grad_norm: float = 1.0
    min_steps: int = 0  # train at least this many optimizer steps (more epochs on a small training set); 0 = off
    hard_negatives: bool = False  # add one BM25 hard negative per query to the batch (SPLADE-v2 style)
    hard_negative_depth: int = 30  # sampled from the BM25 top-n, positives excluded


def paper_training() -> TrainConfig:
    """The paper's fine-tuning settings (section 4.1), the ``pretrained`` preset of every trained retriever: 5 epochs,
    lr 3e-5 with a linear warm-up over ~0.3 epoch (6% of 5 epochs), AdamW weight decay 0.1, batch 64 per device, best
    epoch on 500 held-out training queries."""
    return TrainConfig(epochs=5, batch_size=64, lr=3e-5, weight_decay=0.1, warmup_fraction=0.06, validation_pairs=500)


class Trainable(Protocol):
    """What a model gives the trainer."""

    def parameters(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...

    def training_loss(self, queries: Sequence[str], passages: Sequence[str], step: int, total_steps: int
                      ) -> tuple[torch.Tensor, dict[str, float]]: ...

    def score_pairs(self, queries: Sequence[str], passages: Sequence[str]) -> torch.Tensor: ...

    def save(self, path: Path) -> None: ...

    def load_weights(self, path: Path) -> None: ...


def info_nce(q: torch.Tensor, d: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """InfoNCE with in-batch negatives: query i's positive is passage i; every other passage is a negative."""
    scores = (q @ d.T) * scale
    return torch.nn.functional.cross_entropy(scores, torch.arange(q.shape[0], device=q.device))


def training_pairs(train_queries: dict[str, str], train_qrels: dict[str, dict[str, int]],
                   corpus: dict[str, str]) -> list[tuple[str, str]]:
    """(query text, positive passage text) pairs, in a fixed order."""
    pairs = []
    for qid in sorted(train_qrels):
        for pid, rel in sorted(train_qrels[qid].items()):
            if rel > 0 and qid in train_queries and pid in corpus:
                pairs.append((train_queries[qid], corpus[pid]))
    if not pairs:
        raise ValueError("no training pairs: the dataset has no train queries whose positive is in the corpus")
    return pairs


def mine_bm25_negatives(pairs: list[tuple[str, str]], passages: list[str], depth: int, seed: int
                        ) -> dict[str, list[str]]:
    """query text -> BM25 top-``depth`` passages that are not one of its positives (bm25s, k1=1.2, b=0.75).

    Tokens: BERT basic tokenization (one token per CJK character, lower-cased words otherwise), the same view the
    BERT-Chinese BM25 baseline has, without needing a tokenizer file.
    """
    import re

    import bm25s

    def tokens(text: str) -> list[str]:
        return re.findall(r"[\u3400-\u9fff\uf900-\ufaff]|[a-z0-9]+", text.lower())

    unique = list(dict.fromkeys(passages))
    retriever = bm25s.BM25(k1=1.2, b=0.75)
    retriever.index([tokens(p) for p in unique], show_progress=False)
    positives: dict[str, set[str]] = {}
    for query, passage in pairs:
        positives.setdefault(query, set()).add(passage)
    queries = list(positives)
    docs, _ = retriever.retrieve([tokens(q) or ["[empty]"] for q in queries], k=min(depth, len(unique)),
                                 show_progress=False, n_threads=1)
    rng = random.Random(seed)
    mined = {}
    for query, row in zip(queries, docs, strict=True):
        candidates = [unique[i] for i in row if unique[i] not in positives[query]]
        rng.shuffle(candidates)
        mined[query] = candidates
    return mined


def _with_negatives(batch: list[tuple[str, str]], negatives: dict[str, list[str]]) -> list[str]:
    """The batch's positives followed by one hard negative per query that is not a passage of the batch."""
    taken = {p for _, p in batch}
    extra = []
    for query, _ in batch:
        choice = next((n for n in negatives.get(query, []) if n not in taken), None)
        if choice is not None:
            extra.append(choice)
            taken.add(choice)
    return [p for _, p in batch] + extra


def _batches(pairs: list[tuple[str, str]], batch_size: int, rng: random.Random) -> list[list[tuple[str, str]]]:
    """Shuffled batches in which no passage appears twice (a duplicate would be a false in-batch negative)."""
    order = pairs[:]
    rng.shuffle(order)
    batches, current, seen = [], [], set()
    spill = []
    for pair in order:
        if pair[1] in seen:
            spill.append(pair)
            continue
        current.append(pair)
        seen.add(pair[1])
        if len(current) == batch_size:
            batches.append(current)
            current, seen = [], set()
    leftovers = current + spill
    for start in range(0, len(leftovers), batch_size):
        chunk = list({p[1]: p for p in leftovers[start:start + batch_size]}.values())
        if len(chunk) > 1:
            batches.append(chunk)
    return batches


def _mrr(model: Trainable, pairs: list[tuple[str, str]], distractors: Sequence[str] = (), chunk: int = 512) -> float:
    """Validation: MRR of each held-out query's positive among the held-out positives plus ``distractors``.

    Why distractors: ranked only among their own ~100 positives, the held-out queries saturate (every epoch scores
    ~0.95 and the "best" epoch is noise); the paper validates on 500 training queries against a real candidate set.
    Passages are scored in chunks, so a vocabulary-sized representation of every candidate never exists at once.
    """
    positives = list(dict.fromkeys(p for _, p in pairs))
    column = {p: i for i, p in enumerate(positives)}
    candidates = positives + [p for p in dict.fromkeys(distractors) if p not in column]
    queries = [q for q, _ in pairs]
    with torch.no_grad():
        scores = torch.cat([model.score_pairs(queries, candidates[i:i + chunk]).float().cpu()
                            for i in range(0, len(candidates), chunk)], dim=1)
    positive = scores[torch.arange(len(pairs)), torch.tensor([column[p] for _, p in pairs])]
    # ties count against the positive: a collapsed model (all scores equal) must score ~0, not a perfect 1.0
    ranks = (scores >= positive[:, None]).sum(dim=1)
    return float((1.0 / ranks.float()).mean())


def validation_distractors(validation: list[tuple[str, str]], corpus_passages: Sequence[str] | None, total: int,
                           seed: int) -> list[str]:
    """A seeded sample of corpus passages, none a held-out positive, filling the candidate set up to ``total``."""
    held_out = {p for _, p in validation}
    pool = [p for p in dict.fromkeys(corpus_passages or ()) if p not in held_out]
    need = max(0, min(total - len(held_out), len(pool)))
    return random.Random(seed).sample(pool, need) if need else []


def train(model: Trainable, pairs: list[tuple[str, str]], config: TrainConfig, work_dir: Path,
          on_epoch: Callable[[int, dict[str, float]], None] | None = None,
          corpus_passages: list[str] | None = None) -> dict[str, Any]:
    """Train ``model`` on ``pairs``; checkpoints under ``work_dir``; returns a summary for the result file.

    ``training_loss(queries, passages)`` gets the batch's positives first (passage i belongs to query i), then, with
    ``hard_negatives``, one BM25 negative per query mined from ``corpus_passages``: every model's InfoNCE treats all
    passages after the positives as extra negatives for every query.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    pairs = pairs[:]
    rng.shuffle(pairs)
    n_val = min(config.validation_pairs, len(pairs) // 5)
    validation, pairs = pairs[:n_val], pairs[n_val:]
    distractors = validation_distractors(validation, corpus_passages, config.validation_candidates, config.seed)
    steps_per_epoch = len(_batches(pairs, config.batch_size, random.Random(0)))
    epochs = max(config.epochs, math.ceil(config.min_steps / max(1, steps_per_epoch)))
    total = max(1, steps_per_epoch * epochs)
    warmup = max(1, int(config.warmup_fraction * total))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    negatives = (mine_bm25_negatives(pairs, corpus_passages or [p for _, p in pairs], config.hard_negative_depth,
                                     config.seed) if config.hard_negatives else {})
    state_file = work_dir / "trainer_state.json"
    history: list[dict[str, float]] = []
    start_epoch, step, best = 0, 0, -1.0
    if state_file.exists():  # resume after an interruption
        state = json.loads(state_file.read_text())
        start_epoch, step, best, history = state["epoch"], state["step"], state["best"], state["history"]
        model.load_weights(work_dir / "last")
        optimizer.load_state_dict(torch.load(work_dir / "last" / "optimizer.pt", weights_only=True))
        schedule.load_state_dict(torch.load(work_dir / "last" / "scheduler.pt", weights_only=True))
        log.info("resuming at epoch %d", start_epoch + 1)
    for epoch in range(start_epoch, epochs):
        model.train(True)
        epoch_rng = random.Random(config.seed * 1000 + epoch)
        totals: dict[str, float] = {}
        batches = _batches(pairs, config.batch_size, epoch_rng)
        for batch in tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=None):
            passages = _with_negatives(batch, negatives) if negatives else [p for _, p in batch]
            loss, parts = model.training_loss([q for q, _ in batch], passages, step, total)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.max_grad_norm)
            optimizer.step()
            schedule.step()
            step += 1
            for key, value in {"loss": float(loss.detach()), **parts}.items():
                totals[key] = totals.get(key, 0.0) + value
        model.train(False)
        record = {k: v / max(1, len(batches)) for k, v in totals.items()}
        record["epoch"] = epoch + 1
        if validation:
            record["val_mrr"] = _mrr(model, validation, distractors)
        history.append(record)
        log.info("epoch %d: %s", epoch + 1, record)
        if on_epoch:
            on_epoch(epoch + 1, record)
        improved = not validation or record["val_mrr"] > best
        if improved:
            best = record.get("val_mrr", best)
            _save(model, work_dir / "best")
        _save(model, work_dir / "last", optimizer, schedule)
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"epoch": epoch + 1, "step": step, "best": best, "history": history}))
        os.replace(tmp, state_file)
    model.load_weights(work_dir / "best")
    model.train(False)
    best_epoch = max(history, key=lambda r: r.get("val_mrr", r["epoch"]))["epoch"] if history else None
    return {"config": asdict(config), "epochs_run": epochs, "pairs": len(pairs), "validation_pairs": len(validation),
            "validation_candidates": len(validation) and len({p for _, p in validation}) + len(distractors),
            "steps": step, "best_epoch": best_epoch, "history": history}


def _save(model: Trainable, path: Path, optimizer=None, schedule=None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save(tmp)
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(schedule.state_dict(), tmp / "scheduler.pt")
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def quadratic_warmup(step: int, total_steps: int, warmup_fraction: float) -> float:
    """0 -> 1 quadratically over the first ``warmup_fraction`` of training (the FLOPS lambda schedule)."""
    horizon = max(1.0, warmup_fraction * total_steps)
    return min(1.0, ((step + 1) / horizon) ** 2)


def steps_for_epochs(n_pairs: int, batch_size: int, epochs: float) -> int:
    return int(math.ceil(n_pairs / batch_size) * epochs)
