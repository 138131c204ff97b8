"""Global batches: each epoch's pairs shuffled into batches with no passage twice, split across processes."""

from __future__ import annotations

import random
from dataclasses import dataclass

from retrievers.training.pairs import choose_negatives

Triple = tuple[str, str, str | None]  # (query, positive passage, hard negative or None)


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

