"""Where the suite keeps what it builds, and what it downloads.

- :func:`cache_dir` (``PROSPER_BENCH_CACHE``, default ``~/.cache/prosper-bench``): generated demo data, stand-in
  tokenizers, trained models and indexes - everything the *code* produces, so everything a code change can make stale.
- :func:`artefact_dir` (``PROSPER_BENCH_ARTEFACTS``, default ``~/.cache/prosper-bench-artefacts``): files fetched
  from a package registry and checked against a pinned sha256 (real tokenizer vocabularies). They cannot go stale, so
  they live apart from the code's cache and survive :func:`temporary_cache`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
