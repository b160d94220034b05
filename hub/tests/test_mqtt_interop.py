"""MQTT 3.1.1 semantics, on the embedded broker and on Mosquitto: the scenarios of the
Eclipse Paho interoperability tests (eclipse/paho.mqtt.testing, interoperability/
client_test.py), written here with paho-mqtt clients.

The embedded broker must pass every scenario Mosquitto passes. Each scenario uses its own
client ids and topics; the brokers start empty for each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.broker import BrokerLimits
from hub.tests.brokers import BROKERS, open_broker


@pytest.fixture(params=BROKERS)
async def port(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[int]:
    async with open_broker(request.param, tmp_path) as p:
        yield p


class Client:
    """A paho-mqtt client on its own network thread, recording what it receives."""

    def __init__(
        self,
        port: int,
        client_id: str,
        *,
        clean: bool = True,
        keepalive: int = 60,
        will: tuple[str, bytes] | None = None,
        manual_ack: bool = False,
    ) -> None:
        self.port = port
        self.keepalive = keepalive
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            protocol=mqtt.MQTTv311,
            manual_ack=manual_ack,
        )
        if will is not None:
            self.c.will_set(will[0], will[1], qos=1)
        self.lock = threading.Lock()
        self.messages: list[tuple[str, bytes, int, bool, bool]] = []
        self.granted: list[list[int]] = []
        self.connack: tuple[bool, int] | None = None
        self.c.on_message = self._on_message
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((m.topic, m.payload, m.qos, bool(m.retain), bool(m.dup)))

    def _on_connect(self, _c: Any, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
        self.connack = (bool(flags.session_present), int(rc.value))

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        self.granted.append([int(code.value) for code in codes])

    async def connect(self) -> tuple[bool, int]:
        self.c.connect("127.0.0.1", self.port, self.keepalive)
        self.c.loop_start()
        await until(lambda: self.connack is not None)
        assert self.connack is not None
        return self.connack

    async def subscribe(self, *filters: tuple[str, int]) -> list[int]:
        n = len(self.granted)
        self.c.subscribe(list(filters))
        await until(lambda: len(self.granted) > n)
        return self.granted[-1]

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        info = self.c.publish(topic, payload, qos, retain)
        await asyncio.to_thread(info.wait_for_publish, 5)

    async def disconnect(self) -> None:
        self.c.disconnect()
        await asyncio.to_thread(self.c.loop_stop)

    async def go_silent(self) -> None:
        """Stop talking without closing the socket (a gateway that lost power)."""
        await asyncio.to_thread(self.c.loop_stop)

    def terminate(self) -> None:
        """Close the socket without DISCONNECT."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock is not None:
            sock.close()

    def received(self) -> list[tuple[str, bytes, int, bool, bool]]:
        with self.lock:
            return list(self.messages)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def connected(port: int, client_id: str, **kw: Any) -> AsyncIterator[Client]:
    client = Client(port, client_id, **kw)
    await client.connect()
    try:
        yield client
    finally:
        await client.disconnect()


async def settle(seconds: float = 0.5) -> None:
    await asyncio.sleep(seconds)


def raw_connect(protocol: bytes = b"MQTT", level: int = 4, client_id: bytes = b"raw") -> bytes:
    body = len(protocol).to_bytes(2, "big") + protocol + bytes([level, 0x02, 0, 30])
    body += len(client_id).to_bytes(2, "big") + client_id
    return bytes([0x10, len(body)]) + body


