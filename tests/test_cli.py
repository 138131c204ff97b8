"""The CLI end to end on the demo set: result files, reuse, eval of the written run, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.cli.main import main
from benchmark.records.results import find_results, latest_results, load_result, write_result


def test_run_writes_versioned_results_and_reuses_the_index(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PROSPER_BENCH_CACHE", str(tmp_path / "cache"))  # the first run builds, whatever ran before
    out = tmp_path / "results"
    assert main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(out)]) == 0
    assert main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(out)]) == 0
    paths = find_results(out, "demo", "bm25s-bert")
    assert len(paths) == 2 and paths[0] != paths[1]  # a second run never overwrites the first
    first, second = (load_result(p) for p in paths)
    assert first["metrics"] == second["metrics"]  # same data, same config: identical metrics
    assert not first["index"]["reused"] and second["index"]["reused"]
    assert first["cost"]["index_time_s"] == second["cost"]["index_time_s"]  # carried over from the built index
    for key in ("MRR@10", "Hit@1", "Hit@10", "Hit@100", "Hit@1000", "Recall@1000"):
        assert 0.0 <= first["metrics"][key] <= 1.0
    assert round(first["metrics"]["MRR@10"], 4) == 0.5850  # BM25 is deterministic: the value, not a range
    tokenizer = first["provenance"]["tokenizer"]
    assert tokenizer["kind"] == "pretrained" and tokenizer["vocab_size"] == 21128  # the real bert-base-chinese
    assert tokenizer["artefact"]["sha256"] == "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c"
    assert first["dataset"]["corpus_label"] == "demo" and len(first["dataset"]["fingerprint"]) == 64
    assert first["retriever"]["config"]["k1"] == 1.2 and first["retriever"]["config"]["b"] == 0.75
    assert "numpy" in first["environment"]["packages"] and "git" in first["environment"]
    summary = capsys.readouterr().out
    assert "bm25s-bert" in summary and "MRR@10" in summary

    # the TREC run written beside the result evaluates to the same numbers
    capsys.readouterr()
    assert main(["eval", str(paths[0].with_suffix(".trec")), "--dataset", "demo"]) == 0
    printed = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert float(printed["MRR@10"]) == pytest.approx(first["metrics"]["MRR@10"], abs=1e-4)


def test_result_files_are_never_overwritten(tmp_path):
    a = write_result({"metrics": {"x": 1}}, tmp_path, "d", "r", "h")
    b = write_result({"metrics": {"x": 2}}, tmp_path, "d", "r", "h")
    assert a != b
    assert json.loads(a.read_text())["metrics"] == {"x": 1}
    assert not list(tmp_path.rglob(".*tmp*"))  # no temporary file left behind
    c = write_result({"metrics": {"x": 3}}, tmp_path, "d", "r", "h")
    if a.stem[:16] == c.stem[:16]:  # all three in one second: -2, -3 suffixes must still sort oldest first
        assert find_results(tmp_path, "d", "r") == [a, b, c]
        assert latest_results(tmp_path, "d") == {"r": c}


def test_list_names_retrievers_and_datasets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("bm25-bert", "bm25-qwen", "demo", "multicpr-ecom-pool", "multicpr-ecom"):
        assert name in out


def test_clear_errors(tmp_path, capsys):
    assert main(["run", "no-such-retriever", "--dataset", "demo"]) == 2
    assert "unknown retriever" in capsys.readouterr().err
    assert main(["run"]) == 2
    assert main(["run", "bm25-bert", "--dataset", "multicpr-ecom-pool", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--data-dir" in err and "corpus.partial.tsv" in err


def _index_entries(cache, retriever):
    return [p for p in (cache / "indexes").glob(f"demo-*/{retriever}-*") if p.is_dir()]


def test_a_corrupt_cache_entry_is_named_and_rebuilt_never_served(tmp_path, isolated_cache, caplog):
    out = tmp_path / "results"
    assert main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(out)]) == 0
    (entry,) = _index_entries(isolated_cache, "bm25s-bert")
    target = next(p for p in sorted((entry / "bm25s").glob("*")) if p.stat().st_size > 1000)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of an index file
    target.write_bytes(bytes(data))
    caplog.clear()
    assert main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(out)]) == 0
    assert "corrupt" in caplog.text and target.name in caplog.text and "rebuilding" in caplog.text
    first, second = (load_result(p) for p in find_results(out, "demo", "bm25s-bert"))
    assert second["metrics"] == first["metrics"] and not second["index"]["reused"]

    (entry / "bm25_meta.json").write_text("{broken")  # truncated json: also caught before anything is served
    caplog.clear()
    assert main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(out)]) == 0
    assert "bm25_meta.json" in caplog.text
    assert load_result(find_results(out, "demo", "bm25s-bert")[-1])["metrics"] == first["metrics"]


def test_two_runs_of_one_retriever_share_the_cache_entry_one_builds_one_reuses(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PROSPER_BENCH_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "benchmark", "run", "bm25-bert", "--dataset", "demo", "--output",
           str(tmp_path / "results")]
    runs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outcomes = [(p.wait(timeout=600), p.stderr.read(), p.stdout.read()) for p in runs]
    assert [code for code, _, _ in outcomes] == [0, 0], outcomes[0][1][-2000:] + outcomes[1][1][-2000:]
    for _, err, out in outcomes:  # stdout carries results only; the JVM speaks on stderr, at WARN
        assert "INFO" not in out and "SLF4J" not in out and "MRR@10" in out
        assert "Java 22" not in err and "SLF4J(I)" not in err
    reused = sorted(load_result(p)["index"]["reused"] for p in find_results(tmp_path / "results", "demo", "bm25-bert"))
    assert reused == [False, True]  # the second waited for the lock, then reused: no Lucene write.lock clash


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "prosper", "--set", "train.epocs=1"], "did you mean train.epochs"),
    (["run", "prosper", "--set", "lfw_qery=64"], "did you mean lfw_query"),
    (["run", "bm25-bert", "--set", "k1"], "KEY=VALUE"),
    (["run", "bm25-bert", "--set", "k1=abc"], "k1 expects float, got 'abc'"),
    (["run", "prosper", "--set", "train.epochs=abc"], "train.epochs expects int"),
    (["run", "prosper", "--set", "train=3"], "group of settings"),
    (["run", "prosper", "--set", "lfw_dynamic_query=[256, x]"], "lfw_dynamic_query expects tuple"),
])
def test_bad_settings_fail_in_one_line_before_any_work(argv, message, capsys, monkeypatch):
    import benchmark.cli.common as cli

    monkeypatch.setattr(cli, "load_dataset", lambda *a, **k: pytest.fail("the dataset was loaded before the check"))
    assert main([*argv, "--dataset", "demo"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_k_below_one_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "bm25-bert", "--dataset", "demo", "--k", "-5"])
    assert exit_.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_eval_refuses_a_missing_empty_or_foreign_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing.trec"), "--dataset", "demo"]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty.trec"
    empty.write_text("")
    assert main(["eval", str(empty), "--dataset", "demo"]) == 2
    assert "none of the 400 queries" in capsys.readouterr().err
    foreign = tmp_path / "foreign.trec"
    foreign.write_text("".join(f"{200000 + i} Q0 {i} 1 1.0 x\n" for i in range(1000)))  # pool query ids
    assert main(["eval", str(foreign), "--dataset", "demo"]) == 2
    assert "another dataset" in capsys.readouterr().err


def test_ctrl_c_prints_one_line_not_a_traceback(monkeypatch, capsys):
    import benchmark.runs.runner as runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_one", interrupted)
    assert main(["run", "bm25s-bert", "--dataset", "demo"]) == 130
    err = capsys.readouterr().err.strip()
    assert "interrupted" in err and "resumes" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_explain_never_trains_silently(capsys, isolated_cache):
    assert main(["explain", "splade", "华为 手机", "--dataset", "demo", "--set", "train.epochs=1"]) == 1
    err = capsys.readouterr().err
    assert "not trained on demo" in err and "python -m benchmark run splade --dataset demo --set train.epochs=1" in err
    assert "--train" in err and not _index_entries(isolated_cache, "splade")


def test_committed_artefacts_are_not_ignored_and_run_files_are():
    """report/plot/check write these tracked files on purpose; .gitignore must agree (TREC runs are never committed)."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    committed = ["results/REPORT.md", "results/index.html", "results/leaderboard.yaml", "results/plots/demo-tradeoff.png",
                 "results/demo/prosper/x.json", "results/demo/prosper/x.perquery.tsv.gz", "results/index-bench/x.md",
                 "results/index-bench/x-0-k10.svg", "results/spread/demo-prosper.json"]
    ignored = ["results/demo/prosper/x.trec", "data/corpus.tsv"]
    check = subprocess.run(["git", "check-ignore", *committed, *ignored], cwd=repo, capture_output=True, text=True)
    if check.returncode == 128:
        pytest.skip("not a git checkout")
    assert sorted(check.stdout.split()) == sorted(ignored)


