"""Dense bi-encoders (DPR, BGE, e5) built from sentence-transformers modules and losses, searched through Faiss.

- DPR: BERT (``bert-base-chinese``), CLS pooling, dot product, InfoNCE over in-batch negatives (scale 1).
- BGE: ``BAAI/bge-base-zh-v1.5`` / ``-large``: CLS pooling, L2-normalised, cosine with temperature 0.02 (scale 50,
  as BGE fine-tunes), and BGE-zh's query instruction "为这个句子生成表示以用于检索相关文章：" prepended to queries.
- e5: ``intfloat/multilingual-e5-small``: mean pooling, L2-normalised, "query: " / "passage: " prefixes, temperature
  0.01; zero-shot (``fine_tune: false``) or fine-tuned on the training pairs.

Weights, precision and the training preset follow ``retrievers.resources.model_loading``: the real weights (``model_path``, the
HF cache, the Hub, or a packaged port such as e5's) are fine-tuned with ``train_pretrained`` (the paper's settings);
without them, where allowed, the ``scratch`` preset builds the same architecture family (BERT) at a small size with
the real tokenizer and trains it with ``train``. Either way the shared contrastive trainer sees the same pairs as every
other trained retriever.

Faiss indexes: ``flat`` (exact inner product, the reference), ``hnsw`` and ``ivfpq`` (approximate); for the
approximate ones the recall of the exact top-k is measured against a flat index and reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retrievers.base import (
    Retriever,
    Run,
    Timer,
    device_provenance,
    directory_size,
    latency_summary,
    nested_from_dicts,
    torch_device,
    write_json_atomic,
)
from retrievers.options import above, at_least, choice
from retrievers.resources.hub import WEIGHT_SOURCES, weights_digest
from retrievers.resources.model_loading import (
    PRECISIONS,
    enable_checkpointing,
    precision_plan,
    pretrained_or_scratch,
    training_preset,
)
from retrievers.sharding import encode_corpus, is_main, threads_per_process
from retrievers.training.config import TrainConfig, paper_training
from retrievers.training.loop import train
from retrievers.training.losses import info_nce
from retrievers.training.pairs import training_pairs

BGE_ZH_INSTRUCTION = "为这个句子生成表示以用于检索相关文章："


@dataclass
class ScratchPreset:
    """A small model of the same family, trained from random initialisation when the weights are absent."""

    hidden_size: int = at_least(128, 1)
    layers: int = at_least(2, 1)
    heads: int = at_least(2, 1)
    intermediate_size: int = at_least(512, 1)


@dataclass
class DenseConfig:
    model_id: str = "bert-base-chinese"
    model_path: str | None = None  # a folder written by save_pretrained (the real weights)
    pooling: str = choice("cls", "mean")
    normalize: bool = False
    similarity_scale: float = above(1.0, 0)  # logits = scale * q.d (DPR: 1 with dot product; BGE: 1/0.02 with cosine)
    query_instruction: str = ""  # prepended to queries (BGE's instruction, e5's "query: ")
    passage_prefix: str = ""  # prepended to passages (e5's "passage: ")
    max_length: int = at_least(64, 1)
    fine_tune: bool = True  # false: index with the weights as loaded (a zero-shot row)
    scratch: ScratchPreset = field(default_factory=ScratchPreset)
    allow_scratch: bool = True
    weights_source: str = choice(*WEIGHT_SOURCES)  # auto: model_path, HF cache, Hub, packaged port, in that order
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, batch_size=32, lr=5e-4,
                                                                                    min_steps=600))
    train_pretrained: TrainConfig = field(default_factory=paper_training)
    precision: str = choice(*PRECISIONS)  # auto: bf16 autocast on a GPU, fp32 on the CPU
    gradient_checkpointing: bool = False
    index_type: str = choice("flat", "hnsw", "ivfpq")
    hnsw_m: int = at_least(32, 2)
    hnsw_ef_search: int = at_least(128, 1)
    ivf_nlist: int | None = at_least(None, 1, optional=True)  # default: about 4*sqrt(N)
    ivf_nprobe: int = at_least(8, 1)
    pq_m: int = at_least(16, 1)
    encode_batch_size: int = at_least(128, 1)
    threads: int = at_least(2, 1)
    latency_queries: int = at_least(1000, 0)
    device: str = "auto"  # training and encoding: auto (a CUDA GPU when present) | cpu | cuda[:n]

    def check(self) -> None:
        """Settings that contradict each other, refused before anything is built."""
        if not self.fine_tune and self.allow_scratch:
            raise ValueError("a zero-shot row (fine_tune: false) indexes pretrained weights as they are: "
                             "allow_scratch cannot be true (a scratch model would be untrained)")

    def weights_id(self) -> str:
        """The Hugging Face id of the weights this config loads (its real name, whatever loads in its place)."""
        return self.model_id


class DenseEncoder(torch.nn.Module):
    """A SentenceTransformer (model and pooling modules) under the shared trainer's protocol; its loss is the
    trainer's InfoNCE, as sentence-transformers' MultipleNegativesRankingLoss computes it (scale x similarity)."""

    def __init__(self, config: DenseConfig, model_dir: str | None = None, texts: Sequence[str] | None = None,
                 work_dir: Path | None = None):
        super().__init__()
        from sentence_transformers import SentenceTransformer

        self.config = config
        self.device_ = torch_device(config.device)
        self.plan = precision_plan(config.precision, self.device_)
        if model_dir is not None:  # reopen a trained model
            self.st = SentenceTransformer(str(model_dir), device=str(self.device_), local_files_only=True,
                                          model_kwargs={"dtype": self.plan.load_dtype})
            self.provenance = json.loads((Path(model_dir) / "provenance.json").read_text())
        else:
            self.st, self.provenance = self._build(texts, work_dir)
        if config.gradient_checkpointing:
            enable_checkpointing(self.st[0].auto_model)

    def _build(self, texts, work_dir):
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

        resolved = pretrained_or_scratch(self.config.model_id, self.config.model_path, self.config.allow_scratch,
                                         self.config.weights_source)
        if resolved is None:
            transformer, provenance = self._scratch(texts, work_dir)
        else:
            local = resolved.local_only
            transformer = Transformer(resolved.source, max_seq_length=self.config.max_length,
                                      model_kwargs={"local_files_only": local, "dtype": self.plan.load_dtype},
                                      processor_kwargs={"local_files_only": local},
                                      config_kwargs={"local_files_only": local})
            provenance = dict(resolved.provenance)
            if "path" in provenance:
                provenance["weights_sha256"] = weights_digest(provenance["path"])
        modules = [transformer, Pooling(transformer.get_embedding_dimension(), self.config.pooling)]
        if self.config.normalize:
            modules.append(Normalize())
        return SentenceTransformer(modules=modules, device=str(self.device_)), provenance

    def _scratch(self, texts, work_dir):
        from sentence_transformers.sentence_transformer.modules import Transformer
        from transformers import BertConfig, BertModel

        from retrievers.resources.tokenization import load_tokenizer

        if texts is None or work_dir is None:
            raise ValueError("a scratch model needs training texts and a work folder")
        tokenizer = load_tokenizer("bert-base-chinese", texts)
        preset = self.config.scratch
        bert = BertConfig(vocab_size=len(tokenizer.hf), hidden_size=preset.hidden_size,
                          num_hidden_layers=preset.layers, num_attention_heads=preset.heads,
                          intermediate_size=preset.intermediate_size,
                          max_position_embeddings=max(128, self.config.max_length + 2))
        torch.manual_seed(self.config.train.seed)
        from retrievers.sharding import world

        folder = Path(work_dir) / f"scratch-init-{world()[0]}"  # one per torchrun process: no two writers
        BertModel(bert).save_pretrained(str(folder))
        tokenizer.hf.save_pretrained(str(folder))
        provenance = {"model_id": self.config.model_id, "kind": "scratch", "architecture": "bert",
                      "preset": asdict(preset), "tokenizer": tokenizer.provenance,
                      "note": f"{self.config.model_id} weights absent: small BERT trained from random initialisation"}
        return Transformer(str(folder), max_seq_length=self.config.max_length), provenance

    # -- trainer protocol --------------------------------------------------------------------------------------
    def _features(self, texts: Sequence[str]) -> dict[str, Any]:
        features = self.st.preprocess(list(texts))
        return {k: v.to(self.st.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}

    def query_texts(self, queries: Sequence[str]) -> list[str]:
        return [self.config.query_instruction + q for q in queries]

    def passage_texts(self, passages: Sequence[str]) -> list[str]:
        return [self.config.passage_prefix + p for p in passages]

    def forward(self, queries: Sequence[str], passages: Sequence[str]) -> dict[str, torch.Tensor]:
        """Embeddings of a training batch (the trainer gathers them across processes before the loss)."""
        with self.plan.autocast(self.device_):
            q = self.st(self._features(self.query_texts(queries)))["sentence_embedding"]
            d = self.st(self._features(self.passage_texts(passages)))["sentence_embedding"]
        return {"q": q.float(), "d": d.float()}

    def batch_loss(self, reps, targets, step, total_steps):
        """InfoNCE over in-batch negatives: scale x dot product (cosine when the model normalises)."""
        return info_nce(reps["q"], reps["d"], targets, scale=self.config.similarity_scale), {}

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Vectors of ``texts`` as given (callers add the query instruction / passage prefix), float32."""
        with self.plan.autocast(self.device_):
            vectors = self.st.encode(list(texts), batch_size=batch_size or self.config.encode_batch_size,
                                     convert_to_tensor=True, show_progress_bar=len(texts) > 5000)
        return vectors.float().cpu().numpy()

    def encode_passages(self, passages: Sequence[str]) -> np.ndarray:
        return self.encode(self.passage_texts(passages))

    def scoring_vectors(self, texts, side):
        """Query or passage embeddings (instruction / prefix added): a score is their dot product."""
        texts = self.query_texts(texts) if side == "query" else self.passage_texts(texts)
        return torch.from_numpy(self.encode(texts))

    validation_batch_size = 64

    def save(self, path: Path) -> None:
        self.st.save(str(path))
        (Path(path) / "provenance.json").write_text(json.dumps(self.provenance, ensure_ascii=False, indent=2))

    def load_weights(self, path: Path) -> None:
        from sentence_transformers import SentenceTransformer

        loaded = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.st.load_state_dict(loaded.state_dict())


