"""The gateway's fleet link: its own MQTT session (client id `<gateway>-fleet`) on the
gateway's broker identity, subscribed to its `config` and `cmd` topics; every message goes
through the `ConfigApplier`, every outcome is published on its `report` topic.

MQTT 3.1.1 (both brokers speak it), QoS 1, clean session: the retained configuration comes
back on every reconnect and the applier recognises the one it already handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Protocol

import aiomqtt

from edge.config_apply._transaction import CommandRunner, ConfigApplier, Outcome, report_message
from edge.identity import hub_tls_context
from edge.uplink import Backoff, honour_cancel, session
from protocols import wire

log = logging.getLogger("estran.edge.fleet")

TIMEOUT_S = 10.0
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 60.0
HELD_S = 30.0  # a connection up this long resets the reconnect backoff
MAX_QUEUED = 16  # a configuration or command at a time is all a gateway receives


async def no_commands(name: str, args: Mapping[str, object]) -> str:
    raise NotImplementedError(f"no command {name!r} on this gateway")


class JobHandler(Protocol):
    """What runs the hub's pull-mode update jobs (`edge.update.UpdateAgent`): the `cmd`
    messages it claims go to it, and while connected it publishes its reports."""

    def claims(self, payload: bytes) -> bool: ...
    async def handle(self, payload: bytes, trusted: Mapping[str, bytes]) -> None: ...
    async def pump(self, publish: Callable[[bytes], Awaitable[None]]) -> None: ...


class FleetAgent:
    def __init__(
        self,
        applier: ConfigApplier,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        commands: CommandRunner = no_commands,
        after_report: Callable[[Outcome], None] | None = None,
        updates: JobHandler | None = None,
        tls: bool = False,
        tls_ca: Path | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.applier = applier
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.commands = commands
        self.after_report = after_report  # called once each outcome is reported (or failed to)
        self.updates = updates
        # MQTT over TLS: the hub's CA (demo) or the system's (None); host name verified
        self.tls_context = hub_tls_context(tls_ca) if tls else None
        self.gateway_id = applier.gateway_id
        self.connected = asyncio.Event()
        self.outcomes: list[Outcome] = []  # the last ones, for status and tests
        # Jittered, as the uplink's: a fleet that lost its broker at once must not come back
        # at once, in waves at 0.5, 1, 2, 4 s
        self.backoff = backoff or Backoff(RECONNECT_MIN_S, RECONNECT_MAX_S)

    async def run(self) -> None:
        """Run until cancelled; reconnects with backoff. The configuration received at
        enrollment (or cut short by a crash) is applied first."""
        pending = await self.applier.apply_pending()
        while True:
            up_since: float | None = None
            try:
                async with session(
                    aiomqtt.Client(
                        self.host,
                        self.port,
                        identifier=f"{self.gateway_id}-fleet",
                        username=self.username,
                        password=self.password,
                        protocol=aiomqtt.ProtocolVersion.V311,
                        timeout=TIMEOUT_S,
                        max_queued_incoming_messages=MAX_QUEUED,
                        tls_context=self.tls_context,
                    )
                ) as client:
                    if pending is not None:
                        await self._report(client, pending)
                        pending = None
                    for kind in ("config", "cmd"):
                        await client.subscribe(wire.topic(self.gateway_id, kind), qos=1)
                    honour_cancel()
                    self.connected.set()
                    up_since = time.monotonic()
                    pump = None
                    if self.updates is not None:
                        pump = asyncio.create_task(self._pump(client), name="fleet-update-reports")
                    try:
                        async for message in client.messages:
                            await self._handle(client, message)
                            honour_cancel()
                    finally:
                        if pump is not None:
                            pump.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await pump
            except aiomqtt.MqttError as e:
                self.connected.clear()
                task = asyncio.current_task()
                if task is not None and task.cancelling():  # the disconnect of a cancel failed
                    raise asyncio.CancelledError from e
                delay = self._delay(up_since)
                log.warning("fleet link: %s; again in %.1f s", e, delay)
            else:
                delay = self._delay(up_since)
            await asyncio.sleep(delay)

    def _delay(self, up_since: float | None) -> float:
        """The wait before the next connection: the backoff starts again from its minimum
        only after a connection that held (`HELD_S`), not after one that failed or dropped
        at once (a loaded broker: those must spread out, or a fleet never converges)."""
        if up_since is not None and time.monotonic() - up_since >= HELD_S:
            self.backoff.reset()
        return self.backoff.next()

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            return
        topic = str(message.topic)
        outcome: Outcome | None
        if topic == wire.topic(self.gateway_id, "config"):
            outcome = await self.applier.handle_config(bytes(payload))
        elif topic == wire.topic(self.gateway_id, "cmd"):
            if self.updates is not None and self.updates.claims(bytes(payload)):
                await self.updates.handle(bytes(payload), self.applier.state.trusted_keys())
                return
            outcome = await self.applier.handle_command(bytes(payload), self.commands)
        else:
            return
        if outcome is not None:
            try:
                await self._report(client, outcome)
            finally:
                if self.after_report is not None:
                    self.after_report(outcome)

    async def _pump(self, client: aiomqtt.Client) -> None:
        """Publish the update agent's reports while connected (tried again after a failure)."""
        assert self.updates is not None
        topic = wire.topic(self.gateway_id, "report")

        async def publish(data: bytes) -> None:
            await client.publish(topic, data, qos=1, timeout=TIMEOUT_S)

        while True:
            try:
                await self.updates.pump(publish)
            except aiomqtt.MqttError as e:
                log.warning("update reports: %s; again in 1 s", e)
                await asyncio.sleep(1.0)

    async def _report(self, client: aiomqtt.Client, outcome: Outcome) -> None:
        self.outcomes = [*self.outcomes[-31:], outcome]
        await client.publish(
            wire.topic(self.gateway_id, "report"), report_message(outcome), qos=1, timeout=TIMEOUT_S
        )


__all__ = ["FleetAgent", "JobHandler", "no_commands"]
