"""``python -m benchmark index-bench``: the project's inverted index against Lucene, PISA, Seismic and BMP, same vectors.

Workloads (``benchmark/serving/workloads.py``): ``synthetic`` (Zipfian SPLADE-like vectors, seeded) or ``fitted:PROFILE`` -
vectors drawn with the marginals of the suite's own encoders (``--fit-from prosper-e5 --dataset ...`` writes a
profile). Every engine gets the *same* quantized integer weights (documents 8-bit impacts, queries 8-bit) and the
*same* query terms (no engine truncates a query), so every exact engine must return the same scores and the recall
column checks it (tie-aware: a returned document counts when its exact score is at least the exact k-th score). The
engines, their build grids and settings, and how their builds are accounted for: ``benchmark/serving/peers.py``. Each peer
runs in a forked child of its own (``benchmark/serving/isolation.py``): a native crash or an exception there is reported under
``skipped`` with the step it happened in, the settings it measured before are kept, and the run goes on.

Tuned fairly: every setting of every engine (our algorithms, top-m, pruning rule and setting; Seismic's build
parameters and heap_factor; PISA's algorithm; BMP's block size and alpha) is run on **tuning** queries and on disjoint
**evaluation** queries (drawn from the same workload, different seeds of the same generator). Each engine's point is
*chosen on the tuning queries* - its fastest exact setting, and its fastest setting with tuning recall >= 0.99 (or its
most accurate one where none gets there) - and the ratios compare those points' *evaluation* numbers. The curves
(recall against time, every setting) come from the same run.

Timing, the same for every engine:

- **ms/query** - the engine's native batch call over the evaluation queries, 1 thread, after ``warmups`` untimed
  batches (2: enough for the JVM's JIT too), divided by the number of queries. This is the number the ratios compare;
- **single-call p50** - one query at a time through the engine's Python API, and **wrapper ms** = single-call mean
  minus batch ms/query: what a Python caller pays on top (pyjnius, a pandas round trip, our own query quantization);
- **x floor** - ms/query over the physical floor: the postings of the query's lists times the ns per posting of a
  plain streaming pass (read every posting, multiply-add into a register) measured in the same run.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp

from benchmark.serving.isolation import peak_child_rss_gib, peak_rss_gib, run_isolated
from benchmark.serving.peers import Bmp, Lucene, Ours, OursPruned, Pisa, Seismic, Setting, query_terms
from benchmark.serving.workloads import generate, load_profile, synthetic_sparse
from retrievers.index.inverted_index import InvertedIndex, quantize_queries


@dataclass
class IndexBenchConfig:
    n_docs: int = 100_000
    n_queries: int = 300  # evaluation queries; as many tuning queries again, disjoint
    workload: str = "synthetic"  # synthetic | fitted:PATH (a profile written by --fit-from)
    vocab: int = 30522
    doc_terms: int = 120
    query_terms: int = 30
    zipf_exponent: float = 1.0
    zipf_offset: float = 20.0  # flattens the head so the top terms are in most, not all, documents
    rarity_power: float = 2.0  # how strongly weights grow with term rarity (see synthetic_sparse)
    seed: int = 0
    ks: tuple[int, ...] = (10, 1000)
    threads: int = 1  # every timed call runs on one thread (builds may use more: build_threads)
    build_threads: int = 2
    warmups: int = 2  # untimed batches before the timed one, for every engine alike
    block_size: int = 64
    approximate: tuple[tuple[int, float], ...] = ((16, 1.0), (24, 1.0), (28, 1.0))  # auto: (top_m query terms, boost)
    # ApproximateIndex rows: (postings kept per list or None, impact floor, candidates per result (x k) - None: no
    # forward index, the pruned top-k is the answer -, top_m query terms for candidates). Per-list rows suit the
    # synthetic workload, the floor rows PROSPER's bimodal weights (see retrievers/index/approximate.py).
    pruned: tuple[tuple[int | None, int, int | None, int | None], ...] = (
        (1000, 0, 5, 24), (1000, 0, 5, None), (2000, 0, 5, 24), (None, 3, None, None), (None, 5, None, None),
        (None, 8, None, None), (None, 12, None, None))
    seismic_builds: tuple[tuple[int, float, float], ...] = (  # (n_postings, centroid_fraction, summary_energy)
        (3500, 0.1, 0.4), (6000, 0.075, 0.5), (10000, 0.05, 0.5))
    seismic_heap_factors: tuple[float, ...] = (0.9, 0.8, 0.7, 0.6, 0.5)
    bmp_block_sizes: tuple[int, ...] = (32, 64)
    bmp_alphas: tuple[float, ...] = (1.0, 0.95, 0.9, 0.8, 0.7)
    peers: tuple[str, ...] = ("lucene", "pisa", "seismic", "bmp")
    work_dir: str | None = None


@dataclass
class Row:
    system: str
    variant: str
    n_docs: int
    k: int
    exact: bool
    index_bytes: int | None = None
    build_s: float | None = None
    convert_s: float | None = None  # input conversion, apart from the build
    tune_ms: float | None = None  # batch ms/query on the tuning queries
    tune_recall: float | None = None
    batch_ms: float | None = None  # native batch call, 1 thread, per evaluation query
    single_p50_ms: float | None = None
    single_p95_ms: float | None = None
    wrapper_ms: float | None = None
    floor_x: float | None = None
    recall: float | None = None  # on the evaluation queries
    chosen: str = ""  # "exact" / "approximate": the engine's point chosen on the tuning queries
    note: str = ""


@dataclass
class Report:
    config: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


class ExactScorer:
    """Exact integer scores of any (query, doc) pair on the quantized weights, for tie-aware recall."""

    def __init__(self, index: InvertedIndex, queries: sp.csr_matrix, documents: sp.csr_matrix | None = None):
        """``documents``: the index's ``document_matrix`` when the caller holds one already (int32 is exact: at most
        256 query terms x 255 x 255 = 16.6M), so a 1M run keeps one copy of the collection, not two."""
        indptr, terms, weights, _ = quantize_queries(queries)
        self.q = sp.csr_matrix((weights.astype(np.int32), terms, indptr), shape=(queries.shape[0], index.vocab_size))
        self.d = index.document_matrix(np.int32) if documents is None else documents

    def recall(self, retrieved: list[list[int]], rows: list[int], reference: np.ndarray,
               reference_scores: np.ndarray) -> float:
        """Tie-aware recall of ``retrieved`` (one list per query of ``rows``) against the exact reference."""
        values = []
        for docs, q in zip(retrieved, rows, strict=True):
            n_ref = int((reference[q] >= 0).sum())
            if n_ref == 0:
                continue
            kth = reference_scores[q, n_ref - 1]
            docs = [d for d in docs[:n_ref] if d >= 0]
            if not docs:
                values.append(0.0)
                continue
            scores = (self.d[docs] @ self.q[q].T).toarray().ravel()
            values.append(min(int((scores >= kth).sum()), n_ref) / n_ref)
        return float(np.mean(values)) if values else 1.0


def measure(setting: Setting, rows: list[int], k: int, warmups: int, singles: bool
            ) -> tuple[dict[str, float], list[list[int]]]:
    """Batch ms/query after ``warmups`` untimed batches; with ``singles``, one query at a time too."""
    for _ in range(warmups):
        setting.batch(rows, k)
    start = time.perf_counter()
    retrieved = setting.batch(rows, k)
    batch_ms = 1000 * (time.perf_counter() - start) / len(rows)
    numbers = {"batch_ms": batch_ms}
    if singles:
        times = []
        for q in rows:
            start = time.perf_counter()
            setting.single(q, k)
            times.append(time.perf_counter() - start)
        ms = np.asarray(times) * 1000
        numbers.update({"single_p50_ms": float(np.percentile(ms, 50)), "single_p95_ms": float(np.percentile(ms, 95)),
                        "wrapper_ms": float(ms.mean() - batch_ms)})
    return numbers, retrieved


# ------------------------------------------------------------------------------------------------------- floor
@numba.njit(nogil=True, cache=True)
def _stream(offsets, impacts, q_indptr, q_terms, q_weights, out):
    for q in range(q_indptr.shape[0] - 1):
        total = np.int64(0)
        for i in range(q_indptr[q], q_indptr[q + 1]):
            t, w = q_terms[i], q_weights[i]
            for p in range(offsets[t], offsets[t + 1]):
                total += w * np.int64(impacts[p])
        out[q] = total


def streaming_floor(index: InvertedIndex, queries: sp.csr_matrix) -> dict[str, float]:
    """ns per posting of a plain streaming pass over the query lists (no accumulator, no top-k), one thread."""
    indptr, terms, weights, _ = quantize_queries(queries)
    offsets, impacts = np.asarray(index.offsets), np.asarray(index.impacts)
    out = np.zeros(len(indptr) - 1, np.int64)
    _stream(offsets, impacts, indptr, terms, weights, out)  # compile and warm the page cache
    start = time.perf_counter()
    _stream(offsets, impacts, indptr, terms, weights, out)
    seconds = time.perf_counter() - start
    postings = float(np.diff(offsets)[terms].sum())
    return {"ns_per_posting": 1e9 * seconds / max(postings, 1), "postings_per_query": postings / (len(indptr) - 1),
            "ms_per_query": 1000 * seconds / (len(indptr) - 1)}


def workload_vectors(cfg: IndexBenchConfig) -> tuple[sp.csr_matrix, sp.csr_matrix, dict[str, Any]]:
    if cfg.workload == "synthetic":
        docs = synthetic_sparse(cfg.n_docs, cfg.vocab, cfg.doc_terms, cfg.seed, cfg.zipf_exponent, cfg.zipf_offset,
                                cfg.rarity_power)
        queries = synthetic_sparse(2 * cfg.n_queries, cfg.vocab, cfg.query_terms, cfg.seed + 1, cfg.zipf_exponent,
                                   cfg.zipf_offset, cfg.rarity_power)  # tuning + evaluation
        return docs, queries, {"name": "synthetic"}
    kind, _, where = cfg.workload.partition(":")
    if kind != "fitted" or not where:
        raise ValueError(f"workload must be 'synthetic' or 'fitted:PROFILE', not {cfg.workload!r}")
    profile = load_profile(Path(where))
    docs, queries = generate(profile, cfg.n_docs, 2 * cfg.n_queries, cfg.seed)  # tuning + evaluation
    return docs, queries, {"name": profile["name"], "profile": where, "fitted_on": profile["fitted_on"],
                           "source": profile["source"]}


@dataclass
class BenchInputs:
    """What every engine is built from: the same quantized collection and queries (see the module docstring)."""

    cfg: IndexBenchConfig
    queries: sp.csr_matrix
    index: InvertedIndex
    docs_q: sp.csr_matrix  # the 8-bit document impacts, int32
    pairs: list[tuple[np.ndarray, np.ndarray]]  # each query's (terms, 8-bit weights)
    work: Path


PEERS: dict[str, Callable[[BenchInputs], Any]] = {
    "lucene": lambda b: Lucene(b.docs_q, b.pairs, b.work, b.cfg.build_threads),
    "pisa": lambda b: Pisa(b.docs_q, b.pairs, b.work, b.cfg.build_threads),
    "seismic": lambda b: Seismic(b.docs_q, b.pairs, b.work, b.cfg.build_threads, b.cfg.seismic_builds,
                                 b.cfg.seismic_heap_factors),
    "bmp": lambda b: Bmp(b.docs_q, b.pairs, b.work, b.cfg.bmp_block_sizes, b.cfg.bmp_alphas),
}


def run_index_bench(cfg: IndexBenchConfig) -> Report:
    unknown = [name for name in cfg.peers if name not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer engine(s) {unknown}: choose from {sorted(PEERS)}")
    report = Report(config=asdict(cfg))
    docs, queries, workload = workload_vectors(cfg)
    n_tune = queries.shape[0] - cfg.n_queries
    tune_rows, eval_rows = list(range(n_tune)), list(range(n_tune, queries.shape[0]))
    report.config["workload_info"] = workload
    postings = int(docs.nnz)
    report.config.update({"postings": postings, "mean_doc_terms": float(postings / docs.shape[0]),
                          "mean_query_terms": float(queries.nnz / queries.shape[0]), "tuning_queries": n_tune,
                          "evaluation_queries": len(eval_rows)})
    parent = Path(cfg.work_dir) if cfg.work_dir else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)  # --work-dir names a folder to use, not one that must exist
    work = Path(tempfile.mkdtemp(prefix="index-bench-", dir=parent))
    try:
        ours = Ours.build(docs, queries, work, cfg.block_size, cfg.approximate)
        del docs  # from here on every engine reads the quantized impacts: the float copy would only hold memory
        index = ours.index
        docs_q = index.document_matrix(np.int32)
        scorer = ExactScorer(index, queries, docs_q)
        floor = streaming_floor(index, queries[eval_rows])
        report.config.update({"floor_" + k: v for k, v in floor.items()})
        report.config["flops"] = index.overlap_flops(queries[eval_rows])
        refs = {k: index.search(queries, k=k, algorithm="exhaustive") for k in cfg.ks}
        inputs = BenchInputs(cfg, queries, index, docs_q, query_terms(queries), work)
        _progress(f"{workload['name']} at {cfg.n_docs:,} documents: {postings:,} postings, our index built")

        def measure_engine(engine, add_row: Callable[[Row], None], step: Callable[[str], None]) -> None:
            for built in engine.builds():
                _progress(f"{engine.system}: {built.name} (convert {built.convert_s:.1f} s, build "
                          f"{built.build_s:.1f} s, {built.size_bytes / 2**20:,.1f} MiB)")
                for k in cfg.ks:
                    for setting in engine.settings(built, k):
                        step(f"{engine.system}: {built.name}: {setting.variant}, k={k}")
                        add_row(_measure_setting(engine.system, built, setting, k, cfg, tune_rows, eval_rows, scorer,
                                                 refs[k], floor["ms_per_query"], index.n_docs))
                step(f"{engine.system}: the build after {built.name}")

        # ours in this process: a failure there is the run's failure
        for engine in (ours, OursPruned(queries, work, cfg.pruned, index)):
            measure_engine(engine, report.rows.append, lambda _: None)
        for name in cfg.peers:  # each peer in a child of its own: a crash costs that peer, never the run
            def peer(send, name=name) -> None:
                send("step", f"{name}: conversion and first build")
                measure_engine(PEERS[name](inputs), lambda row: send("row", row), lambda text: send("step", text))

            before = len(report.rows)
            outcome = run_isolated(peer, lambda _, row: report.rows.append(row))
            if outcome.peak_rss_gib is not None:
                report.config.setdefault("peer_peak_rss_gib", {})[name] = round(outcome.peak_rss_gib, 2)
            if outcome.failure:
                report.skipped[name] = (f"{outcome.failure}, during {outcome.last_step or 'its start'} "
                                        f"({len(report.rows) - before} settings measured before, kept)")
                _progress(f"{name} stopped: {report.skipped[name]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.config["peak_rss_gib"] = round(peak_rss_gib(), 2)
    report.config["peak_peer_rss_gib"] = round(peak_child_rss_gib(), 2)  # the largest peer's child process
    choose_points(report)
    report.config["ratios"] = ratios(report)
    return report


def _rss_gib() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / 2**30
    except OSError:  # not Linux: the peak alone
        return float("nan")


def _progress(message: str) -> None:
    """A line on stderr per build, with the memory held now and at peak: a 1M run takes hours, its memory decides
    whether it can finish, and stdout carries the results only."""
    print(f"[index-bench {dt.datetime.now().strftime('%H:%M:%S')} rss {_rss_gib():.1f} GiB, peak "
          f"{peak_rss_gib():.1f}] {message}", file=sys.stderr, flush=True)


def _measure_setting(system: str, built, setting: Setting, k: int, cfg: IndexBenchConfig, tune_rows: list[int],
                     eval_rows: list[int], scorer: ExactScorer, ref, floor_ms: float, n_docs: int) -> Row:
    tuned, found = measure(setting, tune_rows, k, cfg.warmups, singles=False)
    tune_recall = scorer.recall(found, tune_rows, ref.doc_index, ref.int_scores)
    numbers, found = measure(setting, eval_rows, k, cfg.warmups, singles=True)
    recall = scorer.recall(found, eval_rows, ref.doc_index, ref.int_scores)
    named = setting.variant.startswith(built.name) or built.name == "exact index"
    variant = setting.variant if named else f"{built.name}: {setting.variant}"
    return Row(system, variant, n_docs, k, setting.exact, index_bytes=built.size_bytes, build_s=built.build_s,
               convert_s=built.convert_s, tune_ms=tuned["batch_ms"], tune_recall=tune_recall, recall=recall,
               floor_x=numbers["batch_ms"] / floor_ms if floor_ms > 0 else None,
               note="; ".join(n for n in (setting.note, built.note) if n), **numbers)


def choose_points(report: Report) -> None:
    """Mark each engine's points, chosen on the tuning queries only: the fastest exact setting, and the fastest
    setting with tuning recall >= 0.99 (the most accurate where none reaches it)."""
    for k in sorted({r.k for r in report.rows}):
        for system in sorted({r.system for r in report.rows}):
            rows = [r for r in report.rows if r.system == system and r.k == k]
            exact = [r for r in rows if r.exact]
            if exact:
                min(exact, key=lambda r: r.tune_ms).chosen = "exact"
            approx = [r for r in rows if (r.tune_recall or 0) >= 0.99]
            if approx:
                best = min(approx, key=lambda r: r.tune_ms)
            elif rows:
                best = max(rows, key=lambda r: (r.tune_recall or 0, -(r.tune_ms or 0)))
            else:
                continue
            best.chosen = (best.chosen + "+approximate").lstrip("+") if best.chosen else "approximate"


def ratios(report: Report) -> dict[str, Any]:
    """The issue's goals, as ratios of *evaluation* ms/query of the points chosen on the tuning queries.

    Exact: ours against PISA's and Lucene's chosen exact points and BMP's safe mode (alpha 1.0, its fastest block
    size on tuning). Approximate: our point against Seismic's (each the fastest at tuning recall >= 0.99, or the most
    accurate where that is never reached - ``reference`` says which, and the recall the evaluation queries gave)."""
    def chosen(system: str, k: int, what: str) -> Row | None:
        rows = [r for r in report.rows if r.system.startswith(system) and r.k == k and what in r.chosen.split("+")]
        return rows[0] if rows else None

    def ratio(slow: Row | None, fast: Row | None) -> float | None:
        return None if slow is None or fast is None or not fast.batch_ms else round(slow.batch_ms / fast.batch_ms, 2)

    def point(row: Row | None) -> dict[str, Any] | None:
        return row and {"variant": row.variant, "batch_ms": row.batch_ms, "recall": row.recall,
                        "tune_recall": row.tune_recall, "index_bytes": row.index_bytes}

    out: dict[str, Any] = {}
    for k in sorted({r.k for r in report.rows}):
        ours = chosen("prosper-bench", k, "exact")
        bmp_safe = [r for r in report.rows if r.system.startswith("bmp") and r.k == k and r.exact]
        bmp_safe_row = min(bmp_safe, key=lambda r: r.tune_ms) if bmp_safe else None
        out[f"k={k}"] = {"ours_exact": point(ours), "pisa_exact": point(chosen("pisa", k, "exact")),
                         "lucene_exact": point(chosen("lucene", k, "exact")),
                         "vs_our_exhaustive": ratio(next((r for r in report.rows if r.system == "prosper-bench"
                                                          and r.k == k and r.variant == "exhaustive"), None), ours),
                         "vs_pisa": ratio(chosen("pisa", k, "exact"), ours),
                         "vs_lucene": ratio(chosen("lucene", k, "exact"), ours),
                         "vs_bmp_safe": ratio(bmp_safe_row, ours), "bmp_safe": point(bmp_safe_row)}
        approx, seismic = chosen("prosper-bench", k, "approximate"), chosen("seismic", k, "approximate")
        reference = ("fastest at tuning recall >= 0.99" if seismic is not None and (seismic.tune_recall or 0) >= 0.99
                     else "highest tuning recall (below 0.99)")
        out[f"k={k}"]["approximate_recall>=0.99"] = {
            "ours": point(approx), "seismic": seismic and {**point(seismic), "reference": reference},
            "time_vs_seismic": (round(approx.batch_ms / seismic.batch_ms, 2) if approx and seismic and seismic.batch_ms
                                else None),
            "index_size_vs_seismic": (round(approx.index_bytes / seismic.index_bytes, 3)
                                      if approx and seismic and seismic.index_bytes else None)}
    return out


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


#: The serving goals every workload is held to (issue 26): exact k=10 at least 3x PISA and Lucene and faster than BMP's
#: safe mode; exact k=1000 at least 2x PISA; approximate at recall >= 0.99 no slower than Seismic at that recall, with
#: at most a third of its index.
GOALS = {"k10_vs_pisa": 3.0, "k10_vs_lucene": 3.0, "k10_vs_bmp_safe": 1.0, "k1000_vs_pisa": 2.0,
         "approx_time_vs_seismic": 1.0, "approx_index_vs_seismic": 1 / 3}


def _workload_label(config: dict[str, Any]) -> str:
    return f"{config.get('workload_info', {}).get('name', config['workload'])}, {config['n_docs']:,}"


def goals_markdown(reports: list[Report]) -> str:
    """The goals, met or missed, with the figures, from each report's ratios: the table the README quotes."""
    def ms(point: dict | None) -> str:
        return "-" if not point else f"{point['batch_ms']:.2f} ({point['variant'].split(': ')[-1]})"

    def verdict(value: float | None, holds: Callable[[float], bool]) -> str:
        return "not measured" if value is None else "met" if holds(value) else "missed"

    exact = ["| workload | k | ours, exact | PISA | Lucene | BMP safe (its recall) | ours vs PISA | vs Lucene "
             "| vs BMP safe | goal |", "|" + "---|" * 10]
    approx = ["| workload | k | ours at tuning recall >= 0.99 (evaluation recall) | Seismic (evaluation recall) "
              "| time vs Seismic | index vs Seismic | goal (time, index) |", "|" + "---|" * 7]
    for report in reports:
        label = _workload_label(report.config)
        for key, r in report.config.get("ratios", {}).items():
            k = int(key.split("=")[1])
            bmp = r.get("bmp_safe")
            if k == 10:
                goal = (f">= 3x PISA {verdict(r['vs_pisa'], lambda v: v >= GOALS['k10_vs_pisa'])}, >= 3x Lucene "
                        f"{verdict(r['vs_lucene'], lambda v: v >= GOALS['k10_vs_lucene'])}, faster than BMP safe "
                        f"{verdict(r['vs_bmp_safe'], lambda v: v > GOALS['k10_vs_bmp_safe'])}")
            else:
                goal = f">= 2x PISA {verdict(r['vs_pisa'], lambda v: v >= GOALS['k1000_vs_pisa'])}"
            bmp_recall = f" ({bmp['recall']:.3f})" if bmp else ""
            exact.append(f"| {label} | {k} | {ms(r['ours_exact'])} | {ms(r.get('pisa_exact'))} | "
                         f"{ms(r.get('lucene_exact'))} | "
                         f"{ms(bmp)}{bmp_recall} | {_fmt(r['vs_pisa'], '.2f')}x | {_fmt(r['vs_lucene'], '.2f')}x | "
                         f"{_fmt(r['vs_bmp_safe'], '.2f')}x | {goal} |")
            a = r["approximate_recall>=0.99"]
            ours, seismic = a["ours"], a["seismic"]
            ours_recall = f", {ours['recall']:.4f}" if ours else ""
            seismic_recall = f", {seismic['recall']:.4f}; {seismic['reference']}" if seismic else ""
            approx.append(f"| {label} | {k} | {ms(ours)}{ours_recall} | {ms(seismic)}{seismic_recall} | "
                          f"{_fmt(a['time_vs_seismic'], '.2f')} | {_fmt(a['index_size_vs_seismic'], '.3f')} | "
                          f"{verdict(a['time_vs_seismic'], lambda v: v <= GOALS['approx_time_vs_seismic'])}, "
                          f"{verdict(a['index_size_vs_seismic'], lambda v: v <= GOALS['approx_index_vs_seismic'])} |")
        for name, why in report.skipped.items():
            exact.append(f"| {label} | - | {name} not measured: {why} |" + " |" * 7)
    return ("Exact serving, ms per evaluation query at the points chosen on the tuning queries:\n\n" + "\n".join(exact)
            + "\n\nApproximate serving:\n\n" + "\n".join(approx) + "\n")


