"""Groups and gateways: the registry proper, broker identities, and what gateways report."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fleet._errors import Conflict, FleetError, NotFound
from fleet._outbox import Outbox
from fleet._passwd import hash_password, new_password
from fleet._secrets import private_dir, write_secret
from protocols import signed, wire
from protocols.errors import ProtocolError

HUB_USER = "estran-hub"  # the hub's own broker identity (ingest, publishing)
_GROUP = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def _sources(text: str | None) -> tuple[SourceState, ...] | None:
    if not text:
        return None
    return tuple(
        SourceState(str(d.get("name")), str(d.get("status")), d.get("detail"))
        for d in json.loads(text)
        if isinstance(d, dict)
    )


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    description: str
    created_ms: int
    gateways: int


@dataclass(frozen=True, slots=True)
class SourceState:
    """One source of a gateway as its latest state message reported it."""

    name: str
    status: str  # "ok", "degraded" or "down" (protocols.wire SOURCE_*)
    detail: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Gateway:
    id: str
    group: str
    site: str | None
    key_id: str
    enrolled_ms: int
    enrolled_by: str
    state: str  # "active" or "revoked"
    revoked_ms: int | None
    software: str | None
    desired_version: int | None
    applied_version: int | None
    outcome: str | None  # of the last report: applied, rolled_back, refused, failed
    reason: str | None
    reported_ms: int | None
    # from the gateway's latest state message: each source's name, status (ok, degraded,
    # down) and detail; the settings it applied that wait for a restart of its daemon
    sources: tuple[SourceState, ...] | None = None
    restart_pending: tuple[str, ...] = ()

    @property
    def drift(self) -> bool:
        """Active, and not running what the hub wants it to run."""
        return self.state == "active" and self.desired_version != self.applied_version

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "group": self.group,
            "site": self.site,
            "key_id": self.key_id,
            "enrolled_ms": self.enrolled_ms,
            "enrolled_by": self.enrolled_by,
            "state": self.state,
            "revoked_ms": self.revoked_ms,
            "software": self.software,
            "desired_version": self.desired_version,
            "applied_version": self.applied_version,
            "outcome": self.outcome,
            "reason": self.reason,
            "reported_ms": self.reported_ms,
            "drift": self.drift,
            "sources": None if self.sources is None else [s.as_dict() for s in self.sources],
            "restart_pending": list(self.restart_pending),
        }


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    username: str
    password_hash: str  # Mosquitto $7$
    role: Literal["gateway", "hub"]


class Registry(Outbox):
    # -- groups ------------------------------------------------------------------------------

    def create_group(self, name: str, actor: str, description: str = "") -> Group:
        if not _GROUP.match(name):
            raise FleetError(
                f"group name {name!r}: 1 to 32 of a-z, 0-9, '-', '_', starting with a letter or digit"
            )
        with self._tx() as db:
            try:
                db.execute(
                    "INSERT INTO groups (name, description, created_ms) VALUES (?, ?, ?)",
                    (name, description, self._now_ms()),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"group {name!r} exists") from None
            self._audit(db, actor, "group.create", name, description=description)
            self._bump(db)
        return self.group(name)

    def group(self, name: str) -> Group:
        for g in self.groups():
            if g.name == name:
                return g
        raise NotFound(f"no group {name!r} (estran fleet group create {name})")

    def groups(self) -> list[Group]:
        with self._lock:
            rows = self._db.execute(
                "SELECT g.name, g.description, g.created_ms,"
                " (SELECT COUNT(*) FROM gateways w WHERE w.grp = g.name AND w.state = 'active')"
                " FROM groups g ORDER BY g.name"
            ).fetchall()
        return [Group(*r) for r in rows]

    # -- the registry ------------------------------------------------------------------------

    def gateways(self, group: str | None = None) -> list[Gateway]:
        return self._select_gateways("? IS NULL OR g.grp = ?", (group, group))

    def _select_gateways(self, where: str, args: tuple[str | None, ...]) -> list[Gateway]:
        with self._lock:
            rows = self._db.execute(
                "SELECT g.id, g.grp, g.site, g.public_key, g.enrolled_ms, g.enrolled_by, g.state,"
                " g.revoked_ms, g.software, (SELECT MAX(version) FROM desired d"
                " WHERE d.gateway = g.id), g.applied_version, g.outcome, g.reason, g.reported_ms,"
                " g.sources, g.restart_pending"
                f" FROM gateways g WHERE {where} ORDER BY g.id",
                args,
            ).fetchall()
        return [
            Gateway(
                id=r[0],
                group=r[1],
                site=r[2],
                key_id=signed.key_id(r[3]),
                enrolled_ms=r[4],
                enrolled_by=r[5],
                state=r[6],
                revoked_ms=r[7],
                software=r[8],
                desired_version=r[9] if r[6] == "active" else None,
                applied_version=r[10],
                outcome=r[11],
                reason=r[12],
                reported_ms=r[13],
                sources=_sources(r[14]),
                restart_pending=tuple(json.loads(r[15])) if r[15] else (),
            )
            for r in rows
        ]

    def gateway(self, gateway_id: str) -> Gateway:
        for g in self._select_gateways("g.id = ?", (gateway_id,)):
            return g
        raise NotFound(f"no gateway {gateway_id!r}")

    def gateway_key(self, gateway_id: str) -> bytes:
        with self._lock:
            row = self._db.execute(
                "SELECT public_key FROM gateways WHERE id = ?", (gateway_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no gateway {gateway_id!r}")
        return bytes(row[0])

    def revoke(self, gateway_id: str, actor: str) -> None:
        """The gateway loses its broker access (the hub applies it within a second) and its
        retained configuration is cleared."""
        with self._tx() as db:
            row = db.execute("SELECT state FROM gateways WHERE id = ?", (gateway_id,)).fetchone()
            if row is None:
                raise NotFound(f"no gateway {gateway_id!r}")
            if row[0] == "revoked":
                raise Conflict(f"{gateway_id} is revoked already")
            db.execute(
                "UPDATE gateways SET state = 'revoked', revoked_ms = ? WHERE id = ?",
                (self._now_ms(), gateway_id),
            )
            self._queue(db, wire.topic(gateway_id, "config"), b"", retain=True)
            self._audit(db, actor, "gateway.revoke", gateway_id)
            self._bump(db)

    # -- broker identities ----------------------------------------------------------------------

    def hub_credentials(self) -> tuple[str, str]:
        """The hub's own broker username and password (made on first use, kept 0600)."""
        path = private_dir(self.directory / "secrets") / "hub-mqtt"
        with self._lock:
            if path.exists():
                return HUB_USER, path.read_text().strip()
            password = new_password()
            write_secret(path, password.encode() + b"\n")
            with self._tx() as db:
                db.execute(
                    "INSERT OR REPLACE INTO services (name, password_hash, role) VALUES (?, ?, 'hub')",
                    (HUB_USER, hash_password(password)),
                )
                self._bump(db)
            return HUB_USER, password

    def broker_accounts(self) -> list[BrokerAccount]:
        """Who may connect to the broker: active gateways and the hub."""
        with self._lock:
            gws = self._db.execute(
                "SELECT id, password_hash FROM gateways WHERE state = 'active' ORDER BY id"
            ).fetchall()
            svc = self._db.execute(
                "SELECT name, password_hash FROM services ORDER BY name"
            ).fetchall()
        return [BrokerAccount(n, h, "hub") for n, h in svc] + [
            BrokerAccount(n, h, "gateway") for n, h in gws
        ]

    def broker_account(self, gateway_id: str) -> BrokerAccount | None:
        """The broker account of one active gateway (None: no such gateway): what an
        enrollment adds to the broker's accounts, without reading all of them again."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, password_hash FROM gateways WHERE id = ? AND state = 'active'",
                (gateway_id,),
            ).fetchone()
        return None if row is None else BrokerAccount(row[0], row[1], "gateway")

    # -- reports ----------------------------------------------------------------------------

    def record_report(self, gateway_id: str, document: object) -> None:
        """What a gateway answered (a report body, shape checked by protocols.signed)."""
        for _, error in self.record_reports([(gateway_id, document)]):
            raise error

    def record_reports(
        self, reports: Sequence[tuple[str, object]]
    ) -> list[tuple[str, FleetError | ProtocolError]]:
        """`record_report` of each (gateway, document), in one transaction (a push to a
        thousand gateways brings a thousand reports within seconds: one commit each, with
        its fsync, made them queue up). A report that is malformed or from no active
        gateway is left out and returned with its error; the others are recorded."""
        refused: list[tuple[str, FleetError | ProtocolError]] = []
        checked: list[tuple[str, dict[str, object]]] = []
        for gateway_id, document in reports:
            try:
                checked.append((gateway_id, signed.check_report(document)))
            except ProtocolError as e:
                refused.append((gateway_id, e))
        if not checked:
            return refused
        with self._tx() as db:
            for gateway_id, doc in checked:
                row = db.execute(
                    "SELECT state FROM gateways WHERE id = ?", (gateway_id,)
                ).fetchone()
                if row is None or row[0] != "active":
                    refused.append((gateway_id, NotFound(f"no active gateway {gateway_id!r}")))
                    continue
                if doc["kind"] == "config":
                    db.execute(
                        "UPDATE gateways SET applied_version = ?, outcome = ?, reason = ?,"
                        " reported_ms = ? WHERE id = ?",
                        (
                            doc.get("applied"),
                            doc["outcome"],
                            doc["reason"],
                            self._now_ms(),
                            gateway_id,
                        ),
                    )
                self._audit(
                    db,
                    gateway_id,
                    f"report.{doc['kind']}",
                    gateway_id,
                    outcome=doc["outcome"],
                    reason=doc["reason"],
                    version=doc.get("version"),
                    applied=doc.get("applied"),
                )
            self._bump(db)
        return refused

    def set_health(
        self,
        gateway_id: str,
        sources: Sequence[SourceState] | None,
        restart_pending: Sequence[str] | None,
    ) -> None:
        """What the gateway's latest state message said of its sources and of the settings
        waiting for a restart (None: the message did not say; the last ones stay)."""
        with self._tx() as db:
            db.execute(
                "UPDATE gateways SET sources = COALESCE(?, sources),"
                " restart_pending = COALESCE(?, restart_pending) WHERE id = ?",
                (
                    None if sources is None else json.dumps([s.as_dict() for s in sources]),
                    None if restart_pending is None else json.dumps(list(restart_pending)),
                    gateway_id,
                ),
            )

    def set_software(self, gateway_id: str, software: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE gateways SET software = ? WHERE id = ?", (software, gateway_id))
