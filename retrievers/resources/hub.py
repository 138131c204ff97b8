"""Pretrained weights by their Hugging Face id: a local path, the local cache, or the Hub - and a record of which.

Why a probe: ``from_pretrained`` on a machine that cannot reach the Hub retries for ~50 s per call before it gives up;
a benchmark loads a tokenizer and a model per retriever. :func:`hub_offline` asks once per process (a 3-second TCP
connect to ``HF_ENDPOINT``), and respects ``HF_HUB_OFFLINE=1`` / ``PROSPER_BENCH_OFFLINE=1`` without probing; when
offline, loading uses ``local_files_only=True`` (the cache under ``HF_HOME``) and fails at once if the files are absent.
"""

from __future__ import annotations

import functools
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from retrievers.resources.artefacts import sha256_of

_TRUE = ("1", "true", "yes", "on")
WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth")


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


@functools.lru_cache(maxsize=1)
def _probe(endpoint: str) -> bool:
    parsed = urlparse(endpoint)
    host, port = parsed.hostname or "huggingface.co", parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def hub_offline() -> bool:
    """True when the Hub must not (``HF_HUB_OFFLINE``, ``PROSPER_BENCH_OFFLINE``) or cannot be reached."""
    if _env_true("HF_HUB_OFFLINE") or _env_true("PROSPER_BENCH_OFFLINE"):
        return True
    return not _probe(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))


def in_local_cache(model_id: str, filename: str = "config.json") -> Path | None:
    """The cached file of ``model_id`` (under ``HF_HOME``), if the cache holds it."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return None
    found = try_to_load_from_cache(model_id, filename)
    return Path(found) if isinstance(found, str) else None


def load_pretrained(loader: Callable[..., Any], model_id: str, path: str | os.PathLike | None = None,
                    **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """``loader(source, local_files_only=..., **kwargs)`` for a path, the cache or the Hub; (object, provenance).

    Raises ``OSError`` (transformers' own) when nothing can be loaded, so callers can fall back or explain.
    """
    if path is not None:
        folder = Path(path).expanduser()
        if not folder.exists():
            raise OSError(f"{folder} does not exist")
        obj = loader(str(folder), local_files_only=True, **kwargs)
        return obj, {"model_id": model_id, "kind": "pretrained", "source": "path", "path": str(folder)}
    offline = hub_offline()
    cached = in_local_cache(model_id)
    obj = loader(model_id, local_files_only=offline, **kwargs)
    source = "hf-cache" if cached is not None or offline else "hub"
    record: dict[str, Any] = {"model_id": model_id, "kind": "pretrained", "source": source}
    snapshot = in_local_cache(model_id)
    if snapshot is not None:
        record["snapshot"] = snapshot.parent.name  # the Hub commit the cache holds
        record["path"] = str(snapshot.parent)
    return obj, record


def weights_digest(folder: str | os.PathLike) -> dict[str, str]:
    """sha256 of every weight file in ``folder``. Files in a Hugging Face cache snapshot link to blobs named by their
    sha256, which is read from the name instead of hashing gigabytes again."""
    digests = {}
    for pattern in WEIGHT_FILES:
        for file in sorted(Path(folder).glob(pattern)):
            target = file.resolve()
            if file.is_symlink() and re.fullmatch(r"[0-9a-f]{64}", target.name):
                digests[file.name] = target.name
            else:
                digests[file.name] = sha256_of(target)
    return digests


class WeightsUnavailable(OSError):
    """No pretrained copy of a model: not at the given path, not in the HF cache, Hub unreachable, no packaged port."""

    def __init__(self, model_id: str, tried: list[str]):
        self.model_id, self.tried = model_id, tried
        super().__init__(f"pretrained weights for {model_id!r} not found ({'; '.join(tried)})")


#: Models whose weights reach this machine through a package (``retrievers.resources.e5_port``), built on first use.
PACKAGED_MODELS = {"intfloat/multilingual-e5-small": "retrievers.resources.e5_port:build_port"}


@dataclass
class ResolvedModel:
    """Where to load a pretrained model from: ``source`` (a folder, or a Hub id), and the provenance to record."""

    source: str
    local_only: bool
    provenance: dict[str, Any]


#: Where pretrained weights may come from (config ``weights_source``): ``auto`` tries a given ``model_path``, then the
#: Hugging Face cache, the Hub and a packaged port, in that order; the others allow only that one place.
WEIGHT_SOURCES = ("auto", "hf-cache", "hub", "package")


def resolve_model(model_id: str, path: str | os.PathLike | None = None, source: str = "auto") -> ResolvedModel:
    """Find pretrained weights for ``model_id`` without loading them: path -> HF cache -> Hub -> packaged port, or only
    the place ``source`` names (``package`` makes a row deterministic on- and offline: e5's 4-bit port, never the
    full-precision Hub copy an online machine would otherwise load).

    Raises :class:`WeightsUnavailable` listing what was tried, so a caller can fall back to a scratch model where that
    is allowed, or refuse with a message that names the missing weights.
    """
    if source not in WEIGHT_SOURCES:
        raise ValueError(f"weights_source must be one of {', '.join(WEIGHT_SOURCES)}, not {source!r}")
    tried = []
    if path is not None:
        folder = Path(path).expanduser()
        if (folder / "config.json").exists():
            return ResolvedModel(str(folder), True, {"model_id": model_id, "kind": "pretrained", "source": "path",
                                                     "path": str(folder)})
        raise WeightsUnavailable(model_id, [f"model_path {folder} has no config.json"])
    if source in ("auto", "hf-cache"):
        cached = in_local_cache(model_id)
        if cached is not None:
            return ResolvedModel(model_id, True, {"model_id": model_id, "kind": "pretrained", "source": "hf-cache",
                                                  "snapshot": cached.parent.name, "path": str(cached.parent)})
        tried.append("not in the Hugging Face cache (HF_HOME)")
    if source in ("auto", "hub"):
        if not hub_offline():
            return ResolvedModel(model_id, False, {"model_id": model_id, "kind": "pretrained", "source": "hub"})
        tried.append("the Hub is offline or unreachable")
    if source in ("auto", "package"):
        if model_id in PACKAGED_MODELS:
            module, _, attr = PACKAGED_MODELS[model_id].partition(":")
            import importlib

            folder, provenance = getattr(importlib.import_module(module), attr)()
            return ResolvedModel(str(folder), True, {**provenance, "path": str(folder)})
        tried.append("no package ships it")
    raise WeightsUnavailable(model_id, tried)
