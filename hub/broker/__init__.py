"""The hub's embedded MQTT 3.1.1 broker: a sans-IO packet codec (`_codec`), topic rules
(`_topics`) and an asyncio server (`_server`) with sessions, retained messages, Wills,
keepalive, shared subscriptions, an access check on every delivery path and per-identity
limits. docs/hub.md says why the hub has its own."""

from hub.broker._codec import MalformedPacket
from hub.broker._server import (
    Access,
    Action,
    Broker,
    BrokerLimits,
    BrokerStats,
    Identity,
    OpenAccess,
)

__all__ = [
    "Access",
    "Action",
    "Broker",
    "BrokerLimits",
    "BrokerStats",
    "Identity",
    "MalformedPacket",
    "OpenAccess",
]
