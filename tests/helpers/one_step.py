"""One training step of a tiny scratch PROSPER on this process's share of a global batch; writes the loss and gradients.

Run alone (the whole batch) or under ``torchrun --nproc_per_node N`` (each process its near-equal share, as the
trainer splits it): the trainer's gathered InfoNCE + DDP must give the same loss and the same gradients either way,
with or without hard negatives and GradCache.

Arguments: OUT BACKBONE CHUNK [NEGATIVES]; OUT/batch.json holds the global batch (queries, passages, negatives).
"""

import json
import sys
from pathlib import Path

import torch

from retrievers.sharding import barrier, world
from retrievers.sparse import SparseConfig, SparseEncoder, SparseScratch
from retrievers.training.batches import local_batch
from retrievers.training.config import TrainConfig
from retrievers.training.loop import distributed_model, train_step


def main(out: Path, backbone: str, chunk: int, with_negatives: bool) -> None:
    rank, size = world()
    texts = json.loads((out / "batch.json").read_text())
    queries, passages = texts["queries"], texts["passages"]
    negatives = texts["negatives"] if with_negatives else [None] * len(queries)
    config = SparseConfig(backbone=backbone, pooling="max" if backbone == "bert" else "last",
                          scratch=SparseScratch(hidden_size=16, layers=1, heads=2, kv_heads=1, intermediate_size=32,
                                                output_bias=-0.5 if backbone == "bert" else 0.0),
                          train=TrainConfig(epochs=1, seed=3), max_length=24, device="cpu", threads=1)
    torch.manual_seed(0)
    encoder = SparseEncoder(config, texts=queries + passages + [n for n in negatives if n])
    encoder.train(True)
    mine = local_batch(list(zip(queries, passages, negatives, strict=True)), rank, size)
    net = distributed_model(encoder) if size > 1 else encoder
    if chunk < 0:  # reference for GradCache: the same groups encoded in order, in one graph, one backward
        groups = mine.groups(-(-len(mine.queries) // -chunk))
        reps = [encoder(part.queries, part.passages) for part, _ in groups]
        order = torch.tensor([row for _, rows in groups for row in rows])
        reps = {k: torch.cat([r[k] for r in reps]) for k in reps[0]}
        reps = {k: v if k.startswith("q") else v[torch.argsort(order)] for k, v in reps.items()}
        loss, parts = encoder.batch_loss(reps, torch.arange(len(queries)), 3, 10)
        loss.backward()
    else:
        loss, parts = train_step(net, encoder, mine, step=3, total=10, chunk=chunk)
    if rank == 0:
        grads = {n: p.grad for n, p in encoder.named_parameters() if p.grad is not None}
        tag = f"{size}-{chunk}-{int(with_negatives)}"
        torch.save({"loss": float(loss), "parts": parts, "grads": grads}, out / f"step-{tag}.pt")
    barrier()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), len(sys.argv) > 4 and sys.argv[4] == "1")
