"""Authentication and topic ACL for the embedded amqtt broker, backed by the fleet registry.

amqtt loads plugins by dotted path and hands each one its `Config` dataclass; ours carries a
`BrokerAccessHolder`, whose `access` snapshot (fleet.BrokerAccess) the hub swaps whenever the
registry's revision moves. The plugins do no I/O: every check is a dictionary lookup (and a
PBKDF2 on connect).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from fleet import BrokerAccess

log = logging.getLogger("estran.hub.acl")

_ACTIONS = {Action.PUBLISH: "publish", Action.SUBSCRIBE: "subscribe", Action.RECEIVE: "receive"}


class BrokerAccessHolder:
    """The current access snapshot; `access = BrokerAccess(...)` swaps it atomically."""

    def __init__(self, access: BrokerAccess | None = None) -> None:
        self.access = access if access is not None else BrokerAccess()
        self.refused_connects = 0
        self.refused_topics = 0


class FleetAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Only registered identities connect: active gateways and the hub. No anonymous."""

    @dataclass
    class Config:
        holder: Any = None

    async def authenticate(self, *, session: Session) -> bool | None:
        holder: BrokerAccessHolder = self.context.config.holder
        ok = holder.access.authenticate(session.username, session.password)
        if not ok:
            holder.refused_connects += 1
            log.warning("broker: connection refused for %r", session.username)
        return bool(ok)


class FleetTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """A gateway publishes and reads under its own prefix only; the hub reads all."""

    @dataclass
    class Config:
        holder: Any = None

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool | None:
        holder: BrokerAccessHolder = self.context.config.holder
        if session is None or topic is None or action not in _ACTIONS:
            return False
        ok = holder.access.allowed(session.username, _ACTIONS[action], topic)  # type: ignore[arg-type]
        if not ok:
            holder.refused_topics += 1
            if action != Action.RECEIVE:
                log.warning(
                    "broker: %s %s refused for %r", _ACTIONS[action], topic, session.username
                )
        return ok


def plugins(holder: BrokerAccessHolder) -> dict[str, dict[str, Any]]:
    """The `plugins` section of an amqtt broker configuration."""
    return {
        f"{__name__}.FleetAuthPlugin": {"holder": holder},
        f"{__name__}.FleetTopicPlugin": {"holder": holder},
    }


async def disconnect_unknown(broker: Any, access: BrokerAccess) -> list[str]:
    """Close the connections of clients whose identity is no longer registered (revoked)."""
    closed = []
    for client_id, (session, handler) in list(broker.sessions.items()):
        if session.username not in access.accounts and session.transitions.state == "connected":
            await handler.handle_connection_closed()
            closed.append(client_id)
    if closed:
        log.info("broker: disconnected %s (access revoked)", ", ".join(closed))
    return closed


__all__ = [
    "BrokerAccessHolder",
    "FleetAuthPlugin",
    "FleetTopicPlugin",
    "disconnect_unknown",
    "plugins",
]
