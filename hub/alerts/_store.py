"""Alerts in the hub's storage (SQLite or PostgreSQL): rules and their versions, alerts and
their events, channels, dead letters, the evaluator's snapshot. Synchronous, like the
storage it sits on: call it from a storage thread or from the API's thread pool."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.alerts._rules import Rule, RuleError, parse_rule
from hub.storage import Storage

FIRING, ACKNOWLEDGED, RESOLVED = "firing", "acknowledged", "resolved"
STATES = (FIRING, ACKNOWLEDGED, RESOLVED)
OPEN_STATES = (FIRING, ACKNOWLEDGED)
MAX_LIST = 1000
Clause = tuple[str, list[Any]]  # an SQL condition on the alerts table, with "?" parameters


@dataclass(slots=True)
class Alert:
    """One alert: a rule's condition on a subject (a sensor, a sensor's flag, a gateway, a
    gateway's source), from firing to resolved."""

    id: str
    rule_id: str
    rule_version: int
    kind: str
    subject: str
    sensor: str | None
    gateway: str | None
    severity: str
    state: str
    summary: str
    value: Any
    fired_ms: int
    last_ms: int
    ack_by: str | None = None
    ack_ms: int | None = None
    resolved_by: str | None = None
    resolved_ms: int | None = None
    flaps: int = 0

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule_id,
            "rule_version": self.rule_version,
            "kind": self.kind,
            "subject": self.subject,
            "sensor": self.sensor,
            "gateway": self.gateway,
            "severity": self.severity,
            "state": self.state,
            "summary": self.summary,
            "value": self.value,
            "fired_ms": self.fired_ms,
            "last_ms": self.last_ms,
            "ack_by": self.ack_by,
            "ack_ms": self.ack_ms,
            "resolved_by": self.resolved_by,
            "resolved_ms": self.resolved_ms,
            "flaps": self.flaps,
        }


@dataclass(frozen=True, slots=True)
class AlertEvent:
    alert_id: str
    ts_ms: int
    event: str  # fired, reopened, acknowledged, resolved, delivered, failed
    actor: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleVersion:
    rule_id: str
    version: int
    action: str
    doc: dict[str, Any]
    actor: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    type: str  # webhook | mqtt | email | sms
    config: dict[str, Any]
    updated_by: str = ""
    updated_ms: int = 0

    def public(self) -> dict[str, Any]:
        """The channel without its secrets (webhook secret, SMTP password)."""
        hidden = {k: ("***" if k in ("secret", "password") else v) for k, v in self.config.items()}
        return {"name": self.name, "type": self.type, "config": hidden}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    channel: str
    alert_id: str | None
    payload: dict[str, Any]
    error: str
    attempts: int
    ts_ms: int
    replayed_ms: int | None
    replayed_by: str | None


_ALERT_COLUMNS = (
    "id, rule_id, rule_version, kind, subject, sensor, gateway, severity, state, summary,"
    " value, fired_ms, last_ms, ack_by, ack_ms, resolved_by, resolved_ms, flaps"
)


def _alert(row: tuple[Any, ...]) -> Alert:
    values = list(row)
    values[10] = json.loads(values[10]) if values[10] is not None else None
    return Alert(*values)


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


