"""The leaderboard's tolerance for a trained entry: the rule that turns measured spreads into it, and reusing a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmark.records.results import machine
from benchmark.records.spread import METRICS, native_from, summarize
from benchmark.registry import load_registry

COMMITTED = Path(__file__).resolve().parent.parent / "results" / "demo" / "prosper"


def _run(mrr: float, ndcg: float, capability: str = "AVX2") -> dict:
    metrics = dict.fromkeys(METRICS, 0.5) | {"MRR@10": mrr, "nDCG@10": ndcg}
    return {"file": "x.json", "capability": capability, "metrics": metrics}


def test_tolerance_is_twice_the_kernel_deviation_or_one_seed_sd_rounded_up():
    runs = {"native": _run(0.700, 0.750), "kernel:avx2": _run(0.704, 0.749)}
    assert summarize(runs)["tolerance"] == 0.01  # 2 x 0.004 = 0.008 -> 0.010
    runs |= {"seed:14": _run(0.650, 0.700), "seed:15": _run(0.700, 0.760)}
    summary = summarize(runs)
    sd = summary["seed_sd"]["MRR@10"]
    assert sd == pytest.approx(0.028868, abs=1e-6)  # stdev(0.70, 0.65, 0.70)
    assert summary["tolerance"] == 0.035  # max(0.008, sd 0.0289, nDCG sd 0.0321) rounded up
    # Hit@1 is not graded: however far it moves, the tolerance does not follow it
    runs["seed:15"]["metrics"]["Hit@1"] = 0.0
    assert summarize(runs)["tolerance"] == 0.035


def _result_here(tmp_path: Path, overrides: dict | None = None, **machine_fields) -> Path:
    """The committed demo PROSPER result, as if it had been run on this machine (or on the one described)."""
    source = next(p for p in sorted(COMMITTED.glob("*.json")) if json.loads(p.read_text()).get("schema_version") == 2)
    payload = json.loads(source.read_text())
    if overrides is not None:
        payload["retriever"]["overrides"] = overrides
    here = machine()
    payload["environment"]["machine"].update({"cpu_model": here.get("cpu_model"),
                                              "torch_cpu_capability": here.get("torch_cpu_capability")},
                                             **machine_fields)
    target = tmp_path / source.name
    target.write_text(json.dumps(payload))
    shutil.copy(source.with_name(source.name.replace(".json", ".perquery.tsv.gz")), tmp_path)
    return target


def test_an_existing_run_of_the_row_on_this_machine_stands_in_for_the_native_run(tmp_path):
    native = native_from(_result_here(tmp_path), "prosper", "demo")
    assert native["metrics"]["MRR@10"] > 0.5 and set(native["metrics"]) == set(METRICS)
    # named relative to the results folder, like the seed and kernel runs and the compare files
    (tmp_path / "demo").mkdir()
    moved = _result_here(tmp_path / "demo")
    assert native_from(moved, "prosper", "demo", tmp_path)["file"] == f"demo/{moved.name}"


def test_every_committed_spread_names_files_that_exist_relative_to_the_results_folder():
    results = Path(__file__).resolve().parent.parent / "results"
    summaries = sorted((results / "spread").glob("*.json"))
    assert summaries
    for summary in summaries:
        for name, run in json.loads(summary.read_text())["runs"].items():
            assert (results / run["file"]).is_file(), (summary.name, name, run["file"])


@pytest.mark.parametrize(("row", "dataset", "fields", "says"), [
    ("splade", "demo", {}, "a result of 'prosper', not of 'splade'"),
    ("prosper", "multicpr-ecom-pool", {}, "on 'demo', not 'multicpr-ecom-pool'"),
    ("prosper", "demo", {"torch_cpu_capability": "NEVER"}, "its torch_cpu_capability is 'NEVER'"),
])
def test_a_run_that_is_not_the_native_run_is_refused(tmp_path, row, dataset, fields, says):
    with pytest.raises(ValueError, match=says):
        native_from(_result_here(tmp_path, **fields), row, dataset)


def test_a_run_whose_settings_restate_the_registered_values_is_the_native_run(tmp_path):
    """splade-e5's registered run is its tuning run with the chosen --set, which was then written into the registry."""
    registered = load_registry()["prosper"].build().config.lfw_query
    assert native_from(_result_here(tmp_path, {"lfw_query": registered}), "prosper", "demo")["metrics"]
    with pytest.raises(ValueError, match="its own settings"):
        native_from(_result_here(tmp_path, {"lfw_query": registered // 2}), "prosper", "demo")
