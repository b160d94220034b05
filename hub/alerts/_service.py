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
from hub.alerts._rules import Rule, RuleError, parse_rule
from hub.alerts._store import (
    OPEN_STATES,
    Alert,
    AlertEvent,
    AlertStore,
    Channel,
    DeadLetter,
    RuleVersion,
)
from hub.storage import Storage

T = TypeVar("T")
Audit = Callable[[str, str, str, dict[str, Any]], None]  # (actor, action, target, detail)


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

    def alerts(
        self,
        state: str | None = None,
        *,
        rule: str | None = None,
        subject: str | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Newest first; `state` is firing, acknowledged, resolved, or "open" (both first)."""
        return self._store.alerts(state, rule=rule, subject=subject, limit=limit)

    def alert(self, alert_id: str) -> Alert:
        alert = self._store.alert(alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id!r}")
        return alert

    def events(self, alert_id: str) -> list[AlertEvent]:
        self.alert(alert_id)
        return self._store.events(alert_id)

    def counts(self) -> dict[str, int]:
        return self._store.counts()

    def acknowledge(self, alert_id: str, actor: str, note: str = "") -> Alert:
        alert = self.alert(alert_id)
        if alert.state not in OPEN_STATES:
            raise NotOpen(alert_id, alert.state)
        done = self._run(self._engine().acknowledge(alert_id, actor, note))
        if done is None:
            raise NotOpen(alert_id, self.alert(alert_id).state)
        return done

    def resolve(self, alert_id: str, actor: str, note: str = "") -> Alert:
        alert = self.alert(alert_id)
        if alert.state not in OPEN_STATES:
            raise NotOpen(alert_id, alert.state)
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


__all__ = ["AlertService", "NotFound", "NotOpen"]
