"""``results/index.html``: the leaderboard as one self-contained page (no CDN, no network; opens from disk).

Modelled on pyserini's two-click-reproduction pages and MTEB's leaderboard: one tab per dataset with its "comparable
with the paper or not" banner; one sortable table (click a header) of the dataset's *current* rows - effectiveness,
cost, provenance, where it ran, the leaderboard's grade of its result (ok / okish / fail / stale, with the result's
date and commit), significance marks from ``compare`` (the report's), the paper's value and the difference on paper
rows; per row an expandable block with the exact commands that regenerate and evaluate it (copy buttons), its config
hash, the sha256 of its weights and a link to its result file; and the trade-off figures as inline SVG
(``benchmark.report.svgplot``; scratch rows are left out of the pool's figures). Deterministic: the same result files give
the same bytes (a test regenerates it).
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

from benchmark.records.leaderboard import LEADERBOARD_FILE, LeaderboardError, compare, load_leaderboard
from benchmark.records.results import ran_on
from benchmark.records.rows import flatten, meaningful_overrides, registered_as, row_name
from benchmark.report.collection import Row
from benchmark.report.svgplot import Point, scatter

COLUMNS = [  # (header, key, numeric)
    ("row", "row", False), ("family", "family", False), ("group", "group", False), ("MRR@10", "MRR@10", True),
    ("nDCG@10", "nDCG@10", True), ("MAP", "MAP", True), ("Hit@1", "Hit@1", True), ("Hit@10", "Hit@10", True),
    ("Hit@100", "Hit@100", True), ("Hit@1000", "Hit@1000", True), ("FLOPS", "flops", True),
    ("B/passage", "bytes", True), ("p50 ms", "latency", True), ("provenance", "provenance", False),
    ("ran on", "ran_on", False), ("seeds", "seeds", True), ("check", "check", False),
    ("paper MRR@10", "paper", True), ("Δ paper", "delta", True)]
GROUPS = {"real": "1 real weights", "hybrid": "2 hybrid", "external": "3 external", "scratch": "4 scratch (smoke)"}


def family(payload: dict[str, Any]) -> str:
    """The family a row belongs to (one colour per family in the figures)."""
    if payload.get("fusion"):
        return "hybrid"
    if payload.get("external"):
        return "external"
    retriever = payload.get("retriever", {})
    cls = (retriever.get("class") or "").rpartition(":")[2]
    config = retriever.get("config") or {}
    if cls == "SparseRetriever":
        return "SPLADE" if config.get("lrn") == "none" and config.get("pooling") == "max" else "PROSPER"
    return {"BM25Retriever": "BM25", "DenseRetriever": "dense", "DeepCTRetriever": "DeepCT",
            "Doc2QueryRetriever": "Doc2Query"}.get(cls, cls or "other")


def group(row: Row) -> str:
    payload = row.first
    if payload.get("fusion"):
        return "hybrid"
    if payload.get("external"):
        return "external"
    return "real" if row.real else "scratch"


def commands(row: Row, dataset: str, results: Path) -> list[str]:
    """The commands that regenerate this row's result and evaluate its run."""
    payload = row.first
    run_file = os.path.relpath(row.files[0].with_suffix(".trec"), results.parent)
    if payload.get("external"):
        made = [f"python -m benchmark eval {payload['external'].get('run_file', 'RUN')} --dataset {dataset} "
                f"--name {row.name}"]
    elif payload.get("fusion"):
        fusion = payload["fusion"]
        made = [f"python -m benchmark fuse {' '.join(p['row'] for p in fusion['parts'])} --method {fusion['method']} "
                f"--dataset {dataset} --name {row.name}"]
    else:
        base = registered_as(payload)
        overrides = payload.get("retriever", {}).get("overrides") or {}
        sets = "".join(f" --set {k}={json.dumps(v) if not isinstance(v, str) else v}"
                       for k, v in sorted(meaningful_overrides(overrides).items()) if not k.endswith(".seed"))
        named = "" if row.name == row_name(base, overrides, payload.get("k", 1000)) else f" --name {row.name}"
        k = "" if payload.get("k", 1000) == 1000 else f" --k {payload['k']}"
        made = [f"python -m benchmark run {base} --dataset {dataset}{sets}{k}{named}"]
        seeds = sorted({v for p in row.payloads for k_, v in flatten(
            p.get("retriever", {}).get("overrides") or {}).items() if k_.endswith(".seed")})
        if seeds:
            key = next(k_ for k_ in flatten(row.payloads[-1]["retriever"]["overrides"]) if k_.endswith(".seed"))
            made += [f"{made[0]} --set {key}={seed}" for seed in seeds]
    return made + [f"python -m benchmark eval {run_file} --dataset {dataset}",
                   f"python -m benchmark check --dataset {dataset}"]


