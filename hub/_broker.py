"""The embedded MQTT broker (hub.broker): zero setup for a demo or a small territory.

It speaks MQTT 3.1.1 (an MQTT 5 CONNECT is answered "unacceptable protocol version", and
clients fall back), delivers `$share/...` subscriptions, and puts the fleet's access policy
on every delivery path (docs/security.md). It listens on loopback unless told otherwise.
Production may use an external broker instead (`--broker mqtt://host:port`, Mosquitto).
"""

from __future__ import annotations

import logging
import ssl
from types import TracebackType
from typing import Any

from hub._errors import ConfigError
from hub._mqtt import BrokerAddress
from hub.broker import Access, Broker, BrokerLimits

log = logging.getLogger("estran.hub.broker")


def _listen(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"broker listener {bind!r}: expected HOST:PORT")
    return host or "127.0.0.1", int(port)


class EmbeddedBroker:
    """`async with EmbeddedBroker("127.0.0.1", 1883) as address:` serves MQTT 3.1.1.

    `access`: the policy (hub.acl.FleetAccess: the fleet's accounts and topic ACL); None lets
    anyone connect and do anything. `tls`: a second listener, {"bind": "host:port",
    "certfile", "keyfile"}."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        access: Access | None = None,
        tls: dict[str, Any] | None = None,
        limits: BrokerLimits | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.access = access
        self.tls = tls
        self.limits = limits or BrokerLimits()
        self._broker: Broker | None = None

    @property
    def broker(self) -> Broker | None:
        """The running broker (None when stopped)."""
        return self._broker

    @property
    def address(self) -> BrokerAddress:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return BrokerAddress(host, self.port)

    async def __aenter__(self) -> BrokerAddress:
        listeners: list[tuple[str, int, ssl.SSLContext | None]] = [(self.host, self.port, None)]
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.tls["certfile"], self.tls["keyfile"])
            listeners.append((*_listen(self.tls["bind"]), context))
        broker = Broker(listeners, self.access, self.limits)
        await broker.__aenter__()
        self._broker = broker
        log.info(
            "embedded MQTT 3.1.1 broker on %s:%d%s (packets up to %d bytes)",
            self.host,
            self.port,
            f", TLS on {self.tls['bind']}" if self.tls else "",
            self.limits.max_packet_size,
        )
        return self.address

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._broker is not None:
            await self._broker.close()
            self._broker = None


__all__ = ["EmbeddedBroker"]
