"""Where the suite keeps what it builds, and what it downloads.

- :func:`cache_dir` (``PROSPER_BENCH_CACHE``, default ``~/.cache/prosper-bench``): generated demo data, stand-in
  tokenizers, trained models and indexes - everything the *code* produces, so everything a code change can make stale.
- :func:`artefact_dir` (``PROSPER_BENCH_ARTEFACTS``, default ``~/.cache/prosper-bench-artefacts``): files fetched
  from a package registry and checked against a pinned sha256 (real tokenizer vocabularies). They cannot go stale, so
  they live apart from the code's cache and survive :func:`temporary_cache`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CACHE_DIR_ENV = "PROSPER_BENCH_CACHE"
ARTEFACT_DIR_ENV = "PROSPER_BENCH_ARTEFACTS"


def cache_dir() -> Path:
    """Where generated data, trained tokenizers, models and indexes live (``PROSPER_BENCH_CACHE``)."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "prosper-bench")


def artefact_dir() -> Path:
    """Where sha256-pinned downloads live (``PROSPER_BENCH_ARTEFACTS``); independent of :func:`cache_dir`."""
    return Path(os.environ.get(ARTEFACT_DIR_ENV) or Path.home() / ".cache" / "prosper-bench-artefacts")


@contextlib.contextmanager
def temporary_cache(prefix: str = "prosper-bench-cache-") -> Iterator[Path]:
    """A fresh, empty :func:`cache_dir` for the duration of the block, removed afterwards.

    ``check`` measures the code under test this way: a cached index built by older code (the cache key has no code
    version) cannot stand in for a rebuild.
    """
    old = os.environ.get(CACHE_DIR_ENV)
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ[CACHE_DIR_ENV] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop(CACHE_DIR_ENV, None)
        else:
            os.environ[CACHE_DIR_ENV] = old
        shutil.rmtree(path, ignore_errors=True)


def publish_folder(tmp: Path, target: Path) -> None:
    """Move a finished folder into place; if another process published ``target`` first, keep theirs.

    Checking ``target.exists()`` before ``os.replace`` races: two processes that both saw no folder both try to
    rename, and the second gets ``ENOTEMPTY``. The rename is the only test that cannot race.
    """
    try:
        os.replace(tmp, target)
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ sealed entries
MANIFEST = "MANIFEST.json"
DONE = "DONE"
UNSEALED = ("checkpoints", MANIFEST, DONE)  # training state resumes on its own; the rest is sealed


class CacheCorrupt(RuntimeError):
    """A cached file differs from what was written: a size or a hash, or a file missing."""


class CacheUnsealed(CacheCorrupt):
    """An entry finished before entries were sealed: nothing to check it against."""


def file_digest(path: str | os.PathLike, algorithm: Any) -> str:
    """Hex digest of a file read in blocks; ``algorithm`` as for :func:`hashlib.file_digest` (a name such as
    ``"sha256"`` or a constructor such as ``xxhash.xxh3_64``). The one file-hashing loop of the project."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def _digest(path: Path) -> str:
    """xxh3-64 of the file: ~10 GB/s, so checking a 1M-passage index costs a fraction of a second."""
    import xxhash

    return file_digest(path, xxhash.xxh3_64)


def _entry_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).parts[0] not in UNSEALED
                  and not p.name.endswith(".lock"))


def seal(folder: str | os.PathLike) -> None:
    """Record every file of a finished cache entry (size and xxh3 hash), then mark the entry done."""
    import json

    folder = Path(folder)
    files = {str(p.relative_to(folder)): {"size": p.stat().st_size, "xxh3": _digest(p)} for p in _entry_files(folder)}
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"version": 1, "files": files}, indent=1))
    os.replace(tmp, folder / MANIFEST)
    (folder / DONE).write_text("ok\n")


def differing_files(folder: str | os.PathLike) -> dict[str, str]:
    """{file (relative to the entry): what differs} for every file that does not match the entry's manifest.

    Raises :class:`CacheUnsealed` / :class:`CacheCorrupt` when there is no readable manifest to check against.
    """
    import json

    folder = Path(folder)
    if not (folder / MANIFEST).exists():
        raise CacheUnsealed(f"{folder}: no {MANIFEST}")
    try:
        manifest = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError) as err:
        raise CacheCorrupt(f"{folder / MANIFEST}: missing or unreadable ({err})") from err
    differing = {}
    for name, expected in manifest.items():
        path = folder / name
        if not path.is_file():
            differing[name] = "missing"
        elif path.stat().st_size != expected["size"]:
            differing[name] = f"{path.stat().st_size} bytes, {expected['size']} when it was written"
        elif _digest(path) != expected["xxh3"]:
            differing[name] = "contents changed since it was written (xxh3 differs)"
    return differing


def verify(folder: str | os.PathLike) -> None:
    """Raise :class:`CacheCorrupt` naming the first file that differs from the entry's manifest (all of them in
    ``err.files``)."""
    differing = differing_files(folder)
    if differing:
        name, why = next(iter(differing.items()))
        err = CacheCorrupt(f"{Path(folder) / name}: {why}" + (f" (and {len(differing) - 1} more)"
                                                             if len(differing) > 1 else ""))
        err.files = differing
        raise err


def entry_lock(folder: str | os.PathLike, timeout: float = -1):
    """An inter-process lock on one cache entry: a second run of the same retriever waits, then reuses."""
    from filelock import FileLock

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder.with_name(folder.name + ".lock")), timeout=timeout)
