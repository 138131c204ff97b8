"""BM25 over pre-tokenized text: Lucene (through pyserini) as the reference engine, bm25s as a cross-check.

Why pre-tokenized: the paper's BM25 baselines differ only by tokenizer (BERT-Chinese vs Qwen2.5), so the text is
tokenized here, joined by spaces and indexed with Lucene's whitespace analyzer (``-pretokenized``); the engine never
applies its own analysis. Parameters default to the paper's k1=1.2, b=0.75.

FLOPS for BM25 is reported as the paper defines it for sparse models - the average number of distinct terms a query
shares with a document - computed exactly from document frequencies: mean over queries of sum_t df(t) / N.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from retrievers.base import Retriever, Run, Timer, directory_size, latency_summary, write_json_atomic
from retrievers.options import at_least, between, choice
from retrievers.resources.tokenization import Tokenizer, load_saved_tokenizer, load_tokenizer


@dataclass
class BM25Config:
    tokenizer: str = "bert-base-chinese"
    tokenizer_path: str | None = None  # a local folder with the real tokenizer files
    k1: float = at_least(1.2, 0)
    b: float = between(0.75, 0, 1)
    backend: str = choice("lucene", "bm25s")  # Lucene through pyserini, or bm25s
    threads: int = at_least(2, 1)
    latency_queries: int = at_least(1000, 0)  # queries timed one by one for p50/p95 (single thread)
    latency_k: int = at_least(10, 1)  # hits per timed query


def overlap_flops(query_tokens: list[list[str]], df: Mapping[str, int], n_docs: int) -> float:
    """Average number of distinct shared terms per (query, document) pair, over all pairs."""
    if not query_tokens or n_docs == 0:
        return 0.0
    total = sum(sum(df.get(t, 0) for t in set(tokens)) / n_docs for tokens in query_tokens)
    return total / len(query_tokens)


class BM25Retriever(Retriever):
    config_class = BM25Config

    def __init__(self, config: BM25Config | None = None):
        super().__init__(config)
        if self.config.backend not in ("lucene", "bm25s"):
            raise ValueError(f"unknown BM25 backend {self.config.backend!r}; use 'lucene' or 'bm25s'")
        self.tokenizer: Tokenizer | None = None
        self._df: Counter[str] = Counter()
        self._n_docs = 0

    # ------------------------------------------------------------------------------------------------- tokenizing
    def _tokenizer_for(self, corpus: Mapping[str, str], index_dir: Path) -> Tokenizer:
        if self.tokenizer is None:
            self.tokenizer = load_tokenizer(self.config.tokenizer, corpus.values(), path=self.config.tokenizer_path)
            self._provenance["tokenizer"] = self.tokenizer.provenance
        return self.tokenizer

    def _tokenize(self, texts: list[str], desc: str) -> list[list[str]]:
        out: list[list[str]] = []
        step = 2048
        for start in tqdm(range(0, len(texts), step), desc=desc, unit="batch", leave=False, disable=len(texts) < 5000):
            out.extend(self.tokenizer.tokenize_many(texts[start : start + step]))
        return out

    # -------------------------------------------------------------------------------------------------- indexing
    def index(self, corpus: Mapping[str, str], index_dir: Path) -> None:
        index_dir = Path(index_dir)
        tokenizer = self._tokenizer_for(corpus, index_dir)
        pids = list(corpus)
        with Timer() as timer:
            with Timer() as tokenizing:
                tokens = self._tokenize([corpus[p] for p in pids], "tokenizing corpus")
            self._df = Counter(t for toks in tokens for t in set(toks))
            self._n_docs = len(pids)
            if self.config.backend == "lucene":
                self._index_lucene(pids, ({"contents": " ".join(t)} for t in tokens), index_dir, "JsonCollection")
            else:
                self._index_bm25s(pids, tokens, index_dir)
        self._write_meta(index_dir)
        # the tokenizer that cut the corpus is kept beside the index: queries are cut by the same one on reopening,
        # whatever a later resolution (a new HF cache entry, another package version) would return
        tokenizer.hf.save_pretrained(str(index_dir / "tokenizer"))
        self.stats.index_time_s = timer.seconds
        self.stats.extra["stages"] = {"tokenize": tokenizing.seconds, "build": timer.seconds - tokenizing.seconds}
        self.stats.index_size_bytes = directory_size(index_dir / self.config.backend)
        self.stats.doc_terms_mean = sum(len(t) for t in tokens) / max(len(tokens), 1)

    def index_term_frequencies(self, pids: list[str], vectors: list[Mapping[str, int]], index_dir: Path) -> None:
        """BM25 over documents given as {term: term frequency} (DeepCT's pseudo-documents, never materialised).

        Lucene's ``JsonVectorCollection`` (without ``-impact``) stores each weight as the term's frequency, and the
        document length is their sum, so BM25 scores exactly as over a text repeating each term that many times.
        Queries then go through :meth:`search_tokens`. Lucene backend only.
        """
        if self.config.backend != "lucene":
            raise ValueError("term-frequency documents are indexed by the lucene backend")
        index_dir = Path(index_dir)
        with Timer() as timer:
            self._df = Counter(t for vector in vectors for t, tf in vector.items() if tf > 0)
            self._n_docs = len(pids)
            rows = ({"contents": "", "vector": {t: int(tf) for t, tf in v.items() if tf > 0}} for v in vectors)
            self._index_lucene(pids, rows, index_dir, "JsonVectorCollection")
        self._write_meta(index_dir)
        self.stats.index_time_s = timer.seconds
        self.stats.index_size_bytes = directory_size(index_dir / "lucene")
        self.stats.doc_terms_mean = sum(sum(1 for tf in v.values() if tf > 0) for v in vectors) / max(len(vectors), 1)

    def _write_meta(self, index_dir: Path) -> None:
        meta = {"df": dict(self._df), "n_docs": self._n_docs, "provenance": self._provenance}
        write_json_atomic(index_dir / "bm25_meta.json", meta)

    def _index_lucene(self, pids: list[str], rows: Iterable[dict], index_dir: Path, collection_class: str) -> None:
        from retrievers.resources.jvm import ensure_jvm

        ensure_jvm()
        from jnius import autoclass

        collection = index_dir / "collection"
        collection.mkdir(parents=True, exist_ok=True)
        with open(collection / "docs.jsonl", "w", encoding="utf-8") as fh:
            for pid, row in zip(pids, rows, strict=True):
                fh.write(json.dumps({"id": pid, **row}, ensure_ascii=False) + "\n")
        target = index_dir / "lucene"
        if target.exists():
            shutil.rmtree(target)
        args = ["-collection", collection_class, "-input", str(collection), "-index", str(target),
                "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(self.config.threads),
                "-pretokenized", "-storeRaw", "-quiet"]
        autoclass("io.anserini.index.IndexCollection").main(args)
        shutil.rmtree(collection)
        self._open_lucene(target)

    def _open_lucene(self, path: Path) -> None:
        from retrievers.resources.jvm import ensure_jvm

        ensure_jvm()
        from pyserini.analysis import JWhiteSpaceAnalyzer
        from pyserini.search.lucene import LuceneSearcher

        self._index_path = path
        self._searcher = LuceneSearcher(str(path))
        self._searcher.set_bm25(float(self.config.k1), float(self.config.b))
        self._searcher.set_analyzer(JWhiteSpaceAnalyzer())

    def _index_bm25s(self, pids: list[str], tokens: list[list[str]], index_dir: Path) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self._bm25s = bm25s.BM25(k1=self.config.k1, b=self.config.b, method="lucene")
        self._bm25s.index(tokens, show_progress=False)
        self._bm25s.save(str(index_dir / "bm25s"))
        self._pids = pids
        (index_dir / "bm25s" / "pids.json").write_text(json.dumps(pids))

    def load(self, index_dir: Path) -> None:
        index_dir = Path(index_dir)
        meta = json.loads((index_dir / "bm25_meta.json").read_text(encoding="utf-8"))
        self._df, self._n_docs = Counter(meta["df"]), meta["n_docs"]
        self._provenance = meta["provenance"]
        if "tokenizer" not in self._provenance:
            self.tokenizer = None  # term-frequency documents: the caller tokenizes queries (search_tokens)
        elif (index_dir / "tokenizer").exists():
            self.tokenizer = Tokenizer(load_saved_tokenizer(index_dir / "tokenizer"), self._provenance["tokenizer"])
        else:  # an index written before the tokenizer was always saved beside it
            self.tokenizer = load_tokenizer(self.config.tokenizer, path=self.config.tokenizer_path)
        if self.config.backend == "lucene":
            self._open_lucene(index_dir / "lucene")
        else:
            import bm25s

            self._bm25s = bm25s.BM25.load(str(index_dir / "bm25s"))
            self._pids = json.loads((index_dir / "bm25s" / "pids.json").read_text())
        self.stats.index_size_bytes = directory_size(index_dir / self.config.backend)

    # --------------------------------------------------------------------------------------------------- search
    def search(self, queries: Mapping[str, str], k: int = 1000) -> Run:
        qids = list(queries)
        return self.search_tokens(qids, self._tokenize([queries[q] for q in qids], "tokenizing queries"), k)

    def search_tokens(self, qids: list[str], tokens: list[list[str]], k: int = 1000) -> Run:
        """BM25 for queries already cut into the index's terms (a repeated term counts once per repeat)."""
        self.stats.flops = overlap_flops(tokens, self._df, self._n_docs)
        self.stats.query_terms_mean = sum(len(set(t)) for t in tokens) / max(len(tokens), 1)
        if self.config.backend == "lucene":
            run = self._search_lucene(qids, tokens, k)
        else:
            run = self._search_bm25s(qids, tokens, k)
        return run

    def _search_lucene(self, qids: list[str], tokens: list[list[str]], k: int) -> Run:
        """Batch search through Anserini's SearchCollection (Java-side, multi-threaded, writes a TREC run).

        Why not ``LuceneSearcher.batch_search``: handing 1,000 hits per query back through pyjnius costs ~20 ms a
        query, ten times the search itself. Latency is timed per query at ``latency_k`` hits for the same reason.
        """
        import tempfile

        from jnius import autoclass

        from retrievers.trec import read_trec_run

        texts = {q: " ".join(t) for q, t in zip(qids, tokens, strict=True) if t}
        with tempfile.TemporaryDirectory(prefix="bm25-") as tmp:
            topics, output = Path(tmp) / "topics.tsv", Path(tmp) / "run.trec"
            topics.write_text("".join(f"{q}\t{t}\n" for q, t in texts.items()), encoding="utf-8")
            args = ["-index", str(self._index_path), "-topics", str(topics), "-topicReader", "TsvString",
                    "-output", str(output), "-bm25", "-bm25.k1", str(self.config.k1), "-bm25.b", str(self.config.b),
                    "-hits", str(k), "-threads", str(self.config.threads), "-pretokenized"]
            with Timer() as timer:
                autoclass("io.anserini.search.SearchCollection").main(args)
            run = read_trec_run(output) if texts else {}
        latencies = []
        for text in tqdm(list(texts.values())[: self.config.latency_queries], desc="BM25 latency", leave=False):
            with Timer() as one:
                self._searcher.object.search(text, self.config.latency_k)
            latencies.append(one.seconds)
        self._set_latency(latencies)
        self.stats.extra["batch_search_s"] = timer.seconds
        return {q: run.get(q, []) for q in qids}

    def _search_bm25s(self, qids: list[str], tokens: list[list[str]], k: int) -> Run:
        k = min(k, len(self._pids))
        vocab = self._bm25s.vocab_dict
        known = [[t for t in toks if t in vocab] for toks in tokens]  # bm25s rejects unknown tokens
        asked = [i for i, toks in enumerate(known) if toks]  # a query with no known token matches nothing
        run: Run = {qid: [] for qid in qids}
        if asked:
            docs, scores = self._bm25s.retrieve([known[i] for i in asked], k=k, show_progress=False,
                                                n_threads=self.config.threads)
            for row, i in enumerate(asked):
                run[qids[i]] = [(self._pids[d], float(s)) for d, s in zip(docs[row], scores[row], strict=True) if s > 0]
        latencies = []
        for toks in [known[i] for i in asked][: self.config.latency_queries]:
            with Timer() as timer:
                self._bm25s.retrieve([toks], k=min(k, self.config.latency_k), show_progress=False)
            latencies.append(timer.seconds)
        self._set_latency(latencies)
        return run

    def _set_latency(self, latencies: list[float]) -> None:
        self.stats.extra["latency_k"] = self.config.latency_k
        for key, value in latency_summary(latencies).items():
            setattr(self.stats, key, value)
