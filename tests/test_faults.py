"""Bad input and faults: no silent wrong number, no lost or half-written file, every refusal one line before the work.

Each case is what a new user tried (a fresh clone, about 40 bad inputs and faults); each either works correctly or is
refused with one ``error:`` line naming the file, line or key (exit 2 for bad input) before any training or encoding.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
from pathlib import Path

import pytest

from benchmark.cli.main import main
from benchmark.records.results import find_results, load_result


def _one_line_error(capsys, code_expected: int, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == code_expected, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize(("name", "setting", "needle"), [
    ("prosper", "backbone=gpt9", "backbone must be one of"),
    ("bm25-bert", "backend=elastic", "backend must be one of"),
    ("bge-base", "index_type=hnws", "did you mean hnsw"),
    ("prosper", "train.epochs=0", "train.epochs must be at least 1"),
    ("prosper", "train.epochs=-1", "train.epochs must be at least 1"),
    ("prosper", "train.lr=-1", "train.lr must be greater than 0"),
    ("prosper", "train.batch_size=0", "train.batch_size must be at least 1"),
    ("prosper", "lfw_query=0", "lfw_query must be at least 1 or null"),
    ("e5-small", "allow_scratch=true", "zero-shot row"),
    ("splade", "echo=true", "causal backbones"),
])
def test_a_bad_setting_is_refused_before_any_work(name, setting, needle, capsys, tmp_path):
    code = main(["run", name, "--dataset", "demo", "--output", str(tmp_path), "--set", setting])
    _one_line_error(capsys, 2, code, needle, setting.split("=")[0])
    assert not list(tmp_path.iterdir())  # nothing was written
    cache = Path(os.environ["PROSPER_BENCH_CACHE"]) / "indexes"
    assert not any(p.name.startswith(name + "-") and "gpt9" in p.name for p in cache.rglob("*"))


def test_the_allow_scratch_hint_is_never_given_where_it_cannot_work():
    """A row registered with allow_scratch: false is refused with what works (weights), not a flag that does not."""
    from retrievers.resources.model_loading import ScratchRefused, pretrained_or_scratch

    with pytest.raises(ScratchRefused) as refused:
        pretrained_or_scratch("org/no-such-model", None, allow_scratch=False)
    assert "--allow-scratch" not in str(refused.value) and "model_path" in str(refused.value)


def _write_pool_like(folder: Path, qrels_lines: list[str]) -> Path:
    (folder / "ecom").mkdir(parents=True)
    (folder / "ecom" / "corpus.partial.tsv").write_text("p1\t华为 手机\np2\t苹果 手机\np3\t小米 电视\n", encoding="utf-8")
    (folder / "ecom" / "dev.query.txt").write_text("q1\t华为\nq2\t电视\nq3\t苹果\n", encoding="utf-8")
    (folder / "ecom" / "qrels.dev.tsv").write_text("".join(qrels_lines), encoding="utf-8")
    return folder


def test_a_query_judged_only_not_relevant_is_left_out_and_counted(tmp_path):
    from benchmark.data.datasets import load_dataset
    from benchmark.evaluation.measures import evaluate

    folder = _write_pool_like(tmp_path, ["q1\t0\tp1\t1\n", "q2\t0\tp3\t1\n", "q3\t0\tp2\t0\n"])
    data = load_dataset("multicpr-ecom-pool", data_dir=folder, with_train=False, verify=False)
    run = {"q1": [("p1", 2.0)], "q2": [("p3", 1.0)], "q3": [("p2", 1.0)]}
    metrics = evaluate(run, data.qrels)
    assert metrics["MRR@10"] == 1.0 and metrics["queries"] == 2  # q3 has no right answer: not a 0 in the mean
    assert metrics["queries_without_relevant_passages"] == 1


def test_a_qrels_line_repeated_with_another_relevance_is_refused_naming_both_lines(tmp_path):
    from benchmark.data.datasets import load_dataset
    from benchmark.data.files import DataFormatError

    folder = _write_pool_like(tmp_path, ["q1\t0\tp1\t1\n", "q2\t0\tp3\t1\n", "q1\t0\tp1\t0\n"])
    with pytest.raises(DataFormatError, match=r"qrels.dev.tsv:3: .*again with relevance 0, after 1 on line 1"):
        load_dataset("multicpr-ecom-pool", data_dir=folder, with_train=False, verify=False)


def test_eval_refuses_runs_it_cannot_rank_and_reads_gzip(tmp_path, capsys, demo):
    qids = list(demo.qrels)
    unknown = tmp_path / "unknown.trec"
    unknown.write_text("".join(f"{q} Q0 nope{i} 1 1.0 x\n" for i, q in enumerate(qids)))
    _one_line_error(capsys, 2, main(["eval", str(unknown), "--dataset", "demo"]), "none of the", "passage ids")
    nan = tmp_path / "nan.trec"
    nan.write_text("".join(f"{q} Q0 {next(iter(demo.qrels[q]))} 1 nan x\n" for q in qids))
    _one_line_error(capsys, 2, main(["eval", str(nan), "--dataset", "demo"]), "nan.trec:1:", "not a finite number")
    plain = tmp_path / "ok.trec"
    plain.write_text("".join(f"{q} Q0 {next(iter(demo.qrels[q]))} 1 1.0 x\n" for q in qids))
    zipped = tmp_path / "ok.trec.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    assert main(["eval", str(plain), "--dataset", "demo"]) == 0
    first = capsys.readouterr().out
    assert main(["eval", str(zipped), "--dataset", "demo"]) == 0
    assert capsys.readouterr().out == first and "MRR@10" in first


def test_eval_agrees_with_pytrec_eval_on_unknown_passages_and_ties(tmp_path, demo):
    """Comparison tier: a run with passages outside the corpus and tied scores gives pytrec_eval's numbers."""
    import random

    import pytrec_eval

    from benchmark.evaluation.measures import per_query
    from benchmark.evaluation.runfile import read_trec_run

    rng = random.Random(0)
    pids = list(demo.corpus)
    lines = []
    for q in demo.qrels:
        others = [p for p in rng.sample(pids, 31) if p not in demo.qrels[q]][:30]  # no passage twice
        hits = others + [f"ghost{i}" for i in range(5)] + list(demo.qrels[q])
        lines += [f"{q} Q0 {d} {r} {float(rng.randrange(4))} x\n" for r, d in enumerate(hits, start=1)]
    path = tmp_path / "mixed.trec"
    path.write_text("".join(lines))
    run = read_trec_run(path)
    ours = per_query(run, demo.qrels)
    reference = pytrec_eval.RelevanceEvaluator(demo.qrels, {"recip_rank", "ndcg_cut_10", "success_10"}).evaluate(
        {q: {d: s for d, s in hits} for q, hits in run.items()})
    for q in demo.qrels:
        rr = reference[q]["recip_rank"]
        assert ours["MRR@10"][q] == pytest.approx(rr if rr >= 0.1 else 0.0)
        assert ours["nDCG@10"][q] == pytest.approx(reference[q]["ndcg_cut_10"])
        assert ours["Hit@10"][q] == reference[q]["success_10"]


