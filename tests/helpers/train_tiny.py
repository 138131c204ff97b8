"""Train a tiny scratch PROSPER on the demo set with the real trainer, alone or under ``torchrun``.

Arguments: OUT PAIRS BATCH CHUNK NEGATIVES(0/1) EPOCHS VALIDATION. Rank 0 writes OUT/summary.json (the trainer's
summary); every process must get through every epoch, whatever the pair count and world size.
"""

import json
import sys
from pathlib import Path

from benchmark.data.datasets import load_dataset
from retrievers.sharding import world
from retrievers.sparse import SparseConfig, SparseEncoder, SparseScratch
from retrievers.training.config import TrainConfig
from retrievers.training.loop import train
from retrievers.training.pairs import training_pairs


def main(out: Path, n_pairs: int, batch: int, chunk: int, negatives: bool, epochs: int, validation: int) -> None:
    rank, _ = world()
    demo = load_dataset("demo")
    pairs = training_pairs(demo.train_queries, demo.train_qrels, demo.corpus)
    config = SparseConfig(scratch=SparseScratch(hidden_size=16, layers=1, heads=2, kv_heads=1, intermediate_size=32),
                          max_length=24, device="cpu", threads=1)
    schedule = TrainConfig(epochs=epochs, batch_size=batch, lr=1e-3, validation_pairs=validation,
                           validation_candidates=200, max_pairs=n_pairs, grad_cache_chunk=chunk,
                           hard_negatives=negatives, hard_negative_depth=10, patience=0)
    encoder = SparseEncoder(config, texts=[t for pair in pairs for t in pair])
    summary = train(encoder, pairs, schedule, out / "work", corpus_passages=list(demo.corpus.values()))
    if rank == 0:
        (out / "summary.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    a = sys.argv
    main(Path(a[1]), int(a[2]), int(a[3]), int(a[4]), a[5] == "1", int(a[6]), int(a[7]))
