"""Learned sparse retrievers - SPLADE, SP-Qwen and PROSPER with its ablations - as options of one encoder.

Every variant of the paper's Table 2 and its ablations is a :class:`SparseConfig`, never a copy of code:

- backbone ``bert`` (masked-LM head, ``bert-base-chinese``), ``qwen2`` (causal LM, ``Qwen/Qwen2.5-3B``) or ``xlmr``
  (an XLM-R encoder, ``intfloat/multilingual-e5-small``: its vocabulary head is new, tied to the input embeddings);
- ``pooling`` ``max`` (SPLADE) or ``last`` (PROSPER's last-token pooling); ``echo`` (input twice, read the second
  copy; ``max_length`` bounds each copy, so an echo input is 2 x 64 = 128 tokens as in the paper) and
  ``bidirectional`` (no causal mask) for causal backbones;
- ``lrn`` ``none`` / ``max`` (PROSPER) / ``add``, on ``lrn_side`` ``both`` / ``query`` / ``doc``;
- ``lfw_query`` / ``lfw_doc`` window sizes (None = no LFW) and ``lfw_dynamic`` schedules;
- ``normalisation`` (PROSPER: ``query-l2``), FLOPS weights ``lambda_q`` / ``lambda_d`` with a quadratic warm-up over
  ``flops_warmup_epochs``;
- ``train_terms`` / ``match_terms``: ``all``, ``literal`` (only the input's own tokens) or ``expansion`` (only others).

Paper choices made here (documented, configurable): LFW is applied at indexing and query time as in training
(``lfw_at_inference``); the query side is served with its top ``query_top_m`` terms (None offline; 16 "online").

Weights, precision and training preset follow ``retrievers.resources.model_loading``: the real weights by their Hugging Face id
(``model_path``, HF cache, Hub, packaged port) with the paper's training settings (``train_pretrained``), or - where
allowed - a small ``scratch`` model of the same architecture with the real tokenizer, trained with ``train``.
``output_vocabulary: seen`` restricts a pretrained model's *output* terms to the tokens of its training texts (its
inputs keep the whole vocabulary): a 250k-term vocabulary head is then affordable on a CPU.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from retrievers.base import device_provenance, nested_from_dicts, torch_device
from retrievers.batching import encode_in_length_order
from retrievers.index.impact_serving import ImpactRetriever
from retrievers.resources.hub import weights_digest
from retrievers.resources.model_loading import (
    enable_checkpointing,
    precision_plan,
    pretrained_or_scratch,
    training_preset,
)
from retrievers.resources.tokenization import VocabularySubset, load_saved_tokenizer, readable_token
from retrievers.sharding import is_main, threads_per_process
from retrievers.sparse import ops
from retrievers.sparse.config import CAUSAL, DEFAULT_IDS, OUTPUT_VOCABULARY_FILE, SparseConfig
from retrievers.training.loop import train
from retrievers.training.losses import info_nce, quadratic_warmup
from retrievers.training.pairs import training_pairs


class SparseEncoder(torch.nn.Module):
    """Backbone + (optional) LRN head; encodes texts into vocabulary-sized non-negative vectors."""

    def __init__(self, config: SparseConfig, model_dir: Path | None = None, texts: Sequence[str] | None = None):
        super().__init__()
        self.config = config
        if config.backbone not in DEFAULT_IDS:
            raise ValueError(f"unknown backbone {config.backbone!r}: {', '.join(DEFAULT_IDS)}")
        if config.backbone not in CAUSAL and (config.echo or config.bidirectional):
            raise ValueError("echo and bidirectional apply to causal backbones (qwen2) only")
        if config.output_vocabulary not in ("full", "seen"):
            raise ValueError(f"output_vocabulary must be 'full' or 'seen', not {config.output_vocabulary!r}")
        self.model_id = config.model_id or DEFAULT_IDS[config.backbone]
        self.device_ = torch_device(config.device)
        self.plan = precision_plan(config.precision, self.device_)
        self.output_ids: torch.Tensor | None = None  # real token ids of the output terms (None: all of them)
        if model_dir is not None:
            self._load_dir(Path(model_dir))
        else:
            self._build(texts)
        self.backbone.config.use_cache = False  # never generates; a KV cache only costs memory
        if config.gradient_checkpointing:
            enable_checkpointing(self.backbone)
        hidden = self.backbone.config.hidden_size
        self._set_output_lookup()
        if not hasattr(self, "fc"):
            self.fc = (torch.nn.Linear(hidden, self.vocab_size, dtype=self.plan.load_dtype) if config.lrn != "none"
                       else None)
        specials = {self.tokenizer.pad_token_id, self.tokenizer.cls_token_id, self.tokenizer.sep_token_id,
                    self.tokenizer.eos_token_id, self.tokenizer.bos_token_id, getattr(self.tokenizer, "unseen_id", None)}
        self.special_ids = tuple(sorted(i for i in specials if i is not None))
        # the dynamic LFW's windows shrink during training and are saved with the model: a reopened model serves with
        # the windows it ended training with, not the initial ones
        self.windows = getattr(self, "_saved_windows", None) or (config.lfw_query, config.lfw_doc)
        self.train_config = config.train

    # -- construction --------------------------------------------------------------------------------------------
    def _auto_class(self):
        from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

        if self.config.backbone == "xlmr":
            return AutoModel  # an encoder without a vocabulary head: the head is tied (see _head_parts)
        return AutoModelForCausalLM if self.config.backbone in CAUSAL else AutoModelForMaskedLM

    def _build(self, texts):
        from transformers import AutoTokenizer

        resolved = pretrained_or_scratch(self.model_id, self.config.model_path, self.config.allow_scratch,
                                         self.config.weights_source)
        if resolved is None:
            if texts is None:
                raise ValueError("a scratch model needs training texts")
            self._scratch(list(texts))
            return
        # the heads the checkpoint lacks (the LRN's fc, made in __init__, and e5's unused pooler) are drawn from torch's
        # global generator, which a fresh process seeds at random: seed it, as _scratch does, or every run of a
        # pretrained LRN row trains from another head (the cause of prosper-e5's irreproducible runs)
        torch.manual_seed((self.config.train_pretrained or self.config.train).seed)
        self.backbone = self._auto_class().from_pretrained(resolved.source, local_files_only=resolved.local_only,
                                                           dtype=self.plan.load_dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(resolved.source, local_files_only=resolved.local_only)
        self.provenance = dict(resolved.provenance)
        if "path" in resolved.provenance:
            self.provenance["weights_sha256"] = weights_digest(resolved.provenance["path"])
        self.provenance["architecture"] = type(self.backbone).__name__
        if self.config.backbone == "xlmr":
            self.provenance["head"] = "tied: the input embeddings as vocabulary projection, a new bias"
            self.vocab_bias = torch.nn.Parameter(torch.zeros(self.backbone.config.vocab_size,
                                                             dtype=self.plan.load_dtype))
        if self.config.new_head_bias is not None:
            with torch.no_grad():
                self._head_parts()[2].fill_(self.config.new_head_bias)
        if self.config.output_vocabulary == "seen":
            if texts is None:
                raise ValueError("output_vocabulary 'seen' needs the training texts")
            seen = VocabularySubset.from_texts(self.tokenizer, list(texts)).kept
            specials = set(self.tokenizer.all_special_ids)
            self.output_ids = torch.tensor([i for i in seen.tolist() if i not in specials], dtype=torch.long)
            self.provenance["output_vocabulary"] = {"vocabulary": "seen-subset", "size": len(self.output_ids),
                                                    "of": self.backbone.config.vocab_size}

    def _scratch(self, texts: list[str]) -> None:
        from transformers import BertConfig, BertForMaskedLM, Qwen2Config, Qwen2ForCausalLM

        from retrievers.resources.tokenization import load_tokenizer

        if self.config.backbone == "xlmr":
            raise ValueError("no scratch preset for the xlmr backbone: it exists to put heads on pretrained e5")
        tok = load_tokenizer(self.model_id, texts)
        preset = self.config.scratch
        if preset.vocabulary not in ("seen", "full"):
            raise ValueError(f"scratch.vocabulary must be 'seen' or 'full', not {preset.vocabulary!r}")
        self.tokenizer = VocabularySubset.from_texts(tok.hf, texts) if preset.vocabulary == "seen" else tok.hf
        length = 2 * self.config.max_length + 8
        torch.manual_seed(self.config.train.seed)
        if self.config.backbone == "bert":
            cfg = BertConfig(vocab_size=len(self.tokenizer), pad_token_id=self.tokenizer.pad_token_id,
                             hidden_size=preset.hidden_size, num_hidden_layers=preset.layers,
                             num_attention_heads=preset.heads, intermediate_size=preset.intermediate_size,
                             max_position_embeddings=max(128, length))
            self.backbone = BertForMaskedLM(cfg)
            with torch.no_grad():
                self.backbone.get_output_embeddings().bias.fill_(preset.output_bias)
        else:
            cfg = Qwen2Config(vocab_size=len(self.tokenizer), hidden_size=preset.hidden_size,
                              num_hidden_layers=preset.layers,
                              num_attention_heads=preset.heads, num_key_value_heads=preset.kv_heads,
                              intermediate_size=preset.intermediate_size, max_position_embeddings=max(128, length),
                              tie_word_embeddings=True, pad_token_id=self.tokenizer.pad_token_id)
            if preset.output_bias:
                raise ValueError("scratch.output_bias applies to the bert backbone (a Qwen2 LM head has no bias)")
            self.backbone = Qwen2ForCausalLM(cfg)
        self.backbone.to(self.plan.load_dtype)
        vocabulary = (self.tokenizer.describe() if isinstance(self.tokenizer, VocabularySubset)
                      else {"vocabulary": "full", "size": len(self.tokenizer)})
        self.provenance = {"model_id": self.model_id, "kind": "scratch", "architecture": self.config.backbone,
                           "preset": asdict(preset), "tokenizer": tok.provenance, "output_vocabulary": vocabulary,
                           "note": f"{self.model_id} weights absent: small {self.config.backbone} trained from scratch"}

    def _load_dir(self, path: Path) -> None:
        self.backbone = self._auto_class().from_pretrained(str(path / "backbone"), local_files_only=True,
                                                           dtype=self.plan.load_dtype)
        self.tokenizer = load_saved_tokenizer(str(path / "backbone"))
        self.provenance = json.loads((path / "provenance.json").read_text())
        self._saved_windows = self._read_windows(path)
        if (path / OUTPUT_VOCABULARY_FILE).exists():
            kept = json.loads((path / OUTPUT_VOCABULARY_FILE).read_text())["kept"]
            self.output_ids = torch.tensor(kept, dtype=torch.long)
        if (path / "vocab_bias.pt").exists():
            self.vocab_bias = torch.nn.Parameter(torch.load(path / "vocab_bias.pt", weights_only=True,
                                                            map_location="cpu").to(self.plan.load_dtype))
        if (path / "lrn_fc.pt").exists():
            state = torch.load(path / "lrn_fc.pt", weights_only=True, map_location="cpu")
            self.fc = torch.nn.Linear(state["weight"].shape[1], state["weight"].shape[0], dtype=self.plan.load_dtype)
            self.fc.load_state_dict(state)

    def _set_output_lookup(self) -> None:
        """Input token id -> output term index (-1: not an output term), when the output vocabulary is a subset."""
        full = self.backbone.config.vocab_size
        if self.output_ids is None:
            self.vocab_size, self.output_lookup = full, None
            return
        lookup = torch.full((max(full, len(self.tokenizer)),), -1, dtype=torch.long)
        lookup[self.output_ids] = torch.arange(len(self.output_ids))
        self.vocab_size = len(self.output_ids)
        self.register_buffer("output_lookup", lookup, persistent=False)
        self.register_buffer("output_rows", self.output_ids.clone(), persistent=False)

    def _head_parts(self):
        """(transform, projection weight, bias) of the backbone's vocabulary head: BERT's MLM head, XLM-R's LM head
        (dense, GELU, LayerNorm, tied decoder), or a causal LM's bias-free ``lm_head``."""
        backbone = self.backbone
        if hasattr(self, "vocab_bias"):  # xlmr: tied to the input embeddings
            return (lambda x: x), backbone.get_input_embeddings().weight, self.vocab_bias
        if hasattr(backbone, "cls"):
            predictions = backbone.cls.predictions
            return predictions.transform, predictions.decoder.weight, predictions.bias
        head = backbone.lm_head
        if isinstance(head, torch.nn.Linear):
            return (lambda x: x), head.weight, head.bias
        return (lambda x: head.layer_norm(torch.nn.functional.gelu(head.dense(x)))), head.decoder.weight, head.bias

    # -- encoding ------------------------------------------------------------------------------------------------
    def _lrn_on(self, side: str) -> bool:
        return self.fc is not None and self.config.lrn_side in ("both", side)

    def forward_side(self, texts: Sequence[str], side: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W, w, I): final weights, basic weights (for FLOPS), literal indicator - fp32, whatever the precision."""
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.config.max_length,
                             return_tensors="pt")
        device = next(self.backbone.parameters()).device
        ids, mask = tok["input_ids"].to(device), tok["attention_mask"].to(device)
        run_ids, attention, pool_mask = ids, mask, mask
        if self.config.echo:
            run_ids, attention, pool_mask = ops.echo_inputs(ids, mask)
        model_mask: torch.Tensor = attention
        if self.config.bidirectional:
            model_mask = ops.bidirectional_mask(attention, dtype=self.plan.autocast_dtype or self.plan.load_dtype)
        with self.plan.autocast(device):
            hidden = self.backbone.base_model(input_ids=run_ids, attention_mask=model_mask).last_hidden_state
            if self.config.pooling == "last":
                # log(1+ReLU) and the vocabulary head act position by position, so pooling the last position first
                # gives the same w while computing vocabulary logits for one position instead of all (for a
                # 151k-term head: batch x 151k instead of batch x length x 151k)
                h_pooled = ops.last_token_pool(hidden, pool_mask)
                w = ops.log_saturation(self.vocabulary_logits(h_pooled).float())
            else:
                h_pooled = ops.max_pool(ops.log_saturation(hidden), pool_mask)
                # max over positions of log(1+ReLU(logits)) = log(1+ReLU(max over positions of logits)): the
                # activation is monotone, so only the positions' maximum is activated - and without a graph the
                # maximum is taken a few positions at a time, never holding batch x length x vocabulary logits
                w = ops.log_saturation(ops.masked_max(self.vocabulary_logits, hidden, pool_mask,
                                                      chunk_positions=None if torch.is_grad_enabled() else
                                                      self._positions_per_chunk(hidden.shape[0])))
            residual = None
            if self._lrn_on(side):
                h_lrn = ops.log_saturation(h_pooled) if self.config.pooling == "last" else h_pooled
                residual = self.fc(h_lrn.to(self.fc.weight.dtype)).float()
        if self.output_lookup is not None:  # input ids -> output terms; a token outside them is no literal term
            out_ids = self.output_lookup[ids]
            indicator = ops.literal_indicator(out_ids.clamp(min=0), mask * (out_ids >= 0), self.vocab_size)
        else:
            indicator = ops.literal_indicator(ids, mask, self.vocab_size, self.special_ids)
        weights = w if residual is None else ops.literal_residual(w, residual, indicator, self.config.lrn)
        return weights, w, indicator

    def _positions_per_chunk(self, batch: int) -> int:
        """Positions per logits chunk at inference: ~64 MB of fp32 logits (batch x positions x vocabulary)."""
        return int(max(1, (64 * 2**20) // (4 * max(1, batch) * self.vocab_size)))

    def vocabulary_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The backbone's own vocabulary head on hidden states (only the output terms' rows, when restricted)."""
        transform, weight, bias = self._head_parts()
        if self.output_lookup is not None:
            weight = weight[self.output_rows]
            bias = None if bias is None else bias[self.output_rows]
        return torch.nn.functional.linear(transform(hidden), weight, bias)

    @staticmethod
    def _term_filter(weights: torch.Tensor, indicator: torch.Tensor, which: str) -> torch.Tensor:
        if which == "literal":
            return weights * indicator
        if which == "expansion":
            return weights * (1 - indicator)
        return weights

    def represent(self, texts: Sequence[str], side: str, for_training: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """(windowed weights W, basic weights w)."""
        weights, basic, _ = self._represent(texts, side, for_training)
        return weights, basic

    def _represent(self, texts: Sequence[str], side: str, for_training: bool
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(windowed W, basic w, each row's number of active terms *before* the window)."""
        weights, basic, indicator = self.forward_side(texts, side)
        weights = self._term_filter(weights, indicator, self.config.train_terms if for_training
                                    else self.config.match_terms)
        active = (weights > 0).sum(dim=1)
        window = self.windows[0] if side == "query" else self.windows[1]
        if for_training or self.config.lfw_at_inference:
            weights = ops.conditional_topk(weights, window)
        return weights, basic, active

    # -- trainer protocol ------------------------------------------------------------------------------------------
    def forward(self, queries: Sequence[str], passages: Sequence[str]) -> dict[str, torch.Tensor]:
        """Training representations of a batch (the trainer gathers them across processes before the loss)."""
        q, wq, q_active = self._represent(queries, "query", for_training=True)
        d, wd, d_active = self._represent(passages, "doc", for_training=True)
        return {"q": q, "q_basic": wq, "q_active": q_active, "d": d, "d_basic": wd, "d_active": d_active}

    def batch_loss(self, reps, targets, step, total_steps):
        """InfoNCE on the windowed weights (normalised as configured) + the FLOPS regulariser on the basic ones."""
        if self.config.lfw_dynamic:  # applied after the optimizer step: a GradCache re-encoding must see the same
            self._pending_windows = self._next_windows(reps["q_active"], reps["d_active"])
        nq, nd = ops.normalise(reps["q"], reps["d"], self.config.normalisation)
        rank = info_nce(nq, nd, targets)
        # the warm-up is counted in epochs of the training that runs (the trainer sets steps_per_epoch)
        per_epoch = getattr(self, "steps_per_epoch", None) or total_steps / max(self.train_config.epochs, 1)
        lam = quadratic_warmup(step, self.config.flops_warmup_epochs * per_epoch)
        reg = lam * (self.config.lambda_q * ops.flops(reps["q_basic"]) +
                     self.config.lambda_d * ops.flops(reps["d_basic"]))
        return rank + reg, {"rank": float(rank.detach()), "flops_reg": float(reg.detach()),
                            "q_active": float((reps["q"] > 0).sum(1).float().mean()),
                            "d_active": float((reps["d"] > 0).sum(1).float().mean())}

    def after_step(self) -> None:
        pending = getattr(self, "_pending_windows", None)
        if pending is not None:
            self.windows, self._pending_windows = pending, None

    def _next_windows(self, q_active: torch.Tensor, d_active: torch.Tensor) -> tuple[int, int]:
        """Dynamic LFW on the batch's active-term counts taken before windowing (see ``ops.dynamic_window``)."""
        cfg = self.config
        wq = self.windows[0] if self.windows[0] in cfg.lfw_dynamic_query else cfg.lfw_dynamic_query[0]
        wd = self.windows[1] if self.windows[1] in cfg.lfw_dynamic_doc else cfg.lfw_dynamic_doc[0]
        return (ops.dynamic_window(q_active, tuple(cfg.lfw_dynamic_query), wq),
                ops.dynamic_window(d_active, tuple(cfg.lfw_dynamic_doc), wd))

    def scoring_vectors(self, texts, side):
        """What search scores with: windowed weights, normalised as configured (a query's score is the dot product)."""
        weights, _ = self.represent(texts, side)
        empty = weights[:0]
        q, d = ops.normalise(weights, empty, self.config.normalisation) if side == "query" else \
            ops.normalise(empty, weights, self.config.normalisation)
        return q if side == "query" else d

    @property
    def validation_batch_size(self) -> int:
        """Texts per validation micro-batch: ~64 MB of vocabulary-sized fp32 rows (a few live at once)."""
        return int(max(1, min(64, (64 * 2**20) // (4 * 8 * self.vocab_size))))

    def save(self, path: Path) -> None:
        path = Path(path)
        self.backbone.save_pretrained(str(path / "backbone"))
        self.tokenizer.save_pretrained(str(path / "backbone"))
        if self.fc is not None:
            torch.save(self.fc.state_dict(), path / "lrn_fc.pt")
        if self.output_ids is not None:
            (path / OUTPUT_VOCABULARY_FILE).write_text(json.dumps({"kept": self.output_ids.tolist()}))
        if hasattr(self, "vocab_bias"):
            torch.save(self.vocab_bias.detach().cpu(), path / "vocab_bias.pt")
        (path / "provenance.json").write_text(json.dumps(self.provenance, ensure_ascii=False, indent=2))
        (path / "windows.json").write_text(json.dumps(list(self.windows)))

    def load_weights(self, path: Path) -> None:
        path = Path(path)
        loaded = self._auto_class().from_pretrained(str(path / "backbone"), local_files_only=True,
                                                    dtype=self.plan.load_dtype)
        self.backbone.load_state_dict(loaded.state_dict())
        if hasattr(self, "vocab_bias"):
            with torch.no_grad():
                self.vocab_bias.copy_(torch.load(path / "vocab_bias.pt", weights_only=True, map_location="cpu"))
        if self.fc is not None:
            self.fc.load_state_dict(torch.load(path / "lrn_fc.pt", weights_only=True, map_location="cpu"))
        self.windows = self._read_windows(path) or self.windows

    @staticmethod
    def _read_windows(path: Path) -> tuple[int | None, int | None] | None:
        file = Path(path) / "windows.json"
        return tuple(json.loads(file.read_text())) if file.exists() else None

    @torch.no_grad()
    def encode_sparse(self, texts: Sequence[str], side: str, batch_size: int) -> sp.csr_matrix:
        self.eval()

        def block(batch: list[str]) -> sp.csr_matrix:
            weights, _ = self.represent(batch, side)
            if side == "doc":
                # a document-side normalisation changes the ranking, so the index stores normalised documents; a
                # query-side one only rescales each query's scores and is left out of serving
                _, weights = ops.normalise(weights[:0], weights, self.config.normalisation)
            return sp.csr_matrix(weights.float().cpu().numpy())

        rows = encode_in_length_order(list(texts), batch_size, block, desc=f"encoding {side}s")
        return rows if rows is not None else sp.csr_matrix((0, self.vocab_size), dtype=np.float32)

    def top_terms(self, text: str, side: str, n: int = 20) -> list[tuple[str, float, bool]]:
        """(token, weight, is_literal) of the heaviest terms: the paper's Tables 7-8 view."""
        with torch.no_grad():
            weights, _, indicator = self.forward_side([text], side)
            weights = ops.conditional_topk(weights, self.windows[0] if side == "query" else self.windows[1])
        values, ids = torch.topk(weights[0], min(n, int((weights[0] > 0).sum())))
        real = ids.tolist() if self.output_ids is None else self.output_ids[ids.cpu()].tolist()
        tokens = self.tokenizer.convert_ids_to_tokens(real)
        hf = getattr(self.tokenizer, "hf", self.tokenizer)
        readable = [readable_token(hf, t) for t in tokens]
        return [(r, float(v), bool(indicator[0, i] > 0)) for r, v, i in zip(readable, values, ids, strict=True)]


class SparseRetriever(ImpactRetriever):
    """Trains a :class:`SparseEncoder`, indexes the corpus into the project's inverted index, searches it."""

    config_class = SparseConfig
    needs_training = True

    def __init__(self, config: SparseConfig | None = None):
        super().__init__(config)
        nested_from_dicts(self.config, SparseConfig(), ("scratch", "train", "train_pretrained"))
        self.encoder: SparseEncoder | None = None

    def fit(self, train_queries, train_qrels, corpus, work_dir: Path) -> None:
        torch.set_num_threads(threads_per_process(self.config.threads))
        pairs = training_pairs(dict(train_queries), dict(train_qrels), dict(corpus))
        self.encoder = SparseEncoder(self.config, texts=list(corpus.values()) + [q for q, _ in pairs])
        device = torch_device(self.config.device)
        self.encoder.to(device)
        train_config, preset = training_preset(self.config, self.encoder.provenance["kind"])
        self.encoder.train_config = train_config
        self._provenance["compute"] = {**device_provenance(device), **self.encoder.plan.describe()}
        summary = train(self.encoder, pairs, train_config, Path(work_dir) / "checkpoints",
                        corpus_passages=list(corpus.values()))
        if is_main():  # under torchrun every process trained the same model
            self.encoder.save(Path(work_dir) / "model")
        self._provenance.update({"model": self.encoder.provenance, "training": {"preset": preset, **summary}})

    def encode(self, texts: list[str], side: str) -> sp.csr_matrix:
        if self.encoder is None:
            raise RuntimeError("fit() the sparse retriever before indexing (or load() a trained one)")
        return self.encoder.encode_sparse(texts, side, self.config.encode_batch_size)

    def load_model(self, model_dir: Path) -> None:
        self.encoder = SparseEncoder(self.config, model_dir=model_dir).to(torch_device(self.config.device))

    def explain(self, text: str, side: str, n: int = 20) -> list[tuple[str, float, bool]]:
        return self.encoder.top_terms(text, side, n)
