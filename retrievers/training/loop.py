"""The one trainer every trained retriever uses: in-batch negatives, AdamW, linear warm-up, several GPUs if given.

Why one trainer: the paper's comparison is only fair when every model sees the same pairs, seeds, batch size and
schedule. A model supplies ``forward(queries, passages) -> representations`` (a dict of tensors, rows of keys
starting with ``q`` are queries, with ``d`` passages), ``batch_loss(representations, targets, step, total)``
(InfoNCE + regularisers for retrievers; a per-example loss for DeepCT and Doc2Query) and, for validation,
``scoring_vectors(texts, side)`` (what it scores with: a query's score for a passage is their dot product); the
trainer owns the rest:

- seeded shuffling and initialisation (``torch.manual_seed``), deterministic on CPU;
- AdamW (weight decay 0.1 as in the paper), linear warm-up then linear decay over the steps of every epoch the cap
  allows (each epoch's batches are counted from that epoch's own shuffle);
- **global batches** (:class:`EpochPlan`): each epoch's pairs are shuffled into batches of ``batch_size x processes``
  in which no passage appears twice (a duplicate would be a false in-batch negative). The last, short batch is
  *shared*: split as evenly as the processes allow (172 pairs on 8 processes: 22/22/22/22/21/21/21/21), so every pair
  is used; only a batch with fewer pairs than processes (or fewer than 2) is left out of that epoch - a different one
  each epoch, as the shuffle changes;
- **hard negatives** (``hard_negatives``): one BM25 negative per query, chosen for the *global* batch (never a passage
  of that batch, positive or already chosen, whichever process holds it) and drawn afresh every epoch from the query's
  mined list; each process then takes the negatives of its own queries. So N processes x B pairs see exactly the
  passages one process with N x B pairs sees;
- several processes (``torchrun``): each takes its share of every global batch, the representations of all processes
  are gathered before the loss, so every query meets every passage of the global batch as a negative (the paper's
  64 x 8 = 512), and gradients are averaged by ``DistributedDataParallel``. The gathered copies carry no gradient, so
  each process computes the whole loss and back-propagates through its own slice; the loss is scaled by the number of
  processes to undo DDP's averaging - together exactly the gradient of one process holding the whole batch, whatever
  the shares' sizes;
- ``grad_cache_chunk`` (GradCache, Gao et al. 2021): a process's queries are split into near-equal groups of at most
  that many, each group encoded with its own positives and negatives (never an empty group) first without a graph;
  the loss and its gradient with respect to the representations are computed on the whole batch, then each group is
  re-encoded with a graph (same random state) and back-propagated with its slice of that gradient - a batch larger
  than memory, with all its in-batch negatives intact;
- low-precision weights (``precision: bf16``): AdamW updates fp32 **master copies** of the parameters and writes them
  back rounded, so a 3e-5 update is not lost to bf16's 8-bit mantissa;
- a checkpoint after every epoch (``last``, with optimizer state) and of the best epoch (``best``), so a killed run
  resumes from the last finished epoch; nothing else is kept;
- validation on held-out training pairs after every epoch, keeping the best epoch (the paper keeps the best of 5);
  with ``patience`` > 0, training stops once validation has not improved for that many epochs (``epochs`` is then the
  cap). Validation's working memory is bounded (:func:`validation_scores`), whatever the vocabulary and pooling;
- progress: a bar with loss and ETA on a terminal, a line every ``PROSPER_BENCH_PROGRESS_SECONDS`` (30) otherwise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from retrievers.options import above, at_least, between, check_config

log = logging.getLogger("benchmark.training")

#: Bound on validation's working memory beyond the model (query vectors kept + one micro-batch of passages).
VALIDATION_MEMORY_BYTES = int(float(os.environ.get("PROSPER_BENCH_VALIDATION_MEMORY_MB", "512")) * 2**20)


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


def info_nce(q: torch.Tensor, d: torch.Tensor, targets: torch.Tensor | None = None, scale: float = 1.0
             ) -> torch.Tensor:
    """InfoNCE with in-batch negatives: query i's positive is passage ``targets[i]`` (default i); every other passage
    of the (gathered) batch is a negative."""
    scores = (q @ d.T) * scale
    if targets is None:
        targets = torch.arange(q.shape[0], device=q.device)
    return torch.nn.functional.cross_entropy(scores, targets.to(q.device))


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


# ------------------------------------------------------------------------------------------------------ batching
Triple = tuple[str, str, str | None]  # (query, positive passage, hard negative or None)


def choose_negatives(batch: list[tuple[str, str]], negatives: dict[str, list[str]], rng: random.Random
                     ) -> list[str | None]:
    """One hard negative per query of a *global* batch, none of them a passage of the batch (a positive, or a negative
    already chosen for another query): after gathering, no query may meet its own positive as a negative. Each query's
    choice starts at a random place in its mined list, so it changes from epoch to epoch."""
    taken = {p for _, p in batch}
    chosen: list[str | None] = []
    for query, _ in batch:
        candidates = negatives.get(query) or []
        choice = None
        if candidates:
            start = rng.randrange(len(candidates))
            choice = next((c for c in candidates[start:] + candidates[:start] if c not in taken), None)
        if choice is not None:
            taken.add(choice)
        chosen.append(choice)
    return chosen


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


class EpochPlan:
    """The global batches of every epoch, the same on every process (each derives them from the seed and epoch)."""

    def __init__(self, pairs: list[tuple[str, str]], batch_size: int, processes: int, seed: int,
                 negatives: dict[str, list[str]] | None = None):
        self.pairs, self.processes, self.seed = pairs, processes, seed
        self.global_batch = batch_size * processes
        self.negatives = negatives or {}

    def batches(self, epoch: int) -> list[list[Triple]]:
        rng = random.Random(self.seed * 1000 + epoch)
        out = []
        for batch in _batches(self.pairs, self.global_batch, rng):
            if len(batch) < max(2, self.processes):  # every process needs a query: left to another epoch
                continue
            chosen = choose_negatives(batch, self.negatives, rng) if self.negatives else [None] * len(batch)
            out.append([(q, p, n) for (q, p), n in zip(batch, chosen, strict=True)])
        return out

    def steps(self, epoch: int) -> int:
        return len(self.batches(epoch))


@dataclass
class LocalBatch:
    """One process's share of a global batch: its queries, their positives and (optionally) hard negatives."""

    queries: list[str]
    positives: list[str]
    negatives: list[str | None]

    @property
    def passages(self) -> list[str]:
        """Positives first (passage i belongs to query i), then the hard negatives that exist."""
        return self.positives + [n for n in self.negatives if n is not None]

    def groups(self, n: int) -> list[tuple[LocalBatch, list[int]]]:
        """``n`` near-equal query groups (GradCache), each with its own positives and negatives, and the position of
        each of its passages in :attr:`passages` - so no group is ever without a query or a passage."""
        from retrievers.sharding import shard_bounds

        negative_at, at = {}, len(self.positives)
        for i, negative in enumerate(self.negatives):
            if negative is not None:
                negative_at[i], at = at, at + 1
        out = []
        for g in range(n):
            start, stop = shard_bounds(len(self.queries), g, n)
            if start == stop:
                continue
            part = LocalBatch(self.queries[start:stop], self.positives[start:stop], self.negatives[start:stop])
            rows = list(range(start, stop)) + [negative_at[i] for i in range(start, stop) if i in negative_at]
            out.append((part, rows))
        return out