def build_faiss(vectors: np.ndarray, config: DenseConfig):
    """Build the configured Faiss index over ``vectors`` (inner product)."""
    import faiss

    n, dim = vectors.shape
    if config.index_type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif config.index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = config.hnsw_ef_search
    elif config.index_type == "ivfpq":
        nlist = config.ivf_nlist or max(1, min(int(4 * np.sqrt(n)), n // 39))
        m = config.pq_m if dim % config.pq_m == 0 else 8
        nbits = int(min(8, max(4, np.floor(np.log2(max(n, 16) / 39)))))
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = min(config.ivf_nprobe, nlist)
    else:
        raise ValueError(f"unknown index_type {config.index_type!r}: flat, hnsw or ivfpq")
    index.add(vectors)
    return index


class DenseRetriever(Retriever):
    config_class = DenseConfig
    needs_training = True
    shards_encoding = True

    def __init__(self, config: DenseConfig | None = None):
        super().__init__(config)
        nested_from_dicts(self.config, DenseConfig(), ("scratch", "train", "train_pretrained"))
        self.encoder: DenseEncoder | None = None
        # a zero-shot row trains nothing: one index serves every fold of a cross-validation protocol
        self.needs_training = self.config.fine_tune

    def fit(self, train_queries, train_qrels, corpus, work_dir: Path) -> None:
        import faiss

        faiss.omp_set_num_threads(threads_per_process(self.config.threads))
        torch.set_num_threads(threads_per_process(self.config.threads))
        pairs = training_pairs(dict(train_queries), dict(train_qrels), dict(corpus))
        texts = list(corpus.values()) + [q for q, _ in pairs]
        self.encoder = DenseEncoder(self.config, texts=texts, work_dir=Path(work_dir))
        train_config, preset = training_preset(self.config, self.encoder.provenance["kind"])
        summary = {"preset": preset, **train(self.encoder, pairs, train_config, Path(work_dir) / "checkpoints",
                                             corpus_passages=list(corpus.values()))}
        if is_main():  # under torchrun every process trained the same model
            self.encoder.save(Path(work_dir) / "model")
        self._provenance["model"] = self.encoder.provenance
        self._provenance["training"] = summary
        self._provenance["compute"] = {**device_provenance(self.encoder.device_), **self.encoder.plan.describe()}

    def index(self, corpus: Mapping[str, str], index_dir: Path) -> None:
        import faiss

        if self.encoder is None and not self.config.fine_tune:  # zero-shot: the weights as loaded
            self.encoder = DenseEncoder(self.config, work_dir=Path(index_dir))
            if self.encoder.provenance["kind"] != "pretrained":
                raise ValueError("fine_tune: false (a zero-shot row) needs pretrained weights, not a scratch model")
            self.encoder.save(Path(index_dir) / "model")
            self._provenance.update({"model": self.encoder.provenance,
                                     "training": {"preset": "zero-shot", "note": "no fine-tuning"},
                                     "compute": {**device_provenance(self.encoder.device_),
                                                 **self.encoder.plan.describe()}})
        if self.encoder is None:
            raise RuntimeError("fit() the dense retriever before indexing (or load() a trained one)")
        self._pids = list(corpus)
        with Timer() as timer:
            with Timer() as encoding:
                vectors = encode_corpus(self.encoder.encode_passages, [corpus[p] for p in self._pids], index_dir)
            if vectors is None:  # another torchrun process builds the index from every process's shard
                return
            self._faiss = build_faiss(vectors, self.config)
        self.stats.extra["stages"] = {"encode": encoding.seconds, "build": timer.seconds - encoding.seconds}
        faiss.write_index(self._faiss, str(Path(index_dir) / "faiss.index"))
        (Path(index_dir) / "pids.json").write_text(json.dumps(self._pids, ensure_ascii=False))
        write_json_atomic(Path(index_dir) / "provenance.json", self._provenance)
        self._vectors = vectors
        self.stats.index_time_s = timer.seconds
        self.stats.index_size_bytes = (Path(index_dir) / "faiss.index").stat().st_size
        self.stats.extra.update({"dimension": int(vectors.shape[1]), "index_type": self.config.index_type,
                                 "bytes_per_passage": self.stats.index_size_bytes / max(1, len(self._pids))})

    def load_model(self, model_dir: Path) -> None:
        self.encoder = DenseEncoder(self.config, model_dir=str(model_dir))

    def load(self, index_dir: Path) -> None:
        import faiss

        index_dir = Path(index_dir)
        self.encoder = DenseEncoder(self.config, model_dir=str(index_dir / "model"))
        self._faiss = faiss.read_index(str(index_dir / "faiss.index"))
        self._pids = json.loads((index_dir / "pids.json").read_text())
        self._provenance = json.loads((index_dir / "provenance.json").read_text())
        self._vectors = None
        self.stats.index_size_bytes = (index_dir / "faiss.index").stat().st_size

    def search(self, queries: Mapping[str, str], k: int = 1000) -> Run:
        qids = list(queries)
        q = self.encoder.encode(self.encoder.query_texts([queries[i] for i in qids]))
        k_eff = min(k, len(self._pids))
        scores, ids = self._faiss.search(q, k_eff)
        run: Run = {qid: [(self._pids[j], float(s)) for j, s in zip(ids[n], scores[n], strict=True) if j >= 0]
                    for n, qid in enumerate(qids)}
        latencies = []
        for text in [queries[i] for i in qids][: self.config.latency_queries]:
            start = time.perf_counter()
            vec = self.encoder.encode(self.encoder.query_texts([text]), batch_size=1)
            self._faiss.search(vec, min(10, k_eff))
            latencies.append(time.perf_counter() - start)
        for key, value in latency_summary(latencies).items():
            setattr(self.stats, key, value)
        self.stats.extra["latency_includes_query_encoding"] = True
        if self.config.index_type != "flat":
            self.stats.extra["recall_of_exact_top_k"] = self._recall_vs_flat(q, ids, k_eff)
        return run

    def _recall_vs_flat(self, q: np.ndarray, ids: np.ndarray, k: int) -> dict[str, float]:
        import faiss

        vectors = self._vectors
        if vectors is None:
            vectors = self._faiss.reconstruct_n(0, self._faiss.ntotal) if self.config.index_type == "hnsw" else None
        if vectors is None:
            return {}
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors)
        out = {}
        for cutoff in sorted({10, min(k, 1000)}):
            _, exact = flat.search(q, cutoff)
            hits = [len(set(ids[i, :cutoff]) & set(exact[i])) / cutoff for i in range(q.shape[0])]
            out[f"recall@{cutoff}"] = float(np.mean(hits))
        return out

    def index_footprint(self, index_dir: Path) -> int:
        return directory_size(index_dir)
