"""DeepCT: BERT token-level term-weight regression; the predicted weights become BM25 term frequencies.

DeepCT (Dai & Callan, 2020) predicts, for every token of a passage, how important that term is, regressing on the
*query term recall* target: the fraction of the passage's training queries that contain the term. Choices here
(documented, configurable):

- the target of a (query, passage) pair is 1 for passage tokens the query contains and 0 otherwise; with several
  queries per passage the mean of the pairs' targets is what the squared loss fits (= query term recall);
- a term occurring several times keeps its largest predicted weight; weights are ReLU'd (``min_weight`` drops noise);
- serving, ``serving: bm25`` (default, the original): each passage becomes a pseudo-document in which term t occurs
  ``round(tf_scale * w_t)`` times (``tf_scale`` 100), indexed by BM25 (Lucene, ``k1``/``b``; the pseudo-documents are
  never materialised: Lucene's ``JsonVectorCollection`` takes the frequencies directly), and the query is its plain
  tokens. Terms are token ids, so both sides share the model's tokenizer;
- ``serving: impact``, an option and not the original: the weights themselves as impacts in the project's inverted
  index, the query a bag of its tokens - scoring is the sum of the predicted weights of the query's terms;
- the shared trainer drives it (same seeds, pool protocol, checkpoints); validation MRR uses the impact score (the BM25
  statistics of the whole corpus do not exist during training).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from retrievers.base import Run, Timer, device_provenance, nested_from_dicts, torch_device, write_json_atomic
from retrievers.batching import encode_in_length_order
from retrievers.bm25 import BM25Config, BM25Retriever
from retrievers.index.impact_serving import ImpactRetriever
from retrievers.index.inverted_index import ALGORITHMS
from retrievers.options import above, at_least, between, choice
from retrievers.resources.hub import WEIGHT_SOURCES, weights_digest
from retrievers.resources.model_loading import PRECISIONS, precision_plan, pretrained_or_scratch, training_preset
from retrievers.resources.tokenization import load_saved_tokenizer
from retrievers.sharding import encode_corpus, is_main, threads_per_process
from retrievers.training.config import TrainConfig, paper_training
from retrievers.training.loop import train
from retrievers.training.pairs import training_pairs


@dataclass
class DeepCTScratch:
    hidden_size: int = at_least(128, 1)
    layers: int = at_least(2, 1)
    heads: int = at_least(4, 1)
    intermediate_size: int = at_least(512, 1)


@dataclass
class DeepCTConfig:
    model_id: str = "bert-base-chinese"
    model_path: str | None = None
    allow_scratch: bool = True
    weights_source: str = choice(*WEIGHT_SOURCES)  # auto: model_path, HF cache, Hub, packaged port, in that order
    scratch: DeepCTScratch = field(default_factory=DeepCTScratch)
    max_length: int = at_least(128, 1)
    min_weight: float = at_least(0.01, 0)
    serving: str = choice("bm25", "impact")  # bm25: original, tf = round(tf_scale * w) into BM25; impact: weights
    tf_scale: float = above(100.0, 0)
    k1: float = at_least(1.2, 0)  # BM25 over the pseudo-documents (the paper's BM25 setting)
    b: float = between(0.75, 0, 1)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, batch_size=32, lr=1e-3))
    train_pretrained: TrainConfig = field(default_factory=paper_training)
    precision: str = choice(*PRECISIONS)  # auto: bf16 autocast on a GPU, fp32 on the CPU
    block_size: int = at_least(64, 1)
    algorithm: str = choice("auto", *ALGORITHMS)  # auto: bmm, or two-phase for k > 50 / dense lists
    threads: int = at_least(2, 1)
    device: str = "auto"  # training and encoding: auto (a CUDA GPU when present) | cpu | cuda[:n]
    encode_batch_size: int = at_least(64, 1)
    latency_queries: int = at_least(1000, 0)

    def weights_id(self) -> str:
        """The Hugging Face id of the weights this config loads (its real name, whatever loads in its place)."""
        return self.model_id


class DeepCTModel(torch.nn.Module):
    """BERT encoder + a linear regression head on every token."""

    def __init__(self, config: DeepCTConfig, model_dir: Path | None = None, texts: Sequence[str] | None = None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

        self.config = config
        self.device_ = torch_device(config.device)
        self.plan = precision_plan(config.precision, self.device_)
        dtype = self.plan.load_dtype
        if model_dir is not None:
            self.encoder = AutoModel.from_pretrained(str(model_dir / "encoder"), local_files_only=True,
                                                     add_pooling_layer=False, dtype=dtype)
            self.tokenizer = load_saved_tokenizer(str(model_dir / "encoder"))
            self.provenance = json.loads((model_dir / "provenance.json").read_text())
        else:
            resolved = pretrained_or_scratch(config.model_id, config.model_path, config.allow_scratch,
                                             config.weights_source)
            if resolved is not None:
                torch.manual_seed((config.train_pretrained or config.train).seed)  # the new head: same draw every run
                self.encoder = AutoModel.from_pretrained(resolved.source, local_files_only=resolved.local_only,
                                                         add_pooling_layer=False, dtype=dtype)
                self.tokenizer = AutoTokenizer.from_pretrained(resolved.source, local_files_only=resolved.local_only)
                self.provenance = dict(resolved.provenance)
                if "path" in self.provenance:
                    self.provenance["weights_sha256"] = weights_digest(self.provenance["path"])
            else:
                from retrievers.resources.tokenization import load_tokenizer

                tok = load_tokenizer(config.model_id, list(texts or []))
                self.tokenizer = tok.hf
                torch.manual_seed(config.train.seed)
                p = config.scratch
                self.encoder = BertModel(BertConfig(
                    vocab_size=len(tok.hf), hidden_size=p.hidden_size, num_hidden_layers=p.layers,
                    num_attention_heads=p.heads, intermediate_size=p.intermediate_size,
                    pad_token_id=tok.hf.pad_token_id, max_position_embeddings=max(128, config.max_length)),
                    add_pooling_layer=False).to(dtype)
                self.provenance = {"model_id": config.model_id, "kind": "scratch", "preset": asdict(p),
                                   "tokenizer": tok.provenance,
                                   "note": f"{config.model_id} weights absent: small BERT trained from scratch"}
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1, dtype=dtype)
        if model_dir is not None:
            self.head.load_state_dict(torch.load(model_dir / "head.pt", weights_only=True, map_location="cpu"))
        self.vocab_size = self.encoder.config.vocab_size
        specials = {self.tokenizer.pad_token_id, self.tokenizer.cls_token_id, self.tokenizer.sep_token_id}
        self.special = torch.tensor(sorted(i for i in specials if i is not None))

    def token_weights(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids, mask of real non-special tokens, predicted weight per token)."""
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.config.max_length,
                             return_tensors="pt").to(self.head.weight.device)
        with self.plan.autocast(self.head.weight.device):
            hidden = self.encoder(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).last_hidden_state
            prediction = self.head(hidden).squeeze(-1).float()
        ids = tok["input_ids"]
        mask = tok["attention_mask"].bool() & ~torch.isin(ids, self.special.to(ids.device))
        return ids, mask, prediction

    def doc_vectors(self, texts: Sequence[str]) -> torch.Tensor:
        """(batch, vocab) term weights: max over a term's occurrences of ReLU(prediction)."""
        ids, mask, pred = self.token_weights(texts)
        weights = torch.relu(pred) * mask
        out = torch.zeros(len(texts), self.vocab_size, device=weights.device)
        return out.scatter_reduce(1, ids, weights, reduce="amax")

    def query_vectors(self, texts: Sequence[str]) -> torch.Tensor:
        """(batch, vocab) bag of the query's tokens (weight = count)."""
        tok = self.tokenizer(list(texts), truncation=True, max_length=self.config.max_length, padding=True,
                             return_tensors="pt").to(self.head.weight.device)
        ids = tok["input_ids"]
        mask = (tok["attention_mask"].bool() & ~torch.isin(ids, self.special.to(ids.device))).float()
        return torch.zeros(len(texts), self.vocab_size, device=ids.device).scatter_add(1, ids, mask)

    # -- trainer protocol ----------------------------------------------------------------------------------------
    def forward(self, queries, passages) -> dict[str, torch.Tensor]:
        """Per pair: squared error of the predicted term weights, token count and target sum (a regression: hard
        negatives play no part, so only the batch's positives are read)."""
        ids, mask, pred = self.token_weights(passages[:len(queries)])
        bags = self.query_vectors(queries) > 0
        target = torch.gather(bags.float(), 1, ids)  # 1 where the query contains the passage token
        mask = mask.float()
        return {"q_sse": ((pred - target) ** 2 * mask).sum(1), "q_tokens": mask.sum(1),
                "q_target": (target * mask).sum(1)}

    def batch_loss(self, reps, targets, step, total_steps):
        tokens = reps["q_tokens"].sum().clamp(min=1)
        loss = reps["q_sse"].sum() / tokens
        return loss, {"mse": float(loss.detach()), "target_mean": float(reps["q_target"].sum() / tokens)}

    def scoring_vectors(self, texts, side):
        """Impact scoring: the query's bag of tokens against the passage's predicted weights."""
        return self.query_vectors(texts) if side == "query" else self.doc_vectors(texts)

    def save(self, path: Path) -> None:
        path = Path(path)
        self.encoder.save_pretrained(str(path / "encoder"))
        self.tokenizer.save_pretrained(str(path / "encoder"))
        torch.save(self.head.state_dict(), path / "head.pt")
        (path / "provenance.json").write_text(json.dumps(self.provenance, ensure_ascii=False, indent=2))

    def load_weights(self, path: Path) -> None:
        from transformers import AutoModel

        self.encoder.load_state_dict(AutoModel.from_pretrained(str(Path(path) / "encoder"), add_pooling_layer=False,
                                                               local_files_only=True,
                                                               dtype=self.plan.load_dtype).state_dict())
        self.head.load_state_dict(torch.load(Path(path) / "head.pt", weights_only=True, map_location="cpu"))


