"""Tokenizers by their real Hugging Face ids, with documented stand-ins when the files are not on this machine.

Why stand-ins: pretrained tokenizer files cannot be downloaded here. Rather than fail (or silently use something else),
:func:`load_tokenizer` first tries the real files (a local path, or the local Hugging Face cache, never the network),
and otherwise trains a tokenizer of the same *family* on the given texts:

- ``bert-base-chinese`` -> WordPiece with BERT's basic tokenization (one token per CJK character, lower-cased,
  punctuation split); vocabulary = every CJK ideograph (as bert-base-chinese covers them), every character seen, and
  the most frequent whole words of the texts (see :func:`_wordpiece_stand_in`); <= 32,000 entries.
- ``Qwen/Qwen2.5-*`` -> byte-level BPE (GPT-2 style pre-tokenization, as Qwen2 uses) trained on the texts, vocabulary
  <= 32,000 (Qwen2.5 has 151,643; a corpus of thousands of passages cannot fill more).

Every caller records :attr:`Tokenizer.provenance` in its result file, so a stand-in is never mistaken for the real one.
Trained stand-ins are cached by a hash of their training texts and settings.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
) -> Tokenizer:
    """Load ``model_id``'s real tokenizer from ``path`` or the local HF cache; else train the stand-in on ``train_texts``."""
    from transformers import AutoTokenizer

    source = str(path) if path else model_id
    try:
        hf = AutoTokenizer.from_pretrained(source, local_files_only=True)
        return Tokenizer(hf, {"model_id": model_id, "kind": "pretrained", "source": source, "vocab_size": len(hf)})
    except (OSError, ValueError) as err:
        if path:
            raise FileNotFoundError(f"no tokenizer files for {model_id!r} at {path}: {err}") from err
        if not allow_stand_in:
            raise FileNotFoundError(
                f"tokenizer {model_id!r} is not in the local Hugging Face cache and cannot be downloaded here"
            ) from err
    if train_texts is None:
        raise ValueError(f"{model_id!r} is not available locally; a stand-in needs train_texts to learn from")
    return train_stand_in(model_id, list(train_texts), cache=cache, vocab_size=vocab_size)


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
        from retrievers.cache import cache_dir

        cache = cache_dir() / "tokenizers"
    target = Path(cache) / f"{family}-{key}"
    provenance = {
        "model_id": model_id,
        "kind": "stand-in",
        "family": family,
        "trained_on_texts": len(texts),
        "training_hash": key,
        "note": f"{model_id} files absent: {family} tokenizer trained on the dataset's texts (see retrievers/tokenization.py)",
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
    if not target.exists():
        os.replace(tmp, target)
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
        return PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
