"""The fleet registry: groups, enrollment tokens, gateways, broker identities, layered desired
configuration, signed documents to publish, reports, and the audit log.

State lives in `<data>/fleet/` beside the hub's database: `fleet.sqlite` (WAL; the hub and
the `estran fleet` commands open it at the same time), `keys/` (signing keys, 0600) and
`secrets/` (the hub's own broker password, 0600). Every change bumps a revision number; the
hub watches it and reacts (broker access reloaded, configurations published) within a second.

One `Fleet` object, one connection, one lock; each area's SQL lives in its own module, each
class built on the one below (what an area needs of another is below it):

    _store       the database, schema, transactions, revision, audit log
    _outbox      messages to publish
    _registry    groups, gateways, broker identities, reports
    _configs     layers, effective documents, signed versions, signing keys
    _enrollment  tokens, challenges, enrollment
    _commands    signed commands
    _releases    release bundles: checked, signed, served
    _inventory   host variables and the Ansible inventory
    _rollouts    rollouts: waves, per-gateway states (the engine: _rollout_run)
    _fleet       Fleet: the above plus people (fleet._accounts)

Secrets are never stored in clear: tokens and the admin credential as SHA-256, broker
passwords in Mosquitto's `$7$` form. A token or a password is shown once, when it is made.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

from fleet._accounts import Accounts
from fleet._configs import Scope
from fleet._enrollment import (
    MAX_TTL_S,
    NONCE_TTL_S,
    TOKEN_PREFIX,
    Enrollment,
    IssuedToken,
    TokenInfo,
    enroll_proof_payload,
    parse_token,
)
from fleet._errors import FleetError
from fleet._outbox import Outbound
from fleet._registry import HUB_USER, BrokerAccount, Gateway, Group, SourceState
from fleet._rollouts import Rollouts
from fleet._store import AuditEntry


class Fleet(Rollouts):
    """The registry in `<data_dir>/fleet/`: every area (fleet._store and the modules above it)
    over one connection. Thread-safe; every method is short and blocking (the hub calls it
    from a worker thread)."""

    def __init__(self, data_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(data_dir, clock=clock)
        self.accounts = Accounts(self)

    def __enter__(self) -> Fleet:
        return self

    # -- admin credential ---------------------------------------------------------------------

    def ensure_admin(self) -> str | None:
        """The first admin: the user `admin` with an API token, made on first start and
        returned that once (None after). The credential of a first-release registry
        (`admin_hash`) becomes a token of that user (fleet._accounts)."""
        with self._lock:
            legacy = self._meta(self._db, "admin_hash")
        return self.accounts.ensure_admin(legacy)

    def check_admin(self, credential: str) -> bool:
        """Whether `credential` is a valid API token of an admin with the write scope."""
        try:
            identity = self.accounts.authenticate_token(credential)
        except FleetError:
            return False
        return identity.user.role == "admin" and "write" in identity.scopes


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


__all__ = [
    "HUB_USER",
    "MAX_TTL_S",
    "NONCE_TTL_S",
    "TOKEN_PREFIX",
    "AuditEntry",
    "BrokerAccount",
    "Enrollment",
    "Fleet",
    "Gateway",
    "Group",
    "IssuedToken",
    "Outbound",
    "Scope",
    "SourceState",
    "TokenInfo",
    "b64",
    "enroll_proof_payload",
    "parse_token",
    "unb64",
]
