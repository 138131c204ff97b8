"""One benchmark run: (fit) -> index (or reuse) -> search -> evaluate -> write result file and TREC run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmark.data.files import Dataset
from benchmark.data.protocol import Fold, training_folds
from benchmark.evaluation.measures import evaluate_with_per_query
from benchmark.records.results import environment, git_state, write_result
from benchmark.records.rows import row_name
from benchmark.registry import RetrieverSpec
from benchmark.runs.stages import StageClock
from retrievers.base import Timer, config_hash, write_json_atomic
from retrievers.resources.cache import DONE, MANIFEST, CacheCorrupt, CacheUnsealed, cache_dir, entry_lock, seal, verify
from retrievers.resources.model_loading import refuse_scratch, weights_identity
from retrievers.sharding import barrier, is_main, world

log = logging.getLogger("benchmark")
INDEX_STAT_FIELDS = ("index_size_bytes", "index_time_s", "train_time_s", "doc_terms_mean")


def index_dir_for(spec: RetrieverSpec, dataset: Dataset, retriever_hash: str) -> Path:
    return cache_dir() / "indexes" / f"{dataset.name}-{dataset.fingerprint[:12]}" / f"{spec.name}-{retriever_hash}"


def cache_key(retriever) -> str:
    """A cache entry's name: the config without its search-only fields, and where its weights come from (a model from
    the Hub and the same id from a packaged port are different models, never one entry)."""
    base = config_hash(retriever.config, exclude=type(retriever).search_fields)
    identity = weights_identity(retriever.config)
    return base if not identity else hashlib.sha256(f"{base}|{identity}".encode()).hexdigest()[:12]


def run_one(spec: RetrieverSpec, dataset: Dataset, output: Path, k: int = 1000, reuse_index: bool = True,
            overrides: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
            allow_scratch: bool = False, name: str | None = None) -> tuple[Path, dict[str, Any]] | tuple[None, None]:
    """Run one retriever on one dataset and write its versioned result file; return (path, payload).

    The result is filed under its row (``benchmark.records.rows.row_name``): the registered name, ``name`` when given, or a
    name derived from the overrides - a variant never lands in, or is reported as, the registered row.

    Under ``torchrun`` every process calls this; rank 0 trains, all encode a shard of the corpus
    (``retrievers/sharding.py``), and rank 0 alone searches and writes the result ((None, None) elsewhere).

    The index (and trained model) is cached under a hash of the config *without* its search-only fields, so runs that
    differ only in how they search (e.g. query top-m pruning) share one trained model and index.

    On a dataset comparable with the paper, a model or tokenizer whose real files are missing is an error unless
    ``allow_scratch``: a scratch model must never stand in silently for the paper's setting.
    """
    refusal = None if allow_scratch or not dataset.comparable_to_paper else (
        f"{dataset.name} is comparable with the paper, which uses pretrained weights")
    row = row_name(spec.name, overrides, k, name, asdict(spec.build().config))
    with refuse_scratch(refusal):
        return _run_one(spec, dataset, output, k, reuse_index, overrides, extra, row)


def _run_one(spec: RetrieverSpec, dataset: Dataset, output: Path, k: int, reuse_index: bool,
             overrides: dict[str, Any] | None, extra: dict[str, Any] | None, row: str
             ) -> tuple[Path, dict[str, Any]] | tuple[None, None]:
    probe = spec.build(overrides)
    chash = config_hash(probe.config)
    root = index_dir_for(spec, dataset, cache_key(probe))
    if probe.needs_training:
        protocol, folds = training_folds(dataset)
    else:
        protocol, folds = "no training", [Fold("all", {}, {}, list(dataset.queries))]
    run: dict[str, list] = {}
    fold_stats, fold_training, retriever, reused_all, built = [], [], probe, True, []
    clock = StageClock()
    if extra and "load_s" in extra:
        clock.add("load", extra.pop("load_s"))
    for n, fold in enumerate(folds):
        retriever = probe if n == 0 else spec.build(overrides)
        index_dir = root if len(folds) == 1 else root / fold.name
        reused = _fit_and_index(retriever, spec, dataset, fold, index_dir, reuse_index, clock)
        reused_all &= reused
        built.append(built_with(index_dir))
        if not is_main():
            continue
        log.info("%s: searching %d queries (k=%d)", spec.name, len(fold.eval_qids), k)
        with clock.stage("search"):
            run.update(retriever.search({q: dataset.queries[q] for q in fold.eval_qids}, k=k))
        fold_stats.append(retriever.cost().as_dict())
        fold_training.append({"fold": fold.name, **(retriever.provenance().get("training") or {})})
    if not is_main():
        return None, None  # a torchrun helper process: rank 0 writes the result
    with clock.stage("evaluate"):
        metrics, per_query = evaluate_with_per_query(run, dataset.qrels)
    cost = _combine_costs(fold_stats)
    cost["stages"] = clock.stages
    cost["peak_rss_mb"] = max((s["peak_rss_mb"] for s in clock.stages.values()), default=None)
    provenance = {**retriever.provenance(), "protocol": protocol}
    if len(folds) > 1 and any(len(t) > 1 for t in fold_training):  # every fold's training curve, not the last one's
        provenance["training_per_fold"] = fold_training
    payload = {
        "dataset": dataset.describe(),
        "retriever": {"name": row, "registered_as": spec.name, "overrides": overrides or {},
                      "class": spec.class_path, "description": spec.description,
                      "paper_row": spec.paper_row if row == spec.name else None,
                      "config": asdict(probe.config), "config_hash": chash},
        "provenance": provenance,
        "k": k,
        "metrics": metrics,
        "cost": cost,
        "index": {"entry": _relative_to_cache(root), "reused": reused_all,
                  "built_with": built[0] if len(built) == 1 else built},
        "environment": environment(),
        **(extra or {}),
    }
    path = write_result(payload, output, dataset.name, row, chash, run=run, per_query=per_query)
    return path, payload


def _relative_to_cache(path: Path) -> str:
    """A cache entry named relative to the cache folder: a result file holds no machine-local absolute path."""
    try:
        return str(Path(path).relative_to(cache_dir()))
    except ValueError:
        return Path(path).name


def _fit_and_index(retriever, spec: RetrieverSpec, dataset: Dataset, fold: Fold, index_dir: Path,
                   reuse_index: bool, clock: StageClock | None = None) -> bool:
    """Fit (if needed) and index into ``index_dir``, or reopen what an earlier run left there; True when reused.

    A cache entry is sealed when finished (``retrievers.resources.cache.seal``: every file's size and hash) and checked before it
    is reopened; a file that changed, or an entry that fails to reopen, is reported and rebuilt - a cache never
    silently serves wrong numbers. When only the index is damaged and the sealed model is intact, the index is rebuilt
    from that model, never by retraining. One process at a time works on an entry (a file lock): a second run of the
    same retriever waits, then reuses what the first built. A build that fails leaves no entry behind (only the
    checkpoints of finished epochs, which a rerun resumes from).
    """
    rank, world_size = world()
    lock = entry_lock(index_dir) if rank == 0 else contextlib.nullcontext()
    with lock:
        decision = "build"
        if rank == 0 and reuse_index and (index_dir / DONE).exists():
            decision = _reopen(retriever, spec, index_dir, world_size)
            if decision == "reused":
                barrier()
                return True
        barrier()  # rank 0 has decided: reuse (DONE present) or rebuild (DONE removed)
        if rank != 0 and reuse_index and (index_dir / DONE).exists():
            return True  # under torchrun only rank 0 searches; the others have nothing to do
        try:
            if decision == "index":
                return _rebuild_index(retriever, spec, dataset, index_dir, clock or StageClock())
            return _build(retriever, spec, dataset, fold, index_dir, rank, world_size, clock or StageClock())
        except Exception:
            if rank == 0:
                _discard_failed(index_dir)
            raise


def _reopen(retriever, spec: RetrieverSpec, index_dir: Path, world_size: int = 1) -> str:
    """Reopen a sealed entry after checking it: ``reused``; ``index`` when only its index is damaged and its model
    can be reopened (rebuild the index from the model); ``build`` otherwise (the entry unsealed)."""
    try:
        verify(index_dir)
        log.info("%s: reusing %s", spec.name, index_dir)
        retriever.load(index_dir)
        saved = json.loads((index_dir / "index_stats.json").read_text())
    except CacheUnsealed:
        log.warning("%s: cached entry %s was built without checksums (an older prosper-bench); rebuilding it",
                    spec.name, index_dir)
    except CacheCorrupt as err:
        damaged = getattr(err, "files", {})
        model_intact = damaged and not any(f.startswith(MODEL_PARTS) for f in damaged)
        if model_intact and retriever.needs_training and retriever.reopens_models() and world_size == 1:
            log.warning("%s: cached index is corrupt - %s; rebuilding the index from the sealed, intact model "
                        "(no retraining)", spec.name, err)
            (index_dir / DONE).unlink(missing_ok=True)
            return "index"
        log.warning("%s: cached entry is corrupt - %s; rebuilding it", spec.name, err)
    except Exception as err:  # noqa: BLE001 - any failure to reopen means: rebuild, and say why
        log.warning("%s: cached entry %s could not be reopened (%s: %s); rebuilding it", spec.name, index_dir,
                    type(err).__name__, err)
    else:
        for key in INDEX_STAT_FIELDS:
            setattr(retriever.stats, key, saved.get(key))
        return "reused"
    (index_dir / DONE).unlink(missing_ok=True)
    return "build"


#: What a trained entry's model is made of: the model folder and the provenance of its training. When these are
#: intact, the rest of the entry (index files, statistics) can be rebuilt from them without retraining.
MODEL_PARTS = ("model/", "provenance.json")


def _rebuild_index(retriever, spec: RetrieverSpec, dataset: Dataset, index_dir: Path, clock: StageClock) -> bool:
    """Reopen the entry's sealed model and rebuild everything else of the entry from it."""
    provenance = json.loads((index_dir / "provenance.json").read_text())
    try:
        train_time = json.loads((index_dir / "index_stats.json").read_text()).get("train_time_s")
    except (OSError, ValueError):
        train_time = None  # the statistics file was the damaged one: the training time is not known any more
    for child in index_dir.iterdir():
        if child.name not in ("model", "provenance.json", BUILT_WITH, MANIFEST) and not child.name.endswith(".lock"):
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    retriever.restore_provenance(provenance)
    retriever.load_model(index_dir / "model")
    retriever.stats.train_time_s = train_time
    log.info("%s: indexing %d passages with the cached model", spec.name, len(dataset.corpus))
    with Timer() as timer:
        retriever.index(dataset.corpus, index_dir)
    clock.merge_index_stages(retriever.stats.extra, timer.seconds)
    write_json_atomic(index_dir / "index_stats.json", {key: getattr(retriever.stats, key) for key in INDEX_STAT_FIELDS})
    seal(index_dir)
    return False


def _discard_failed(index_dir: Path) -> None:
    """After a failed build, nothing half-made stays in the cache: the entry goes, except the checkpoints of finished
    epochs (a rerun resumes from them instead of starting over)."""
    keep = (index_dir / "checkpoints" / "trainer_state.json").exists()
    if not index_dir.exists():
        return
    if not keep:
        shutil.rmtree(index_dir, ignore_errors=True)
        return
    for child in index_dir.iterdir():
        if child.name != "checkpoints":
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)


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
        retriever.record_compute(encoding_processes=world_size)
    log.info("%s: indexing %d passages", spec.name, len(dataset.corpus))
    with Timer() as timer:
        retriever.index(dataset.corpus, index_dir)
    clock.merge_index_stages(retriever.stats.extra, timer.seconds)
    if rank != 0:
        return False
    write_json_atomic(index_dir / "index_stats.json", {key: getattr(retriever.stats, key) for key in INDEX_STAT_FIELDS})
    write_json_atomic(index_dir / BUILT_WITH, git_state())  # the code this entry was built (and trained) with
    shutil.rmtree(index_dir / "checkpoints", ignore_errors=True)  # the model is saved; checkpoints only resumed
    seal(index_dir)
    return False


#: Inside every cache entry: the commit (and dirty state) of the code that built it. A later run that reuses the
#: entry records it, so a result made of a model trained by older code is marked stale against *that* code.
BUILT_WITH = "built_with.json"


def built_with(index_dir: Path) -> dict[str, Any] | None:
    """The code an entry was built with (None: an entry from before entries recorded it)."""
    try:
        return json.loads((Path(index_dir) / BUILT_WITH).read_text())
    except (OSError, ValueError):
        return None


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
    root = index_dir_for(spec, dataset, cache_key(retriever))
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
