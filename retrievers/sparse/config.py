"""A learned sparse retriever's settings: backbone, pooling, LRN, LFW, normalisation, FLOPS weights, serving -
every SPLADE / SP-Qwen / PROSPER variant of the registry is one of these, never a copy of the model code."""

from __future__ import annotations

from dataclasses import dataclass, field

from retrievers.index.inverted_index import ALGORITHMS
from retrievers.options import at_least, choice, window
from retrievers.resources.hub import WEIGHT_SOURCES
from retrievers.resources.model_loading import (
    PRECISIONS,
)
from retrievers.sparse.ops import NORMALISATIONS
from retrievers.training.config import TrainConfig, paper_training

DEFAULT_IDS = {"bert": "bert-base-chinese", "qwen2": "Qwen/Qwen2.5-3B", "xlmr": "intfloat/multilingual-e5-small"}
CAUSAL = ("qwen2",)
OUTPUT_VOCABULARY_FILE = "output_vocabulary.json"


@dataclass
class SparseScratch:
    hidden_size: int = at_least(128, 1)
    layers: int = at_least(2, 1)
    heads: int = at_least(4, 1)
    kv_heads: int = at_least(2, 1)
    intermediate_size: int = at_least(256, 1)
    # Initial bias of the vocabulary projection (BERT's MLM decoder bias; causal backbones have none). A freshly
    # initialised head gives logits of std ~0.23 around 0, so max pooling over a passage activates nearly the whole
    # vocabulary (21k of 22k terms): dot products in the thousands, a first InfoNCE loss near 100, and within one
    # epoch every ReLU dies (loss stuck at ln(batch)). A negative bias starts the model sparse, as a pretrained MLM
    # head is (most of its logits are negative). 0.0 keeps the plain initialisation.
    output_bias: float = 0.0
    # "seen": the real tokenizer with its ids renumbered onto the tokens of the training texts (a scratch model learns
    # nothing about the others; see tokenization.VocabularySubset); "full": every token of the real vocabulary
    vocabulary: str = choice("seen", "full")


@dataclass
class SparseConfig:
    backbone: str = choice("qwen2", "bert", "xlmr")
    model_id: str | None = None  # default: bert-base-chinese / Qwen/Qwen2.5-3B / intfloat/multilingual-e5-small
    model_path: str | None = None  # a folder written by save_pretrained (the real weights)
    pooling: str = choice("last", "max")
    echo: bool = False
    bidirectional: bool = False
    lrn: str = choice("max", "none", "add")
    lrn_side: str = choice("both", "query", "doc")
    lfw_query: int | None = window(256)  # None: no window
    lfw_doc: int | None = window(512)
    lfw_dynamic: bool = False
    lfw_dynamic_query: tuple[int, ...] = at_least((256, 128, 64), 1)
    lfw_dynamic_doc: tuple[int, ...] = at_least((512, 256, 128), 1)
    lfw_at_inference: bool = True
    normalisation: str = choice(*NORMALISATIONS)
    lambda_q: float = at_least(5e-3, 0)
    lambda_d: float = at_least(1e-3, 0)
    flops_warmup_epochs: float = at_least(1.5, 0)
    train_terms: str = choice("all", "literal", "expansion")
    match_terms: str = choice("all", "literal", "expansion")
    max_length: int = at_least(64, 1)
    output_vocabulary: str = choice("full", "seen")  # pretrained models; scratch models: scratch.vocabulary
    new_head_bias: float | None = None  # initial bias of a vocabulary head the checkpoint lacks (e5 has no MLM head)
    scratch: SparseScratch = field(default_factory=SparseScratch)
    allow_scratch: bool = True
    weights_source: str = choice(*WEIGHT_SOURCES)  # auto: model_path, HF cache, Hub, packaged port, in that order
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, batch_size=32, lr=1e-3))
    train_pretrained: TrainConfig = field(default_factory=paper_training)
    precision: str = choice(*PRECISIONS)  # auto: bf16 autocast on a GPU, fp32 on the CPU
    gradient_checkpointing: bool = False
    query_top_m: int | None = at_least(None, 1, optional=True)
    block_size: int = at_least(64, 1)
    algorithm: str = choice("auto", *ALGORITHMS)  # auto: bmm, or two-phase for k > 50 / dense lists
    serving: str = choice("exact", "approximate")  # approximate: pruned lists chosen from the impact histogram
    encode_batch_size: int = at_least(64, 1)
    threads: int = at_least(2, 1)
    latency_queries: int = at_least(1000, 0)
    device: str = "auto"  # training and encoding: auto (a CUDA GPU when present) | cpu | cuda[:n]

    def check(self) -> None:
        """Settings that contradict each other, refused before anything is built."""
        if self.backbone not in CAUSAL and (self.echo or self.bidirectional):
            raise ValueError(f"echo and bidirectional apply to causal backbones (qwen2), not {self.backbone}")
        if self.backbone == "xlmr" and self.allow_scratch and self.model_path is None \
                and self.weights_source not in ("auto", "package"):
            raise ValueError("the xlmr backbone has no scratch preset: it exists to put heads on pretrained e5")

    def weights_id(self) -> str:
        """The Hugging Face id of the weights this config loads (its real name, whatever loads in its place)."""
        return self.model_id or DEFAULT_IDS.get(self.backbone, self.backbone)
