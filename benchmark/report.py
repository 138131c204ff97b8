"""``python -m benchmark report``: a markdown leaderboard from the result files, with the trade-off plots embedded.

One table per dataset, the newest result of each retriever: effectiveness (MRR@10, Hit@k), cost (FLOPS, index size
and bytes per passage - the paper's storage argument, dense vs sparse - latency) and provenance (pretrained weights or
a scratch model / stand-in tokenizer), so a reader never mistakes a scratch or pool number for a paper number.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmark.results import latest_results, load_result, provenance_label, ran_on, result_datasets


def _fmt(value: Any, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "-"


def dataset_table(results: Path, dataset: str) -> tuple[str, list[dict[str, Any]]]:
    rows = []
    for name, path in sorted(latest_results(results, dataset).items()):
        payload = load_result(path)
        m, c = payload["metrics"], payload.get("cost", {})
        n_docs = payload.get("dataset", {}).get("corpus_size") or 0
        size = c.get("index_size_bytes")
        rows.append({"retriever": name, "paper_row": payload.get("retriever", {}).get("paper_row") or "",
                     "MRR@10": m.get("MRR@10"), "Hit@1": m.get("Hit@1"), "Hit@10": m.get("Hit@10"),
                     "Hit@100": m.get("Hit@100"), "Hit@1000": m.get("Hit@1000"), "flops": c.get("flops"),
                     "index_size_bytes": size, "bytes_per_passage": size / n_docs if size and n_docs else None,
                     "latency_ms_p50": c.get("latency_ms_p50"), "provenance": provenance_label(payload),
                     "ran_on": ran_on(payload), "file": path})
    header = ("| retriever | paper row | MRR@10 | Hit@1 | Hit@10 | Hit@100 | Hit@1000 | FLOPS | index | B/passage "
              "| p50 ms | provenance | ran on |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [header]
    for r in sorted(rows, key=lambda r: -(r["MRR@10"] or 0)):
        lines.append(f"| {r['retriever']} | {r['paper_row']} | {_fmt(r['MRR@10'], '.2f', 100)} | "
                     f"{_fmt(r['Hit@1'], '.1f', 100)} | {_fmt(r['Hit@10'], '.1f', 100)} | "
                     f"{_fmt(r['Hit@100'], '.1f', 100)} | {_fmt(r['Hit@1000'], '.1f', 100)} | {_fmt(r['flops'], '.3f')} | "
                     f"{_size(r['index_size_bytes'])} | {_fmt(r['bytes_per_passage'], '.0f')} | "
                     f"{_fmt(r['latency_ms_p50'], '.2f')} | {r['provenance']} | {r['ran_on']} |")
    return "\n".join(lines), rows


def write_report(results: Path, output: Path, datasets: list[str] | None = None, plots: Path | None = None) -> Path:
    results, output = Path(results), Path(output)
    plots = Path(plots) if plots else results / "plots"
    datasets = datasets or result_datasets(results)
    parts = ["# prosper-bench report", "",
             "Newest result per retriever. Metrics in %. FLOPS = average number of overlapping terms per "
             "query-document pair. Latency: p50 of single-query search at k=10 (sparse and BM25: query encoding "
             "excluded; dense: included, the result files say which). "
             "Provenance: `pretrained` = real weights and tokenizers; `scratch` / `stand-in` = a small model or "
             "tokenizer of the same family trained here (never comparable with the paper's numbers). "
             "`ran on`: `cpu` = this project's 2-core machine; a GPU name = trained, encoded and searched on a lent "
             "GPU machine (16 cores, several runs at a time): its latencies are not comparable with the CPU rows, "
             "and GPU training is not bit-reproducible.", ""]
    for dataset in datasets:
        table, rows = dataset_table(results, dataset)
        if not rows:
            continue
        first = load_result(rows[0]["file"])["dataset"]
        label = first.get("corpus_label", "")
        caveat = "" if first.get("comparable_to_paper") else " - not comparable with the paper's full-corpus numbers"
        parts += [f"## {dataset} ({label}, {first.get('corpus_size', 0):,} passages, "
                  f"{first.get('qrels_queries', 0):,} queries{caveat})", "", table, ""]
        for png in sorted(plots.glob(f"{dataset}-*.png")):
            rel = os.path.relpath(png, output.parent)
            parts += [f"![{png.stem}]({rel})", ""]
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(output)
    return output
