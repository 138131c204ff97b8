"""``python -m benchmark index-bench``: the project's inverted index against Lucene, PISA and Seismic, same vectors.

Workloads (``benchmark/workloads.py``): ``synthetic`` (Zipfian SPLADE-like vectors, seeded) or ``fitted:PROFILE`` -
vectors drawn with the marginals of the suite's own encoders (``--fit-from prosper --dataset ...`` writes a profile).
Every engine gets the *same* quantized integer weights (documents 8-bit impacts, queries 8-bit) and the *same* query
terms (no engine truncates a query), so every exact engine must return the same scores and the recall column checks it
(tie-aware: a returned document counts when its exact score is at least the exact k-th score).

Timing, the same for every engine:

- **ms/query** - the engine's native batch call over all queries, 1 thread, after one untimed warm-up batch, divided
  by the number of queries. This is the number the ratios compare;
- **single-call p50** - one query at a time through the engine's Python API, and **wrapper ms** = single-call mean
  minus batch ms/query: what a Python caller pays on top (pyjnius, a pandas round trip, our own query quantization);
- **x floor** - ms/query over the physical floor: the postings of the query's lists times the ns per posting of a
  plain streaming pass (read every posting, multiply-add into a register) measured in the same run.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from benchmark.workloads import generate, load_profile, synthetic_sparse
from retrievers.approximate_index import ApproximateIndex
from retrievers.base import directory_size
from retrievers.inverted_index import ALGORITHMS, InvertedIndex, quantize_queries


@dataclass
class IndexBenchConfig:
    n_docs: int = 100_000
    n_queries: int = 500
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
    block_size: int = 64
    approximate: tuple[tuple[int, float], ...] = ((16, 1.0), (24, 1.0), (28, 1.0))  # auto: (top_m query terms, boost)
    # ApproximateIndex rows: (postings kept per list or None, impact floor, candidates per result (x k) - None: no
    # forward index, the pruned top-k is the answer -, top_m query terms for candidates). Per-list rows suit the
    # synthetic workload, the floor rows PROSPER's bimodal weights (see retrievers/approximate_index.py).
    pruned: tuple[tuple[int | None, int, int | None, int | None], ...] = (
        (1000, 0, 5, 24), (1000, 0, 5, None), (2000, 0, 5, 24), (None, 3, None, None), (None, 5, None, None))
    seismic_heap_factors: tuple[float, ...] = (0.9, 0.7, 0.5)
    peers: tuple[str, ...] = ("lucene", "pisa", "seismic")
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
    batch_ms: float | None = None  # native batch call, 1 thread, per query
    single_p50_ms: float | None = None
    single_p95_ms: float | None = None
    wrapper_ms: float | None = None
    floor_x: float | None = None
    recall: float | None = None
    note: str = ""


@dataclass
class Report:
    config: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


class ExactScorer:
    """Exact integer scores of any (query, doc) pair on the quantized weights, for tie-aware recall."""

    def __init__(self, index: InvertedIndex, queries: sp.csr_matrix):
        indptr, terms, weights, _ = quantize_queries(queries)
        self.q = sp.csr_matrix((weights, terms, indptr), shape=(queries.shape[0], index.vocab_size))
        self.d = index.document_matrix()

    def recall(self, retrieved: list[list[int]], reference: np.ndarray, reference_scores: np.ndarray) -> float:
        values = []
        for q, docs in enumerate(retrieved):
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


@dataclass
class Timing:
    """How one engine's variant is timed: a batch call and a single-query call, both on one thread."""

    batch: Any  # () -> list of retrieved doc-index lists
    single: Any  # (q) -> None

    def measure(self, n_queries: int, floor_ms: float) -> tuple[dict[str, float], list[list[int]]]:
        self.batch()  # warm-up: the same for every engine
        start = time.perf_counter()
        retrieved = self.batch()
        batch_ms = 1000 * (time.perf_counter() - start) / n_queries
        singles = []
        for q in range(n_queries):
            start = time.perf_counter()
            self.single(q)
            singles.append(time.perf_counter() - start)
        ms = np.asarray(singles) * 1000
        return {"batch_ms": batch_ms, "single_p50_ms": float(np.percentile(ms, 50)),
                "single_p95_ms": float(np.percentile(ms, 95)), "wrapper_ms": float(ms.mean() - batch_ms),
                "floor_x": batch_ms / floor_ms if floor_ms > 0 else None}, retrieved


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


