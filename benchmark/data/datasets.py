"""Multi-CPR data layer: manifests, checked loading of the official TSV format, the demo set.

Why strict: a silently dropped line or an unknown pid in the qrels changes every metric without anyone noticing. Every
problem either raises :class:`DataFormatError` naming the file and line, or - where the data really has such rows by
design (train positives missing from a partial corpus) - is skipped, counted and reported in ``Dataset.skipped``.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmark import REPO_ROOT
from benchmark.data.files import DataError, Dataset, build_qrels, read_id_text
from retrievers.resources.artefacts import sha256_of
from retrievers.resources.cache import cache_dir

MANIFEST_DIR = REPO_ROOT / "datasets"
DATA_DIR_ENV = "PROSPER_BENCH_DATA"


# --------------------------------------------------------------------------------------------------------- manifests
@dataclass(frozen=True)
class FileSpec:
    role: str
    name: str
    rows: int | None
    sha256: str | None


@dataclass(frozen=True)
class Manifest:
    name: str
    description: str
    format: str
    corpus_label: str
    comparable_to_paper: bool
    subdir: str | None = None
    download_url: str | None = None
    files: tuple[FileSpec, ...] = ()
    known_corpora: dict[str, str] = field(default_factory=dict)
    unknown_train_pids: str = "error"
    generator: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    def file(self, role: str) -> FileSpec | None:
        return next((f for f in self.files if f.role == role), None)


def list_manifests() -> list[Manifest]:
    return [load_manifest(p.stem) for p in sorted(MANIFEST_DIR.glob("*.yaml"))]


DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def load_manifest(name: str) -> Manifest:
    """The manifest ``datasets/<name>.yaml``. A dataset is named, never given as a path: the name becomes part of
    result and cache paths, so ``../x`` or ``/tmp/x.yaml`` would write outside them."""
    known = ", ".join(p.stem for p in sorted(MANIFEST_DIR.glob("*.yaml")))
    if not DATASET_NAME.match(name or ""):
        raise DataError(f"--dataset takes a dataset name (lower-case letters, digits, '-', '_'), not {name!r}; "
                        f"known datasets: {known}. To use your own corpus file, pass --corpus FILE; a BEIR folder: "
                        f"--dataset beir:PATH.")
    path = MANIFEST_DIR / f"{name}.yaml"
    if not path.exists():
        raise DataError(f"unknown dataset {name!r}; known datasets: {known}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or raw.get("name") != name:
        raise DataError(f"{path}: not a dataset manifest (its 'name' must be {name!r}, the file's own name)")
    files = tuple(
        FileSpec(role, spec["name"], spec.get("rows"), spec.get("sha256")) for role, spec in (raw.get("files") or {}).items()
    )
    return Manifest(
        name=raw["name"],
        description=raw.get("description", ""),
        format=raw["format"],
        corpus_label=raw["corpus_label"],
        comparable_to_paper=bool(raw.get("comparable_to_paper", False)),
        subdir=raw.get("subdir"),
        download_url=raw.get("download_url"),
        files=files,
        known_corpora=dict(raw.get("known_corpora") or {}),
        unknown_train_pids=raw.get("unknown_train_pids", "error"),
        generator=dict(raw.get("generator") or {}),
        notes=raw.get("notes", ""),
    )


# ---------------------------------------------------------------------------------------------------------- locating
def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    value = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def _locate(manifest: Manifest, spec: FileSpec, data_dir: Path | None, download: bool) -> Path | None:
    """Find a manifest file under ``data_dir`` (either ``data_dir/<subdir>/<name>`` or ``data_dir/<name>``)."""
    candidates = []
    if data_dir is not None:
        if manifest.subdir:
            candidates.append(data_dir / manifest.subdir / spec.name)
        candidates.append(data_dir / spec.name)
    for path in candidates:
        if path.is_file():
            return path
    if download and manifest.download_url:
        target = cache_dir() / "data" / (manifest.subdir or manifest.name) / spec.name
        if target.is_file():
            return target
        return _download(manifest.download_url + spec.name, target, data_dir)
    return None


def _download(url: str, target: Path, data_dir: Path | None) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        partial.unlink(missing_ok=True)
        where = f"looked in {data_dir}" if data_dir else "no --data-dir given"
        raise DataError(
            f"{target.name} is not available locally ({where}) and could not be downloaded from {url}: {err}. "
            f"Download the official Multi-CPR files yourself and pass --data-dir DIR (or set {DATA_DIR_ENV})."
        ) from err
    os.replace(partial, target)
    return target


def _checked_file(manifest: Manifest, spec: FileSpec, path: Path, verify: bool) -> dict[str, Any]:
    digest = sha256_of(path)
    if verify and spec.sha256 and digest != spec.sha256:
        raise DataError(
            f"{path}: sha256 {digest[:16]}... does not match the manifest's {spec.sha256[:16]}... for {spec.name} "
            f"(datasets/{manifest.name}.yaml). Use the official file, or pass --no-verify to use this one anyway."
        )
    return {"path": str(path), "sha256": digest}


def _check_rows(manifest: Manifest, spec: FileSpec, info: dict[str, Any], count: int, verify: bool) -> None:
    info["rows"] = count
    if verify and spec.rows is not None and count != spec.rows:
        raise DataError(
            f"{info['path']}: {count} rows, the manifest (datasets/{manifest.name}.yaml) expects {spec.rows}. "
            "Pass --no-verify to use this file anyway."
        )


# ----------------------------------------------------------------------------------------------------------- loading
def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    corpus_path: str | Path | None = None,
    with_train: bool = True,
    verify: bool = True,
    download: bool = True,
) -> Dataset:
    """Load a dataset by manifest name, or a BEIR folder (``beir:PATH``, see ``benchmark.data.beir``). ``corpus_path``
    overrides the manifest's corpus file (e.g. for the pool)."""
    if name.startswith("beir:"):
        from benchmark.data.beir import load_beir

        if corpus_path is not None:
            raise DataError("--corpus does not apply to a BEIR folder: its corpus is the folder's corpus.jsonl")
        return load_beir(name, with_train=with_train)
    manifest = load_manifest(name)
    download = download and not offline()
    if manifest.format == "generated":
        from benchmark.data.demo import materialize_demo

        directory = materialize_demo(manifest.generator)
        return _load_multicpr(manifest, directory, corpus_path, with_train, verify=False, download=False)
    directory = resolve_data_dir(data_dir)
    if directory is not None and not directory.is_dir():
        source = "--data-dir" if data_dir is not None else DATA_DIR_ENV
        raise DataError(f"{source} {directory} does not exist (or is not a folder)")
    return _load_multicpr(manifest, directory, corpus_path, with_train, verify, download)


