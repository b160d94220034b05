"""MQTT plumbing of the hub: broker addresses, and a client that speaks MQTT 5 where the
broker does and falls back to 3.1.1 (the embedded broker speaks 3.1.1 only), following
`protocols.mqtt_versions`, the policy the gateway's uplink follows too; a bounded disconnect;
each session in a task of its own (`in_session_task`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub._errors import ConfigError
from protocols.mqtt_versions import CONNACK, MQTT_5, NO_ANSWER, VersionFallback, version_name

log = logging.getLogger("estran.hub.mqtt")
_T = TypeVar("_T")

DISCONNECT_WAIT_S = 5.0  # how long a closing client waits for the broker to confirm


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None  # the hub's broker identity (fleet.Fleet.hub_credentials)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """`mqtt://host:port` (port 1883 by default) or `host:port`."""
        if "://" not in url:
            url = "mqtt://" + url
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ConfigError(f"broker address {url!r}: expected mqtt://host:port")
        try:
            port = parts.port or 1883
        except ValueError as e:
            raise ConfigError(f"broker address {url!r}: bad port") from e
        return cls(parts.hostname, port)

    def __str__(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


@contextlib.asynccontextmanager
async def connect(
    address: BrokerAddress,
    identifier: str,
    *,
    prefer_v5: bool = True,
    timeout: float = 10.0,
    keepalive: int = 30,
    in_flight: int = 20,
) -> AsyncIterator[tuple[aiomqtt.Client, bool]]:
    """A connected client and whether it speaks MQTT 5.

    Flow control: the client acknowledges nothing by itself; the caller calls
    `acknowledge(client, message)` once it has taken a message in hand. The broker then has
    at most `in_flight` unacknowledged QoS 1 messages out to us (MQTT 5: our Receive Maximum;
    3.1.1: the broker's own window, 20 on Mosquitto and on the embedded broker) and holds the
    rest: a slow hub slows the broker down instead of discarding what it was sent."""
    fallback = VersionFallback("auto" if prefer_v5 else "3.1.1")  # protocols.mqtt_versions
    for attempt in fallback.attempts(timeout):
        v5 = attempt.version == MQTT_5
        client = aiomqtt.Client(
            address.host,
            address.port,
            identifier=identifier,
            username=address.username,
            password=address.password,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else True,
            timeout=attempt.timeout_s,
            keepalive=keepalive,
            max_queued_incoming_messages=0,  # bounded by the broker's window, see above
            max_inflight_messages=64,
            properties=_receive_maximum(in_flight) if v5 else None,
        )
        flow_control(client)
        try:
            await client.__aenter__()
        except MqttConnectError as e:
            code = getattr(e, "rc", None)
            if fallback.failed(attempt, CONNACK, getattr(code, "value", code)):
                log.info("%s refuses MQTT %s", address, version_name(attempt.version))
                continue
            raise
        except (aiomqtt.MqttError, OSError) as e:
            if fallback.failed(attempt, NO_ANSWER):
                log.info("%s: no answer to MQTT %s (%s)", address, version_name(attempt.version), e)
                continue
            raise
        fallback.accepted(attempt)
        try:
            honour_cancel()
            yield client, v5
        except BaseException as e:
            await disconnect(client, e)
            raise
        else:
            await disconnect(client, None)
        return
    raise aiomqtt.MqttError(f"{address}: no protocol version accepted")


def honour_cancel() -> None:
    """Raise the cancellation an aiomqtt call swallowed. aiomqtt waits with `asyncio.wait_for`
    (connect, subscribe, publish), which on Python 3.11 may return a result that arrived
    together with the cancel: the task then stays 'cancelling' and runs on for ever. Called
    after each such call on the hub's paths that must stop when asked."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def in_session_task(session: Coroutine[Any, Any, _T], name: str) -> _T:
    """Run one MQTT session (connect, subscribe, its TaskGroup) in a task of its own, and
    wait for it.

    On Python 3.11 a TaskGroup whose child fails while the group waits in `__aexit__` (the
    usual case: a broker restart ends the receive task) cancels its parent task and never
    uncancels it: the parent's `cancelling()` stays at 1 for good. A long-lived task that ran
    the group itself would take that leftover for a request to stop at its next
    `honour_cancel()` and end quietly, never to subscribe again. In a task of its own the
    leftover dies with the session; a cancel of the caller still reaches the session (a task
    awaiting a task forwards its cancel), and one the session swallowed stays counted on the
    caller, where `honour_cancel()` finds it."""
    return await asyncio.get_running_loop().create_task(session, name=name)


def _receive_maximum(n: int) -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.ReceiveMaximum = n
    return properties


def flow_control(client: aiomqtt.Client) -> None:
    """Acknowledge a QoS 1/2 message only when `acknowledge` says so (set before connecting).

    aiomqtt acknowledges a message as soon as it arrives and queues it; with a bounded queue it
    then discards what does not fit, with no counter; with an unbounded one memory is the
    limit. Acknowledging once the message is taken in hand makes the broker's in-flight
    window the bound (paho's manual acknowledgement; aiomqtt does not expose it)."""
    client._client.manual_ack_set(True)


def acknowledge(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    """Acknowledge `message` to the broker (a client under `flow_control`)."""
    if message.qos > 0:
        client._client.ack(message.mid, message.qos)


@contextlib.asynccontextmanager
async def session(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Client]:
    """`async with client` whose disconnect is bounded (see `disconnect`)."""
    await client.__aenter__()
    try:
        honour_cancel()
        yield client
    except BaseException as e:
        await disconnect(client, e)
        raise
    else:
        await disconnect(client, None)


async def disconnect(client: aiomqtt.Client, error: BaseException | None) -> None:
    """Leave the client's context within DISCONNECT_WAIT_S, whatever the broker does.

    aiomqtt waits without limit for its DISCONNECT to go out and the connection to close; a
    broker that stops reading (or stops together with us) would keep the task 'cancelling'
    for ever. Past the limit, or when the waiting task is itself cancelled, the socket is
    closed as it is. (`asyncio.wait`, not `wait_for`: on Python 3.11 `wait_for` may swallow
    a cancellation that arrives as the inner task ends.)
    """
    exit_ = asyncio.ensure_future(
        client.__aexit__(
            None if error is None else type(error),
            error,
            None if error is None else error.__traceback__,
        )
    )
    try:
        await asyncio.wait({exit_}, timeout=DISCONNECT_WAIT_S)
    finally:
        if not exit_.done():
            exit_.cancel()
            close_socket(client)
            log.warning("the broker did not take the disconnect in %.0f s", DISCONNECT_WAIT_S)
    if not exit_.done() or exit_.cancelled():  # dropped as it was
        return
    failure = exit_.exception()
    if failure is not None and error is None:
        raise failure


def close_socket(client: aiomqtt.Client) -> None:
    """Close the client's connection now, without the MQTT goodbye (aiomqtt has no public
    way: the paho client and the futures are its private parts)."""
    paho = client._client
    with contextlib.suppress(Exception):
        paho._sock_close()  # unregisters from the event loop, closes the fd
    disconnected = client._disconnected
    if not disconnected.done():
        disconnected.set_result(None)
    lock = client._lock
    if lock.locked():
        lock.release()


__all__ = [
    "DISCONNECT_WAIT_S",
    "BrokerAddress",
    "acknowledge",
    "close_socket",
    "connect",
    "disconnect",
    "flow_control",
    "honour_cancel",
    "in_session_task",
    "session",
]
