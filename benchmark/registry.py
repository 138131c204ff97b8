"""The retriever registry: names -> (class, config), read from ``benchmark/configs/retrievers.yaml``."""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from retrievers.base import Retriever

REGISTRY_FILE = Path(__file__).with_name("configs") / "retrievers.yaml"


@dataclass(frozen=True)
class RetrieverSpec:
    name: str
    class_path: str
    description: str = ""
    paper_row: str | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def retriever_class(self) -> type[Retriever]:
        module, _, attr = self.class_path.partition(":")
        return getattr(importlib.import_module(module), attr)

    def build(self, overrides: dict[str, Any] | None = None) -> Retriever:
        cls = self.retriever_class()
        values = deep_merge(self.config, overrides or {})
        known = {f.name for f in dataclasses.fields(cls.config_class)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{self.name}: unknown config keys {unknown}; {cls.config_class.__name__} has {sorted(known)}")
        return cls(cls.config_class(**values))


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied; nested dicts (e.g. ``train``, ``scratch``) merge key by key."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["train.epochs=1", "lfw_query=64"]`` -> ``{"train": {"epochs": 1}, "lfw_query": 64}`` (values read as YAML)."""
    result: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return result


def load_registry(path: Path = REGISTRY_FILE) -> dict[str, RetrieverSpec]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {
        name: RetrieverSpec(name, entry["class"], entry.get("description", ""), entry.get("paper_row"),
                            dict(entry.get("config") or {}))
        for name, entry in raw.items()
    }


def get_spec(name: str) -> RetrieverSpec:
    registry = load_registry()
    if name not in registry:
        raise KeyError(f"unknown retriever {name!r}; known: {', '.join(registry)}")
    return registry[name]
