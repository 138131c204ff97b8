"""Validation after every epoch: each held-out query ranks its positive among candidates, in bounded memory."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from retrievers.training.config import Trainable

#: Bound on validation's working memory beyond the model (query vectors kept + one micro-batch of passages).
VALIDATION_MEMORY_BYTES = int(float(os.environ.get("PROSPER_BENCH_VALIDATION_MEMORY_MB", "512")) * 2**20)


def _compact(vectors: np.ndarray) -> np.ndarray | sp.csr_matrix:
    """Sparse rows when that is smaller (windowed sparse representations), dense rows otherwise."""
    density = np.count_nonzero(vectors) / max(1, vectors.size)
    return sp.csr_matrix(vectors) if density < 0.25 else vectors


def _nbytes(matrix: np.ndarray | sp.csr_matrix) -> int:
    if sp.issparse(matrix):
        return matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    return matrix.nbytes


def validation_scores(model: Trainable, queries: Sequence[str], candidates: Sequence[str],
                      memory_bytes: int = VALIDATION_MEMORY_BYTES) -> np.ndarray:
    """(queries x candidates) scores, computed with bounded memory whatever the vocabulary size and pooling.

    Query vectors are kept (sparse when that is smaller) in groups of at most half of ``memory_bytes``; passages are
    encoded in micro-batches of ``model.validation_batch_size`` (default 16) and scored against the group at once, so
    no candidate's vocabulary-sized vector outlives its micro-batch. A group that does not fit means one more pass over
    the candidates, never more memory.
    """
    from retrievers.batching import length_batches

    batch = max(1, int(getattr(model, "validation_batch_size", 16)))
    out = np.empty((len(queries), len(candidates)), dtype=np.float32)
    query_batches = length_batches(queries, batch)  # similar lengths together: little padding
    candidate_batches = length_batches(candidates, batch)
    done = 0
    with torch.no_grad():
        while done < len(query_batches):
            group, rows, used = [], [], 0
            while done < len(query_batches) and (not group or used < memory_bytes // 2):
                indices = query_batches[done]
                vectors = _compact(model.scoring_vectors([queries[i] for i in indices], "query").float().cpu().numpy())
                group.append(vectors)
                rows.extend(indices)
                used += _nbytes(vectors)
                done += 1
            q = sp.vstack(group, format="csr") if any(sp.issparse(g) for g in group) else np.vstack(group)
            for indices in candidate_batches:
                d = model.scoring_vectors([candidates[i] for i in indices], "doc").float().cpu().numpy()
                out[np.ix_(rows, indices)] = np.asarray(q @ d.T, dtype=np.float32)
    return out


def validation_mrr(model: Trainable, pairs: list[tuple[str, str]], distractors: Sequence[str] = (),
         memory_bytes: int = VALIDATION_MEMORY_BYTES) -> float:
    """Validation: MRR of each held-out query's positive among the held-out positives plus ``distractors``.

    Why distractors: ranked only among their own ~100 positives, the held-out queries saturate (every epoch scores
    ~0.95 and the "best" epoch is noise); the paper validates on 500 training queries against a real candidate set.
    """
    positives = list(dict.fromkeys(p for _, p in pairs))
    column = {p: i for i, p in enumerate(positives)}
    candidates = positives + [p for p in dict.fromkeys(distractors) if p not in column]
    scores = validation_scores(model, [q for q, _ in pairs], candidates, memory_bytes)
    positive = scores[np.arange(len(pairs)), [column[p] for _, p in pairs]]
    # ties count against the positive: a collapsed model (all scores equal) must score ~0, not a perfect 1.0
    ranks = (scores >= positive[:, None]).sum(axis=1)
    return float((1.0 / ranks).mean())


def validation_distractors(validation: list[tuple[str, str]], corpus_passages: Sequence[str] | None, total: int,
                           seed: int) -> list[str]:
    """A seeded sample of corpus passages, none a held-out positive, filling the candidate set up to ``total``."""
    held_out = {p for _, p in validation}
    pool = [p for p in dict.fromkeys(corpus_passages or ()) if p not in held_out]
    need = max(0, min(total - len(held_out), len(pool)))
    return random.Random(seed).sample(pool, need) if need else []