def offline() -> bool:
    """True when the user said not to touch the network (``PROSPER_BENCH_OFFLINE`` or ``HF_HUB_OFFLINE`` set to 1)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("PROSPER_BENCH_OFFLINE", "HF_HUB_OFFLINE"))


def _load_multicpr(
    manifest: Manifest,
    data_dir: Path | None,
    corpus_path: str | Path | None,
    with_train: bool,
    verify: bool,
    download: bool,
) -> Dataset:
    paths: dict[str, Path] = {}
    for spec in manifest.files:
        if spec.role.startswith("train") and not with_train:
            continue
        if spec.role == "corpus" and corpus_path is not None:
            path = Path(corpus_path).expanduser()
            if not path.is_file():
                raise DataError(f"corpus file {path} does not exist")
        else:
            path = _locate(manifest, spec, data_dir, download)
        if path is None:
            if spec.role.startswith("train"):
                continue  # optional: e.g. Multi-CPR medical has no train.query.txt
            where = f"under {data_dir}" if data_dir else f"(no --data-dir given and {DATA_DIR_ENV} is not set)"
            raise DataError(
                f"dataset {manifest.name!r} needs {spec.name} {where}. Pass --data-dir pointing at the folder with the "
                f"official Multi-CPR files (either DIR/{manifest.subdir}/{spec.name} or DIR/{spec.name})."
            )
        paths[spec.role] = path

    files = {}
    for role, path in paths.items():
        spec = manifest.file(role)
        # A user-given corpus is not the manifest's file: its hash is recorded but not checked.
        check = verify and not (role == "corpus" and corpus_path is not None)
        files[role] = _checked_file(manifest, spec, path, check)

    skipped: dict[str, int] = {}
    corpus = read_id_text(paths["corpus"], "passage", empty="skip", skipped=skipped)
    if not corpus:
        raise DataError(f"{paths['corpus']}: the corpus is empty (no '<pid>\\t<passage>' line with text)")
    queries = read_id_text(paths["queries"], "query")
    for role, count in (("corpus", len(corpus) + skipped.get("empty passage", 0)), ("queries", len(queries))):
        _check_rows(manifest, manifest.file(role), files[role], count, verify and not (role == "corpus" and corpus_path))
    qrels = build_qrels(paths["qrels"], queries, corpus, unknown_pid="error", skipped=skipped)
    files["qrels"]["rows"] = sum(len(v) for v in qrels.values())

    train_queries: dict[str, str] = {}
    train_qrels: dict[str, dict[str, int]] = {}
    if "train_queries" in paths and "train_qrels" in paths:
        train_queries = read_id_text(paths["train_queries"], "query", empty="skip", skipped=skipped)
        _check_rows(manifest, manifest.file("train_queries"), files["train_queries"], len(train_queries), verify)
        train_qrels = build_qrels(
            paths["train_qrels"], train_queries, corpus, unknown_pid=manifest.unknown_train_pids, skipped=skipped,
            unknown_qid="error" if manifest.unknown_train_pids == "error" else "skip",
        )
        train_queries = {q: train_queries[q] for q in train_qrels}

    notes = []
    corpus_sha = files["corpus"]["sha256"]
    corpus_label = manifest.corpus_label
    if corpus_sha in manifest.known_corpora:
        notes.append(f"corpus: {manifest.known_corpora[corpus_sha]}")
    elif corpus_path is not None and corpus_sha != manifest.file("corpus").sha256:
        corpus_label = "custom"  # a user's own corpus file: never labelled as the manifest's corpus
        notes.append(f"corpus: {paths['corpus']} ({len(corpus):,} passages), the user's own file, not verified")
    if not manifest.comparable_to_paper:
        notes.append(f"{corpus_label} results: not comparable with the paper's full-corpus numbers")
    notes.extend(f"skipped {n} {reason}" for reason, n in sorted(skipped.items()))
    return Dataset(
        name=manifest.name,
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        train_queries=train_queries,
        train_qrels=train_qrels,
        corpus_label=corpus_label,
        # --no-verify lets another file through, never into the paper's comparison
        comparable_to_paper=(manifest.comparable_to_paper and corpus_label == manifest.corpus_label
                             and manifest.file("corpus").rows in (None, files["corpus"]["rows"])),
        files=files,
        skipped=skipped,
        notes=notes,
    )
