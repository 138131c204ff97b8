"""The engines ``index-bench`` times: ours (exact and approximate) and the peers - Lucene, PISA, Seismic and BMP.

Every engine gets the *same* quantized integer weights (documents: 8-bit impacts, queries: 8-bit) and the *same* query
terms, through its own native API. An engine is built (possibly several ways: a build grid), then searched with each
of its settings; ``index-bench`` times every setting on tuning queries and on disjoint evaluation queries, and chooses
what it compares on the tuning ones only.

Build accounting, the same for every engine: ``convert_s`` turns our CSR matrix into the engine's input (a JSON
collection for Lucene, dicts for PISA and BMP, a SeismicDataset) and is reported apart; ``build_s`` is the engine's
own indexing from that input; the size counts every file the engine needs to answer queries. PISA's and BMP's dicts
are never all held at once: a real-weight PROSPER workload at 1M documents is 510M postings, about 50 GB as Python
dicts. They are made lazily while the engine indexes, so their cost is timed in a pass of its own that makes and drops
them (``convert_s``, once per collection) and subtracted from the build's wall time (:func:`_streamed_build`).

What each peer is, and what it cannot do the way we do:

- **Lucene** (pyserini 1.6.0 / Anserini, impact index, ``-optimize`` to one segment as Anserini's regressions build):
  exact MaxScore/WAND; its batch call runs Java-side on one thread;
- **PISA** (pyterrier-pisa): exact ``maxscore``, ``block_max_maxscore``, ``block_max_wand`` on the quantized index;
- **Seismic** (pyseismic-lsr): approximate; build grid (postings per list, centroid fraction, summary energy) and
  ``heap_factor`` at search; its ``batch_search`` once lost recall, so its batch is a loop over ``search()``;
- **BMP** (Block-Max Pruning, Mallia, Suel and Tonellotto, SIGIR 2024; ``bmp``): block size at build, ``alpha`` at
  search (1.0 = its safe mode). BMP re-quantizes query weights to 32 levels and sums scores in 16 bits, so even its
  safe mode is exact on its own quantization, not on our 8-bit one: the recall column says what that costs; term ids
  must fit 16 bits (a vocabulary above 65,536 terms is not measured). Its batch is a loop over ``Searcher.search``
  (its file-based batch call reloads the index on every call).
"""

from __future__ import annotations

import collections
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from retrievers.base import directory_size
from retrievers.index.approximate import ApproximateIndex
from retrievers.index.inverted_index import ALGORITHMS, InvertedIndex, quantize_queries


@dataclass
class Built:
    """One build of an engine: what converting the input and building cost, and how big the result is."""

    name: str
    convert_s: float
    build_s: float
    size_bytes: int
    note: str = ""


@dataclass
class Setting:
    """One way to search a build: ``batch(queries, k)`` returns the retrieved doc indices of each query (the native
    batch call, one thread), ``single(q, k)`` searches one query through the Python API."""

    variant: str
    exact: bool
    batch: Callable[[list[int], int], list[list[int]]]
    single: Callable[[int, int], Any]
    note: str = ""
    params: dict[str, Any] = field(default_factory=dict)


def query_terms(queries: sp.csr_matrix) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each query's (term ids, 8-bit integer weights), as every engine receives them."""
    indptr, terms, weights, _ = quantize_queries(queries)
    return [(terms[indptr[q]:indptr[q + 1]], weights[indptr[q]:indptr[q + 1]]) for q in range(len(indptr) - 1)]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def doc_dict(qd: sp.csr_matrix, i: int) -> dict[str, int]:
    """Document ``i`` as the ``{term: impact}`` dict PISA and BMP take."""
    cols, vals = qd.indices[qd.indptr[i]:qd.indptr[i + 1]], qd.data[qd.indptr[i]:qd.indptr[i + 1]]
    return {f"t{c}": int(v) for c, v in zip(cols, vals, strict=True)}


def _conversion_s(make: Callable[[], Iterator[Any]]) -> float:
    """Seconds to make (and drop) every converted document of a lazy stream: the conversion part of a streamed build."""
    return _timed(lambda: collections.deque(make(), maxlen=0))[1]


def _streamed_build(make: Callable[[], Iterator[Any]], build: Callable[[Iterator[Any]], Any],
                    convert_s: float) -> float:
    """build_s for an engine fed a lazy stream of converted documents: the wall time of the build that consumes the
    stream, less the conversion (``_conversion_s``, timed once per collection)."""
    _, total_s = _timed(lambda: build(make()))
    return max(0.0, total_s - convert_s)


