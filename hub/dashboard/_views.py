"""What the pages show, gathered from the hub's storage and the fleet registry: plain
records the templates read, no HTML here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time

from fleet import AuditEntry, Fleet, NotFound
from fleet import Gateway as Enrolled
from hub.storage import GatewayInfo, SensorLatest, SourceStatus, Storage


@dataclass(frozen=True, slots=True)
class GatewayRow:
    """One gateway as the fleet overview shows it: the hub's view of its link (storage) and
    the registry's view of its enrollment, software and configuration (fleet)."""

    id: str
    state: str  # online | offline | unknown | revoked
    link: GatewayInfo | None
    enrolled: Enrolled | None

    @property
    def group(self) -> str | None:
        return self.enrolled.group if self.enrolled else None

    @property
    def site(self) -> str | None:
        return self.enrolled.site if self.enrolled else None

    @property
    def software(self) -> str | None:
        return self.enrolled.software if self.enrolled else None

    @property
    def drift(self) -> bool | None:
        return self.enrolled.drift if self.enrolled else None

    @property
    def last_seen_ms(self) -> int | None:
        return self.link.last_seen_ms if self.link else None

    @property
    def backlog(self) -> int | None:
        return self.link.backlog if self.link else None

    @property
    def readings(self) -> int:
        return self.link.readings if self.link else 0

    @property
    def last_error(self) -> str | None:
        return self.link.last_error if self.link else None

    @property
    def last_error_ms(self) -> int | None:
        return self.link.last_error_ms if self.link else None

    @property
    def rejected(self) -> dict[str, int]:
        return self.link.rejected if self.link else {}

    @property
    def sources(self) -> tuple[SourceStatus, ...] | None:
        """Per-source health from the gateway's latest state (None: not reported)."""
        return self.link.sources if self.link else None

    @property
    def restart_pending(self) -> tuple[str, ...]:
        return self.link.restart_pending if self.link else ()

    def source_counts(self) -> dict[str, int]:
        counts = {"ok": 0, "degraded": 0, "down": 0}
        for source in self.sources or ():
            counts[source.status] = counts.get(source.status, 0) + 1
        return counts

    @property
    def needs_attention(self) -> bool:
        """Offline, behind its configuration, waiting for a restart, or a reader not working."""
        counts = self.source_counts()
        return (
            self.state == "offline"
            or bool(self.drift)
            or bool(self.restart_pending)
            or counts["down"] > 0
            or counts["degraded"] > 0
        )

    def figure(self, name: str) -> int | float | None:
        """A figure of the gateway's latest footprint (its state messages)."""
        if self.link is None or self.link.footprint is None:
            return None
        return self.link.footprint.get(name)

    def per_reading(self, name: str) -> float | None:
        value = self.figure(name)
        if value is None or not self.readings:
            return None
        return value / self.readings


def gateway_rows(storage: Storage, fleet: Fleet | None) -> list[GatewayRow]:
    """Every gateway the hub heard from or the registry knows, by id."""
    links = {g.gateway: g for g in storage.gateways()}
    enrolled = {g.id: g for g in fleet.gateways()} if fleet is not None else {}
    rows = []
    for gid in sorted(links.keys() | enrolled.keys()):
        link, reg = links.get(gid), enrolled.get(gid)
        state = "revoked" if reg is not None and reg.state == "revoked" else "unknown"
        if state != "revoked" and link is not None:
            state = link.state
        rows.append(GatewayRow(gid, state, link, reg))
    return rows


def gateway_row(storage: Storage, fleet: Fleet | None, gateway_id: str) -> GatewayRow | None:
    for row in gateway_rows(storage, fleet):
        if row.id == gateway_id:
            return row
    return None


def fleet_summary(rows: Sequence[GatewayRow]) -> dict[str, int]:
    counts = {"online": 0, "offline": 0, "unknown": 0, "revoked": 0, "total": len(rows)}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    return counts


def history(fleet: Fleet | None, gateway_id: str, limit: int = 50) -> list[AuditEntry]:
    """What the registry recorded about one gateway, newest first: its enrollment, the
    configuration changes that reached it (its own layer, its group's, the fleet's), its
    reports (applied, rolled back, refused) and the commands sent to it."""
    if fleet is None:
        return []
    try:
        group = fleet.gateway(gateway_id).group
    except NotFound:
        return []
    entries = fleet.audit(limit, target=gateway_id)
    for layer in (f"gateway:{gateway_id}", f"group:{group}", "fleet"):
        entries += fleet.audit(limit, target=layer, action="config.")
    entries.sort(key=lambda e: e.ts_ms, reverse=True)
    return entries[:limit]


@dataclass(frozen=True, slots=True)
class SensorView:
    """A sensor's latest values, one per quantity."""

    id: str
    gateway: str
    latest: list[SensorLatest] = field(default_factory=list)

    @property
    def last_ms(self) -> int:
        return max(s.ts_ms for s in self.latest)


def sensors(storage: Storage, gateway: str | None = None) -> list[SensorView]:
    """Sensors with their latest values (of one gateway when given), by id."""
    by_id: dict[str, SensorView] = {}
    for s in storage.sensors():
        if gateway is not None and s.gateway != gateway:
            continue
        view = by_id.setdefault(s.sensor, SensorView(s.sensor, s.gateway))
        view.latest.append(s)
    for view in by_id.values():
        view.latest.sort(key=lambda s: s.quantity)
    return [by_id[k] for k in sorted(by_id)]


def sensor(storage: Storage, sensor_id: str) -> SensorView | None:
    """One sensor's latest values (from its series, not a scan of every sensor)."""
    series = storage.series_list(sensor_id)
    latest = storage.latest_of([s.id for s in series])
    if not latest:
        return None
    values = sorted(latest.values(), key=lambda s: (s.quantity, s.unit or ""))
    newest = max(values, key=lambda s: s.ts_ms)
    return SensorView(sensor_id, newest.gateway, values)


def day_span(
    first: str | None, last: str | None, now_ms: int, max_days: int
) -> tuple[int, int] | None:
    """[first 00:00, last + 1 day 00:00) UTC in milliseconds from two dates (YYYY-MM-DD;
    `last` empty: up to now), or None when `first` is empty. ValueError("format" | "order" |
    "long") says what is wrong."""
    if not first:
        return None
    try:
        start = datetime.combine(date.fromisoformat(first), dt_time(), UTC)
        end = (
            datetime.combine(date.fromisoformat(last), dt_time(), UTC) + timedelta(days=1)
            if last
            else datetime.fromtimestamp(now_ms / 1000, UTC)
        )
    except ValueError:
        raise ValueError("format") from None
    if end <= start:
        raise ValueError("order")
    if end - start > timedelta(days=max_days):
        raise ValueError("long")
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


__all__ = [
    "GatewayRow",
    "SensorView",
    "day_span",
    "fleet_summary",
    "gateway_row",
    "gateway_rows",
    "history",
    "is_number",
    "sensor",
    "sensors",
]
