"""The data layer: official format, the pool protocol, the demo set, and every bad-input case."""

from __future__ import annotations

import pytest

from benchmark.data.datasets import load_dataset, load_manifest
from benchmark.data.demo import generate_demo
from benchmark.data.files import DataError, DataFormatError, read_id_text


def test_pool_loads_with_every_dev_positive(pool):
    assert len(pool.corpus) == 2987
    assert len(pool.queries) == 1000 and len(pool.qrels) == 1000
    assert all(pid in pool.corpus for docs in pool.qrels.values() for pid in docs)
    assert pool.queries["200000"] == "大落地窗" and pool.qrels["200000"] == {"260": 1}
    # train positives outside the pool are skipped *and counted*, never silently dropped
    assert sum(len(v) for v in pool.train_qrels.values()) == 182
    assert pool.skipped == {"train qrels whose passage is not in the corpus": 100000 - 182}
    assert pool.corpus_label == "pool" and not pool.comparable_to_paper
    assert any("not comparable" in note for note in pool.notes)
    assert any("2,987-passage pool" in note for note in pool.notes)


def test_fingerprint_is_sha256_of_the_files(pool, multicpr_dir):
    import hashlib

    expected = hashlib.sha256((multicpr_dir / "ecom" / "dev.query.txt").read_bytes()).hexdigest()
    assert pool.files["queries"]["sha256"] == expected == load_manifest("multicpr-ecom-pool").file("queries").sha256
    assert len(pool.fingerprint) == 64


def test_full_corpus_dataset_names_data_dir_when_missing(tmp_path):
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("multicpr-ecom", data_dir=tmp_path, download=False)


