"""`AlertService`: the one front the HTTP API, the CLI and the dashboard call.

Synchronous methods, safe from any thread (FastAPI's pool, a CLI): reads go to the storage
given; what changes a live alert (acknowledge, resolve) goes through the running engine, the
single writer of open alerts; rule and channel changes are written, versioned and audited,
then the engine and the dispatcher reload them (at once when they run in this process, within
`reload_s` when another process — the CLI — made the change).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from hub.alerts._delivery import Dispatcher, validate_channel
from hub.alerts._engine import AlertEngine
from hub.alerts._rules import GATEWAY_KINDS, SENSOR_KINDS, Rule, RuleError, parse_rule
from hub.alerts._store import (
    OPEN_STATES,
    Alert,
    AlertEvent,
    AlertStore,
    Channel,
    Clause,
    DeadLetter,
    RuleVersion,
)
from hub.auth import Principal
from hub.storage import Storage

T = TypeVar("T")
Audit = Callable[[str, str, str, dict[str, Any]], None]  # (actor, action, target, detail)
ACTING_ROLES = frozenset({"admin", "technician"})  # who acknowledges and resolves


class NotFound(RuleError):
    def __init__(self, what: str) -> None:
        super().__init__("not_found", what)


class NotOpen(RuleError):
    def __init__(self, alert_id: str, state: str) -> None:
        super().__init__("state", f"alert {alert_id} is {state}")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class AlertService:
    storage: Storage
    engine: AlertEngine | None = None
    dispatcher: Dispatcher | None = None
    audit: Audit | None = None
    default_tz: str = "Europe/Paris"
    # gateway id -> fleet group (the registry's): whose technicians see a gateway's alerts
    gateway_group: Callable[[], dict[str, str]] | None = None

    def __post_init__(self) -> None:
        self._store = AlertStore(self.storage)

    @property
    def store(self) -> AlertStore:
        return self._store

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        loop = self.engine.loop if self.engine is not None else None
        if loop is None or not loop.is_running():
            coro.close()
            raise RuntimeError("the alert engine is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def _changed(self) -> None:
        engine = self.engine
        if engine is not None and engine.loop is not None and engine.loop.is_running():
            asyncio.run_coroutine_threadsafe(engine.reload_rules(), engine.loop).result(30)
        d = self.dispatcher
        if d is not None and d.loop is not None and d.loop.is_running():
            asyncio.run_coroutine_threadsafe(d.reload_channels(), d.loop).result(30)

    def _audit(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit(actor, action, target, detail)

    # -- alerts -----------------------------------------------------------------------------
    #
    # Who sees an alert (`viewer`; None is the hub's own operator, the CLI on its machine,
    # who sees everything as an admin does):
    # - an alert on a sensor (threshold, rate, night_flow, meter_flag, silence, change): those
    #   who may read the sensor's dataset (`Principal.can_read` on the sensor catalogue);
    # - an alert on a gateway or one of its sources (gateway_offline, source_down,
    #   buffer_quota): admins and the technicians of the gateway's fleet group;
    # - nobody else, anonymous visitors included. An alert hidden from a viewer is answered
    #   exactly as a missing one (NotFound), so that its existence is not disclosed.

    def _my_gateways(self, viewer: Principal) -> list[str]:
        """The gateways whose alerts a technician sees: those of their groups."""
        if viewer.role != "technician" or not viewer.groups or self.gateway_group is None:
            return []
        groups = self.gateway_group()
        return sorted(g for g, group in groups.items() if group in viewer.groups)

    def visible_clause(self, viewer: Principal | None) -> Clause | None:
        """The SQL condition on the alerts table that keeps what `viewer` may see; None:
        everything (an admin, the operator)."""
        if viewer is None or viewer.is_admin:
            return None
        if not viewer.authenticated:
            return ("1 = 0", [])
        readable, params = self.storage.readable_clause("sensor", viewer.granted)
        kinds = ", ".join("?" * len(SENSOR_KINDS))
        parts = [f"(kind IN ({kinds}) AND {readable})"]
        params = [*SENSOR_KINDS, *params]
        gateways = self._my_gateways(viewer)
        if gateways:
            gkinds = ", ".join("?" * len(GATEWAY_KINDS))
            marks = ", ".join("?" * len(gateways))
            parts.append(f"(kind IN ({gkinds}) AND gateway IN ({marks}))")
            params += [*GATEWAY_KINDS, *gateways]
        return (" OR ".join(parts), params)

    def can_see(self, viewer: Principal | None, alert: Alert) -> bool:
        """The same rule as `visible_clause`, for one alert."""
        if viewer is None or viewer.is_admin:
            return True
        if not viewer.authenticated:
            return False
        if alert.kind in SENSOR_KINDS:
            if alert.sensor is None:
                return False
            dataset, is_open = self.storage.sensor_access(alert.sensor)
            return viewer.can_read(dataset, is_open)
        if alert.kind in GATEWAY_KINDS and alert.gateway is not None:
            if viewer.role != "technician" or self.gateway_group is None:
                return False
            return self.gateway_group().get(alert.gateway) in viewer.groups
        return False

    def can_act(self, viewer: Principal | None, alert: Alert) -> bool:
        """Acknowledge or resolve: an admin or a technician, on an alert they see."""
        if viewer is not None and viewer.role not in ACTING_ROLES:
            return False
        return self.can_see(viewer, alert)

    def alerts(
        self,
        state: str | None = None,
        *,
        rule: str | None = None,
        subject: str | None = None,
        limit: int = 100,
        viewer: Principal | None = None,
    ) -> list[Alert]:
        """Newest first; `state` is firing, acknowledged, resolved, or "open" (both first).
        Only those `viewer` may see."""
        return self._store.alerts(
            state,
            rule=rule,
            subject=subject,
            limit=limit,
            visible=self.visible_clause(viewer),
        )

    def alert(self, alert_id: str, viewer: Principal | None = None) -> Alert:
        """One alert; NotFound when there is none or `viewer` may not see it."""
        alert = self._store.alert(alert_id)
        if alert is None or not self.can_see(viewer, alert):
            raise NotFound(f"no alert {alert_id!r}")
        return alert

    def events(self, alert_id: str, viewer: Principal | None = None) -> list[AlertEvent]:
        self.alert(alert_id, viewer)
        return self._store.events(alert_id)

    def counts(self, viewer: Principal | None = None) -> dict[str, int]:
        """Alerts by state, of those `viewer` may see."""
        return self._store.counts(self.visible_clause(viewer))

    def _actionable(self, alert_id: str, viewer: Principal | None) -> Alert:
        alert = self._store.alert(alert_id)
        if alert is None or not self.can_act(viewer, alert):
            raise NotFound(f"no alert {alert_id!r}")
        if alert.state not in OPEN_STATES:
            raise NotOpen(alert_id, alert.state)
        return alert

    def acknowledge(
        self, alert_id: str, actor: str, note: str = "", viewer: Principal | None = None
    ) -> Alert:
        self._actionable(alert_id, viewer)
        done = self._run(self._engine().acknowledge(alert_id, actor, note))
        if done is None:
            raise NotOpen(alert_id, self.alert(alert_id).state)
        return done

    def resolve(
        self, alert_id: str, actor: str, note: str = "", viewer: Principal | None = None
    ) -> Alert:
        self._actionable(alert_id, viewer)
        done = self._run(self._engine().resolve(alert_id, actor, note))
        if done is None:
            raise NotOpen(alert_id, self.alert(alert_id).state)
        return done

    def _engine(self) -> AlertEngine:
        if self.engine is None:
            raise RuntimeError("the alert engine is not running")
        return self.engine

    # -- rules ------------------------------------------------------------------------------

    def rules(self) -> list[Rule]:
        return self._store.rules()

    def rule(self, rule_id: str) -> Rule:
        rule = self._store.rule(rule_id)
        if rule is None:
            raise NotFound(f"no rule {rule_id!r}")
        return rule

    def create_rule(self, doc: object, actor: str) -> Rule:
        rule = parse_rule(doc, default_tz=self.default_tz)
        saved = self._store.save_rule(rule, actor, now_ms(), create=True)
        self._audit(actor, "alert_rule.create", rule.id, dict(rule.doc))
        self._changed()
        return saved

    def update_rule(self, rule_id: str, doc: object, actor: str) -> Rule:
        if isinstance(doc, dict):
            doc = {**doc, "id": doc.get("id", rule_id)}
        rule = parse_rule(doc, default_tz=self.default_tz)
        if rule.id != rule_id:
            raise RuleError("id", "a rule's id cannot change")
        saved = self._store.save_rule(rule, actor, now_ms(), create=False)
        self._audit(actor, "alert_rule.update", rule.id, dict(rule.doc))
        self._changed()
        return saved

    def set_enabled(self, rule_id: str, enabled: bool, actor: str) -> Rule:
        self.rule(rule_id)
        saved = self._store.set_enabled(rule_id, enabled, actor, now_ms())
        self._audit(actor, "alert_rule.enable" if enabled else "alert_rule.disable", rule_id, {})
        self._changed()
        return saved

    def delete_rule(self, rule_id: str, actor: str) -> Rule:
        self.rule(rule_id)
        saved = self._store.delete_rule(rule_id, actor, now_ms())
        self._audit(actor, "alert_rule.delete", rule_id, {})
        self._changed()
        return saved

    def rule_versions(self, rule_id: str) -> list[RuleVersion]:
        versions = self._store.rule_versions(rule_id)
        if not versions:
            raise NotFound(f"no rule {rule_id!r}")
        return versions

    # -- channels and dead letters ----------------------------------------------------------

    def channels(self) -> list[Channel]:
        return self._store.channels()

    def save_channel(self, name: str, type_: str, config: dict[str, Any], actor: str) -> Channel:
        validate_channel(name, type_, config)
        channel = Channel(name, type_, config, actor, now_ms())
        self._store.save_channel(channel)
        self._audit(actor, "alert_channel.save", name, channel.public())
        self._changed()
        return channel

    def delete_channel(self, name: str, actor: str) -> None:
        if not self._store.delete_channel(name):
            raise NotFound(f"no channel {name!r}")
        self._audit(actor, "alert_channel.delete", name, {})
        self._changed()

    def dead_letters(self, pending_only: bool = True, limit: int = 100) -> list[DeadLetter]:
        return self._store.dead_letters(pending_only, limit)

    def replay(self, letter_id: int, actor: str) -> DeadLetter:
        """Send a dead letter again (through the retries); it is marked replayed once, and a
        new dead letter is written if it fails again."""
        letter = self._store.dead_letter(letter_id)
        if letter is None:
            raise NotFound(f"no dead letter {letter_id}")
        if letter.replayed_ms is not None:
            raise RuleError("state", f"dead letter {letter_id} was replayed already")
        if self.dispatcher is None or self.dispatcher.loop is None:
            raise RuntimeError("delivery is not running")
        if not self._store.mark_replayed(letter_id, actor, now_ms()):
            raise RuleError("state", f"dead letter {letter_id} was replayed already")
        self.dispatcher.replay(letter.channel, letter.payload, letter.alert_id)
        self._audit(actor, "alert_dead_letter.replay", str(letter_id), {"channel": letter.channel})
        return letter


__all__ = ["ACTING_ROLES", "AlertService", "NotFound", "NotOpen"]
