"""The fleet registry: groups, enrollment tokens, gateways, broker identities, layered desired
configuration, signed documents to publish, reports, and the audit log.

State lives in `<data>/fleet/` beside the hub's database: `fleet.sqlite` (WAL; the hub and
the `estran fleet` commands open it at the same time), `keys/` (signing keys, 0600) and
`secrets/` (the hub's own broker password, 0600). Every change bumps a revision number; the
hub watches it and reacts (broker access reloaded, configurations published) within a second.

Secrets are never stored in clear: tokens and the admin credential as SHA-256, broker
passwords in Mosquitto's `$7$` form. A token or a password is shown once, when it is made.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fleet import _layers, _schema
from fleet._accounts import Accounts
from fleet._errors import Conflict, FleetError, NotFound, TokenRefused
from fleet._keys import Keyring, verify
from fleet._passwd import hash_password, new_password
from fleet._secrets import private_dir, write_secret
from protocols import signed, wire

HUB_USER = "estran-hub"  # the hub's own broker identity (ingest, publishing)
TOKEN_PREFIX = "et1"
MAX_TTL_S = 30 * 86400
NONCE_TTL_S = 120.0
_GROUP = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")

Scope = Literal["fleet", "group", "gateway"]

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY, description TEXT NOT NULL, created_ms INTEGER NOT NULL,
    next_index INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, hash TEXT NOT NULL, grp TEXT NOT NULL, site TEXT,
    created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, created_by TEXT NOT NULL,
    used_ms INTEGER, gateway TEXT);
CREATE TABLE IF NOT EXISTS nonces (
    nonce TEXT PRIMARY KEY, token TEXT NOT NULL, expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS gateways (
    id TEXT PRIMARY KEY, grp TEXT NOT NULL, site TEXT, public_key BLOB NOT NULL,
    password_hash TEXT NOT NULL, enrolled_ms INTEGER NOT NULL, enrolled_by TEXT NOT NULL,
    state TEXT NOT NULL, revoked_ms INTEGER, software TEXT,
    applied_version INTEGER, outcome TEXT, reason TEXT, reported_ms INTEGER,
    cmd_seq INTEGER NOT NULL DEFAULT 0, sources TEXT, restart_pending TEXT);
CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layers (
    scope TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, updated_ms INTEGER NOT NULL,
    updated_by TEXT NOT NULL, PRIMARY KEY (scope, name));
CREATE TABLE IF NOT EXISTS desired (
    gateway TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL, keys TEXT NOT NULL,
    payload BLOB NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY (gateway, version));
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
    retain INTEGER NOT NULL, created_ms INTEGER NOT NULL, published_ms INTEGER);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL);
"""
# Columns added after the first release (ALTER TABLE when missing).
_ADDED_COLUMNS = (
    ("gateways", "sources", "TEXT"),
    ("gateways", "restart_pending", "TEXT"),
    ("audit", "remote", "TEXT"),
)


