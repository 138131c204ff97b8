"""Sharded corpus encoding across processes and GPUs, on torch.distributed (``torchrun`` starts the processes).

Why: encoding the corpus is the expensive, embarrassingly parallel part of indexing a 1M-passage collection; training
and the index build are not. Launched as

    torchrun --nproc_per_node 8 -m benchmark run prosper --dataset multicpr-ecom

rank 0 trains (the others wait), every rank loads the trained model on its own GPU (``cuda:$LOCAL_RANK``) and encodes
a contiguous 1/N of the corpus, and rank 0 joins the shards in corpus order, builds the index, searches, evaluates and
writes the one result file. Without ``torchrun`` (``WORLD_SIZE`` unset) everything here is a no-op and one process
does it all.

Shards travel through files in the index folder rather than collective ops (no NCCL gather of hundreds of MB), and the
folder is on the node's own disk. Training under the same ``torchrun`` is data-parallel (``retrievers/training/loop.py``).
Encoding is per passage, so the joined matrix equals a one-process encoding up to floating-point batch effects.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

# Rank 0 may train for hours while the others wait at a barrier; gloo's default 30-minute timeout would kill them.
BARRIER_TIMEOUT = timedelta(hours=float(os.environ.get("PROSPER_BENCH_BARRIER_HOURS", "48")))


_barrier_group = None


def world() -> tuple[int, int]:
    """(rank, world size); joins the process group on first use when ``torchrun`` started several processes.

    Collectives on CPU tensors run on gloo, on CUDA tensors on NCCL (training's gathers and gradient all-reduce);
    barriers run on a gloo group of their own with a long timeout (rank 0 may validate or index for a long while).
    """
    global _barrier_group
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_rank() % torch.cuda.device_count())
        dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=BARRIER_TIMEOUT)
        _barrier_group = dist.new_group(backend="gloo", timeout=BARRIER_TIMEOUT)
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    return world()[0] == 0


def barrier() -> None:
    if world()[1] > 1:
        import torch.distributed as dist

        dist.barrier(group=_barrier_group)


def threads_per_process(requested: int) -> int:
    """CPU threads for this process: ``requested`` alone, its share of the node's cores under ``torchrun`` (four
    processes each asking for the machine's 2 threads would run 8 threads on 2 cores and thrash)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if local <= 1:
        return max(1, requested)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(requested, cores // local))


def local_rank() -> int:
    """Which GPU of the node this process owns (``torchrun`` sets ``LOCAL_RANK``)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """Contiguous, near-equal shards: the first ``n % size`` ranks take one item more."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def encode_corpus(encode: Callable[[list[str]], Any], texts: list[str], work_dir: Path) -> Any | None:
    """``encode(texts)`` split across the processes; the joined result on rank 0, None on the other ranks.

    ``encode`` returns a ``scipy.sparse`` matrix or a numpy array with one row per text.
    """
    rank, size = world()
    if size == 1:
        return encode(texts)
    start, stop = shard_bounds(len(texts), rank, size)
    shard_dir = Path(work_dir) / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    part = encode(texts[start:stop])
    target = shard_dir / f"{rank:05d}-of-{size:05d}.pkl"
    tmp = target.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        pickle.dump(part, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, target)
    barrier()
    if rank != 0:
        return None
    parts = []
    for r in range(size):
        with (shard_dir / f"{r:05d}-of-{size:05d}.pkl").open("rb") as handle:
            parts.append(pickle.load(handle))
    shutil.rmtree(shard_dir)
    if sp.issparse(parts[0]):
        return sp.vstack(parts, format="csr")
    return np.concatenate(parts, axis=0)