# ---------------------------------------------------------------------------------------------------------- ours
def bench_ours(cfg: IndexBenchConfig, docs: sp.csr_matrix, queries: sp.csr_matrix, work: Path, report: Report):
    t0 = time.perf_counter()
    index = InvertedIndex.build(docs, block_size=cfg.block_size)
    index.save(work / "ours")
    build_s = time.perf_counter() - t0
    size = directory_size(work / "ours") - (work / "ours" / "doc_ids.json").stat().st_size
    index = InvertedIndex.load(work / "ours")
    scorer = ExactScorer(index, queries)
    floor = streaming_floor(index, queries)
    report.config.update({"floor_" + k: v for k, v in floor.items()})
    references = {}
    n = queries.shape[0]
    for k in cfg.ks:
        references[k] = ref = index.search(queries, k=k, algorithm="exhaustive")
        variants = [(a, None, 1.0) for a in ALGORITHMS]  # the online setting: auto on the top-m query terms
        variants += [(index.auto_algorithm(queries, k, m), m, b) for m, b in cfg.approximate]
        for algorithm, top_m, boost in variants:
            name = algorithm + (f" top-{top_m} query terms" if top_m else "") + (f" boost {boost}" if boost > 1 else "")
            options = {"k": k, "algorithm": algorithm, "top_m": top_m, "boost": boost}
            timing = Timing(
                batch=lambda o=options: [list(r) for r in index.search(queries, threads=1, **o).doc_index],
                single=lambda q, o=options: index.search(queries[q], **o))
            numbers, retrieved = timing.measure(n, floor["ms_per_query"])
            exact = top_m is None and boost == 1.0
            report.rows.append(Row("prosper-bench", name, index.n_docs, k, exact=exact, index_bytes=size,
                                   build_s=build_s, recall=scorer.recall(retrieved, ref.doc_index, ref.int_scores),
                                   note="wrapper: query quantization in Python", **numbers))
    bench_pruned(cfg, docs, queries, scorer, references, work, report, floor["ms_per_query"])
    return index, scorer, references


def bench_pruned(cfg: IndexBenchConfig, docs: sp.csr_matrix, queries: sp.csr_matrix, scorer: ExactScorer,
                 references: dict, work: Path, report: Report, floor_ms: float) -> None:
    """Our approximate index (pruned lists, with or without a forward index: ``retrievers/approximate_index.py``),
    one build per pruning setting; its size is the approximate index's own (it does not need the exact one)."""
    n = queries.shape[0]
    builds: dict[tuple[int | None, int, bool], list[tuple[int | None, int | None]]] = {}
    for postings, floor, factor, top_m in cfg.pruned:  # rows that share a build, in the config's order
        builds.setdefault((postings, floor, factor is not None), []).append((factor, top_m))
    for (postings, floor, forward), searches in builds.items():
        target = work / f"approx-{postings}-{floor}-{int(forward)}"
        t0 = time.perf_counter()
        approx = ApproximateIndex.build(docs, postings_per_list=postings, impact_floor=floor, forward=forward,
                                        block_size=cfg.block_size)
        approx.save(target)
        build_s = time.perf_counter() - t0
        approx = ApproximateIndex.load(target)
        size = directory_size(target) - (target / "pruned" / "doc_ids.json").stat().st_size
        pruning = ", ".join(([f"{postings}/list"] if postings else []) + ([f"impacts >= {floor}"] if floor else []))
        for k in cfg.ks:
            ref = references[k]
            for factor, top_m in searches:
                options = {"k": k, "candidates": (factor or 1) * k, "top_m": top_m}
                name = (f"pruned {pruning}" + (f", {factor * k} candidates" if factor else ", no rescoring") +
                        (f", top-{top_m} query terms" if top_m else ""))
                timing = Timing(
                    batch=lambda o=options, a=approx: [list(r) for r in a.search(queries, threads=1, **o).doc_index],
                    single=lambda q, o=options, a=approx: a.search(queries[q], **o))
                numbers, retrieved = timing.measure(n, floor_ms)
                report.rows.append(Row("prosper-bench", name, approx.n_docs, k, exact=False, index_bytes=size,
                                       build_s=build_s, recall=scorer.recall(retrieved, ref.doc_index, ref.int_scores),
                                       note="approximate index: pruned lists" +
                                            (" + forward index" if forward else " only"), **numbers))
        del approx