def local_batch(batch: list[Triple], rank: int, size: int) -> LocalBatch:
    """This process's contiguous, near-equal share of a global batch (sizes differ by at most one)."""
    from retrievers.sharding import shard_bounds

    start, stop = shard_bounds(len(batch), rank, size)
    mine = batch[start:stop]
    return LocalBatch([q for q, _, _ in mine], [p for _, p, _ in mine], [n for _, _, n in mine])


# ---------------------------------------------------------------------------------------------------- validation
def _compact(vectors: np.ndarray) -> np.ndarray | sp.csr_matrix:
    """Sparse rows when that is smaller (windowed sparse representations), dense rows otherwise."""
    density = np.count_nonzero(vectors) / max(1, vectors.size)
    return sp.csr_matrix(vectors) if density < 0.25 else vectors


def _nbytes(matrix: np.ndarray | sp.csr_matrix) -> int:
    if sp.issparse(matrix):
        return matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    return matrix.nbytes


def validation_scores(model: Trainable, queries: Sequence[str], candidates: Sequence[str],
                      memory_bytes: int = VALIDATION_MEMORY_BYTES) -> np.ndarray:
    """(queries x candidates) scores, computed with bounded memory whatever the vocabulary size and pooling.

    Query vectors are kept (sparse when that is smaller) in groups of at most half of ``memory_bytes``; passages are
    encoded in micro-batches of ``model.validation_batch_size`` (default 16) and scored against the group at once, so
    no candidate's vocabulary-sized vector outlives its micro-batch. A group that does not fit means one more pass over
    the candidates, never more memory.
    """
    from retrievers.batching import length_batches

    batch = max(1, int(getattr(model, "validation_batch_size", 16)))
    out = np.empty((len(queries), len(candidates)), dtype=np.float32)
    query_batches = length_batches(queries, batch)  # similar lengths together: little padding
    candidate_batches = length_batches(candidates, batch)
    done = 0
    with torch.no_grad():
        while done < len(query_batches):
            group, rows, used = [], [], 0
            while done < len(query_batches) and (not group or used < memory_bytes // 2):
                indices = query_batches[done]
                vectors = _compact(model.scoring_vectors([queries[i] for i in indices], "query").float().cpu().numpy())
                group.append(vectors)
                rows.extend(indices)
                used += _nbytes(vectors)
                done += 1
            q = sp.vstack(group, format="csr") if any(sp.issparse(g) for g in group) else np.vstack(group)
            for indices in candidate_batches:
                d = model.scoring_vectors([candidates[i] for i in indices], "doc").float().cpu().numpy()
                out[np.ix_(rows, indices)] = np.asarray(q @ d.T, dtype=np.float32)
    return out


def _mrr(model: Trainable, pairs: list[tuple[str, str]], distractors: Sequence[str] = (),
         memory_bytes: int = VALIDATION_MEMORY_BYTES) -> float:
    """Validation: MRR of each held-out query's positive among the held-out positives plus ``distractors``.

    Why distractors: ranked only among their own ~100 positives, the held-out queries saturate (every epoch scores
    ~0.95 and the "best" epoch is noise); the paper validates on 500 training queries against a real candidate set.
    """
    positives = list(dict.fromkeys(p for _, p in pairs))
    column = {p: i for i, p in enumerate(positives)}
    candidates = positives + [p for p in dict.fromkeys(distractors) if p not in column]
    scores = validation_scores(model, [q for q, _ in pairs], candidates, memory_bytes)
    positive = scores[np.arange(len(pairs)), [column[p] for _, p in pairs]]
    # ties count against the positive: a collapsed model (all scores equal) must score ~0, not a perfect 1.0
    ranks = (scores >= positive[:, None]).sum(axis=1)
    return float((1.0 / ranks).mean())


def validation_distractors(validation: list[tuple[str, str]], corpus_passages: Sequence[str] | None, total: int,
                           seed: int) -> list[str]:
    """A seeded sample of corpus passages, none a held-out positive, filling the candidate set up to ``total``."""
    held_out = {p for _, p in validation}
    pool = [p for p in dict.fromkeys(corpus_passages or ()) if p not in held_out]
    need = max(0, min(total - len(held_out), len(pool)))
    return random.Random(seed).sample(pool, need) if need else []


# ------------------------------------------------------------------------------------------------------ precision
class MasterWeights:
    """fp32 master copies of low-precision (bf16/fp16) parameters: the optimizer updates the copies, which are written
    back rounded after every step. Without them a 3e-5 AdamW update of a bf16 weight of size 0.02 (spacing 1.2e-4)
    rounds away. fp32 parameters are their own master (no copy)."""

    def __init__(self, parameters: list[torch.nn.Parameter]):
        self.parameters = parameters
        self.master = [p if p.dtype == torch.float32 else p.detach().float().clone().requires_grad_(True)
                       for p in parameters]
        self.copies = sum(m is not p for m, p in zip(self.master, parameters, strict=True))

    def gradients_in(self) -> None:
        for p, m in zip(self.parameters, self.master, strict=True):
            if m is not p:
                m.grad = None if p.grad is None else p.grad.float()

    @torch.no_grad()
    def weights_out(self) -> None:
        for p, m in zip(self.parameters, self.master, strict=True):
            if m is not p:
                p.copy_(m)

    def zero_grad(self) -> None:
        for p, m in zip(self.parameters, self.master, strict=True):
            p.grad = None
            m.grad = None


# --------------------------------------------------------------------------------------------------------- train
def adamw(parameters: list[torch.Tensor], config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (the paper's optimizer), fused where torch has a fused kernel for the device: one pass over the weights
    instead of a dozen (measured on e5-small, 120M parameters, 2 CPU cores: 1.2 s -> 0.06 s per step)."""
    try:
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, ValueError):  # no fused kernel for these tensors: the multi-tensor one
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)


def train(model: Trainable, pairs: list[tuple[str, str]], config: TrainConfig, work_dir: Path,
          on_epoch: Callable[[int, dict[str, float]], None] | None = None,
          corpus_passages: list[str] | None = None) -> dict[str, Any]:
    """Train ``model`` on ``pairs``; checkpoints under ``work_dir``; returns a summary for the result file.

    ``forward(queries, passages)`` gets a batch's positives first (passage i belongs to query i), then, with
    ``hard_negatives``, the BM25 negatives of its queries mined from ``corpus_passages``: every model's InfoNCE treats
    all passages that are not a query's positive as its negatives. Under ``torchrun`` every process calls this (see
    the module docstring); ``config.batch_size`` is the batch *per process*.
    """
    from retrievers.sharding import barrier, world

    check_config(config, "train.")
    rank, size = world()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    pairs = pairs[:]
    rng.shuffle(pairs)
    n_val = min(config.validation_pairs, len(pairs) // 5)
    validation, pairs = pairs[:n_val], pairs[n_val:]
    if config.max_pairs > 0:
        pairs = pairs[:config.max_pairs]
    distractors = validation_distractors(validation, corpus_passages, config.validation_candidates, config.seed)
    negatives = (mine_bm25_negatives(pairs, corpus_passages or [p for _, p in pairs], config.hard_negative_depth,
                                     config.seed) if config.hard_negatives else {})
    plan = EpochPlan(pairs, config.batch_size, size, config.seed, negatives)
    first = plan.steps(0)
    if first == 0:
        raise ValueError(f"too few training pairs: {len(pairs)} pairs give no batch of at least {max(2, size)} "
                         f"(batch_size {config.batch_size} x {size} processes)")
    epochs = max(config.epochs, math.ceil(config.min_steps / first))
    steps_per_epoch = [first] + [plan.steps(e) for e in range(1, epochs)]
    total = sum(steps_per_epoch)
    warmup = max(1, int(config.warmup_fraction * total))
    model.steps_per_epoch = total / epochs  # the FLOPS regulariser's warm-up is counted in epochs
    parameters = [p for p in model.parameters() if p.requires_grad]
    master = MasterWeights(parameters)
    optimizer = adamw(master.master, config)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    net = _distributed(model) if size > 1 else model
    state_file = work_dir / "trainer_state.json"
    history: list[dict[str, float]] = []
    start_epoch, step, best, since_best, stopped = 0, 0, -1.0, 0, False
    if state_file.exists():  # resume after an interruption
        state = json.loads(state_file.read_text())
        start_epoch, step, best, history = state["epoch"], state["step"], state["best"], state["history"]
        since_best, stopped = state.get("since_best", 0), state.get("stopped", False)
        model.load_weights(work_dir / "last")
        master = MasterWeights(parameters)  # the masters restart from the checkpoint's (rounded) weights
        optimizer = adamw(master.master, config)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
        if start_epoch < epochs and not stopped:
            optimizer.load_state_dict(torch.load(work_dir / "last" / "optimizer.pt", weights_only=True))
            schedule.load_state_dict(torch.load(work_dir / "last" / "scheduler.pt", weights_only=True))
        if rank == 0:
            _say(f"{_label(work_dir)}: resuming from the checkpoint after epoch {start_epoch} of {epochs}")
    progress = _Progress(_label(work_dir), total, step, enabled=rank == 0)
    for epoch in range(start_epoch, epochs):
        if stopped:
            break
        model.train(True)
        totals: dict[str, float] = {}
        batches = plan.batches(epoch)
        for batch in batches:
            mine = local_batch(batch, rank, size)
            master.zero_grad()
            loss, parts = _step(net, model, mine, step, total, config.grad_cache_chunk)
            master.gradients_in()
            torch.nn.utils.clip_grad_norm_(master.master, config.max_grad_norm)
            optimizer.step()
            master.weights_out()
            schedule.step()
            if hasattr(model, "after_step"):
                model.after_step()
            step += 1
            for key, value in {"loss": float(loss.detach()), **parts}.items():
                totals[key] = totals.get(key, 0.0) + value
            progress.update(epoch, epochs, float(loss.detach()))
        model.train(False)
        record = {k: v / max(1, len(batches)) for k, v in totals.items()}
        record["epoch"] = epoch + 1
        record["pairs"] = sum(len(b) for b in batches)
        if rank == 0:
            if validation:
                record["val_mrr"] = _mrr(model, validation, distractors)
            progress.epoch_done(record)
            improved = not validation or record["val_mrr"] > best
            if improved:
                best, since_best = record.get("val_mrr", best), 0
            else:
                since_best += 1
            stopped = bool(validation) and config.patience > 0 and since_best >= config.patience and epoch + 1 < epochs
            final = stopped or epoch + 1 == epochs  # a finished training never resumes: no optimizer state to keep
            _save(model, work_dir / "last", *((None, None) if final else (optimizer, schedule)))
            if improved:
                _link_checkpoint(work_dir / "last", work_dir / "best")
            history.append(record)
            tmp = state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"epoch": epoch + 1, "step": step, "best": best, "history": history,
                                       "since_best": since_best, "stopped": stopped}))
            os.replace(tmp, state_file)
            if stopped:
                progress.say(f"validation has not improved for {config.patience} epochs: stopping after epoch "
                             f"{epoch + 1} of at most {epochs}")
            if on_epoch:  # after the checkpoint: whatever the callback does, this epoch is kept
                on_epoch(epoch + 1, record)
        barrier()  # every process continues from rank 0's checkpoint decision
        if rank != 0:
            state = json.loads(state_file.read_text())
            history, stopped = state["history"], state["stopped"]
    progress.close()
    model.load_weights(work_dir / "best")
    model.train(False)
    if rank == 0:  # the optimizer state of a finished training is dead weight (24 GB for a 3B model)
        for name in ("optimizer.pt", "scheduler.pt"):
            (work_dir / "last" / name).unlink(missing_ok=True)
    best_epoch = max(history, key=lambda r: r.get("val_mrr", r["epoch"]))["epoch"] if history else None
    return {"config": asdict(config), "epochs_run": len(history), "epochs_cap": epochs, "stopped_early": stopped,
            "pairs": len(pairs), "validation_pairs": len(validation),
            "validation_candidates": len(validation) and len({p for _, p in validation}) + len(distractors),
            "processes": size, "global_batch": plan.global_batch, "steps": step, "scheduled_steps": total,
            "best_epoch": best_epoch, "master_weights": master.copies > 0,
            "last_batch": "shared across the processes; a batch with fewer pairs than processes is left out",
            "history": history}


# ------------------------------------------------------------------------------------------- one optimizer step
def _distributed(model):
    """``DistributedDataParallel`` around ``model`` (gradients averaged across processes)."""
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    # find_unused_parameters: e.g. BERT's pooler, or the LRN head of a model that applies it to one side only.
    # broadcast_buffers=False: DDP would otherwise broadcast buffers (e.g. rotary frequencies, constants here) in every
    # forward - a collective - and GradCache's processes may run different numbers of forwards (a 4-query share in
    # groups of 3 runs two, a 3-query share one): with it, forwards need no collective, and each process's one
    # synchronised backward meets the others'.
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True, broadcast_buffers=False)


def _step(net, model: Trainable, batch: LocalBatch, step: int, total: int, chunk: int
          ) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward, loss over the gathered global batch, backward (optionally GradCache in groups); returns the loss."""
    from retrievers.sharding import world

    _, size = world()
    if chunk <= 0 or len(batch.queries) <= chunk:
        local = net(batch.queries, batch.passages)
        everything, targets = gather_representations(local)
        loss, parts = model.batch_loss(everything, targets, step, total)
        (loss * size).backward()
        return loss, parts
    groups = batch.groups(math.ceil(len(batch.queries) / chunk))
    states, cached = [], []
    with torch.no_grad():  # 1. representations, group by group, without a graph
        for part, _ in groups:
            states.append(_RandomState())
            cached.append(model(part.queries, part.passages))
    order = torch.tensor([row for _, rows in groups for row in rows])  # position in batch.passages of each row
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order))
    local = {}
    for key in cached[0]:
        joined = torch.cat([c[key] for c in cached])
        local[key] = joined if key.startswith("q") else joined[inverse.to(joined.device)]
        if local[key].is_floating_point():
            local[key].requires_grad_(True)
    everything, targets = gather_representations(local)
    loss, parts = model.batch_loss(everything, targets, step, total)  # 2. the loss on the whole batch
    (loss * size).backward()
    grads = {k: v.grad for k, v in local.items() if v.is_floating_point() and v.grad is not None}
    q_at = 0
    for i, (part, rows) in enumerate(groups):  # 3. each group again, with its slice of the gradient
        sync = contextlib.nullcontext() if (i == len(groups) - 1 or net is model) else net.no_sync()
        with sync, states[i].restored():
            reps = net(part.queries, part.passages)
            terms = []
            for key, grad in grads.items():
                piece = grad[q_at:q_at + len(part.queries)] if key.startswith("q") else grad[torch.tensor(rows)]
                terms.append((reps[key] * piece).sum())
            torch.stack(terms).sum().backward()
        q_at += len(part.queries)
    return loss, parts


