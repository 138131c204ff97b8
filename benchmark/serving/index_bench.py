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
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp

from benchmark.serving.bench_report import Report, Row, choose_points, ratios
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

