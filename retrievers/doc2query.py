"""Doc2Query: a seq2seq model (T5 family) learns query-from-passage; sampled queries are appended; then BM25.

Choices (documented, configurable): the real default is ``doc2query/msmarco-chinese-mt5-base-v1`` (an mT5 trained for
Chinese doc2query); without its weights a ``scratch`` T5 of the same architecture is trained on the training pairs,
with the BERT-Chinese stand-in tokenizer (the same vocabulary family as the BM25 run it feeds). ``n_samples`` queries
per passage are drawn by top-k sampling (seeded), appended to the passage text, and the expanded corpus is indexed by
the BM25 retriever of ``bm25`` (k1=1.2, b=0.75, BERT-Chinese tokens, Lucene) exactly as the BM25 baseline is. Expansions
are saved beside the index (``expansions.jsonl``) so they can be read and reused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from retrievers.base import Retriever, Run, Timer, device_provenance, nested_from_dicts, torch_device, write_json_atomic
from retrievers.bm25 import BM25Config, BM25Retriever
from retrievers.options import at_least, choice
from retrievers.resources.hub import WEIGHT_SOURCES, weights_digest
from retrievers.resources.model_loading import PRECISIONS, precision_plan, pretrained_or_scratch, training_preset
from retrievers.resources.tokenization import load_saved_tokenizer
from retrievers.sharding import is_main, threads_per_process
from retrievers.training.config import TrainConfig
from retrievers.training.loop import train
from retrievers.training.pairs import training_pairs


@dataclass
class T5Scratch:
    d_model: int = at_least(128, 1)
    layers: int = at_least(2, 1)
    heads: int = at_least(4, 1)
    d_ff: int = at_least(512, 1)


@dataclass
class Doc2QueryConfig:
    model_id: str = "doc2query/msmarco-chinese-mt5-base-v1"
    model_path: str | None = None
    allow_scratch: bool = True
    weights_source: str = choice(*WEIGHT_SOURCES)  # auto: model_path, HF cache, Hub, packaged port, in that order
    scratch: T5Scratch = field(default_factory=T5Scratch)
    scratch_tokenizer: str = "bert-base-chinese"
    max_length: int = at_least(64, 1)
    max_query_length: int = at_least(24, 1)
    n_samples: int = at_least(5, 1)
    top_k: int = at_least(10, 1)
    generate_batch_size: int = at_least(64, 1)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, batch_size=32, lr=1e-3,
                                                                    validation_pairs=0))
    train_pretrained: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=3, batch_size=64, lr=3e-5, warmup_fraction=0.06, validation_pairs=0))  # keep the last epoch
    precision: str = choice(*PRECISIONS)  # auto: bf16 autocast on a GPU, fp32 on the CPU
    bm25: BM25Config = field(default_factory=BM25Config)
    threads: int = at_least(2, 1)
    device: str = "auto"  # training and generation: auto (a CUDA GPU when present) | cpu | cuda[:n]

    def weights_id(self) -> str:
        """The Hugging Face id of the weights this config loads (its real name, whatever loads in its place)."""
        return self.model_id


_CJK = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]"
_SPACE_BETWEEN_CJK = re.compile(rf"(?<={_CJK}) (?={_CJK})")


def join_decoded(text: str) -> str:
    """Undo WordPiece decoding's spaces between CJK characters, keeping every other token boundary.

    ``"华 为 iphone 14 手 机"`` -> ``"华为 iphone 14 手机"``: removing every space would glue ``iphone14`` into a token
    the passage never had.
    """
    return _SPACE_BETWEEN_CJK.sub("", text.strip())


class QueryGenerator(torch.nn.Module):
    """T5 query-from-passage model with the trainer's protocol (teacher-forced cross-entropy)."""

    def __init__(self, config: Doc2QueryConfig, model_dir: Path | None = None, texts: Sequence[str] | None = None):
        super().__init__()
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, T5Config, T5ForConditionalGeneration

        self.config = config
        self.device_ = torch_device(config.device)
        self.plan = precision_plan(config.precision, self.device_)
        if model_dir is not None:
            self.model = AutoModelForSeq2SeqLM.from_pretrained(str(model_dir / "t5"), local_files_only=True,
                                                               dtype=self.plan.load_dtype)
            self.tokenizer = load_saved_tokenizer(str(model_dir / "t5"))
            self.provenance = json.loads((model_dir / "provenance.json").read_text())
            return
        resolved = pretrained_or_scratch(config.model_id, config.model_path, config.allow_scratch,
                                             config.weights_source)
        if resolved is not None:
            self.model = AutoModelForSeq2SeqLM.from_pretrained(resolved.source, local_files_only=resolved.local_only,
                                                               dtype=self.plan.load_dtype)
            self.tokenizer = AutoTokenizer.from_pretrained(resolved.source, local_files_only=resolved.local_only)
            self.provenance = dict(resolved.provenance)
            if "path" in self.provenance:
                self.provenance["weights_sha256"] = weights_digest(self.provenance["path"])
        else:
            from retrievers.resources.tokenization import load_tokenizer

            tok = load_tokenizer(config.scratch_tokenizer, list(texts or []))
            self.tokenizer = tok.hf
            torch.manual_seed(config.train.seed)
            p = config.scratch
            self.model = T5ForConditionalGeneration(T5Config(
                vocab_size=len(tok.hf), d_model=p.d_model, d_kv=p.d_model // p.heads, d_ff=p.d_ff,
                num_layers=p.layers, num_heads=p.heads, pad_token_id=tok.hf.pad_token_id,
                eos_token_id=tok.hf.sep_token_id, decoder_start_token_id=tok.hf.pad_token_id)).to(self.plan.load_dtype)
            self.provenance = {"model_id": config.model_id, "kind": "scratch", "architecture": "t5",
                               "preset": asdict(p), "tokenizer": tok.provenance,
                               "note": f"{config.model_id} weights absent: small T5 trained from scratch"}

    def _inputs(self, passages: Sequence[str]):
        return self.tokenizer(list(passages), padding=True, truncation=True, max_length=self.config.max_length,
                              return_tensors="pt").to(self.model.device)

    def forward(self, queries, passages) -> dict[str, torch.Tensor]:
        """Per pair: the summed token negative log-likelihood of the query given its passage, and its token count
        (generation: hard negatives play no part)."""
        inputs = self._inputs(passages[:len(queries)])
        labels = self.tokenizer(list(queries), padding=True, truncation=True, max_length=self.config.max_query_length,
                                return_tensors="pt")["input_ids"].to(self.model.device)
        labels[labels == self.tokenizer.pad_token_id] = -100
        with self.plan.autocast(self.model.device):
            logits = self.model(**inputs, labels=labels).logits.float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
        return {"q_nll": nll.sum(1), "q_tokens": (labels != -100).sum(1).float()}

    def batch_loss(self, reps, targets, step, total_steps):
        loss = reps["q_nll"].sum() / reps["q_tokens"].sum().clamp(min=1)  # = the model's own mean token loss
        return loss, {"nll": float(loss.detach())}

    def scoring_vectors(self, texts, side):  # only used with validation pairs, which this model does not need
        raise NotImplementedError("Doc2Query trains with validation_pairs=0 (keep the last epoch)")

    @torch.no_grad()
    def expand(self, passages: Sequence[str], n: int, top_k: int, seed: int) -> list[list[str]]:
        self.model.eval()
        torch.manual_seed(seed)
        out = []
        step = self.config.generate_batch_size
        for start in tqdm(range(0, len(passages), step), desc="doc2query expansions", leave=False, disable=None):
            batch = passages[start:start + step]
            with self.plan.autocast(self.model.device):
                generated = self.model.generate(**self._inputs(batch), do_sample=True, top_k=top_k,
                                                num_return_sequences=n, max_new_tokens=self.config.max_query_length)
            texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
            out.extend(texts[i * n:(i + 1) * n] for i in range(len(batch)))
        return [[join_decoded(t) for t in row] for row in out]

    def save(self, path: Path) -> None:
        path = Path(path)
        self.model.save_pretrained(str(path / "t5"))
        self.tokenizer.save_pretrained(str(path / "t5"))
        (path / "provenance.json").write_text(json.dumps(self.provenance, ensure_ascii=False, indent=2))

    def load_weights(self, path: Path) -> None:
        from transformers import AutoModelForSeq2SeqLM

        loaded = AutoModelForSeq2SeqLM.from_pretrained(str(Path(path) / "t5"), local_files_only=True,
                                                       dtype=self.plan.load_dtype)
        self.model.load_state_dict(loaded.state_dict())


