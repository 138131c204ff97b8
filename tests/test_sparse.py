"""A tiny PROSPER trained on the demo set end to end: result file, exact serving, LRN, explain, trade-off, plot, report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.cli.main import main
from benchmark.records.results import find_results, load_result
from benchmark.registry import get_spec, parse_overrides
from benchmark.runs.runner import trained_retriever

TINY = ["--set", "train.epochs=1", "--set", "train.validation_pairs=0", "--set", "scratch.hidden_size=32",
        "--set", "scratch.layers=1", "--set", "scratch.intermediate_size=64", "--set", "max_length=32",
        "--set", "latency_queries=30"]


def tiny_overrides():
    return parse_overrides([TINY[i + 1] for i in range(0, len(TINY), 2)])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    assert main(["run", "prosper", "--dataset", "demo", "--output", str(out), *TINY]) == 0
    (path,) = find_results(out, "demo")
    return out, load_result(path)


@pytest.fixture(scope="module")
def tiny_prosper(tiny_run, demo):
    return trained_retriever(get_spec("prosper"), demo, tiny_overrides())  # reopened from the run's cache


def test_result_records_cost_active_dimensions_and_scratch_provenance(tiny_run):
    _, payload = tiny_run
    assert payload["metrics"]["MRR@10"] > 0.3  # far above chance (1/2000) after one epoch
    cost = payload["cost"]
    assert cost["flops"] > 0 and cost["index_size_bytes"] > 0 and cost["latency_ms_p50"] > 0
    assert 0 < cost["extra"]["active_query_dims"] <= 256 and 0 < cost["extra"]["active_doc_dims"] <= 512
    model = payload["provenance"]["model"]
    assert model["kind"] == "scratch" and model["model_id"] == "Qwen/Qwen2.5-3B"
    assert payload["retriever"]["config"]["train"]["epochs"] == 1
    assert payload["retriever"]["config"]["train"]["lr"] == 1e-3  # --set train.epochs kept the other train fields


def test_a_second_run_reopens_the_model_and_index_with_identical_metrics(tiny_run, tmp_path):
    _, first = tiny_run
    assert main(["run", "prosper", "--dataset", "demo", "--output", str(tmp_path), *TINY]) == 0
    (path,) = find_results(tmp_path, "demo")
    second = load_result(path)
    assert second["index"]["reused"] and not first["index"]["reused"]
    assert second["metrics"] == first["metrics"]  # the reloaded tokenizer and weights read queries as trained


def test_reloaded_index_serves_exact_top_k(tiny_prosper, demo):
    retriever = tiny_prosper
    qids = sorted(demo.qrels)[:40]
    reps = retriever.encoder.encode_sparse([demo.queries[q] for q in qids], "query", 16)
    exhaustive = retriever.index_.search(reps, k=10, algorithm="exhaustive")
    for algorithm in ("maxscore", "bmm"):
        result = retriever.index_.search(reps, k=10, algorithm=algorithm)
        np.testing.assert_array_equal(result.doc_index, exhaustive.doc_index)
        np.testing.assert_array_equal(result.int_scores, exhaustive.int_scores)


def test_literal_residual_makes_every_literal_token_active(tiny_prosper, demo):
    encoder = tiny_prosper.encoder
    texts = [demo.queries[q] for q in sorted(demo.qrels)[:8]]
    with torch.no_grad():
        weights, basic, indicator = encoder.forward_side(texts, "query")
    literal = indicator > 0
    # W = w + I*(max(w') - w'): at a literal id W >= w >= 0, and > 0 except where w' is at its maximum and w = 0
    assert (weights[literal] >= basic[literal] - 1e-6).all()
    inactive_literals = (literal & (weights <= 0)).sum(dim=1)
    assert (inactive_literals <= 1).all()
    assert torch.equal(weights[~literal], basic[~literal])  # expansion terms keep the basic weight


def test_dynamic_lfw_counts_active_terms_before_the_window_and_a_reopened_model_keeps_its_windows(tiny_prosper, demo,
                                                                                             tmp_path):
    from retrievers.sparse import SparseEncoder

    encoder = tiny_prosper.encoder
    texts = [demo.corpus[p] for p in list(demo.corpus)[:16]]
    saved = encoder.windows
    try:
        encoder.windows = (4, 4)
        with torch.no_grad():
            windowed, _, active = encoder._represent(texts, "doc", for_training=True)
        assert ((windowed > 0).sum(1) <= 4).all() and (active > 4).any()  # counted before the window cut them
        encoder.windows = (64, 128)  # as if a dynamic schedule had shrunk them during training
        encoder.save(tmp_path / "model")
    finally:
        encoder.windows = saved
    reopened = SparseEncoder(tiny_prosper.config, model_dir=tmp_path / "model")
    assert reopened.windows == (64, 128)


def test_explain_prints_top_terms_with_their_origin(tiny_run, capsys):
    capsys.readouterr()
    assert main(["explain", "prosper", "华为 手机 壳", "--dataset", "demo", "--top", "8", *TINY]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines[2:] if line.strip()]
    assert 1 <= len(rows) <= 8
    assert any(line.rstrip().endswith("literal") for line in rows)
    weights = [float(line.split()[-2]) for line in rows]
    assert weights == sorted(weights, reverse=True)


def test_tradeoff_plot_and_report(tiny_run, tmp_path, capsys):
    out, _ = tiny_run
    grid = tmp_path / "grid.yaml"
    grid.write_text("retrievers: [prosper]\nquery_top_m: [2, 4]\n")
    assert main(["tradeoff", "--grid", str(grid), "--dataset", "demo", "--output", str(out / "tradeoff"), *TINY]) == 0
    points = [load_result(p) for p in find_results(out / "tradeoff", "demo", "prosper")]
    by_m = {p["sweep"]["value"]: p for p in points}
    assert set(by_m) == {2, 4} and all(p["index"]["reused"] for p in points)  # search-only knob: no retraining
    _, full = tiny_run
    assert by_m[2]["cost"]["flops"] < by_m[4]["cost"]["flops"] <= full["cost"]["flops"]

    assert main(["run", "bm25s-bert", "--dataset", "demo", "--output", str(out)]) == 0
    assert main(["plot", "--results", str(out), "--dataset", "demo"]) == 0
    png = out / "plots" / "demo-tradeoff.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert main(["report", "--results", str(out)]) == 0
    report = (out / "REPORT.md").read_text()
    assert "| prosper+" in report and "| bm25s-bert |" in report and "scratch" in report  # a variant, named apart
    assert "![demo-tradeoff](plots/demo-tradeoff.png)" in report
    assert "not comparable with the paper" in report
    from benchmark.records.results import ran_on

    row = next(line for line in report.splitlines() if line.startswith("| prosper+"))
    where = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    assert f"| scratch | {where} | 1 |" in row
    assert ran_on({"provenance": {"compute": {"device": "cuda", "gpu": "NVIDIA H100"}}}) == "NVIDIA H100"
    assert ran_on({"provenance": {}}) == "cpu"  # results written before devices were recorded ran on the CPU


def test_scratch_splade_starts_sparse_with_a_negative_output_bias(demo):
    """The SPLADE collapse: a fresh MLM head activates nearly the whole vocabulary; the registry's bias prevents it."""
    from retrievers.sparse import SparseEncoder

    texts = list(demo.corpus.values())[:300]
    queries = list(demo.queries.values())[:8]
    active = {}
    for bias in (0.0, -0.75):
        config = get_spec("splade").build(parse_overrides([f"scratch.output_bias={bias}"])).config
        encoder = SparseEncoder(config, texts=texts)
        assert float(encoder.backbone.get_output_embeddings().bias[0].detach()) == bias
        with torch.no_grad():
            weights, _ = encoder.represent(queries, "query")
        active[bias] = float((weights > 0).sum(1).float().mean()) / encoder.vocab_size
    assert active[0.0] > 0.5  # the plain initialisation: most of the vocabulary in every query
    assert active[-0.75] < 0.05
    assert get_spec("splade").build().config.scratch.output_bias == -0.75
    with pytest.raises(ValueError, match="bert backbone"):
        SparseEncoder(get_spec("prosper").build(parse_overrides(["scratch.output_bias=-1"])).config, texts=texts)


