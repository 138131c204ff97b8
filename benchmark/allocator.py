"""A memory allocator that keeps what it has: the CLI re-executes itself once with one, before torch is imported.

Why: training on a CPU allocates and frees the same large activation buffers every step (a max-pooled SPLADE head
alone is batch x length x vocabulary floats, over 100 MB). glibc serves any block above 32 MiB with a fresh ``mmap``
and unmaps it on free, so every step faults its working set back in page by page: measured on 2 cores (AMD EPYC),
6 splade-v2-e5 training steps took 29.6 s, 15.4 s of it in the kernel (2.8M page faults). With jemalloc and decay
off they took 19.2 s (2.9 s kernel); with glibc told not to mmap or trim, 22.3 s. What is computed is the same: torch
asks for the same alignment from either allocator, and the result files of a rerun are identical.

Choice, in order: the user's own ``LD_PRELOAD`` / ``GLIBC_TUNABLES`` / ``MALLOC_CONF`` (left alone);
``PROSPER_BENCH_ALLOCATOR=system`` (nothing changed); jemalloc when ``libjemalloc.so.2`` is installed (Debian:
``apt-get install libjemalloc2``) with ``dirty_decay_ms:-1,muzzy_decay_ms:-1``; otherwise glibc tunables
(``mmap_max=0``, no trimming). Memory is then returned to the system at exit rather than during the run, so the peak
resident size is what a run holds. Only Linux; the result file records which one ran (``environment.allocator``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: set in the re-executed process: says which allocator was chosen and stops a second re-execution
MARK = "PROSPER_BENCH_ALLOCATOR_CHOSEN"
JEMALLOC_PATHS = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
                  "/usr/lib64/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2")
GLIBC_KEEP = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967295"
JEMALLOC_KEEP = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
CHOICES = ("auto", "system", "jemalloc", "glibc")  # PROSPER_BENCH_ALLOCATOR


def plan(env: dict[str, str] | None = None, platform: str | None = None) -> tuple[str, dict[str, str]]:
    """(name, environment variables to add) for this process; ``{}`` when nothing should change."""
    env = dict(os.environ if env is None else env)
    platform = platform or sys.platform
    if MARK in env:
        return env[MARK], {}
    if not platform.startswith("linux"):
        return "system", {}
    wanted = env.get("PROSPER_BENCH_ALLOCATOR", "auto").lower()
    if wanted not in CHOICES:  # a typo must not quietly measure under another allocator than the one asked for
        raise ValueError(f"PROSPER_BENCH_ALLOCATOR={env['PROSPER_BENCH_ALLOCATOR']!r} is not one of {', '.join(CHOICES)}")
    if wanted == "system":
        return "system", {}
    if any(env.get(name) for name in ("LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_CONF")):
        return "user's own", {}
    if wanted in ("auto", "jemalloc"):
        library = next((p for p in JEMALLOC_PATHS if Path(p).exists()), None)
        if library:
            return "jemalloc", {"LD_PRELOAD": library, "MALLOC_CONF": JEMALLOC_KEEP, MARK: "jemalloc"}
        if wanted == "jemalloc":
            raise ValueError("PROSPER_BENCH_ALLOCATOR=jemalloc, but libjemalloc.so.2 is not installed (Debian: "
                             "apt-get install libjemalloc2); unset it to fall back to glibc")
    return "glibc, no mmap or trim", {"GLIBC_TUNABLES": GLIBC_KEEP, MARK: "glibc, no mmap or trim"}


def reexec_with_kept_memory(argv: list[str]) -> None:
    """Replace this process with ``python -m benchmark ARGV`` under the chosen allocator (returns when none applies)."""
    try:
        name, extra = plan()
    except ValueError as err:
        sys.exit(f"python -m benchmark: error: {err}")
    if not extra:
        os.environ.setdefault(MARK, name)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, "-m", "benchmark", *argv], {**os.environ, **extra})
    except OSError:  # cannot re-execute (unusual interpreter setup): run on with the system allocator
        os.environ[MARK] = "system"


def chosen() -> str:
    """What this process runs with (recorded in every result file)."""
    return os.environ.get(MARK, "system")