# ------------------------------------------------------------------------------------------------------------ ours
class Ours:
    """The exact inverted index: every algorithm (exact), and auto on the top-m query terms (approximate)."""

    system = "prosper-bench"

    def __init__(self, index: InvertedIndex, queries: sp.csr_matrix, work: Path, built: Built,
                 top_m: tuple[tuple[int, float], ...]):
        self.index, self.queries, self.work, self.built, self.top_m = index, queries, work, built, top_m

    @classmethod
    def build(cls, docs: sp.csr_matrix, queries: sp.csr_matrix, work: Path, block_size: int,
              top_m: tuple[tuple[int, float], ...]) -> Ours:
        index, seconds = _timed(lambda: InvertedIndex.build(docs, block_size=block_size))
        index.save(work / "ours")
        built = Built("exact index", 0.0, seconds, directory_size(work / "ours"))  # doc_ids.json included
        return cls(InvertedIndex.load(work / "ours"), queries, work, built, top_m)

    def builds(self):
        yield self.built

    def settings(self, build: Built, k: int) -> list[Setting]:
        out = []
        for algorithm in ALGORITHMS:
            out.append(self._setting(algorithm, {"k": k, "algorithm": algorithm}, exact=True))
        for m, boost in self.top_m:
            algorithm = self.index.auto_algorithm(self.queries, k, m)
            name = f"{algorithm} top-{m} query terms" + (f" boost {boost}" if boost > 1 else "")
            out.append(self._setting(name, {"k": k, "algorithm": algorithm, "top_m": m, "boost": boost}, exact=False))
        return out

    def _setting(self, name: str, options: dict, exact: bool) -> Setting:
        q = self.queries
        return Setting(name, exact,
                       batch=lambda rows, k, o=options: [list(r) for r in self.index.search(
                           q[rows], threads=1, **{**o, "k": k}).doc_index],
                       single=lambda i, k, o=options: self.index.search(q[i], **{**o, "k": k}),
                       note="wrapper: query quantization in Python", params=dict(options))


class OursPruned:
    """The approximate index (``retrievers/index/approximate.py``): one build per pruning rule and setting."""

    system = "prosper-bench"

    def __init__(self, queries: sp.csr_matrix, work: Path, grid: tuple[tuple[int | None, int, int | None, int | None], ...],
                 index: InvertedIndex):
        self.queries, self.work, self.exact_index = queries, work, index
        self.grid = grid
        self._built: dict[str, tuple[Built, ApproximateIndex, list]] = {}
        plans: dict[tuple[int | None, int, bool], list[tuple[int | None, int | None]]] = {}
        for postings, floor, factor, top_m in grid:
            plans.setdefault((postings, floor, factor is not None), []).append((factor, top_m))
        self.plans = plans

    def builds(self):
        """One pruned index at a time: built, searched by the caller, then dropped."""
        for (postings, floor, forward), searches in self.plans.items():
            target = self.work / f"approx-{postings}-{floor}-{int(forward)}"
            approx, seconds = _timed(lambda p=postings, f=floor, fw=forward: ApproximateIndex.from_index(
                self.exact_index, p, f, fw))
            approx.save(target)
            pruning = ", ".join(([f"{postings}/list"] if postings else []) + ([f"impacts >= {floor}"] if floor else []))
            built = Built(f"pruned {pruning}" + (" + forward index" if forward else ""), 0.0, seconds,
                          directory_size(target), "from the exact index's postings (no second quantization)")
            self._built = {built.name: (built, ApproximateIndex.load(target), searches)}
            yield built
            self._built = {}
            shutil.rmtree(target, ignore_errors=True)

    def settings(self, build: Built, k: int) -> list[Setting]:
        _, approx, searches = self._built[build.name]
        q = self.queries
        out = []
        for factor, top_m in searches:
            options = {"candidates": (factor or 1) * k, "top_m": top_m}
            name = (f"{build.name}, " + (f"{factor}k candidates" if factor else "no rescoring") +
                    (f", top-{top_m} query terms" if top_m else ""))
            out.append(Setting(name, False,
                               batch=lambda rows, k, o=options, a=approx: [list(r) for r in a.search(
                                   q[rows], threads=1, k=k, **o).doc_index],
                               single=lambda i, k, o=options, a=approx: a.search(q[i], k=k, **o),
                               params={"factor": factor, "top_m": top_m}))
        return out


