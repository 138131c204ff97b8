"""One benchmark run: (fit) -> index (or reuse) -> search -> evaluate -> write result file and TREC run."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmark.data import Dataset, cache_dir
from benchmark.evaluation import evaluate
from benchmark.registry import RetrieverSpec
from benchmark.results import environment, write_result
from benchmark.runfile import write_trec_run
from retrievers.base import Timer, config_hash, write_json_atomic

log = logging.getLogger("benchmark")
INDEX_STAT_FIELDS = ("index_size_bytes", "index_time_s", "train_time_s", "doc_terms_mean")


def index_dir_for(spec: RetrieverSpec, dataset: Dataset, retriever_hash: str) -> Path:
    return cache_dir() / "indexes" / f"{dataset.name}-{dataset.fingerprint[:12]}" / f"{spec.name}-{retriever_hash}"


def run_one(spec: RetrieverSpec, dataset: Dataset, output: Path, k: int = 1000, reuse_index: bool = True,
            overrides: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """Run one retriever on one dataset and write its versioned result file; return (path, payload)."""
    retriever = spec.build(overrides)
    chash = config_hash(retriever.config)
    index_dir = index_dir_for(spec, dataset, chash)
    done = index_dir / "DONE"
    reused = reuse_index and done.exists()
    if reused:
        log.info("%s: reusing index %s", spec.name, index_dir)
        retriever.load(index_dir)
        saved = json.loads((index_dir / "index_stats.json").read_text())
        for key in INDEX_STAT_FIELDS:
            setattr(retriever.stats, key, saved.get(key))
    else:
        if index_dir.exists():
            shutil.rmtree(index_dir)  # a half-built index from an interrupted run
        index_dir.mkdir(parents=True)
        if retriever.needs_training:
            with Timer() as timer:
                retriever.fit(dataset.train_queries, dataset.train_qrels, dataset.corpus, index_dir)
            retriever.stats.train_time_s = timer.seconds
        log.info("%s: indexing %d passages", spec.name, len(dataset.corpus))
        retriever.index(dataset.corpus, index_dir)
        write_json_atomic(index_dir / "index_stats.json",
                          {key: getattr(retriever.stats, key) for key in INDEX_STAT_FIELDS})
        done.write_text("ok\n")
    log.info("%s: searching %d queries (k=%d)", spec.name, len(dataset.queries), k)
    run = retriever.search(dataset.queries, k=k)
    metrics = evaluate(run, dataset.qrels)
    payload = {
        "dataset": dataset.describe(),
        "retriever": {"name": spec.name, "class": spec.class_path, "description": spec.description,
                      "paper_row": spec.paper_row, "config": asdict(retriever.config), "config_hash": chash},
        "provenance": retriever.provenance(),
        "k": k,
        "metrics": metrics,
        "cost": retriever.cost().as_dict(),
        "index": {"path": str(index_dir), "reused": reused},
        "environment": environment(),
    }
    path = write_result(payload, output, dataset.name, spec.name, chash)
    write_trec_run(run, path.with_suffix(".trec"), tag=spec.name)
    return path, payload