def weights(payload: dict[str, Any]) -> list[str]:
    """What the weights were, by sha256 where known."""
    out = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("kind") in ("pretrained", "scratch", "external"):
                digests = node.get("weights_sha256") or {}
                artefact = node.get("artefact") or {}
                line = f"{where or 'model'}: {node.get('model_id') or node.get('file') or ''} ({node.get('kind')}"
                line += f", {node.get('source')}" if node.get("source") else ""
                line += ")"
                for file, digest in sorted(digests.items()):
                    line += f" {file} sha256 {digest}"
                if artefact.get("sha256"):
                    line += f" {artefact.get('package', '')} {artefact.get('member', '')} sha256 {artefact['sha256']}"
                if node.get("sha256"):
                    line += f" sha256 {node['sha256']}"
                out.append(line)
                return
            for key, value in sorted(node.items()):
                if key not in ("training", "training_per_fold", "compute"):
                    walk(value, f"{where}.{key}" if where else key)

    walk(payload.get("provenance", {}), "")
    return out or ["(no model: BM25 over tokenized text)"]


def check_state(row: Row, entries: dict[str, Any]) -> str:
    payload = row.first
    entry = entries.get(row.name)
    git = (payload.get("environment", {}).get("git") or {}).get("commit") or "?"
    when = f"{payload.get('created', '?')[:10]} · {git[:10]}"
    if row.stale:
        return f"stale · {when}"
    if entry is None:
        return f"not graded · {when}"
    states = [state for _, _, _, state in compare(entry, payload)]
    worst = next((s for s in ("fail", "not comparable", "okish", "ok") if s in states), "ok")
    return f"{worst} · {when}"


def _cell(value: float | None, scale: float = 100.0, digits: int = 2) -> tuple[str, str]:
    if value is None:
        return "-", ""
    return f"{value * scale:.{digits}f}", f"{value * scale:.6f}"


