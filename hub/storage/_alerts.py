"""The tables of alerts (hub/alerts) and of the numériscore (hub/numeriscore), one migration
per backend, appended to each backend's MIGRATIONS.

- `alert_rules`: the current version of each rule (its JSON document); `alert_rule_versions`
  every version ever saved, with who and when (created, updated, enabled, disabled, deleted).
- `alerts`: one row per alert (firing, acknowledged, resolved; who and when);
  `alert_events`: its history (fired, reopened, acknowledged, resolved, delivered, failed).
- `alert_channels`: where alerts go (webhook, mqtt, email, sms hook), as JSON.
- `alert_dead_letters`: deliveries that failed every retry, replayable by an admin.
- `alert_engine_state`: the evaluator's snapshot (pending conditions, last reading per
  sensor, night windows), so that a restarted hub carries on where it stopped.
- `numeriscore_days`: one row per day and service (a gateway, the hub, the fleet).
"""

from __future__ import annotations

SQLITE = """
CREATE TABLE alert_rules (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    updated_by TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE alert_rule_versions (
    rule_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    action TEXT NOT NULL,
    doc TEXT NOT NULL,
    actor TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    PRIMARY KEY (rule_id, version)
);
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    rule_version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    sensor TEXT,
    gateway TEXT,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    summary TEXT NOT NULL,
    value TEXT,
    fired_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    ack_by TEXT,
    ack_ms INTEGER,
    resolved_by TEXT,
    resolved_ms INTEGER,
    flaps INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alerts_state ON alerts (state, fired_ms);
CREATE INDEX alerts_rule_subject ON alerts (rule_id, subject, fired_ms);
CREATE TABLE alert_events (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    event TEXT NOT NULL,
    actor TEXT,
    detail TEXT
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, id);
CREATE TABLE alert_channels (
    name TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    config TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE alert_dead_letters (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    alert_id TEXT,
    payload TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    replayed_ms INTEGER,
    replayed_by TEXT
);
CREATE TABLE alert_engine_state (
    key TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE TABLE numeriscore_days (
    day TEXT NOT NULL,
    service TEXT NOT NULL,
    doc TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (day, service)
)
"""

POSTGRES = (
    SQLITE.replace("INTEGER PRIMARY KEY,", "bigserial PRIMARY KEY,")
    .replace("INTEGER", "bigint")
    .replace("TEXT", "text")
)

__all__ = ["POSTGRES", "SQLITE"]
