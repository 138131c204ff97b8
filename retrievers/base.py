"""The one interface every retriever implements: index a corpus, search queries, report what it cost.

Modelled on bm25s's small ``index``/``retrieve`` API and pyserini's searchers: a retriever is built from a plain config
dataclass, may be fitted on training data, indexes a ``{pid: text}`` corpus into a folder, and answers a batch of
``{qid: text}`` queries with a :data:`Run` (per query, a list of ``(pid, score)`` best first).
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

Run = dict[str, list[tuple[str, float]]]


@dataclass
class CostStats:
    """What a retriever cost. ``None`` means "does not apply" (e.g. FLOPS for a dense model)."""

    index_size_bytes: int | None = None
    index_time_s: float | None = None
    train_time_s: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    latency_ms_mean: float | None = None
    queries_per_s: float | None = None
    flops: float | None = None  # average number of overlapping terms per query-document pair
    query_terms_mean: float | None = None
    doc_terms_mean: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def latency_summary(latencies_s: list[float]) -> dict[str, float]:
    if not latencies_s:
        return {}
    ms = np.asarray(latencies_s) * 1000.0
    return {
        "latency_ms_p50": float(np.percentile(ms, 50)),
        "latency_ms_p95": float(np.percentile(ms, 95)),
        "latency_ms_mean": float(ms.mean()),
        "queries_per_s": float(len(ms) / max(ms.sum() / 1000.0, 1e-12)),
    }


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


#: Config fields that say where a model runs, not what it is: never part of a config hash (a model trained on a GPU
#: and one trained on the CPU from the same config share a cache entry and a result series).
RUNTIME_FIELDS = ("device",)


def config_hash(config: Any, exclude: tuple[str, ...] = ()) -> str:
    """Short stable hash of a config dataclass; ``exclude`` drops fields (e.g. search-only knobs for an index key)."""
    values = {k: v for k, v in dataclasses.asdict(config).items() if k not in exclude and k not in RUNTIME_FIELDS}
    payload = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


class Retriever(abc.ABC):
    """Base class: subclasses set ``config_class`` and implement :meth:`index` and :meth:`search`."""

    config_class: ClassVar[type]
    #: True when the retriever must be fitted on training pairs before indexing.
    needs_training: ClassVar[bool] = False
    #: Config fields that only change how an index is searched: a sweep over them reuses the trained model and index.
    search_fields: ClassVar[tuple[str, ...]] = ()
    #: True when :meth:`index` encodes the corpus through ``retrievers.sharding.encode_corpus`` (and so can split
    #: it across torchrun processes) and :meth:`load_model` reopens the fitted model on the other processes.
    shards_encoding: ClassVar[bool] = False

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.config_class()
        self.stats = CostStats()
        self._provenance: dict[str, Any] = {}

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def fit(self, train_queries: Mapping[str, str], train_qrels: Mapping[str, Mapping[str, int]],
            corpus: Mapping[str, str], work_dir: Path) -> None:
        """Train on (query, positive passage) pairs. The default does nothing (unsupervised retrievers)."""
        return None

    @abc.abstractmethod
    def index(self, corpus: Mapping[str, str], index_dir: Path) -> None:
        """Build the index under ``index_dir`` (created by the caller); fill ``self.stats`` index fields."""

    @abc.abstractmethod
    def search(self, queries: Mapping[str, str], k: int = 1000) -> Run:
        """Return the top-``k`` passages per query, best first; fill ``self.stats`` latency (and FLOPS) fields."""

    def load_model(self, model_dir: Path) -> None:
        """Reopen the model that :meth:`fit` saved under ``model_dir`` (retrievers that shard their encoding)."""
        raise NotImplementedError(f"{type(self).__name__} cannot reopen its model alone")

    def load(self, index_dir: Path) -> None:
        """Reopen an index built earlier by :meth:`index` (so a second run need not rebuild it)."""
        raise NotImplementedError(f"{type(self).__name__} cannot reopen an index")

    # -- reporting ---------------------------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        """Which tokenizer / model weights were used: ``pretrained`` or ``stand-in``/``scratch``, never implied."""
        return dict(self._provenance)

    def record_compute(self, **facts: Any) -> None:
        """Add facts about where and how this retriever ran (e.g. ``encoding_processes``) to its provenance."""
        self._provenance.setdefault("compute", {}).update(facts)

    def restore_provenance(self, provenance: dict[str, Any]) -> None:
        """Take over the provenance an earlier build recorded (an index rebuilt from a cached, already trained model)."""
        self._provenance = dict(provenance)

    @classmethod
    def reopens_models(cls) -> bool:
        """True when :meth:`load_model` can reopen a trained model alone (so a damaged index is rebuilt from it)."""
        return cls.load_model is not Retriever.load_model

    def cost(self) -> CostStats:
        return self.stats


def torch_device(name: str = "auto") -> Any:
    """``auto`` -> a CUDA GPU when torch sees one (``cuda:$LOCAL_RANK``: 0 outside torchrun), else the CPU.

    Anything else is passed to ``torch.device``.

    Training and encoding follow it; the inverted index, Faiss and scoring stay on the CPU. CPU runs are
    deterministic (seeded); GPU kernels are not bit-reproducible, so a result file records the device it used.
    """
    import torch

    if name == "auto":  # under torchrun, each process owns the GPU its LOCAL_RANK names (retrievers/sharding.py)
        if not torch.cuda.is_available():
            return torch.device("cpu")
        from retrievers.sharding import local_rank

        return torch.device("cuda", local_rank() % torch.cuda.device_count())
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but torch sees no CUDA GPU (use device=cpu or auto)")
    return device


def device_provenance(device: Any) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


class Timer:
    """``with Timer() as t: ...; t.seconds``."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


def nested_from_dicts(config: Any, defaults: Any, names: tuple[str, ...]) -> None:
    """Turn nested config fields given as dicts (YAML, ``--set``) into dataclasses, over the defaults' values.

    ``{"epochs": 1}`` for ``train`` keeps every other field of the default ``train``, not of the bare dataclass.
    """
    for name in names:
        value = getattr(config, name)
        if isinstance(value, dict):
            default = getattr(defaults, name)
            setattr(config, name, type(default)(**{**dataclasses.asdict(default), **value}))
