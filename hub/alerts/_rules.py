"""Alert rules as data: one JSON document per rule, validated here into typed values.

A rule document (what the API and `estran hub alert rule add` take):

    {"id": "bin-full", "kind": "threshold", "scope": {"kind": "bin"},
     "params": {"quantity": "fill", "op": ">=", "value": 80, "clear": 70, "for": "10 min"},
     "severity": "warning", "channels": ["ops-webhook"], "description": "...",
     "damping": "15 min", "enabled": true}

Every mistake is a `RuleError` with a reason and the field it concerns; nothing else escapes
`parse_rule`.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hub._errors import HubError
from protocols.quantities import parse_duration
from protocols.wmbus import ALARMS

RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SEVERITIES = ("info", "warning", "critical")
SENSOR_KINDS = ("threshold", "rate", "night_flow", "meter_flag", "silence", "change")
GATEWAY_KINDS = ("gateway_offline", "source_down", "buffer_quota")
KINDS = SENSOR_KINDS + GATEWAY_KINDS
SCOPES = ("all", "sensor", "kind", "group", "dataset", "gateway")
METER_FLAGS: tuple[str, ...] = tuple(ALARMS)  # the wireless M-Bus decoder's alarm quantities
OPS = (">=", ">", "<=", "<")
MAX_CHANNELS = 16
MAX_TEXT = 500


class RuleError(HubError):
    """A rule document is invalid: `reason` names the field."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Scope:
    """Which sensors (or gateways) a rule watches. `type` "all" has no value."""

    type: str = "all"
    value: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {} if self.type == "all" or self.value is None else {self.type: self.value}


@dataclass(frozen=True, slots=True)
class Rule:
    """A validated rule. `params` holds the kind's parameters, durations in seconds."""

    id: str
    kind: str
    scope: Scope
    params: Mapping[str, Any]
    severity: str = "warning"
    channels: tuple[str, ...] = ()
    description: str = ""
    damping_s: float = 0.0
    enabled: bool = True
    version: int = 1
    updated_by: str = ""
    updated_ms: int = 0
    doc: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def quantity(self) -> str | None:
        q = self.params.get("quantity")
        return q if isinstance(q, str) else None

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.doc)
        out.update(
            {"version": self.version, "updated_by": self.updated_by, "updated_ms": self.updated_ms}
        )
        return out


def _text(doc: Mapping[str, Any], name: str, default: str | None = None) -> str:
    value = doc.get(name, default)
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise RuleError(name, f"expected a text of 1 to {MAX_TEXT} characters")
    return value


def _number(doc: Mapping[str, Any], name: str, default: float | None = None) -> float:
    value = doc.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise RuleError(name, "expected a number")
    if abs(value) > 1e15:
        raise RuleError(name, "number out of range")
    return float(value)


def _duration(doc: Mapping[str, Any], name: str, default: float | None = None) -> float:
    value = doc.get(name)
    if value is None:
        if default is None:
            raise RuleError(name, "required duration (e.g. 600, '10 min', '1h')")
        return default
    if isinstance(value, bool):
        raise RuleError(name, "expected a duration")
    seconds = float(value) if isinstance(value, int | float) else None
    if isinstance(value, str):
        seconds = parse_duration(value)
    if seconds is None or not 0 <= seconds <= 366 * 86400:
        raise RuleError(name, f"{value!r}: expected a duration of 0 to 366 days")
    return seconds


def _clock(doc: Mapping[str, Any], name: str, default: str) -> int:
    """Minutes after local midnight from "HH:MM"."""
    value = doc.get(name, default)
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise RuleError(name, f"{value!r}: expected a local time HH:MM")
    return int(match.group(1)) * 60 + int(match.group(2))


