"""The one schema of a gateway's configuration, and what reads it.

    issues = settings.check(document, settings.HUB)      # what the hub signs
    values, issues = settings.resolve(document)          # the gateway: defaults filled in
    doc = settings.merge(base, layer)                    # the one layer merge

Types, defaults, limits, units, which settings wait for a restart and which the hub may not
set are declared once (`protocols/settings/_schema.py`); the hub's validation (fleet), the
gateway's loader (edge.config), the layer merge, docs/configuration.md's tables and the JSON
Schema of the hub's API all read that declaration. Standard library only: a gateway installs
no validation library for it (docs/configuration.md says why).
"""

from protocols.settings import serial
from protocols.settings._export import json_schema, markdown_table, render_docs
from protocols.settings._merge import effective, for_gateway, merge
from protocols.settings._schema import (
    AGGREGATES,
    DEFAULT_DATA_DIR,
    SCHEMA,
    SECTIONS,
    ble_backend,
    check_id,
    is_tls,
    parse_broker,
)
from protocols.settings._types import (
    GATEWAY,
    HUB,
    INVALID,
    LAYER,
    Field,
    Issue,
    Table,
    Walk,
    show,
)


def resolve(
    document: "dict[str, object]", mode: "str" = GATEWAY
) -> "tuple[dict[str, object], list[Issue]]":
    """(the document with every default filled in and units converted, every problem).
    The values are usable only when there is no problem."""
    walk = Walk(mode)
    values = SCHEMA.read(walk, "", document, mode == LAYER)
    if not isinstance(values, dict):
        values = {}
    return values, walk.issues


def resolve_table(
    name: "str", data: "object", where: "str", mode: "str" = GATEWAY
) -> "tuple[dict[str, object], list[Issue]]":
    """One table of `SECTIONS` (``serial``: a `[[serial]]` table, ``ble.devices``...) checked
    with its rules, its issues named from `where`: what a source's `from_mapping` reads."""
    for section_name, table in SECTIONS:
        if section_name == name:
            walk = Walk(mode)
            values = table.read(walk, where, data, False)
            return (values if isinstance(values, dict) else {}), walk.issues
    raise KeyError(name)


def check(document: "dict[str, object]", mode: "str" = HUB) -> "list[Issue]":
    """Every problem of `document` (empty when it is valid) in `mode` (GATEWAY: the gateway's
    whole file; HUB: an effective document the hub signs; LAYER: one layer)."""
    return resolve(document, mode)[1]


def section(document: "dict[str, object]", name: "str") -> "dict[str, object]":
    """The values of one top-level table of `document` (``apply``...), normalized, the
    default for what is absent or wrong (a signed document was checked by the hub)."""
    field = SCHEMA.field(name)
    if not isinstance(field.type, Table):
        raise KeyError(name)
    out = {f.name: f.default for f in field.type.fields}
    raw = document.get(name)
    if isinstance(raw, dict):
        values = field.type.read(Walk(HUB), name, raw, False)
        if isinstance(values, dict):
            out.update({k: v for k, v in values.items() if v is not INVALID})
    return out


def defaults(section: "str") -> "dict[str, object]":
    """The default values of one section (``buffer``, ``uplink``, ``sensors.report``, a name
    of `SECTIONS`), normalized (seconds, bytes)."""
    for name, table in SECTIONS:
        if name == section:
            return {f.name: f.default for f in table.fields}
    raise KeyError(section)


__all__ = [
    "AGGREGATES",
    "DEFAULT_DATA_DIR",
    "GATEWAY",
    "HUB",
    "INVALID",
    "LAYER",
    "SCHEMA",
    "SECTIONS",
    "Field",
    "Issue",
    "Table",
    "ble_backend",
    "check",
    "check_id",
    "defaults",
    "effective",
    "for_gateway",
    "is_tls",
    "json_schema",
    "markdown_table",
    "merge",
    "parse_broker",
    "render_docs",
    "resolve",
    "resolve_table",
    "section",
    "serial",
    "show",
]
