"""An asyncio MQTT 3.1.1 broker: sessions, retained messages, Wills, keepalive, QoS 0/1/2,
shared subscriptions, an access check on every delivery path and per-identity limits.

Guarantees (docs/hub.md, docs/security.md):

- Access: a CONNECT is authenticated before anything else; a refused one never reads,
  creates, takes over or changes a session. A client id is bound to the identity that holds
  its session: another identity cannot take it over, and the access policy may reserve ids
  (`Access.may_claim`). Every message delivered to a client — live, retained on subscribe,
  queued for an offline session and sent on its return — passes `Access.allowed(identity,
  "receive", topic)` when it is queued and again when it is written.
- Delivery: a PUBLISH is routed into the queues of every matching session before it is
  acknowledged, so an acknowledged message is never lost with its publisher's connection;
  one that is not delivered (queue full, subscriber's clean session ended) is counted in
  `stats.dropped` by reason and logged (rate-limited).
- Flow control: at most `max_inflight` unacknowledged QoS 1/2 messages per session; the rest
  wait in the session's bounded queue, so a slow subscriber is held back, not flooded.
- Limits: packets over `max_packet_size` close the connection unread; per identity, at most
  `connections_per_identity` connections and `publish_rate` messages/s (a faster publisher
  is slowed down: its socket is read later, nothing is dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from hub._loglimit import LogLimiter
from hub.broker import _codec as c
from hub.broker._topics import has_wildcard, matches, split_shared, valid_filter, valid_topic
from protocols import wire

log = logging.getLogger("estran.hub.broker")

Action = Literal["publish", "subscribe", "receive"]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection authenticated as. `name` None: anonymous (open access only)."""

    name: str | None
    privileged: bool = False  # exempt from the per-identity limits (the hub itself)


class Access(Protocol):
    """The policy a broker asks; no I/O (called on every message)."""

    def authenticate(self, username: str | None, password: bytes | None) -> Identity | None: ...

    def may_claim(self, identity: Identity, client_id: str) -> bool: ...

    def allowed(self, identity: Identity, action: Action, topic: str) -> bool: ...


class OpenAccess:
    """Anyone connects and does anything: a demo, a test, a broker behind a firewall."""

    def authenticate(self, username: str | None, password: bytes | None) -> Identity | None:
        return Identity(username)

    def may_claim(self, identity: Identity, client_id: str) -> bool:
        return True

    def allowed(self, identity: Identity, action: Action, topic: str) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    max_packet_size: int = wire.MAX_PACKET  # a 1 MiB ingest payload with its topic
    max_inflight: int = 20  # unacknowledged QoS 1/2 messages towards one client
    max_queued: int = 100_000  # messages waiting for one session
    max_queued_bytes: int = 128 << 20  # bytes waiting for one session
    connections_per_identity: int = 8
    publish_rate: float = 200.0  # messages/s per identity, sustained
    publish_burst: int = 1000
    max_sessions: int = 100_000
    max_retained: int = 100_000
    connect_timeout: float = 10.0  # from TCP accept to CONNECT
    write_timeout: float = 30.0  # a client that reads nothing for this long is dropped


@dataclass
class BrokerStats:
    connections: int = 0  # open now
    sessions: int = 0  # held now (connected or not)
    connects: int = 0  # accepted CONNECTs
    refused: Counter[str] = field(default_factory=Counter)  # CONNECTs refused, by reason
    closed: Counter[str] = field(default_factory=Counter)  # connections closed by the broker
    received: int = 0  # PUBLISH from clients
    delivered: int = 0  # PUBLISH to clients
    denied: Counter[str] = field(default_factory=Counter)  # publish/subscribe/receive refused
    dropped: Counter[str] = field(default_factory=Counter)  # acknowledged, not delivered
    throttled: int = 0  # PUBLISH read late because of the sender's rate limit

    def as_dict(self) -> dict[str, object]:
        return {
            "connections": self.connections,
            "sessions": self.sessions,
            "connects": self.connects,
            "refused": dict(self.refused),
            "closed": dict(self.closed),
            "received": self.received,
            "delivered": self.delivered,
            "denied": dict(self.denied),
            "dropped": dict(self.dropped),
            "throttled": self.throttled,
        }


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(slots=True)
class _Inflight:
    message: _Message
    released: bool = False  # QoS 2: PUBREC received, PUBREL sent


