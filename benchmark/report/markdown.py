"""``python -m benchmark report``: the leaderboard users cite, from current result files only (REPORT.md, and the same
rows as a page, ``results/index.html``: ``benchmark.report.page``).

Per dataset, only results of each row's *current* config (``benchmark.records.rows.currency``); rows whose newest result is
older than their config are listed in a short "superseded" appendix with no numbers. Rows are grouped by provenance:
real weights and tokenizers first; scratch models (same architecture, small, trained here) apart, and on the pool in a
section plainly labelled as smoke runs. Seeds of one row (rows that differ from it only in ``*.seed``) are one line:
mean and spread. Marks come from paired significance tests over the queries (``benchmark.evaluation.significance``,
through ``benchmark.report.collection``): † differs from BM25 (BERT tok), ‡ differs from the best row, both
Holm-corrected at 5%. Effectiveness (MRR@10, nDCG@10, MAP, Hit@k),
cost (FLOPS, index size and bytes per passage, latency) and provenance sit side by side, so no scratch or pool number
is ever mistaken for a paper number.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmark.records.results import load_result, ran_on, result_datasets
from benchmark.records.rows import meaningful_overrides
from benchmark.report.collection import BASELINE, Row, collect, mark_significance

METRICS = ("MRR@10", "nDCG@10", "MAP", "Hit@1", "Hit@10", "Hit@100", "Hit@1000")




def _fmt(value: Any, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "-"


def row_notes(payload: dict[str, Any]) -> str:
    """What a reader must know to read the row: a restricted output vocabulary, a variant's overrides."""
    notes = []
    model = payload.get("provenance", {}).get("model") or {}
    vocabulary = model.get("output_vocabulary") or {}
    if vocabulary.get("vocabulary") == "seen-subset":
        notes.append(f"output vocabulary: {vocabulary.get('size', 0):,} of {vocabulary.get('of', 0):,} tokens (seen)")
    overrides = {k: v for k, v in meaningful_overrides(payload.get("retriever", {}).get("overrides")).items()
                 if not k.endswith(".seed")}
    if overrides:
        notes.append("; ".join(f"{k}={v}" for k, v in sorted(overrides.items())))
    return "; ".join(notes)


HEADER = ("| row | paper row | MRR@10 | nDCG@10 | MAP | Hit@1 | Hit@10 | Hit@100 | Hit@1000 | FLOPS | index | B/passage "
          "| p50 ms | provenance | ran on | seeds | notes |\n" + "|---" * 17 + "|")


def table(rows: list[Row]) -> str:
    lines = [HEADER]
    for r in rows:
        payload = r.first
        n_docs = payload.get("dataset", {}).get("corpus_size") or 0
        size = r.cost("index_size_bytes")
        mrr = _fmt(r.metric("MRR@10"), ".2f", 100)
        if r.spread("MRR@10") is not None:
            mrr += f" ±{r.spread('MRR@10') * 100:.2f}"
        notes = "; ".join(n for n in (row_notes(payload), "stale: its code changed since" if r.stale else "") if n)
        lines.append(
            f"| {r.name} | {payload.get('retriever', {}).get('paper_row') or ''} | {mrr}{r.marks} | "
            + " | ".join(_fmt(r.metric(m), ".2f" if m in ("nDCG@10", "MAP") else ".1f", 100) for m in METRICS[1:])
            + f" | {_fmt(r.cost('flops'), '.3f')} | {_size(size)} | "
            f"{_fmt(size / n_docs if size and n_docs else None, '.0f')} | {_fmt(r.cost('latency_ms_p50'), '.2f')} | "
            f"{r.provenance} | {ran_on(payload)} | {len(r.payloads)} | {notes} |")
    return "\n".join(lines)


def sections(rows: list[Row], corpus_label: str) -> list[tuple[str, list[Row]]]:
    hybrid = [r for r in rows if r.first.get("fusion")]
    external = [r for r in rows if r.first.get("external")]
    own = [r for r in rows if r not in hybrid and r not in external]
    real = [r for r in own if r.real]
    scratch = [r for r in own if not r.real]
    label = ("Smoke runs: scratch models, not results" if corpus_label == "pool" else
             "Scratch models (same architectures, small, trained here from random initialisation)")
    groups = (("Real weights and tokenizers", real), ("Hybrid rows (fused runs; parameters chosen on held-out "
                                                      "queries)", hybrid),
              ("External runs (made elsewhere, evaluated here)", external), (label, scratch))
    return [(title, group) for title, group in groups if group]


INTRO = ("Current results only: a row's result is shown when it comes from the row's config as registered today "
         "(older ones are listed as superseded, without numbers). Metrics in %. † = differs significantly from BM25 "
         "(BERT tok), ‡ = from the best row with real weights (paired randomization test on the per-query RR@10, "
         "Holm-corrected at 5%; `python -m benchmark compare A B --dataset D` gives the intervals and p-values). "
         "Seeds: rows trained with several seeds show the mean ± standard deviation over them. FLOPS = average "
         "number of overlapping terms per query-document pair. Latency: p50 of single-query search at k=10 "
         "(sparse and BM25: query encoding excluded; dense: included). Provenance: `pretrained` = real weights and "
         "tokenizers; `scratch` = a small model of the same architecture trained here (never comparable with the "
         "paper). `ran on`: `cpu` = a 2-core CPU machine; a GPU name = trained and encoded on a lent GPU. "
         "\"stale\" in the notes: the code the row depends on changed after the result was made (`python -m "
         "benchmark check` names the files).")


def write_report(results: Path, output: Path, datasets: list[str] | None = None, plots: Path | None = None) -> Path:
    results, output = Path(results), Path(output)
    plots = Path(plots) if plots else results / "plots"
    datasets = datasets or result_datasets(results)
    parts = ["# prosper-bench report", "", INTRO, ""]
    page_sections = []
    for dataset in datasets:
        rows, superseded = collect(results, dataset)
        if not rows and not superseded:
            continue
        first = rows[0].first["dataset"] if rows else load_result(next(iter(superseded.values()))[0])["dataset"]
        label = first.get("corpus_label", "")
        caveat = "" if first.get("comparable_to_paper") else " - not comparable with the paper's full-corpus numbers"
        parts += [f"## {dataset} ({label}, {first.get('corpus_size', 0):,} passages, "
                  f"{first.get('qrels_queries', 0):,} queries{caveat})", ""]
        compared = mark_significance(rows)
        if rows:
            page_sections.append((dataset, first, rows, compared))
        if compared:
            parts += ["Significance: " + ", ".join(f"{'†' if k == BASELINE else '‡'} against {v}"
                                                    for k, v in compared.items()) + ".", ""]
        for title, group in sections(rows, label):
            parts += [f"### {title}", "", table(group), ""]
        for png in sorted(plots.glob(f"{dataset}-*.png")):
            rel = os.path.relpath(png, output.parent)
            parts += [f"![{png.stem}]({rel})", ""]
        if superseded:
            parts += [f"<details><summary>Superseded: {len(superseded)} row(s) whose newest result predates their "
                      "current config (not shown)</summary>", ""]
            parts += [f"- {name}: {load_result(path).get('created', '?')[:10]} ({why})"
                      for name, (path, why) in superseded.items()]
            parts += ["", "</details>", ""]
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(output)
    from benchmark.report.page import write_page

    write_page(results, output.with_name("index.html"), page_sections)
    return output
