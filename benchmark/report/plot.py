"""``python -m benchmark plot``: trade-off curves (MRR@10 against FLOPS and against latency) to PNG.

Sweep points come from ``results/tradeoff/<dataset>/``; the current result of every row on the dataset (scratch
models on the pool left out: smoke runs, not results) is drawn as a reference point (BM25 has FLOPS; a dense model
has none, so it is a horizontal line on the FLOPS panel).
The title names the dataset and the provenance, so a scratch-model curve is never mistaken for the paper's.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from benchmark.records.results import current_results, find_results, load_result, provenance_label


def _sweeps(results: Path, dataset: str) -> dict[tuple[str, str], list[tuple[object, float, float | None, float | None]]]:
    """(retriever, knob) -> [(value, MRR@10, FLOPS, p50 ms)], newest result per value."""
    from benchmark.records.rows import currency
    from benchmark.registry import load_registry

    registry = load_registry()
    newest: dict[tuple[str, str, str], dict] = {}
    for path in find_results(results / "tradeoff", dataset):
        payload = load_result(path)
        sweep = payload.get("sweep")
        if not sweep or currency(payload, registry) is not None:  # only points of the current configs
            continue
        newest[(payload["retriever"].get("registered_as", payload["retriever"]["name"]), sweep["knob"],
                str(sweep["value"]))] = payload
    curves: dict[tuple[str, str], list] = defaultdict(list)
    for (name, knob, _), payload in newest.items():
        cost = payload["cost"]
        curves[(name, knob)].append((payload["sweep"]["value"], payload["metrics"]["MRR@10"], cost.get("flops"),
                                     cost.get("latency_ms_p50")))
    for points in curves.values():
        points.sort(key=lambda p: (p[2] is None, p[2] or 0.0))
    return curves


def plot_tradeoff(results: Path, dataset: str, out_dir: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = Path(results)
    curves = _sweeps(results, dataset)
    references = {name: load_result(path) for name, path in current_results(results, dataset)[0].items()}
    # scratch models on the pool are smoke runs, not results: they stay out of the pool's figure
    references = {name: payload for name, payload in references.items()
                  if not (payload.get("dataset", {}).get("corpus_label") == "pool"
                          and provenance_label(payload) != "pretrained")}
    if not curves and not references:
        return None
    provenance = sorted({provenance_label(p) for p in references.values()} |
                        {provenance_label(load_result(p)) for p in find_results(results / "tradeoff", dataset)[:50]})
    fig, (ax_flops, ax_lat) = plt.subplots(1, 2, figsize=(13, 5.2))
    markers = {"flops_scale": "o-", "lfw": "s--", "query_top_m": "^:"}
    for (name, knob), points in sorted(curves.items()):
        label = f"{name}: {knob}"
        flops = [(p[2], p[1] * 100, p[0]) for p in points if p[2] is not None]
        if flops:
            line, = ax_flops.plot([f for f, _, _ in flops], [m for _, m, _ in flops], markers.get(knob, "o-"),
                                  label=label)
            for f, m, value in flops:
                ax_flops.annotate(str(value), (f, m), textcoords="offset points", xytext=(3, 3), fontsize=7,
                                  color=line.get_color())
        lat = sorted((p[3], p[1] * 100) for p in points if p[3] is not None)
        if lat:
            ax_lat.plot([x for x, _ in lat], [y for _, y in lat], markers.get(knob, "o-"), label=label)
    point_labels: dict[object, list[tuple[float, float, str, int]]] = {ax_flops: [], ax_lat: []}
    for name, payload in sorted(references.items()):
        mrr = payload["metrics"]["MRR@10"] * 100
        cost = payload.get("cost", {})
        paper = bool(payload.get("retriever", {}).get("paper_row"))
        style = dict(marker="*", color="k", markersize=9) if paper else dict(marker="o", color="grey", markersize=4)
        if cost.get("flops") is not None:
            if cost["flops"] > 0:  # a collapsed model (no active terms) has no place on a log axis
                ax_flops.plot([cost["flops"]], [mrr], linestyle="none", **style)
                point_labels[ax_flops].append((cost["flops"], mrr, name, 0 if paper else 1))
        else:
            ax_flops.axhline(mrr, color="grey", linestyle="-.", linewidth=0.8)
            ax_flops.annotate(f"{name} (dense)", (0.01, mrr), xycoords=("axes fraction", "data"), fontsize=8,
                              color="grey", xytext=(0, 2), textcoords="offset points")
        if cost.get("latency_ms_p50"):
            ax_lat.plot([cost["latency_ms_p50"]], [mrr], linestyle="none", **style)
            point_labels[ax_lat].append((cost["latency_ms_p50"], mrr, name, 0 if paper else 1))
    ax_flops.set_xscale("log")
    ax_flops.set_xlabel("FLOPS (average overlapping terms per query-document pair, log scale)")
    ax_lat.set_xscale("log")
    ax_lat.set_xlabel("query latency p50 at k=10 (ms, log scale; dense rows include query encoding)")
    from matplotlib.ticker import NullFormatter

    ax_lat.xaxis.set_minor_formatter(NullFormatter())
    for ax in (ax_flops, ax_lat):
        ax.set_ylabel("MRR@10 (%)")
        ax.grid(True, alpha=0.3)
    handles, labels = ax_flops.get_legend_handles_labels()
    if handles:
        ax_flops.legend(fontsize=8, loc="best")
    label = next(iter(references.values()), {}).get("dataset", {}).get("corpus_label", "")
    fig.suptitle(f"{dataset} ({label}) - effectiveness vs cost - provenance: {', '.join(provenance)}", fontsize=11)
    fig.tight_layout()
    for ax, items in point_labels.items():
        note = ax.text(0.99, 0.01, _LEFT_OUT.format(99), transform=ax.transAxes, ha="right", va="bottom",
                       fontsize=7, color="grey")  # drawn first at its widest, so no label is placed over it
        hidden = _place_labels(fig, ax, items, reserved=[note.get_window_extent(fig.canvas.get_renderer())])
        if hidden:
            note.set_text(_LEFT_OUT.format(hidden))
        else:
            note.remove()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{dataset}-tradeoff.png"
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


_LEFT_OUT = "{} overlapping labels left out (grey dots: ablations; see REPORT.md)"
# Offsets (points) tried in turn for a point's label: right-below, right-above, left-below, left-above.
_LABEL_OFFSETS = ((4, -10, "left"), (4, 3, "left"), (-4, -10, "right"), (-4, 3, "right"))


def _place_labels(fig, ax, items: list[tuple[float, float, str, int]], reserved: list | None = None) -> int:
    """Label points without overlaps: paper rows first, then ablations; a label that fits nowhere is left out.

    Why: 30 models near one MRR@10 made the labels unreadable; a dropped label still leaves its marker, and every
    number is in the report's table. Returns how many labels were left out.
    """
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = list(reserved or [])
    hidden = 0
    for x, y, text, _ in sorted(items, key=lambda item: (item[3], -item[1])):
        for dx, dy, align in _LABEL_OFFSETS:
            label = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=8, ha=align)
            box = label.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                break
            label.remove()
        else:
            hidden += 1
    return hidden