def test_a_tampered_tokenizer_artefact_is_one_error_line_and_moved_aside(tmp_path, monkeypatch, capsys):
    """A pinned artefact whose bytes changed is refused with one line (exit 2), never used, and moved aside so the
    next run fetches a fresh copy."""
    from retrievers.resources.artefacts import BERT_CHINESE_VOCAB, fetch

    monkeypatch.setenv("PROSPER_BENCH_ARTEFACTS", str(tmp_path / "artefacts"))
    monkeypatch.setenv("PROSPER_BENCH_CACHE", str(tmp_path / "cache"))
    real, _ = fetch(BERT_CHINESE_VOCAB)
    if not str(real).startswith(str(tmp_path)):
        pytest.skip("the vocabulary comes from an installed package, not the artefact folder")
    real.write_text(real.read_text(encoding="utf-8").replace("[UNK]", "[UNKNOWN]"), encoding="utf-8")
    capsys.readouterr()
    assert main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "pinned" in err and "Traceback" not in err
    assert not real.exists() and real.with_name(real.name + ".corrupt").exists()
    assert not find_results(tmp_path / "out", "demo", "bm25s-bert")


def test_cost_growth_summarises_the_stage_timings_of_result_files(tmp_path, capsys):
    """The README's cost-growth table comes from result files: stages, totals and growth ratios are theirs."""
    out = tmp_path / "results"
    for dataset in ("demo", "scale-10k"):
        assert main(["run", "bm25s-bert", "--dataset", dataset, "--output", str(out), "--set", "latency_queries=5"]) == 0
    assert main(["cost-growth", "--dataset", "demo", "scale-10k", "--results", str(out)]) == 0
    (summary,) = sorted((out / "cost-growth").glob("*.json"))
    rows = json.loads(summary.read_text())["rows"]
    assert [r["passages"] for r in rows] == [2000, 10000]
    for row in rows:
        stages = load_result(Path(row["file"]))["cost"]["stages"]
        assert row["total_s"] == pytest.approx(sum(v["wall_s"] for v in stages.values()))
        assert row["peak_rss_mb"] > 0 and row["machine"]["cpus"] >= 1
    assert rows[0]["growth"] is None
    assert rows[1]["growth"] == pytest.approx(rows[1]["total_s"] / rows[0]["total_s"] / 5)  # BM25: nothing trained
    assert "| bm25s-bert | 10,000 |" in summary.with_suffix(".md").read_text()
    assert main(["report", "--results", str(out)]) == 0  # quality tables: the cost-growth sets stay out
    report = (out / "REPORT.md").read_text()
    assert "## demo" in report and "scale-10k" not in report
    capsys.readouterr()
    assert main(["cost-growth", "--dataset", "scale-1m", "--results", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: no result files")
