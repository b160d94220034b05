"""The gateway state (DESIGN.md): identity, pinned hub keys, current and last good desired
configuration, applied versions. Small, in TinyDB, written atomically (`state.json`, 0600),
readable by a technician.

Layout of `<data>/`:

    state.json        this state
    identity/gateway.key   the gateway's private key (0600, directory 0700)
    credentials       "username:password" for the broker (0600), the daemon's
                      `uplink.credentials_file`
"""

from __future__ import annotations

import base64
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.table import Document

from edge.identity._errors import IdentityError
from edge.identity._storage import AtomicJSONStorage, atomic_write
from protocols import signed

STATE_FILE = "state.json"
KEY_FILE = "identity/gateway.key"
CREDENTIALS_FILE = "credentials"


@dataclass(frozen=True, slots=True)
class Identity:
    gateway_id: str
    group: str
    hub: str  # the hub's HTTP address used to enroll
    broker: str  # mqtt://host:port
    username: str
    key_id: str
    enrolled_ms: int


@dataclass(slots=True)
class ConfigState:
    """What the config transaction keeps between runs."""

    current: dict[str, object] = field(default_factory=dict)  # running now
    current_version: int = 0
    last_good: dict[str, object] = field(default_factory=dict)  # passed its health gate
    last_good_version: int = 0
    seen_version: int = 0  # highest verified version (older ones are replays)
    applying: int | None = None  # set while a transaction runs: a crash leaves it
    pending: str | None = None  # a verified config message not applied yet (base64)
    cmd_seq: int = 0  # highest command sequence run


class GatewayState:
    """`with GatewayState(data_dir) as state:`; every setter writes the file atomically."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._db = TinyDB(self.data_dir / STATE_FILE, storage=AtomicJSONStorage)
        except ValueError as e:
            raise IdentityError(f"{self.data_dir / STATE_FILE}: {e}") from e

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> GatewayState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def key_path(self) -> Path:
        return self.data_dir / KEY_FILE

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / CREDENTIALS_FILE

    def _get(self, table: str) -> dict[str, Any]:
        docs = self._db.table(table).all()
        return dict(docs[0]) if docs else {}

    def _put(self, table: str, doc: dict[str, Any]) -> None:
        """Replace the table's one document in one atomic write: a truncate then an insert
        are two, and a power cut between them left the table empty on disk."""

        def replace(current: MutableMapping[str, Any]) -> None:
            current.clear()
            current.update(doc)

        t = self._db.table(table)
        if not t.update(replace, doc_ids=[1]):  # the table's first document
            t.truncate()
            t.insert(Document(doc, doc_id=1))

    # -- identity ------------------------------------------------------------------------------

    def identity(self) -> Identity | None:
        doc = self._get("identity")
        return Identity(**doc) if doc else None

    def set_identity(self, identity: Identity, password: str) -> None:
        atomic_write(self.credentials_path, f"{identity.username}:{password}\n".encode(), 0o600)
        self._put(
            "identity",
            {
                "gateway_id": identity.gateway_id,
                "group": identity.group,
                "hub": identity.hub,
                "broker": identity.broker,
                "username": identity.username,
                "key_id": identity.key_id,
                "enrolled_ms": identity.enrolled_ms,
            },
        )

    # -- pinned hub keys -------------------------------------------------------------------------

    def trusted_keys(self) -> dict[str, bytes]:
        doc = self._get("trust")
        return {k: base64.b64decode(v) for k, v in doc.get("keys", {}).items()}

    def set_trusted_keys(self, keys: dict[str, bytes]) -> None:
        if not keys:
            raise IdentityError("refusing to trust no hub key at all")
        for kid, pub in keys.items():
            if signed.key_id(pub) != kid:
                raise IdentityError(f"hub key {kid} does not match its id")
        self._put("trust", {"keys": {k: base64.b64encode(v).decode() for k, v in keys.items()}})

    # -- configuration -----------------------------------------------------------------------------

    def config(self) -> ConfigState:
        doc = self._get("config")
        return ConfigState(**doc) if doc else ConfigState()

    def set_config(self, state: ConfigState) -> None:
        self._put(
            "config",
            {
                "current": state.current,
                "current_version": state.current_version,
                "last_good": state.last_good,
                "last_good_version": state.last_good_version,
                "seen_version": state.seen_version,
                "applying": state.applying,
                "pending": state.pending,
                "cmd_seq": state.cmd_seq,
            },
        )


__all__ = ["CREDENTIALS_FILE", "KEY_FILE", "STATE_FILE", "ConfigState", "GatewayState", "Identity"]