# ------------------------------------------------------------------------------------------------------- peers
def _quantized_terms(index: InvertedIndex) -> sp.csr_matrix:
    return index.document_matrix(np.int32)


def _query_terms(queries: sp.csr_matrix) -> list[tuple[np.ndarray, np.ndarray]]:
    indptr, terms, weights, _ = quantize_queries(queries)
    return [(terms[indptr[q]:indptr[q + 1]], weights[indptr[q]:indptr[q + 1]]) for q in range(len(indptr) - 1)]


def bench_lucene(cfg, index, queries, scorer, refs, work: Path, report: Report):
    from retrievers.jvm import ensure_jvm

    ensure_jvm()
    from jnius import autoclass

    qd = _quantized_terms(index)
    collection = work / "lucene-collection"
    collection.mkdir()
    with open(collection / "docs.jsonl", "w") as fh:
        for i in tqdm(range(qd.shape[0]), desc="lucene: writing JsonVectorCollection", leave=False, disable=None):
            cols = qd.indices[qd.indptr[i]:qd.indptr[i + 1]]
            vals = qd.data[qd.indptr[i]:qd.indptr[i + 1]]
            vector = {f"t{c}": int(v) for c, v in zip(cols, vals, strict=True)}
            fh.write(json.dumps({"id": str(i), "contents": "", "vector": vector}) + "\n")
    target = work / "lucene"
    t0 = time.perf_counter()
    autoclass("io.anserini.index.IndexCollection").main([
        "-collection", "JsonVectorCollection", "-input", str(collection), "-index", str(target),
        "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(cfg.build_threads), "-impact",
        "-pretokenized", "-optimize", "-quiet"])
    build_s = time.perf_counter() - t0
    shutil.rmtree(collection)
    searcher = autoclass("io.anserini.search.SimpleImpactSearcher")(str(target))
    JHashMap, JInteger, JArrayList = (autoclass(c) for c in ("java.util.HashMap", "java.lang.Integer",
                                                             "java.util.ArrayList"))
    jqueries, qids = JArrayList(), JArrayList()
    single = []
    for q, (terms, weights) in enumerate(_query_terms(queries)):
        jq = JHashMap()
        for t, w in zip(terms, weights, strict=True):
            jq.put(f"t{t}", JInteger(int(w)))
        jqueries.add(jq)
        qids.add(str(q))
        single.append(jq)
    for k in cfg.ks:
        def batch(k=k):
            hits = searcher.batch_search(jqueries, qids, k, 1)  # Java-side: one thread
            return hits

        numbers, result = Timing(batch=batch, single=lambda q, k=k: searcher.search(single[q], k)).measure(
            len(single), report.config["floor_ms_per_query"])
        retrieved = [[int(h.docid) for h in result.get(str(q))] for q in range(len(single))]
        ref = refs[k]
        report.rows.append(Row("lucene (pyserini 1.6.0 impact)", "MaxScore/WAND (Lucene 10)", index.n_docs, k,
                               exact=True, index_bytes=directory_size(target), build_s=build_s,
                               recall=scorer.recall(retrieved, ref.doc_index, ref.int_scores),
                               note="wrapper: pyjnius (the batch returns a Java map)", **numbers))


