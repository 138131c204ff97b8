"""What a model learns from: (query, positive passage) pairs in a fixed order, and BM25 hard negatives for them."""

from __future__ import annotations

import random


def training_pairs(train_queries: dict[str, str], train_qrels: dict[str, dict[str, int]],
                   corpus: dict[str, str]) -> list[tuple[str, str]]:
    """(query text, positive passage text) pairs, in a fixed order."""
    pairs = []
    for qid in sorted(train_qrels):
        for pid, rel in sorted(train_qrels[qid].items()):
            if rel > 0 and qid in train_queries and pid in corpus:
                pairs.append((train_queries[qid], corpus[pid]))
    if not pairs:
        raise ValueError("no training pairs: the dataset has no train queries whose positive is in the corpus")
    return pairs


def mine_bm25_negatives(pairs: list[tuple[str, str]], passages: list[str], depth: int, seed: int
                        ) -> dict[str, list[str]]:
    """query text -> BM25 top-``depth`` passages that are not one of its positives (bm25s, k1=1.2, b=0.75).

    Tokens: BERT basic tokenization (one token per CJK character, lower-cased words otherwise), the same view the
    BERT-Chinese BM25 baseline has, without needing a tokenizer file.
    """
    import re

    import bm25s

    def tokens(text: str) -> list[str]:
        return re.findall(r"[\u3400-\u9fff\uf900-\ufaff]|[a-z0-9]+", text.lower())

    unique = list(dict.fromkeys(passages))
    retriever = bm25s.BM25(k1=1.2, b=0.75)
    retriever.index([tokens(p) for p in unique], show_progress=False)
    positives: dict[str, set[str]] = {}
    for query, passage in pairs:
        positives.setdefault(query, set()).add(passage)
    queries = list(positives)
    docs, _ = retriever.retrieve([tokens(q) or ["[empty]"] for q in queries], k=min(depth, len(unique)),
                                 show_progress=False, n_threads=1)
    rng = random.Random(seed)
    mined = {}
    for query, row in zip(queries, docs, strict=True):
        candidates = [unique[i] for i in row if unique[i] not in positives[query]]
        rng.shuffle(candidates)
        mined[query] = candidates
    return mined


def choose_negatives(batch: list[tuple[str, str]], negatives: dict[str, list[str]], rng: random.Random
                     ) -> list[str | None]:
    """One hard negative per query of a *global* batch, none of them a passage of the batch (a positive, or a negative
    already chosen for another query): after gathering, no query may meet its own positive as a negative. Each query's
    choice starts at a random place in its mined list, so it changes from epoch to epoch."""
    taken = {p for _, p in batch}
    chosen: list[str | None] = []
    for query, _ in batch:
        candidates = negatives.get(query) or []
        choice = None
        if candidates:
            start = rng.randrange(len(candidates))
            choice = next((c for c in candidates[start:] + candidates[:start] if c not in taken), None)
        if choice is not None:
            taken.add(choice)
        chosen.append(choice)
    return chosen
