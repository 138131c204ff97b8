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
    assert status(0.8045, 0.8060, 0.002) == "okish"
    assert status(0.8045, 0.8100, 0.002) == "fail"
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


def test_check_reruns_and_grades(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(out)]) == 0
    measured = load_result(find_results(out, "demo", "bm25s-bert")[0])["metrics"]["MRR@10"]
    board = {"datasets": {"demo": {"entries": {
        "bm25s-bert": {"check": True, "tolerance": 0.01, "metrics": {"MRR@10": round(measured, 4),
                                                                     "Hit@10": 0.0}},
    }}}}
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(board))
    capsys.readouterr()
    assert main(["check", "--leaderboard", str(path), "--output", str(tmp_path / "rerun")]) == 1  # Hit@10 fails
    out_text = capsys.readouterr().out
    assert "[OK   ] demo" in out_text and "[FAIL ] demo" in out_text and "1 ok, 0 okish, 1 fail" in out_text

    board["datasets"]["demo"]["entries"]["bm25s-bert"]["metrics"] = {"MRR@10": round(measured + 0.005, 4)}
    path.write_text(yaml.safe_dump(board))
    assert main(["check", "--leaderboard", str(path), "--output", str(tmp_path / "rerun")]) == 0
    assert "0 ok, 1 okish, 0 fail" in capsys.readouterr().out


def test_check_compares_reference_rows_with_existing_results_only(tmp_path, capsys):
    board = {"datasets": {"multicpr-ecom": {"entries": {"bm25-bert": {"metrics": {"MRR@10": 0.2348}}}}}}
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(board))
    assert main(["check", "--leaderboard", str(path), "--results", str(tmp_path)]) == 0  # nothing to compare
    target = tmp_path / "multicpr-ecom" / "bm25-bert"
    target.mkdir(parents=True)
    (target / "20260101T000000Z-abc.json").write_text(json.dumps({"metrics": {"MRR@10": 0.20}}))
    capsys.readouterr()
    assert main(["check", "--leaderboard", str(path), "--results", str(tmp_path)]) == 1
    assert "[FAIL ] multicpr-ecom" in capsys.readouterr().out


def test_older_result_files_still_load_and_newer_ones_are_refused(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"metrics": {"MRR@10": 0.5}}))  # schema 0: before schema_version existed
    assert load_result(old)["metrics"]["MRR@10"] == 0.5
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"schema_version": 999, "metrics": {}}))
    with pytest.raises(ValueError, match="newer"):
        load_result(new)