def markdown(reports: list[Report]) -> str:
    lines = []
    for report in reports:
        c = report.config
        lines.append(f"### {c['n_docs']:,} documents, workload `{c['workload']}` ({c['mean_doc_terms']:.0f} terms/doc, "
                     f"{c['mean_query_terms']:.0f} terms/query, {c['tuning_queries']} tuning + "
                     f"{c['evaluation_queries']} evaluation queries, FLOPS {c['flops']:.1f})\n")
        lines.append(f"Physical floor: {c['floor_ns_per_posting']:.2f} ns per posting of a plain streaming pass, "
                     f"{c['floor_postings_per_query']:,.0f} postings per query -> {c['floor_ms_per_query']:.2f} ms. "
                     f"All timings: 1 thread; ms/query = native batch call after {c.get('warmups', 1)} warm-up "
                     "batches. `chosen`: the engine's point picked on the tuning queries; every other number is on "
                     "the evaluation queries.\n")
        lines.append("| system | setting | k | exact | index MB | convert s | build s | tuning ms | tuning recall "
                     "| ms/query | x floor | single p50 ms | wrapper ms | recall | chosen |")
        lines.append("|" + "---|" * 15)
        for r in report.rows:
            lines.append(f"| {r.system} | {r.variant} | {r.k} | {'yes' if r.exact else 'no'} | "
                         f"{(r.index_bytes or 0) / 2**20:.1f} | {_fmt(r.convert_s, '.1f')} | {_fmt(r.build_s, '.1f')} | "
                         f"{_fmt(r.tune_ms, '.2f')} | {_fmt(r.tune_recall, '.4f')} | {_fmt(r.batch_ms, '.2f')} | "
                         f"{_fmt(r.floor_x, '.1f')} | {_fmt(r.single_p50_ms, '.2f')} | {_fmt(r.wrapper_ms, '.2f')} | "
                         f"{_fmt(r.recall, '.4f')} | {r.chosen} |")
        for name, why in report.skipped.items():
            lines.append(f"\n{name} not measured: {why}")
        if "peak_rss_gib" in c:
            each = ", ".join(f"{name} {gib:.1f}" for name, gib in c.get("peer_peak_rss_gib", {}).items())
            peers = (f"; each peer's own process: {each}" if each else  # older results: the largest peer's only
                     f"; the largest peer's process {c['peak_peer_rss_gib']:.1f}" if c.get("peers") else "")
            lines.append(f"\nPeak resident memory, GiB: this process (workload, our indexes, exact scorer) "
                         f"{c['peak_rss_gib']:.1f}{peers} (the result file's environment names the allocator).")
        lines.append("\nRatios (evaluation ms/query of the points chosen on tuning, this run): `"
                     + json.dumps(c.get("ratios", {})) + "`\n")
    return "\n".join(lines)


