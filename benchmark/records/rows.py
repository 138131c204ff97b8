"""What a result is a result *of*: its row name, whether it is current, and whether the code behind it has changed.

A **row** is a registered retriever run as registered, or a variant of it: ``run prosper --set lfw_query=64`` is not
the ``prosper`` row and must never be reported as it. Every result records ``retriever.registered_as`` (the registry
entry) and ``retriever.overrides`` (the ``--set`` values), and is filed under its row name:

- the registered name when nothing that can change the result was overridden (:data:`NEUTRAL_FIELDS` only: how an
  exact index is searched, how many queries are timed, where and with how many threads it ran) and ``k`` is 1000;
- ``--name NAME`` when given;
- otherwise a name derived from the overrides, ``prosper+lfw_query=64`` (a path is shown by its last part, a long list
  by a hash: ``prosper+3f2a9c1d``).

A result is **current** when its schema is current and rebuilding its row from today's registry with its recorded
overrides gives the config it ran with (up to the neutral fields). It is **stale** when a file its row depends on (the
retriever's module and everything it imports from this repository, plus the data, protocol and evaluation modules)
changed in a commit after the one it ran at, or had uncommitted changes when it ran. A commit listed in
``results/neutral-changes.yaml`` (with why it computes the same and the rerun that showed it) does not count: a fix
such as a race in writing the cache would otherwise mark every committed result stale until all are rerun.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

#: Config fields that cannot change a result's metrics: how an exact index is searched, how many queries are timed,
#: where the model ran and on how many threads, how many texts are encoded at once.
NEUTRAL_FIELDS = ("algorithm", "latency_queries", "device", "threads", "encode_batch_size")
#: What else may differ from the registered config when a result is graded against a *paper* row: where the weights
#: are (the paper's model, from a folder) and how the GPU run was made to fit (precision, checkpointing, GradCache).
PAPER_NEUTRAL = NEUTRAL_FIELDS + ("model_path", "tokenizer_path", "precision", "gradient_checkpointing",
                                  "train_pretrained.grad_cache_chunk")
DEFAULT_K = 1000
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=,@-]{0,99}$")


def own_name_problem(name: str, registry: dict[str, Any]) -> str | None:
    """Why ``name`` cannot name a row of its own (an external run, a hybrid), or None: a registered retriever's name
    would file the result as that row and the report would show it as the registered one."""
    if not NAME.match(name):
        return f"--name {name!r}: use letters, digits and . _ + = , @ -"
    if name in registry:
        return f"--name {name!r} is a registered retriever: give the row a name of its own"
    return None


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"epochs": 1}}`` -> ``{"train.epochs": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def meaningful_overrides(overrides: dict[str, Any] | None, neutral: tuple[str, ...] = NEUTRAL_FIELDS
                         ) -> dict[str, Any]:
    """The flattened overrides that can change a result (the neutral ones dropped)."""
    return {k: v for k, v in flatten(overrides or {}).items() if k not in neutral}


def _short(value: Any) -> str:
    if isinstance(value, str) and ("/" in value or "\\" in value):
        value = Path(value.rstrip("/\\")).name or value
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", text).strip("_") or "_"


def row_name(registered: str, overrides: dict[str, Any] | None = None, k: int = DEFAULT_K,
             name: str | None = None, registered_config: dict[str, Any] | None = None) -> str:
    """The row a run is filed and reported under (see the module docstring). With ``registered_config``, an override
    that sets a field to its registered value changes nothing and does not rename the row."""
    if name is not None:
        if not NAME.match(name):
            raise ValueError(f"--name {name!r}: use letters, digits and . _ + = , @ - (at most 100 characters)")
        return name
    changes = meaningful_overrides(overrides)
    if registered_config is not None:
        flat = flatten(json.loads(json.dumps(registered_config, default=str)))
        changes = {key: value for key, value in changes.items()
                   if key not in flat or json.loads(json.dumps(value, default=str)) != flat[key]}
    if k != DEFAULT_K:
        changes["k"] = k
    if not changes:
        return registered
    label = ",".join(f"{key}={_short(value)}" for key, value in sorted(changes.items()))
    if len(label) > 60:
        label = hashlib.sha256(json.dumps(changes, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{registered}+{label}"


def result_config(config: dict[str, Any], neutral: tuple[str, ...] = NEUTRAL_FIELDS) -> dict[str, Any]:
    """A config (as a dict) without the fields that cannot change its results, JSON-normalised (tuples as lists)."""
    flat = {k: v for k, v in flatten(json.loads(json.dumps(config, default=str))).items() if k not in neutral}
    return flat


def same_result_config(a: dict[str, Any], b: dict[str, Any], neutral: tuple[str, ...] = NEUTRAL_FIELDS) -> bool:
    return result_config(a, neutral) == result_config(b, neutral)


# ------------------------------------------------------------------------------------------------------- currency
def registered_as(payload: dict[str, Any]) -> str:
    retriever = payload.get("retriever", {})
    return retriever.get("registered_as") or retriever.get("name", "")


def currency(payload: dict[str, Any], registry: dict[str, Any]) -> str | None:
    """None when ``payload`` is a result of its row's *current* config; otherwise why it is superseded."""
    from benchmark.records.schema import SCHEMA_VERSION
    from benchmark.registry import ConfigError

    if payload.get("external"):
        return None  # an external run (eval --name) is what it is: no config of ours to drift from
    if payload.get("fusion"):  # a hybrid row is current while every part's result is
        for part in payload["fusion"].get("parts", []):
            why = currency({"schema_version": payload.get("schema_version"), "retriever": part.get("retriever", {})},
                           registry)
            if why is not None:
                return f"its part {part.get('row')}: {why}"
        return None
    if payload.get("schema_version", 0) != SCHEMA_VERSION:
        return f"result schema {payload.get('schema_version', 0)}, current {SCHEMA_VERSION}"
    name = registered_as(payload)
    if name not in registry:
        return f"{name!r} is no longer a registered retriever"
    overrides = payload.get("retriever", {}).get("overrides") or {}
    try:
        config = registry[name].build(overrides).config
    except (ConfigError, TypeError, ValueError) as err:
        return f"its overrides no longer apply ({err})"
    import dataclasses

    if not same_result_config(dataclasses.asdict(config), payload.get("retriever", {}).get("config") or {}):
        return "the registered config changed since"
    return None