def bench_pisa(cfg, index, queries, scorer, refs, work: Path, report: Report):
    import pandas as pd
    import pyterrier_pisa as pp

    qd = _quantized_terms(index)

    def corpus():
        for i in range(qd.shape[0]):
            cols = qd.indices[qd.indptr[i]:qd.indptr[i + 1]]
            vals = qd.data[qd.indptr[i]:qd.indptr[i + 1]]
            yield {"docno": str(i), "toks": {f"t{c}": int(v) for c, v in zip(cols, vals, strict=True)}}

    target = work / "pisa"
    pisa = pp.PisaIndex(str(target), stemmer="none", threads=cfg.build_threads)
    t0 = time.perf_counter()
    pisa.toks_indexer(scale=1.0).index(tqdm(corpus(), total=qd.shape[0], desc="pisa: indexing", leave=False,
                                            disable=None))
    build_s = time.perf_counter() - t0
    frame = pd.DataFrame([{"qid": str(q), "query_toks": {f"t{t}": float(w) for t, w in zip(terms, weights,
                                                                                            strict=True)}}
                          for q, (terms, weights) in enumerate(_query_terms(queries))])
    singles = [frame.iloc[q:q + 1] for q in range(len(frame))]
    for k in cfg.ks:
        for algorithm in ("maxscore", "block_max_maxscore", "block_max_wand"):
            retr = pisa.quantized(num_results=k, query_algorithm=algorithm, toks_scale=1.0, threads=1)
            numbers, result = Timing(batch=lambda r=retr: r(frame), single=lambda q, r=retr: r(singles[q])).measure(
                len(frame), report.config["floor_ms_per_query"])
            result = result.sort_values(["qid", "rank"])
            by_query = {qid: [int(d) for d in group["docno"]] for qid, group in result.groupby("qid", sort=False)}
            retrieved = [by_query.get(str(q), []) for q in range(len(frame))]
            ref = refs[k]
            report.rows.append(Row("pisa (pyterrier-pisa)", algorithm, index.n_docs, k, exact=True,
                                   index_bytes=directory_size(target), build_s=build_s,
                                   recall=scorer.recall(retrieved, ref.doc_index, ref.int_scores),
                                   note="wrapper: pandas in and out", **numbers))


def bench_seismic(cfg, index, queries, scorer, refs, work: Path, report: Report):
    import seismic

    qd = _quantized_terms(index)
    string = seismic.get_seismic_string()
    dataset = seismic.SeismicDataset()
    for i in tqdm(range(qd.shape[0]), desc="seismic: dataset", leave=False, disable=None):
        cols = qd.indices[qd.indptr[i]:qd.indptr[i + 1]]
        dataset.add_document(str(i), np.array([f"t{c}" for c in cols], dtype=string),
                             qd.data[qd.indptr[i]:qd.indptr[i + 1]].astype(np.float32))
    t0 = time.perf_counter()
    sindex = seismic.SeismicIndex.build_from_dataset(dataset, num_threads=cfg.build_threads)
    build_s = time.perf_counter() - t0
    sindex.save(str(work / "seismic"))
    size = sum(p.stat().st_size for p in work.glob("seismic*") if p.is_file()) or directory_size(work / "seismic")
    pairs = _query_terms(queries)
    qcomp = [np.array([f"t{t}" for t in terms], dtype=string) for terms, _ in pairs]
    qval = [weights.astype(np.float32) for _, weights in pairs]
    cut = max(len(terms) for terms, _ in pairs)  # every query term, as the other engines get
    for k in cfg.ks:
        for heap_factor in cfg.seismic_heap_factors:
            def batch(k=k, h=heap_factor):
                # pyseismic-lsr 0.5.4's batch_search returned recall 0.32 where the same queries one by one give
                # 0.998 (20k documents, heap_factor 0.9): the batch is timed as a loop over search() (Rust via pyo3,
                # so the loop adds microseconds) - see the wrapper column
                return [[int(r[2]) for r in sindex.search(str(q), qcomp[q], qval[q], k=k, query_cut=cut, heap_factor=h)]
                        for q in range(len(qcomp))]

            def one(q, k=k, h=heap_factor):
                sindex.search(str(q), qcomp[q], qval[q], k=k, query_cut=cut, heap_factor=h)

            numbers, retrieved = Timing(batch=batch, single=one).measure(len(qcomp),
                                                                        report.config["floor_ms_per_query"])
            ref = refs[k]
            report.rows.append(Row("seismic (pyseismic-lsr)", f"approximate, default build, heap_factor {heap_factor}",
                                   index.n_docs, k, exact=False, index_bytes=size, build_s=build_s,
                                   recall=scorer.recall(retrieved, ref.doc_index, ref.int_scores),
                                   note="batch = a loop over search(): its batch_search lost recall", **numbers))