def curves_svg(report: Report, k: int) -> str:
    """Recall against ms/query for every engine's settings at one k (evaluation queries), as one SVG figure."""
    from benchmark.report.svgplot import Point, scatter

    points = []
    for r in report.rows:
        if r.k != k or r.batch_ms is None or r.recall is None:
            continue
        family = {"prosper-bench": "ours"}.get(r.system, r.system.split(" ")[0].capitalize())
        label = r.system.split(" ")[0] + (" *" if r.chosen else "")
        points.append(Point(r.batch_ms, r.recall * 100, label if r.chosen else "", family,
                            "real" if r.exact else "scratch"))
    c = report.config
    return scatter(points, f"{c['workload_info'].get('name', c['workload'])}, {c['n_docs']:,} docs, k={k}: recall "
                           "against time (filled: exact, hollow: approximate, *: chosen on tuning)",
                   "ms/query (1 thread, log)", y_label="recall of the exact top-k (%)")


def _portable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The scratch folder by its name only: where a machine keeps temporary indexes is no part of the result, and a
    committed result names no machine-local path."""
    work_dir = config.get("work_dir")
    return {**config, "work_dir": Path(work_dir).name} if work_dir and Path(work_dir).is_absolute() else config


def write_reports(reports: list[Report], output: Path, stamp: str | None = None) -> tuple[Path, Path]:
    """Write the reports so far under one stamp; the CLI calls this after every workload and size, rewriting the same
    files, so a run stopped in its third hour keeps every report it finished."""
    from benchmark.records.results import environment, utc_stamp

    stamp = stamp or utc_stamp()
    folder = Path(output) / "index-bench"
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"{stamp}.json"
    payload = {"schema_version": 3, "created": stamp, "environment": environment(),
               "reports": [{"config": _portable_config(r.config), "rows": [asdict(x) for x in r.rows],
                            "skipped": r.skipped} for r in reports]}
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return json_path, render(json_path, reports)


def load_reports(json_path: Path) -> list[Report]:
    """The reports of a result file, their ratios recomputed from their rows (the points chosen on tuning are stored
    with the rows, so this gives the same numbers, and new summaries apply to old runs)."""
    payload = json.loads(Path(json_path).read_text())
    if payload.get("schema_version") != 3:
        raise ValueError(f"{json_path}: schema {payload.get('schema_version')} predates the tuning/evaluation split "
                         "and cannot be rendered under the current rules")
    reports = []
    for item in payload["reports"]:
        report = Report(item["config"], [Row(**row) for row in item["rows"]], item.get("skipped", {}))
        report.config["ratios"] = ratios(report)
        reports.append(report)
    return reports


def render(json_path: Path, reports: list[Report] | None = None) -> Path:
    """The result file's markdown (goals first, then every row) and its recall-time figures, beside it."""
    json_path = Path(json_path)
    reports = load_reports(json_path) if reports is None else reports
    figures = []
    for i, report in enumerate(reports):
        for k in report.config["ks"]:
            svg = json_path.with_name(f"{json_path.stem}-{i}-k{k}.svg")
            svg.write_text(curves_svg(report, k), encoding="utf-8")
            figures.append(f"![curves]({svg.name})")
    md_path = json_path.with_suffix(".md")
    md_path.write_text("# Inverted index benchmark\n\n## Goals\n\n" + goals_markdown(reports) + "\n## Every setting\n\n"
                       + markdown(reports) + "\n" + "\n".join(figures) + "\n")
    return md_path
