"""The one layer merge: the hub's layers (fleet, group, gateway) and the gateway's file with
the hub's document laid over it, by the same rules (docs/fleet.md):

- tables (dicts) merge key by key, recursively: a lower layer names only what it changes;
- anything else (numbers, strings, booleans, and lists, e.g. `serial` ports) replaces the
  value of the layer above as a whole: lists are never merged item by item;
- an explicit null deletes the key (and the whole table under it) inherited from above;
  the result never holds a null in a table, at any depth (tables inside lists included):
  what the hub signs is what the gateway reads.
"""

from protocols.settings._schema import SCHEMA
from protocols.settings._types import Table


def _copy(value: "object") -> "object":
    """A deep copy without the nulls of its tables (a null deletes; it is never a value)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value


def merge(base: "dict[str, object]", layer: "dict[str, object]") -> "dict[str, object]":
    """`base` with `layer` laid over it (neither is modified)."""
    out = {k: _copy(v) for k, v in base.items() if v is not None}
    for key, value in layer.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)  # type: ignore[arg-type]
        else:
            out[key] = _copy(value)
    return out


def effective(layers: "list[dict[str, object]]") -> "dict[str, object]":
    """The layers merged in order (fleet, group, gateway)."""
    out = {}  # type: dict[str, object]
    for layer in layers:
        out = merge(out, layer)
    return out


def for_gateway(document: "dict[str, object]") -> "dict[str, object]":
    """The part of a hub document that is laid over the gateway's own file: without the
    hub-only tables (`apply`: the transaction's own settings) and without the settings
    that belong to the gateway alone (the hub's validation refuses them; a gateway never
    takes them from the hub)."""
    out = {}  # type: dict[str, object]
    for key, value in document.items():
        try:
            field = SCHEMA.field(key)
        except KeyError:
            out[key] = value  # unknown: the gateway's loader names it
            continue
        if isinstance(field.type, Table) and field.type.hub_only:
            continue
        if isinstance(field.type, Table) and isinstance(value, dict):
            local = {f.name for f in field.type.fields if f.local}
            out[key] = {k: v for k, v in value.items() if k not in local}
        else:
            out[key] = value
    return out


__all__ = ["effective", "for_gateway", "merge"]
