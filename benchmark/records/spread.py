"""``python -m benchmark spread``: how far a trained row's metrics move when nothing but floating point changes.

A trained model's result is deterministic on one machine, but not across CPU families: AVX2 and AVX-512 kernels sum in
different orders, and a few thousand optimizer steps turn last-digit differences into a few ranks. The leaderboard's
tolerance for a trained entry is derived here, from two measured spreads, each run in its own process:

- **kernels**: the registered config (its own seed) with torch's CPU dispatch forced to each of ``--kernels``
  (``ATEN_CPU_CAPABILITY``; MKL and oneDNN capped to match), the stand-in for another CPU family on one machine;
- **seeds**: the registered config with other training seeds (the scale of what a changed float can do).

tolerance = max(2 x the largest kernel deviation from the native run, the seeds' standard deviation) over MRR@10
and nDCG@10 (what the leaderboard grades a trained entry on), rounded up to 0.005: twice what another CPU family was
seen to do, and never less than one seed's worth of chaos. The summary (every value, the rule, the machine) is written to
``results/spread/<dataset>-<row>.json``; the leaderboard cites it.

Forcing kernels costs time where a row trains in bf16 autocast (the e5 preset): below AVX-512 the CPU has no bf16
instructions and torch emulates them - measured ~6x slower per epoch for prosper-e5 under forced AVX2 - so such a
row is measured over seeds only (``--kernels`` with no value), and ``--native RESULT`` reuses the row's own run.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmark.records.results import environment, find_results, load_result, named_under

KERNEL_ENV = {  # torch's dispatch, and the BLAS / oneDNN instruction sets it calls into, capped alike
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
}
METRICS = ("MRR@10", "nDCG@10", "MAP", "Hit@1", "Hit@10", "Hit@100", "Hit@1000")
GRADED = ("MRR@10", "nDCG@10")  # what the leaderboard grades a trained entry on (rank-1-only Hit@1 is noisier)


def _run(row: str, dataset: str, output: Path, sets: list[str], env: dict[str, str], data_dir: str | None) -> dict:
    """One run in its own process and its own empty cache: a model trained under a forced kernel must never be left
    in the user's cache, where a later run would reuse it and record its own machine's kernels."""
    import tempfile

    before = set(find_results(output, dataset))
    cmd = [sys.executable, "-m", "benchmark", "run", row, "--dataset", dataset, "--output", str(output)]
    cmd += [f"--set={s}" for s in sets] + (["--data-dir", data_dir] if data_dir else [])
    with tempfile.TemporaryDirectory(prefix="prosper-bench-spread-") as cache:
        done = subprocess.run(cmd, env={**os.environ, **env, "PROSPER_BENCH_CACHE": cache}, capture_output=True,
                              text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    (new,) = set(find_results(output, dataset)) - before
    return _entry(named_under(new, output.parent.parent), load_result(new))  # output: <results>/spread/runs


def _entry(file: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One run of the summary: its file (relative to the results folder, as compare files name theirs), the kernels
    torch dispatched and the metrics the spread is taken over."""
    return {"file": file, "capability": payload.get("environment", {}).get("machine", {}).get("torch_cpu_capability"),
            "metrics": {m: payload["metrics"][m] for m in METRICS}}


def native_from(path: Path, row: str, dataset: str, results: Path | None = None) -> dict[str, Any]:
    """An existing result as the native run - the row's current registered config (no --set beyond restating a
    registered value), made on a CPU of this machine's model and kernels - so a row that takes minutes to train is not
    trained a second time for it."""
    from benchmark.records.results import machine
    from benchmark.records.rows import DEFAULT_K, currency, registered_as, row_name
    from benchmark.registry import load_registry

    payload = load_result(path)
    registry = load_registry()
    problems = []
    if registered_as(payload) != row:
        problems.append(f"it is a result of {registered_as(payload)!r}, not of {row!r}")
    elif row_name(row, payload.get("retriever", {}).get("overrides"), payload.get("k", DEFAULT_K),
                  registered_config=asdict(registry[row].build().config)) != row:
        # a --set that restates the registered value (a tuning run whose chosen value was then registered) is
        # the registered config; the same rule files such a run under the row itself
        problems.append("it was run with its own settings, not the registered config")
    if payload.get("dataset", {}).get("name") not in (dataset, None):
        problems.append(f"it is on {payload['dataset']['name']!r}, not {dataset!r}")
    why = currency(payload, registry)
    if why:
        problems.append(f"it is not of the current config ({why})")
    ran_on = payload.get("environment", {}).get("machine", {})
    here = machine()
    for key, value in ((k, here.get(k)) for k in ("cpu_model", "torch_cpu_capability")):
        if ran_on.get(key) != value:
            problems.append(f"its {key} is {ran_on.get(key)!r}, this machine's {value!r}")
    if problems:
        raise ValueError(f"--native {path}: " + "; ".join(problems))
    return _entry(named_under(path, results) if results is not None else str(path), payload)


def measure(row: str, dataset: str, output: Path, seeds: list[int], kernels: list[str], seed_key: str,
            data_dir: str | None = None, native: Path | None = None) -> dict[str, Any]:
    output = Path(output)
    runs: dict[str, Any] = {"native": (native_from(Path(native), row, dataset, output.parent) if native
                                       else _run(row, dataset, output / "runs", [], {}, data_dir))}
    for kernel in kernels:
        runs[f"kernel:{kernel}"] = _run(row, dataset, output / "runs", [], KERNEL_ENV[kernel], data_dir)
    for seed in seeds:
        runs[f"seed:{seed}"] = _run(row, dataset, output / "runs", [f"{seed_key}={seed}"], {}, data_dir)
    return {"row": row, "dataset": dataset, "runs": runs, **summarize(runs), "environment": environment()}


def resummarize(row: str, dataset: str, output: Path) -> dict[str, Any]:
    """An existing summary with its tolerance recomputed from its runs (after a change to the rule)."""
    existing = summary_path(row, dataset, output)
    if not existing.is_file():
        raise ValueError(f"{existing} does not exist: run spread without --resummarize first")
    summary = json.loads(existing.read_text(encoding="utf-8"))
    return {**summary, **summarize(summary["runs"])}


def summarize(runs: dict[str, Any]) -> dict[str, Any]:
    """The spreads of the graded metrics and the tolerance they give (see the module docstring)."""
    native = runs["native"]["metrics"]
    kernel_dev = {m: max([abs(r["metrics"][m] - native[m]) for k, r in runs.items() if k.startswith("kernel:")],
                         default=0.0) for m in METRICS}
    seed_values = {m: [native[m]] + [r["metrics"][m] for k, r in runs.items() if k.startswith("seed:")]
                   for m in METRICS}
    seed_sd = {m: statistics.stdev(v) if len(v) > 1 else 0.0 for m, v in seed_values.items()}
    raw = max(max(2 * kernel_dev[m], seed_sd[m]) for m in GRADED)
    return {"kernel_deviation": kernel_dev, "seed_sd": seed_sd, "graded_metrics": list(GRADED),
            "rule": "max(2 x the largest deviation of a forced CPU kernel from the native run, 1 x the seeds' standard "
                    f"deviation) over {', '.join(GRADED)}, rounded up to 0.005",
            "tolerance": round(math.ceil(raw / 0.005 - 1e-9) * 0.005, 3)}


def summary_path(row: str, dataset: str, output: Path) -> Path:
    return Path(output) / f"{dataset}-{row}.json"


def write(summary: dict[str, Any], output: Path) -> Path:
    path = summary_path(summary["row"], summary["dataset"], output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return path
