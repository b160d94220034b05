"""The building blocks of the configuration schema: value types, fields, tables, and the one
walk that checks a document against them and fills in the defaults.

Firmware style like the rest of `protocols` (plain classes, no run-time `typing`): the hub
(fleet/), the gateway (edge/config) and the tools (docs, JSON Schema) all read the same
objects.

A walk is done in one of three modes:

- ``GATEWAY``: the gateway's whole document (its TOML file with the hub's document laid
  over it): every field, every rule, required fields required;
- ``HUB``: an effective document the hub signs: the same rules, but the settings that belong
  to the gateway alone (`local`) are refused, and not required;
- ``LAYER``: one layer of the hub's (a partial document): types, limits and unknown keys;
  fields are not required and rules that read several fields run only inside array items
  (a list replaces the list of the layer above as a whole, so its items are complete).

Every check records an `Issue` (path, message) and goes on, so that one pass names every
problem; `walk` returns the document with defaults filled in and units converted
(durations to seconds, sizes to bytes).
"""

import math
import re

from protocols.quantities import parse_duration, parse_size

GATEWAY = "gateway"
HUB = "hub"
LAYER = "layer"
MODES = (GATEWAY, HUB, LAYER)


class Issue:
    """One problem: `path` names the field (``serial[1].devices[0].address``), `message` says
    what is wrong (``must be 1..247, got 300``)."""

    __slots__ = ("message", "path")

    def __init__(self, path: "str", message: "str") -> None:
        self.path = path
        self.message = message

    def __str__(self) -> "str":
        return "%s: %s" % (self.path, self.message) if self.path else self.message

    def __repr__(self) -> "str":
        return "Issue(%r, %r)" % (self.path, self.message)

    def __eq__(self, other: "object") -> "bool":
        return (
            isinstance(other, Issue) and other.path == self.path and other.message == self.message
        )

    def __hash__(self) -> "int":
        return hash((self.path, self.message))


class Invalid:
    """The value of a field that is wrong (after its issue was recorded)."""

    __slots__ = ()

    def __repr__(self) -> "str":
        return "INVALID"


INVALID = Invalid()


class Defaults:
    """The default of a table-typed field: the table with every default (when absent)."""

    __slots__ = ()

    def __repr__(self) -> "str":
        return "DEFAULTS"


DEFAULTS = Defaults()


