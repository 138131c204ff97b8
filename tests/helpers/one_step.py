"""One training step of a tiny scratch PROSPER on this process's slice of a batch; writes the loss and gradients.

Run alone (the whole batch) or under ``torchrun --nproc_per_node N`` (each process its 1/N of the batch): the
trainer's gathered InfoNCE + DDP must give the same loss and the same gradients either way.
"""

import json
import sys
from pathlib import Path

import torch

from retrievers.sharding import barrier, world
from retrievers.sparse import SparseConfig, SparseEncoder, SparseScratch
from retrievers.training import TrainConfig, _distributed, _step


def main(out: Path, backbone: str, chunk: int) -> None:
    rank, size = world()
    texts = json.loads((out / "batch.json").read_text())
    queries, passages = texts["queries"], texts["passages"]
    config = SparseConfig(backbone=backbone, pooling="max" if backbone == "bert" else "last",
                          scratch=SparseScratch(hidden_size=16, layers=1, heads=2, kv_heads=1, intermediate_size=32,
                                                output_bias=-0.5 if backbone == "bert" else 0.0),
                          train=TrainConfig(epochs=1, seed=3), max_length=24, device="cpu", threads=1)
    torch.manual_seed(0)
    encoder = SparseEncoder(config, texts=queries + passages)
    encoder.train(True)
    share = len(queries) // size
    mine = slice(rank * share, (rank + 1) * share)
    net = _distributed(encoder) if size > 1 else encoder
    if chunk < 0:  # reference for GradCache: the same chunks encoded in order, in one graph, one backward
        n = -chunk
        reps = [encoder(queries[i:i + n], passages[i:i + n]) for i in range(0, len(queries), n)]
        reps = {k: torch.cat([r[k] for r in reps]) for k in reps[0]}
        loss, parts = encoder.batch_loss(reps, torch.arange(len(queries)), 3, 10)
        loss.backward()
    else:
        loss, parts = _step(net, encoder, queries[mine], passages[mine], step=3, total=10, chunk=chunk)
    if rank == 0:
        grads = {n: p.grad for n, p in encoder.named_parameters() if p.grad is not None}
        torch.save({"loss": float(loss), "parts": parts, "grads": grads}, out / f"step-{size}-{chunk}.pt")
    barrier()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