def test_download_failure_names_data_dir(tmp_path, monkeypatch):
    import benchmark.data.datasets as data

    def refuse(*args, **kwargs):
        raise data.urllib.error.URLError("no network")

    monkeypatch.setattr(data.urllib.request, "urlopen", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the test session is offline by default
    with pytest.raises(DataError, match="--data-dir") as err:
        load_dataset("multicpr-video", data_dir=tmp_path)
    assert "could not be downloaded" in str(err.value)


def test_checksum_mismatch_is_an_error_unless_no_verify(tmp_path, multicpr_dir):
    ecom = tmp_path / "ecom"
    ecom.mkdir()
    for name in ("corpus.partial.tsv", "qrels.dev.tsv"):
        (ecom / name).write_bytes((multicpr_dir / "ecom" / name).read_bytes())
    lines = (multicpr_dir / "ecom" / "dev.query.txt").read_text(encoding="utf-8").splitlines()
    lines[0] = "200000\t大 落地窗"  # edited text: same row count, different hash
    (ecom / "dev.query.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="sha256"):
        load_dataset("multicpr-ecom-pool", data_dir=tmp_path, with_train=False, download=False)
    dataset = load_dataset("multicpr-ecom-pool", data_dir=tmp_path, with_train=False, verify=False, download=False)
    assert dataset.queries["200000"] == "大 落地窗"


# --------------------------------------------------------------------------------------------------- bad input
def _dataset_dir(tmp_path, corpus="p1\t华为手机\np2\t小米电视\n", queries="q1\t手机\n", qrels="q1\t0\tp1\t1\n"):
    ecom = tmp_path / "ecom"
    ecom.mkdir(exist_ok=True)
    for name, text in (("corpus.partial.tsv", corpus), ("dev.query.txt", queries), ("qrels.dev.tsv", qrels)):
        (ecom / name).write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return tmp_path


def _load(tmp_path):
    return load_dataset("multicpr-ecom-pool", data_dir=tmp_path, with_train=False, verify=False, download=False)


def test_small_valid_dataset_loads(tmp_path):
    dataset = _load(_dataset_dir(tmp_path))
    assert dataset.corpus == {"p1": "华为手机", "p2": "小米电视"}
    assert dataset.qrels == {"q1": {"p1": 1}}


@pytest.mark.parametrize(
    ("files", "file_name", "line", "message"),
    [
        ({"corpus": "p1\t华为手机\np2 小米电视\n"}, "corpus.partial.tsv", 2, "malformed passage line"),
        ({"qrels": "q1\t0\tp1\t1\nq1\t0\tp9\t1\n"}, "qrels.dev.tsv", 2, "passage 'p9'"),
        ({"corpus": "p1\t华为手机\np2\t小米电视\np1\t苹果\n"}, "corpus.partial.tsv", 3, "duplicate passage id 'p1'"),
        ({"queries": "q1\t手机\nq2\t \n"}, "dev.query.txt", 2, "empty query text"),
        ({"queries": "q1\t手机\n".encode() + b"q2\t\xff\n"}, "dev.query.txt", 2, "not valid UTF-8"),
        ({"qrels": "q1\t0\tp1\n"}, "qrels.dev.tsv", 1, "expected 4 fields"),
        ({"qrels": "q1\t0\tp1\tyes\n"}, "qrels.dev.tsv", 1, "not an integer"),
        ({"qrels": "q7\t0\tp1\t1\n"}, "qrels.dev.tsv", 1, "query 'q7'"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, files, file_name, line, message):
    directory = _dataset_dir(tmp_path, **files)
    with pytest.raises(DataFormatError, match=message) as err:
        _load(directory)
    assert err.value.path.endswith(file_name)
    assert err.value.line == line
    assert f"{file_name}:{line}:" in str(err.value)


def test_non_utf8_in_the_bytes_of_a_chinese_line(tmp_path):
    path = tmp_path / "corpus.tsv"
    path.write_bytes("p1\t华为\n".encode() + b"p2\t\xe5\x8d\n")  # truncated multi-byte character
    with pytest.raises(DataFormatError, match=r"corpus.tsv:2: not valid UTF-8"):
        read_id_text(path, "passage")


def test_empty_passage_is_counted_not_silent(tmp_path):
    dataset = _load(_dataset_dir(tmp_path, corpus="p1\t华为手机\np2\t\np3\t小米\n"))
    assert set(dataset.corpus) == {"p1", "p3"}
    assert dataset.skipped == {"empty passage": 1}
    assert "skipped 1 empty passage" in dataset.notes


def test_qrels_pointing_at_empty_passage_is_an_error(tmp_path):
    with pytest.raises(DataFormatError, match="passage 'p2'"):
        _load(_dataset_dir(tmp_path, corpus="p1\t华为手机\np2\t\n", qrels="q1\t0\tp2\t1\n"))


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(DataError, match="multicpr-ecom-pool"):
        load_dataset("nope")


# ------------------------------------------------------------------------------------------------------- demo
def test_demo_is_deterministic_and_has_both_query_kinds():
    a, b = generate_demo(seed=5, products=300, train_queries=100, dev_queries=50), generate_demo(
        seed=5, products=300, train_queries=100, dev_queries=50
    )
    assert a == b
    assert generate_demo(seed=6, products=300, train_queries=100, dev_queries=50) != a
    kinds = {kind for *_, kind in a["dev"]}
    assert kinds == {"literal", "expansion"}


def test_demo_queries_need_what_their_kind_says():
    data = generate_demo(seed=1, products=400, train_queries=200, dev_queries=100)
    for _, text, pid, kind in data["train"] + data["dev"]:
        title = data["corpus"][pid]
        model = title.split()[1]
        if kind == "literal":
            assert model in text  # the exact model number is the literal match
        else:
            assert model not in text
            # the brand is written in the other script and the category by a word the title does not use
            assert text.split()[0] not in title.split()
            assert text.split()[1] not in title.split()


def test_demo_dataset_loads_through_the_official_format(demo):
    assert len(demo.corpus) == 2000 and len(demo.queries) == 400 and len(demo.train_qrels) == 1600
    assert demo.corpus_label == "demo"
    assert set(demo.queries).isdisjoint(demo.train_queries)


# ------------------------------------------------------------------------------------------- verification, names
def test_a_pool_with_passages_deleted_is_refused(tmp_path, multicpr_dir):
    ecom = tmp_path / "ecom"
    ecom.mkdir()
    for name in ("dev.query.txt", "qrels.dev.tsv"):
        (ecom / name).write_bytes((multicpr_dir / "ecom" / name).read_bytes())
    lines = (multicpr_dir / "ecom" / "corpus.partial.tsv").read_text(encoding="utf-8").splitlines()
    positives = {line.split()[2] for line in (ecom / "qrels.dev.tsv").read_text().splitlines()}
    kept = [line for i, line in enumerate(lines) if line.split("\t")[0] in positives or i % 2]  # ~990 distractors gone
    (ecom / "corpus.partial.tsv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="sha256"):
        load_dataset("multicpr-ecom-pool", data_dir=tmp_path, with_train=False, download=False)
    relabelled = load_dataset("multicpr-ecom-pool", data_dir=tmp_path, corpus_path=ecom / "corpus.partial.tsv",
                              with_train=False, download=False)
    assert relabelled.corpus_label == "custom" and not relabelled.comparable_to_paper  # never called "pool"


@pytest.mark.parametrize("name", ["../results/leaderboard", "/tmp/x", "demo.yaml", "Demo", ""])
def test_a_dataset_is_a_name_never_a_path(name):
    with pytest.raises(DataError, match="dataset name"):
        load_dataset(name)


def test_a_manifest_whose_name_escapes_is_refused(tmp_path, monkeypatch):
    import benchmark.data.datasets as data

    (tmp_path / "evil.yaml").write_text("name: ../../escaped\nformat: multicpr\ncorpus_label: x\n")
    monkeypatch.setattr(data, "MANIFEST_DIR", tmp_path)
    with pytest.raises(DataError, match="its 'name' must be 'evil'"):
        load_dataset("evil")


def test_no_download_fails_at_once_without_touching_the_network(tmp_path, monkeypatch):
    import benchmark.data.datasets as data

    def forbidden(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(data.urllib.request, "urlopen", forbidden)
    with pytest.raises(DataError, match="needs corpus.tsv"):
        load_dataset("multicpr-video", data_dir=tmp_path, download=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="needs corpus.tsv"):
        load_dataset("multicpr-video", data_dir=tmp_path)


def test_an_empty_corpus_and_a_missing_folder_say_so(tmp_path):
    with pytest.raises(DataError, match="the corpus is empty"):
        _load(_dataset_dir(tmp_path, corpus="\n"))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("multicpr-ecom-pool", data_dir=tmp_path / "missing", download=False)
