"""The embedded MQTT broker (amqtt): zero setup for a demo or a small territory.

amqtt 0.12 speaks MQTT 3.1.1 only and does not deliver `$share/...` subscriptions, so the
hub runs a single ingest worker on a plain subscription in front of it. Production uses an
external broker (`--broker mqtt://host:port`, Mosquitto), which has both.
"""

from __future__ import annotations

import errno
import logging
from types import TracebackType
from typing import Any

from amqtt.broker import Broker

from hub._mqtt import BrokerAddress

log = logging.getLogger("estran.hub.broker")


class _RefusedClientNoise(logging.Filter):
    """amqtt 0.12 answers a refused CONNECT (an MQTT 5 probe, a bad password) and then
    shuts down a socket the client has already closed: asyncio logs that ENOTCONN as an
    unhandled error with a traceback. It is not one; drop exactly that record."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(exc, OSError)
            and exc.errno == errno.ENOTCONN
            and str(record.msg).startswith("Unhandled exception in client_connected_cb")
        )


class EmbeddedBroker:
    """`async with EmbeddedBroker("127.0.0.1", 1883) as address:` serves MQTT 3.1.1."""

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 1883,
        plugins: dict[str, Any] | None = None,
        tls: dict[str, Any] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.plugins = plugins  # None: anonymous access (hub.acl.plugins: the fleet's ACL)
        self.tls = tls  # a second listener: {"bind": "host:port", "certfile", "keyfile"}
        self._broker: Any = None
        self._noise = _RefusedClientNoise()

    @property
    def broker(self) -> Any:
        """The running amqtt broker (None when stopped)."""
        return self._broker

    @property
    def address(self) -> BrokerAddress:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return BrokerAddress(host, self.port)

    async def __aenter__(self) -> BrokerAddress:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger("asyncio").addFilter(self._noise)
        listeners: dict[str, Any] = {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}}
        if self.tls is not None:
            listeners["tls"] = {"type": "tcp", "ssl": True, **self.tls}
        config = {
            "listeners": listeners,
            # No $SYS publisher, no packet logger: they cost CPU on every message.
            "plugins": self.plugins
            or {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._broker = Broker(config)
        await self._broker.start()
        log.info("embedded MQTT 3.1.1 broker on %s:%d", self.host, self.port)
        return self.address

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
        logging.getLogger("asyncio").removeFilter(self._noise)


__all__ = ["EmbeddedBroker"]