def test_torchrun_shards_the_corpus_encoding_and_rank_0_alone_writes_the_result(tiny_run, tmp_path):
    """The multi-GPU command, run on CPU processes: two ranks encode half the corpus each, one result file comes out."""
    import os
    import subprocess
    import sys

    _, single = tiny_run
    out = tmp_path / "results"
    env = {**os.environ, "PROSPER_BENCH_CACHE": str(tmp_path / "cache")}
    # 2 processes x batch 16 = the single-process run's batch of 32: the same training (DDP, gathered negatives)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "benchmark", "run", "prosper", "--dataset", "demo", "--output", str(out), *TINY,
           "--set", "train.batch_size=16"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("MRR@10") == 1  # one summary table: rank 1 prints nothing
    (path,) = find_results(out, "demo")
    payload = load_result(path)
    assert payload["provenance"]["compute"]["encoding_processes"] == 2
    training = payload["provenance"]["training"]
    assert training["processes"] == 2 and training["global_batch"] == 32
    assert payload["cost"]["extra"]["active_doc_dims"] == pytest.approx(single["cost"]["extra"]["active_doc_dims"],
                                                                        rel=1e-3)
    assert payload["metrics"]["MRR@10"] == pytest.approx(single["metrics"]["MRR@10"], abs=0.005)
    index_dirs = [p for p in (tmp_path / "cache" / "indexes").glob("demo-*/prosper-*") if p.is_dir()]
    assert len(index_dirs) == 1 and not (index_dirs[0] / "shards").exists()


def test_shard_bounds_cover_the_corpus_once_in_order():
    from retrievers.sharding import shard_bounds

    for n, size in [(10, 3), (2, 4), (2000, 2), (0, 2)]:
        bounds = [shard_bounds(n, r, size) for r in range(size)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
        assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1
