"""What a ``run`` will make, checked before any data is read: the retrievers named, the settings, each row's name.

Every refusal is a :class:`PlanError` whose message is the whole ``error:`` line: a misspelt name or setting must cost
the user one line, not a loaded dataset and a traceback.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.records.rows import DEFAULT_K, meaningful_overrides, row_name
from benchmark.registry import RetrieverSpec, check_overrides, deep_merge, parse_overrides


class PlanError(ValueError):
    """A run that cannot start; the message says why and what to give instead."""


@dataclass
class RunPlan:
    names: list[str]  # registered retrievers, in the order given
    overrides: dict[str, Any]  # --set values merged with the own-model options
    rows: dict[str, str]  # retriever -> the row its result is filed under


def plan_run(registry: dict[str, RetrieverSpec], names: list[str], *, all_rows: bool = False,
             settings: list[str] = (), own: dict[str, Any] | None = None, k: int = DEFAULT_K,
             name: str | None = None) -> RunPlan:
    """Check a run request against the registry (see the module docstring). ``own`` holds the your-own-model options
    (``model_id``, ``model_path``, ``pooling``, prefixes); ``name`` is ``--name``."""
    names = [n for n, spec in registry.items() if not spec.template] if all_rows else list(names)
    if not names:
        raise PlanError("name one or more retrievers, or pass --all (see 'python -m benchmark list')")
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise PlanError(f"unknown retriever(s) {unknown}; known: {', '.join(registry)}")
    own = {key: value for key, value in (own or {}).items() if value is not None}
    templates = [n for n in names if registry[n].template]
    if templates and not (own.get("model_id") or own.get("model_path")):
        raise PlanError(f"{templates[0]} is a template for your own model: give --model-id ORG/NAME or "
                        "--model-path DIR")
    if own.get("model_path") and not own.get("model_id"):
        own["model_id"] = Path(own["model_path"]).expanduser().resolve().name  # the folder names the model
    if name is not None and len(names) != 1:
        raise PlanError("--name names one row: give exactly one retriever with it")
    overrides = deep_merge(parse_overrides(list(settings)), own)
    for retriever in names:  # every key and value checked against the config dataclasses before any work
        check_overrides(retriever, registry[retriever].build(overrides).config, overrides)
    try:
        rows = {n: row_name(n, overrides, k, name, dataclasses.asdict(registry[n].build().config)) for n in names}
    except ValueError as err:
        raise PlanError(str(err)) from None
    clash = [r for n, r in rows.items() if r in registry and (r != n or meaningful_overrides(overrides) or
                                                              k != DEFAULT_K)]
    if clash:
        raise PlanError(f"--name {clash[0]} is a registered retriever's row; a variant (other settings, another k) "
                        "needs a name of its own")
    return RunPlan(names, overrides, rows)
