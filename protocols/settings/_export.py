"""The schema as others read it: JSON Schema (the hub's API publishes it) and the Markdown
tables of docs/configuration.md (generated; a test fails when the page is stale)."""

from protocols.settings._schema import SCHEMA, SECTIONS
from protocols.settings._types import DEFAULTS, Field, Table

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(hub: "bool" = True) -> "dict[str, object]":
    """The JSON Schema of a configuration document: the hub's (`hub`: without what belongs
    to the gateway alone) or the gateway's file. Rules across fields (a Modbus address by
    protocol, a sensor table that no device reads...) are not in it: the hub's validation
    applies them (`PUT /api/v1/fleet/config/...` names every problem)."""
    out = SCHEMA.schema(hub)
    out = dict(out)
    out["$schema"] = JSON_SCHEMA_DIALECT
    out["title"] = "Estran %s configuration" % ("desired (hub)" if hub else "gateway")
    out["description"] = (
        "Generated from protocols.settings, the one schema of the configuration. Durations "
        'are seconds or strings with a unit ("30s", "5min"); sizes bytes or "256 MiB". '
        "Cross-field rules are checked by the hub and the gateway, not expressed here."
    )
    return out


def _default(f: "Field") -> "str":
    if f.default_doc:
        return f.default_doc
    if f.required:
        return "required"
    value = f.default
    if value is None or value is DEFAULTS:
        return "none"
    if isinstance(value, bool):
        return "`%s`" % ("true" if value else "false")
    if isinstance(value, float) and value == int(value):
        value = int(value)
    if isinstance(value, int) and f.unit == "bytes":
        for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value >= scale and value % scale == 0:
                return '`"%d %s"`' % (value // scale, unit)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return "none"
    return "`%s`" % value


def _type(f: "Field") -> "str":
    words = f.type.describe()
    if f.unit and f.unit not in words:
        words += " (%s)" % f.unit
    return words


def markdown_table(table: "Table") -> "str":
    """One section's settings as a Markdown table."""
    lines = [
        "| key | type | default | applies | hub | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for f in table.fields:
        applies = "restart" if f.restart else "reload"
        hub = "no: " + f.local if f.local else "yes"
        meaning = f.doc.replace("|", "\\|").replace("\n", " ")
        lines.append(
            "| `%s` | %s | %s | %s | %s | %s |"
            % (f.name, _type(f).replace("|", "\\|"), _default(f), applies, hub, meaning)
        )
    return "\n".join(lines)


BEGIN = "<!-- settings:%s (generated from protocols/settings: estran settings docs --write) -->"
END = "<!-- /settings:%s -->"


def render_docs(page: "str") -> "str":
    """`page` with every generated table (between its markers) written anew."""
    for name, table in SECTIONS:
        begin, end = BEGIN % name, END % name
        start = page.find(begin)
        stop = page.find(end)
        if start < 0 or stop < start:
            raise ValueError("the page has no %r ... %r markers" % (begin, end))
        page = page[: start + len(begin)] + "\n" + markdown_table(table) + "\n" + page[stop:]
    return page


__all__ = ["BEGIN", "END", "json_schema", "markdown_table", "render_docs"]
