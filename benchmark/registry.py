"""The retriever registry: names -> (class, config), read from ``benchmark/configs/retrievers.yaml``."""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from retrievers.base import Retriever
from retrievers.options import check_field

REGISTRY_FILE = Path(__file__).with_name("configs") / "retrievers.yaml"


@dataclass(frozen=True)
class RetrieverSpec:
    name: str
    class_path: str
    description: str = ""
    paper_row: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    template: bool = False  # a family for the user's own model: needs --model-id / --model-path, not in --all

    def retriever_class(self) -> type[Retriever]:
        module, _, attr = self.class_path.partition(":")
        return getattr(importlib.import_module(module), attr)

    def build(self, overrides: dict[str, Any] | None = None) -> Retriever:
        """The retriever with its registered config and ``overrides``; a key or value that does not fit the config
        dataclass (its name, its type) is a :class:`ConfigError` before anything is built."""
        cls = self.retriever_class()
        values = deep_merge(self.config, overrides or {})
        checked = check_values(cls.config_class, values, where=self.name)
        config = cls.config_class(**checked)
        if hasattr(config, "check"):  # settings that contradict each other
            try:
                config.check()
            except ValueError as err:
                raise ConfigError(f"{self.name}: {err}") from err
        return cls(config)


class ConfigError(ValueError):
    """A config key that does not exist, or a value of the wrong type: one line, naming the key and what fits."""


def check_values(config_class: type, values: dict[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    """``values`` checked against ``config_class``'s fields, types and declared choices and ranges
    (``retrievers.options``; nested dataclasses recursively); lists become tuples where a tuple is declared, ints
    become floats where a float is."""
    import difflib
    import typing

    fields = {f.name: f for f in dataclasses.fields(config_class)}
    hints = typing.get_type_hints(config_class)
    checked = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise ConfigError(f"{where}: unknown config key {name!r}{hint}; {config_class.__name__} keys: "
                              f"{', '.join(sorted(fields))}")
        expected = hints[key]
        if dataclasses.is_dataclass(expected):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {name} is a group of settings ({expected.__name__}); set its keys, e.g. "
                                  f"--set {name}.{dataclasses.fields(expected)[0].name}=...")
            checked[key] = check_values(expected, value, where, prefix=f"{name}.")
        else:
            checked[key] = _coerce(value, expected, name, where)
            problem = check_field(name, checked[key], fields[key].metadata)  # declared choices and ranges
            if problem:
                raise ConfigError(f"{where}: {problem}")
    return checked


def _coerce(value: Any, expected: Any, name: str, where: str) -> Any:
    import types
    import typing

    options = typing.get_args(expected) if isinstance(expected, types.UnionType) else (expected,)
    for option in options:
        if option is type(None) and value is None:
            return None
        origin = typing.get_origin(option)
        if origin is tuple and isinstance(value, list | tuple):
            item = typing.get_args(option)[0]
            if all(isinstance(v, item) and not isinstance(v, bool) for v in value):
                return tuple(value)
        elif option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        elif option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        elif option in (bool, str) and isinstance(value, option):
            return value
    wanted = " or ".join("null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
    raise ConfigError(f"{where}: {name} expects {wanted}, got {value!r} ({type(value).__name__})")


def check_overrides(name: str, config: Any, overrides: dict[str, Any]) -> None:
    """What can only be judged against the built config: a ``--set`` key of a training preset that will not run
    (``train.*`` when pretrained weights load and ``train_pretrained`` trains, or the reverse) is refused, not ignored."""
    from retrievers.resources.model_loading import check_preset_overrides

    try:
        check_preset_overrides(name, config, overrides)
    except ValueError as err:
        raise ConfigError(str(err)) from err


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
            raise ConfigError(f"--set expects KEY=VALUE (e.g. --set train.epochs=1), got {item!r}")
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item}: {part} was set to a value and cannot also have keys")
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item}: the value is not valid YAML ({err.problem})") from err
    return result


def load_registry(path: Path = REGISTRY_FILE) -> dict[str, RetrieverSpec]:
    """The registry; an entry with ``base: OTHER`` is OTHER's class and config with its own ``config`` merged over it
    (an ablation is one option away from its row, written as that option only)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}

    def resolved(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
        entry = raw[name]
        base = entry.get("base")
        if base is None:
            return {"class": entry["class"], "config": dict(entry.get("config") or {})}
        if base not in raw or base in seen:
            raise ConfigError(f"{path}: {name}: base {base!r} is {'not registered' if base not in raw else 'a cycle'}")
        parent = resolved(base, (*seen, name))
        return {"class": entry.get("class", parent["class"]),
                "config": deep_merge(parent["config"], dict(entry.get("config") or {}))}

    specs = {}
    for name, entry in raw.items():
        spec = resolved(name)
        specs[name] = RetrieverSpec(name, spec["class"], entry.get("description", ""), entry.get("paper_row"),
                                    spec["config"], bool(entry.get("template", False)))
    return specs


def get_spec(name: str) -> RetrieverSpec:
    registry = load_registry()
    if name not in registry:
        raise KeyError(f"unknown retriever {name!r}; known: {', '.join(registry)}")
    return registry[name]
