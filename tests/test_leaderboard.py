"""Leaderboard regression (2CR style), the repository's leaderboard file, and loading older result files."""

from __future__ import annotations

import json

import pytest
import yaml

from benchmark.cli.main import main
from benchmark.records.leaderboard import LEADERBOARD_FILE, load_leaderboard, status
from benchmark.records.results import find_results, load_result
from benchmark.registry import load_registry


def test_status_bands():
    assert status(0.8045, 0.80452, 0.0) == "ok"  # equal to the 4 printed decimals
    assert status(0.8045, 0.8060, 0.0) == "fail"  # no tolerance declared: graded exactly
    assert status(0.8045, 0.8060, 0.002) == "okish"  # a trained entry's measured spread, or a paper row
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
    for entry in board.entries:  # a tolerance says where it comes from; exact entries need none
        if entry.tolerance and not entry.is_paper_row:
            assert entry.tolerance_source, entry
        if not entry.is_paper_row:
            assert {"nDCG@10", "MAP"} <= set(entry.metrics), entry


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

    # no tolerance declared: BM25 computes the same numbers everywhere, so anything but equal is a regression
    path = _board(tmp_path, {"bm25s-bert": {"check": True, "metrics": {"MRR@10": round(measured + 0.005, 4)}}})
    assert main(["check", "--leaderboard", str(path)]) == 1
    assert "0 ok, 0 okish, 1 fail" in capsys.readouterr().out
    # a declared tolerance (a trained entry's measured spread) is applied
    path = _board(tmp_path, {"bm25s-bert": {"check": True, "tolerance": 0.01, "tolerance_source": "test",
                                            "metrics": {"MRR@10": round(measured + 0.005, 4)}}})
    assert main(["check", "--leaderboard", str(path)]) == 0
    assert "0 ok, 1 okish, 0 fail" in capsys.readouterr().out


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


def _fake_result(folder, config, metrics, comparable=True, kind="pretrained", stamp="20260101T000000Z", overrides=None,
                 registered="bm25-bert"):
    from benchmark.records.results import SCHEMA_VERSION

    folder.mkdir(parents=True, exist_ok=True)
    payload = {"schema_version": SCHEMA_VERSION, "metrics": metrics, "k": 1000,
               "dataset": {"comparable_to_paper": comparable, "corpus_label": "full"},
               "provenance": {"tokenizer": {"kind": kind}},
               "retriever": {"name": folder.name, "registered_as": registered, "overrides": overrides or {},
                             "class": "retrievers.bm25:BM25Retriever", "config": config}}
    (folder / f"{stamp}-0123456789ab.json").write_text(json.dumps(payload, default=str))


def test_check_grades_paper_rows_only_against_comparable_results_of_the_registered_config(tmp_path, capsys):
    import dataclasses

    from benchmark.registry import get_spec

    registered = dataclasses.asdict(get_spec("bm25-bert").build().config)
    path = _board(tmp_path, {"bm25-bert": {"source": "paper", "tolerance": 0.01, "metrics": {"MRR@10": 0.2348}}},
                  dataset="multicpr-ecom")
    assert main(["check", "--leaderboard", str(path), "--results", str(tmp_path)]) == 0  # nothing to compare
    target = tmp_path / "multicpr-ecom" / "bm25-bert"
    _fake_result(tmp_path / "multicpr-ecom" / "bm25-bert+k1=0.9", {**registered, "k1": 0.9}, {"MRR@10": 0.10},
                 stamp="20260301T000000Z", overrides={"k1": 0.9})  # another config: never the paper row
    _fake_result(target, {**registered, "latency_queries": 5}, {"MRR@10": 0.2400},  # how it was timed: same config
                 stamp="20260201T000000Z", overrides={"latency_queries": 5})
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
    # the README's way: the paper's weights from a folder (a variant row of its own) is still this row's reproduction
    _fake_result(tmp_path / "multicpr-ecom" / "bm25-bert+model_path=w", {**registered, "tokenizer_path": "/w"},
                 {"MRR@10": 0.2350}, stamp="20260204T000000Z", overrides={"tokenizer_path": "/w"})
    assert main(["check", "--leaderboard", str(path), "--results", str(tmp_path)]) == 0
    assert "1 okish" in capsys.readouterr().out
    # a result with fewer than 1,000 hits per query cannot be graded on Hit@1000
    path = _board(tmp_path, {"bm25-bert": {"source": "paper", "tolerance": 0.01, "metrics": {"Hit@1000": 0.855}}},
                  dataset="multicpr-ecom")
    payload_file = next((tmp_path / "multicpr-ecom" / "bm25-bert+model_path=w").glob("*.json"))
    payload = json.loads(payload_file.read_text())
    payload["k"] = 100
    payload_file.write_text(json.dumps(payload))
    assert main(["check", "--leaderboard", str(path), "--results", str(tmp_path)]) == 1
    assert "k=100" in capsys.readouterr().out