class _Session:
    def __init__(self, client_id: str, identity: Identity, clean: bool) -> None:
        self.client_id = client_id
        self.identity = identity
        self.clean = clean
        self.subs: dict[str, int] = {}  # filter as subscribed ($share/... included) -> QoS
        self.queue: deque[_Message] = deque()
        self.queued_bytes = 0
        self.inflight: dict[int, _Inflight] = {}  # insertion order = send order
        self.qos2_in: set[int] = set()  # client's QoS 2 ids: PUBREC sent, PUBREL awaited
        self.conn: _Connection | None = None
        self.wake = asyncio.Event()
        self._pid = 0

    def next_pid(self) -> int:
        for _ in range(65535):
            self._pid = self._pid % 65535 + 1
            if self._pid not in self.inflight:
                return self._pid
        raise RuntimeError("no free packet identifier")  # max_inflight < 65535


class _Bucket:
    """A token bucket per identity: `delay()` is how long to wait before the next message."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last = time.monotonic()

    def delay(self) -> float:
        t = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (t - self.last) * self.rate)
        self.last = t
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class _Closed(Exception):
    """The connection ends (the reason goes to stats.closed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.session: _Session | None = None
        self.identity: Identity | None = None
        self.will: c.Will | None = None
        self.keepalive = 0
        self.finished = asyncio.Event()
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def abort(self) -> None:
        transport = self.writer.transport
        if not transport.is_closing():
            transport.abort()


class Broker:
    """`async with Broker([("127.0.0.1", 1883, None)], access) as broker:` serves until the
    block ends. Listeners are (host, port, ssl context or None)."""

    def __init__(
        self,
        listeners: list[tuple[str, int, ssl.SSLContext | None]],
        access: Access | None = None,
        limits: BrokerLimits | None = None,
    ) -> None:
        self.listeners = listeners
        self.access: Access = access if access is not None else OpenAccess()
        self.limits = limits or BrokerLimits()
        self.stats = BrokerStats()
        self._sessions: dict[str, _Session] = {}
        self._subs: dict[str, dict[_Session, int]] = {}  # plain filter -> sessions
        self._wild: set[str] = set()  # the plain filters holding a wildcard
        self._shared: dict[tuple[str, str], dict[_Session, int]] = {}  # (group, filter)
        self._turn: Counter[tuple[str, str]] = Counter()  # round robin in a share group
        self._retained: dict[str, _Message] = {}
        self._per_identity: Counter[str] = Counter()  # open connections per identity
        self._buckets: dict[str, _Bucket] = {}
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._servers: list[asyncio.Server] = []
        self._accept = asyncio.Lock()
        self._dropped_log = LogLimiter(log, "undelivered messages")
        self._refused_log = LogLimiter(log, "refused connections")

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Broker:
        try:
            for host, port, context in self.listeners:
                self._servers.append(
                    await asyncio.start_server(
                        self._serve, host, port, ssl=context, limit=1 << 16, reuse_address=True
                    )
                )
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def ports(self) -> list[int]:
        return [s.sockets[0].getsockname()[1] for s in self._servers if s.sockets]

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            conn.abort()
        tasks = list(self._tasks)
        if tasks:  # aborted, each connection ends on its own; a stuck one is cancelled
            _, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
        for server in self._servers:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await server.wait_closed()
        self._servers.clear()

    # -- what the hub asks -------------------------------------------------------------------

    def clients(self) -> dict[str, str | None]:
        """Connected client ids and the identity each authenticated as."""
        return {s.client_id: s.identity.name for s in self._sessions.values() if s.conn}

    async def disconnect_where(self, revoked: Callable[[Identity], bool]) -> list[str]:
        """Close the connections and drop the sessions of identities no longer allowed."""
        gone: list[str] = []
        for session in list(self._sessions.values()):
            if not revoked(session.identity):
                continue
            gone.append(session.client_id)
            conn = session.conn
            if conn is not None:
                conn.abort()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await conn.finished.wait()
            if self._sessions.get(session.client_id) is session:
                self._drop_session(session, "access revoked")
        return gone

    # -- connections -----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = _Connection(reader, writer)
        self._connections.add(conn)
        self.stats.connections += 1
        clean_exit = False
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                first, body = await self._read_packet(conn)
            packet = c.decode(first, body)
            if not isinstance(packet, c.Connect):
                raise _Closed("no CONNECT first")
            async with self._accept:
                accepted = await self._connect(conn, packet)
            if not accepted:
                with contextlib.suppress(TimeoutError, OSError):
                    async with asyncio.timeout(2):
                        await writer.drain()
                return
            clean_exit = await self._run(conn)
        except _Closed as e:
            self.stats.closed[e.reason] += 1
        except c.MalformedPacket as e:
            self.stats.closed["malformed"] += 1
            self._refused_log.warn("broker: %s closed: malformed packet: %s", conn.peer, e.reason)
        except TimeoutError:
            self.stats.closed["timeout"] += 1
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ssl.SSLError):
            self.stats.closed["connection lost"] += 1
        finally:
            self._end(conn, clean_exit)
            self._tasks.discard(task)

    async def _read_packet(self, conn: _Connection) -> tuple[int, bytes]:
        first = (await conn.reader.readexactly(1))[0]
        lengths = c.LengthReader()
        size = None
        while size is None:
            size = lengths.feed((await conn.reader.readexactly(1))[0])
        if size + 5 > self.limits.max_packet_size:
            who = conn.identity.name if conn.identity else None
            self._refused_log.warn(
                "broker: %s (%s) sent a %d-byte packet, over the %d-byte limit: disconnected",
                conn.peer,
                who,
                size,
                self.limits.max_packet_size,
            )
            raise _Closed("packet too large")
        return first, await conn.reader.readexactly(size) if size else b""

    def _refuse(self, conn: _Connection, code: int, reason: str, who: str | None) -> bool:
        self.stats.refused[reason] += 1
        self._refused_log.warn("broker: %s (%r) refused: %s", conn.peer, who, reason)
        conn.write(c.encode_connack(False, code))
        return False

    async def _connect(self, conn: _Connection, p: c.Connect) -> bool:
        """Authenticate and attach a session; False (CONNACK sent) if refused. Nothing of
        the broker's state changes before every check has passed."""
        if (p.protocol, p.level) != ("MQTT", 4):
            return self._refuse(conn, c.BAD_PROTOCOL, "protocol version", p.username)
        identity = self.access.authenticate(p.username, p.password)
        if identity is None:
            code = c.BAD_CREDENTIALS if p.username else c.NOT_AUTHORIZED
            return self._refuse(conn, code, "credentials", p.username)
        client_id = p.client_id
        if not client_id:
            if not p.clean:
                return self._refuse(conn, c.IDENTIFIER_REJECTED, "empty client id", p.username)
            client_id = f"auto-{secrets.token_hex(8)}"
        if not self.access.may_claim(identity, client_id):
            return self._refuse(conn, c.IDENTIFIER_REJECTED, "client id reserved", p.username)
        existing = self._sessions.get(client_id)
        if existing is not None and existing.identity.name != identity.name:
            return self._refuse(conn, c.IDENTIFIER_REJECTED, "client id taken", p.username)
        if p.will is not None and not (
            valid_topic(p.will.topic) and self.access.allowed(identity, "publish", p.will.topic)
        ):
            return self._refuse(conn, c.NOT_AUTHORIZED, "will topic", p.username)
        if identity.name is not None and not identity.privileged:
            taken_over = 1 if existing is not None and existing.conn is not None else 0
            open_ = self._per_identity[identity.name] - taken_over
            if open_ >= self.limits.connections_per_identity:
                return self._refuse(conn, c.SERVER_UNAVAILABLE, "connection limit", p.username)
        if existing is None and len(self._sessions) >= self.limits.max_sessions:
            return self._refuse(conn, c.SERVER_UNAVAILABLE, "session limit", p.username)

        # Accepted: from here on the session table changes.
        if existing is not None and existing.conn is not None:
            old = existing.conn
            old.abort()  # a takeover: the old connection ends (and publishes its Will)
            self.stats.closed["taken over"] += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await old.finished.wait()
            existing = self._sessions.get(client_id)
        if existing is not None and p.clean:
            self._drop_session(existing, "session ended")
            existing = None
        present = existing is not None
        session = existing or _Session(client_id, identity, p.clean)
        if not present:
            self._sessions[client_id] = session
            self.stats.sessions = len(self._sessions)
        session.conn = conn
        conn.session = session
        conn.identity = identity
        conn.will = p.will
        conn.keepalive = p.keepalive
        if identity.name is not None:
            self._per_identity[identity.name] += 1
        self.stats.connects += 1
        conn.write(c.encode_connack(present, c.ACCEPTED))
        return True

    async def _run(self, conn: _Connection) -> bool:
        """Serve an accepted connection; True if it ended with a DISCONNECT."""
        session = conn.session
        assert session is not None
        sender = asyncio.create_task(self._send_loop(conn, session), name="broker-send")
        try:
            timeout = conn.keepalive * 1.5 if conn.keepalive else None
            while True:
                if sender.done():
                    sender.result()  # its exception ends the connection
                    raise _Closed("sender stopped")
                async with asyncio.timeout(timeout):
                    first, body = await self._read_packet(conn)
                packet = c.decode(first, body)
                if isinstance(packet, c.Disconnect):
                    return True
                await self._handle(conn, session, packet)
        finally:
            sender.cancel()
            await asyncio.wait({sender}, timeout=5)

    def _end(self, conn: _Connection, clean_exit: bool) -> None:
        self._connections.discard(conn)
        self.stats.connections -= 1
        session = conn.session
        if conn.identity is not None and conn.identity.name is not None and session is not None:
            self._per_identity[conn.identity.name] -= 1
            if self._per_identity[conn.identity.name] <= 0:
                del self._per_identity[conn.identity.name]
        if session is not None and session.conn is conn:
            session.conn = None
            if not clean_exit and conn.will is not None and conn.identity is not None:
                will = conn.will
                if self.access.allowed(conn.identity, "publish", will.topic):
                    self._publish(_Message(will.topic, will.payload, will.qos, will.retain))
            if session.clean and self._sessions.get(session.client_id) is session:
                self._drop_session(session, "session ended")
        conn.abort()
        conn.finished.set()

    def _drop_session(self, session: _Session, reason: str) -> None:
        undelivered = sum(1 for m in session.queue if m.qos) + len(session.inflight)
        if undelivered:
            self.stats.dropped[reason] += undelivered
            self._dropped_log.warn(
                "broker: %d acknowledged messages for %s not delivered: %s",
                undelivered,
                session.client_id,
                reason,
            )
        for pattern in list(session.subs):
            self._unindex(session, pattern)
        session.subs.clear()
        session.queue.clear()
        session.inflight.clear()
        del self._sessions[session.client_id]
        self.stats.sessions = len(self._sessions)

    # -- packets from a client -------------------------------------------------------------

    async def _handle(self, conn: _Connection, session: _Session, packet: c.Packet) -> None:
        if isinstance(packet, c.Publish):
            await self._on_publish(conn, session, packet)
        elif isinstance(packet, c.Ack):
            if packet.kind == c.PUBACK or packet.kind == c.PUBCOMP:
                if session.inflight.pop(packet.packet_id, None) is not None:
                    session.wake.set()
            elif packet.kind == c.PUBREC:
                flight = session.inflight.get(packet.packet_id)
                if flight is not None:
                    flight.released = True
                conn.write(c.encode_ack(c.PUBREL, packet.packet_id))
            elif packet.kind == c.PUBREL:
                session.qos2_in.discard(packet.packet_id)
                conn.write(c.encode_ack(c.PUBCOMP, packet.packet_id))
        elif isinstance(packet, c.Subscribe):
            self._on_subscribe(conn, session, packet)
        elif isinstance(packet, c.Unsubscribe):
            for pattern in packet.filters:
                if session.subs.pop(pattern, None) is not None:
                    self._unindex(session, pattern)
            conn.write(c.encode_ack(c.UNSUBACK, packet.packet_id))
        elif isinstance(packet, c.Ping):
            conn.write(c.PINGRESP_BYTES)
        else:  # a second CONNECT
            raise c.MalformedPacket("CONNECT on a connected session")

    async def _on_publish(self, conn: _Connection, session: _Session, p: c.Publish) -> None:
        identity = conn.identity
        assert identity is not None
        if not valid_topic(p.topic):
            raise c.MalformedPacket("PUBLISH to a topic filter")
        if identity.name is not None and not identity.privileged:
            bucket = self._buckets.get(identity.name)
            if bucket is None:
                bucket = self._buckets[identity.name] = _Bucket(
                    self.limits.publish_rate, self.limits.publish_burst
                )
            delay = bucket.delay()
            if delay > 0:
                self.stats.throttled += 1
                await asyncio.sleep(delay)
        self.stats.received += 1
        duplicate = p.qos == 2 and p.packet_id in session.qos2_in
        if not duplicate:
            if self.access.allowed(identity, "publish", p.topic):
                self._publish(_Message(p.topic, p.payload, p.qos, p.retain))
            else:  # MQTT 3.1.1 has no negative PUBACK: acknowledged, counted, dropped
                self.stats.denied["publish"] += 1
                self._refused_log.warn(
                    "broker: publish on %s refused for %r", p.topic[:100], identity.name
                )
        if p.qos == 1:
            conn.write(c.encode_ack(c.PUBACK, p.packet_id))
        elif p.qos == 2:
            session.qos2_in.add(p.packet_id)
            conn.write(c.encode_ack(c.PUBREC, p.packet_id))

    def _on_subscribe(self, conn: _Connection, session: _Session, p: c.Subscribe) -> None:
        identity = conn.identity
        assert identity is not None
        codes: list[int] = []
        granted: list[tuple[str, int]] = []
        for pattern, qos in p.filters:
            try:
                group, plain = split_shared(pattern)
            except ValueError:
                codes.append(c.SUBACK_FAILURE)
                continue
            if not valid_filter(plain):
                codes.append(c.SUBACK_FAILURE)
                continue
            if not self.access.allowed(identity, "subscribe", pattern):
                self.stats.denied["subscribe"] += 1
                self._refused_log.warn(
                    "broker: subscribe %s refused for %r", pattern[:100], identity.name
                )
                codes.append(c.SUBACK_FAILURE)
                continue
            if pattern in session.subs:
                self._unindex(session, pattern)
            session.subs[pattern] = qos
            self._index(session, pattern, qos)
            codes.append(qos)
            if group is None:
                granted.append((plain, qos))
        conn.write(c.encode_suback(p.packet_id, codes))
        for plain, qos in granted:  # retained messages, through the same receive check
            for topic, message in list(self._retained.items()):
                if matches(topic, plain):
                    self._deliver(
                        session,
                        _Message(topic, message.payload, min(qos, message.qos), True),
                    )

    # -- routing ---------------------------------------------------------------------------

    def _index(self, session: _Session, pattern: str, qos: int) -> None:
        group, plain = split_shared(pattern)
        if group is not None:
            self._shared.setdefault((group, plain), {})[session] = qos
            return
        self._subs.setdefault(plain, {})[session] = qos
        if has_wildcard(plain):
            self._wild.add(plain)

    def _unindex(self, session: _Session, pattern: str) -> None:
        group, plain = split_shared(pattern)
        if group is not None:
            members = self._shared.get((group, plain))
            if members is not None:
                members.pop(session, None)
                if not members:
                    del self._shared[(group, plain)]
                    self._turn.pop((group, plain), None)
            return
        plain_members = self._subs.get(plain)
        if plain_members is not None:
            plain_members.pop(session, None)
            if not plain_members:
                del self._subs[plain]
                self._wild.discard(plain)

    def _targets(self, topic: str) -> Iterator[tuple[_Session, int]]:
        """Each subscribed session once, at the highest QoS of its matching filters."""
        best: dict[_Session, int] = {}
        for pattern in (topic, *(w for w in self._wild if matches(topic, w))):
            for session, qos in self._subs.get(pattern, {}).items():
                if best.get(session, -1) < qos:
                    best[session] = qos
        yield from best.items()
        for key, members in self._shared.items():
            if not members or not matches(topic, key[1]):
                continue
            online = [s for s in members if s.conn is not None] or list(members)
            self._turn[key] += 1
            start = self._turn[key] % len(online)
            rotated = online[start:] + online[:start]
            chosen = min(rotated, key=lambda s: len(s.queue) + len(s.inflight))
            yield chosen, members[chosen]

    def _publish(self, message: _Message) -> None:
        if message.retain:
            if not message.payload:
                self._retained.pop(message.topic, None)
            elif message.topic in self._retained or len(self._retained) < self.limits.max_retained:
                self._retained[message.topic] = _Message(
                    message.topic, message.payload, message.qos, True
                )
            else:
                self.stats.dropped["retained limit"] += 1
        for session, qos in list(self._targets(message.topic)):
            self._deliver(
                session, _Message(message.topic, message.payload, min(qos, message.qos), False)
            )

    def _deliver(self, session: _Session, message: _Message) -> None:
        if not self.access.allowed(session.identity, "receive", message.topic):
            self.stats.denied["receive"] += 1
            return
        if session.conn is None and message.qos == 0:
            return  # QoS 0 is not kept for an offline session (as Mosquitto by default)
        limits = self.limits
        if (
            len(session.queue) >= limits.max_queued
            or session.queued_bytes + len(message.payload) > limits.max_queued_bytes
        ):
            if message.qos:
                self.stats.dropped["queue full"] += 1
                self._dropped_log.warn(
                    "broker: queue of %s full (%d messages): message on %s dropped",
                    session.client_id,
                    len(session.queue),
                    message.topic[:100],
                )
            return
        session.queue.append(message)
        session.queued_bytes += len(message.payload)
        session.wake.set()

    async def _send_loop(self, conn: _Connection, session: _Session) -> None:
        """Write the session's messages: first what was in flight when it last left (DUP),
        then its queue, at most `max_inflight` unacknowledged at a time."""
        for pid, flight in list(session.inflight.items()):
            m = flight.message
            if flight.released:
                conn.write(c.encode_ack(c.PUBREL, pid))
            else:
                conn.write(c.encode_publish(m.topic, m.payload, m.qos, m.retain, True, pid))
        limits = self.limits
        while True:
            session.wake.clear()
            queue = session.queue
            while queue and (queue[0].qos == 0 or len(session.inflight) < limits.max_inflight):
                m = queue.popleft()
                session.queued_bytes -= len(m.payload)
                if not self.access.allowed(session.identity, "receive", m.topic):
                    self.stats.denied["receive"] += 1  # access changed while it waited
                    continue
                pid = 0
                if m.qos:
                    pid = session.next_pid()
                    session.inflight[pid] = _Inflight(m)
                conn.write(c.encode_publish(m.topic, m.payload, m.qos, m.retain, False, pid))
                self.stats.delivered += 1
                if conn.writer.transport.get_write_buffer_size() > 1 << 20:
                    break
            try:
                async with asyncio.timeout(limits.write_timeout):
                    await conn.writer.drain()
            except TimeoutError:
                conn.abort()
                raise _Closed("client not reading") from None
            if queue and len(session.inflight) < limits.max_inflight:
                continue
            await session.wake.wait()


__all__ = [
    "Access",
    "Action",
    "Broker",
    "BrokerLimits",
    "BrokerStats",
    "Identity",
    "OpenAccess",
]
