"""The gateway uplink: drains the buffer to the hub over MQTT, end-to-end acknowledged.

    buffer ──read_blocks──▶ batches ──MQTT QoS 1──▶ hub ──commit──▶ ack ──▶ buffer.ack(ranges)

- Batches are whole buffer blocks, sent as stored (no re-encoding), deflated on the wire
  when that pays. Several are in flight (`window`); one slot is always kept for live
  readings, so a backlog never starves them.
- A block is freed only when the hub's ack says its readings are committed. A batch whose
  ack does not come back in time is sent again (the hub's insert is idempotent).
- Batch size adapts: it grows while acks come back well within `ack_target_s` and shrinks
  when they are slow or lost. The ack timeout follows the measured round trip (srtt +
  4 rttvar, as TCP does), doubling on each timeout.
- The backlog (what was in the buffer when the connection came up) drains under a token
  bucket and is flagged historical; readings appended since are sent at once, flagged live.
  Once the backlog is out, the buffer is looked through now and then (`rescan_interval_s`)
  for readings the cursors passed by (blocks rewritten by a compaction), sent as backlog.
- Birth (online, retained) on connect, death registered as the MQTT Will (retained), both
  with a session number that only grows. Birth and the periodic state carry the gateway's
  footprint when a `footprint` callable gives it (the daemon's `HealthRegistry.footprint`),
  the health of each source (`sources`) and the settings waiting for a restart
  (`restart_pending`); `state_changed()` sends a state at once (at most one a second) when
  a source goes up or down.
  MQTT 5 where the broker speaks it, 3.1.1 otherwise (the embedded amqtt broker): the
  protocol needs nothing but QoS 1 and retained messages.
- Reconnects with exponential backoff and jitter; the backoff starts again from its
  minimum only after a session that held (`HELD_S`).
- `mqtts://`: TLS with the hub's certificate and host name verified against the CA that
  enrollment kept (or `ca_file`); no insecure fallback. A refused handshake (a wrong CA, a
  wrong host name) is logged once, counted in `tls_errors`, kept in `last_error`, and tried
  again with the backoff like any lost connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from edge.buffer import BlockLog, StoredBlock
from edge.health import HealthRegistry, UplinkStatus
from edge.identity import CAFileError, enrolled_ca, hub_tls_context, tls_failure
from edge.uplink._close import close_client, drop_socket, honour_cancel
from edge.uplink._config import BrokerUrl, UplinkConfig
from edge.uplink._pacing import Backoff, TokenBucket
from edge.uplink._session import SessionCounter
from protocols import wire
from protocols.errors import UNSUPPORTED, RemoteProtocolError
from protocols.mqtt_versions import (
    CONNACK,
    MQTT_5,
    NO_ANSWER,
    TLS,
    Attempt,
    VersionFallback,
    version_name,
)

log = logging.getLogger("estran.edge.uplink")
_T = TypeVar("_T")

HELD_S = 30.0  # a session up this long resets the reconnect backoff
_PUBACK = 4  # bytes of a PUBACK (MQTT 5 leaves out the reason code when it is success)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _varint_len(n: int) -> int:
    size = 1
    while n >= 128:
        n >>= 7
        size += 1
    return size


def publish_wire_size(topic: str, payload: int, v5: bool) -> int:
    """Bytes of a QoS 1 PUBLISH packet and of its PUBACK."""
    remaining = 2 + len(topic.encode()) + 2 + (1 if v5 else 0) + payload
    return 1 + _varint_len(remaining) + remaining + _PUBACK


def footprint_figures(figures: Mapping[str, object]) -> dict[str, int | float]:
    """The figures a state message can carry: numbers (not bools, not NaN) under short names,
    at most `wire.MAX_FOOTPRINT` of them; None and anything else are left out."""
    out: dict[str, int | float] = {}
    for name, value in figures.items():
        if len(out) == wire.MAX_FOOTPRINT:
            break
        if not 0 < len(name.encode()) <= wire.MAX_FOOTPRINT_KEY:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            if -(2**63) <= value <= wire.MAX_UINT:
                out[name] = value
        elif isinstance(value, float) and math.isfinite(value):
            out[name] = value
    return out


@dataclass
class UplinkStats:
    session: int = 0
    connects: int = 0
    mqtt5: bool | None = None
    batches_sent: int = 0
    live_batches: int = 0
    historical_batches: int = 0
    readings_sent: int = 0
    resent_batches: int = 0
    rescans: int = 0  # readings found left behind by the cursors (see _left_behind)
    timeouts: int = 0
    acked_readings: int = 0
    rejected_readings: int = 0
    bad_acks: int = 0
    wire_bytes: int = 0  # MQTT packets both ways (PUBLISH + PUBACK), TCP/IP headers excluded
    bytes_sent: int = 0  # the part this side sends: PUBLISH of data and state, PUBACK of acks
    batch_size: int = 0
    ack_timeout_s: float = 0.0
    srtt_s: float | None = None
    in_flight: int = 0
    tls: bool = False
    tls_errors: int = 0  # TLS set-ups or handshakes refused (mqtts://)
    last_error: str | None = None  # why the last connection attempt failed

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(slots=True)
class _Batch:
    blocks: list[StoredBlock]
    live: bool
    isolate: bool = False  # a block sent alone to find the one the hub rejects
    session: int = 0
    number: int = 0
    sent_at: float = 0.0
    deadline: float = 0.0
    attempts: int = 0
    not_before: float = 0.0

    @property
    def count(self) -> int:
        return sum(b.count for b in self.blocks)

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return wire.merge_ranges([(b.first_seq, b.last_seq) for b in self.blocks])


@dataclass(slots=True)
class _Span:
    """A stretch of the buffer to drain as backlog: blocks with after < seq <= upto."""

    after: int
    upto: int
    sent_ahead: set[int] = field(default_factory=set)  # alarm blocks taken out of order


async def _enter(client: aiomqtt.Client) -> None:
    """Connect `client`; on failure, close its socket. aiomqtt leaves the socket of a failed
    connect open (a CONNACK that did not come in time): a descriptor per attempt until the
    garbage collector finds it, and a CONNACK arriving late would make it a session of ours
    at the broker, with our Will, which the next attempt then takes over."""
    try:
        await client.__aenter__()
    except BaseException:
        drop_socket(client)
        raise


def _covered(ranges: list[tuple[int, int]], acked: list[tuple[int, int]]) -> bool:
    """Whether every range lies inside one of the (merged) acked ranges."""
    return all(any(a <= first and last <= b for a, b in acked) for first, last in ranges)


class Uplink:
    """`await Uplink(log, config).run()` drains `log` to the hub until cancelled."""

    def __init__(
        self,
        buffer: BlockLog,
        config: UplinkConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        start_after: int = -1,
        footprint: Callable[[], Mapping[str, object]] | None = None,
    ) -> None:
        config.validate()
        self.buffer = buffer
        self.config = config
        self.footprint = footprint  # figures for the state messages (HealthRegistry.footprint)
        self.sources: Callable[[], list[wire.SourceHealth]] | None = None
        self.restart_pending: Callable[[], list[str]] | None = None
        self._state_now = asyncio.Event()
        self.broker = BrokerUrl.parse(config.broker)
        self.stats = UplinkStats(batch_size=config.batch_initial, tls=self.broker.tls)
        self.connected = asyncio.Event()
        self._clock = clock
        self._counter = SessionCounter(config.state_dir)
        self._bucket = TokenBucket(config.backlog_rate, config.backlog_burst, clock)
        self._unpaced = False  # drain_now(): the backlog goes out without the token bucket
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)
        self._up_since: float | None = None  # when this session came up (birth sent)
        self._versions = VersionFallback(config.protocol)  # what the broker speaks, learnt
        self._session = 0
        self._number = 0
        self._start_after = start_after
        self._started = False
        self._live_after = start_after
        self._spans: deque[_Span] = deque()
        self._inflight: dict[int, _Batch] = {}
        self._resend: deque[_Batch] = deque()
        self._acked: list[tuple[int, int]] = []  # merged, this process
        self._pending_acks: list[tuple[int, int]] = []  # not yet applied to the buffer
        self._size = float(config.batch_initial)
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._ack_timeout = config.ack_timeout_min_s * 2
        self._rescanned_at = clock()  # _left_behind()
        self._wake = asyncio.Event()
        self._acks_waiting = asyncio.Event()  # acks received, not yet applied to the buffer
        self._topic_data = wire.topic(config.gateway_id, "data")
        self._topic_state = wire.topic(config.gateway_id, "state")
        self._topic_ack = wire.topic(config.gateway_id, "ack")

    # -- connection ---------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, drain, reconnect on failure; forever (cancel to stop)."""
        try:
            while True:
                self._up_since = None
                try:
                    await self._connect_and_drain()
                except* CAFileError as eg:
                    self._failed(f"TLS: {eg.exceptions[0]}", tls=True)
                except* (aiomqtt.MqttError, OSError, TimeoutError) as eg:
                    self._lost(eg.exceptions[0])
                # Only a session that held resets the backoff: attempts that fail slowly (a
                # loaded broker: CONNACK, subscription or birth timing out) must still spread
                # out, or a fleet reconnecting at once never converges.
                if self._up_since is not None and self._clock() - self._up_since > HELD_S:
                    self._backoff.reset()
                delay = self._backoff.next()
                log.info("uplink: reconnecting in %.1f s", delay)
                await asyncio.sleep(delay)
        finally:
            self._flush_acks()

    def _lost(self, error: BaseException) -> None:
        tls = tls_failure(error)
        if tls is None:
            self.stats.last_error = str(error) or type(error).__name__
            log.warning("uplink: connection lost: %s", error)
            return
        ca = self._ca_file()
        trust = f"the CA in {ca}" if ca is not None else "the system's CAs"
        reason = getattr(tls, "verify_message", None) or tls.reason or str(tls)
        self._failed(
            f"TLS handshake with {self.broker.host}:{self.broker.port} refused ({reason}): "
            f"the hub's certificate is not trusted by {trust}, or not for this host name; "
            "check [uplink] ca_file (estran edge enroll --ca keeps the hub's CA)",
            tls=True,
        )

    def _failed(self, message: str, *, tls: bool) -> None:
        if tls:
            self.stats.tls_errors += 1
        if message != self.stats.last_error:  # said once; repeats are counted, not logged
            log.error("uplink: %s", message)
        self.stats.last_error = message

    def _ca_file(self) -> Path | None:
        return self.config.ca_file or enrolled_ca(self.config.state_dir)

    def _tls_context(self) -> ssl.SSLContext | None:
        """A fresh context for each connection: a CA kept by a re-enrollment is picked up.
        Raises CAFileError when the CA file is unusable."""
        return hub_tls_context(self._ca_file()) if self.broker.tls else None

    def _client(
        self, v5: bool, session: int, timeout: float, tls: ssl.SSLContext | None
    ) -> aiomqtt.Client:
        c = self.config
        death = wire.encode_state(wire.State(False, session, _now_ms(), software=c.software))
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=f"estran-gw-{c.gateway_id}",
            username=c.username,
            password=c.password,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(self._topic_state, death, qos=1, retain=True),
            clean_session=None if v5 else True,
            keepalive=c.keepalive_s,
            timeout=timeout,
            max_inflight_messages=c.window + 8,
            max_queued_incoming_messages=4 * c.window + 16,
            tls_context=tls,
        )

    async def _connect_and_drain(self) -> None:
        session = self._counter.next()
        client = await self._connect(session)
        try:
            await self._drain(client, session, bool(self.stats.mqtt5))
        except BaseException as e:
            await self._close(client, e)
            raise
        await self._close(client, None)

    async def _connect(self, session: int) -> aiomqtt.Client:
        """A connected client, MQTT 5 if the broker speaks it. Which version to try is
        `protocols.mqtt_versions`' policy (the hub's clients follow the same one); what it
        learns is kept for the life of the process."""
        c = self.config
        tls = self._tls_context()
        fallback = self._versions
        for attempt in fallback.attempts(c.connect_timeout_s):
            v5 = attempt.version == MQTT_5
            if attempt.probe and not await self._probe(attempt, tls):
                continue
            client = self._client(v5, session, c.connect_timeout_s, tls)
            await _enter(client)
            fallback.accepted(attempt)
            self.stats.mqtt5 = v5
            self.stats.last_error = None
            return client
        raise aiomqtt.MqttError("no MQTT protocol version accepted")  # the last attempt raised

    async def _probe(self, attempt: Attempt, tls: ssl.SSLContext | None) -> bool:
        """Whether the broker accepts a CONNECT of `attempt`'s version; False: try the next
        version. The probe carries no Will: amqtt 0.12 answers an MQTT 5 CONNECT with
        "unsupported protocol version" at once, but stalls on one with a Will."""
        c = self.config
        version = version_name(attempt.version)
        probe = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=f"estran-gw-{c.gateway_id}-probe",
            username=c.username,
            password=c.password,
            protocol=aiomqtt.ProtocolVersion.V5
            if attempt.version == MQTT_5
            else aiomqtt.ProtocolVersion.V311,
            timeout=attempt.timeout_s,
            tls_context=tls,
        )
        try:
            await _enter(probe)
        except MqttConnectError as e:
            code: object = getattr(e.rc, "value", e.rc)  # an int, or paho's ReasonCode
            if not self._versions.failed(attempt, CONNACK, code if isinstance(code, int) else None):
                raise
            log.info("uplink: the broker does not speak MQTT %s", version)
            return False
        except aiomqtt.MqttCodeError:
            raise
        except aiomqtt.MqttError as e:  # aiomqtt's timeout, a refused or lost connection
            failure = TLS if tls_failure(e) is not None else NO_ANSWER
            if not self._versions.failed(attempt, failure):
                raise
            log.info("uplink: no answer to MQTT %s (%s), trying the next version", version, e)
            return False
        await self._close(probe, None)
        self._versions.accepted(attempt)
        return True

    async def _close(self, client: aiomqtt.Client, error: BaseException | None) -> None:
        await close_client(client, error)  # bounded: DISCONNECT, a short wait, the socket closed

    async def _drain(self, client: aiomqtt.Client, session: int, v5: bool) -> None:
        c = self.config
        self._session = session
        self.stats.session = session
        self.stats.connects += 1
        self.stats.mqtt5 = v5
        self._begin_session()
        await client.subscribe(self._topic_ack, qos=1, timeout=c.connect_timeout_s)
        await self._publish_state(client, True)
        log.info(
            "uplink: session %d on %s:%d (MQTT %s%s), %s readings not yet acknowledged",
            session,
            self.broker.host,
            self.broker.port,
            "5" if v5 else "3.1.1",
            " over TLS" if self.broker.tls else "",
            self._backlog_depth(),
        )
        self.connected.set()
        self._up_since = self._clock()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._receive(client), name="uplink-receive")
                tg.create_task(self._send_loop(client, tg), name="uplink-send")
                tg.create_task(self._flush_loop(), name="uplink-ack-flush")
                tg.create_task(self._state_loop(client), name="uplink-state")
        except asyncio.CancelledError:
            # A clean stop: say so (the Will is only sent for unclean ones).
            with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError):
                await asyncio.wait_for(self._publish_state(client, False), 2.0)
            raise
        finally:
            self.connected.clear()
            self._flush_acks()

    def _begin_session(self) -> None:
        """Split the buffer into backlog (up to the durable head now) and live (after).
        Readings appended but not yet committed are live: the buffer writer commits them
        within its interval (it alone commits; blocks are read once committed)."""
        head = self.buffer.durable_seq
        if not self._started:
            self._started = True
            if head > self._start_after:
                self._spans.append(_Span(self._start_after, head))
            self._live_after = max(head, self._start_after)
            return
        # What was in flight when the connection dropped goes out again first.
        for batch in sorted(self._inflight.values(), key=lambda b: b.number):
            self._resend.append(batch)
        self._inflight.clear()
        if head > self._live_after:
            self._spans.append(_Span(self._live_after, head))
            self._live_after = head

    # -- state --------------------------------------------------------------------------

    def _backlog_depth(self) -> int:
        return self.buffer.stats().depth

    def _dropped(self) -> int:
        return self.buffer.stats().dropped_total

    def _footprint(self) -> dict[str, int | float] | None:
        if self.footprint is None:
            return None
        try:
            return footprint_figures(self.footprint())
        except Exception:  # the figures are a report: never a reason to stop sending
            log.exception("uplink: footprint figures failed")
            return None

    def _provided(self, provider: Callable[[], list[_T]] | None, what: str) -> list[_T] | None:
        if provider is None:
            return None
        try:
            return provider()
        except Exception:  # a report: never a reason to stop sending
            log.exception("uplink: %s failed", what)
            return None

    def attach(self, health: HealthRegistry) -> None:
        """Report what `health` knows in the birth and state messages (the footprint, each
        source's health, the settings waiting for a restart), and send a state at once when
        a source goes up or down."""
        self.footprint = health.footprint
        self.sources = health.source_health
        self.restart_pending = lambda: list(health.restart_pending)
        health.on_change = self.state_changed

    def status(self) -> UplinkStatus:
        """The `uplink` section of the daemon's status."""
        st = self.stats
        return {
            "state": "connected" if self.connected.is_set() else "disconnected",
            "broker": f"{self.broker.host}:{self.broker.port}",
            "session": st.session,
            "connects": st.connects,
            "mqtt5": st.mqtt5,
            "batches_sent": st.batches_sent,
            "live_batches": st.live_batches,
            "historical_batches": st.historical_batches,
            "readings_sent": st.readings_sent,
            "resent_batches": st.resent_batches,
            "rescans": st.rescans,
            "timeouts": st.timeouts,
            "acked_readings": st.acked_readings,
            "rejected_readings": st.rejected_readings,
            "bad_acks": st.bad_acks,
            "wire_bytes": st.wire_bytes,
            "bytes_sent": st.bytes_sent,
            "batch_size": st.batch_size,
            "ack_timeout_s": st.ack_timeout_s,
            "srtt_s": st.srtt_s,
            "in_flight": st.in_flight,
            "tls": st.tls,
            "tls_errors": st.tls_errors,
            "last_error": st.last_error,
        }

    def state_changed(self) -> None:
        """Something the state reports changed (a source up or down): send it now."""
        self._state_now.set()

    async def _publish_state(self, client: aiomqtt.Client, online: bool) -> None:
        state = wire.State(
            online,
            self._session,
            _now_ms(),
            backlog=self._backlog_depth(),
            dropped=self._dropped(),
            software=self.config.software,
            footprint=self._footprint(),
            sources=self._provided(self.sources, "source health"),
            restart_pending=self._provided(self.restart_pending, "restart pending"),
        )
        payload = wire.encode_state(state)
        await client.publish(
            self._topic_state, payload, qos=1, retain=True, timeout=self.config.connect_timeout_s
        )
        self._count_wire(self._topic_state, len(payload))

    async def _state_loop(self, client: aiomqtt.Client) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.state_interval_s):  # wait_for eats cancels
                    await self._state_now.wait()
            self._state_now.clear()  # what changed from here on asks for another one
            await self._publish_state(client, True)
            # A cancel the publish swallowed (the session is ending): stop here, or the
            # session's TaskGroup would wait for this loop for ever and never reconnect.
            honour_cancel()
            await asyncio.sleep(min(1.0, self.config.state_interval_s))

    def _count_wire(self, topic: str, payload: int, sent: bool = True) -> None:
        """Count a PUBLISH and its PUBACK: `sent` when this side publishes (it then receives
        the PUBACK), else it received the PUBLISH and sends the PUBACK."""
        size = publish_wire_size(topic, payload, bool(self.stats.mqtt5))
        self.stats.wire_bytes += size
        self.stats.bytes_sent += (size - _PUBACK) if sent else _PUBACK

    # -- acks ---------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                continue
            self._count_wire(message.topic.value, len(payload), sent=False)
            if message.topic.value != self._topic_ack:
                continue
            try:
                ack = wire.decode_ack(bytes(payload))
            except RemoteProtocolError as e:
                self.stats.bad_acks += 1
                log.warning("uplink: unreadable ack: %s", e)
                continue
            self._on_ack(ack)

    def _on_ack(self, ack: wire.Ack) -> None:
        batch = self._inflight.get(ack.batch)
        if batch is not None and batch.session != ack.session:
            batch = None  # a batch number of another session: judge by ranges only
        if ack.rejected is not None:
            if batch is not None:  # same session and number: that batch, whatever its span
                del self._inflight[ack.batch]
                self._on_rejected(batch, ack.rejected)
            self._wake.set()
            return
        if batch is not None and not _covered(batch.ranges, wire.merge_ranges(ack.ranges)):
            batch = None
        if batch is not None:
            del self._inflight[ack.batch]
            self.stats.acked_readings += batch.count
            if batch.attempts == 0:
                self._sample_rtt(self._clock() - batch.sent_at, batch.count)
        self._mark_acked(ack.ranges)
        self._wake.set()

    def _mark_acked(self, ranges: list[tuple[int, int]]) -> None:
        self._pending_acks.extend(ranges)
        self._acks_waiting.set()
        self._acked = wire.merge_ranges(self._acked + ranges)
        # a late ack may cover a batch that was re-sent meanwhile
        for number in [n for n, b in self._inflight.items() if _covered(b.ranges, self._acked)]:
            batch = self._inflight.pop(number)
            self.stats.acked_readings += batch.count

    def _on_rejected(self, batch: _Batch, reason: str) -> None:
        if reason.startswith(UNSUPPORTED):
            log.warning("uplink: hub cannot read batch yet (%s); retrying later", reason)
            batch.not_before = self._clock() + self.config.unsupported_retry_s
            self._resend.append(batch)
        elif len(batch.blocks) > 1:
            log.warning("uplink: hub rejected a batch (%s); isolating its blocks", reason)
            for block in batch.blocks:
                self._resend.append(_Batch([block], batch.live, isolate=True))
        else:
            log.error(
                "uplink: hub rejected block %d..%d for good (%s): dropped",
                batch.blocks[0].first_seq,
                batch.blocks[0].last_seq,
                reason,
            )
            self.stats.rejected_readings += batch.count
            self._mark_acked(batch.ranges)

    def _sample_rtt(self, rtt: float, count: int) -> None:
        c = self.config
        if self._srtt is None:
            self._srtt, self._rttvar = rtt, rtt / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt
        self._ack_timeout = min(
            c.ack_timeout_max_s, max(c.ack_timeout_min_s, self._srtt + 4 * self._rttvar)
        )
        # Batch size: grow while acks come back fast, shrink when slow.
        if count >= 0.5 * self._size:
            if rtt < c.ack_target_s / 2:
                self._size = min(c.batch_max, self._size * 1.5)
            elif rtt > c.ack_target_s * 2:
                self._size = max(c.batch_min, self._size * 0.7)
        self.stats.batch_size = int(self._size)
        self.stats.ack_timeout_s = round(self._ack_timeout, 3)
        self.stats.srtt_s = round(self._srtt, 4)

    async def _flush_loop(self) -> None:
        """Apply acks to the buffer in groups: `ack_flush_interval_s` after the first ack of
        a group; asleep while none come (no wake-up a second for an idle gateway)."""
        while True:
            await self._acks_waiting.wait()
            await asyncio.sleep(self.config.ack_flush_interval_s)
            self._acks_waiting.clear()
            self._flush_acks()

    def _flush_acks(self) -> None:
        """Apply the acks received so far to the buffer (it frees what they complete)."""
        if self._pending_acks:
            ranges = wire.merge_ranges(self._pending_acks)
            self._pending_acks = []
            self.buffer.ack(ranges)

    # -- sending ------------------------------------------------------------------------

    def drain_now(self) -> None:
        """Send the backlog now: the token bucket (`backlog_rate`) is ignored until the
        backlog there is (now, or at the next connection) has gone out; the slot kept for
        live readings stays."""
        self._unpaced = True
        self._wake.set()

    def committed(self) -> None:
        """The buffer's writer committed new blocks: look for them now, not at the next
        poll (`poll_interval_s`)."""
        self._wake.set()

    async def _send_loop(self, client: aiomqtt.Client, tg: asyncio.TaskGroup) -> None:
        """Send what can go, then sleep until something may change that: an ack, a commit
        (`committed()`), the first ack deadline of the batches in flight, the token bucket,
        or at the latest `poll_interval_s`."""
        poll = self.config.poll_interval_s
        while True:
            self._expire()
            wait = poll
            while len(self._inflight) < self.config.window:
                batch, throttle = self._next_batch()
                if batch is None:
                    if throttle:
                        wait = min(wait, max(throttle, 0.005))
                    break
                self._send(client, tg, batch)
            self.stats.in_flight = len(self._inflight)
            now = self._clock()
            for batch in self._inflight.values():
                wait = min(wait, max(batch.deadline - now, 0.005))
            for batch in self._resend:
                if batch.not_before > now:
                    wait = min(wait, max(batch.not_before - now, 0.005))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):  # not wait_for: it may swallow a cancel
                    await self._wake.wait()
            self._wake.clear()

    def _expire(self) -> None:
        now = self._clock()
        expired = [n for n, b in self._inflight.items() if b.deadline <= now]
        if not expired:
            return
        for number in expired:
            batch = self._inflight.pop(number)
            self.stats.timeouts += 1
            batch.attempts += 1
            self._resend.append(batch)
        # Back off once per round of timeouts (they usually come together: a hub restart).
        log.info(
            "uplink: no ack for %d batch(es) within %.1f s; sending them again",
            len(expired),
            self._ack_timeout,
        )
        self._ack_timeout = min(self.config.ack_timeout_max_s, self._ack_timeout * 2)
        self._size = max(self.config.batch_min, self._size / 2)
        self.stats.batch_size = int(self._size)
        self.stats.ack_timeout_s = round(self._ack_timeout, 3)

    def _next_batch(self) -> tuple[_Batch | None, float]:
        """The next batch to send, or (None, seconds the token bucket asks to wait)."""
        now = self._clock()
        # 1. batches to send again
        for _ in range(len(self._resend)):
            batch = self._resend.popleft()
            if _covered(batch.ranges, self._acked):
                continue
            if batch.not_before > now:
                self._resend.append(batch)
                continue
            self.stats.resent_batches += 1
            return batch, 0.0
        size = int(self._size)
        # 2. live readings, never throttled, always a slot for them (none committed since
        # the cursor: the buffer is not read)
        blocks = (
            self._take(
                self.buffer.read_blocks(
                    self._live_after, size, alarms_first=False, skip=self._busy_blocks()
                )
            )
            if self.buffer.durable_seq > self._live_after
            else []
        )
        if blocks:
            self._live_after = max(self._live_after, max(b.last_seq for b in blocks))
            return _Batch(blocks, live=True), 0.0
        # 3. backlog, rate-limited, leaving one slot free
        if not self._spans and not self._left_behind(now):
            self._unpaced = False
            return None, 0.0
        if len(self._inflight) >= self.config.window - 1:
            return None, 0.0
        delay = 0.0 if self._unpaced else self._bucket.delay(size)
        if delay > 0:
            return None, delay
        while self._spans:
            span = self._spans[0]
            blocks = self._backlog_blocks(span, size)
            if blocks:
                if not self._unpaced:
                    self._bucket.take(sum(b.count for b in blocks))
                return _Batch(blocks, live=False), 0.0
            self._spans.popleft()
        self._unpaced = False
        return None, 0.0

    def _left_behind(self, now: float) -> bool:
        """Whether the buffer holds readings the cursors passed by, never sent nor in flight
        (then a backlog span over them is started). The cursors (`_live_after`, each span's
        `after`) are sequence numbers at block boundaries, and the buffer reads blocks by
        their first number; a segment compacted when it is sealed (at a jump in the
        numbering after a power cut, or when it is full) is rewritten in large blocks, one
        of which may start before a cursor and end after it: its readings past the cursor
        would stay in the buffer until the next start. Looked for once every
        `rescan_interval_s`, when no backlog is left to send."""
        if now - self._rescanned_at < self.config.rescan_interval_s:
            return False
        self._rescanned_at = now
        self._flush_acks()  # acked but not yet applied to the buffer: not left behind
        first = self.buffer.read_blocks(
            self._start_after, 1, alarms_first=False, skip=self._busy_blocks()
        )
        if not first or first[0].first_seq > self._live_after:
            return False
        block = first[0]
        if _covered([(block.first_seq, block.last_seq)], self._acked):
            return False
        self.stats.rescans += 1
        log.info(
            "uplink: readings from %d left behind by the sending cursors (blocks rewritten "
            "by the buffer): sending them again as backlog",
            block.first_seq,
        )
        self._spans.append(_Span(self._start_after, self._live_after))
        return True

    def _take(self, blocks: Sequence[StoredBlock]) -> list[StoredBlock]:
        """Blocks up to the byte budget of a batch (at least one)."""
        out: list[StoredBlock] = []
        total = 0
        for b in blocks:
            if out and total + len(b.payload) > self.config.max_batch_bytes:
                break
            out.append(b)
            total += len(b.payload)
        return out

    def _busy_blocks(self) -> set[int]:
        """first_seqs of the blocks in flight or waiting to be sent again."""
        busy = {b.first_seq for batch in self._inflight.values() for b in batch.blocks}
        busy.update(b.first_seq for batch in self._resend for b in batch.blocks)
        return busy

    def _backlog_blocks(self, span: _Span, size: int) -> list[StoredBlock]:
        """Blocks of the span not yet sent, alarms first, and the span's cursor moved on."""
        busy = self._busy_blocks() | span.sent_ahead
        for alarms_first in (True, False):
            got = self.buffer.read_blocks(span.after, size, alarms_first=alarms_first, skip=busy)
            fresh = [
                b
                for b in got
                if b.first_seq > span.after
                and b.first_seq <= span.upto  # a compacted block may end past it
                and b.first_seq not in span.sent_ahead
            ]
            blocks = self._take(fresh)
            if blocks or not got:
                break
        else:
            blocks = []
        if not blocks:
            return []
        in_order = [b for b in blocks if not b.has_alarm]
        if in_order:
            span.after = max(b.last_seq for b in in_order)
        for b in blocks:
            if b.has_alarm and b.first_seq > span.after:
                span.sent_ahead.add(b.first_seq)
        span.sent_ahead = {s for s in span.sent_ahead if s > span.after}
        return blocks

    def _send(self, client: aiomqtt.Client, tg: asyncio.TaskGroup, batch: _Batch) -> None:
        c = self.config
        self._number += 1
        batch.number = self._number
        batch.session = self._session
        ranges = batch.ranges
        payload = wire.encode_data(
            wire.DataBatch(
                session=self._session,
                batch=batch.number,
                first_seq=ranges[0][0],
                last_seq=ranges[-1][1],
                count=batch.count,
                blocks=[b.payload for b in batch.blocks],
                flags=0 if batch.live else wire.FLAG_HISTORICAL,
                backlog=self._backlog_depth(),
            ),
            compress=c.compress,
        )
        now = self._clock()
        batch.sent_at = now
        batch.deadline = now + self._ack_timeout
        self._inflight[batch.number] = batch
        self.stats.batches_sent += 1
        self.stats.readings_sent += batch.count
        if batch.live:
            self.stats.live_batches += 1
        else:
            self.stats.historical_batches += 1
        self._count_wire(self._topic_data, len(payload))
        tg.create_task(
            client.publish(self._topic_data, payload, qos=1, timeout=c.ack_timeout_max_s),
            name=f"uplink-publish-{batch.number}",
        )


__all__ = ["Uplink", "UplinkStats", "footprint_figures", "publish_wire_size"]