def show(value: "object") -> "str":
    """A value as a technician writes it in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    if value is None:
        return "null"
    return repr(value)


def kind_of(value: "object") -> "str":
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    if value is None:
        return "null"
    return type(value).__name__


def join(path: "str", key: "str") -> "str":
    return path + "." + key if path else key


def bounds(lo: "float | None", hi: "float | None") -> "str":
    if lo is not None and hi is not None:
        return "must be %s..%s" % (_g(lo), _g(hi))
    if lo is not None:
        return "must be at least %s" % _g(lo)
    return "must be at most %s" % _g(hi)


def _g(number: "float | None") -> "str":
    return "%g" % number if isinstance(number, float) else str(number)


def _finite_number(value: "object") -> "bool":
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and (isinstance(value, int) or math.isfinite(value))
    )


class Walk:
    """The state of one walk: the mode and the issues found so far."""

    __slots__ = ("issues", "mode")

    def __init__(self, mode: "str") -> None:
        if mode not in MODES:
            raise ValueError("mode must be one of %s" % ", ".join(MODES))
        self.mode = mode
        self.issues: "list[Issue]" = []

    def error(self, path: "str", message: "str") -> "Invalid":
        self.issues.append(Issue(path, message))
        return INVALID


# -- value types -------------------------------------------------------------------------
#
# Each type has `read(walk, path, value, partial)` -> the normalized value or INVALID (the
# issue recorded), `schema()` -> its JSON Schema, and `describe()` -> a few words for the
# docs' "type" column.


class Type:
    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        raise NotImplementedError

    def schema(self, hub: "bool" = False) -> "dict[str, object]":
        raise NotImplementedError

    def describe(self) -> "str":
        raise NotImplementedError


class Integer(Type):
    __slots__ = ("hi", "lo")

    def __init__(self, lo: "int | None" = None, hi: "int | None" = None) -> None:
        self.lo = lo
        self.hi = hi

    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        if isinstance(value, bool) or not isinstance(value, int):
            return walk.error(path, "must be a whole number, got %s" % show(value))
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            return walk.error(path, "%s, got %d" % (bounds(self.lo, self.hi), value))
        return value

    def schema(self, hub: "bool" = False) -> "dict[str, object]":
        out: "dict[str, object]" = {"type": "integer"}
        if self.lo is not None:
            out["minimum"] = self.lo
        if self.hi is not None:
            out["maximum"] = self.hi
        return out

    def describe(self) -> "str":
        return "integer" + _range_words(self.lo, self.hi)


def _range_words(lo: "float | None", hi: "float | None", unit: "str" = "") -> "str":
    if lo is None and hi is None:
        return ""
    suffix = " " + unit if unit else ""
    if lo is not None and hi is not None:
        return ", %s..%s%s" % (_g(lo), _g(hi), suffix)
    if lo is not None:
        return ", ≥ %s%s" % (_g(lo), suffix)
    return ", ≤ %s%s" % (_g(hi), suffix)


class Number(Type):
    """A finite number (integers accepted), as a float."""

    __slots__ = ("hi", "lo", "positive")

    def __init__(
        self, lo: "float | None" = None, hi: "float | None" = None, positive: "bool" = False
    ) -> None:
        self.lo = lo
        self.hi = hi
        self.positive = positive

    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return walk.error(path, "must be a number, got %s" % show(value))
        number = float(value)
        if not math.isfinite(number):
            return walk.error(path, "must be a finite number, got %s" % show(value))
        if self.positive and number <= 0:
            return walk.error(path, "must be greater than 0, got %s" % show(value))
        if (self.lo is not None and number < self.lo) or (self.hi is not None and number > self.hi):
            return walk.error(path, "%s, got %s" % (bounds(self.lo, self.hi), show(value)))
        return number

    def schema(self, hub: "bool" = False) -> "dict[str, object]":
        out: "dict[str, object]" = {"type": "number"}
        if self.lo is not None:
            out["minimum"] = self.lo
        if self.hi is not None:
            out["maximum"] = self.hi
        if self.positive:
            out["exclusiveMinimum"] = 0
        return out

    def describe(self) -> "str":
        return "number" + (", > 0" if self.positive else "") + _range_words(self.lo, self.hi)


DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|sec|min|m|h|d)?\s*$"
SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*([kKMGT]i?B|B)?\s*$"


class Duration(Type):
    """Seconds: a number, or a string with a unit ("500ms", "30s", "5min", "1h", "7d").
    Always positive."""

    __slots__ = ("hi", "lo")

    def __init__(self, lo: "float | None" = None, hi: "float | None" = None) -> None:
        self.lo = lo
        self.hi = hi

    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        seconds: "float | None"
        if isinstance(value, str):
            seconds = parse_duration(value)
            if seconds is None:
                return walk.error(
                    path,
                    'must be a duration such as 30, "30s", "5min", "1h" or "7d"; got %s'
                    % show(value),
                )
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            return walk.error(path, "must be a number, got %s" % show(value))
        elif not math.isfinite(value):
            return walk.error(path, "must be a finite number, got %s" % show(value))
        else:
            seconds = float(value)
        if seconds <= 0:
            return walk.error(path, "must be a positive duration, got %s" % show(value))
        if (self.lo is not None and seconds < self.lo) or (
            self.hi is not None and seconds > self.hi
        ):
            return walk.error(path, "%s seconds, got %s" % (bounds(self.lo, self.hi), show(value)))
        return seconds

    def schema(self, hub: "bool" = False) -> "dict[str, object]":
        number: "dict[str, object]" = {"type": "number", "exclusiveMinimum": 0}
        if self.lo is not None:
            number["minimum"] = self.lo
        if self.hi is not None:
            number["maximum"] = self.hi
        return {
            "anyOf": [number, {"type": "string", "pattern": DURATION_PATTERN}],
            "description": 'seconds, or a string with a unit: "500ms", "30s", "5min", "1h", "7d"',
        }

    def describe(self) -> "str":
        return "duration" + _range_words(self.lo, self.hi, "s")


class Size(Type):
    """Bytes: an integer, or a string with a unit ("512 MiB", "2 GB")."""

    __slots__ = ("lo",)

    def __init__(self, lo: "int" = 0) -> None:
        self.lo = lo

    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        if isinstance(value, str):
            size = parse_size(value)
            if size is None:
                return walk.error(
                    path,
                    'must be a size such as 268435456, "256 MiB" or "1 GB"; got %s' % show(value),
                )
        elif isinstance(value, int) and not isinstance(value, bool):
            size = value
        else:
            return walk.error(path, "must be a size in bytes, got %s" % show(value))
        if size < self.lo:
            return walk.error(path, "must be at least %d bytes, got %s" % (self.lo, show(value)))
        return size

    def schema(self, hub: "bool" = False) -> "dict[str, object]":
        return {
            "anyOf": [
                {"type": "integer", "minimum": self.lo},
                {"type": "string", "pattern": SIZE_PATTERN},
            ],
            "description": 'bytes, or a string with a unit: "256 MiB", "1 GB"',
        }

    def describe(self) -> "str":
        return "size, ≥ %s" % _bytes(self.lo) if self.lo else "size"


def _bytes(n: "int") -> "str":
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return "%d %s" % (n // scale, unit)
    return "%d bytes" % n


class Text(Type):
    """A string; `choices` the only values allowed; `check(text)` returns a problem or None;
    `empty`: whether "" is allowed."""

    __slots__ = ("check", "choices", "empty", "max_len", "pattern")

    def __init__(
        self,
        choices: "tuple[str, ...] | None" = None,
        check: "object" = None,
        max_len: "int" = 4096,
        empty: "bool" = True,
        pattern: "str | None" = None,
    ) -> None:
        self.choices = choices
        self.check = check
        self.max_len = max_len
        self.empty = empty
        self.pattern = pattern  # documentation of `check` for the JSON Schema

    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        if not isinstance(value, str):
            return walk.error(path, "must be a string, got %s" % show(value))
        if self.choices is not None and value not in self.choices:
            return walk.error(
                path,
                "must be one of %s; got %s" % (", ".join(map(show, self.choices)), show(value)),
            )
        if not value and not self.empty:
            return walk.error(path, "must not be empty")
        if len(value) > self.max_len:
            return walk.error(path, "must be at most %d characters" % self.max_len)
        if self.check is not None:
            problem = self.check(value)  # type: ignore[operator]
            if problem:
                return walk.error(path, problem)
        return value

    def schema(self, hub: "bool" = False) -> "dict[str, object]":
        out: "dict[str, object]" = {"type": "string", "maxLength": self.max_len}
        if self.choices is not None:
            out["enum"] = list(self.choices)
        if not self.empty:
            out["minLength"] = 1
        if self.pattern is not None:
            out["pattern"] = self.pattern
        return out

    def describe(self) -> "str":
        if self.choices is not None:
            return "one of " + ", ".join("`%s`" % c for c in self.choices)
        return "string"


class Boolean(Type):
    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        if not isinstance(value, bool):
            return walk.error(path, "must be true or false, got %s" % show(value))
        return value

    def schema(self, hub: "bool" = False) -> "dict[str, object]":
        return {"type": "boolean"}

    def describe(self) -> "str":
        return "boolean"


class Either(Type):
    """The first of `types` whose JSON type matches the value (e.g. a name or a table)."""

    __slots__ = ("types", "words")

    def __init__(self, types: "tuple[tuple[object, Type], ...]", words: "str") -> None:
        self.types = types  # ((python type or types, Type), ...)
        self.words = words

    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        for python_type, type_ in self.types:
            if isinstance(value, python_type) and not (  # type: ignore[arg-type]
                isinstance(value, bool) and python_type is not bool
            ):
                return type_.read(walk, path, value, partial)
        return walk.error(path, "must be %s, got %s" % (self.words, show(value)))

    def schema(self, hub: "bool" = False) -> "dict[str, object]":
        return {"anyOf": [t.schema(hub) for _, t in self.types]}

    def describe(self) -> "str":
        return self.words


class _Items(Type):
    """An array whose items are all read by `item`, at most `max_items` of them.

    `keep_invalid`: an array of tables keeps an invalid item in place (its errors are
    reported, and its index stays the one the user wrote); an array of strings drops it.
    """

    __slots__ = ("item", "max_items")
    keep_invalid = False
    words = "an array"

    def __init__(self, item: "Type", max_items: "int") -> None:
        self.item = item
        self.max_items = max_items

    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        if not isinstance(value, list):
            return walk.error(path, "must be %s, got %s" % (self.words, kind_of(value)))
        if len(value) > self.max_items:
            return walk.error(path, "more than %d items" % self.max_items)
        out = []
        for index, item in enumerate(value):
            got = self.item.read(walk, "%s[%d]" % (path, index), item, partial)
            if self.keep_invalid or got is not INVALID:
                out.append(got)
        return out

    def schema(self, hub: "bool" = False) -> "dict[str, object]":
        return {"type": "array", "items": self.item.schema(hub), "maxItems": self.max_items}

    def describe(self) -> "str":
        return self.words[3:]


class StrList(_Items):
    """An array of strings, each checked by `item`."""

    words = "an array of strings"

    def __init__(self, item: "Text | None" = None, max_items: "int" = 1024) -> None:
        super().__init__(item or Text(), max_items)


class Mapping_(Type):
    """A table of any keys whose values are all of one type (``{ PAPP = "power" }``)."""

    __slots__ = ("key", "max_items", "value", "words")

    def __init__(
        self,
        value: "Type",
        words: "str" = "a table of strings",
        key: "Text | None" = None,
        max_items: "int" = 1024,
    ) -> None:
        self.value = value
        self.words = words
        self.key = key
        self.max_items = max_items

    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        if not isinstance(value, dict):
            return walk.error(path, "must be %s, got %s" % (self.words, kind_of(value)))
        if len(value) > self.max_items:
            return walk.error(path, "more than %d entries" % self.max_items)
        out = {}
        for name, item in value.items():
            where = join(path, str(name))
            if self.key is not None and self.key.read(walk, where, name, partial) is INVALID:
                continue
            got = self.value.read(walk, where, item, partial)
            if got is not INVALID:
                out[name] = got
        return out

    def schema(self, hub: "bool" = False) -> "dict[str, object]":
        return {
            "type": "object",
            "additionalProperties": self.value.schema(hub),
            "maxProperties": self.max_items,
        }

    def describe(self) -> "str":
        return self.words[2:] if self.words.startswith("a ") else self.words


class Plain(Type):
    """Any value a TOML file can hold (checked further by a rule): no nulls, bounded depth."""

    __slots__ = ("words",)

    def __init__(self, words: "str" = "a table") -> None:
        self.words = words

    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        return value if _plain(walk, path, value, 0) else INVALID

    def schema(self, hub: "bool" = False) -> "dict[str, object]":
        return {"type": "object"}

    def describe(self) -> "str":
        return self.words


def _plain(walk: "Walk", path: "str", value: "object", depth: "int") -> "bool":
    if depth > 8:
        walk.error(path, "nested too deeply")
        return False
    if value is None:
        walk.error(path, "null is only allowed to delete a field of a layer")
        return False
    if isinstance(value, dict):
        ok = True
        for k, v in value.items():
            if not isinstance(k, str):
                walk.error(join(path, str(k)), "keys must be strings")
                ok = False
            elif not _plain(walk, join(path, k), v, depth + 1):
                ok = False
        return ok
    if isinstance(value, list):
        ok = True
        for i, v in enumerate(value):
            if not _plain(walk, "%s[%d]" % (path, i), v, depth + 1):
                ok = False
        return ok
    if isinstance(value, float) and not math.isfinite(value):
        walk.error(path, "must be a finite number")
        return False
    if not isinstance(value, (str, int, float, bool)):
        walk.error(path, "unsupported value %s" % kind_of(value))
        return False
    return True


# -- fields and tables -------------------------------------------------------------------


class Field:
    """One setting of a table.

    - `default`: the value when absent (already in the normalized form: seconds, bytes);
      `default_doc` says it in words when it depends on other settings;
    - `required`: must be given (in GATEWAY mode; HUB mode too unless `local`);
    - `unit`: of the normalized value (``s``, ``bytes``, ``readings/s``...), for the docs;
    - `restart`: a change applies only when the daemon restarts (not on reload);
    - `local`: belongs to the gateway alone (enrollment, its file system): the hub may not
      set it;
    - `doc`: what it means, for docs/configuration.md.
    """

    __slots__ = (
        "default",
        "default_doc",
        "doc",
        "local",
        "name",
        "required",
        "required_message",
        "restart",
        "type",
        "unit",
    )

    def __init__(
        self,
        name: "str",
        type_: "Type",
        default: "object" = None,
        *,
        required: "bool | str" = False,
        required_message: "str" = "",
        unit: "str" = "",
        restart: "bool" = False,
        local: "str" = "",
        doc: "str" = "",
        default_doc: "str" = "",
    ) -> None:
        self.name = name
        self.type = type_
        self.default = default
        self.required = required  # True, or GATEWAY: in the gateway's whole document only
        self.required_message = required_message
        self.unit = unit
        self.restart = restart
        self.local = local  # why the hub may not set it ("" : it may)
        self.doc = doc
        self.default_doc = default_doc


class Table(Type):
    """A table of known fields. Unknown keys are errors (with a suggestion). `rules` are
    functions `rule(walk, path, table)` over the normalized table that check what reads
    several fields; `hub_only`: a table the gateway's own file may not hold (it comes with
    the hub's document only, e.g. `apply`)."""

    __slots__ = ("doc", "fields", "hub_only", "item", "rules", "title")

    def __init__(
        self,
        fields: "tuple[Field, ...]",
        rules: "tuple[object, ...]" = (),
        *,
        title: "str" = "",
        doc: "str" = "",
        hub_only: "bool" = False,
    ) -> None:
        self.fields = fields
        self.rules = rules
        self.title = title
        self.doc = doc
        self.hub_only = hub_only
        self.item = False  # set by Array: an item of an array is complete in every layer

    def field(self, name: "str") -> "Field":
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        if not isinstance(value, dict):
            return walk.error(path, "must be a table, got %s" % kind_of(value))
        partial = partial and not self.item
        out: "dict[str, object]" = {}
        for f in self.fields:
            raw = value.get(f.name)
            where = join(path, f.name)
            if f.local and walk.mode != GATEWAY:
                if raw is not None:
                    walk.error(where, "cannot be set by the hub: " + f.local)
                out[f.name] = f.default
                continue
            if isinstance(f.type, Table) and f.type.hub_only and walk.mode == GATEWAY:
                if raw is not None:
                    walk.error(where, "only in the hub's configuration (estran fleet config)")
                out[f.name] = None
                continue
            if raw is None:
                if f.required and not partial and (f.required is True or walk.mode == GATEWAY):
                    walk.error(where, f.required_message or "required")
                    out[f.name] = INVALID
                elif f.default is DEFAULTS:
                    out[f.name] = f.type.read(walk, where, {}, partial)
                else:
                    out[f.name] = f.default
                continue
            out[f.name] = f.type.read(walk, where, raw, partial)
        for key in value:
            if not isinstance(key, str):
                walk.error(join(path, str(key)), "keys must be strings")
            elif key not in out and value[key] is not None:
                walk.error(join(path, key), _unknown(key, [f.name for f in self.fields]))
        if not partial:
            for rule in self.rules:
                rule(walk, path, out)  # type: ignore[operator]
        return out

    def schema(self, hub: "bool" = False) -> "dict[str, object]":
        properties: "dict[str, object]" = {}
        required = []
        for f in self.fields:
            if hub and f.local:
                continue
            if not hub and isinstance(f.type, Table) and f.type.hub_only:
                continue
            item = dict(f.type.schema(hub))
            if f.doc:
                item["description"] = _plain_words(f.doc)
            default = _json_default(f.default)
            if default is not None:
                item["default"] = default
            properties[f.name] = item
            if f.required is True or (f.required == GATEWAY and not hub):
                required.append(f.name)
        out: "dict[str, object]" = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            out["required"] = required
        if self.doc:
            out["description"] = _plain_words(self.doc)
        return out

    def describe(self) -> "str":
        return "table"


