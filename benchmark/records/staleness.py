"""Whether the code behind a result has changed since it ran: a row's dependency files and the commits since.

A result is **stale** when a file its row depends on (the retriever's module and everything it imports from this
repository, modules it names for importlib included, plus the data, protocol, evaluation and runner modules) changed
in a commit after the one it ran at, or had uncommitted changes when it ran - or when its model came from a cache
entry built by code that has changed since (or that records no code version). A commit listed in
``results/neutral-changes.yaml`` (with why it computes the same and the rerun that showed it) does not count.
"""

from __future__ import annotations

import ast
import functools
import re
import subprocess
from pathlib import Path
from typing import Any

from benchmark import REPO_ROOT

#: Modules whose code every result depends on, besides its retriever's own import closure.
SHARED_DEPENDENCIES = ("benchmark/data/datasets.py", "benchmark/data/files.py", "benchmark/data/beir.py",
                       "benchmark/data/demo.py", "benchmark/data/protocol.py", "benchmark/evaluation/measures.py",
                       "benchmark/runs/runner.py")
#: A string naming a module of this repository and an attribute, as importlib callers spell it.
LOADED_BY_NAME = re.compile(r"^(retrievers|benchmark)(\.\w+)+:\w+$")


# ------------------------------------------------------------------------------------------------------ staleness
@functools.lru_cache(maxsize=64)
def module_closure(module: str) -> tuple[str, ...]:
    """Repository files ``module`` imports, directly or not: ``import``/``from`` statements anywhere, and modules
    named in a ``"package.module:attr"`` string (what importlib loads by name)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if path is None or path in seen:
            continue
        seen.add(path)
        tree = ast.parse((REPO_ROOT / path).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                todo.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                todo.append(node.module)
                todo.extend(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and LOADED_BY_NAME.match(node.value):
                todo.append(node.value.partition(":")[0])  # importlib by name: "retrievers.resources.e5_port:build_port"
    return tuple(sorted(seen))


def _module_file(name: str) -> str | None:
    if name.split(".")[0] not in ("retrievers", "benchmark"):
        return None
    base = REPO_ROOT / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return str(candidate.relative_to(REPO_ROOT))
    return None


def dependencies(class_path: str) -> tuple[str, ...]:
    """The files a row's results depend on: its retriever's import closure and the shared data/evaluation code."""
    module = class_path.partition(":")[0]
    return tuple(sorted(set(module_closure(module)) | {p for p in SHARED_DEPENDENCIES if (REPO_ROOT / p).exists()}))


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout


NEUTRAL_CHANGES = REPO_ROOT / "results" / "neutral-changes.yaml"


@functools.lru_cache(maxsize=8)
def neutral_commits(path: Path = NEUTRAL_CHANGES) -> frozenset[str]:
    """Full hashes of the commits declared not to change any result. Each entry must say ``why`` and give the
    ``evidence`` (the reruns that came out equal); an entry without them, or a short hash, is refused."""
    import yaml

    if not Path(path).exists():
        return frozenset()
    entries = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or []
    commits = []
    for i, entry in enumerate(entries):
        commit = str((entry or {}).get("commit", ""))
        if not re.fullmatch(r"[0-9a-f]{40}", commit) or not entry.get("why") or not entry.get("evidence"):
            raise ValueError(f"{path}: entry {i + 1} needs a full 40-digit commit, a 'why' and an 'evidence'")
        commits.append(commit)
    return frozenset(commits)


@functools.lru_cache(maxsize=256)
def _changed_since(commit: str, files: tuple[str, ...], neutral: frozenset[str] = frozenset()
                   ) -> tuple[str, ...] | None:
    """Files of ``files`` changed in commits after ``commit``, leaving out a file whose every change since came from
    a ``neutral`` commit (None: the commit is unknown here, e.g. shallow)."""
    if _git("cat-file", "-e", f"{commit}^{{commit}}") is None:
        return None
    out = _git("diff", "--name-only", commit, "HEAD", "--", *files)
    if out is None:
        return None
    changed = sorted(line for line in out.splitlines() if line)
    if neutral:
        def by_neutral_commits_only(path: str) -> bool:
            log = _git("log", "--format=%H", f"{commit}..HEAD", "--", path)
            return log is not None and set(log.split()) <= neutral

        changed = [path for path in changed if not by_neutral_commits_only(path)]
    return tuple(changed)


def staleness(payload: dict[str, Any]) -> str | None:
    """None when the code behind a result is unchanged since it ran; else why it is stale, naming the files."""
    if payload.get("external"):
        return None  # made elsewhere: no code of ours behind it
    if payload.get("fusion"):  # stale when a part's code changed since the part ran
        reasons = [why for part in payload["fusion"].get("parts", [])
                   if (why := staleness({"retriever": part.get("retriever", {}),
                                         "environment": {"git": part.get("git", {})}}))]
        return reasons[0] if reasons else None
    class_path = payload.get("retriever", {}).get("class")
    git = payload.get("environment", {}).get("git", {})
    commit = git.get("commit")
    if not class_path or not commit:
        return "stale (no commit recorded)"
    files = dependencies(class_path)
    dirty = sorted(set(git.get("changed_files") or []) & set(files)) if git.get("dirty") else []
    if dirty:
        return f"stale (ran with uncommitted changes to: {', '.join(dirty)})"
    built = model_code_problem(payload, files)
    if built:
        return built
    changed = _changed_since(commit, files, neutral_commits())
    if changed is None:
        return f"unknown (commit {commit[:10]} is not in this checkout's history)"
    if changed:
        own = _module_file(class_path.partition(":")[0])  # the row's own module first: the change a reader looks for
        changed = sorted(changed, key=lambda path: (path != own, path))
        shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
        return f"stale (changed since: {shown})"
    return None


def model_code_problem(payload: dict[str, Any], files: tuple[str, ...]) -> str | None:
    """Why a result whose model came from the cache rests on other code than its run's (None: it does not): the
    entry records no code version, was built with uncommitted changes, or by a commit after which its code changed."""
    index = payload.get("index") or {}
    if "built_with" not in index:
        return ("stale (its model was reused from a cache entry of unknown code)" if index.get("reused") else None)
    entries = index["built_with"] if isinstance(index["built_with"], list) else [index["built_with"]]
    for entry in entries:
        if not entry or not entry.get("commit"):
            return "stale (its model was reused from a cache entry that records no code version)"
        if entry.get("dirty") and set(entry.get("changed_files") or []) & set(files):
            return "stale (its model was built with uncommitted changes)"
        changed = _changed_since(entry["commit"], files, neutral_commits())
        if changed:
            return f"stale (its model was built at {entry['commit'][:10]}; changed since: {', '.join(changed[:6])})"
    return None


def stale_results(results: Path, datasets: list[str] | None = None) -> list[tuple[str, str, Path, str]]:
    """Every current result under ``results`` whose code changed since it ran: (dataset, row, file, why)."""
    from benchmark.records.results import current_results, load_result, result_datasets

    found = []
    for dataset in datasets or result_datasets(Path(results)):
        current, _ = current_results(Path(results), dataset)
        for row, path in sorted(current.items()):
            why = staleness(load_result(path))
            if why and why.startswith("stale"):
                found.append((dataset, row, path, why))
    return found