def raw_exchange(port: int, data: bytes, timeout: float = 3.0) -> bytes:
    """Send bytes, return everything the broker answers until it closes (or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := s.recv(4096):
                out += chunk
        return out


# -- the scenarios ------------------------------------------------------------------------------


async def test_basic(port: int) -> None:
    a = Client(port, "basic-a")
    await a.connect()
    await a.disconnect()
    async with connected(port, "basic-a") as a:
        assert a.connack == (False, 0)
        assert await a.subscribe(("TopicA", 2)) == [2]
        for qos in (0, 1, 2):
            await a.publish("TopicA", f"qos {qos}".encode(), qos)
        await until(lambda: len(a.received()) == 3)
        assert sorted(m[2] for m in a.received()) == [0, 1, 2]
    # A second CONNECT on one connection closes it; a wrong protocol name gets no CONNACK.
    connack = bytes([0x20, 2, 0, 0])
    assert await asyncio.to_thread(raw_exchange, port, raw_connect() + raw_connect()) == connack
    assert await asyncio.to_thread(raw_exchange, port, raw_connect(protocol=b"hj")) == b""


async def test_retained_messages(port: int) -> None:
    topics = ("TopicA/B", "Topic/C", "TopicA/C")
    async with connected(port, "retain-a") as a:
        for qos, topic in enumerate(topics):
            await a.publish(topic, f"qos {qos}".encode(), qos, retain=True)
        await a.subscribe(("+/+", 2))
        await until(lambda: len(a.received()) == 3)
        assert all(m[3] for m in a.received())  # sent as retained
    async with connected(port, "retain-a") as a:
        for qos, topic in enumerate(topics):
            await a.publish(topic, b"", qos, retain=True)  # clears it
        await settle()
        await a.subscribe(("+/+", 2))
        await settle(1.0)
        assert a.received() == []


async def test_will_message_when_the_connection_drops(port: int) -> None:
    async with connected(port, "will-b") as b:
        await b.subscribe(("Topic/C", 2))
        a = Client(port, "will-a", will=("Topic/C", b"client not disconnected"), keepalive=2)
        await a.connect()
        a.terminate()
        await until(lambda: len(b.received()) == 1)
        assert b.received()[0][1] == b"client not disconnected"


async def test_zero_length_clientid(port: int) -> None:
    # an empty client id with a persistent session: CONNACK 2 "identifier rejected"
    raw = raw_connect(client_id=b"")
    persistent = raw[:9] + bytes([0x00]) + raw[10:]  # clean session off
    assert await asyncio.to_thread(raw_exchange, port, persistent) == bytes([0x20, 2, 0, 2])
    async with connected(port, "", clean=True) as anonymous:
        assert anonymous.connack == (False, 0)


async def test_offline_message_queueing(port: int) -> None:
    a = Client(port, "queue-a", clean=False)
    await a.connect()
    await a.subscribe(("+/+", 2))
    await a.disconnect()
    async with connected(port, "queue-b") as b:
        for qos, topic in enumerate(("TopicA/B", "Topic/C", "TopicA/C")):
            await b.publish(topic, f"qos {qos}".encode(), qos)
    a = Client(port, "queue-a", clean=False)
    assert await a.connect() == (True, 0)  # session present
    await until(lambda: len(a.received()) >= 2)
    await settle()
    await a.disconnect()
    assert len(a.received()) in (2, 3)  # QoS 0 may or may not be queued


async def test_overlapping_subscriptions(port: int, request: pytest.FixtureRequest) -> None:
    if "mosquitto" in request.node.name:
        # Mosquitto 2.0 sends one copy per matching subscription, each at the publication's
        # QoS (both 2), which the Paho test does not accept; a documented option.
        request.applymarker(pytest.mark.xfail(reason="Mosquitto: one copy per subscription"))
    async with connected(port, "overlap-a") as a:
        await a.subscribe(("TopicA/#", 2), ("TopicA/+", 1))
        await a.publish("TopicA/C", b"overlapping topic filters", 2)
        await until(lambda: len(a.received()) >= 1)
        await settle()
        qos = sorted(m[2] for m in a.received())
        assert qos in ([2], [1, 2]), a.received()


async def test_keepalive_publishes_the_will_of_a_silent_client(port: int) -> None:
    async with connected(port, "keepalive-b", keepalive=0) as b:
        await b.subscribe(("/TopicA", 2))
        a = Client(port, "keepalive-a", keepalive=2, will=("/TopicA", b"keepalive expiry"))
        await a.connect()
        await a.go_silent()  # connected, sends nothing, no PINGREQ
        await until(lambda: len(b.received()) == 1, timeout=10)
        assert b.received()[0][1] == b"keepalive expiry"
        a.terminate()


async def test_redelivery_on_reconnect(port: int) -> None:
    b = Client(port, "redeliver-b", clean=False)
    await b.connect()
    await b.subscribe(("TopicA/#", 2))
    await b.go_silent()  # stops answering: no PUBACK, no PUBREC
    async with connected(port, "redeliver-pub") as pub:
        await pub.publish("TopicA/B", b"one", 1)
        await pub.publish("TopicA/C", b"two", 2)
    await settle()
    b.terminate()
    assert b.received() == []
    again = Client(port, "redeliver-b", clean=False)
    assert await again.connect() == (True, 0)
    await until(lambda: len(again.received()) == 2)
    await again.disconnect()
    assert sorted(m[1] for m in again.received()) == [b"one", b"two"]
    assert all(m[4] for m in again.received())  # resent with DUP


async def test_dollar_topics(port: int) -> None:
    async with connected(port, "dollar-b", keepalive=0) as b:
        await b.subscribe(("+/+", 2))
        await b.publish("$TopicA/B", b"", 1)
        await b.publish("TopicA/B", b"plain", 1)
        await until(lambda: len(b.received()) >= 1)
        await settle(0.3)
        assert [m[0] for m in b.received()] == ["TopicA/B"]


async def test_unsubscribe(port: int) -> None:
    async with connected(port, "unsub-b") as b, connected(port, "unsub-a") as a:
        for topic in ("TopicA", "TopicA/B", "Topic/C"):
            await b.subscribe((topic, 2))
        info = b.c.unsubscribe("TopicA")
        assert info[0] == mqtt.MQTT_ERR_SUCCESS
        await settle(0.3)
        for topic in ("TopicA", "TopicA/B", "Topic/C"):
            await a.publish(topic, b"", 1)
        await until(lambda: len(b.received()) >= 2)
        await settle()
        assert sorted(m[0] for m in b.received()) == ["Topic/C", "TopicA/B"]


@pytest.mark.parametrize("kind", BROKERS)
async def test_acknowledged_messages_outlive_their_publisher(kind: str, tmp_path: Path) -> None:
    """Regression: amqtt lost about half of 2,000 acknowledged QoS 1 messages when their
    publisher disconnected right after its last PUBACK while the subscriber was behind. A
    broker that acknowledges a message delivers it (or counts why not: the embedded broker's
    `stats.dropped`). Mosquitto holds them with the `max_queued_messages` we generate."""
    import aiomqtt

    n = 2000
    async with open_broker(kind, tmp_path, BrokerLimits()) as port:
        sub = Client(port, "outlive-sub")
        await sub.connect()
        await sub.subscribe(("outlive/#", 1))
        await sub.go_silent()  # behind: reads nothing while the burst comes
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier="outlive-pub", max_inflight_messages=20
        ) as pub:
            slots = asyncio.Semaphore(20)

            async def send(i: int) -> None:
                async with slots:
                    body = str(i).encode().ljust(2048, b".")
                    await pub.publish(f"outlive/{i % 7}", body, qos=1, timeout=30)

            async with asyncio.TaskGroup() as tg:
                for i in range(n):
                    tg.create_task(send(i))
        # every message was acknowledged and the publisher is gone; the subscriber catches up
        sub.c.loop_start()
        await until(lambda: len({m[1] for m in sub.received()}) >= n, timeout=60)
        await sub.disconnect()
