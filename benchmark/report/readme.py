"""``results/README.md``: the hand-written findings, with their tables of numbers regenerated from current results.

A table is a block the file declares and ``report`` fills::

    <!-- table multicpr-ecom-pool
    bm25-bert: BM25, real BERT vocabulary
    prosper-e5: PROSPER: LRN + LFW 256/512 + query-only L2
    -->
    | ...generated... |
    <!-- end table -->

Each declared row (``name: what``) becomes one line from that row's current result, its seeds folded into one (mean
and sd), with the report's significance marks; a row with no current result says so rather than keep an old number.
Whether a row is stale depends on the git history at hand, so it is left to ``check``, the report and the page.
So the numbers a finding cites cannot drift from the result files: a test regenerates the file and compares.
"""

from __future__ import annotations

import re
from pathlib import Path

from benchmark.report.collection import Row, collect, mark_significance

BLOCK = re.compile(r"<!-- table (?P<dataset>\S+)\n(?P<spec>.*?)-->\n(?P<table>.*?)<!-- end table -->", re.S)
HEADER = ("| row | what | MRR@10 | nDCG@10 | Hit@1 | Hit@10 | Hit@1000 | FLOPS | terms / passage | seeds | minutes |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def _minutes(row: Row) -> str:
    """Train + encode + index + search + evaluate of one run, from its stages (a range over the seeds)."""
    spans = [sum(s.get("wall_s", 0) for s in (p.get("cost", {}).get("stages") or {}).values()) / 60
             for p in row.payloads]
    spans = [s for s in spans if s > 0]
    if not spans:
        return "-"
    low, high = min(spans), max(spans)
    return f"{low:.1f}" if round(low, 1) == round(high, 1) else f"{low:.1f}-{high:.1f}"


def _line(name: str, what: str, row: Row | None) -> str:
    if row is None:
        return f"| {name} | {what} | no current result | | | | | | | | |"
    def pct(metric: str, spec: str = ".1f") -> str:
        value = row.metric(metric)
        return "-" if value is None else format(value * 100, spec)
    mrr = pct("MRR@10", ".2f") + (f" ±{row.spread('MRR@10') * 100:.2f}" if row.spread("MRR@10") is not None else "")
    flops, terms = row.cost("flops"), row.cost("doc_terms_mean")
    return (f"| {name} | {what} | {mrr}{row.marks} | {pct('nDCG@10', '.2f')} | {pct('Hit@1')} | {pct('Hit@10')} "
            f"| {pct('Hit@1000')} | {'-' if flops is None else f'{flops:.1f}'} | "
            f"{'-' if terms is None else f'{terms:.0f}'} | {len(row.payloads)} | {_minutes(row)} |")


def render_block(results: Path, dataset: str, spec: str, cache: dict | None = None) -> str:
    """One declared table; ``cache`` keeps each dataset's rows between the blocks of one file (collected once)."""
    cache = cache if cache is not None else {}
    if dataset not in cache:
        rows, _ = collect(results, dataset)
        mark_significance(rows)
        cache[dataset] = {r.name: r for r in rows}
    rows = cache[dataset]
    lines = [HEADER]
    for entry in spec.strip().splitlines():
        name, _, what = entry.partition(":")
        lines.append(_line(name.strip(), what.strip(), rows.get(name.strip())))
    return "\n".join(lines) + "\n"


def refresh(text: str, results: Path) -> str:
    """``text`` with every declared table regenerated from the current results under ``results``."""
    cache: dict = {}

    def fill(match: re.Match) -> str:
        table = render_block(Path(results), match["dataset"], match["spec"], cache)
        return f"<!-- table {match['dataset']}\n{match['spec']}-->\n{table}<!-- end table -->"

    return BLOCK.sub(fill, text)


def write_readme(results: Path, path: Path | None = None) -> Path | None:
    """Regenerate the tables of ``results/README.md`` in place (None: the file does not exist)."""
    path = Path(path) if path else Path(results) / "README.md"
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8")
    new = refresh(text, results)
    if new != text:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(path)
    return path