def test_check_fails_when_a_registered_config_changes_and_its_row_is_not_rerun(tmp_path, capsys, monkeypatch):
    """A non-rerun entry is graded only against a result of the *current* registered config: change the config (here
    prosper-e5's new_head_bias) and the committed result no longer counts - under --require-data that fails."""
    import dataclasses

    import benchmark.registry as registry_module
    from benchmark.registry import get_spec

    config = dataclasses.asdict(get_spec("bm25-qwen").build().config)
    folder = tmp_path / "results" / "multicpr-ecom-pool" / "bm25-qwen"
    _fake_result(folder, config, {"MRR@10": 0.7592}, registered="bm25-qwen")
    path = _board(tmp_path, {"bm25-qwen": {"metrics": {"MRR@10": 0.7592}}}, dataset="multicpr-ecom-pool")
    args = ["check", "--leaderboard", str(path), "--results", str(tmp_path / "results"), "--require-data"]
    capsys.readouterr()
    assert main(args) == 0 and "1 ok, 0 okish, 0 fail" in capsys.readouterr().out
    changed = tmp_path / "retrievers.yaml"
    text = registry_module.REGISTRY_FILE.read_text()
    assert "config: {tokenizer: Qwen/Qwen2.5-3B}" in text
    changed.write_text(text.replace("config: {tokenizer: Qwen/Qwen2.5-3B}", "config: {tokenizer: Qwen/Qwen2.5-3B, k1: 0.9}"))
    monkeypatch.setattr(registry_module, "REGISTRY_FILE", changed)
    monkeypatch.setattr(registry_module.load_registry, "__defaults__", (changed,))
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "[FAIL ]" in out and "no result of the current registered config" in out
    assert main(args[:-1]) == 0 and "[SKIP ]" in capsys.readouterr().out  # without --require-data: a skip, said


def test_a_result_made_before_its_code_changed_is_stale(tmp_path):
    """Stale = a file the row depends on changed after the result's commit, or had uncommitted changes when it ran."""
    import subprocess

    from benchmark.records.staleness import REPO_ROOT, dependencies, staleness

    deps = dependencies("retrievers.bm25:BM25Retriever")
    assert "retrievers/bm25.py" in deps and "benchmark/evaluation/measures.py" in deps and "retrievers/sparse.py" not in deps
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    payload = {"retriever": {"class": "retrievers.bm25:BM25Retriever"},
               "environment": {"git": {"commit": head, "dirty": True, "changed_files": ["retrievers/bm25.py", "README.md"]}}}
    assert staleness(payload) == "stale (ran with uncommitted changes to: retrievers/bm25.py)"
    payload["environment"]["git"] = {"commit": head, "dirty": True, "changed_files": ["README.md"]}
    assert staleness(payload) is None  # a change elsewhere does not make a BM25 result stale
    last = subprocess.run(["git", "log", "-n", "1", "--format=%H", "--", "retrievers/bm25.py"], cwd=REPO_ROOT,
                          capture_output=True, text=True).stdout.strip()
    parent = subprocess.run(["git", "rev-parse", f"{last}^"], cwd=REPO_ROOT, capture_output=True, text=True)
    if parent.returncode != 0:
        pytest.skip("shallow checkout: no commit before the last change of retrievers/bm25.py")
    payload["environment"]["git"] = {"commit": parent.stdout.strip(), "dirty": False}
    assert staleness(payload).startswith("stale (changed since:") and "retrievers/bm25.py" in staleness(payload)


