"""Delivery of alerts: webhooks, an MQTT topic, e-mail over SMTP, the SMS hook.

Channels are data (`alert_channels`): a name, a type and its settings. A rule names the
channels its alerts go to. Delivery never blocks ingest nor the engine: notifications wait
in a bounded queue (a full queue drops and counts), each (notification, channel) is sent by
its own task, at most `concurrency` at a time, retried with exponential backoff, and after
the last attempt written to the dead-letter list, which an admin can replay.

- webhook: `POST url` with the JSON body; headers `X-Estran-Event`, `X-Estran-Timestamp`
  (Unix seconds), `X-Estran-Signature: sha256=HEX`, the HMAC-SHA256 of
  `timestamp + "." + body` with the channel's secret. 2xx is delivered; anything else is
  retried.
- mqtt: the JSON body published (QoS 1, not retained) on `{topic}/{rule}/{event}` through
  the hub's broker connection settings.
- email: a plain-text message (and the JSON as an attachment-free second part) through SMTP,
  STARTTLS when asked, login when a user is set.
- sms: the territory's SMS service through a command: the hub runs `command` (an argv list,
  no shell) with the JSON body on stdin and `ESTRAN_SMS_TO` / `ESTRAN_SMS_TEXT` in its
  environment; exit status 0 is delivered. docs/alerts.md has a sample script.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import smtplib
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from hub._errors import HubError
from hub._mqtt import BrokerAddress, connect
from hub.alerts._engine import Notification
from hub.alerts._store import AlertStore, Channel
from hub.storage import StorageThread

log = logging.getLogger("estran.hub.alerts.delivery")

CHANNEL_TYPES = ("webhook", "mqtt", "email", "sms")
DEFAULT_TOPIC = "estran/v1/alerts"


class DeliveryError(HubError):
    """One attempt failed (the reason is in the message)."""


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    queue: int = 1000  # notifications waiting
    concurrency: int = 8  # deliveries in flight
    attempts: int = 5
    backoff_s: float = 2.0  # first retry after this, doubling
    backoff_max_s: float = 300.0
    timeout_s: float = 10.0


@dataclass(slots=True)
class DeliveryStats:
    queued: int = 0
    dropped: int = 0  # the queue was full
    delivered: Counter[str] = field(default_factory=Counter)  # by channel type
    failures: Counter[str] = field(default_factory=Counter)  # failed attempts, by type
    dead: Counter[str] = field(default_factory=Counter)  # gave up, by type
    replayed: int = 0


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The webhook signature: HMAC-SHA256 of `timestamp.body`, hex."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (documented in docs/alerts.md; used by the tests)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def validate_channel(name: str, type_: str, config: dict[str, Any]) -> None:
    """Refuse a channel whose settings cannot work (a typed error with the field)."""
    from hub.alerts._rules import RULE_ID, RuleError

    if not RULE_ID.match(name):
        raise RuleError("name", "1 to 64 of a-z, 0-9, '.', '_', '-'")
    if type_ not in CHANNEL_TYPES:
        raise RuleError("type", f"expected one of {', '.join(CHANNEL_TYPES)}")

    def need(key: str, kind: type | tuple[type, ...]) -> None:
        if not isinstance(config.get(key), kind):
            raise RuleError(key, f"{type_} channel: {key} is required")

    if type_ == "webhook":
        need("url", str)
        if not str(config["url"]).startswith(("http://", "https://")):
            raise RuleError("url", "expected an http:// or https:// URL")
        need("secret", str)
        if len(config["secret"]) < 16:
            raise RuleError("secret", "at least 16 characters")
    elif type_ == "mqtt":
        topic = config.get("topic", DEFAULT_TOPIC)
        if not isinstance(topic, str) or not topic or any(c in topic for c in "#+\x00"):
            raise RuleError("topic", "a topic without wildcards")
    elif type_ == "email":
        need("host", str)
        need("to", list)
        need("sender", str)
        if not config["to"] or not all(isinstance(a, str) and "@" in a for a in config["to"]):
            raise RuleError("to", "a list of addresses")
    elif type_ == "sms":
        need("command", list)
        if not config["command"] or not all(isinstance(a, str) for a in config["command"]):
            raise RuleError("command", "an argv list")
        need("to", list)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """Control characters (a sensor id may carry what a gateway sent) as spaces: a header
    or an SMS never takes a line break from the data."""
    return _CONTROL.sub(" ", text)


def text_of(note: Notification) -> tuple[str, str]:
    """(subject, body) for people: e-mail and SMS."""
    a = note.alert
    word = {"fired": "ALERT", "resolved": "RESOLVED"}.get(note.event, note.event.upper())
    subject = one_line(f"[Estran] {word} {a.severity}: {a.summary}")[:200]
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(a.fired_ms / 1000))
    lines = [
        a.summary,
        "",
        f"rule: {a.rule_id} (version {a.rule_version}, {a.kind})",
        f"subject: {a.subject}",
        f"state: {a.state}",
        f"fired: {when}",
        f"alert: {a.id}",
    ]
    if a.resolved_ms is not None:
        done = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(a.resolved_ms / 1000))
        lines.append(f"resolved: {done} by {a.resolved_by}")
    return subject, "\n".join(lines) + "\n"


class Dispatcher:
    """Queue and deliver notifications. `await dispatcher.run()`; `submit` from the loop."""

    def __init__(
        self,
        storage: StorageThread,
        broker: Callable[[], BrokerAddress | None] | None = None,
        settings: DeliverySettings | None = None,
    ) -> None:
        self.thread = storage
        self.store = AlertStore(storage.storage)
        self.broker = broker
        self.settings = settings or DeliverySettings()
        self.stats = DeliveryStats()
        self._queue: asyncio.Queue[tuple[str, dict[str, Any], str | None, str]] = asyncio.Queue(
            self.settings.queue
        )
        self._channels: dict[str, Channel] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.idle = asyncio.Event()
        self.idle.set()

    # -- input ------------------------------------------------------------------------------

    def submit(self, note: Notification) -> None:
        """Queue a notification for each of its channels; never waits."""
        for channel in note.channels:
            self._put(channel, note.event, note.payload(), note.alert.id)

    def _put(self, channel: str, event: str, payload: dict[str, Any], alert_id: str | None) -> None:
        try:
            self._queue.put_nowait((channel, payload, alert_id, event))
            self.stats.queued += 1
            self.idle.clear()
        except asyncio.QueueFull:
            self.stats.dropped += 1
            log.error("alerts: delivery queue full, notification to %s dropped", channel)

    def replay(self, channel: str, payload: dict[str, Any], alert_id: str | None) -> None:
        """Queue a dead letter again (from any thread)."""
        self.stats.replayed += 1
        event = str(payload.get("event", "replay"))
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._put, channel, event, payload, alert_id)

    async def reload_channels(self) -> None:
        self._channels = {c.name: c for c in await self.thread.call(self.store.channels)}

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.reload_channels()
        limit = asyncio.Semaphore(self.settings.concurrency)
        try:
            while True:
                channel, payload, alert_id, event = await self._queue.get()
                await limit.acquire()
                task = asyncio.create_task(
                    self._deliver(channel, payload, alert_id, event, limit),
                    name=f"alert-delivery-{channel}",
                )
                self._inflight.add(task)
                task.add_done_callback(self._done)
        finally:
            for task in self._inflight:
                task.cancel()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not self._inflight and self._queue.empty():
            self.idle.set()

    async def _deliver(
        self,
        name: str,
        payload: dict[str, Any],
        alert_id: str | None,
        event: str,
        limit: asyncio.Semaphore,
    ) -> None:
        s = self.settings
        try:
            await self.reload_channels()  # alerts are rare; settings may have changed
            channel = self._channels.get(name)
            if channel is None:
                await self._dead(name, "unknown", alert_id, payload, "no such channel", 0)
                return
            error = ""
            for attempt in range(1, s.attempts + 1):
                try:
                    await asyncio.wait_for(self._send(channel, payload, event), s.timeout_s * 2)
                    self.stats.delivered[channel.type] += 1
                    return
                except (DeliveryError, OSError, TimeoutError, smtplib.SMTPException) as e:
                    error = f"{type(e).__name__}: {e}"[:300]
                except Exception as e:  # a bug in a sender: still a failed attempt
                    log.exception("alerts: %s sender failed", channel.type)
                    error = f"{type(e).__name__}: {e}"[:300]
                self.stats.failures[channel.type] += 1
                log.warning("alerts: delivery to %s failed (attempt %d): %s", name, attempt, error)
                if attempt < s.attempts:
                    await asyncio.sleep(min(s.backoff_s * 2 ** (attempt - 1), s.backoff_max_s))
            await self._dead(name, channel.type, alert_id, payload, error, s.attempts)
        finally:
            limit.release()

    async def _dead(
        self,
        name: str,
        type_: str,
        alert_id: str | None,
        payload: dict[str, Any],
        error: str,
        attempts: int,
    ) -> None:
        self.stats.dead[type_] += 1
        try:
            await self.thread.call(
                self.store.add_dead_letter,
                name,
                alert_id,
                payload,
                error,
                attempts,
                time.time_ns() // 1_000_000,
            )
        except Exception as e:
            log.error("alerts: dead letter for %s not written: %s", name, e)

    async def _send(self, channel: Channel, payload: dict[str, Any], event: str) -> None:
        if channel.type == "webhook":
            await self._webhook(channel, payload, event)
        elif channel.type == "mqtt":
            await self._mqtt(channel, payload, event)
        elif channel.type == "email":
            await asyncio.to_thread(self._email, channel, payload)
        elif channel.type == "sms":
            await self._sms(channel, payload)
        else:
            raise DeliveryError(f"unknown channel type {channel.type!r}")

    # -- senders ----------------------------------------------------------------------------

    async def _webhook(self, channel: Channel, payload: dict[str, Any], event: str) -> None:
        import httpx

        body = body_of(payload)
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "estran-hub",
            "X-Estran-Event": event,
            "X-Estran-Timestamp": ts,
            "X-Estran-Signature": sign(str(channel.config["secret"]), ts, body),
        }
        async with httpx.AsyncClient(timeout=self.settings.timeout_s) as client:
            try:
                r = await client.post(str(channel.config["url"]), content=body, headers=headers)
            except httpx.HTTPError as e:
                raise DeliveryError(f"webhook: {e}") from e
        if not 200 <= r.status_code < 300:
            raise DeliveryError(f"webhook answered {r.status_code}")

    async def _mqtt(self, channel: Channel, payload: dict[str, Any], event: str) -> None:
        import aiomqtt

        address = self.broker() if self.broker is not None else None
        url = channel.config.get("broker")
        if isinstance(url, str):
            address = BrokerAddress.parse(url)
        if address is None:
            raise DeliveryError("mqtt: no broker")
        topic = str(channel.config.get("topic", DEFAULT_TOPIC)).rstrip("/")
        alert = payload.get("alert", {})
        rule = alert.get("rule", "rule") if isinstance(alert, dict) else "rule"
        ident = f"estran-hub-alerts-{socket.gethostname()[:16]}-{os.getpid()}"
        try:
            async with connect(
                address, ident, prefer_v5=False, timeout=self.settings.timeout_s
            ) as (
                client,
                _v5,
            ):
                await client.publish(f"{topic}/{rule}/{event}", body_of(payload), qos=1)
        except aiomqtt.MqttError as e:
            raise DeliveryError(f"mqtt: {e}") from e

    def _email(self, channel: Channel, payload: dict[str, Any]) -> None:
        c = channel.config
        note = _note_of(payload)
        subject, text = text_of(note)
        msg = EmailMessage()
        msg["Subject"] = subject
        msg["From"] = str(c["sender"])
        msg["To"] = ", ".join(c["to"])
        msg["X-Estran-Alert"] = note.alert.id
        msg.set_content(text + "\n" + json.dumps(payload, indent=2, default=str) + "\n")
        port = int(c.get("port", 25))
        with smtplib.SMTP(str(c["host"]), port, timeout=self.settings.timeout_s) as smtp:
            if c.get("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            if c.get("user"):
                smtp.login(str(c["user"]), str(c.get("password", "")))
            smtp.send_message(msg)

    async def _sms(self, channel: Channel, payload: dict[str, Any]) -> None:
        c = channel.config
        env = dict(os.environ)
        env["ESTRAN_SMS_TO"] = ",".join(c["to"])
        env["ESTRAN_SMS_TEXT"] = one_line(_note_of(payload).alert.summary)[:160]
        proc = await asyncio.create_subprocess_exec(
            *c["command"],
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            _out, err = await asyncio.wait_for(
                proc.communicate(body_of(payload)), self.settings.timeout_s
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise DeliveryError("sms hook: timed out") from None
        if proc.returncode != 0:
            raise DeliveryError(f"sms hook exit {proc.returncode}: {err.decode()[:200]}")


def _note_of(payload: dict[str, Any]) -> Notification:
    from hub.alerts._store import Alert

    a = payload.get("alert", {})
    alert = Alert(
        id=str(a.get("id", "")),
        rule_id=str(a.get("rule", "")),
        rule_version=int(a.get("rule_version", 0)),
        kind=str(a.get("kind", "")),
        subject=str(a.get("subject", "")),
        sensor=a.get("sensor"),
        gateway=a.get("gateway"),
        severity=str(a.get("severity", "")),
        state=str(a.get("state", "")),
        summary=str(a.get("summary", "")),
        value=a.get("value"),
        fired_ms=int(a.get("fired_ms", 0)),
        last_ms=int(a.get("last_ms", 0)),
        ack_by=a.get("ack_by"),
        ack_ms=a.get("ack_ms"),
        resolved_by=a.get("resolved_by"),
        resolved_ms=a.get("resolved_ms"),
        flaps=int(a.get("flaps", 0)),
    )
    return Notification(str(payload.get("event", "")), alert, ())


__all__ = [
    "CHANNEL_TYPES",
    "DEFAULT_TOPIC",
    "DeliveryError",
    "DeliverySettings",
    "DeliveryStats",
    "Dispatcher",
    "body_of",
    "sign",
    "text_of",
    "validate_channel",
    "verify",
]
