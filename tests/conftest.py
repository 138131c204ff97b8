from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


# hermetic: never probe the Hugging Face Hub from a test (pretrained files come from local paths and packages)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Every test session gets its own cache (generated demo data, stand-in tokenizers, indexes)."""
    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("PROSPER_BENCH_CACHE")
    os.environ["PROSPER_BENCH_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("PROSPER_BENCH_CACHE", None)
    else:
        os.environ["PROSPER_BENCH_CACHE"] = old


@pytest.fixture(scope="session")
def multicpr_dir() -> Path:
    """The Multi-CPR files: PROSPER_BENCH_DATA, else ../shared/data/multicpr beside the checkout (as CI has it)."""
    candidates = [os.environ.get("PROSPER_BENCH_DATA"), REPO.parent / "shared" / "data" / "multicpr"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "ecom" / "dev.query.txt").exists():
            return Path(candidate)
    pytest.skip("Multi-CPR files not found: set PROSPER_BENCH_DATA")


@pytest.fixture(scope="session")
def pool(multicpr_dir):
    from benchmark.data.datasets import load_dataset

    return load_dataset("multicpr-ecom-pool", data_dir=multicpr_dir)


@pytest.fixture(scope="session")
def demo():
    from benchmark.data.datasets import load_dataset

    return load_dataset("demo")