@pytest.mark.parametrize(("text", "expected"), [
    ("datasets: {demo: {entries: {bm25-bert: {metrics: {MRR@10: 0.5}}}\n", "not valid YAML"),
    ("datasets: {demo: {entries: {bm25-bert: {metrics: {MRR@10: high}}}}}\n", "demo/bm25-bert: metric MRR@10 = 'high'"),
    ("datasets: {demo: {entries: {bm25-brt: {metrics: {MRR@10: 0.5}}}}}\n", "did you mean bm25-bert"),
])
def test_a_broken_leaderboard_is_one_line_naming_the_file_and_entry(tmp_path, capsys, text, expected):
    path = tmp_path / "board.yaml"
    path.write_text(text)
    assert main(["check", "--leaderboard", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(path) in err and expected in err and "Traceback" not in err


def test_check_of_a_dataset_the_leaderboard_does_not_have_is_refused(capsys):
    assert main(["check", "--dataset", "demoo"]) == 2
    assert "no entries for ['demoo']" in capsys.readouterr().err


def test_older_result_files_still_load_and_newer_ones_are_refused(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"metrics": {"MRR@10": 0.5}}))  # schema 0: before schema_version existed
    assert load_result(old)["metrics"]["MRR@10"] == 0.5
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"schema_version": 999, "metrics": {}}))
    with pytest.raises(ValueError, match="newer"):
        load_result(new)


def test_a_change_declared_neutral_with_evidence_does_not_make_a_result_stale(tmp_path, monkeypatch):
    """A file changed only by commits of results/neutral-changes.yaml does not count; any other commit still does."""
    import subprocess

    from benchmark.records import staleness as rows
    def git(*args):
        return subprocess.run(["git", *args], cwd=rows.REPO_ROOT, capture_output=True, text=True)

    last = git("log", "-n", "1", "--format=%H", "--", "retrievers/bm25.py").stdout.strip()
    if git("rev-parse", f"{last}^").returncode != 0:
        pytest.skip("shallow checkout: no commit before the last change of retrievers/bm25.py")
    start = git("rev-parse", f"{last}^").stdout.strip()
    files = rows.dependencies("retrievers.bm25:BM25Retriever")
    since = set(git("log", "--format=%H", f"{start}..HEAD", "--", *files).stdout.split())
    assert last in since
    payload = {"retriever": {"class": "retrievers.bm25:BM25Retriever"},
               "environment": {"git": {"commit": start, "dirty": False}}}
    monkeypatch.setattr(rows, "neutral_commits", lambda: frozenset(since))
    assert rows.staleness(payload) is None
    monkeypatch.setattr(rows, "neutral_commits", lambda: frozenset(since - {last}))
    assert "retrievers/bm25.py" in rows.staleness(payload)
    monkeypatch.undo()

    declared = tmp_path / "neutral.yaml"
    declared.write_text(f"- {{commit: {last}, why: a rename}}\n")  # no evidence: refused
    with pytest.raises(ValueError, match="'evidence'"):
        rows.neutral_commits(declared)
    declared.write_text(f"- {{commit: {last[:7]}, why: a rename, evidence: check ok}}\n")  # short hash: refused
    with pytest.raises(ValueError, match="40-digit"):
        rows.neutral_commits(declared)


def test_the_repository_neutral_changes_name_commits_of_this_history():
    import subprocess

    from benchmark.records.staleness import REPO_ROOT, neutral_commits

    commits = neutral_commits()
    assert commits, "results/neutral-changes.yaml lists nothing: delete it rather than keep an empty file"
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=REPO_ROOT, capture_output=True,
                             text=True).stdout.strip()
    if shallow != "false":
        pytest.skip("shallow checkout (or no git): the declared commits may be cut off")
    for commit in commits:
        known = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO_ROOT, capture_output=True)
        assert known.returncode == 0, f"results/neutral-changes.yaml names {commit}, which is not in this history"


