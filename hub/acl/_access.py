"""The embedded broker's access policy, backed by the fleet registry.

`FleetAccess.access` holds a snapshot (fleet.BrokerAccess) that the hub swaps whenever the
registry's revision moves. No I/O: every check is a dictionary lookup (and a PBKDF2 on
connect).
"""

from __future__ import annotations

import logging

from fleet import BrokerAccess
from hub.broker import Action, Broker, Identity

log = logging.getLogger("estran.hub.acl")


class FleetAccess:
    """Only registered identities connect (active gateways and the hub, no anonymous); a
    gateway publishes and reads under its own prefix only; the hub reads and writes all;
    client ids naming an identity are reserved to it (`BrokerAccess.may_claim`)."""

    def __init__(self, access: BrokerAccess | None = None) -> None:
        self.access = access if access is not None else BrokerAccess()

    def authenticate(self, username: str | None, password: bytes | None) -> Identity | None:
        try:
            text = None if password is None else password.decode("utf-8")
        except UnicodeDecodeError:
            return None
        access = self.access
        if not access.authenticate(username, text):
            return None
        return Identity(username, privileged=access.role(username) == "hub")

    def may_claim(self, identity: Identity, client_id: str) -> bool:
        return self.access.may_claim(identity.name, client_id)

    def allowed(self, identity: Identity, action: Action, topic: str) -> bool:
        return self.access.allowed(identity.name, action, topic)


async def disconnect_unknown(broker: Broker, access: BrokerAccess) -> list[str]:
    """Close the connections and drop the sessions of identities no longer registered."""
    closed = await broker.disconnect_where(lambda who: who.name not in access.accounts)
    if closed:
        log.info("broker: disconnected %s (access revoked)", ", ".join(closed))
    return closed


__all__ = ["FleetAccess", "disconnect_unknown"]