PEERS = {"lucene": bench_lucene, "pisa": bench_pisa, "seismic": bench_seismic}


def workload_vectors(cfg: IndexBenchConfig) -> tuple[sp.csr_matrix, sp.csr_matrix, dict[str, Any]]:
    if cfg.workload == "synthetic":
        docs = synthetic_sparse(cfg.n_docs, cfg.vocab, cfg.doc_terms, cfg.seed, cfg.zipf_exponent, cfg.zipf_offset,
                                cfg.rarity_power)
        queries = synthetic_sparse(cfg.n_queries, cfg.vocab, cfg.query_terms, cfg.seed + 1, cfg.zipf_exponent,
                                   cfg.zipf_offset, cfg.rarity_power)
        return docs, queries, {"name": "synthetic"}
    kind, _, where = cfg.workload.partition(":")
    if kind != "fitted" or not where:
        raise ValueError(f"workload must be 'synthetic' or 'fitted:PROFILE', not {cfg.workload!r}")
    profile = load_profile(Path(where))
    docs, queries = generate(profile, cfg.n_docs, cfg.n_queries, cfg.seed)
    return docs, queries, {"name": profile["name"], "profile": where, "fitted_on": profile["fitted_on"],
                           "source": profile["source"]}


def run_index_bench(cfg: IndexBenchConfig) -> Report:
    report = Report(config=asdict(cfg))
    docs, queries, workload = workload_vectors(cfg)
    report.config["workload_info"] = workload
    report.config["postings"] = int(docs.nnz)
    report.config["mean_doc_terms"] = float(docs.nnz / docs.shape[0])
    report.config["mean_query_terms"] = float(queries.nnz / queries.shape[0])
    parent = Path(cfg.work_dir) if cfg.work_dir else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)  # --work-dir names a folder to use, not one that must exist
    work = Path(tempfile.mkdtemp(prefix="index-bench-", dir=parent))
    try:
        index, scorer, refs = bench_ours(cfg, docs, queries, work, report)
        report.config["flops"] = index.overlap_flops(queries)
        del docs
        for name in cfg.peers:
            try:
                PEERS[name](cfg, index, queries, scorer, refs, work, report)
            except Exception as err:  # a peer that will not install or run is reported, never fatal
                report.skipped[name] = f"{type(err).__name__}: {err}"
                traceback.print_exc()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.config["ratios"] = ratios(report)
    return report