def _sources(text: str | None) -> tuple[SourceState, ...] | None:
    if not text:
        return None
    return tuple(
        SourceState(str(d.get("name")), str(d.get("status")), d.get("detail"))
        for d in json.loads(text)
        if isinstance(d, dict)
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    description: str
    created_ms: int
    gateways: int


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    group: str
    site: str | None
    created_ms: int
    expires_ms: int
    created_by: str
    used_ms: int | None
    gateway: str | None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """`token` is shown once: only its hash is kept."""

    token: str
    info: TokenInfo


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
class Enrollment:
    """What a gateway receives: `answer` is the signed enrollment document
    (protocols.signed, context CONTEXT_ENROLLED) and `config` its first configuration (the
    wire message published on its config topic)."""

    gateway_id: str
    answer: bytes
    config: bytes


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    username: str
    password_hash: str  # Mosquitto $7$
    role: Literal["gateway", "hub"]


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message the hub must publish; `mark_published(id)` once the broker has it."""

    id: int
    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True, slots=True)
class AuditEntry:
    ts_ms: int
    actor: str
    action: str
    target: str
    detail: dict[str, object]
    id: int = 0
    remote: str | None = None  # where the actor acted from (None: on the hub's machine)


def parse_token(text: str) -> tuple[str, str, str]:
    """(token id, secret, hub key id) of `et1.<id>.<secret>.<hub key id>`."""
    parts = text.strip().split(".")
    if len(parts) != 4 or parts[0] != TOKEN_PREFIX or not signed.valid_key_id(parts[3]):
        raise TokenRefused("unknown", "not an enrollment token (expected et1.<id>.<secret>.<hub>)")
    return parts[1], parts[2], parts[3]


def enroll_proof_payload(token_id: str, nonce: str, public_key: bytes) -> bytes:
    """The bytes a gateway signs (context CONTEXT_ENROLL) to prove it holds its key."""
    return signed.canonical({"token": token_id, "nonce": nonce, "key": public_key})


class Fleet:
    """The registry in `<data_dir>/fleet/`. Thread-safe; every method is short and blocking
    (the hub calls it from a worker thread)."""

    def __init__(self, data_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.directory = private_dir(Path(data_dir) / "fleet")
        self.keys = Keyring(self.directory / "keys")
        self._clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.directory / "fleet.sqlite",
            timeout=10.0,
            isolation_level=None,
            check_same_thread=False,
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        for stmt in _SCHEMA_SQL.split(";"):
            if stmt.strip():
                self._db.execute(stmt)
        for table, column, kind in _ADDED_COLUMNS:
            names = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in names:
                with contextlib.suppress(sqlite3.OperationalError):  # another process did
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        (self.directory / "fleet.sqlite").chmod(0o600)
        self.keys.ensure()
        self._origin = threading.local()
        self.accounts = Accounts(self)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _meta(self, db: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
        row = db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def _set_meta(self, db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (key, value))

    def _bump(self, db: sqlite3.Connection) -> None:
        self._set_meta(db, "revision", str(int(self._meta(db, "revision", "0") or 0) + 1))

    @contextmanager
    def origin(self, remote: str | None) -> Iterator[None]:
        """Audit entries written by this thread inside the block say they came from
        `remote` (the client address of an HTTP request)."""
        previous = getattr(self._origin, "remote", None)
        self._origin.remote = remote
        try:
            yield
        finally:
            self._origin.remote = previous

    def _audit(
        self, db: sqlite3.Connection, actor: str, action: str, target: str, **detail: object
    ) -> None:
        db.execute(
            "INSERT INTO audit (ts_ms, actor, action, target, detail, remote)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                self._now_ms(),
                actor,
                action,
                target,
                json.dumps(detail, sort_keys=True, default=str),
                getattr(self._origin, "remote", None),
            ),
        )

    def record(self, actor: str, action: str, target: str, **detail: object) -> None:
        """Write one audit entry (for actions done outside the registry: datasets,
        deletions)."""
        with self._tx() as db:
            self._audit(db, actor, action, target, **detail)

    def revision(self) -> int:
        """Grows on every change: the hub reloads what it derived when it moves."""
        with self._lock:
            return int(self._meta(self._db, "revision", "0") or 0)

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

    # -- tokens ------------------------------------------------------------------------------

    def create_token(
        self, group: str, ttl_s: float, actor: str, site: str | None = None
    ) -> IssuedToken:
        """A one-use enrollment token for `group`, valid `ttl_s` seconds."""
        if not 0 < ttl_s <= MAX_TTL_S:
            raise FleetError(f"token lifetime must be 1 s to {MAX_TTL_S // 86400} days")
        self.group(group)
        tid = secrets.token_hex(4)
        secret = secrets.token_urlsafe(24)
        hub = self.keys.ensure()
        now = self._now_ms()
        expires = now + int(ttl_s * 1000)
        with self._tx() as db:
            db.execute(
                "INSERT INTO tokens (id, hash, grp, site, created_ms, expires_ms, created_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (tid, _sha256(secret), group, site, now, expires, actor),
            )
            self._audit(db, actor, "token.create", tid, group=group, expires_ms=expires)
        info = TokenInfo(tid, group, site, now, expires, actor, None, None)
        return IssuedToken(f"{TOKEN_PREFIX}.{tid}.{secret}.{hub}", info)

    def tokens(self) -> list[TokenInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, grp, site, created_ms, expires_ms, created_by, used_ms, gateway"
                " FROM tokens ORDER BY created_ms"
            ).fetchall()
        return [TokenInfo(*r) for r in rows]

    def _check_token(self, db: sqlite3.Connection, tid: str, secret: str | None) -> sqlite3.Row:
        row = db.execute(
            "SELECT id, hash, grp, site, expires_ms, used_ms, created_by FROM tokens WHERE id = ?",
            (tid,),
        ).fetchone()
        if row is None or (secret is not None and not hmac.compare_digest(row[1], _sha256(secret))):
            raise TokenRefused("unknown", "unknown enrollment token")
        if row[5] is not None:
            raise TokenRefused("used", "this enrollment token was used already: ask for a new one")
        if row[4] <= self._now_ms():
            raise TokenRefused("expired", "this enrollment token has expired: ask for a new one")
        return row  # type: ignore[no-any-return]

    def challenge(self, token: str) -> str:
        """A one-use nonce the gateway signs with its new key (valid NONCE_TTL_S)."""
        tid, secret, _ = parse_token(token)
        nonce = secrets.token_urlsafe(24)
        with self._tx() as db:
            self._check_token(db, tid, secret)
            now = self._now_ms()
            db.execute("DELETE FROM nonces WHERE expires_ms <= ?", (now,))
            if db.execute("SELECT COUNT(*) FROM nonces").fetchone()[0] > 10_000:
                raise FleetError("too many enrollments in progress")
            db.execute(
                "INSERT INTO nonces (nonce, token, expires_ms) VALUES (?, ?, ?)",
                (nonce, tid, now + int(NONCE_TTL_S * 1000)),
            )
        return nonce

    def enroll(
        self,
        token: str,
        public_key: bytes,
        nonce: str,
        proof: bytes,
        broker_url: str,
        *,
        site: str | None = None,
        software: str | None = None,
    ) -> Enrollment:
        """Register a gateway that proved it holds `public_key`; the token is used up."""
        tid, secret, _ = parse_token(token)
        if len(public_key) != signed.KEY_BYTES:
            raise TokenRefused("proof", "the gateway key is not a raw Ed25519 public key")
        proof_ok = verify(
            public_key, signed.CONTEXT_ENROLL, enroll_proof_payload(tid, nonce, public_key), proof
        )
        password = new_password()
        with self._tx() as db:
            row = self._check_token(db, tid, secret)
            found = db.execute(
                "SELECT token, expires_ms FROM nonces WHERE nonce = ?", (nonce,)
            ).fetchone()
            db.execute("DELETE FROM nonces WHERE nonce = ?", (nonce,))
            if found is None or found[0] != tid or found[1] <= self._now_ms():
                raise TokenRefused("proof", "unknown or expired challenge: start again")
            if not proof_ok:
                raise TokenRefused("proof", "the proof of possession does not verify")
            if db.execute(
                "SELECT 1 FROM gateways WHERE public_key = ? AND state = 'active'", (public_key,)
            ).fetchone():
                raise Conflict("a gateway with this key is enrolled already")
            group = str(row[2])
            index = db.execute("SELECT next_index FROM groups WHERE name = ?", (group,)).fetchone()
            if index is None:
                raise NotFound(f"group {group!r} was deleted")
            gateway_id = f"{group}-{int(index[0]):03d}"
            while db.execute("SELECT 1 FROM gateways WHERE id = ?", (gateway_id,)).fetchone():
                index = (int(index[0]) + 1,)
                gateway_id = f"{group}-{int(index[0]):03d}"
            db.execute(
                "UPDATE groups SET next_index = ? WHERE name = ?", (int(index[0]) + 1, group)
            )
            now = self._now_ms()
            db.execute(
                "INSERT INTO gateways (id, grp, site, public_key, password_hash, enrolled_ms,"
                " enrolled_by, state, software) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?)",
                (
                    gateway_id,
                    group,
                    site or row[3],
                    public_key,
                    hash_password(password),
                    now,
                    f"token {tid} of {row[6]}",
                    software,
                ),
            )
            db.execute(
                "UPDATE tokens SET used_ms = ?, gateway = ? WHERE id = ?", (now, gateway_id, tid)
            )
            self._audit(
                db,
                f"token {tid}",
                "gateway.enroll",
                gateway_id,
                group=group,
                key=signed.key_id(public_key),
                created_by=row[6],
            )
            config = self._rebuild(db, [gateway_id], force=True)[gateway_id]
            self._bump(db)
        answer = self.keys.sign_document(
            signed.CONTEXT_ENROLLED,
            {
                "gateway": gateway_id,
                "group": group,
                "key": public_key,
                "nonce": nonce,
                "broker": broker_url,
                "username": gateway_id,
                "password": password,
                "keys": dict(self.keys.public_keys()),
            },
        )
        return Enrollment(gateway_id, answer, config)

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

    # -- configuration -----------------------------------------------------------------------

    def _scope_name(self, scope: Scope, name: str | None) -> str:
        if scope == "fleet":
            return ""
        if not name:
            raise FleetError(f"a {scope} layer needs a name")
        if scope == "group":
            self.group(name)
        elif scope == "gateway":
            self.gateway(name)
        else:
            raise FleetError(f"unknown scope {scope!r}")
        return name

    def layer(self, scope: Scope, name: str | None = None) -> _layers.Document:
        key = self._scope_name(scope, name)
        with self._lock:
            row = self._db.execute(
                "SELECT doc FROM layers WHERE scope = ? AND name = ?", (scope, key)
            ).fetchone()
        return {} if row is None else dict(json.loads(row[0]))

    def set_layer(
        self, scope: Scope, name: str | None, document: Mapping[str, object], actor: str
    ) -> list[Gateway]:
        """Replace a layer; every gateway it reaches gets a new signed configuration if its
        effective document changed. The layer and each effective document pass the schema
        first (ConfigRejected names every wrong field): nothing is stored otherwise."""
        key = self._scope_name(scope, name)
        doc = dict(document)
        _schema.validate(doc)
        with self._tx() as db:
            old = db.execute(
                "SELECT doc FROM layers WHERE scope = ? AND name = ?", (scope, key)
            ).fetchone()
            before = {} if old is None else json.loads(old[0])
            db.execute(
                "INSERT OR REPLACE INTO layers (scope, name, doc, updated_ms, updated_by)"
                " VALUES (?, ?, ?, ?, ?)",
                (scope, key, json.dumps(doc, sort_keys=True), self._now_ms(), actor),
            )
            targets = self._reached(db, scope, key)
            for gw in targets:  # refuse before anything is signed
                _schema.validate(self._effective(db, gw))
            changes = _layers.diff(before, doc)
            self._audit(
                db,
                actor,
                "config.set",
                f"{scope}:{key}" if key else scope,
                changes=[[op, path, old_v, new_v] for op, path, old_v, new_v in changes],
            )
            built = self._rebuild(db, targets)
            self._bump(db)
        by_id = {g.id: g for g in self.gateways()}
        return [by_id[g] for g in built]

    def _reached(self, db: sqlite3.Connection, scope: str, key: str) -> list[str]:
        sql = "SELECT id FROM gateways WHERE state = 'active'"
        args: tuple[str, ...] = ()
        if scope == "group":
            sql += " AND grp = ?"
            args = (key,)
        elif scope == "gateway":
            sql += " AND id = ?"
            args = (key,)
        return [r[0] for r in db.execute(sql + " ORDER BY id", args)]

    def _effective(self, db: sqlite3.Connection, gateway_id: str) -> _layers.Document:
        row = db.execute("SELECT grp FROM gateways WHERE id = ?", (gateway_id,)).fetchone()
        layers = []
        for scope, key in (("fleet", ""), ("group", row[0]), ("gateway", gateway_id)):
            found = db.execute(
                "SELECT doc FROM layers WHERE scope = ? AND name = ?", (scope, key)
            ).fetchone()
            if found is not None:
                layers.append(json.loads(found[0]))
        return _layers.effective(layers)

    def effective(
        self, *, group: str | None = None, gateway: str | None = None
    ) -> _layers.Document:
        """The merged document of a gateway, or of a group (fleet + group), or the fleet's."""
        with self._lock:
            if gateway is not None:
                self.gateway(gateway)
                return self._effective(self._db, gateway)
            layers = [self.layer("fleet")]
            if group is not None:
                layers.append(self.layer("group", group))
            return _layers.effective(layers)

    def desired(self, gateway_id: str, version: int | None = None) -> tuple[int, _layers.Document]:
        """(version, document) the hub wants `gateway_id` to run (or of an older version)."""
        with self._lock:
            row = self._db.execute(
                "SELECT version, doc FROM desired WHERE gateway = ? AND (? IS NULL OR version = ?)"
                " ORDER BY version DESC LIMIT 1",
                (gateway_id, version, version),
            ).fetchone()
        if row is None:
            raise NotFound(f"no configuration version {version} for {gateway_id}")
        return int(row[0]), dict(json.loads(row[1]))

    def desired_message(self, gateway_id: str) -> bytes:
        """The wire message (signed) of the latest desired configuration."""
        with self._lock:
            row = self._db.execute(
                "SELECT payload FROM desired WHERE gateway = ? ORDER BY version DESC LIMIT 1",
                (gateway_id,),
            ).fetchone()
        if row is None:
            raise NotFound(f"no configuration for {gateway_id}")
        return bytes(row[0])

    def _rebuild(
        self, db: sqlite3.Connection, gateway_ids: list[str], *, force: bool = False
    ) -> dict[str, bytes]:
        """Sign a new version for each gateway whose document or trusted keys changed."""
        keys = self.keys.public_keys()
        keys_json = json.dumps(sorted(keys))
        out: dict[str, bytes] = {}
        for gw in gateway_ids:
            doc = self._effective(db, gw)
            doc_json = json.dumps(doc, sort_keys=True)
            last = db.execute(
                "SELECT doc, keys, payload FROM desired WHERE gateway = ?"
                " ORDER BY version DESC LIMIT 1",
                (gw,),
            ).fetchone()
            if last is not None and last[0] == doc_json and last[1] == keys_json and not force:
                continue
            version = int(self._meta(db, "config_version", "0") or 0) + 1
            self._set_meta(db, "config_version", str(version))
            now = self._now_ms()
            body = self.keys.sign_document(
                signed.CONTEXT_CONFIG,
                {
                    "kind": "config",
                    "gateway": gw,
                    "version": version,
                    "issued_ms": now,
                    "config": doc,
                    "keys": dict(keys),
                },
            )
            message = wire.encode_envelope(wire.Envelope(wire.CONFIG, body))
            db.execute(
                "INSERT INTO desired (gateway, version, doc, keys, payload, created_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (gw, version, doc_json, keys_json, message, now),
            )
            self._queue(db, wire.topic(gw, "config"), message, retain=True)
            out[gw] = message
        return out

    # -- keys ----------------------------------------------------------------------------------

    def add_key(self, actor: str) -> str:
        """A new signing key; every gateway gets a configuration that trusts it (signed by the
        current keys as well, so gateways accept it)."""
        kid = self.keys.add()
        with self._tx() as db:
            self._audit(db, actor, "key.add", kid)
            self._rebuild(db, self._reached(db, "fleet", ""))
            self._bump(db)
        return kid

    def retire_key(self, kid: str, actor: str) -> None:
        """Stop trusting `kid`; gateways get configurations signed without it."""
        self.keys.retire(kid)
        with self._tx() as db:
            self._audit(db, actor, "key.retire", kid)
            self._rebuild(db, self._reached(db, "fleet", ""))
            self._bump(db)

    # -- commands ------------------------------------------------------------------------------

    def command(
        self,
        gateway_id: str,
        name: str,
        actor: str,
        args: Mapping[str, object] | None = None,
        ttl_s: float = 3600.0,
    ) -> int:
        """A signed command for one gateway, published on its cmd topic; returns its seq.
        `name` is one of `protocols.signed.COMMANDS` (what a gateway runs)."""
        if name not in signed.COMMANDS:
            raise FleetError(f"unknown command {name!r}: one of {', '.join(signed.COMMANDS)}")
        with self._tx() as db:
            row = db.execute(
                "SELECT cmd_seq, state FROM gateways WHERE id = ?", (gateway_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no gateway {gateway_id!r}")
            if row[1] != "active":
                raise Conflict(f"{gateway_id} is revoked")
            seq = int(row[0]) + 1
            db.execute("UPDATE gateways SET cmd_seq = ? WHERE id = ?", (seq, gateway_id))
            now = self._now_ms()
            body = self.keys.sign_document(
                signed.CONTEXT_CMD,
                {
                    "kind": "cmd",
                    "gateway": gateway_id,
                    "seq": seq,
                    "issued_ms": now,
                    "expires_ms": now + int(ttl_s * 1000),
                    "name": name,
                    "args": dict(args or {}),
                },
            )
            message = wire.encode_envelope(wire.Envelope(wire.CMD, body))
            self._queue(db, wire.topic(gateway_id, "cmd"), message, retain=False)
            self._audit(db, actor, "cmd." + name, gateway_id, seq=seq, args=dict(args or {}))
            self._bump(db)
        return seq

    # -- outbox ------------------------------------------------------------------------------

    def _queue(self, db: sqlite3.Connection, topic: str, payload: bytes, *, retain: bool) -> None:
        if retain:  # a newer retained message makes the older one moot
            db.execute("DELETE FROM outbox WHERE topic = ? AND published_ms IS NULL", (topic,))
        db.execute(
            "INSERT INTO outbox (topic, payload, retain, created_ms) VALUES (?, ?, ?, ?)",
            (topic, payload, int(retain), self._now_ms()),
        )

    def pending(self, limit: int = 256) -> list[Outbound]:
        """Messages to publish, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, retain FROM outbox WHERE published_ms IS NULL"
                " ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [Outbound(r[0], r[1], bytes(r[2]), bool(r[3])) for r in rows]

    def mark_published(self, message_id: int) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET published_ms = ? WHERE id = ?", (self._now_ms(), message_id)
            )
            db.execute(  # keep a day of history
                "DELETE FROM outbox WHERE published_ms < ?", (self._now_ms() - 86_400_000,)
            )

    def republish_all(self) -> None:
        """Queue the retained configuration of every active gateway again (a broker without
        persistence, such as the embedded one, forgets retained messages on restart)."""
        with self._tx() as db:
            for gw in self._reached(db, "fleet", ""):
                row = db.execute(
                    "SELECT payload FROM desired WHERE gateway = ? ORDER BY version DESC LIMIT 1",
                    (gw,),
                ).fetchone()
                if row is not None:
                    self._queue(db, wire.topic(gw, "config"), bytes(row[0]), retain=True)

    # -- reports ----------------------------------------------------------------------------

    def record_report(self, gateway_id: str, document: object) -> None:
        """What a gateway answered (a report body, shape checked by protocols.signed)."""
        doc = signed.check_report(document)
        with self._tx() as db:
            row = db.execute("SELECT state FROM gateways WHERE id = ?", (gateway_id,)).fetchone()
            if row is None or row[0] != "active":
                raise NotFound(f"no active gateway {gateway_id!r}")
            if doc["kind"] == "config":
                db.execute(
                    "UPDATE gateways SET applied_version = ?, outcome = ?, reason = ?,"
                    " reported_ms = ? WHERE id = ?",
                    (doc.get("applied"), doc["outcome"], doc["reason"], self._now_ms(), gateway_id),
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

    # -- audit ----------------------------------------------------------------------------------

    def audit(
        self,
        limit: int = 100,
        target: str | None = None,
        *,
        actor: str | None = None,
        action: str | None = None,
        before: int | None = None,
    ) -> list[AuditEntry]:
        """The latest `limit` entries (oldest first), optionally of one target, actor or
        action (a prefix such as `user.`), and with an id below `before` (paging back)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT ts_ms, actor, action, target, detail, id, remote FROM audit"
                " WHERE (? IS NULL OR target = ?) AND (? IS NULL OR actor = ?)"
                " AND (? IS NULL OR action = ? OR substr(action, 1, length(?)) = ?)"
                " AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
                (
                    target,
                    target,
                    actor,
                    actor,
                    action,
                    action,
                    action,
                    action,
                    before,
                    before,
                    limit,
                ),
            ).fetchall()
        return [
            AuditEntry(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in reversed(rows)
        ]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


__all__ = [
    "HUB_USER",
    "AuditEntry",
    "BrokerAccount",
    "Enrollment",
    "Fleet",
    "Gateway",
    "Group",
    "IssuedToken",
    "Outbound",
    "SourceState",
    "TokenInfo",
    "b64",
    "enroll_proof_payload",
    "parse_token",
    "unb64",
]