# ----------------------------------------------------------------------------------------------------------- peers
class Lucene:
    system = "lucene (pyserini 1.6.0 impact)"

    def __init__(self, docs_q: sp.csr_matrix, pairs: list[tuple[np.ndarray, np.ndarray]], work: Path, threads: int):
        self.docs_q, self.pairs, self.work, self.threads = docs_q, pairs, work, threads

    def builds(self):
        from retrievers.resources.jvm import ensure_jvm

        ensure_jvm()
        from jnius import autoclass

        collection = self.work / "lucene-collection"
        collection.mkdir()
        qd = self.docs_q

        def convert() -> None:
            with open(collection / "docs.jsonl", "w") as fh:
                for i in tqdm(range(qd.shape[0]), desc="lucene: JsonVectorCollection", leave=False, disable=None):
                    fh.write(json.dumps({"id": str(i), "contents": "", "vector": doc_dict(qd, i)}) + "\n")

        _, convert_s = _timed(convert)
        target = self.work / "lucene"
        _, build_s = _timed(lambda: autoclass("io.anserini.index.IndexCollection").main([
            "-collection", "JsonVectorCollection", "-input", str(collection), "-index", str(target),
            "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(self.threads), "-impact",
            "-pretokenized", "-optimize", "-quiet"]))
        shutil.rmtree(collection)
        self.searcher = autoclass("io.anserini.search.SimpleImpactSearcher")(str(target))
        JHashMap, JInteger, JArrayList = (autoclass(c) for c in ("java.util.HashMap", "java.lang.Integer",
                                                                 "java.util.ArrayList"))
        self.java_queries = []
        for terms, weights in self.pairs:
            jq = JHashMap()
            for t, w in zip(terms, weights, strict=True):
                jq.put(f"t{t}", JInteger(int(w)))
            self.java_queries.append(jq)
        self.JArrayList = JArrayList
        yield Built("impact index, -optimize (one segment)", convert_s, build_s, directory_size(target))

    def settings(self, build: Built, k: int) -> list[Setting]:
        def batch(rows: list[int], k: int) -> list[list[int]]:
            queries, qids = self.JArrayList(), self.JArrayList()
            for q in rows:
                queries.add(self.java_queries[q])
                qids.add(str(q))
            hits = self.searcher.batch_search(queries, qids, k, 1)  # Java-side, one thread
            return [[int(h.docid) for h in hits.get(str(q))] for q in rows]

        return [Setting("MaxScore/WAND (Lucene 10)", True, batch=batch,
                        single=lambda q, k: self.searcher.search(self.java_queries[q], k),
                        note="wrapper: pyjnius (the batch returns a Java map)")]


class Pisa:
    system = "pisa (pyterrier-pisa)"

    def __init__(self, docs_q: sp.csr_matrix, pairs: list[tuple[np.ndarray, np.ndarray]], work: Path, threads: int):
        self.docs_q, self.pairs, self.work, self.threads = docs_q, pairs, work, threads

    def builds(self):
        import pandas as pd
        import pyterrier_pisa as pp

        qd = self.docs_q

        def documents() -> Iterator[dict]:
            for i in tqdm(range(qd.shape[0]), desc="pisa: dicts", leave=False, disable=None):
                yield {"docno": str(i), "toks": doc_dict(qd, i)}

        target = self.work / "pisa"
        self.index = pp.PisaIndex(str(target), stemmer="none", threads=self.threads)
        convert_s = _conversion_s(documents)
        build_s = _streamed_build(documents, lambda docs: self.index.toks_indexer(scale=1.0).index(docs), convert_s)
        self.frame = pd.DataFrame([{"qid": str(q), "query_toks": {f"t{t}": float(w) for t, w in zip(
            terms, weights, strict=True)}} for q, (terms, weights) in enumerate(self.pairs)])
        yield Built("quantized index", convert_s, build_s, directory_size(target))

    def settings(self, build: Built, k: int) -> list[Setting]:
        out = []
        for algorithm in ("maxscore", "block_max_maxscore", "block_max_wand"):
            retriever = self.index.quantized(num_results=k, query_algorithm=algorithm, toks_scale=1.0, threads=1)

            def batch(rows: list[int], k: int, r=retriever) -> list[list[int]]:
                result = r(self.frame.iloc[rows]).sort_values(["qid", "rank"])
                found = {qid: [int(d) for d in group["docno"]] for qid, group in result.groupby("qid", sort=False)}
                return [found.get(str(q), []) for q in rows]

            out.append(Setting(algorithm, True, batch=batch,
                               single=lambda q, k, r=retriever: r(self.frame.iloc[q:q + 1]),
                               note="wrapper: pandas in and out"))
        return out


