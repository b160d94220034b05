"""The alert engine: rules evaluated on ingest, in memory, on the event loop.

Ingest hands the engine every committed batch and every gateway state (it is an
`IngestObserver`); the engine never polls the database. Each rule kind turns readings (or
states, or the passing of time) into observations of a condition on a subject:

    met=True   the condition holds          (bin fill >= 80, meter says leak, ...)
    met=False  the condition is clear        (fill back under the clear level, ...)
    met=None   in the hysteresis band: no change

and one machine turns observations into an alert's life:

    normal ──met──▶ pending ──held for `for`──▶ FIRING ──ack──▶ ACKNOWLEDGED
                                                  │  ▲                │
                                       clear      │  │ met again      │ clear
                                                  ▼  │ (a flap)       ▼
                                               clearing ──clear for `damping`──▶ RESOLVED

- One alert per (rule, subject) at a time: readings that keep the condition true update it,
  never duplicate it.
- Flap damping: an alert resolves only once its condition has stayed clear for the rule's
  `damping` (default 5 min); a condition that comes back meanwhile is counted as a flap on
  the same alert, and nothing is sent.
- Time: "now" is the wall clock, or with `clock="event"` the latest reading time ingested (a
  replay or a backfill runs days in seconds). Timers (silence, `for`, night windows, damping)
  run on a tick of that clock, in memory: a heap of deadlines, not a query.
- Transitions are written to the hub's storage by a writer task (bounded queue) and only
  then handed to delivery; the evaluator's state is saved every minute and at shutdown, and
  open alerts are reloaded at start: a restarted hub neither forgets nor repeats an alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
import uuid
import zoneinfo
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from hub.alerts._rules import GATEWAY_KINDS, Rule
from hub.alerts._store import (
    ACKNOWLEDGED,
    FIRING,
    RESOLVED,
    Alert,
    AlertEvent,
    AlertStore,
)
from hub.storage import GatewayState, IngestBatch, StorageThread

log = logging.getLogger("estran.hub.alerts")

SYSTEM = "system"  # the actor of what the engine does by itself
SOURCE_DOWN_STATES = frozenset({"down"})  # protocols.wire SourceHealth: ok, degraded, down


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class AlertSettings:
    tz: str = "Europe/Paris"  # local time of night windows (a rule may name its own)
    clock: str = "wall"  # "wall", or "event": now is the latest reading time ingested
    tick_s: float = 1.0  # how often timers are checked (wall clock)
    snapshot_s: float = 60.0  # how often the evaluator's state is saved
    write_queue: int = 10_000  # transitions waiting to be written
    reload_s: float = 5.0  # how often rules (the CLI writes them) and groups are re-read


@dataclass(frozen=True, slots=True)
class Notification:
    """What delivery receives once a transition is committed."""

    event: str  # "fired" | "resolved"
    alert: Alert
    channels: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        return {"event": self.event, "alert": self.alert.as_dict()}


@dataclass(slots=True)
class _Pending:
    since_ms: int
    for_s: float
    value: Any
    summary: str
    sensor: str | None
    gateway: str | None


@dataclass(slots=True)
class _Night:
    date: str  # local date of the window
    count: int = 0
    min: float | None = None


@dataclass(slots=True)
class EngineStats:
    observed: int = 0  # readings looked at by at least one rule
    fired: int = 0
    resolved: int = 0
    flaps: int = 0
    write_dropped: int = 0  # transitions lost because the writer queue was full
    write_errors: int = 0
    observer_errors: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)


def default_kind(sensor: str) -> str:
    """A sensor's kind from its id: "bin-007" -> "bin" (the sensor catalogue, where it has
    one, says better)."""
    head, sep, tail = sensor.rpartition("-")
    return head if sep and tail.isdigit() else sensor


class AlertEngine:
    """Evaluate rules on ingest. `await engine.run()` (cancel to stop) loads rules, open
    alerts and the saved state, then runs the writer, the ticker and the snapshots."""

    def __init__(
        self,
        storage: StorageThread,
        settings: AlertSettings | None = None,
        *,
        notify: Callable[[Notification], None] | None = None,
        gateway_group: Callable[[], dict[str, str]] | None = None,
        sensor_kind: Callable[[str], str] | None = None,
        sensor_dataset: Callable[[str], str | None] | None = None,
    ) -> None:
        self.thread = storage
        self.store = AlertStore(storage.storage)
        self.settings = settings or AlertSettings()
        self.notify = notify
        self._group_source = gateway_group
        self._groups: dict[str, str] = {}
        # kinds and datasets: the hub's sensor catalogue when its storage has one
        # (sensor_catalogue()), re-read with the rules; else kinds from the sensor ids
        self._kinds: dict[str, str] = {}
        self._catalogue_seen: int | None = None  # the catalogue version _kinds is from
        self._datasets: dict[str, str] = {}
        self.sensor_kind = sensor_kind or (lambda s: self._kinds.get(s) or default_kind(s))
        self.sensor_dataset = sensor_dataset or self._datasets.get
        self.stats = EngineStats()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = asyncio.Event()
        self._rules: dict[str, Rule] = {}
        self._sensor_rules: list[Rule] = []
        self._gateway_rules: list[Rule] = []
        self._scope_cache: dict[tuple[str, str], list[Rule]] = {}
        self._open: dict[tuple[str, str], Alert] = {}
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._clearing: dict[tuple[str, str], int] = {}  # since when clear
        self._suppressed: set[tuple[str, str]] = set()  # resolved by hand while still met
        self._dirty: set[tuple[str, str]] = set()  # open alerts with a newer value to write
        self._last_seen: dict[tuple[str, str], int] = {}  # (rule, sensor) -> ts (silence)
        self._deadlines: list[tuple[int, str, str]] = []  # (due, rule, sensor)
        self._nights: dict[tuple[str, str], _Night] = {}
        self._windows: dict[tuple[str, str], deque[tuple[int, float]]] = {}
        self._last_value: dict[tuple[str, str], Any] = {}
        self._prev_index: dict[tuple[str, str], tuple[int, float]] = {}  # night_flow counters
        self._gateway_seen: dict[str, tuple[bool, int]] = {}
        self._watermark = 0
        self._queue: asyncio.Queue[tuple[list[Alert], list[AlertEvent], list[Notification]]] = (
            asyncio.Queue(self.settings.write_queue)
        )
        self._batch_alerts: list[Alert] = []
        self._batch_events: list[AlertEvent] = []
        self._batch_notes: list[Notification] = []

    # -- time -------------------------------------------------------------------------------

    def now_ms(self) -> int:
        if self.settings.clock == "event":
            return self._watermark
        return wall_ms()

    # -- loading ----------------------------------------------------------------------------

    async def load(self) -> None:
        """Rules, open alerts and the saved evaluator state, from storage."""
        rules = await self.thread.call(self.store.rules)
        self.set_rules(rules)
        alerts = await self.thread.call(self.store.open_alerts)
        self._open = {(a.rule_id, a.subject): a for a in alerts}
        snapshot = await self.thread.call(self.store.load_snapshot)
        if snapshot:
            self._restore(snapshot)
        await self._refresh_groups()

    def set_rules(self, rules: Sequence[Rule]) -> None:
        self._rules = {r.id: r for r in rules if r.enabled}
        self._sensor_rules = [r for r in self._rules.values() if r.kind not in GATEWAY_KINDS]
        self._gateway_rules = [r for r in self._rules.values() if r.kind in GATEWAY_KINDS]
        self._scope_cache.clear()
        # state of rules that went away (disabled or deleted)
        tables: tuple[dict[tuple[str, str], Any], ...] = (
            self._pending,
            self._clearing,
            self._nights,
            self._windows,
            self._last_seen,
            self._last_value,
            self._prev_index,
        )
        for table in tables:
            for key in [k for k in table if k[0] not in self._rules]:
                del table[key]
        self._suppressed = {k for k in self._suppressed if k[0] in self._rules}
        # their open alerts end: nothing watches them any more (nothing is sent either)
        for key, alert in list(self._open.items()):
            if key[0] not in self._rules:
                now = self.now_ms() or wall_ms()
                self._resolve(key, alert, max(now, alert.last_ms), SYSTEM, "rule disabled")
        self._flush()

    async def reload_rules(self) -> None:
        self.set_rules(await self.thread.call(self.store.rules))

    async def refresh(self) -> None:
        """Re-read the rules, the gateways' groups and the sensor catalogue (the ticker does
        it every `reload_s`)."""
        try:
            await self.reload_rules()
        except Exception as e:
            log.warning("alerts: reloading the rules failed: %s", e)
        await self._refresh_groups()

    async def _refresh_groups(self) -> None:
        """Re-read the gateways' groups and the sensors' kinds and datasets."""
        if self._group_source is not None:
            try:
                self._groups = await asyncio.to_thread(self._group_source)
            except Exception:
                log.exception("alerts: reading the gateway groups failed")
        catalogue = getattr(self.thread.storage, "sensor_catalogue", None)
        version_of = getattr(self.thread.storage, "catalogue_version", None)
        if catalogue is not None:
            entries = None
            try:
                # The whole catalogue (10,000 sensors: a few tenths of a second of this
                # process's CPU) only when a catalogue write raised its version since.
                version = None if version_of is None else await self.thread.call(version_of)
                if version is None or version != self._catalogue_seen:
                    entries = await self.thread.call(catalogue)
            except Exception as e:
                log.warning("alerts: reading the sensor catalogue failed: %s", e)
            else:
                self._catalogue_seen = version
            if entries is not None:
                kinds = {e.sensor: e.kind for e in entries if getattr(e, "kind", None)}
                datasets = {e.sensor: e.dataset for e in entries if getattr(e, "dataset", None)}
                self._kinds.clear()
                self._kinds.update(kinds)
                self._datasets.clear()
                self._datasets.update(datasets)
        self._scope_cache.clear()

    # -- the observer interface (hub._ingest.IngestObserver) --------------------------------

    def committed(self, batches: Sequence[IngestBatch], seconds: float) -> None:
        try:
            for batch in batches:
                self._batch(batch)
            if self.settings.clock == "event":
                self.tick()
            self._flush()
        except Exception:
            self.stats.observer_errors += 1
            log.exception("alerts: evaluation failed")

    def state(self, gateway: str, state: GatewayState, applied: bool) -> None:
        if not applied:
            return
        try:
            self._gateway_state(gateway, state)
            self._flush()
        except Exception:
            self.stats.observer_errors += 1
            log.exception("alerts: evaluation of a gateway state failed")

    # -- scope ------------------------------------------------------------------------------

    def _in_scope(self, rule: Rule, sensor: str | None, gateway: str) -> bool:
        t, v = rule.scope.type, rule.scope.value
        if t == "all":
            return True
        if t == "gateway":
            return gateway == v
        if t == "group":
            return self._groups.get(gateway) == v
        if sensor is None:
            return False
        if t == "sensor":
            return sensor == v
        if t == "kind":
            return self.sensor_kind(sensor) == v
        if t == "dataset":
            return self.sensor_dataset(sensor) == v
        return False

    def _rules_for(self, sensor: str, gateway: str) -> list[Rule]:
        key = (sensor, gateway)
        rules = self._scope_cache.get(key)
        if rules is None:
            if len(self._scope_cache) > 100_000:
                self._scope_cache.clear()
            rules = self._scope_cache[key] = [
                r for r in self._sensor_rules if self._in_scope(r, sensor, gateway)
            ]
        return rules

    # -- readings ---------------------------------------------------------------------------

    def _batch(self, batch: IngestBatch) -> None:
        gw = batch.gateway
        per_series: list[list[Rule]] = []
        any_rule = False
        for sensor, quantity, _unit in batch.series:
            relevant = [
                r
                for r in self._rules_for(sensor, gw)
                if r.kind == "silence"
                or (r.kind == "meter_flag" and quantity in r.params["flags"])
                or r.quantity == quantity
            ]
            per_series.append(relevant)
            any_rule = any_rule or bool(relevant)
        if batch.ts_ms:
            self._watermark = max(self._watermark, max(batch.ts_ms))
        if not any_rule:
            return
        series = batch.series
        values = batch.values
        ts_ms = batch.ts_ms
        for i, si in enumerate(batch.series_index):
            rules = per_series[si]
            if not rules:
                continue
            sensor, quantity, _unit = series[si]
            self.stats.observed += 1
            for rule in rules:
                self._reading(rule, sensor, quantity, ts_ms[i], values[i], gw)

    def _reading(
        self, rule: Rule, sensor: str, quantity: str, ts: int, value: Any, gateway: str
    ) -> None:
        kind = rule.kind
        p = rule.params
        if kind == "silence":
            key = (rule.id, sensor)
            last = self._last_seen.get(key)
            if last is None or ts > last:
                self._last_seen[key] = ts
                heapq.heappush(self._deadlines, (ts + int(p["after_s"] * 1000), rule.id, sensor))
            self._observe(rule, sensor, False, ts, None, "", sensor, gateway)
            return
        if kind == "meter_flag":
            subject = f"{sensor}/{quantity}"
            met = bool(value) if value is not None else None
            self._observe(
                rule,
                subject,
                met,
                ts,
                value,
                f"{sensor}: the meter reports {quantity}",
                sensor,
                gateway,
            )
            return
        if value is None or isinstance(value, str):
            return
        v = float(value)
        if kind == "threshold":
            op = p["op"]
            limit, clear = p["value"], p["clear"]
            if op == ">=":
                met = True if v >= limit else (False if v < clear else None)
            elif op == ">":
                met = True if v > limit else (False if v <= clear else None)
            elif op == "<=":
                met = True if v <= limit else (False if v > clear else None)
            else:
                met = True if v < limit else (False if v >= clear else None)
            self._observe(
                rule,
                sensor,
                met,
                ts,
                value,
                f"{sensor}: {quantity} {v:g} {op} {limit:g}",
                sensor,
                gateway,
                p["for_s"],
            )
        elif kind == "rate":
            self._rate(rule, sensor, quantity, ts, v, gateway)
        elif kind == "change":
            key = (rule.id, sensor)
            previous = self._last_value.get(key)
            self._last_value[key] = v
            if previous is None and not v:
                return
            state = "on" if v else "off"
            self._observe(
                rule, sensor, bool(v), ts, value, f"{sensor}: {quantity} {state}", sensor, gateway
            )
        elif kind == "night_flow":
            self._night(rule, sensor, ts, v, gateway)

    def _rate(self, rule: Rule, sensor: str, quantity: str, ts: int, v: float, gw: str) -> None:
        p = rule.params
        key = (rule.id, sensor)
        window = self._windows.setdefault(key, deque())
        horizon = ts - int(p["window_s"] * 1000)
        while window and window[0][0] < horizon:
            window.popleft()
        window.append((ts, v))
        lo = min(x for _, x in window)
        hi = max(x for _, x in window)
        rise, fall = v - lo, hi - v
        direction = p["direction"]
        change = rise if direction == "rise" else fall if direction == "fall" else max(rise, fall)
        met = change >= p["change"]
        self._observe(
            rule,
            sensor,
            met,
            ts,
            v,
            f"{sensor}: {quantity} changed by {change:g} within {p['window_s']:g} s",
            sensor,
            gw,
        )

    def _local(self, rule: Rule, ts: int) -> datetime:
        return datetime.fromtimestamp(ts / 1000, zoneinfo.ZoneInfo(rule.params["tz"]))

    def _night(self, rule: Rule, sensor: str, ts: int, v: float, gw: str) -> None:
        p = rule.params
        key = (rule.id, sensor)
        local = self._local(rule, ts)
        minute = local.hour * 60 + local.minute
        night = self._nights.get(key)
        if night is not None and (local.date().isoformat() != night.date or minute >= p["end_min"]):
            self._close_night(rule, sensor, night, gw)
            night = None
        flow = v
        if p["counter"]:  # an index (m3): the flow is its increase per hour
            prev = self._prev_index.get(key)
            self._prev_index[key] = (ts, v)
            if prev is None or ts <= prev[0]:
                return
            flow = (v - prev[1]) / ((ts - prev[0]) / 3_600_000)
        if p["start_min"] <= minute < p["end_min"]:
            night = self._nights.setdefault(key, _Night(local.date().isoformat()))
            night.count += 1
            night.min = flow if night.min is None else min(night.min, flow)

    def _close_night(self, rule: Rule, sensor: str, night: _Night, gw: str | None) -> None:
        key = (rule.id, sensor)
        self._nights.pop(key, None)
        p = rule.params
        if night.count < p["min_readings"] or night.min is None:
            return
        end = datetime.fromisoformat(night.date).replace(
            hour=p["end_min"] // 60,
            minute=p["end_min"] % 60,
            tzinfo=zoneinfo.ZoneInfo(p["tz"]),
        )
        ts = int(end.timestamp() * 1000)
        met = night.min > p["zero"]
        start = f"{p['start_min'] // 60:02d}:{p['start_min'] % 60:02d}"
        stop = f"{p['end_min'] // 60:02d}:{p['end_min'] % 60:02d}"
        summary = (
            f"{sensor}: flow never dropped to zero between {start} and {stop} on {night.date}"
            f" (minimum {night.min:g}): suspected leak"
        )
        self._observe(rule, sensor, met, ts, round(night.min, 6), summary, sensor, gw)

    # -- gateways ---------------------------------------------------------------------------

    def _gateway_state(self, gateway: str, state: GatewayState) -> None:
        now = self.now_ms() or wall_ms()
        self._gateway_seen[gateway] = (state.online, now)
        for rule in self._gateway_rules:
            if not self._in_scope(rule, None, gateway):
                continue
            p = rule.params
            if rule.kind == "gateway_offline":
                self._observe(
                    rule,
                    gateway,
                    not state.online,
                    now,
                    {"online": state.online},
                    f"gateway {gateway} is offline",
                    None,
                    gateway,
                    p["after_s"],
                )
            elif rule.kind == "buffer_quota":
                self._buffer(rule, gateway, state, now)
            elif rule.kind == "source_down":
                self._sources(rule, gateway, state, now)

    def _buffer(self, rule: Rule, gateway: str, state: GatewayState, now: int) -> None:
        fp = state.footprint or {}
        used = fp.get("buffer_bytes")
        quota = fp.get("quota_bytes")
        if not state.online or used is None or not quota:
            return
        ratio = used / quota
        p = rule.params
        met = True if ratio >= p["ratio"] else (False if ratio < p["clear"] else None)
        self._observe(
            rule,
            gateway,
            met,
            now,
            {"used_bytes": used, "quota_bytes": quota},
            f"gateway {gateway}: buffer at {ratio:.0%} of its quota",
            None,
            gateway,
        )

    def _sources(self, rule: Rule, gateway: str, state: GatewayState, now: int) -> None:
        """Per-source health from the gateway's state message (None: not reported, keep)."""
        if state.sources is None:
            return
        wanted = rule.params["source"]
        for source in state.sources:
            if wanted is not None and source.name != wanted:
                continue
            down = source.status in SOURCE_DOWN_STATES
            self._observe(
                rule,
                f"{gateway}/{source.name}",
                down if state.online else None,
                now,
                {"status": source.status, "detail": source.detail, "errors": source.errors},
                f"gateway {gateway}: source {source.name} is {source.status}"
                + (f" ({source.detail})" if source.detail else ""),
                None,
                gateway,
                rule.params["after_s"],
            )

    # -- the alert machine ------------------------------------------------------------------

    def _observe(
        self,
        rule: Rule,
        subject: str,
        met: bool | None,
        ts: int,
        value: Any,
        summary: str,
        sensor: str | None,
        gateway: str | None,
        for_s: float = 0.0,
    ) -> None:
        if met is None:
            return
        key = (rule.id, subject)
        alert = self._open.get(key)
        if met:
            if key in self._suppressed:
                return
            if alert is not None:
                if key in self._clearing:  # came back before the damping ran out: a flap
                    del self._clearing[key]
                    alert.flaps += 1
                    self.stats.flaps += 1
                    self._event(alert, ts, "flap", None, {"value": value})
                    self._persist(alert)
                alert.value = value
                alert.last_ms = max(alert.last_ms, ts)
                self._dirty.add(key)
                return
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending(ts, for_s, value, summary, sensor, gateway)
            else:
                pending.value, pending.summary = value, summary
            if ts - pending.since_ms >= for_s * 1000:
                del self._pending[key]
                self._fire(rule, subject, ts, value, summary, sensor, gateway)
            return
        self._pending.pop(key, None)
        self._suppressed.discard(key)
        if alert is not None and key not in self._clearing:
            if rule.damping_s <= 0:
                self._resolve(key, alert, ts, SYSTEM, "cleared")
            else:
                self._clearing[key] = ts

    def _fire(
        self,
        rule: Rule,
        subject: str,
        ts: int,
        value: Any,
        summary: str,
        sensor: str | None,
        gateway: str | None,
    ) -> None:
        alert = Alert(
            id=uuid.uuid4().hex[:20],
            rule_id=rule.id,
            rule_version=rule.version,
            kind=rule.kind,
            subject=subject,
            sensor=sensor,
            gateway=gateway,
            severity=rule.severity,
            state=FIRING,
            summary=summary[:500],
            value=value,
            fired_ms=ts,
            last_ms=ts,
        )
        self._open[(rule.id, subject)] = alert
        self.stats.fired += 1
        self.stats.by_rule[rule.id] = self.stats.by_rule.get(rule.id, 0) + 1
        self._event(alert, ts, "fired", SYSTEM, {"value": value})
        self._persist(alert, "fired", rule.channels)

    def _resolve(self, key: tuple[str, str], alert: Alert, ts: int, actor: str, why: str) -> None:
        self._open.pop(key, None)
        self._clearing.pop(key, None)
        alert.state = RESOLVED
        alert.resolved_by = actor
        alert.resolved_ms = ts
        alert.last_ms = max(alert.last_ms, ts)
        self.stats.resolved += 1
        self._event(alert, ts, "resolved", actor, {"why": why})
        rule = self._rules.get(alert.rule_id)
        self._persist(alert, "resolved", rule.channels if rule is not None else ())

    def _event(
        self, alert: Alert, ts: int, event: str, actor: str | None, detail: dict[str, Any]
    ) -> None:
        self._batch_events.append(AlertEvent(alert.id, ts, event, actor, detail))

    def _persist(
        self, alert: Alert, notify: str | None = None, channels: Sequence[str] = ()
    ) -> None:
        snapshot = replace(alert)
        self._batch_alerts.append(snapshot)
        if notify is not None:
            self._batch_notes.append(Notification(notify, snapshot, tuple(channels)))

    def _flush(self) -> None:
        if not (self._batch_alerts or self._batch_events):
            return
        item = (self._batch_alerts, self._batch_events, self._batch_notes)
        self._batch_alerts, self._batch_events, self._batch_notes = [], [], []
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.stats.write_dropped += len(item[0])
            log.error("alerts: writer queue full, %d transitions dropped", len(item[0]))

    # -- timers -----------------------------------------------------------------------------

    def tick(self, now: int | None = None) -> None:
        """Fire what waited long enough (pending `for`, silences, closed night windows),
        resolve what stayed clear long enough (damping)."""
        now = self.now_ms() if now is None else now
        if now <= 0:
            return
        for key, pending in list(self._pending.items()):
            if now - pending.since_ms >= pending.for_s * 1000:
                rule = self._rules.get(key[0])
                del self._pending[key]
                if rule is not None and key not in self._open:
                    fired_at = pending.since_ms + int(pending.for_s * 1000)
                    self._fire(
                        rule,
                        key[1],
                        fired_at,
                        pending.value,
                        pending.summary,
                        pending.sensor,
                        pending.gateway,
                    )
        while self._deadlines and self._deadlines[0][0] <= now:
            due, rule_id, sensor = heapq.heappop(self._deadlines)
            rule = self._rules.get(rule_id)
            last = self._last_seen.get((rule_id, sensor))
            if rule is None or rule.kind != "silence" or last is None:
                continue
            if last + int(rule.params["after_s"] * 1000) != due:
                continue  # a newer reading moved the deadline
            after = rule.params["after_s"]
            self._observe(
                rule,
                sensor,
                True,
                due,
                {"last_ms": last},
                f"{sensor}: no reading for {_human(after)}",
                sensor,
                None,
            )
        for key, night in list(self._nights.items()):
            rule = self._rules.get(key[0])
            if rule is None:
                continue
            end = datetime.fromisoformat(night.date).replace(
                hour=rule.params["end_min"] // 60,
                minute=rule.params["end_min"] % 60,
                tzinfo=zoneinfo.ZoneInfo(rule.params["tz"]),
            )
            if now >= end.timestamp() * 1000:
                self._close_night(rule, key[1], night, None)
        for key, since in list(self._clearing.items()):
            rule = self._rules.get(key[0])
            alert = self._open.get(key)
            if alert is None:
                del self._clearing[key]
            elif rule is None or now - since >= rule.damping_s * 1000:
                self._resolve(key, alert, since if rule is None else now, SYSTEM, "cleared")
        for key in self._dirty:
            alert = self._open.get(key)
            if alert is not None:
                self._persist(alert)
        self._dirty.clear()
        self._flush()

    # -- people -----------------------------------------------------------------------------

    async def acknowledge(self, alert_id: str, actor: str, note: str = "") -> Alert | None:
        """Acknowledge an open alert; None when it is not open (unknown or resolved)."""
        for alert in self._open.values():
            if alert.id == alert_id:
                if alert.state == FIRING:
                    alert.state = ACKNOWLEDGED
                    alert.ack_by = actor
                    alert.ack_ms = wall_ms()
                    self._event(alert, alert.ack_ms, "acknowledged", actor, {"note": note})
                    self._persist(alert)
                    await self._write_now()
                return replace(alert)
        return None

    async def resolve(self, alert_id: str, actor: str, note: str = "") -> Alert | None:
        """Resolve an open alert by hand. If its condition still holds, it does not fire
        again until the condition has cleared once."""
        for key, alert in list(self._open.items()):
            if alert.id == alert_id:
                self._suppressed.add(key)
                self._resolve(key, alert, wall_ms(), actor, note or "by hand")
                await self._write_now()
                return replace(alert)
        return None

    async def _write_now(self) -> None:
        """Write what is batched now, in order after what is queued."""
        item = (self._batch_alerts, self._batch_events, self._batch_notes)
        self._batch_alerts, self._batch_events, self._batch_notes = [], [], []
        await self._queue.put(item)
        await self._queue.join()

    async def drain(self) -> None:
        """Wait until every transition so far is written (and handed to delivery)."""
        self._flush()
        await self._queue.join()

    def open_alerts(self) -> list[Alert]:
        return [replace(a) for a in self._open.values()]

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.load()
        self.ready.set()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._writer(), name="alerts-writer")
                tg.create_task(self._ticker(), name="alerts-ticker")
                tg.create_task(self._snapshots(), name="alerts-snapshots")
        finally:
            self.ready.clear()

    async def _writer(self) -> None:
        while True:
            alerts, events, notes = await self._queue.get()
            try:
                for attempt in range(5):
                    try:
                        await self.thread.call(self.store.record, alerts, events)
                        break
                    except Exception as e:
                        self.stats.write_errors += 1
                        log.error("alerts: writing %d transitions failed: %s", len(alerts), e)
                        if attempt == 4:
                            raise
                        await asyncio.sleep(0.5 * 2**attempt)
                if self.notify is not None:
                    for note in notes:
                        self.notify(note)
            except Exception:
                log.error("alerts: %d transitions not written", len(alerts))
            finally:
                self._queue.task_done()

    async def _ticker(self) -> None:
        last_groups = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.tick_s)
            try:
                self.tick()
            except Exception:
                self.stats.observer_errors += 1
                log.exception("alerts: timer evaluation failed")
            if time.monotonic() - last_groups > self.settings.reload_s:
                last_groups = time.monotonic()
                await self.refresh()

    async def _snapshots(self) -> None:
        while True:
            await asyncio.sleep(self.settings.snapshot_s)
            await self.save()

    async def save(self) -> None:
        """Save the evaluator's state now."""
        with contextlib.suppress(Exception):
            await self.thread.call(self.store.save_snapshot, self.snapshot(), wall_ms())

    def save_sync(self) -> None:
        """Save the evaluator's state from outside the loop (at shutdown)."""
        try:
            self.store.save_snapshot(self.snapshot(), wall_ms())
        except Exception as e:
            log.warning("alerts: state not saved at shutdown: %s", e)

    def snapshot(self) -> dict[str, Any]:
        def k(key: tuple[str, str]) -> str:
            return f"{key[0]}\x1f{key[1]}"

        return {
            "version": 1,
            "watermark": self._watermark,
            "pending": {
                k(key): [p.since_ms, p.for_s, p.value, p.summary, p.sensor, p.gateway]
                for key, p in self._pending.items()
            },
            "clearing": {k(key): since for key, since in self._clearing.items()},
            "suppressed": [k(key) for key in self._suppressed],
            "last_seen": {k(key): ts for key, ts in self._last_seen.items()},
            "nights": {k(key): [n.date, n.count, n.min] for key, n in self._nights.items()},
            "last_value": {k(key): v for key, v in self._last_value.items()},
            "prev_index": {k(key): list(v) for key, v in self._prev_index.items()},
        }

    def _restore(self, doc: dict[str, Any]) -> None:
        def key(text: str) -> tuple[str, str]:
            rule, _, subject = text.partition("\x1f")
            return rule, subject

        try:
            self._watermark = max(self._watermark, int(doc.get("watermark", 0)))
            for text, (since, for_s, value, summary, sensor, gw) in doc.get("pending", {}).items():
                self._pending[key(text)] = _Pending(since, for_s, value, summary, sensor, gw)
            for text, since in doc.get("clearing", {}).items():
                if key(text) in self._open:
                    self._clearing[key(text)] = int(since)
            self._suppressed = {key(t) for t in doc.get("suppressed", [])}
            for text, ts in doc.get("last_seen", {}).items():
                rule = self._rules.get(key(text)[0])
                self._last_seen[key(text)] = int(ts)
                if rule is not None and rule.kind == "silence":
                    due = int(ts) + int(rule.params["after_s"] * 1000)
                    heapq.heappush(self._deadlines, (due, rule.id, key(text)[1]))
            for text, (date, count, low) in doc.get("nights", {}).items():
                self._nights[key(text)] = _Night(date, count, low)
            for text, v in doc.get("last_value", {}).items():
                self._last_value[key(text)] = v
            for text, v in doc.get("prev_index", {}).items():
                self._prev_index[key(text)] = (int(v[0]), float(v[1]))
        except (TypeError, ValueError, AttributeError) as e:
            log.warning("alerts: saved evaluator state unreadable, starting afresh: %s", e)


def _human(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


__all__ = [
    "SYSTEM",
    "AlertEngine",
    "AlertSettings",
    "EngineStats",
    "Notification",
    "default_kind",
]