class AlertStore:
    """The alert tables of one `Storage` (it must be migrated)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._p = storage.placeholder

    def _q(self, query: str) -> str:
        return query.replace("?", self._p) if self._p != "?" else query

    def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.storage._fetch(self._q(query), params)

    def _write(self, ops: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        return self.storage._write([(self._q(q), p) for q, p in ops])

    # -- rules ------------------------------------------------------------------------------

    def rules(self, include_deleted: bool = False) -> list[Rule]:
        rows = self._fetch(
            "SELECT doc, version, updated_by, updated_ms FROM alert_rules"
            " WHERE deleted = 0 OR ? = 1 ORDER BY id",
            (1 if include_deleted else 0,),
        )
        out = []
        for doc, version, by, ts in rows:
            rule = parse_rule(json.loads(doc))
            out.append(_stamped(rule, int(version), by, int(ts)))
        return out

    def rule(self, rule_id: str) -> Rule | None:
        rows = self._fetch(
            "SELECT doc, version, updated_by, updated_ms FROM alert_rules"
            " WHERE id = ? AND deleted = 0",
            (rule_id,),
        )
        if not rows:
            return None
        doc, version, by, ts = rows[0]
        return _stamped(parse_rule(json.loads(doc)), int(version), by, int(ts))

    def save_rule(self, rule: Rule, actor: str, now_ms: int, *, create: bool) -> Rule:
        """Create (refused when it exists) or replace a rule: a new version either way."""
        rows = self._fetch("SELECT version, deleted FROM alert_rules WHERE id = ?", (rule.id,))
        if create and rows and not rows[0][1]:
            raise RuleError("id", f"rule {rule.id!r} exists (update it instead)")
        if not create and (not rows or rows[0][1]):
            raise RuleError("id", f"no rule {rule.id!r}")
        version = int(rows[0][0]) + 1 if rows else 1
        action = "created" if create else "updated"
        return self._put(rule, version, action, actor, now_ms, deleted=False)

    def _put(
        self, rule: Rule, version: int, action: str, actor: str, now_ms: int, *, deleted: bool
    ) -> Rule:
        doc = _dumps(dict(rule.doc))
        self._write(
            [
                (
                    "INSERT INTO alert_rules (id, version, doc, enabled, deleted, updated_by,"
                    " updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                    " version = excluded.version, doc = excluded.doc, enabled = excluded.enabled,"
                    " deleted = excluded.deleted, updated_by = excluded.updated_by,"
                    " updated_ms = excluded.updated_ms",
                    (rule.id, version, doc, int(rule.enabled), int(deleted), actor, now_ms),
                ),
                (
                    "INSERT INTO alert_rule_versions (rule_id, version, action, doc, actor, ts_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (rule.id, version, action, doc, actor, now_ms),
                ),
            ]
        )
        return _stamped(rule, version, actor, now_ms)

    def set_enabled(self, rule_id: str, enabled: bool, actor: str, now_ms: int) -> Rule:
        rule = self.rule(rule_id)
        if rule is None:
            raise RuleError("id", f"no rule {rule_id!r}")
        doc = dict(rule.doc)
        doc["enabled"] = enabled
        new = parse_rule(doc)
        action = "enabled" if enabled else "disabled"
        return self._put(new, rule.version + 1, action, actor, now_ms, deleted=False)

    def delete_rule(self, rule_id: str, actor: str, now_ms: int) -> Rule:
        rule = self.rule(rule_id)
        if rule is None:
            raise RuleError("id", f"no rule {rule_id!r}")
        return self._put(rule, rule.version + 1, "deleted", actor, now_ms, deleted=True)

    def rule_versions(self, rule_id: str) -> list[RuleVersion]:
        rows = self._fetch(
            "SELECT rule_id, version, action, doc, actor, ts_ms FROM alert_rule_versions"
            " WHERE rule_id = ? ORDER BY version",
            (rule_id,),
        )
        return [
            RuleVersion(r, int(v), a, json.loads(d), by, int(ts)) for r, v, a, d, by, ts in rows
        ]

    # -- alerts -----------------------------------------------------------------------------

    def upsert_ops(self, alert: Alert) -> tuple[str, Sequence[Any]]:
        return (
            f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state, summary = excluded.summary,"
            " value = excluded.value, last_ms = excluded.last_ms, ack_by = excluded.ack_by,"
            " ack_ms = excluded.ack_ms, resolved_by = excluded.resolved_by,"
            " resolved_ms = excluded.resolved_ms, flaps = excluded.flaps,"
            " severity = excluded.severity, rule_version = excluded.rule_version",
            (
                alert.id,
                alert.rule_id,
                alert.rule_version,
                alert.kind,
                alert.subject,
                alert.sensor,
                alert.gateway,
                alert.severity,
                alert.state,
                alert.summary,
                _dumps(alert.value),
                alert.fired_ms,
                alert.last_ms,
                alert.ack_by,
                alert.ack_ms,
                alert.resolved_by,
                alert.resolved_ms,
                alert.flaps,
            ),
        )

    def event_ops(self, event: AlertEvent) -> tuple[str, Sequence[Any]]:
        return (
            "INSERT INTO alert_events (alert_id, ts_ms, event, actor, detail)"
            " VALUES (?, ?, ?, ?, ?)",
            (event.alert_id, event.ts_ms, event.event, event.actor, _dumps(event.detail)),
        )

    def record(self, alerts: Sequence[Alert], events: Sequence[AlertEvent]) -> None:
        """Write alert rows and events in one transaction."""
        ops = [self.upsert_ops(a) for a in alerts] + [self.event_ops(e) for e in events]
        if ops:
            self._write(ops)

    def alerts(
        self,
        state: str | None = None,
        *,
        rule: str | None = None,
        subject: str | None = None,
        since_ms: int | None = None,
        limit: int = 100,
        visible: Clause | None = None,
    ) -> list[Alert]:
        """Alerts, newest first. `state` "open" means firing or acknowledged. `visible`: a
        condition (and its parameters) an alert must also meet (who may see it)."""
        where: list[str] = []
        params: list[Any] = []
        if visible is not None:
            where.append(f"({visible[0]})")
            params += visible[1]
        if state == "open":
            where.append("state IN ('firing', 'acknowledged')")
        elif state is not None:
            where.append("state = ?")
            params.append(state)
        if rule is not None:
            where.append("rule_id = ?")
            params.append(rule)
        if subject is not None:
            where.append("(subject = ? OR sensor = ? OR gateway = ?)")
            params += [subject, subject, subject]
        if since_ms is not None:
            where.append("last_ms >= ?")
            params.append(since_ms)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        params.append(max(1, min(limit, MAX_LIST)))
        rows = self._fetch(
            f"SELECT {_ALERT_COLUMNS} FROM alerts{clause} ORDER BY fired_ms DESC, id LIMIT ?",
            params,
        )
        return [_alert(r) for r in rows]

    def open_alerts(self) -> list[Alert]:
        """Every open alert (the engine's working set at start), without a limit."""
        rows = self._fetch(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE state IN ('firing', 'acknowledged')"
        )
        return [_alert(r) for r in rows]

    def alert(self, alert_id: str) -> Alert | None:
        rows = self._fetch(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,))
        return _alert(rows[0]) if rows else None

    def events(self, alert_id: str) -> list[AlertEvent]:
        rows = self._fetch(
            "SELECT alert_id, ts_ms, event, actor, detail FROM alert_events WHERE alert_id = ?"
            " ORDER BY id",
            (alert_id,),
        )
        return [AlertEvent(a, int(ts), e, by, json.loads(d or "{}")) for a, ts, e, by, d in rows]

    def counts(self, visible: Clause | None = None) -> dict[str, int]:
        clause, params = (f" WHERE ({visible[0]})", visible[1]) if visible else ("", [])
        rows = self._fetch(f"SELECT state, count(*) FROM alerts{clause} GROUP BY state", params)
        out = dict.fromkeys(STATES, 0)
        out.update({s: int(n) for s, n in rows})
        return out

    # -- channels ---------------------------------------------------------------------------

    def channels(self) -> list[Channel]:
        rows = self._fetch(
            "SELECT name, type, config, updated_by, updated_ms FROM alert_channels ORDER BY name"
        )
        return [Channel(n, t, json.loads(c), by, int(ts)) for n, t, c, by, ts in rows]

    def save_channel(self, channel: Channel) -> None:
        self._write(
            [
                (
                    "INSERT INTO alert_channels (name, type, config, updated_by, updated_ms)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                    " type = excluded.type, config = excluded.config,"
                    " updated_by = excluded.updated_by, updated_ms = excluded.updated_ms",
                    (
                        channel.name,
                        channel.type,
                        _dumps(channel.config),
                        channel.updated_by,
                        channel.updated_ms,
                    ),
                )
            ]
        )

    def delete_channel(self, name: str) -> bool:
        return self._write([("DELETE FROM alert_channels WHERE name = ?", (name,))])[0] > 0

    # -- dead letters -----------------------------------------------------------------------

    def add_dead_letter(
        self,
        channel: str,
        alert_id: str | None,
        payload: dict[str, Any],
        error: str,
        attempts: int,
        now_ms: int,
    ) -> None:
        self._write(
            [
                (
                    "INSERT INTO alert_dead_letters (channel, alert_id, payload, error, attempts,"
                    " ts_ms) VALUES (?, ?, ?, ?, ?, ?)",
                    (channel, alert_id, _dumps(payload), error[:500], attempts, now_ms),
                )
            ]
        )

    def dead_letters(self, pending_only: bool = True, limit: int = 100) -> list[DeadLetter]:
        rows = self._fetch(
            "SELECT id, channel, alert_id, payload, error, attempts, ts_ms, replayed_ms,"
            " replayed_by FROM alert_dead_letters WHERE replayed_ms IS NULL OR ? = 1"
            " ORDER BY id DESC LIMIT ?",
            (0 if pending_only else 1, max(1, min(limit, MAX_LIST))),
        )
        return [
            DeadLetter(int(i), c, a, json.loads(p), e, int(n), int(ts), r, rb)
            for i, c, a, p, e, n, ts, r, rb in rows
        ]

    def dead_letter(self, letter_id: int) -> DeadLetter | None:
        for d in self.dead_letters(pending_only=False, limit=MAX_LIST):
            if d.id == letter_id:
                return d
        return None

    def mark_replayed(self, letter_id: int, actor: str, now_ms: int) -> bool:
        counts = self._write(
            [
                (
                    "UPDATE alert_dead_letters SET replayed_ms = ?, replayed_by = ?"
                    " WHERE id = ? AND replayed_ms IS NULL",
                    (now_ms, actor, letter_id),
                )
            ]
        )
        return counts[0] > 0

    # -- evaluator snapshot -----------------------------------------------------------------

    def load_snapshot(self, key: str = "engine") -> dict[str, Any] | None:
        rows = self._fetch("SELECT doc FROM alert_engine_state WHERE key = ?", (key,))
        if not rows:
            return None
        value = json.loads(rows[0][0])
        return value if isinstance(value, dict) else None

    def save_snapshot(self, doc: dict[str, Any], now_ms: int, key: str = "engine") -> None:
        self._write(
            [
                (
                    "INSERT INTO alert_engine_state (key, doc, ts_ms) VALUES (?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET doc = excluded.doc, ts_ms = excluded.ts_ms",
                    (key, _dumps(doc), now_ms),
                )
            ]
        )


def _stamped(rule: Rule, version: int, by: str, ts: int) -> Rule:
    from dataclasses import replace

    return replace(rule, version=version, updated_by=by, updated_ms=ts)


__all__ = [
    "ACKNOWLEDGED",
    "FIRING",
    "OPEN_STATES",
    "RESOLVED",
    "STATES",
    "Alert",
    "AlertEvent",
    "AlertStore",
    "Channel",
    "Clause",
    "DeadLetter",
    "RuleVersion",
]