class Doc2QueryRetriever(Retriever):
    config_class = Doc2QueryConfig
    needs_training = True

    def __init__(self, config: Doc2QueryConfig | None = None):
        super().__init__(config)
        nested_from_dicts(self.config, Doc2QueryConfig(), ("scratch", "train", "train_pretrained", "bm25"))
        self.generator: QueryGenerator | None = None
        self.bm25 = BM25Retriever(self.config.bm25)
        self.stats = self.bm25.stats  # BM25 fills the cost record; Doc2Query adds its training time

    def fit(self, train_queries, train_qrels, corpus, work_dir: Path) -> None:
        torch.set_num_threads(threads_per_process(self.config.threads))
        pairs = training_pairs(dict(train_queries), dict(train_qrels), dict(corpus))
        self.generator = QueryGenerator(self.config, texts=list(corpus.values()) + [q for q, _ in pairs])
        device = torch_device(self.config.device)
        self.generator.to(device)
        self._provenance["compute"] = {**device_provenance(device), **self.generator.plan.describe()}
        train_config, preset = training_preset(self.config, self.generator.provenance["kind"])
        summary = train(self.generator, pairs, train_config, Path(work_dir) / "checkpoints")
        if is_main():  # under torchrun every process trained the same model
            self.generator.save(Path(work_dir) / "model")
        self._provenance.update({"model": self.generator.provenance, "training": {"preset": preset, **summary}})

    def index(self, corpus: Mapping[str, str], index_dir: Path) -> None:
        if self.generator is None:
            raise RuntimeError("fit() Doc2Query before indexing")
        pids = list(corpus)
        with Timer() as generating:
            expansions = self.generator.expand([corpus[p] for p in pids], self.config.n_samples, self.config.top_k,
                                               self.config.train.seed)
        with open(Path(index_dir) / "expansions.jsonl", "w", encoding="utf-8") as out:
            for pid, queries in zip(pids, expansions, strict=True):
                out.write(json.dumps({"pid": pid, "queries": queries}, ensure_ascii=False) + "\n")
        expanded = {pid: " ".join([corpus[pid], *queries]) for pid, queries in zip(pids, expansions, strict=True)}
        bm25_dir = Path(index_dir) / "bm25"
        bm25_dir.mkdir(exist_ok=True)
        self.bm25.index(expanded, bm25_dir)
        self.stats.extra["stages"] = {"generate": generating.seconds, **self.stats.extra.get("stages", {})}
        self._provenance["bm25"] = self.bm25.provenance()
        write_json_atomic(Path(index_dir) / "provenance.json", self._provenance)

    def load(self, index_dir: Path) -> None:
        self.bm25.load(Path(index_dir) / "bm25")
        self._provenance = json.loads((Path(index_dir) / "provenance.json").read_text())

    def search(self, queries: Mapping[str, str], k: int = 1000) -> Run:
        return self.bm25.search(queries, k)

    def expansions(self, index_dir: Path) -> dict[str, list[str]]:
        with open(Path(index_dir) / "expansions.jsonl", encoding="utf-8") as rows:
            return {row["pid"]: row["queries"] for row in map(json.loads, rows)}