def test_report_and_plot_of_an_unknown_dataset_leave_the_report_alone(tmp_path, capsys):
    report = tmp_path / "REPORT.md"
    report.write_text("the old report\n")
    code = main(["report", "--results", str(tmp_path), "--dataset", "demoo", "--out", str(report)])
    _one_line_error(capsys, 2, code, "no results for ['demoo']")
    assert report.read_text() == "the old report\n"
    _one_line_error(capsys, 2, main(["plot", "--results", str(tmp_path), "--dataset", "demoo"]), "demoo")


def test_a_truncated_or_stray_json_is_skipped_with_a_line_naming_it(tmp_path, capsys, caplog):
    assert main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(tmp_path), "--set", "latency_queries=5"]) == 0
    (good,) = find_results(tmp_path, "demo")
    (good.parent / "20990101T000000Z-broken.json").write_text(good.read_text()[:200])
    (tmp_path / "demo" / "notes").mkdir()
    (tmp_path / "demo" / "notes" / "todo.json").write_text("[1, 2]")
    capsys.readouterr()
    with caplog.at_level("WARNING"):
        assert main(["report", "--results", str(tmp_path)]) == 0
        assert main(["plot", "--results", str(tmp_path)]) == 0
    assert "20990101T000000Z-broken.json" in caplog.text and "invalid JSON" in caplog.text
    assert "todo.json" in caplog.text
    assert "| bm25s-bert |" in (tmp_path / "REPORT.md").read_text()


def test_an_unwritable_output_is_refused_before_any_work(tmp_path, capsys):
    a_file = tmp_path / "results.txt"
    a_file.write_text("x")
    _one_line_error(capsys, 2, main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(a_file)]), "is a file")
    _one_line_error(capsys, 2, main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(a_file / "sub")]),
                    "is a file")
    if os.geteuid() != 0:  # root writes into a read-only folder anyway
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        _one_line_error(capsys, 2, main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(locked)]),
                        "not writable")


