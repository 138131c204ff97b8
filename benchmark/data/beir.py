"""A user's own dataset in BEIR format: ``--dataset beir:PATH`` (or ``beir:PATH#split``).

BEIR's layout (Thakur et al., 2021), which most IR datasets are published in: ``corpus.jsonl`` (``_id``, ``title``,
``text``), ``queries.jsonl`` (``_id``, ``text``), ``qrels/<split>.tsv`` (a ``query-id corpus-id score`` header,
then tab-separated rows). The split evaluated is ``test`` unless named (``beir:PATH#dev``); ``qrels/train.tsv``, when
present, gives the training pairs. Checked as strictly as the Multi-CPR files (a bad line names its file and line),
fingerprinted the same way (the sha256 of every file used), and never comparable with the paper. A passage is its
title and text joined by a space, as BEIR's own dense baselines read it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmark.data.files import DataError, DataFormatError, Dataset, read_lines
from retrievers.resources.artefacts import sha256_of

PREFIX = "beir:"


def dataset_name(folder: Path, split: str) -> str:
    """A result-folder name for a BEIR folder: ``beir-<folder>`` (plus the split when it is not ``test``)."""
    base = re.sub(r"[^a-z0-9_-]+", "-", folder.resolve().name.lower()).strip("-") or "dataset"
    return f"beir-{base}" + ("" if split == "test" else f"-{split}")


def _jsonl(path: Path, kind: str) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    first: dict[str, int] = {}
    for number, line in read_lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFormatError(path, number, f"not a JSON object ({err.msg})") from None
        if not isinstance(row, dict) or "_id" not in row:
            raise DataFormatError(path, number, f"a {kind} line needs an '_id'")
        key = str(row["_id"]).strip()
        if key in first:
            raise DataFormatError(path, number, f"duplicate {kind} id {key!r} (first seen on line {first[key]})")
        first[key] = number
        rows[key] = row
    return rows


def _qrels(path: Path, queries: dict[str, str], corpus: dict[str, str], skipped: dict[str, int],
           strict: bool) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    for number, line in read_lines(path):
        parts = line.split("\t") if "\t" in line else line.split()
        if number == 1 and parts[0].lower().replace("_", "-") in ("query-id", "qid"):
            continue  # the header
        if len(parts) != 3:
            raise DataFormatError(path, number, f"expected 3 fields 'query-id corpus-id score', got {len(parts)}")
        qid, pid, raw = (p.strip() for p in parts)
        try:
            rel = int(float(raw))
        except ValueError:
            raise DataFormatError(path, number, f"score {raw!r} is not a number") from None
        if (qid, pid) in seen:
            if qrels.get(qid, {}).get(pid, rel) != rel:
                raise DataFormatError(path, number, f"query {qid!r} judges passage {pid!r} again with score {rel}, "
                                                    f"after line {seen[qid, pid]}")
            continue
        seen[qid, pid] = number
        if qid not in queries or pid not in corpus:
            what = "query" if qid not in queries else "passage"
            if strict:
                raise DataFormatError(path, number, f"names {what} {qid if what == 'query' else pid!r}, which is not "
                                                    f"in {'queries' if what == 'query' else 'corpus'}.jsonl")
            skipped[f"train qrels whose {what} is missing"] = skipped.get(f"train qrels whose {what} is missing", 0) + 1
            continue
        qrels.setdefault(qid, {})[pid] = rel
    return qrels


def load_beir(spec: str, with_train: bool = True) -> Dataset:
    """``spec`` = ``beir:PATH`` or ``beir:PATH#split``."""
    target = spec[len(PREFIX):]
    folder_text, _, split = target.partition("#")
    split = split or "test"
    folder = Path(folder_text).expanduser()
    if not folder.is_dir():
        raise DataError(f"--dataset {spec}: {folder} is not a folder (a BEIR folder holds corpus.jsonl, "
                        "queries.jsonl and qrels/<split>.tsv)")
    paths = {"corpus": folder / "corpus.jsonl", "queries": folder / "queries.jsonl",
             "qrels": folder / "qrels" / f"{split}.tsv"}
    for role, path in paths.items():
        if not path.is_file():
            splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
            hint = f" (splits there: {', '.join(splits)}; choose one with beir:{folder}#SPLIT)" if role == "qrels" and \
                splits else ""
            raise DataError(f"--dataset {spec}: {path} is missing{hint}")
    train_path = folder / "qrels" / "train.tsv"
    if with_train and split != "train" and train_path.is_file():
        paths["train_qrels"] = train_path
    skipped: dict[str, int] = {}
    rows = _jsonl(paths["corpus"], "passage")
    corpus = {}
    for pid, row in rows.items():
        text = " ".join(str(row.get(k) or "").strip() for k in ("title", "text")).strip()
        if text:
            corpus[pid] = text
        else:
            skipped["empty passage"] = skipped.get("empty passage", 0) + 1
    if not corpus:
        raise DataError(f"{paths['corpus']}: the corpus is empty")
    all_queries = {q: str(row.get("text") or "").strip() for q, row in _jsonl(paths["queries"], "query").items()}
    qrels = _qrels(paths["qrels"], all_queries, corpus, skipped, strict=True)
    if not qrels:
        raise DataError(f"{paths['qrels']}: no judgements")
    queries = {q: all_queries[q] for q in qrels}
    train_qrels = _qrels(paths["train_qrels"], all_queries, corpus, skipped, strict=False) if "train_qrels" in paths \
        else {}
    train_queries = {q: all_queries[q] for q in train_qrels}
    files = {role: {"path": str(path.relative_to(folder)), "sha256": sha256_of(path)} for role, path in paths.items()}
    files["corpus"]["rows"] = len(rows)
    files["queries"]["rows"] = len(all_queries)
    notes = [f"BEIR folder {folder.name} (split {split}): {len(corpus):,} passages, {len(queries):,} judged queries"
             + (f", {sum(len(v) for v in train_qrels.values()):,} training pairs" if train_qrels else
                ", no qrels/train.tsv (trained retrievers need one)"),
             "custom results: not comparable with the paper's full-corpus numbers"]
    notes += [f"skipped {n} {reason}" for reason, n in sorted(skipped.items())]
    return Dataset(name=dataset_name(folder, split), corpus=corpus, queries=queries, qrels=qrels,
                   train_queries=train_queries, train_qrels=train_qrels, corpus_label="custom",
                   comparable_to_paper=False, files=files, skipped=skipped, notes=notes)