def _row_html(row: Row, dataset: dict[str, Any], name: str, results: Path, entries: dict[str, Any],
              paper: dict[str, float], index: int) -> str:
    payload = row.first
    n_docs = dataset.get("corpus_size") or 0
    size = row.cost("index_size_bytes")
    spread = row.spread("MRR@10")
    mrr_text, mrr_key = _cell(row.metric("MRR@10"))
    if spread is not None:
        mrr_text += f" ±{spread * 100:.2f}"
    base = registered_as(payload)
    paper_value = paper.get(base) if (payload.get("retriever", {}).get("paper_row") and row.name == base) else None
    comparable = dataset.get("comparable_to_paper", False)
    delta = (row.metric("MRR@10") - paper_value) if (paper_value is not None and comparable) else None
    cells = {
        "row": (escape(row.name), row.name), "family": (family(payload), family(payload)),
        "group": (GROUPS[group(row)][2:], GROUPS[group(row)]), "MRR@10": (escape(mrr_text) + row.marks, mrr_key),
        "flops": (_fmt(row.cost("flops"), ".3f"), _key(row.cost("flops"))),
        "bytes": (_fmt(size / n_docs if size and n_docs else None, ".0f"), _key(size / n_docs if size and n_docs
                                                                                  else None)),
        "latency": (_fmt(row.cost("latency_ms_p50"), ".2f"), _key(row.cost("latency_ms_p50"))),
        "provenance": (escape(row.provenance), row.provenance), "ran_on": (escape(ran_on(payload)), ran_on(payload)),
        "seeds": (str(len(row.payloads)), str(len(row.payloads))),
        "check": (escape(check_state(row, entries)), check_state(row, entries)),
        "paper": _cell(paper_value) if paper_value is not None else ("", ""),
        "delta": ((f"{delta * 100:+.2f}", f"{delta * 100:.6f}") if delta is not None else
                  (("n/c", "") if paper_value is not None else ("", ""))),
    }
    for metric in ("nDCG@10", "MAP", "Hit@1", "Hit@10", "Hit@100", "Hit@1000"):
        cells[metric] = _cell(row.metric(metric), digits=2 if metric in ("nDCG@10", "MAP") else 1)
    tds = []
    for _header, key, numeric in COLUMNS:
        text, sort_key = cells[key]
        if key == "row":
            text = (f'<button class="more" aria-expanded="false" aria-controls="d-{name}-{index}" title="details">'
                    f'+</button> {text}')
        tds.append(f'<td data-sort="{escape(sort_key, quote=True)}"{" class=num" if numeric else ""}>{text}</td>')
    link = os.path.relpath(row.files[0], results)
    detail = ["<dl>", "<dt>commands</dt><dd>"]
    for command in commands(row, name, results):
        detail.append(f'<div class="cmd"><code>{escape(command)}</code> <button class="copy" '
                      f'data-copy="{escape(command, quote=True)}">copy</button></div>')
    detail.append("</dd>")
    hashes = sorted({p.get("retriever", {}).get("config_hash") or "-" for p in row.payloads})
    detail.append(f"<dt>config hash</dt><dd><code>{escape(', '.join(hashes))}</code></dd>")
    detail.append("<dt>weights</dt><dd>" + "<br>".join(f"<code>{escape(w)}</code>" for w in weights(payload)) + "</dd>")
    detail.append(f'<dt>result</dt><dd><a href="{escape(link, quote=True)}">{escape(link)}</a>'
                  + "".join(f' · <a href="{escape(os.path.relpath(f, results), quote=True)}">seed result</a>'
                            for f in row.files[1:]) + "</dd>")
    if row.stale:
        detail.append(f"<dt>stale</dt><dd>{escape(row.stale[0])}</dd>")
    detail.append("</dl>")
    return (f'<tbody><tr class="main">{"".join(tds)}</tr>'
            f'<tr class="detail" id="d-{name}-{index}" hidden><td colspan="{len(COLUMNS)}">{"".join(detail)}</td>'
            f'</tr></tbody>')


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _key(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _figures(rows: list[Row], dataset: dict[str, Any], name: str) -> str:
    pool = dataset.get("corpus_label") == "pool"
    shown = [r for r in rows if not (pool and group(r) == "scratch")]  # smoke runs stay out of the pool's figure
    flops, latency = [], []
    for r in shown:
        marker = {"real": "real", "scratch": "scratch"}.get(group(r), "other")
        mrr = (r.metric("MRR@10") or 0.0) * 100
        flops.append(Point(r.cost("flops"), mrr, r.name, family(r.first), marker))
        if r.cost("latency_ms_p50"):
            latency.append(Point(r.cost("latency_ms_p50"), mrr, r.name, family(r.first), marker))
    left_out = len(rows) - len(shown)
    note = f'<p class="note">{left_out} scratch row(s) left out of the figures (smoke runs, not results).</p>' \
        if left_out else ""
    dense = [p for p in flops if p.x is None]
    sparse = [p for p in flops if p.x is not None]
    return ('<div class="figures">'
            + (scatter(sparse + dense, f"{name}: MRR@10 against FLOPS", "FLOPS (overlapping terms per "
                                                                         "query-document pair, log)")
               if sparse else "")
            + (scatter(latency, f"{name}: MRR@10 against latency", "p50 latency at k=10 (ms, log)") if latency else "")
            + "</div>" + note)


def banner(dataset: dict[str, Any]) -> str:
    label = dataset.get("corpus_label", "")
    size = f"{dataset.get('corpus_size', 0):,} passages, {dataset.get('qrels_queries', 0):,} queries"
    if dataset.get("comparable_to_paper"):
        return f'<p class="banner yes">Comparable with the paper: the official corpus ({size}).</p>'
    why = {"pool": "the 2,987-passage pool that holds every dev positive, not the official 1,002,822-passage corpus",
           "demo": "the generated demo set", "custom": "a corpus of your own"}.get(label, f"a {label} corpus")
    return f'<p class="banner no">Not comparable with the paper: {why} ({size}).</p>'


def write_page(results: Path, output: Path, sections: list[tuple[str, dict[str, Any], list[Row], dict[str, str]]],
               leaderboard: Path = LEADERBOARD_FILE) -> Path:
    """``sections``: (dataset name, its description from a result file, its rows with marks, the comparisons made)."""
    try:
        board = load_leaderboard(leaderboard)
    except LeaderboardError:
        board = None
    paper = {e.retriever: e.metrics.get("MRR@10") for e in (board.entries if board else []) if e.is_paper_row}
    tabs, panels = [], []
    for i, (name, dataset, rows, compared) in enumerate(sections):
        entries = {e.retriever: e for e in (board.for_dataset(name) if board else [])}
        ordered = sorted(rows, key=lambda r: (GROUPS[group(r)], -(r.metric("MRR@10") or 0.0), r.name))
        head = "".join(f'<th data-col="{j}"{" class=num" if numeric else ""} tabindex="0">{escape(header)}</th>'
                       for j, (header, _, numeric) in enumerate(COLUMNS))
        body = "".join(_row_html(r, dataset, name, results, entries, paper, j) for j, r in enumerate(ordered))
        marks = "; ".join(f"{'†' if k != 'best' else '‡'} differs significantly from {escape(v)}"
                          for k, v in compared.items())
        tabs.append(f'<button role="tab" data-tab="{escape(name)}" aria-selected="{str(i == 0).lower()}">'
                    f'{escape(name)}</button>')
        panels.append(f'<section class="panel" data-panel="{escape(name)}"{"" if i == 0 else " hidden"}>'
                      f'<h2>{escape(name)}</h2>{banner(dataset)}'
                      f'<p class="note">{marks + " (paired randomization test on RR@10, Holm-corrected, 5%). " if marks else ""}'
                      "Click a column header to sort; + shows the commands, hashes and result file of a row.</p>"
                      f"{_figures(ordered, dataset, name)}"
                      f'<table data-dataset="{escape(name)}"><thead><tr>{head}</tr></thead>{body}</table></section>')
    html = TEMPLATE.replace("{{TABS}}", "".join(tabs)).replace("{{PANELS}}", "\n".join(panels))
    output = Path(output)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(output)
    return output


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>prosper-bench leaderboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.15rem}
.tabs{display:flex;gap:.3rem;flex-wrap:wrap;margin:1rem 0}
.tabs button{border:1px solid #bbb;background:#f6f6f6;padding:.35rem .8rem;border-radius:4px;cursor:pointer}
.tabs button[aria-selected=true]{background:#1f4e79;color:#fff;border-color:#1f4e79}
.banner{padding:.45rem .7rem;border-radius:4px}.banner.yes{background:#e3f4e3}.banner.no{background:#fdf0d9}
table{border-collapse:collapse;font-size:.82rem;margin-top:.6rem}
th,td{border-bottom:1px solid #e3e3e3;padding:.25rem .45rem;text-align:left;white-space:nowrap}
th{cursor:pointer;background:#fafafa;position:sticky;top:0}th.num,td.num{text-align:right}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr.detail td{background:#fbfbfb;white-space:normal}dl{margin:.3rem 0}dt{font-weight:600;margin-top:.3rem}
dd{margin-left:1rem}code{font-size:.78rem;word-break:break-all}.cmd{margin:.15rem 0}
button.more{width:1.5rem;padding:0;cursor:pointer}button.copy{font-size:.7rem;cursor:pointer}
.figures{display:flex;flex-wrap:wrap;gap:1rem}.note{color:#555;font-size:.85rem}
</style></head>
<body>
<h1>prosper-bench leaderboard</h1>
<p class="note">Current results only, from <code>python -m benchmark report</code>. Metrics in %. Rows: the suite's
retrievers as registered, their variants, hybrids and external runs; scratch models are smoke runs, never comparable
with the paper. The report (REPORT.md) has the same numbers.</p>
<nav class="tabs" role="tablist">{{TABS}}</nav>
{{PANELS}}
<script>
(function () {
  "use strict";
  var tabs = document.querySelectorAll(".tabs button");
  tabs.forEach(function (button) {
    button.addEventListener("click", function () {
      tabs.forEach(function (other) { other.setAttribute("aria-selected", String(other === button)); });
      document.querySelectorAll(".panel").forEach(function (panel) {
        panel.hidden = panel.getAttribute("data-panel") !== button.getAttribute("data-tab");
      });
    });
  });
  function sortBy(th) {
    var table = th.closest("table"), col = Number(th.getAttribute("data-col"));
    var numeric = th.classList.contains("num");
    var ascending = th.getAttribute("aria-sort") === "descending";
    table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var bodies = Array.prototype.slice.call(table.tBodies);
    bodies.sort(function (a, b) {
      var x = a.rows[0].cells[col].getAttribute("data-sort"), y = b.rows[0].cells[col].getAttribute("data-sort");
      if (numeric) {
        var fx = x === "" ? NaN : parseFloat(x), fy = y === "" ? NaN : parseFloat(y);
        if (isNaN(fx) && isNaN(fy)) { return 0; }
        if (isNaN(fx)) { return 1; }
        if (isNaN(fy)) { return -1; }
        return ascending ? fx - fy : fy - fx;
      }
      return ascending ? x.localeCompare(y) : y.localeCompare(x);
    });
    bodies.forEach(function (body) { table.appendChild(body); });
  }
  document.querySelectorAll("th[data-col]").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (event) { if (event.key === "Enter") { sortBy(th); } });
  });
  document.querySelectorAll("button.more").forEach(function (button) {
    button.addEventListener("click", function () {
      var detail = document.getElementById(button.getAttribute("aria-controls"));
      detail.hidden = !detail.hidden;
      button.setAttribute("aria-expanded", String(!detail.hidden));
      button.textContent = detail.hidden ? "+" : "-";
    });
  });
  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = button.getAttribute("data-copy");
      var done = function () { button.textContent = "copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { select(button); });
      } else { select(button); }
    });
  });
  function select(button) {
    var range = document.createRange();
    range.selectNodeContents(button.previousElementSibling);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "selected: Ctrl+C";
  }
}());
</script>
</body></html>
"""
