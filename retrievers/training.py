"""The one trainer every trained retriever uses: in-batch negatives, AdamW, linear warm-up, several GPUs if given.

Why one trainer: the paper's comparison is only fair when every model sees the same pairs, seeds, batch size and
schedule. A model supplies ``forward(queries, passages) -> representations`` (a dict of tensors, rows of keys
starting with ``q`` are queries, with ``d`` passages) and ``batch_loss(representations, targets, step, total)``
(InfoNCE + regularisers for retrievers; a per-example loss for DeepCT and Doc2Query); the trainer owns the rest:

- seeded shuffling and initialisation (``torch.manual_seed``), deterministic on CPU;
- AdamW (weight decay 0.1 as in the paper), linear warm-up then linear decay;
- several processes (``torchrun``): each takes its slice of every global batch, the representations of all processes
  are gathered before the loss, so every query meets every passage of the global batch as a negative (the paper's
  64 x 8 = 512), and gradients are averaged by ``DistributedDataParallel``. The gathered copies carry no gradient, so
  each process computes the whole loss and back-propagates through its own slice; the loss is scaled by the number of
  processes to undo DDP's averaging - together exactly the gradient of one process holding the whole batch;
- ``grad_cache_chunk`` (GradCache, Gao et al. 2021): representations of a batch are first computed in chunks without
  a graph, the loss and its gradient with respect to the representations are computed on the whole batch, then each
  chunk is re-encoded with a graph (same random state) and back-propagated with its slice of that gradient - a batch
  larger than memory, with all its in-batch negatives intact;
- a checkpoint after every epoch (``last``, with optimizer state) and of the best epoch (``best``), so a killed run
  resumes from the last finished epoch; nothing else is kept;
- validation on held-out training pairs after every epoch, keeping the best epoch (the paper keeps the best of 5);
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
    grad_cache_chunk: int = 0  # > 0: encode each batch in chunks of this many queries (GradCache); 0: in one pass
    max_pairs: int = 0  # > 0: train on the first this many (shuffled) pairs only - smoke tests, quick looks


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

    def score_pairs(self, queries: Sequence[str], passages: Sequence[str]) -> torch.Tensor: ...

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

    ``forward(queries, passages)`` gets a batch's positives first (passage i belongs to query i), then, with
    ``hard_negatives``, one BM25 negative per query mined from ``corpus_passages``: every model's InfoNCE treats all
    passages that are not a query's positive as its negatives. Under ``torchrun`` every process calls this (see the
    module docstring); ``config.batch_size`` is the batch *per process*.
    """
    from retrievers.sharding import barrier, world

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
    global_batch = config.batch_size * size
    steps_per_epoch = len(_batches(pairs, global_batch, random.Random(0)))
    epochs = max(config.epochs, math.ceil(config.min_steps / max(1, steps_per_epoch)))
    total = max(1, steps_per_epoch * epochs)
    warmup = max(1, int(config.warmup_fraction * total))
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    negatives = (mine_bm25_negatives(pairs, corpus_passages or [p for _, p in pairs], config.hard_negative_depth,
                                     config.seed) if config.hard_negatives else {})
    net = _distributed(model) if size > 1 else model
    state_file = work_dir / "trainer_state.json"
    history: list[dict[str, float]] = []
    start_epoch, step, best = 0, 0, -1.0
    if state_file.exists():  # resume after an interruption
        state = json.loads(state_file.read_text())
        start_epoch, step, best, history = state["epoch"], state["step"], state["best"], state["history"]
        model.load_weights(work_dir / "last")
        if start_epoch < epochs:
            optimizer.load_state_dict(torch.load(work_dir / "last" / "optimizer.pt", weights_only=True))
            schedule.load_state_dict(torch.load(work_dir / "last" / "scheduler.pt", weights_only=True))
        if rank == 0:
            _say(f"{_label(work_dir)}: resuming from the checkpoint after epoch {start_epoch} of {epochs}")
    progress = _Progress(_label(work_dir), total, step, enabled=rank == 0)
    for epoch in range(start_epoch, epochs):
        model.train(True)
        epoch_rng = random.Random(config.seed * 1000 + epoch)
        totals: dict[str, float] = {}
        batches = _batches(pairs, global_batch, epoch_rng)
        for batch in batches:
            mine = batch[rank * config.batch_size:(rank + 1) * config.batch_size]
            passages = _with_negatives(mine, negatives) if negatives else [p for _, p in mine]
            optimizer.zero_grad()
            loss, parts = _step(net, model, [q for q, _ in mine], passages, step, total, config.grad_cache_chunk)
            torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
            optimizer.step()
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
        if rank == 0:
            if validation:
                record["val_mrr"] = _mrr(model, validation, distractors)
            progress.epoch_done(record)
            if not validation or record["val_mrr"] > best:
                best = record.get("val_mrr", best)
                _save(model, work_dir / "best")
            _save(model, work_dir / "last", optimizer, schedule)
            history.append(record)
            tmp = state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"epoch": epoch + 1, "step": step, "best": best, "history": history}))
            os.replace(tmp, state_file)
            if on_epoch:  # after the checkpoint: whatever the callback does, this epoch is kept
                on_epoch(epoch + 1, record)
        barrier()  # every process continues from rank 0's checkpoint decision
        if rank != 0:
            history = json.loads(state_file.read_text())["history"]
    progress.close()
    model.load_weights(work_dir / "best")
    model.train(False)
    if rank == 0:  # the optimizer state of a finished training is dead weight (24 GB for a 3B model)
        for name in ("optimizer.pt", "scheduler.pt"):
            (work_dir / "last" / name).unlink(missing_ok=True)
    best_epoch = max(history, key=lambda r: r.get("val_mrr", r["epoch"]))["epoch"] if history else None
    return {"config": asdict(config), "epochs_run": epochs, "pairs": len(pairs), "validation_pairs": len(validation),
            "validation_candidates": len(validation) and len({p for _, p in validation}) + len(distractors),
            "processes": size, "global_batch": global_batch, "steps": step, "best_epoch": best_epoch,
            "history": history}