def test_a_full_disk_leaves_neither_half_a_result_nor_a_hidden_file_and_says_what_it_measured(tmp_path, capsys,
                                                                                              monkeypatch):
    import benchmark.evaluation.runfile
    import retrievers.trec

    def full_disk(run, path, tag="x"):
        Path(path).with_name(f".{Path(path).name}.tmp").write_text("partial")
        Path(path).with_name(f".{Path(path).name}.tmp").unlink()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(retrievers.trec, "write_trec_run", full_disk)
    monkeypatch.setattr(benchmark.evaluation.runfile, "write_trec_run", full_disk)
    code = main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(tmp_path), "--set", "latency_queries=5"])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "MRR@10 0." in err and "Traceback" not in err
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no JSON, no per-query file, no hidden temporaries


def test_a_query_that_tokenizes_to_nothing_gets_an_empty_ranking(tmp_path):
    from retrievers.bm25 import BM25Config, BM25Retriever

    retriever = BM25Retriever(BM25Config(backend="bm25s", latency_queries=2))
    retriever.index({"p1": "华为 手机", "p2": "小米 电视"}, tmp_path)
    run = retriever.search({"zero-width": "\u200b", "real": "华为"}, k=5)
    assert run["zero-width"] == [] and run["real"][0][0] == "p1"


@pytest.mark.slow
def test_a_flipped_byte_in_a_cached_index_is_rebuilt_from_the_sealed_model_without_retraining(tmp_path, caplog):
    tiny = ["--set", "scratch.hidden_size=16", "--set", "scratch.layers=1", "--set", "scratch.intermediate_size=32",
            "--set", "train.epochs=1", "--set", "latency_queries=5"]
    args = ["run", "prosper", "--dataset", "demo", "--output", str(tmp_path), *tiny]
    assert main(args) == 0
    (first,) = find_results(tmp_path, "demo")
    before = load_result(first)
    entry = Path(os.environ["PROSPER_BENCH_CACHE"]) / before["index"]["entry"]
    target = next((entry / "inverted").glob("impacts.npy"))
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        assert main(args) == 0
    assert "rebuilding the index from the sealed, intact model (no retraining)" in caplog.text
    second = max(find_results(tmp_path, "demo"), key=lambda p: p.name)
    after = load_result(second)
    assert "train" not in after["cost"]["stages"] and after["metrics"] == before["metrics"]
    assert after["provenance"]["training"]["history"] == before["provenance"]["training"]["history"]


def test_a_failed_build_leaves_no_cache_entry(tmp_path, monkeypatch):
    from retrievers.sparse import SparseRetriever

    def broken(self, *args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(SparseRetriever, "fit", broken)
    cache = Path(os.environ["PROSPER_BENCH_CACHE"]) / "indexes"
    before = set(cache.rglob("prosper-*")) if cache.exists() else set()
    with pytest.raises(RuntimeError, match="simulated"):
        main(["run", "prosper", "--dataset", "demo", "--output", str(tmp_path), "--set", "train.epochs=2"])
    after = {p for p in cache.rglob("prosper-*") if not p.name.endswith(".lock")}
    assert after <= before


def test_two_processes_generating_one_demo_set_both_succeed_whichever_renames_second(tmp_path, monkeypatch):
    """The race CI hit: both saw no folder, the first renamed its copy in, the second's rename failed ENOTEMPTY."""
    from benchmark.data import demo
    from retrievers.resources.cache import publish_folder

    params = {"seed": 3, "products": 40, "train_queries": 20, "dev_queries": 10}
    first = demo.materialize_demo(params, root=tmp_path)
    # the second process looked before the first had renamed its folder in: make every look miss, as it did
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda self: False if self.name in ("DONE", first.name) else real_exists(self))
    second = demo.materialize_demo(params, root=tmp_path)
    monkeypatch.undo()
    assert second == first and (first / "DONE").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]  # the loser's copy is gone
    stray = tmp_path / "stray"
    stray.mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):  # a target that is a file, not a published folder, is still an error
        publish_folder(stray, tmp_path / "file")


def test_leaderboard_and_result_json_problems_name_their_file(tmp_path):
    from benchmark.records.results import ResultFileError

    bad = tmp_path / "x.json"
    bad.write_text('{"metrics": {"MRR@10": 0.5')
    with pytest.raises(ResultFileError, match=r"x.json: not a result file \(invalid JSON"):
        load_result(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(ResultFileError, match="no metrics"):
        load_result(bad)