class Array(_Items):
    """An array of tables (``[[serial]]``)."""

    __slots__ = ("name", "table")
    keep_invalid = True
    words = "an array of tables"

    def __init__(self, table: "Table", name: "str", max_items: "int" = 256) -> None:
        super().__init__(table, max_items)
        self.table = table
        self.name = name  # how the TOML spells it: `serial`, `serial.devices`
        table.item = True

    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        if isinstance(value, dict):
            return walk.error(
                path, "must be an array of tables ([[%s]]), got a single table" % self.name
            )
        return super().read(walk, path, value, partial)


class Named(Type):
    """A table of tables (``[sensors.ID]``), each keyed by a name `key` checks."""

    __slots__ = ("key", "max_items", "table")

    def __init__(self, table: "Table", key: "Text", max_items: "int" = 4096) -> None:
        self.table = table
        self.key = key
        self.max_items = max_items

    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        if not isinstance(value, dict):
            return walk.error(path, "must be a table, got %s" % kind_of(value))
        if len(value) > self.max_items:
            return walk.error(path, "more than %d entries" % self.max_items)
        out = {}
        for name, item in value.items():
            where = join(path, str(name))
            if item is None:
                continue  # a deletion marker of a layer
            if not isinstance(name, str):
                walk.error(where, "keys must be strings")
                continue
            self.key.read(walk, where, name, partial)
            out[name] = self.table.read(walk, where, item, partial)
        return out

    def schema(self, hub: "bool" = False) -> "dict[str, object]":
        return {
            "type": "object",
            "additionalProperties": self.table.schema(hub),
            "maxProperties": self.max_items,
        }

    def describe(self) -> "str":
        return "table of tables"


def _unknown(key: "str", known: "list[str]") -> "str":
    close = _closest(key, known)
    return "unknown field" + (" (did you mean %r?)" % close if close else "")


def _closest(word: "str", known: "list[str]") -> "str | None":
    try:
        import difflib
    except ImportError:  # MicroPython
        return None
    found = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return found[0] if found else None


_MARKUP = re.compile(r"`([^`]*)`")


def _plain_words(text: "str") -> "str":
    return _MARKUP.sub(r"\1", text)


def _json_default(value: "object") -> "object":
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


__all__ = [
    "DEFAULTS",
    "GATEWAY",
    "HUB",
    "INVALID",
    "LAYER",
    "Array",
    "Boolean",
    "Duration",
    "Either",
    "Field",
    "Integer",
    "Issue",
    "Mapping_",
    "Named",
    "Number",
    "Plain",
    "Size",
    "StrList",
    "Table",
    "Text",
    "Walk",
    "join",
    "show",
]