class _RandomState:
    """The CPU and CUDA random states at creation, restored for a recomputation (dropout must drop the same units)."""

    def __init__(self):
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    @contextlib.contextmanager
    def restored(self):
        cpu, cuda = torch.get_rng_state(), (torch.cuda.get_rng_state_all() if self.cuda is not None else None)
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        try:
            yield
        finally:
            torch.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)


def gather_representations(local: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every process's representations, concatenated in rank order, and each query's positive passage index.

    This process's own slice is its own tensor (gradients flow into it); the others' are copies. Processes may hold
    different numbers of queries and passages (the shared last batch, hard negatives), so sizes are exchanged first and
    tensors padded to gather.
    """
    from retrievers.sharding import world

    rank, size = world()
    n_q = next((v.shape[0] for k, v in local.items() if k.startswith("q")), 0)
    n_d = next((v.shape[0] for k, v in local.items() if k.startswith("d")), 0)
    device = next(iter(local.values())).device
    if size == 1:
        return local, torch.arange(n_q, device=device)
    import torch.distributed as dist

    counts = torch.tensor([n_q, n_d], device=device)
    all_counts = [torch.zeros_like(counts) for _ in range(size)]
    dist.all_gather(all_counts, counts)
    q_sizes = [int(c[0]) for c in all_counts]
    d_sizes = [int(c[1]) for c in all_counts]
    gathered = {}
    for key, value in local.items():
        sizes = q_sizes if key.startswith("q") else d_sizes
        padded = torch.zeros((max(sizes), *value.shape[1:]), dtype=value.dtype, device=device)
        padded[:value.shape[0]] = value.detach()
        parts = [torch.zeros_like(padded) for _ in range(size)]
        dist.all_gather(parts, padded)
        parts = [part[:n] for part, n in zip(parts, sizes, strict=True)]
        parts[rank] = value
        gathered[key] = torch.cat(parts)
    d_offsets = [sum(d_sizes[:r]) for r in range(size)]
    targets = torch.cat([torch.arange(n, device=device) + d_offsets[r] for r, n in enumerate(q_sizes)])
    return gathered, targets


# ------------------------------------------------------------------------------------------------------ progress
def _label(work_dir: Path) -> str:
    """The cache entry (and fold) a training belongs to, e.g. ``prosper-3ed4228e07e2`` or ``splade-... fold-1``."""
    parent = work_dir.parent
    return f"{parent.parent.name} {parent.name}" if parent.name.startswith("fold-") else parent.name


def _say(line: str) -> None:
    tqdm.write(line, file=sys.stderr)


class _Progress:
    """A bar with loss and ETA on a terminal; otherwise one line every ``PROSPER_BENCH_PROGRESS_SECONDS`` (30)."""

    def __init__(self, label: str, total: int, done: int, enabled: bool):
        self.label, self.total, self.start_step = label, total, done
        self.enabled = enabled
        self.interactive = enabled and sys.stderr.isatty()
        self.every = float(os.environ.get("PROSPER_BENCH_PROGRESS_SECONDS", "30"))
        self.started = self.last = time.monotonic()
        self.done = done
        self.bar = tqdm(total=total, initial=done, desc=f"training {label}", unit="step", file=sys.stderr,
                        dynamic_ncols=True) if self.interactive else None

    def update(self, epoch: int, epochs: int, loss: float) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{loss:.4f}", refresh=False)
            self.bar.update(1)
        elif self.enabled and time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            elapsed = self.last - self.started
            rate = (self.done - self.start_step) / max(elapsed, 1e-9)
            eta = (self.total - self.done) / max(rate, 1e-9)
            _say(f"training {self.label}: epoch {epoch + 1}/{epochs}, step {self.done}/{self.total} "
                 f"({100 * self.done / self.total:.0f}%), loss {loss:.4f}, {_duration(elapsed)} elapsed, "
                 f"ETA {_duration(eta)}")

    def epoch_done(self, record: dict[str, float]) -> None:
        if not self.enabled:
            return
        val = f", validation MRR {record['val_mrr']:.4f}" if "val_mrr" in record else ""
        _say(f"training {self.label}: epoch {record['epoch']} done, loss {record.get('loss', float('nan')):.4f}{val}")

    def say(self, line: str) -> None:
        if self.enabled:
            _say(f"training {self.label}: {line}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


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


def _link_checkpoint(source: Path, target: Path) -> None:
    """``target`` := the model files of ``source`` (not its optimizer state), as hard links where the file system has
    them. Why: "best" is usually the epoch just saved as "last", and writing the same 470 MB (e5-small) twice per epoch
    cost about 1.4 s of each epoch on 2 CPU cores. The links stay valid: the next ``_save`` writes "last" anew into a
    temporary folder and replaces it, never rewriting a file in place."""
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, tmp, copy_function=link, ignore=shutil.ignore_patterns("optimizer.pt", "scheduler.pt"))
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def quadratic_warmup(step: int, horizon: float) -> float:
    """0 -> 1 quadratically over the first ``horizon`` steps (the FLOPS lambda schedule), then 1."""
    return min(1.0, ((step + 1) / max(1.0, horizon)) ** 2)
