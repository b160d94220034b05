"""The schema of a desired configuration, checked on the hub before a layer is accepted.

The document has the shape of the gateway's own TOML file (docs/configuration.md) minus what
belongs to the gateway alone: its id, its data directory, its broker address and
credentials (enrollment sets those). The gateway checks the merged result again with its own
loader before applying it; this schema catches what it can earlier, where the admin is, and
names every field that is wrong (`buffer.quota: must be a size ...`).

Sections of sources (`serial`, `ble.devices`, `sensors`) are checked for their shape and for
their identifying fields; the codec options inside are checked by the gateway.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from fleet._errors import ConfigRejected, SchemaIssue
from protocols.quantities import parse_duration, parse_size

Check = Callable[[str, object, list[SchemaIssue]], None]


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(path: str, value: object, issues: list[SchemaIssue]) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            issues.append(SchemaIssue(path, f"must be an integer, got {_kind(value)}"))
        elif (lo is not None and value < lo) or (hi is not None and value > hi):
            issues.append(SchemaIssue(path, f"must be {_bounds(lo, hi)}, got {value}"))

    return check


def number(lo: float | None = None, hi: float | None = None) -> Check:
    def check(path: str, value: object, issues: list[SchemaIssue]) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            issues.append(SchemaIssue(path, f"must be a number, got {_kind(value)}"))
        elif not math.isfinite(value):
            issues.append(SchemaIssue(path, "must be a finite number"))
        elif (lo is not None and value < lo) or (hi is not None and value > hi):
            issues.append(SchemaIssue(path, f"must be {_bounds(lo, hi)}, got {value:g}"))

    return check


def _bounds(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"{lo:g}..{hi:g}"
    if lo is not None:
        return f"at least {lo:g}"
    return f"at most {hi:g}"


def duration(lo: float = 0.0, hi: float | None = None) -> Check:
    """Seconds as a number, or a string such as "500 ms", "30s", "5 min", "1h"."""

    def check(path: str, value: object, issues: list[SchemaIssue]) -> None:
        seconds: float
        if isinstance(value, str):
            parsed = parse_duration(value)
            if parsed is None:
                issues.append(SchemaIssue(path, f'must be a duration such as "30s", got "{value}"'))
                return
            seconds = parsed
        elif isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        else:
            issues.append(SchemaIssue(path, f"must be a duration, got {_kind(value)}"))
            return
        if seconds < lo or (hi is not None and seconds > hi):
            issues.append(SchemaIssue(path, f"must be {_bounds(lo, hi)} seconds"))

    return check


def size(lo: int = 0) -> Check:
    """Bytes as an integer, or a string such as "256 MiB"."""

    def check(path: str, value: object, issues: list[SchemaIssue]) -> None:
        if isinstance(value, str):
            size = parse_size(value)
            if size is None:
                issues.append(SchemaIssue(path, f'must be a size such as "256 MiB", got "{value}"'))
                return
            n = size
        elif isinstance(value, int) and not isinstance(value, bool):
            n = value
        else:
            issues.append(SchemaIssue(path, f"must be a size, got {_kind(value)}"))
            return
        if n < lo:
            issues.append(SchemaIssue(path, f"must be at least {lo} bytes"))

    return check


def text(choices: tuple[str, ...] | None = None, max_len: int = 256) -> Check:
    def check(path: str, value: object, issues: list[SchemaIssue]) -> None:
        if not isinstance(value, str):
            issues.append(SchemaIssue(path, f"must be a string, got {_kind(value)}"))
        elif choices is not None and value not in choices:
            issues.append(SchemaIssue(path, f"must be one of {', '.join(choices)}; got {value!r}"))
        elif len(value) > max_len:
            issues.append(SchemaIssue(path, f"longer than {max_len} characters"))

    return check


def boolean() -> Check:
    def check(path: str, value: object, issues: list[SchemaIssue]) -> None:
        if not isinstance(value, bool):
            issues.append(SchemaIssue(path, f"must be true or false, got {_kind(value)}"))

    return check


def local(reason: str) -> Check:
    """A field the hub may not set."""

    def check(path: str, value: object, issues: list[SchemaIssue]) -> None:
        issues.append(SchemaIssue(path, f"cannot be set by the hub: {reason}"))

    return check


def table(
    fields: Mapping[str, Check], *, required: tuple[str, ...] = (), open_: bool = False
) -> Check:
    """A table of known fields (unknown ones are errors unless `open_`)."""

    def check(path: str, value: object, issues: list[SchemaIssue]) -> None:
        if not isinstance(value, Mapping):
            issues.append(SchemaIssue(path, f"must be a table, got {_kind(value)}"))
            return
        for key in required:
            if value.get(key) is None:
                issues.append(SchemaIssue(_join(path, key), "required"))
        for key, item in value.items():
            where = _join(path, str(key))
            if not isinstance(key, str):
                issues.append(SchemaIssue(where, "keys must be strings"))
            elif item is None:
                continue  # a deletion marker of a layer
            elif key in fields:
                fields[key](where, item, issues)
            elif not open_:
                issues.append(SchemaIssue(where, _unknown(key, fields)))
            else:
                _plain(where, item, issues)

    return check


def array_of(item_check: Check, max_items: int = 256) -> Check:
    def check(path: str, value: object, issues: list[SchemaIssue]) -> None:
        if not isinstance(value, list):
            issues.append(SchemaIssue(path, f"must be an array, got {_kind(value)}"))
            return
        if len(value) > max_items:
            issues.append(SchemaIssue(path, f"more than {max_items} items"))
        for i, item in enumerate(value):
            item_check(f"{path}[{i}]", item, issues)

    return check


def named_tables(item_check: Check, max_items: int = 4096) -> Check:
    def check(path: str, value: object, issues: list[SchemaIssue]) -> None:
        if not isinstance(value, Mapping):
            issues.append(SchemaIssue(path, f"must be a table, got {_kind(value)}"))
            return
        if len(value) > max_items:
            issues.append(SchemaIssue(path, f"more than {max_items} entries"))
        for key, item in value.items():
            if item is not None:
                item_check(_join(path, str(key)), item, issues)

    return check


def _plain(path: str, value: object, issues: list[SchemaIssue], depth: int = 0) -> None:
    """Values a TOML file can hold: no nulls inside, bounded nesting."""
    if depth > 8:
        issues.append(SchemaIssue(path, "nested too deeply"))
    elif value is None:
        issues.append(SchemaIssue(path, "null is only allowed to delete a field of a layer"))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _plain(_join(path, str(k)), v, issues, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _plain(f"{path}[{i}]", v, issues, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        issues.append(SchemaIssue(path, "must be a finite number"))
    elif not isinstance(value, str | int | float | bool):
        issues.append(SchemaIssue(path, f"unsupported value {_kind(value)}"))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown(key: str, fields: Mapping[str, Check]) -> str:
    import difflib

    close = difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.6)
    return "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")


_ENROLLMENT = "enrollment sets it on the gateway"

SCHEMA: Check = table(
    {
        "gateway": table(
            {
                "id": local(_ENROLLMENT),
                "data_dir": local("the gateway's own file system"),
                "log_level": text(("debug", "info", "warning", "error")),
            }
        ),
        "buffer": table(
            {
                "quota": size(lo=1 << 20),
                "policy": text(("drop_oldest", "refuse_new")),
                "commit_interval": duration(0.01, 60.0),
                "commit_readings": integer(1, 1_000_000),
                "max_age": duration(1.0),
                "segment_size": size(lo=64 << 10),
            }
        ),
        "uplink": table(
            {
                "broker": local(_ENROLLMENT),
                "credentials_file": local(_ENROLLMENT),
                "protocol": text(("auto", "5", "3.1.1")),
                "backlog_rate": number(0.0),
                "backlog_burst": integer(1),
                "state_interval": duration(1.0),
                "keepalive": integer(5, 3600),
                "compress": integer(0, 9),
            }
        ),
        "daemon": table(
            {
                "queue_size": integer(16, 1_000_000),
                "put_timeout": duration(0.01),
                "restart_min": duration(0.01),
                "restart_max": duration(0.01),
                "stop_timeout": duration(0.1),
            }
        ),
        "apply": table({"health_timeout": duration(1.0, 600.0)}),
        "serial": array_of(
            table({"path": text(max_len=4096)}, required=("path",), open_=True), max_items=64
        ),
        "ble": table(
            {
                "backend": text(("bleak", "bumble")),
                "adapter": text(),
                "transport": text(),
                "passive": boolean(),
                "poll_attempts": integer(1, 20),
                "queue_size": integer(1, 100_000),
                "absent_after": duration(),
                "connect_timeout": duration(),
                "poll_timeout": duration(),
                "retry_delay": duration(),
                "adapter_backoff": duration(),
                "adapter_backoff_max": duration(),
                "devices": array_of(
                    table({"address": text(max_len=64)}, required=("address",), open_=True),
                    max_items=1024,
                ),
            }
        ),
        "sensors": named_tables(
            table(
                {
                    "dataset": text(("open", "closed")),
                    "description": text(max_len=1024),
                    "report": table({"mode": text(("every", "change", "aggregate"))}, open_=True),
                },
                open_=True,
            )
        ),
    }
)


def check(document: Mapping[str, object]) -> list[SchemaIssue]:
    """Every problem of a layer or of an effective document (empty when it is valid)."""
    issues: list[SchemaIssue] = []
    SCHEMA("", document, issues)
    return issues


def validate(document: Mapping[str, object]) -> None:
    """Raise ConfigRejected naming every field that is wrong."""
    issues = check(document)
    if issues:
        raise ConfigRejected(issues)


__all__ = ["SCHEMA", "check", "validate"]