def ratios(report: Report) -> dict[str, Any]:
    """The issue's goals, as ratios of batch ms/query measured in this run (None where a row is missing).

    The approximate goal compares our fastest row at recall >= 0.99 with Seismic's fastest at recall >= 0.99; where
    no Seismic setting reaches it (PROSPER-shaped vectors), with Seismic's most accurate setting, and says so in
    ``reference`` - a bar Seismic itself does not clear, so never a softer one."""
    def best(system: str, k: int, exact: bool = True, min_recall: float = 0.0, variant: str | None = None):
        rows = [r for r in report.rows if r.system.startswith(system) and r.k == k and r.exact == exact
                and (r.recall or 0) >= min_recall and (variant is None or r.variant == variant)]
        return min(rows, key=lambda r: r.batch_ms) if rows else None

    def ratio(slow, fast):
        return None if slow is None or fast is None else round(slow.batch_ms / fast.batch_ms, 2)

    out: dict[str, Any] = {}
    for k in sorted({r.k for r in report.rows}):
        ours = best("prosper-bench", k)
        out[f"k={k}"] = {
            "ours_best_exact": ours and ours.variant,
            "vs_our_exhaustive": ratio(best("prosper-bench", k, variant="exhaustive"), ours),
            "vs_pisa_best_exact": ratio(best("pisa", k), ours),
            "vs_lucene": ratio(best("lucene", k), ours),
        }
        approx = best("prosper-bench", k, exact=False, min_recall=0.99)
        seismic, reference = best("seismic", k, exact=False, min_recall=0.99), "fastest at recall >= 0.99"
        if seismic is None:  # Seismic never reaches 0.99 here: its most accurate setting is the bar
            rows = [r for r in report.rows if r.system.startswith("seismic") and r.k == k and r.recall is not None]
            seismic = max(rows, key=lambda r: (r.recall, -r.batch_ms)) if rows else None
            reference = "highest recall (below 0.99)"
        out[f"k={k}"]["approximate_recall>=0.99"] = {
            "ours": approx and {"variant": approx.variant, "batch_ms": approx.batch_ms, "recall": approx.recall},
            "seismic": seismic and {"variant": seismic.variant, "batch_ms": seismic.batch_ms,
                                    "recall": seismic.recall, "reference": reference},
            "time_vs_seismic": ratio(approx, seismic),
            "index_size_vs_seismic": (round(approx.index_bytes / seismic.index_bytes, 3)
                                      if approx and seismic and seismic.index_bytes else None)}
    return out


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(reports: list[Report]) -> str:
    lines = []
    for report in reports:
        c = report.config
        lines.append(f"### {c['n_docs']:,} documents, workload `{c['workload']}` ({c['mean_doc_terms']:.0f} terms/doc, "
                     f"{c['mean_query_terms']:.0f} terms/query, {c['n_queries']} queries, FLOPS {c['flops']:.1f})\n")
        lines.append(f"Physical floor: {c['floor_ns_per_posting']:.2f} ns per posting of a plain streaming pass, "
                     f"{c['floor_postings_per_query']:,.0f} postings per query -> {c['floor_ms_per_query']:.2f} ms. "
                     "All timings: 1 thread; ms/query = native batch call after one warm-up batch.\n")
        lines.append("| system | algorithm | k | exact | index MB | build s | ms/query | x floor | single-call p50 ms "
                     "| wrapper ms | recall |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in report.rows:
            lines.append(f"| {r.system} | {r.variant} | {r.k} | {'yes' if r.exact else 'no'} | "
                         f"{(r.index_bytes or 0) / 2**20:.1f} | {_fmt(r.build_s, '.1f')} | {_fmt(r.batch_ms, '.2f')} | "
                         f"{_fmt(r.floor_x, '.1f')} | {_fmt(r.single_p50_ms, '.2f')} | {_fmt(r.wrapper_ms, '.2f')} | "
                         f"{_fmt(r.recall, '.4f')} |")
        for name, why in report.skipped.items():
            lines.append(f"\n{name} not measured: {why}")
        lines.append("\nRatios (batch ms/query, this run): `" + json.dumps(c.get("ratios", {})) + "`\n")
    return "\n".join(lines)


def write_reports(reports: list[Report], output: Path) -> tuple[Path, Path]:
    from benchmark.results import environment

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(output) / "index-bench"
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{stamp}.json", folder / f"{stamp}.md"
    payload = {"schema_version": 2, "created": stamp, "environment": environment(),
               "reports": [{"config": r.config, "rows": [asdict(x) for x in r.rows], "skipped": r.skipped}
                           for r in reports]}
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md_path.write_text("# Inverted index benchmark\n\n" + markdown(reports))
    return json_path, md_path
