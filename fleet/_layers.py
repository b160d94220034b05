"""Layered configuration: fleet, then group, then gateway; and the diff between two documents.

Merge semantics (docs/fleet.md says the same):

- tables (dicts) merge key by key, recursively: a lower layer only names what it changes;
- anything else (numbers, strings, booleans, and lists, e.g. `serial` ports) replaces the
  value of the layer above as a whole: lists are never merged item by item;
- an explicit null deletes the key (and the whole table under it) inherited from above; the
  effective document never holds a null.

The merge itself is `protocols.settings.merge`: the gateway lays the hub's document over its
own file with the same function.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping

from protocols import settings

Document = dict[str, object]


def merge(base: Mapping[str, object], layer: Mapping[str, object]) -> Document:
    """`base` with `layer` laid over it (neither is modified): `protocols.settings.merge`,
    the one merge the gateway uses too."""
    return settings.merge(dict(base), dict(layer))


def effective(layers: Iterable[Mapping[str, object]]) -> Document:
    """The document the gateway runs: the layers merged in order (fleet, group, gateway)."""
    return settings.effective([dict(layer) for layer in layers])


def flatten(doc: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """{"a.b": 1, "c": [..]}: tables become dotted paths; lists and scalars are leaves."""
    out: dict[str, object] = {}
    for key, value in doc.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def diff(
    old: Mapping[str, object], new: Mapping[str, object]
) -> list[tuple[str, str, object, object]]:
    """[(op, path, old, new)] with op "+" (added), "-" (removed) or "~" (changed), by path."""
    a, b = flatten(old), flatten(new)
    out: list[tuple[str, str, object, object]] = []
    for path in sorted(a.keys() | b.keys()):
        if path not in b:
            out.append(("-", path, a[path], None))
        elif path not in a:
            out.append(("+", path, None, b[path]))
        elif a[path] != b[path]:
            out.append(("~", path, a[path], b[path]))
    return out


def show_diff(changes: list[tuple[str, str, object, object]]) -> str:
    lines = []
    for op, path, old, new in changes:
        if op == "+":
            lines.append(f"+ {path} = {json.dumps(new)}")
        elif op == "-":
            lines.append(f"- {path} (was {json.dumps(old)})")
        else:
            lines.append(f"~ {path}: {json.dumps(old)} -> {json.dumps(new)}")
    return "\n".join(lines)


def changed_sections(old: Mapping[str, object], new: Mapping[str, object]) -> frozenset[str]:
    """The top-level sections that differ (what a gateway re-applies)."""
    return frozenset(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def set_path(layer: Document, path: str, value: object) -> Document:
    """A copy of `layer` with the dotted `path` set to `value` (None: a deletion marker)."""
    out = copy.deepcopy(layer)
    keys = path.split(".")
    node = out
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value
    return out


def unset_path(layer: Document, path: str) -> Document:
    """A copy of `layer` without the dotted `path` (inherited again from the layer above);
    tables left empty are removed."""
    out = copy.deepcopy(layer)
    keys = path.split(".")
    trail: list[dict[str, object]] = [out]
    for key in keys[:-1]:
        child = trail[-1].get(key)
        if not isinstance(child, dict):
            return out
        trail.append(child)
    trail[-1].pop(keys[-1], None)
    for depth in range(len(keys) - 1, 0, -1):  # prune the tables left empty
        if trail[depth]:
            break
        del trail[depth - 1][keys[depth - 1]]
    return out


__all__ = [
    "Document",
    "changed_sections",
    "diff",
    "effective",
    "flatten",
    "merge",
    "set_path",
    "show_diff",
    "unset_path",
]