class Seismic:
    system = "seismic (pyseismic-lsr)"

    def __init__(self, docs_q: sp.csr_matrix, pairs: list[tuple[np.ndarray, np.ndarray]], work: Path, threads: int,
                 grid: tuple[tuple[int, float, float], ...], heap_factors: tuple[float, ...]):
        self.docs_q, self.pairs, self.work, self.threads = docs_q, pairs, work, threads
        self.grid, self.heap_factors = grid, heap_factors
        self._indexes: dict[str, Any] = {}

    def builds(self):
        import seismic

        qd = self.docs_q
        string = seismic.get_seismic_string()

        def convert():
            dataset = seismic.SeismicDataset()
            for i in tqdm(range(qd.shape[0]), desc="seismic: dataset", leave=False, disable=None):
                cols = qd.indices[qd.indptr[i]:qd.indptr[i + 1]]
                dataset.add_document(str(i), np.array([f"t{c}" for c in cols], dtype=string),
                                     qd.data[qd.indptr[i]:qd.indptr[i + 1]].astype(np.float32))
            return dataset

        dataset, convert_s = _timed(convert)
        self.qcomp = [np.array([f"t{t}" for t in terms], dtype=string) for terms, _ in self.pairs]
        self.qval = [weights.astype(np.float32) for _, weights in self.pairs]
        self.cut = max(len(terms) for terms, _ in self.pairs)  # every query term, as the other engines get
        for n_postings, centroid_fraction, summary_energy in self.grid:
            name = f"{n_postings} postings/list, centroids {centroid_fraction}, summary energy {summary_energy}"
            index, build_s = _timed(lambda n=n_postings, c=centroid_fraction, e=summary_energy: (
                seismic.SeismicIndex.build_from_dataset(dataset, n_postings=n, centroid_fraction=c,
                                                        summary_energy=e, num_threads=self.threads)))
            target = self.work / f"seismic-{n_postings}-{centroid_fraction}-{summary_energy}"
            index.save(str(target))
            files = [p for p in self.work.glob(f"{target.name}*")]
            size = sum(directory_size(p) if p.is_dir() else p.stat().st_size for p in files)
            for p in files:  # built and measured: the next build needs the disk
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            self._indexes = {name: index}
            yield Built(name, convert_s, build_s, size)
            self._indexes = {}
            del index

    def settings(self, build: Built, k: int) -> list[Setting]:
        index = self._indexes[build.name]
        out = []
        for h in self.heap_factors:
            def batch(rows: list[int], k: int, h=h) -> list[list[int]]:
                return [[int(r[2]) for r in index.search(str(q), self.qcomp[q], self.qval[q], k=k, query_cut=self.cut,
                                                         heap_factor=h)] for q in rows]

            out.append(Setting(f"{build.name}, heap_factor {h}", False, batch=batch,
                               single=lambda q, k, h=h: index.search(str(q), self.qcomp[q], self.qval[q], k=k,
                                                                     query_cut=self.cut, heap_factor=h),
                               note="batch = a loop over search(): its batch_search lost recall",
                               params={"heap_factor": h}))
        return out



class Bmp:
    system = "bmp (Block-Max Pruning)"

    def __init__(self, docs_q: sp.csr_matrix, pairs: list[tuple[np.ndarray, np.ndarray]], work: Path,
                 block_sizes: tuple[int, ...], alphas: tuple[float, ...]):
        if docs_q.shape[1] > 65_536:
            raise ValueError(f"BMP keeps term ids in 16 bits: a {docs_q.shape[1]:,}-term vocabulary does not fit")
        self.docs_q, self.pairs, self.work = docs_q, pairs, work
        self.block_sizes, self.alphas = block_sizes, alphas
        self._searchers: dict[str, Any] = {}

    def builds(self):
        import bmp

        qd = self.docs_q

        def vectors() -> Iterator[dict]:
            return (doc_dict(qd, i) for i in tqdm(range(qd.shape[0]), desc="bmp: dicts", leave=False, disable=None))

        self.queries = [{f"t{t}": float(w) for t, w in zip(terms, weights, strict=True)} for terms, weights in
                        self.pairs]
        convert_s = _conversion_s(vectors)  # the same dicts for every block size
        for bsize in self.block_sizes:
            target = self.work / f"bmp-{bsize}.bmp"

            def build(stream: Iterator[dict], bsize=bsize, target=target) -> None:
                indexer = bmp.Indexer(str(target), bsize=bsize, compress_range=False)
                for i, vector in enumerate(stream):
                    indexer.add_document(str(i), vector)
                indexer.finish()

            build_s = _streamed_build(vectors, build, convert_s)
            name = f"block size {bsize}"
            self._searchers = {name: bmp.Searcher(str(target))}
            yield Built(name, convert_s, build_s, target.stat().st_size)
            self._searchers = {}
            target.unlink(missing_ok=True)

    def settings(self, build: Built, k: int) -> list[Setting]:
        searcher = self._searchers[build.name]
        out = []
        for alpha in self.alphas:
            def batch(rows: list[int], k: int, a=alpha) -> list[list[int]]:
                return [[int(d) for d in searcher.search(self.queries[q], k=k, alpha=a, beta=1.0)[0]] for q in rows]

            out.append(Setting(f"{build.name}, alpha {alpha}" + (" (safe)" if alpha == 1.0 else ""), alpha == 1.0,
                               batch=batch,
                               single=lambda q, k, a=alpha: searcher.search(self.queries[q], k=k, alpha=a, beta=1.0),
                               note="queries re-quantized to 32 levels, 16-bit scores; batch = a loop over "
                                    "Searcher.search()", params={"alpha": alpha}))
        return out
