"""One benchmark run: (fit) -> index (or reuse) -> search -> evaluate -> write result file and TREC run."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmark.data import Dataset, cache_dir
from benchmark.evaluation import evaluate
from benchmark.registry import RetrieverSpec
from benchmark.results import environment, write_result
from benchmark.runfile import write_trec_run
from benchmark.stages import StageClock
from retrievers.base import Timer, config_hash, write_json_atomic
from retrievers.cache import DONE, CacheCorrupt, CacheUnsealed, entry_lock, seal, verify
from retrievers.model_loading import refuse_scratch
from retrievers.sharding import barrier, is_main, world

log = logging.getLogger("benchmark")
INDEX_STAT_FIELDS = ("index_size_bytes", "index_time_s", "train_time_s", "doc_terms_mean")


def index_dir_for(spec: RetrieverSpec, dataset: Dataset, retriever_hash: str) -> Path:
    return cache_dir() / "indexes" / f"{dataset.name}-{dataset.fingerprint[:12]}" / f"{spec.name}-{retriever_hash}"


@dataclass
class Fold:
    """Which pairs a trained retriever learns from and which dev queries it is then evaluated on."""

    name: str
    train_queries: dict[str, str]
    train_qrels: dict[str, dict[str, int]]
    eval_qids: list[str]


def training_folds(dataset: Dataset, n_folds: int = 2, seed: int = 13) -> tuple[str, list[Fold]]:
    """The training protocol for ``dataset``.

    Pool protocol (``corpus_label == 'pool'``): the pool holds only 182 train positives, so the 1,000 dev queries are
    split in ``n_folds`` seeded folds; a model is trained on the train pairs plus the other folds' dev pairs and
    evaluated on its own fold; the folds' runs are merged, so every dev query is scored by a model that never saw it
    (with equal folds, the metrics of the merged run are the mean of the folds' metrics). Otherwise: the official
    train split, evaluated on all dev queries.
    """
    if dataset.corpus_label != "pool":
        return "official-train-split", [Fold("all", dataset.train_queries, dataset.train_qrels, list(dataset.queries))]
    qids = sorted(dataset.qrels)
    random.Random(seed).shuffle(qids)
    parts = [sorted(qids[i::n_folds]) for i in range(n_folds)]
    folds = []
    for i, held_out in enumerate(parts):
        train_q = dict(dataset.train_queries)
        train_r = {q: dict(v) for q, v in dataset.train_qrels.items()}
        for j, other in enumerate(parts):
            if j != i:
                for q in other:
                    train_q[q] = dataset.queries[q]
                    train_r[q] = dict(dataset.qrels[q])
        folds.append(Fold(f"fold-{i}", train_q, train_r, held_out))
    protocol = (f"pool-{n_folds}fold-cv (train pairs + other folds' dev pairs; "
                "each dev query scored by a model that never saw it)")
    return protocol, folds


def run_one(spec: RetrieverSpec, dataset: Dataset, output: Path, k: int = 1000, reuse_index: bool = True,
            overrides: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
            allow_scratch: bool = False) -> tuple[Path, dict[str, Any]] | tuple[None, None]:
    """Run one retriever on one dataset and write its versioned result file; return (path, payload).

    Under ``torchrun`` every process calls this; rank 0 trains, all encode a shard of the corpus
    (``retrievers/sharding.py``), and rank 0 alone searches and writes the result ((None, None) elsewhere).

    The index (and trained model) is cached under a hash of the config *without* its search-only fields, so runs that
    differ only in how they search (e.g. query top-m pruning) share one trained model and index.

    On a dataset comparable with the paper, a model or tokenizer whose real files are missing is an error unless
    ``allow_scratch``: a scratch model must never stand in silently for the paper's setting.
    """
    refusal = None if allow_scratch or not dataset.comparable_to_paper else (
        f"{dataset.name} is comparable with the paper, which uses pretrained weights")
    with refuse_scratch(refusal):
        return _run_one(spec, dataset, output, k, reuse_index, overrides, extra)


def _run_one(spec: RetrieverSpec, dataset: Dataset, output: Path, k: int, reuse_index: bool,
             overrides: dict[str, Any] | None, extra: dict[str, Any] | None
             ) -> tuple[Path, dict[str, Any]] | tuple[None, None]:
    probe = spec.build(overrides)
    chash = config_hash(probe.config)
    root = index_dir_for(spec, dataset, config_hash(probe.config, exclude=type(probe).search_fields))
    if probe.needs_training:
        protocol, folds = training_folds(dataset)
    else:
        protocol, folds = "no training", [Fold("all", {}, {}, list(dataset.queries))]
    run: dict[str, list] = {}
    fold_stats, retriever, reused_all = [], probe, True
    clock = StageClock()
    if extra and "load_s" in extra:
        clock.add("load", extra.pop("load_s"))
    for n, fold in enumerate(folds):
        retriever = probe if n == 0 else spec.build(overrides)
        index_dir = root if len(folds) == 1 else root / fold.name
        reused = _fit_and_index(retriever, spec, dataset, fold, index_dir, reuse_index, clock)
        reused_all &= reused
        if not is_main():
            continue
        log.info("%s: searching %d queries (k=%d)", spec.name, len(fold.eval_qids), k)
        with clock.stage("search"):
            run.update(retriever.search({q: dataset.queries[q] for q in fold.eval_qids}, k=k))
        fold_stats.append(retriever.cost().as_dict())
    if not is_main():
        return None, None  # a torchrun helper process: rank 0 writes the result
    with clock.stage("evaluate"):
        metrics = evaluate(run, dataset.qrels)
    cost = _combine_costs(fold_stats)
    cost["stages"] = clock.stages
    cost["peak_rss_mb"] = max((s["peak_rss_mb"] for s in clock.stages.values()), default=None)
    payload = {
        "dataset": dataset.describe(),
        "retriever": {"name": spec.name, "class": spec.class_path, "description": spec.description,
                      "paper_row": spec.paper_row, "config": asdict(probe.config), "config_hash": chash},
        "provenance": {**retriever.provenance(), "protocol": protocol},
        "k": k,
        "metrics": metrics,
        "cost": cost,
        "index": {"path": str(root), "reused": reused_all},
        "environment": environment(),
        **(extra or {}),
    }
    path = write_result(payload, output, dataset.name, spec.name, chash)
    write_trec_run(run, path.with_suffix(".trec"), tag=spec.name)
    return path, payload


def _fit_and_index(retriever, spec: RetrieverSpec, dataset: Dataset, fold: Fold, index_dir: Path,
                   reuse_index: bool, clock: StageClock | None = None) -> bool:
    """Fit (if needed) and index into ``index_dir``, or reopen what an earlier run left there; True when reused.

    A cache entry is sealed when finished (``retrievers.cache.seal``: every file's size and hash) and checked before it
    is reopened; a file that changed, or an entry that fails to reopen, is reported and rebuilt - a cache never
    silently serves wrong numbers. One process at a time works on an entry (a file lock): a second run of the same
    retriever waits, then reuses what the first built.
    """
    rank, world_size = world()
    lock = entry_lock(index_dir) if rank == 0 else contextlib.nullcontext()
    with lock:
        if rank == 0 and reuse_index and (index_dir / DONE).exists():
            if _reopen(retriever, spec, index_dir):
                barrier()
                return True
        barrier()  # rank 0 has decided: reuse (DONE present) or rebuild (DONE removed)
        if rank != 0 and reuse_index and (index_dir / DONE).exists():
            return True  # under torchrun only rank 0 searches; the others have nothing to do
        return _build(retriever, spec, dataset, fold, index_dir, rank, world_size, clock or StageClock())


def _reopen(retriever, spec: RetrieverSpec, index_dir: Path) -> bool:
    """Reopen a sealed entry after checking it; False (and the entry unsealed) when it must be rebuilt."""
    try:
        verify(index_dir)
        log.info("%s: reusing %s", spec.name, index_dir)
        retriever.load(index_dir)
        saved = json.loads((index_dir / "index_stats.json").read_text())
    except CacheUnsealed:
        log.warning("%s: cached entry %s was built without checksums (an older prosper-bench); rebuilding it",
                    spec.name, index_dir)
    except CacheCorrupt as err:
        log.warning("%s: cached entry is corrupt - %s; rebuilding it (checkpoints kept)", spec.name, err)
    except Exception as err:  # noqa: BLE001 - any failure to reopen means: rebuild, and say why
        log.warning("%s: cached entry %s could not be reopened (%s: %s); rebuilding it", spec.name, index_dir,
                    type(err).__name__, err)
    else:
        for key in INDEX_STAT_FIELDS:
            setattr(retriever.stats, key, saved.get(key))
        return True
    (index_dir / DONE).unlink(missing_ok=True)
    return False


def _build(retriever, spec: RetrieverSpec, dataset: Dataset, fold: Fold, index_dir: Path, rank: int,
           world_size: int, clock: StageClock) -> bool:
    if rank == 0:
        if index_dir.exists():  # an interrupted or corrupt entry: drop it, keep checkpoints to resume from
            for child in index_dir.iterdir():
                if child.name != "checkpoints":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        index_dir.mkdir(parents=True, exist_ok=True)
    barrier()  # the other torchrun processes wait for rank 0's folder
    if retriever.needs_training:  # every process trains: the trainer splits each batch across them (DDP)
        if rank == 0:
            log.info("%s: training on %d queries (%s)", spec.name, len(fold.train_qrels), fold.name)
        with Timer() as timer:
            retriever.fit(fold.train_queries, fold.train_qrels, dataset.corpus, index_dir)
        retriever.stats.train_time_s = timer.seconds
        clock.add("train", timer.seconds)
    barrier()  # rank 0 has saved the model
    if rank != 0 and not retriever.shards_encoding:
        return False  # this retriever indexes in one process: rank 0 does it alone
    if world_size > 1 and retriever.shards_encoding:  # BM25 / Doc2Query index in rank 0 alone: nothing to record
        log.info("%s: rank %d of %d encoding its shard of %d passages", spec.name, rank, world_size,
                 len(dataset.corpus))
        retriever._provenance.setdefault("compute", {})["encoding_processes"] = world_size
    log.info("%s: indexing %d passages", spec.name, len(dataset.corpus))
    with Timer() as timer:
        retriever.index(dataset.corpus, index_dir)
    clock.merge_index_stages(retriever.stats.extra, timer.seconds)
    if rank != 0:
        return False
    write_json_atomic(index_dir / "index_stats.json", {key: getattr(retriever.stats, key) for key in INDEX_STAT_FIELDS})
    shutil.rmtree(index_dir / "checkpoints", ignore_errors=True)  # the model is saved; checkpoints only resumed
    seal(index_dir)
    return False


def _combine_costs(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    """One cost record for the run: sums for training time, means for everything else; folds kept in ``extra``."""
    if len(per_fold) == 1:
        return per_fold[0]
    combined: dict[str, Any] = {}
    for key, value in per_fold[0].items():
        values = [c[key] for c in per_fold if c.get(key) is not None]
        if key == "extra" or not values or not isinstance(value, int | float):
            continue
        combined[key] = sum(values) if key == "train_time_s" else sum(values) / len(values)
    combined["extra"] = {"folds": per_fold}
    return combined


class NotTrained(RuntimeError):
    """The retriever has no cached model for this dataset and config, and building one was not asked for."""


def trained_retriever(spec: RetrieverSpec, dataset: Dataset, overrides: dict[str, Any] | None = None,
                      build_if_missing: bool = False):
    """The retriever as ``run`` leaves it (trained and indexed), reopened from the cache.

    Under the pool protocol this is the first fold's model. Training can take minutes to hours, so a missing model is
    a :class:`NotTrained` error naming the command that builds it, unless ``build_if_missing``.
    """
    retriever = spec.build(overrides)
    root = index_dir_for(spec, dataset, config_hash(retriever.config, exclude=type(retriever).search_fields))
    if retriever.needs_training:
        _, folds = training_folds(dataset)
    else:
        folds = [Fold("all", {}, {}, [])]
    index_dir = root if len(folds) == 1 else root / folds[0].name
    if not (index_dir / DONE).exists() and not build_if_missing:
        what = "trained" if retriever.needs_training else "indexed"
        sets = "".join(f" --set {k}" for k in _flat(overrides or {}))
        raise NotTrained(f"{spec.name} is not {what} on {dataset.name} with this config yet: run "
                         f"'python -m benchmark run {spec.name} --dataset {dataset.name}{sets}' first, or pass "
                         f"--train to build it now (training shows its progress)")
    _fit_and_index(retriever, spec, dataset, folds[0], index_dir, True)
    return retriever


def _flat(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        out += _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}={value}"]
    return out
