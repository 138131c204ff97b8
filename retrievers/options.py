"""Declared choices and ranges of config fields, checked in one place.

A config dataclass declares what a field may hold next to its default - ``pooling: str = choice("last", "max")``,
``epochs: int = at_least(5, 1)``, ``lfw_query: int | None = window(256)`` - and :func:`check_field` is the one check,
run by the registry on every registered and ``--set`` value before anything is built (so ``--set backbone=gpt9``,
``--set lfw_query=0`` or ``--set train.epochs=0`` is one line, exit 2, before any data is read), and by
:func:`check_config` on a finished config object (the trainer checks its own).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


def choice(default: Any, *others: Any) -> Any:
    """A field whose value is one of ``default`` and ``others``."""
    return dataclasses.field(default=default, metadata={"choices": (default, *others)})


def at_least(default: Any, minimum: float, optional: bool = False) -> Any:
    """A number >= ``minimum`` (``optional``: or None)."""
    return dataclasses.field(default=default, metadata={"min": minimum, "optional": optional})


def above(default: Any, minimum: float) -> Any:
    """A number strictly greater than ``minimum`` (a learning rate, a scale)."""
    return dataclasses.field(default=default, metadata={"above": minimum})


def between(default: Any, low: float, high: float) -> Any:
    return dataclasses.field(default=default, metadata={"min": low, "max": high})


def window(default: int | None) -> Any:
    """A Lexical Focusing Window size: None (no window) or at least 1 - 0 is not "no window", it is refused."""
    return dataclasses.field(default=default, metadata={"min": 1, "optional": True})


def check_field(name: str, value: Any, metadata: Any) -> str | None:
    """None when ``value`` fits the field's declared choices and range; otherwise what is wrong, in words."""
    if not metadata:
        return None
    if "choices" in metadata and value not in metadata["choices"]:
        import difflib

        options = [str(c) for c in metadata["choices"]]
        close = difflib.get_close_matches(str(value), options, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{name} must be one of {', '.join(options)}, not {value!r}{hint}"
    if value is None:
        if "min" in metadata and not metadata.get("optional", False):
            return f"{name} needs a value"
        return None
    numbers = value if isinstance(value, tuple | list) else (value,)
    for number in numbers:
        if not isinstance(number, int | float) or isinstance(number, bool):
            continue
        if isinstance(number, float) and not math.isfinite(number):
            return f"{name} must be a finite number, not {number!r}"
        if "min" in metadata and number < metadata["min"]:
            nothing = " or null (none)" if metadata.get("optional") else ""
            return f"{name} must be at least {metadata['min']}{nothing}, not {number!r}"
        if "max" in metadata and number > metadata["max"]:
            return f"{name} must be at most {metadata['max']}, not {number!r}"
        if "above" in metadata and not number > metadata["above"]:
            return f"{name} must be greater than {metadata['above']}, not {number!r}"
    return None


def check_config(config: Any, prefix: str = "") -> None:
    """Raise ``ValueError`` naming the first field of ``config`` (nested dataclasses too) that breaks its declaration."""
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        if dataclasses.is_dataclass(value):
            check_config(value, f"{prefix}{spec.name}.")
            continue
        problem = check_field(f"{prefix}{spec.name}", value, spec.metadata)
        if problem:
            raise ValueError(problem)
