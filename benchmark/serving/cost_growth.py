"""``python -m benchmark cost-growth``: how each stage's time and memory grow with the corpus (10k / 100k / 1M).

Reads the result files that ``run`` wrote on the ``scale-*`` datasets (each holds per-stage wall time and peak RSS,
see :mod:`benchmark.runs.stages`) and writes one committed summary - a JSON file with every row and its source file, and
the markdown table the README quotes - so the table is always regenerated from result files, never typed in.

Rows are keyed by retriever *and* the config fields that make a serving variant (``index_type`` flat / hnsw), so a
Faiss flat and an HNSW run of ``bge-base`` are two rows; of several runs of one key the newest counts. The growth
column is the ratio of the corpus-dependent wall time (every stage but ``train``, whose cost is set by the number of
training pairs, not by the corpus) between consecutive sizes over the ratio of passages: 1.0 is linear, above 1 worse
than linear, below 1 a fixed cost (JVM start, model load, 1,000 queries) still dominating.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmark.records.results import find_results, load_result, ran_on, utc_stamp

STAGES = ("load", "train", "tokenize", "generate", "encode", "build", "index", "search", "evaluate")
VARIANT_FIELDS = ("index_type", "serving")


def variant(config: dict[str, Any]) -> str:
    parts = [f"{key}={config[key]}" for key in VARIANT_FIELDS if key in config]
    return ",".join(parts)


def collect(results: Path, datasets: list[str]) -> list[dict[str, Any]]:
    """One row per (dataset, retriever, variant): the newest result file's stages, peak RSS and size."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for dataset in datasets:
        for path in find_results(results, dataset):
            payload = load_result(path)
            cost = payload.get("cost", {})
            if not cost.get("stages"):
                continue  # written before stages were recorded
            config = payload["retriever"]["config"]
            key = (dataset, payload["retriever"]["name"], variant(config))
            stages = {name: cost["stages"][name]["wall_s"] for name in STAGES if name in cost["stages"]}
            rows[key] = {"dataset": dataset, "retriever": key[1], "variant": key[2],
                         "passages": payload["dataset"].get("corpus_size"), "stages_s": stages,
                         "total_s": sum(stages.values()), "peak_rss_mb": cost.get("peak_rss_mb"),
                         "index_size_bytes": cost.get("index_size_bytes"), "MRR@10": payload["metrics"].get("MRR@10"),
                         "queries": payload["metrics"].get("queries"), "ran_on": ran_on(payload),
                         "machine": payload.get("environment", {}).get("machine"),
                         "file": str(path)}
    ordered = sorted(rows.values(), key=lambda r: (r["retriever"], r["variant"], r["passages"] or 0))
    for prev, row in zip([None, *ordered], ordered, strict=False):
        row["growth"] = None
        if prev and (prev["retriever"], prev["variant"]) == (row["retriever"], row["variant"]) and _corpus_s(prev):
            row["growth"] = (_corpus_s(row) / _corpus_s(prev)) / (row["passages"] / prev["passages"])
    return ordered


def _corpus_s(row: dict[str, Any]) -> float:
    return row["total_s"] - row["stages_s"].get("train", 0.0)


def markdown(rows: list[dict[str, Any]]) -> str:
    used = [s for s in STAGES if any(s in r["stages_s"] for r in rows)]
    head = ["retriever", "passages", *[f"{s} s" for s in used], "total s", "growth", "peak RSS GiB", "index MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        name = r["retriever"] + (f" ({r['variant']})" if r["variant"] else "")
        cells = [name, f"{r['passages']:,}", *[_num(r["stages_s"].get(s)) for s in used], _num(r["total_s"]),
                 "-" if r["growth"] is None else f"{r['growth']:.2f}",
                 "-" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb'] / 1024:.2f}",
                 "-" if not r["index_size_bytes"] else f"{r['index_size_bytes'] / 2**20:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def write(results: Path, datasets: list[str], output: Path) -> tuple[Path, list[dict[str, Any]]]:
    rows = collect(results, datasets)
    if not rows:
        raise FileNotFoundError(f"no result files with stage timings for {', '.join(datasets)} under {results}")
    output.mkdir(parents=True, exist_ok=True)
    stamp = utc_stamp()
    path = output / f"{stamp}.json"
    path.write_text(json.dumps({"created": stamp, "datasets": datasets, "rows": rows,
                                "note": "growth = (ratio of wall time without training) / (ratio of passages) against the "
                                        "previous size; 1.0 = linear"}, indent=2), encoding="utf-8")
    path.with_suffix(".md").write_text(markdown(rows) + "\n", encoding="utf-8")
    return path, rows
