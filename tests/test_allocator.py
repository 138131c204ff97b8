"""The CLI re-executes itself with an allocator that keeps freed memory (benchmark/allocator.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import allocator


def test_the_user_s_own_allocator_settings_and_the_opt_out_are_left_alone(tmp_path, monkeypatch):
    fake = tmp_path / "libjemalloc.so.2"
    fake.write_bytes(b"")
    monkeypatch.setattr(allocator, "JEMALLOC_PATHS", (str(fake),))
    name, extra = allocator.plan({}, "linux")
    assert name == "jemalloc" and extra["LD_PRELOAD"] == str(fake) and "dirty_decay_ms:-1" in extra["MALLOC_CONF"]
    assert allocator.plan({"LD_PRELOAD": "/opt/tcmalloc.so"}, "linux") == ("user's own", {})
    assert allocator.plan({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "linux") == ("user's own", {})
    assert allocator.plan({"PROSPER_BENCH_ALLOCATOR": "system"}, "linux") == ("system", {})
    assert allocator.plan({}, "darwin") == ("system", {})
    assert allocator.plan({allocator.MARK: "jemalloc"}, "linux") == ("jemalloc", {})  # never re-executes twice
    monkeypatch.setattr(allocator, "JEMALLOC_PATHS", (str(tmp_path / "missing.so"),))
    name, extra = allocator.plan({}, "linux")
    assert "mmap_max=0" in extra["GLIBC_TUNABLES"] and extra[allocator.MARK] == name
    assert allocator.plan({"PROSPER_BENCH_ALLOCATOR": "glibc"}, "linux")[1]["GLIBC_TUNABLES"] == allocator.GLIBC_KEEP
    with pytest.raises(ValueError, match="libjemalloc2"):  # asked for by name and absent: said, not substituted
        allocator.plan({"PROSPER_BENCH_ALLOCATOR": "jemalloc"}, "linux")
    with pytest.raises(ValueError, match="'jemaloc' is not one of auto, system, jemalloc, glibc"):
        allocator.plan({"PROSPER_BENCH_ALLOCATOR": "jemaloc"}, "linux")


def test_a_misspelt_allocator_stops_the_cli_with_a_clear_error():
    env = {**os.environ, "PROSPER_BENCH_ALLOCATOR": "jemaloc"}
    env.pop(allocator.MARK, None)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, "-m", "benchmark", "list"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "error: PROSPER_BENCH_ALLOCATOR='jemaloc' is not one of" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_cli_run_re_executes_once_and_records_its_allocator(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_CONF",
                                                            allocator.MARK, "PROSPER_BENCH_ALLOCATOR")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    env["PROSPER_BENCH_CACHE"] = str(tmp_path / "cache")  # its own cache: the session's must hold one entry per row
    results = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "benchmark", "run", "bm25s-bert", "--dataset", "demo", "--output",
                           str(results), "--set", "latency_queries=5"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = [p for p in results.rglob("*.json") if not p.name.endswith("perquery.json")]
    recorded = json.loads(result.read_text())["environment"]["machine"]["allocator"]
    assert recorded == allocator.plan({k: v for k, v in env.items() if k != allocator.MARK})[0] != "system"
