"""The ingest worker: MQTT in, storage, acks out.

One worker is one MQTT client with three supervised tasks:

    receive ──(bounded queue)──▶ decode ──(bounded queue)──▶ commit ──▶ acks
    MQTT messages                 groups of messages            one transaction per group,
                                  decoded, hostile ones          then one ack per batch
                                  counted and dropped

Commit first, ack after: a batch is acknowledged only once its transaction has committed,
so a hub killed at any point loses nothing the gateway has freed; the gateway resends what
was not acknowledged, and the idempotent insert on (gateway, seq) absorbs the resend.

A payload that breaks the schema is counted by reason, logged (rate-limited), recorded in
the gateway's state and dropped; if its envelope was readable the gateway receives a
rejection for that batch. Nothing a gateway sends can stop the worker.

Workers subscribe with a shared subscription (`$share/estran-ingest/...`: the embedded
broker, Mosquitto, EMQX and VerneMQ deliver it), so several split the load.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiomqtt

from hub import _decode
from hub._errors import StorageError
from hub._loglimit import LogLimiter
from hub._mqtt import BrokerAddress, acknowledge, connect, honour_cancel, in_session_task
from hub._plausibility import CONFLICT, check_session, mark_batch
from hub.storage import GatewayState, IngestBatch, StorageThread
from protocols import wire
from protocols.errors import UNSUPPORTED, RemoteProtocolError

log = logging.getLogger("estran.hub.ingest")

SHARE_GROUP = "estran-ingest"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class IngestStats:
    """Counters of one hub process (all its workers)."""

    messages: int = 0
    batches: int = 0
    readings: int = 0
    inserted: int = 0
    duplicates: int = 0
    erased: int = 0  # resent readings of ranges deleted on request, dropped
    states: int = 0
    acks: int = 0
    storage_errors: int = 0
    implausible_time: int = 0  # readings stored but never "latest" (hub/_plausibility.py)
    not_a_number: int = 0
    conflicts: int = 0  # resent sequences whose values differ from the stored ones
    dropped: int = 0  # taken from the broker, lost with the connection (the gateways resend)
    rejected: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "batches": self.batches,
            "readings": self.readings,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "erased": self.erased,
            "states": self.states,
            "acks": self.acks,
            "storage_errors": self.storage_errors,
            "implausible_time": self.implausible_time,
            "not_a_number": self.not_a_number,
            "conflicts": self.conflicts,
            "dropped": self.dropped,
            "rejected": dict(self.rejected),
        }


@dataclass(frozen=True, slots=True)
class _Rejection:
    gateway: str | None
    reason: str
    detail: str
    nack: tuple[str, wire.Ack] | None


@dataclass(slots=True)
class _Group:
    """Decoded messages to commit together."""

    batches: list[IngestBatch] = field(default_factory=list)
    states: list[tuple[str, GatewayState]] = field(default_factory=list)
    rejections: list[_Rejection] = field(default_factory=list)


ACK_ROUNDS = 4  # groups whose acks may be in flight while the next one commits


@dataclass(frozen=True, slots=True)
class IngestSettings:
    # Messages per transaction: a group takes what is queued, never waits for more, so a
    # hub that keeps up commits each message alone; one that falls behind (a burst, a
    # loaded machine) commits larger groups and pays the per-commit costs (fsync, the
    # gateways' counters, the observers) once for many messages.
    max_group: int = 64
    max_group_readings: int = 200_000  # readings per transaction
    queue_messages: int = 128  # received, not yet decoded
    queue_groups: int = 2  # decoded, not yet committed
    in_flight: int = 20  # messages the broker sends before we acknowledge (hub._mqtt.connect)
    ack_timeout: float = 10.0
    storage_timeout: float = 120.0
    put_timeout: float = 300.0
    reconnect_min: float = 0.2
    reconnect_max: float = 10.0


class IngestObserver(Protocol):
    """Told what ingest committed (alerts, metrics, numériscore), on the event loop, after
    the commit and before the acks. It must return at once (queue any slow work) and should
    not raise; an exception is logged and ingest carries on."""

    def committed(self, batches: Sequence[IngestBatch], seconds: float) -> None:
        """`batches` were committed in one transaction that took `seconds`."""

    def state(self, gateway: str, state: GatewayState, applied: bool) -> None:
        """A state message was recorded (`applied` False: older than the one recorded)."""


def _left_over(raw: asyncio.Queue[aiomqtt.Message], decoded: asyncio.Queue[_Group]) -> int:
    """Messages taken from the broker and not committed when a session ends."""
    n = raw.qsize()
    while not decoded.empty():
        group = decoded.get_nowait()
        n += len(group.batches) + len(group.states)
    return n


class IngestWorker:
    """One MQTT subscriber feeding one storage. Run with `await worker.run()` (forever,
    reconnecting with backoff and jitter; cancel it to stop)."""

    def __init__(
        self,
        name: str,
        broker: BrokerAddress,
        storage: StorageThread,
        *,
        shared: bool,
        prefer_v5: bool,
        stats: IngestStats | None = None,
        settings: IngestSettings | None = None,
        connected: asyncio.Event | None = None,
    ) -> None:
        self.name = name
        self.broker = broker
        self.storage = storage
        self.shared = shared
        self.prefer_v5 = prefer_v5
        self.stats = stats or IngestStats()
        self.settings = settings or IngestSettings()
        self.connected = connected or asyncio.Event()
        self.observers: list[IngestObserver] = []
        self._limiter = LogLimiter(log, "rejected payloads")
        self._identifier = f"estran-hub-{socket.gethostname()[:20]}-{os.getpid()}-{name}"

    def add_observer(self, observer: IngestObserver) -> None:
        self.observers.append(observer)

    def _notify_committed(self, batches: Sequence[IngestBatch], seconds: float) -> None:
        for observer in self.observers:
            try:
                observer.committed(batches, seconds)
            except Exception:
                log.exception("%s: ingest observer failed", self.name)

    def _notify_state(self, gateway: str, state: GatewayState, applied: bool) -> None:
        for observer in self.observers:
            try:
                observer.state(gateway, state, applied)
            except Exception:
                log.exception("%s: ingest observer failed", self.name)

    async def run(self) -> None:
        delay = self.settings.reconnect_min
        while True:
            started = time.monotonic()
            try:  # its own task: what a failed session leaves on it dies with it (_mqtt)
                await in_session_task(self._session(), f"{self.name}-session")
            except* (aiomqtt.MqttError, OSError) as eg:
                log.warning("%s: broker connection lost: %s", self.name, eg.exceptions[0])
            except* Exception as eg:  # a bug: log it loudly, but keep ingesting
                log.error("%s: worker failure, restarting", self.name, exc_info=eg)
            finally:
                self.connected.clear()
            if time.monotonic() - started > 10:
                delay = self.settings.reconnect_min
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, self.settings.reconnect_max)

    async def _session(self) -> None:
        s = self.settings
        async with connect(
            self.broker,
            self._identifier,
            prefer_v5=self.prefer_v5,
            in_flight=s.in_flight,
        ) as (client, _v5):
            group = SHARE_GROUP if self.shared else None
            await client.subscribe(
                [(wire.subscription("data", group), 1), (wire.subscription("state", group), 1)]
            )
            honour_cancel()  # aiomqtt's wait_for may have swallowed a stop
            log.info("%s: subscribed on %s (shared=%s)", self.name, self.broker, self.shared)
            self.connected.set()
            raw: asyncio.Queue[aiomqtt.Message] = asyncio.Queue(s.queue_messages)
            decoded: asyncio.Queue[_Group] = asyncio.Queue(s.queue_groups)
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._receive(client, raw), name=f"{self.name}-receive")
                    tg.create_task(self._decode(raw, decoded), name=f"{self.name}-decode")
                    tg.create_task(self._commit(client, decoded, tg), name=f"{self.name}-commit")
            finally:
                self.stats.dropped += _left_over(raw, decoded)

    async def _receive(self, client: aiomqtt.Client, raw: asyncio.Queue[aiomqtt.Message]) -> None:
        # Backpressure: a message is acknowledged once it is in `raw`; until then the broker
        # holds the rest. What a lost connection leaves in `raw` is counted as dropped.
        async for message in client.messages:
            async with asyncio.timeout(self.settings.put_timeout):  # wait_for may eat a cancel
                await raw.put(message)
            acknowledge(client, message)

    async def _decode(
        self, raw: asyncio.Queue[aiomqtt.Message], decoded: asyncio.Queue[_Group]
    ) -> None:
        s = self.settings
        while True:
            messages = [await raw.get()]
            while len(messages) < s.max_group and not raw.empty():
                messages.append(raw.get_nowait())
            group = _Group()
            readings = 0
            for message in messages:
                before = len(group.batches)
                self._decode_one(message, group)
                if len(group.batches) > before:
                    readings += len(group.batches[-1])
                if readings >= s.max_group_readings:
                    async with asyncio.timeout(s.put_timeout):  # not wait_for: it can eat a cancel
                        await decoded.put(group)
                    group, readings = _Group(), 0
            if group.batches or group.states or group.rejections:
                async with asyncio.timeout(s.put_timeout):  # not wait_for: it can eat a cancel
                    await decoded.put(group)

    def _decode_one(self, message: aiomqtt.Message, group: _Group) -> None:
        self.stats.messages += 1
        gateway: str | None = None
        payload = message.payload
        try:
            gateway, kind = wire.parse_topic(message.topic.value)
            if not isinstance(payload, bytes | bytearray):
                raise RemoteProtocolError("malformed", "payload is not bytes")
            if kind == "data":
                batch = _decode.decode_data(gateway, bytes(payload))
                marks = mark_batch(batch, now_ms())
                self.stats.implausible_time += marks.implausible_time
                self.stats.not_a_number += marks.not_a_number
                group.batches.append(batch)
            elif kind == "state":
                if not payload:  # a cleared retained message
                    return
                state = _decode.decode_state(bytes(payload))
                check_session(state, now_ms())
                group.states.append((gateway, state))
            else:
                raise RemoteProtocolError("malformed", f"unexpected {kind} message")
        except RemoteProtocolError as e:
            self._reject(group, message, gateway, e.reason, e.message, payload)
        except Exception as e:  # a decoder bug must not stop ingest either
            log.exception("%s: decoder failure on %s", self.name, message.topic.value[:100])
            self._reject(group, message, gateway, "internal", repr(e)[:200], payload)

    def _reject(
        self,
        group: _Group,
        message: aiomqtt.Message,
        gateway: str | None,
        reason: str,
        detail: str,
        payload: object,
    ) -> None:
        self.stats.rejected[reason] += 1
        self._limiter.warn(
            "%s: dropped payload on %r: %s: %s",
            self.name,
            message.topic.value[:100],
            reason,
            detail[:200],
        )
        nack = None
        if gateway is not None and isinstance(payload, bytes | bytearray):
            peek = (
                _decode.peek_batch(bytes(payload))
                if message.topic.value.endswith("/data")
                else None
            )
            if peek is not None:
                session, batch, first, last = peek
                text = f"{reason}: {detail}"[:200]
                nack = (gateway, wire.Ack(session, batch, [(first, last)], rejected=text))
        group.rejections.append(_Rejection(gateway, reason, detail, nack))

    async def _commit(
        self, client: aiomqtt.Client, decoded: asyncio.Queue[_Group], tg: asyncio.TaskGroup
    ) -> None:
        s = self.settings
        # The acks of a committed group go out while the next group commits: waiting for
        # their PUBACKs first made every group cost a commit plus a broker round trip (1,000
        # gateways' live batches then queued up at the hub). A few rounds at most in flight.
        sending: collections.deque[asyncio.Task[None]] = collections.deque()
        while True:
            # A stop that aiomqtt's wait_for (the acks' publish) swallowed: end here, or this
            # task would wait on an empty queue for ever and the session never end.
            honour_cancel()
            group = await decoded.get()
            acks: list[tuple[str, wire.Ack]] = []
            try:
                if group.batches:
                    started = time.perf_counter()
                    result = await self.storage.call(
                        self.storage.storage.ingest,
                        group.batches,
                        now_ms(),
                        timeout=s.storage_timeout,
                    )
                    self._notify_committed(group.batches, time.perf_counter() - started)
                    self.stats.batches += len(group.batches)
                    self.stats.readings += sum(len(b) for b in group.batches)
                    self.stats.inserted += result.inserted
                    self.stats.duplicates += result.duplicates
                    if result.duplicates:
                        await self._record_conflicts(group.batches)
                    self.stats.erased += result.erased
                    acks.extend(
                        (b.gateway, wire.Ack(b.session, b.batch_no, b.ranges))
                        for b in group.batches
                    )
                if group.states:  # one transaction for the group's births and deaths
                    applied_states = await self.storage.call(
                        self.storage.storage.record_states, group.states, now_ms()
                    )
                    self.stats.states += len(group.states)
                    for (gateway, state), applied in zip(group.states, applied_states, strict=True):
                        self._notify_state(gateway, state, applied)
                for rej in group.rejections:
                    if rej.gateway is not None:
                        await self.storage.call(
                            self.storage.storage.record_rejection,
                            rej.gateway,
                            rej.reason,
                            rej.detail,
                            now_ms(),
                        )
                    if rej.nack is not None and not rej.reason.startswith(UNSUPPORTED):
                        acks.append(rej.nack)
            except (StorageError, TimeoutError) as e:
                # Nothing is acknowledged: the gateways resend after their ack timeout.
                self.stats.storage_errors += 1
                log.error(
                    "%s: storage failed, %d batches left unacknowledged: %s",
                    self.name,
                    len(group.batches),
                    e,
                )
                await asyncio.sleep(1.0)
                continue
            if acks:
                while sending and sending[0].done():
                    sending.popleft()
                if len(sending) >= ACK_ROUNDS:
                    await sending.popleft()
                sending.append(
                    tg.create_task(self._publish_acks(client, acks), name=f"{self.name}-acks")
                )

    async def _record_conflicts(self, batches: list[IngestBatch]) -> None:
        """Resent readings that differ from the stored ones: the stored ones stay (the first
        commit won), and the admin sees each conflict as a rejection of the gateway."""
        storage = self.storage.storage
        timeout = self.settings.storage_timeout

        def check() -> list[tuple[IngestBatch, list[tuple[int, str, str]]]]:
            return [(batch, storage.conflicts(batch)) for batch in batches]

        # one call for the group: after a hub falls behind, every gateway resends and most
        # groups hold duplicates (a round trip to the storage thread for each was a tenth
        # of the event loop's time)
        for batch, found in await self.storage.call(check, timeout=timeout):
            for seq, stored, resent in found:
                self.stats.conflicts += 1
                detail = f"seq {seq}: stored {stored}, resent {resent}"[:500]
                self._limiter.warn(
                    "%s: %s: conflicting duplicate, %s", self.name, batch.gateway, detail
                )
                await self.storage.call(
                    storage.record_rejection,
                    batch.gateway,
                    CONFLICT,
                    detail,
                    now_ms(),
                    timeout=timeout,
                )

    async def _publish_acks(self, client: aiomqtt.Client, acks: list[tuple[str, wire.Ack]]) -> None:
        if not acks:
            return
        timeout = self.settings.ack_timeout
        async with asyncio.TaskGroup() as tg:
            for gateway, ack in acks:
                tg.create_task(
                    client.publish(
                        wire.topic(gateway, "ack"), wire.encode_ack(ack), qos=1, timeout=timeout
                    ),
                    name=f"{self.name}-ack-{gateway}-{ack.batch}",
                )
        self.stats.acks += len(acks)


__all__ = ["SHARE_GROUP", "IngestObserver", "IngestSettings", "IngestStats", "IngestWorker"]
