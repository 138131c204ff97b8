"""Leaderboard regression (2CR style), the repository's leaderboard file, and loading older result files."""

from __future__ import annotations

import json

import pytest
import yaml

from benchmark.cli import main
from benchmark.leaderboard import LEADERBOARD_FILE, load_leaderboard, status
from benchmark.registry import load_registry
from benchmark.results import find_results, load_result


def test_status_bands():
    assert status(0.8045, 0.80452, 0.002) == "ok"  # equal to the 4 printed decimals
    assert status(0.8045, 0.8060, 0.002) == "fail"  # a CPU run is bit-reproducible: no tolerance
    assert status(0.8045, 0.8060, 0.002, reproducible=False) == "okish"  # a GPU run or a paper row
    assert status(0.8045, 0.8100, 0.002, reproducible=False) == "fail"
    assert status(0.8045, None, 0.002) == "fail"


def test_repository_leaderboard_is_consistent():
    board = load_leaderboard(LEADERBOARD_FILE)
    registry = load_registry()
    checked = [e for e in board.entries if e.check]
    assert {e.dataset for e in checked} >= {"demo", "multicpr-ecom-pool"}
    for entry in checked:
        assert entry.retriever in registry, entry
    paper = board.for_dataset("multicpr-ecom")
    assert len(paper) == 17 and not any(e.check for e in paper)  # every Table 2 row, reference only
    prosper = next(e for e in paper if e.retriever == "prosper")
    assert prosper.metrics["MRR@10"] == pytest.approx(0.3285) and prosper.metrics["Hit@1000"] == pytest.approx(0.939)


def _board(tmp_path, entries, dataset="demo"):
    path = tmp_path / f"board-{len(list(tmp_path.glob('board-*')))}.yaml"
    path.write_text(yaml.safe_dump({"datasets": {dataset: {"entries": entries}}}))
    return path


def _check_temp_folders():
    import tempfile
    from pathlib import Path

    return set(Path(tempfile.gettempdir()).glob("prosper-bench-check-*"))


def test_check_reruns_and_grades_cpu_results_exactly(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(out)]) == 0
    measured = load_result(find_results(out, "demo", "bm25s-bert")[0])["metrics"]["MRR@10"]
    path = _board(tmp_path, {"bm25s-bert": {"check": True, "tolerance": 0.01,
                                            "metrics": {"MRR@10": round(measured, 4), "Hit@10": 0.0}}})
    before = _check_temp_folders()
    capsys.readouterr()
    assert main(["check", "--leaderboard", str(path)]) == 1  # Hit@10 fails
    out_text = capsys.readouterr().out
    assert "[OK   ] demo" in out_text and "[FAIL ] demo" in out_text and "1 ok, 0 okish, 1 fail" in out_text
    assert _check_temp_folders() == before  # no temporary results or cache left behind

    # within the tolerance, but a CPU run is deterministic: anything but equal is a regression
    path = _board(tmp_path, {"bm25s-bert": {"check": True, "tolerance": 0.01, "metrics": {"MRR@10": round(measured + 0.005, 4)}}})
    assert main(["check", "--leaderboard", str(path)]) == 1
    assert "0 ok, 0 okish, 1 fail" in capsys.readouterr().out


def test_check_measures_the_code_under_test_not_a_stale_cache(tmp_path, capsys, monkeypatch):
    """Indexing broken after an index was cached: the default check rebuilds and fails; --reuse-cache would pass."""
    from retrievers.bm25 import BM25Retriever

    out = tmp_path / "results"
    assert main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(out)]) == 0  # warm cache, correct code
    measured = load_result(find_results(out, "demo", "bm25s-bert")[0])["metrics"]["MRR@10"]
    path = _board(tmp_path, {"bm25s-bert": {"check": True, "metrics": {"MRR@10": round(measured, 4)}}})
    original = BM25Retriever._tokenize

    def first_five_tokens(self, texts, desc):
        tokens = original(self, texts, desc)
        return [t[:5] for t in tokens] if desc == "tokenizing corpus" else tokens

    monkeypatch.setattr(BM25Retriever, "_tokenize", first_five_tokens)
    capsys.readouterr()
    assert main(["check", "--leaderboard", str(path), "--reuse-cache"]) == 0  # what CI once did: stale index, "ok"
    assert main(["check", "--leaderboard", str(path)]) == 1
    assert "0 ok, 0 okish, 1 fail" in capsys.readouterr().out


def _fake_result(folder, config, metrics, comparable=True, kind="pretrained", stamp="20260101T000000Z"):
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"metrics": metrics, "dataset": {"comparable_to_paper": comparable, "corpus_label": "full"},
               "provenance": {"tokenizer": {"kind": kind}}, "retriever": {"config": config}}
    (folder / f"{stamp}-0123456789ab.json").write_text(json.dumps(payload, default=str))


def test_check_grades_paper_rows_only_against_comparable_results_of_the_registered_config(tmp_path, capsys):
    import dataclasses

    from benchmark.registry import get_spec

    registered = dataclasses.asdict(get_spec("bm25-bert").build().config)
    path = _board(tmp_path, {"bm25-bert": {"source": "paper", "tolerance": 0.01, "metrics": {"MRR@10": 0.2348}}},
                  dataset="multicpr-ecom")
    assert main(["check", "--leaderboard", str(path), "--results", str(tmp_path)]) == 0  # nothing to compare
    target = tmp_path / "multicpr-ecom" / "bm25-bert"
    _fake_result(target, {**registered, "k1": 0.9}, {"MRR@10": 0.10}, stamp="20260301T000000Z")  # another config
    _fake_result(target, {**registered, "latency_queries": 5}, {"MRR@10": 0.2400},  # how it was timed: same config
                 stamp="20260201T000000Z")
    capsys.readouterr()
    assert main(["check", "--leaderboard", str(path), "--results", str(tmp_path)]) == 0
    assert "0 ok, 1 okish, 0 fail" in capsys.readouterr().out  # a reproduction approaches a paper row
    _fake_result(target, registered, {"MRR@10": 0.20}, stamp="20260202T000000Z")
    assert main(["check", "--leaderboard", str(path), "--results", str(tmp_path)]) == 1
    assert "[FAIL ] multicpr-ecom" in capsys.readouterr().out
    _fake_result(target, registered, {"MRR@10": 0.2348}, kind="stand-in", stamp="20260203T000000Z")
    assert main(["check", "--leaderboard", str(path), "--results", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "not comparable" in text and "stand-in" in text and "[OK" not in text  # never graded, either way


def test_older_result_files_still_load_and_newer_ones_are_refused(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"metrics": {"MRR@10": 0.5}}))  # schema 0: before schema_version existed
    assert load_result(old)["metrics"]["MRR@10"] == 0.5
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"schema_version": 999, "metrics": {}}))
    with pytest.raises(ValueError, match="newer"):
        load_result(new)