def _check_keys(doc: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise RuleError(where, f"unknown field(s) {', '.join(map(str, unknown))}")


def _params(kind: str, raw: Mapping[str, Any], default_tz: str) -> dict[str, Any]:
    p: dict[str, Any] = {}
    if kind == "threshold":
        _check_keys(raw, {"quantity", "op", "value", "clear", "for"}, "params")
        p["quantity"] = _text(raw, "quantity")
        op = raw.get("op", ">=")
        if op not in OPS:
            raise RuleError("op", f"expected one of {', '.join(OPS)}")
        p["op"] = op
        p["value"] = _number(raw, "value")
        p["clear"] = _number(raw, "clear", p["value"])
        above = op in (">=", ">")
        if (above and p["clear"] > p["value"]) or (not above and p["clear"] < p["value"]):
            raise RuleError("clear", "the clear level must lie on the normal side of value")
        p["for_s"] = _duration(raw, "for", 0.0)
    elif kind == "rate":
        _check_keys(raw, {"quantity", "change", "window", "direction"}, "params")
        p["quantity"] = _text(raw, "quantity")
        p["change"] = _number(raw, "change")
        if p["change"] <= 0:
            raise RuleError("change", "expected a positive change")
        p["window_s"] = _duration(raw, "window")
        if p["window_s"] <= 0:
            raise RuleError("window", "expected a positive window")
        direction = raw.get("direction", "any")
        if direction not in ("rise", "fall", "any"):
            raise RuleError("direction", "expected rise, fall or any")
        p["direction"] = direction
    elif kind == "night_flow":
        _check_keys(
            raw, {"quantity", "start", "end", "tz", "zero", "min_readings", "counter"}, "params"
        )
        p["quantity"] = _text(raw, "quantity", "flow")
        p["start_min"] = _clock(raw, "start", "02:00")
        p["end_min"] = _clock(raw, "end", "04:00")
        if p["end_min"] <= p["start_min"]:
            raise RuleError("end", "the window must end after it starts, the same night")
        tz = _text(raw, "tz", default_tz)
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
            raise RuleError("tz", f"{tz!r}: unknown time zone") from e
        p["tz"] = tz
        p["zero"] = _number(raw, "zero", 0.0)
        p["min_readings"] = int(_number(raw, "min_readings", 2))
        if p["min_readings"] < 1:
            raise RuleError("min_readings", "expected at least 1")
        counter = raw.get("counter", False)
        if not isinstance(counter, bool):
            raise RuleError("counter", "expected true or false")
        p["counter"] = counter
    elif kind == "meter_flag":
        _check_keys(raw, {"flags"}, "params")
        flags = raw.get("flags", list(METER_FLAGS))
        if (
            not isinstance(flags, list)
            or not flags
            or any(f not in METER_FLAGS for f in flags)
            or len(set(flags)) != len(flags)
        ):
            raise RuleError("flags", f"expected a list of {', '.join(METER_FLAGS)}")
        p["flags"] = list(flags)
    elif kind == "silence":
        _check_keys(raw, {"after"}, "params")
        p["after_s"] = _duration(raw, "after")
        if p["after_s"] < 1:
            raise RuleError("after", "expected at least 1 s")
    elif kind == "change":
        _check_keys(raw, {"quantity"}, "params")
        p["quantity"] = _text(raw, "quantity", "occupied")
    elif kind == "gateway_offline":
        _check_keys(raw, {"after"}, "params")
        p["after_s"] = _duration(raw, "after", 60.0)
    elif kind == "source_down":
        _check_keys(raw, {"source", "after"}, "params")
        source = raw.get("source")
        if source is not None:
            source = _text(raw, "source")
        p["source"] = source
        p["after_s"] = _duration(raw, "after", 0.0)
    elif kind == "buffer_quota":
        _check_keys(raw, {"ratio", "clear"}, "params")
        p["ratio"] = _number(raw, "ratio", 0.8)
        p["clear"] = _number(raw, "clear", p["ratio"] - 0.1)
        if not 0 < p["ratio"] <= 1 or not 0 <= p["clear"] <= p["ratio"]:
            raise RuleError("ratio", "expected 0 < clear <= ratio <= 1")
    return p


def parse_rule(doc: object, *, default_tz: str = "Europe/Paris") -> Rule:
    """Validate a rule document; the `Rule` keeps the document as given (normalised)."""
    if not isinstance(doc, Mapping):
        raise RuleError("rule", "expected a JSON object")
    _check_keys(
        doc,
        {
            "id",
            "kind",
            "scope",
            "params",
            "severity",
            "channels",
            "description",
            "damping",
            "enabled",
            "version",
            "updated_by",
            "updated_ms",
        },
        "rule",
    )
    rule_id = doc.get("id")
    if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
        raise RuleError("id", "1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise RuleError("kind", f"expected one of {', '.join(KINDS)}")
    scope_doc = doc.get("scope", {})
    if not isinstance(scope_doc, Mapping) or len(scope_doc) > 1:
        raise RuleError("scope", "expected {} or one of {sensor|kind|group|dataset|gateway: NAME}")
    if scope_doc:
        ((stype, svalue),) = scope_doc.items()
        if stype not in SCOPES[1:] or not isinstance(svalue, str) or not 0 < len(svalue) <= 128:
            raise RuleError("scope", "expected one of {sensor|kind|group|dataset|gateway: NAME}")
        if kind in GATEWAY_KINDS and stype not in ("gateway", "group"):
            raise RuleError("scope", f"a {kind} rule is scoped to a gateway or a group")
        scope = Scope(stype, svalue)
    else:
        scope = Scope()
    raw = doc.get("params", {})
    if not isinstance(raw, Mapping):
        raise RuleError("params", "expected an object")
    params = _params(str(kind), raw, default_tz)
    severity = doc.get("severity", "warning")
    if severity not in SEVERITIES:
        raise RuleError("severity", f"expected one of {', '.join(SEVERITIES)}")
    channels = doc.get("channels", [])
    if (
        not isinstance(channels, list)
        or len(channels) > MAX_CHANNELS
        or not all(isinstance(c, str) and RULE_ID.match(c) for c in channels)
    ):
        raise RuleError("channels", "expected a list of channel names")
    description = doc.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_TEXT:
        raise RuleError("description", f"at most {MAX_TEXT} characters")
    default_damping = 0.0 if kind == "change" else 300.0
    damping = _duration(doc, "damping", default_damping)
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError("enabled", "expected true or false")
    normal: dict[str, Any] = {
        "id": rule_id,
        "kind": kind,
        "scope": scope.as_dict(),
        "params": dict(raw),
        "severity": severity,
        "channels": list(channels),
        "description": description,
        "damping": damping,
        "enabled": enabled,
    }
    return Rule(
        id=rule_id,
        kind=str(kind),
        scope=scope,
        params=params,
        severity=str(severity),
        channels=tuple(channels),
        description=description,
        damping_s=damping,
        enabled=enabled,
        doc=normal,
    )


__all__ = [
    "GATEWAY_KINDS",
    "KINDS",
    "METER_FLAGS",
    "SCOPES",
    "SENSOR_KINDS",
    "SEVERITIES",
    "Rule",
    "RuleError",
    "Scope",
    "parse_rule",
]