class DeepCTRetriever(ImpactRetriever):
    config_class = DeepCTConfig
    needs_training = True

    def __init__(self, config: DeepCTConfig | None = None):
        super().__init__(config)
        nested_from_dicts(self.config, DeepCTConfig(), ("scratch", "train", "train_pretrained"))
        if self.config.serving not in ("bm25", "impact"):
            raise ValueError(f"unknown DeepCT serving {self.config.serving!r}: bm25 (the original) or impact")
        self.model: DeepCTModel | None = None
        self.bm25: BM25Retriever | None = None
        if self.config.serving == "bm25":
            self.bm25 = BM25Retriever(BM25Config(k1=self.config.k1, b=self.config.b, threads=self.config.threads,
                                                 latency_queries=self.config.latency_queries))
            self.stats = self.bm25.stats  # BM25 fills the cost record; DeepCT adds its training time

    def fit(self, train_queries, train_qrels, corpus, work_dir: Path) -> None:
        torch.set_num_threads(threads_per_process(self.config.threads))
        pairs = training_pairs(dict(train_queries), dict(train_qrels), dict(corpus))
        self.model = DeepCTModel(self.config, texts=list(corpus.values()) + [q for q, _ in pairs])
        device = torch_device(self.config.device)
        self.model.to(device)
        self._provenance["compute"] = {**device_provenance(device), **self.model.plan.describe()}
        train_config, preset = training_preset(self.config, self.model.provenance["kind"])
        summary = train(self.model, pairs, train_config, Path(work_dir) / "checkpoints",
                        corpus_passages=list(corpus.values()))
        if is_main():  # under torchrun every process trained the same model
            self.model.save(Path(work_dir) / "model")
        self._provenance.update({"model": self.model.provenance, "training": {"preset": preset, **summary}})

    def load_model(self, model_dir: Path) -> None:
        self.model = DeepCTModel(self.config, model_dir=model_dir).to(torch_device(self.config.device))

    @torch.no_grad()
    def encode(self, texts: list[str], side: str) -> sp.csr_matrix:
        self.model.eval()
        fn = self.model.doc_vectors if side == "doc" else self.model.query_vectors

        def encode_block(batch: list[str]) -> sp.csr_matrix:
            with torch.no_grad():
                block = fn(batch).float().cpu().numpy()
            if side == "doc":
                block[block < self.config.min_weight] = 0.0
            return sp.csr_matrix(block.astype(np.float32))

        rows = encode_in_length_order(list(texts), self.config.encode_batch_size, encode_block, desc=f"DeepCT {side}s")
        return rows if rows is not None else sp.csr_matrix((0, self.model.vocab_size), dtype=np.float32)

    # -- serving through BM25 (the original DeepCT) ------------------------------------------------------------------
    def term_frequencies(self, weights: sp.csr_matrix) -> list[dict[str, int]]:
        """Each passage's pseudo-document: token id -> round(tf_scale * weight), zero frequencies dropped."""
        tf = weights.copy()
        tf.data = np.rint(tf.data.astype(np.float64) * self.config.tf_scale)
        tf.eliminate_zeros()
        return [dict(zip(map(str, tf.indices[tf.indptr[i]:tf.indptr[i + 1]]),
                         tf.data[tf.indptr[i]:tf.indptr[i + 1]].astype(int).tolist(), strict=True))
                for i in range(tf.shape[0])]

    def query_terms(self, texts: list[str]) -> list[list[str]]:
        """A query's own tokens (ids as terms, repeats kept), as the original DeepCT searches with plain queries."""
        encoded = self.model.tokenizer(texts, add_special_tokens=False, truncation=True,
                                       max_length=self.config.max_length)["input_ids"]
        special = set(self.model.special.tolist())
        return [[str(t) for t in ids if t not in special] for ids in encoded]

    def index(self, corpus, index_dir: Path) -> None:
        if self.bm25 is None:
            return super().index(corpus, index_dir)
        pids = list(corpus)
        with Timer() as encoding:
            docs = encode_corpus(lambda texts: self.encode(texts, "doc"), [corpus[p] for p in pids], index_dir)
        if docs is None:  # another torchrun process indexes every process's shard
            return
        bm25_dir = Path(index_dir) / "bm25"
        bm25_dir.mkdir(parents=True, exist_ok=True)
        with Timer() as building:
            self.bm25.index_term_frequencies(pids, self.term_frequencies(docs), bm25_dir)
        self.stats.extra["stages"] = {"encode": encoding.seconds, "build": building.seconds}
        self.stats.extra["tf_scale"] = self.config.tf_scale
        write_json_atomic(Path(index_dir) / "provenance.json", self._provenance)

    def load(self, index_dir: Path) -> None:
        if self.bm25 is None:
            return super().load(index_dir)
        index_dir = Path(index_dir)
        self.load_model(index_dir / "model")
        self.bm25.load(index_dir / "bm25")
        self._provenance = json.loads((index_dir / "provenance.json").read_text())

    def search(self, queries, k: int = 1000) -> Run:
        if self.bm25 is None:
            return super().search(queries, k)
        qids = list(queries)
        return self.bm25.search_tokens(qids, self.query_terms([queries[q] for q in qids]), k)

    def explain(self, text: str, side: str, n: int = 20) -> list[tuple[str, float, bool]]:
        with torch.no_grad():
            vec = (self.model.doc_vectors if side == "doc" else self.model.query_vectors)([text])[0]
        values, ids = torch.topk(vec, min(n, int((vec > 0).sum())))
        tokens = self.model.tokenizer.convert_ids_to_tokens(ids.tolist())
        return [(t, float(v), True) for t, v in zip(tokens, values, strict=True)]