def test_modules_loaded_by_name_and_the_runner_are_dependencies_of_the_rows_that_use_them():
    """The e5 port is loaded through an importlib string (retrievers/resources/hub.py): a change to it must mark the
    e5 rows stale, as a change to the runner marks every row."""
    from benchmark.records.staleness import dependencies

    for class_path in ("retrievers.dense:DenseRetriever", "retrievers.sparse:SparseRetriever",
                       "retrievers.deepct:DeepCTRetriever"):
        deps = dependencies(class_path)
        assert "retrievers/resources/e5_port.py" in deps and "benchmark/runs/runner.py" in deps, class_path


def test_a_result_whose_model_came_from_an_entry_of_older_or_unknown_code_is_stale():
    import subprocess

    from benchmark.records.staleness import REPO_ROOT, staleness

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    base = {"retriever": {"class": "retrievers.bm25:BM25Retriever"},
            "environment": {"git": {"commit": head, "dirty": False}}}
    assert staleness({**base, "index": {"reused": False, "built_with": {"commit": head, "dirty": False}}}) is None
    unknown = staleness({**base, "index": {"reused": True}})  # a result from before entries recorded their code
    assert unknown and unknown.startswith("stale") and "unknown code" in unknown
    none = staleness({**base, "index": {"reused": True, "built_with": None}})
    assert none and "records no code version" in none
    dirty = staleness({**base, "index": {"reused": True, "built_with": {"commit": head, "dirty": True,
                                                                        "changed_files": ["retrievers/bm25.py"]}}})
    assert dirty and "uncommitted" in dirty
    last = subprocess.run(["git", "log", "-n", "1", "--format=%H", "--", "retrievers/bm25.py"], cwd=REPO_ROOT,
                          capture_output=True, text=True).stdout.strip()
    parent = subprocess.run(["git", "rev-parse", f"{last}^"], cwd=REPO_ROOT, capture_output=True, text=True)
    if parent.returncode != 0:
        pytest.skip("shallow checkout: no commit before the last change of retrievers/bm25.py")
    older = staleness({**base, "index": {"reused": True, "built_with": {"commit": parent.stdout.strip()}}})
    assert older and older.startswith(f"stale (its model was built at {parent.stdout.strip()[:10]}; changed since:")


def test_check_strict_fails_on_a_stale_result_and_names_it(tmp_path, capsys):
    """Without --strict a stale result is only counted; with it, check exits 1 and names the row and why."""
    import shutil

    from benchmark import REPO_ROOT
    from benchmark.records.results import current_results

    current, _ = current_results(REPO_ROOT / "results", "multicpr-ecom-pool")
    source = current["bm25-bert"]
    target = tmp_path / "multicpr-ecom-pool" / "bm25-bert"
    target.mkdir(parents=True)
    payload = json.loads(source.read_text())
    payload["environment"]["git"] = {"commit": payload["environment"]["git"]["commit"], "dirty": True,
                                     "changed_files": ["retrievers/bm25.py"]}
    (target / source.name).write_text(json.dumps(payload))
    for side in source.parent.glob(source.name.replace(".json", ".perquery*")):
        shutil.copy(side, target / side.name)
    board = tmp_path / "board.yaml"
    mrr = round(payload["metrics"]["MRR@10"], 4)
    board.write_text(yaml.safe_dump({"datasets": {"multicpr-ecom-pool": {"entries": {
        "bm25-bert": {"metrics": {"MRR@10": mrr}}}}}}))
    argv = ["check", "--dataset", "multicpr-ecom-pool", "--leaderboard", str(board), "--results", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--strict"]) == 1
    out = capsys.readouterr().out
    assert "[STALE] multicpr-ecom-pool/bm25-bert: stale (ran with uncommitted changes to: retrievers/bm25.py)" in out
