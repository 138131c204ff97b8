"""``python -m benchmark index-bench``: the project's inverted index against Lucene, PISA and Seismic, same vectors.

Why synthetic vectors: the speed of an index depends on the term distribution, not on what the terms mean. SPLADE-like
vectors (vocabulary 30,522; ~120 terms a document, ~30 a query; term frequencies Zipfian; gamma-distributed weights that grow
with term rarity)
are generated at any size, seeded, so the comparison can be rerun anywhere. Every engine gets the *same* quantized
integer weights (documents 8-bit impacts, queries 8-bit), so every exact engine must return the same scores and the
recall column checks it. Recall of the exact top-k is tie-aware: a returned document counts when its exact score is at
least the exact k-th score.

Timing: latency is single-threaded, one query at a time, through each engine's Python API; for Lucene that API is
pyjnius, whose cost of handing back hits is included (it is what a Python user pays). Throughput (QPS) is the batch
call with ``threads`` threads where the engine has one.
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

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from retrievers.base import directory_size
from retrievers.inverted_index import InvertedIndex, quantize_queries


@dataclass
class IndexBenchConfig:
    n_docs: int = 100_000
    n_queries: int = 500
    vocab: int = 30522
    doc_terms: int = 120
    query_terms: int = 30
    zipf_exponent: float = 1.0
    zipf_offset: float = 20.0  # flattens the head so the top terms are in most, not all, documents
    rarity_power: float = 2.0  # how strongly weights grow with term rarity (see synthetic_sparse)
    seed: int = 0
    ks: tuple[int, ...] = (10, 1000)
    threads: int = 2
    block_size: int = 64
    top_m: int = 16  # the paper's online query pruning, benchmarked as an extra row
    peers: tuple[str, ...] = ("lucene", "pisa", "seismic")
    work_dir: str | None = None


def synthetic_sparse(n: int, vocab: int, terms: int, seed: int, exponent: float = 1.0, offset: float = 20.0,
                     rarity_power: float = 2.0, chunk: int = 100_000) -> sp.csr_matrix:
    """``n`` SPLADE-like rows: about ``terms`` distinct Zipfian term ids each; weights gamma(1.5) scaled by term rarity
    ``0.05 + (log(1+rank)/log(1+vocab)) ** rarity_power``, as learned weights correlate with idf."""
    rng = np.random.default_rng(seed)
    p = (np.arange(vocab) + offset) ** -exponent
    cdf = np.cumsum(p / p.sum())
    parts = []
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        draws = int(terms * 1.15)  # duplicates are removed below
        cols = np.searchsorted(cdf, rng.random((rows, draws)), side="right").clip(0, vocab - 1)
        cols.sort(axis=1)  # per-row sort + neighbour test: much faster than np.unique on ~10^8 keys
        first = np.ones(cols.shape, bool)
        first[:, 1:] = cols[:, 1:] != cols[:, :-1]
        row = np.broadcast_to(np.arange(rows)[:, None], cols.shape)[first]
        col = cols[first]
        # learned sparse weights correlate with idf: FLOPS regularisation penalises a term's squared mean weight, so
        # frequent terms end up with small weights (rarity_power sets how strongly; 0 = no correlation)
        rarity = 0.05 + (np.log1p(col) / np.log1p(vocab)) ** rarity_power
        data = (rng.gamma(1.5, 1.0, size=col.size) * rarity).astype(np.float32)
        parts.append(sp.csr_matrix((data, (row, col)), shape=(rows, vocab)))
    return sp.vstack(parts, format="csr")


@dataclass
class Row:
    system: str
    variant: str
    n_docs: int
    k: int
    exact: bool
    index_bytes: int | None = None
    build_s: float | None = None
    qps: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    recall: float | None = None
    note: str = ""


@dataclass
class Report:
    config: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ms = np.asarray(latencies) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99))}


class ExactScorer:
    """Exact integer scores of any (query, doc) pair on the quantized weights, for tie-aware recall."""

    def __init__(self, index: InvertedIndex, queries: sp.csr_matrix):
        indptr, terms, weights, _ = quantize_queries(queries)
        self.q = sp.csr_matrix((weights, terms, indptr), shape=(queries.shape[0], index.vocab_size))
        self.d = sp.csc_matrix((np.asarray(index.impacts).astype(np.int64), np.asarray(index.docs),
                                np.asarray(index.offsets)), shape=(index.n_docs, index.vocab_size)).tocsr()

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


# ---------------------------------------------------------------------------------------------------------- ours
def bench_ours(cfg: IndexBenchConfig, docs: sp.csr_matrix, queries: sp.csr_matrix, work: Path, report: Report):
    t0 = time.perf_counter()
    index = InvertedIndex.build(docs, block_size=cfg.block_size)
    index.save(work / "ours")
    build_s = time.perf_counter() - t0
    size = directory_size(work / "ours") - (work / "ours" / "doc_ids.json").stat().st_size
    index = InvertedIndex.load(work / "ours")
    scorer = ExactScorer(index, queries)
    references = {}
    for k in cfg.ks:
        ref = index.search(queries, k=k, algorithm="exhaustive", threads=cfg.threads)
        references[k] = ref
        variants = [("exhaustive", None), ("maxscore", None), ("bmm", None), ("bmm", cfg.top_m)]
        for algorithm, top_m in variants:
            name = algorithm + (f" top-{top_m} query terms" if top_m else "")
            index.search(queries[:5], k=k, algorithm=algorithm, top_m=top_m)  # compile / warm up
            latencies = []
            for q in tqdm(range(queries.shape[0]), desc=f"ours {name} k={k}", leave=False, disable=None):
                start = time.perf_counter()
                index.search(queries[q], k=k, algorithm=algorithm, top_m=top_m)
                latencies.append(time.perf_counter() - start)
            start = time.perf_counter()
            batch = index.search(queries, k=k, algorithm=algorithm, top_m=top_m, threads=cfg.threads)
            qps = queries.shape[0] / (time.perf_counter() - start)
            recall = scorer.recall([list(r) for r in batch.doc_index], ref.doc_index, ref.int_scores)
            report.rows.append(Row("prosper-bench", name, index.n_docs, k, exact=top_m is None, index_bytes=size,
                                   build_s=build_s, qps=qps, recall=recall, **_percentiles(latencies)))
    return index, scorer, references


# ------------------------------------------------------------------------------------------------------- peers
def _quantized_terms(index: InvertedIndex, docs: sp.csr_matrix) -> sp.csr_matrix:
    d = sp.csc_matrix((np.asarray(index.impacts).astype(np.int32), np.asarray(index.docs),
                       np.asarray(index.offsets)), shape=(index.n_docs, index.vocab_size)).tocsr()
    d.sort_indices()
    return d


def bench_lucene(cfg, index, docs, queries, scorer, refs, work: Path, report: Report):
    from retrievers.jvm import ensure_jvm

    ensure_jvm()
    from jnius import autoclass

    qd = _quantized_terms(index, docs)
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
        "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(cfg.threads), "-impact", "-pretokenized",
        "-optimize", "-quiet"])
    build_s = time.perf_counter() - t0
    shutil.rmtree(collection)
    searcher = autoclass("io.anserini.search.SimpleImpactSearcher")(str(target))
    JHashMap, JInteger = autoclass("java.util.HashMap"), autoclass("java.lang.Integer")
    indptr, terms, weights, _ = quantize_queries(queries)
    jqueries = []
    for q in range(queries.shape[0]):
        jq = JHashMap()
        for t, w in zip(terms[indptr[q]:indptr[q + 1]], weights[indptr[q]:indptr[q + 1]], strict=True):
            jq.put(f"t{t}", JInteger(int(w)))
        jqueries.append(jq)
    for k in cfg.ks:
        for jq in jqueries[:5]:
            searcher.search(jq, k)
        latencies, retrieved = [], []
        for jq in tqdm(jqueries, desc=f"lucene k={k}", leave=False, disable=None):
            start = time.perf_counter()
            hits = searcher.search(jq, k)
            latencies.append(time.perf_counter() - start)
            retrieved.append([int(h.docid) for h in hits])
        ref = refs[k]
        recall = scorer.recall(retrieved, ref.doc_index, ref.int_scores)
        report.rows.append(Row("lucene (pyserini 1.6.0 impact)", "MaxScore/WAND (Lucene 10)", index.n_docs, k,
                               exact=True, index_bytes=directory_size(target), build_s=build_s,
                               qps=len(latencies) / sum(latencies), recall=recall, **_percentiles(latencies),
                               note="latency includes pyjnius returning the hits"))


def bench_pisa(cfg, index, docs, queries, scorer, refs, work: Path, report: Report):
    import pandas as pd
    import pyterrier_pisa as pp

    qd = _quantized_terms(index, docs)

    def corpus():
        for i in range(qd.shape[0]):
            cols = qd.indices[qd.indptr[i]:qd.indptr[i + 1]]
            vals = qd.data[qd.indptr[i]:qd.indptr[i + 1]]
            yield {"docno": str(i), "toks": {f"t{c}": int(v) for c, v in zip(cols, vals, strict=True)}}

    target = work / "pisa"
    pisa = pp.PisaIndex(str(target), stemmer="none", threads=cfg.threads)
    t0 = time.perf_counter()
    pisa.toks_indexer(scale=1.0).index(tqdm(corpus(), total=qd.shape[0], desc="pisa: indexing", leave=False, disable=None))
    build_s = time.perf_counter() - t0
    indptr, terms, weights, _ = quantize_queries(queries)
    frame = pd.DataFrame([{"qid": str(q), "query_toks": {f"t{t}": float(w) for t, w in zip(
        terms[indptr[q]:indptr[q + 1]], weights[indptr[q]:indptr[q + 1]], strict=True)}}
        for q in range(queries.shape[0])])
    for k in cfg.ks:
        for algorithm in ("maxscore", "block_max_maxscore", "block_max_wand"):
            retr = pisa.quantized(num_results=k, query_algorithm=algorithm, toks_scale=1.0, threads=1)
            retr(frame.iloc[:5])
            latencies, retrieved = [], []
            for q in tqdm(range(len(frame)), desc=f"pisa {algorithm} k={k}", leave=False, disable=None):
                start = time.perf_counter()
                res = retr(frame.iloc[q:q + 1])
                latencies.append(time.perf_counter() - start)
                retrieved.append([int(d) for d in res.sort_values("rank")["docno"]])
            batch = pisa.quantized(num_results=k, query_algorithm=algorithm, toks_scale=1.0, threads=cfg.threads)
            start = time.perf_counter()
            batch(frame)
            qps = len(frame) / (time.perf_counter() - start)
            ref = refs[k]
            report.rows.append(Row("pisa (pyterrier-pisa)", algorithm, index.n_docs, k, exact=True,
                                   index_bytes=directory_size(target), build_s=build_s, qps=qps,
                                   recall=scorer.recall(retrieved, ref.doc_index, ref.int_scores),
                                   **_percentiles(latencies), note="latency includes a pandas round trip"))


def bench_seismic(cfg, index, docs, queries, scorer, refs, work: Path, report: Report):
    import seismic

    qd = _quantized_terms(index, docs)
    string = seismic.get_seismic_string()
    dataset = seismic.SeismicDataset()
    for i in tqdm(range(qd.shape[0]), desc="seismic: dataset", leave=False, disable=None):
        cols = qd.indices[qd.indptr[i]:qd.indptr[i + 1]]
        dataset.add_document(str(i), np.array([f"t{c}" for c in cols], dtype=string),
                             qd.data[qd.indptr[i]:qd.indptr[i + 1]].astype(np.float32))
    t0 = time.perf_counter()
    sindex = seismic.SeismicIndex.build_from_dataset(dataset, num_threads=cfg.threads)
    build_s = time.perf_counter() - t0
    sindex.save(str(work / "seismic"))
    size = directory_size(work) - sum(directory_size(work / n) for n in ("ours", "lucene", "pisa")
                                      if (work / n).exists())
    indptr, terms, weights, _ = quantize_queries(queries)
    qcomp = [np.array([f"t{t}" for t in terms[indptr[q]:indptr[q + 1]]], dtype=string)
             for q in range(queries.shape[0])]
    qval = [weights[indptr[q]:indptr[q + 1]].astype(np.float32) for q in range(queries.shape[0])]
    for k in cfg.ks:
        latencies, retrieved = [], []
        for q in tqdm(range(len(qcomp)), desc=f"seismic k={k}", leave=False, disable=None):
            start = time.perf_counter()
            res = sindex.search(str(q), qcomp[q], qval[q], k=k, query_cut=cfg.query_terms, heap_factor=0.9)
            latencies.append(time.perf_counter() - start)
            retrieved.append([int(r[2]) for r in res])
        start = time.perf_counter()
        qids = np.array([str(q) for q in range(len(qcomp))], dtype=string)
        sindex.batch_search(qids, qcomp, qval, k=k, query_cut=cfg.query_terms, heap_factor=0.9,
                            num_threads=cfg.threads)
        qps = len(qcomp) / (time.perf_counter() - start)
        ref = refs[k]
        report.rows.append(Row("seismic (pyseismic-lsr)", "approximate, default build, heap_factor 0.9",
                               index.n_docs, k, exact=False, index_bytes=size, build_s=build_s, qps=qps,
                               recall=scorer.recall(retrieved, ref.doc_index, ref.int_scores),
                               **_percentiles(latencies)))


PEERS = {"lucene": bench_lucene, "pisa": bench_pisa, "seismic": bench_seismic}


def run_index_bench(cfg: IndexBenchConfig) -> Report:
    report = Report(config=asdict(cfg))
    docs = synthetic_sparse(cfg.n_docs, cfg.vocab, cfg.doc_terms, cfg.seed, cfg.zipf_exponent, cfg.zipf_offset,
                            cfg.rarity_power)
    queries = synthetic_sparse(cfg.n_queries, cfg.vocab, cfg.query_terms, cfg.seed + 1, cfg.zipf_exponent,
                               cfg.zipf_offset, cfg.rarity_power)
    report.config["postings"] = int(docs.nnz)
    report.config["mean_doc_terms"] = float(docs.nnz / docs.shape[0])
    report.config["mean_query_terms"] = float(queries.nnz / queries.shape[0])
    parent = Path(cfg.work_dir) if cfg.work_dir else None
    work = Path(tempfile.mkdtemp(prefix="index-bench-", dir=parent))
    try:
        index, scorer, refs = bench_ours(cfg, docs, queries, work, report)
        report.config["flops"] = index.overlap_flops(queries)
        for name in cfg.peers:
            try:
                PEERS[name](cfg, index, docs, queries, scorer, refs, work, report)
            except Exception as err:  # a peer that will not install or run is reported, never fatal
                report.skipped[name] = f"{type(err).__name__}: {err}"
                traceback.print_exc()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def markdown(reports: list[Report]) -> str:
    lines = []
    for report in reports:
        c = report.config
        lines.append(f"### {c['n_docs']:,} synthetic documents ({c['mean_doc_terms']:.0f} terms/doc, "
                     f"{c['mean_query_terms']:.0f} terms/query, {c['n_queries']} queries, FLOPS {c['flops']:.1f})\n")
        lines.append("| system | algorithm | k | exact | index MB | build s | QPS | p50 ms | p95 ms | p99 ms | recall |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in report.rows:
            lines.append(
                f"| {r.system} | {r.variant} | {r.k} | {'yes' if r.exact else 'no'} | "
                f"{(r.index_bytes or 0) / 2**20:.1f} | {r.build_s:.1f} | {r.qps:.0f} | {r.p50_ms:.2f} | "
                f"{r.p95_ms:.2f} | {r.p99_ms:.2f} | {r.recall:.4f} |")
        for name, why in report.skipped.items():
            lines.append(f"\n{name} not measured: {why}")
        lines.append("")
    return "\n".join(lines)


def write_reports(reports: list[Report], output: Path) -> tuple[Path, Path]:
    from benchmark.results import environment

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(output) / "index-bench"
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{stamp}.json", folder / f"{stamp}.md"
    payload = {"schema_version": 1, "created": stamp, "environment": environment(),
               "reports": [{"config": r.config, "rows": [asdict(x) for x in r.rows], "skipped": r.skipped}
                           for r in reports]}
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    md_path.write_text("# Inverted index benchmark\n\n" + markdown(reports))
    return json_path, md_path