# ------------------------------------------------------------------------------------------- one optimizer step
def _distributed(model):
    """``DistributedDataParallel`` around ``model`` (gradients averaged across processes)."""
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    # find_unused_parameters: e.g. BERT's pooler, or the LRN head of a model that applies it to one side only
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def _step(net, model: Trainable, queries: list[str], passages: list[str], step: int, total: int, chunk: int
          ) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward, loss over the gathered global batch, backward (optionally GradCache in chunks); returns the loss."""
    from retrievers.sharding import world

    _, size = world()
    n_chunks = 1 if chunk <= 0 else max(1, math.ceil(len(queries) / chunk))
    if n_chunks == 1:
        local = net(queries, passages)
        everything, targets = gather_representations(local)
        loss, parts = model.batch_loss(everything, targets, step, total)
        (loss * size).backward()
        return loss, parts
    q_chunks, p_chunks = _split(queries, n_chunks), _split(passages, n_chunks)
    states, cached = [], []
    with torch.no_grad():  # 1. representations, chunk by chunk, without a graph
        for qc, pc in zip(q_chunks, p_chunks, strict=True):
            states.append(_RandomState())
            cached.append(model(qc, pc))
    local = {k: torch.cat([c[k] for c in cached]) for k in cached[0]}
    for value in local.values():
        if value.is_floating_point():
            value.requires_grad_(True)
    everything, targets = gather_representations(local)
    loss, parts = model.batch_loss(everything, targets, step, total)  # 2. the loss on the whole batch
    (loss * size).backward()
    grads = {k: v.grad for k, v in local.items() if v.is_floating_point() and v.grad is not None}
    q_at = d_at = 0
    for i, (qc, pc) in enumerate(zip(q_chunks, p_chunks, strict=True)):  # 3. each chunk again, with its gradient
        sync = contextlib.nullcontext() if (i == n_chunks - 1 or net is model) else net.no_sync()
        with sync, states[i].restored():
            reps = net(qc, pc)
            terms = []
            for key, grad in grads.items():
                start, count = (q_at, len(qc)) if key.startswith("q") else (d_at, len(pc))
                terms.append((reps[key] * grad[start:start + count]).sum())
            torch.stack(terms).sum().backward()
        q_at, d_at = q_at + len(qc), d_at + len(pc)
    return loss, parts


def _split(items: list[str], n: int) -> list[list[str]]:
    step = math.ceil(len(items) / n) if items else 0
    return [items[i * step:(i + 1) * step] for i in range(n)]


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
    different numbers of passages (hard negatives), so sizes are exchanged first and tensors padded to gather.
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


def quadratic_warmup(step: int, total_steps: int, warmup_fraction: float) -> float:
    """0 -> 1 quadratically over the first ``warmup_fraction`` of training (the FLOPS lambda schedule)."""
    horizon = max(1.0, warmup_fraction * total_steps)
    return min(1.0, ((step + 1) / horizon) ** 2)


def steps_for_epochs(n_pairs: int, batch_size: int, epochs: float) -> int:
    return int(math.ceil(n_pairs / batch_size) * epochs)
