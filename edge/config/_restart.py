"""Which configuration changes wait for a daemon restart: the schema's ``restart`` flags
(`protocols.settings`), read here so that the daemon has no list of its own.

A reload (or a configuration from the hub) takes every other change at once; a changed
setting flagged ``restart`` is reported (`ApplyOutcome.needs_restart`, the state's
``restart_pending``) and keeps its running value until the daemon restarts. Names as the
wire format reports them: a table whose every setting is flagged by its table's name
(``gateway``, ``buffer``), else ``table.setting`` (``daemon.queue_size``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from protocols import settings

if TYPE_CHECKING:
    from edge.config._load import EdgeConfig

# The typed sections' attribute for a schema setting whose name differs (units in the name).
ATTRIBUTES = {
    "buffer.quota": "quota_bytes",
    "buffer.commit_interval": "commit_interval_s",
    "buffer.max_age": "max_age_s",
    "buffer.segment_size": "segment_bytes",
    "uplink.state_interval": "state_interval_s",
    "uplink.keepalive": "keepalive_s",
    "daemon.put_timeout": "put_timeout_s",
    "daemon.restart_min": "restart_min_s",
    "daemon.restart_max": "restart_max_s",
    "daemon.stop_timeout": "stop_timeout_s",
}


_ALWAYS_PRESENT = ("gateway", "buffer", "daemon")


@dataclasses.dataclass(frozen=True, slots=True)
class RestartTable:
    """The settings of one top-level table flagged ``restart`` in the schema."""

    table: str  # the schema's table, EdgeConfig's attribute (gateway, buffer, daemon)
    settings: tuple[str, ...]  # the schema's names of its flagged settings
    whole: bool  # every setting of the table is flagged

    def attribute(self, setting: str) -> str:
        return ATTRIBUTES.get(f"{self.table}.{setting}", setting)


def restart_tables() -> tuple[RestartTable, ...]:
    """The schema's tables holding settings flagged ``restart``. Only the tables every
    configuration has (gateway, buffer, daemon) may hold one: a flagged setting of an
    optional table, a source or a sensor would need that part to wait, which the daemon
    does not do (`ValueError` if the schema flags one)."""
    out = []
    for name, table in settings.SECTIONS:
        flagged = tuple(f.name for f in table.fields if f.restart)
        if not flagged:
            continue
        if name not in _ALWAYS_PRESENT:
            raise ValueError(f"{name}: a restart flag on a table the daemon reloads")
        out.append(RestartTable(name, flagged, len(flagged) == len(table.fields)))
    return tuple(out)


def _value(section: object, table: RestartTable, setting: str) -> object:
    return getattr(section, table.attribute(setting))


def pending_restart(old: EdgeConfig, new: EdgeConfig) -> tuple[list[str], EdgeConfig]:
    """(the names of the changed settings that wait for a restart, `new` with those
    settings kept at their running value in `old`)."""
    names: list[str] = []
    kept: dict[str, Any] = {}
    for t in restart_tables():
        before, after = getattr(old, t.table), getattr(new, t.table)
        changed = [s for s in t.settings if _value(before, t, s) != _value(after, t, s)]
        if not changed:
            continue
        names += [t.table] if t.whole else [f"{t.table}.{s}" for s in changed]
        kept[t.table] = dataclasses.replace(
            after, **{t.attribute(s): getattr(before, t.attribute(s)) for s in t.settings}
        )
    return names, dataclasses.replace(new, **kept)


__all__ = ["ATTRIBUTES", "RestartTable", "pending_restart", "restart_tables"]
