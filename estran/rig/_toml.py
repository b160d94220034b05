"""TOML text for the configuration files a rig writes (a gateway's edge.toml): values, keys,
tables. The standard library reads TOML (tomllib) but does not write it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def toml_value(value: object) -> str:
    """A TOML value (strings, numbers, booleans, arrays, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"no TOML for {value!r}")
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # JSON string escapes are TOML basic-string escapes
    if isinstance(value, Mapping):
        items = ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def toml_table(header: str, table: Mapping[str, object]) -> list[str]:
    """`[header]` (or `[[header]]`) and its `key = value` lines, then a blank line."""
    lines = [header]
    lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return [*lines, ""]


__all__ = ["toml_key", "toml_table", "toml_value"]
