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
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from retrievers.options import check_config
from retrievers.training.batches import EpochPlan, LocalBatch, local_batch
from retrievers.training.checkpoints import link_checkpoint, save_checkpoint
from retrievers.training.config import Trainable, TrainConfig
from retrievers.training.optim import MasterWeights, adamw
from retrievers.training.pairs import mine_bm25_negatives
from retrievers.training.progress import Progress, run_label, say
from retrievers.training.validation import validation_distractors, validation_mrr

log = logging.getLogger("benchmark.training")


# ------------------------------------------------------------------------------------------------------ batching


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
    net = distributed_model(model) if size > 1 else model
    state_file = work_dir / "trainer_state.json"
    history: list[dict[str, float]] = []
    start_epoch, step, best, since_best, stopped = 0, 0, -1.0, 0, False
    resumed_from = None  # the epoch a resumed training took up after (the result file says so)
    if state_file.exists():  # resume after an interruption
        state = json.loads(state_file.read_text())
        start_epoch, step, best, history = state["epoch"], state["step"], state["best"], state["history"]
        since_best, stopped = state.get("since_best", 0), state.get("stopped", False)
        resumed_from = start_epoch
        model.load_weights(work_dir / "last")
        master = MasterWeights(parameters)  # the masters restart from the checkpoint's (rounded) weights
        optimizer = adamw(master.master, config)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
        if start_epoch < epochs and not stopped:
            optimizer.load_state_dict(torch.load(work_dir / "last" / "optimizer.pt", weights_only=True))
            schedule.load_state_dict(torch.load(work_dir / "last" / "scheduler.pt", weights_only=True))
        if rank == 0:
            say(f"{run_label(work_dir)}: resuming from the checkpoint after epoch {start_epoch} of {epochs}")
    progress = Progress(run_label(work_dir), total, step, enabled=rank == 0)
    for epoch in range(start_epoch, epochs):
        if stopped:
            break
        model.train(True)
        totals: dict[str, float] = {}
        batches = plan.batches(epoch)
        for batch in batches:
            mine = local_batch(batch, rank, size)
            master.zero_grad()
            loss, parts = train_step(net, model, mine, step, total, config.grad_cache_chunk)
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
                record["val_mrr"] = validation_mrr(model, validation, distractors)
            progress.epoch_done(record)
            improved = not validation or record["val_mrr"] > best
            if improved:
                best, since_best = record.get("val_mrr", best), 0
            else:
                since_best += 1
            stopped = bool(validation) and config.patience > 0 and since_best >= config.patience and epoch + 1 < epochs
            final = stopped or epoch + 1 == epochs  # a finished training never resumes: no optimizer state to keep
            save_checkpoint(model, work_dir / "last", *((None, None) if final else (optimizer, schedule)))
            if improved:
                link_checkpoint(work_dir / "last", work_dir / "best")
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
    return {"config": asdict(config), "resumed_from_epoch": resumed_from,
            "epochs_run": len(history), "epochs_cap": epochs, "stopped_early": stopped,
            "pairs": len(pairs), "validation_pairs": len(validation),
            "validation_candidates": len(validation) and len({p for _, p in validation}) + len(distractors),
            "processes": size, "global_batch": plan.global_batch, "steps": step, "scheduled_steps": total,
            "best_epoch": best_epoch, "master_weights": master.copies > 0,
            "last_batch": "shared across the processes; a batch with fewer pairs than processes is left out",
            "history": history}


# ------------------------------------------------------------------------------------------- one optimizer step
def distributed_model(model):
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


def train_step(net, model: Trainable, batch: LocalBatch, step: int, total: int, chunk: int
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
            states.append(RandomState())
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


class RandomState:
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


