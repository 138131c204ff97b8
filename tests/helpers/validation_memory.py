"""Validation's memory beyond the model, for a max-pooled model with a 151,936-row vocabulary head at length 64.

Arguments: MODEL_DIR OUT.json. Builds the encoder, resets the kernel's peak-RSS mark (``/proc/self/clear_refs``), runs
the trainer's validation (200 queries against 600 candidates) and writes the peak beyond the model's resident set.
"""

import json
import sys
from pathlib import Path

import torch

from benchmark.data.datasets import load_dataset
from retrievers.sparse import SparseConfig, SparseEncoder
from retrievers.training.pairs import training_pairs
from retrievers.training.validation import validation_mrr


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def main(model_dir: str, out: str) -> None:
    torch.set_num_threads(2)
    demo = load_dataset("demo")
    pairs = training_pairs(demo.train_queries, demo.train_qrels, demo.corpus)[:200]
    long = [(q, (p + " ") * 8) for q, p in pairs]  # passages of at least 64 tokens
    distractors = [(p + " ") * 8 for p in list(demo.corpus.values())[:400]]
    config = SparseConfig(backbone="qwen2", model_path=model_dir, pooling="max", lrn="none", lfw_query=None,
                          lfw_doc=None, normalisation="none", max_length=64, device="cpu")
    encoder = SparseEncoder(config)
    assert encoder.vocab_size == 151_936
    encoder.scoring_vectors(["warm up"], "doc")  # allocator and kernels initialised before the mark
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set (VmHWM) to the current one
    before = rss_kib("VmRSS")
    value = validation_mrr(encoder, long, distractors)
    peak = rss_kib("VmHWM")
    Path(out).write_text(json.dumps({"extra_mib": (peak - before) / 1024, "before_mib": before / 1024,
                                     "val_mrr": value, "candidates": 200 + len(distractors)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
