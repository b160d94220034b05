"""The hub's people: users with a role, their API tokens and their browser sessions.

They live in the registry (`<data>/fleet/fleet.sqlite`) beside the gateways, so the
`estran hub user|token` commands work on the hub's machine with no credential (the data
directory is the root of trust), and every change lands in the one audit log.

Secrets are never stored in clear:
- passwords (chosen by people, guessable) as argon2id (pwdlib);
- API tokens and session ids (256 random bits) as HMAC-SHA256 under a key of this
  installation (`secrets/access-key`, 0600). A slow hash would add nothing against guessing a
  256-bit secret and would cost tens of milliseconds of CPU and memory on every request (a
  denial-of-service lever); the key means a copy of the database alone does not even let one
  check whether a token seen elsewhere is valid.

Roles: `admin` (everything), `technician` (fleet read, commands on their groups), `reader`
(the closed datasets granted to them). A token carries scopes (`read`: safe methods,
`write`: the others) and may narrow the datasets of its user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleet._errors import Conflict, FleetError, NotFound
from fleet._secrets import write_secret

if TYPE_CHECKING:
    from fleet._fleet import Fleet

ROLES = ("admin", "technician", "reader")
SCOPES = ("read", "write")
TOKEN_PREFIX = "eat1"  # eat1.<id>.<secret>
LEGACY_PREFIX = "ea1."  # the fleet admin credential of the first release
LEGACY_ID = "legacy-admin"
DEFAULT_TOKEN_TTL_S = 90 * 86400
MAX_TOKEN_TTL_S = 366 * 86400
SESSION_TTL_S = 12 * 3600  # absolute lifetime of a browser session
SESSION_IDLE_S = 2 * 3600  # and without a request
USED_RESOLUTION_MS = 60_000  # last use written at most once a minute per token (flash, locks)
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_TOKEN_ID = re.compile(r"^[0-9a-f]{12}$")

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT,
    datasets TEXT NOT NULL DEFAULT '[]', groups TEXT NOT NULL DEFAULT '[]',
    created_ms INTEGER NOT NULL, created_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT PRIMARY KEY, user TEXT NOT NULL, hash TEXT NOT NULL, scheme TEXT NOT NULL,
    name TEXT NOT NULL, scopes TEXT NOT NULL, datasets TEXT,
    created_ms INTEGER NOT NULL, created_by TEXT NOT NULL, expires_ms INTEGER,
    revoked_ms INTEGER, used_ms INTEGER, used_from TEXT);
CREATE INDEX IF NOT EXISTS api_tokens_hash ON api_tokens (hash);
CREATE TABLE IF NOT EXISTS sessions (
    hash TEXT PRIMARY KEY, user TEXT NOT NULL, created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL, seen_ms INTEGER NOT NULL, remote TEXT);
"""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    datasets: tuple[str, ...]  # closed datasets granted (reader, technician)
    groups: tuple[str, ...]  # fleet groups commanded (technician)
    has_password: bool
    created_ms: int
    created_by: str


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: str
    user: str
    name: str
    scopes: tuple[str, ...]
    datasets: tuple[str, ...] | None  # None: every dataset of the user
    created_ms: int
    created_by: str
    expires_ms: int | None  # None only for the migrated first-release admin credential
    revoked_ms: int | None
    used_ms: int | None
    used_from: str | None

    def state(self, now_ms: int) -> str:
        if self.revoked_ms is not None:
            return "revoked"
        if self.expires_ms is not None and self.expires_ms <= now_ms:
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class IssuedApiToken:
    """`token` is shown once: only its keyed hash is kept."""

    token: str
    info: ApiToken


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a credential speaks for: the user, narrowed by the token's scopes and datasets."""

    user: User
    scopes: frozenset[str]
    datasets: frozenset[str]
    token_id: str | None  # None: a browser session
    session: str | None = None  # the session's secret (CSRF tokens derive from it)


class AuthRefused(FleetError):
    """A credential that does not authenticate; `reason` says why (counted, never shown in
    detail to the client: unknown, expired and revoked look alike from outside)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"authentication refused ({reason})")
        self.reason = reason


def _names(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    value = json.loads(text)
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def check_name(name: str, what: str = "user name") -> str:
    if not _NAME.match(name):
        raise FleetError(
            f"{what} {name[:64]!r}: 1 to 64 of a-z, 0-9, '.', '_', '@', '-', "
            "starting with a letter or digit"
        )
    return name


class Accounts:
    """Users, API tokens and sessions of one registry; `fleet.accounts`."""

    def __init__(self, fleet: Fleet) -> None:
        from pwdlib import PasswordHash

        self._fleet = fleet
        self._hasher = PasswordHash.recommended()
        self._dummy: str | None = None  # a hash to check against for an unknown user
        with fleet._tx() as db:
            for stmt in _SCHEMA_SQL.split(";"):
                if stmt.strip():
                    db.execute(stmt)
        self._key = self._load_key()

    def _load_key(self) -> bytes:
        path = self._fleet.directory / "secrets" / "access-key"
        path.parent.mkdir(mode=0o700, exist_ok=True)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        if len(data) < 32:
            data = secrets.token_bytes(32)
            write_secret(path, data)
        return data

    def keyed_hash(self, secret: str) -> str:
        return hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()

    def csrf_token(self, session: str) -> str:
        """The CSRF token bound to a session (derived: nothing more to store)."""
        mac = hmac.new(self._key, b"csrf\x00" + session.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def check_csrf(self, session: str, token: str) -> bool:
        return hmac.compare_digest(self.csrf_token(session).encode(), token.encode())

    # -- users ---------------------------------------------------------------------------------

    @staticmethod
    def _user(row: sqlite3.Row | tuple[object, ...]) -> User:
        name, role, pw, datasets, groups, created_ms, created_by = row
        return User(
            str(name),
            str(role),
            _names(str(datasets)),
            _names(str(groups)),
            pw is not None,
            int(str(created_ms)),
            str(created_by),
        )

    _USER_COLUMNS = "name, role, password_hash, datasets, groups, created_ms, created_by"

    def users(self) -> list[User]:
        with self._fleet._lock:
            rows = self._fleet._db.execute(
                f"SELECT {self._USER_COLUMNS} FROM users ORDER BY name"
            ).fetchall()
        return [self._user(r) for r in rows]

    def user(self, name: str) -> User:
        with self._fleet._lock:
            row = self._fleet._db.execute(
                f"SELECT {self._USER_COLUMNS} FROM users WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no user {name[:64]!r}")
        return self._user(row)

    def _check_password(self, password: str) -> None:
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise FleetError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")

    def add_user(
        self,
        name: str,
        role: str,
        actor: str,
        *,
        password: str | None = None,
        datasets: tuple[str, ...] = (),
        groups: tuple[str, ...] = (),
    ) -> User:
        check_name(name)
        if role not in ROLES:
            raise FleetError(f"role {role[:32]!r}: one of {', '.join(ROLES)}")
        for d in datasets:
            check_name(d, "dataset name")
        for g in groups:
            check_name(g, "group name")
        if password is not None:
            self._check_password(password)
        pw_hash = None if password is None else self._hasher.hash(password)
        with self._fleet._tx() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"user {name!r} exists")
            db.execute(
                "INSERT INTO users (name, role, password_hash, datasets, groups, created_ms,"
                " created_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    role,
                    pw_hash,
                    json.dumps(sorted(set(datasets))),
                    json.dumps(sorted(set(groups))),
                    self._fleet._now_ms(),
                    actor,
                ),
            )
            self._fleet._audit(
                db,
                actor,
                "user.add",
                name,
                role=role,
                datasets=sorted(set(datasets)),
                groups=sorted(set(groups)),
            )
        return self.user(name)

    def update_user(
        self,
        name: str,
        actor: str,
        *,
        role: str | None = None,
        datasets: tuple[str, ...] | None = None,
        groups: tuple[str, ...] | None = None,
    ) -> User:
        if role is not None and role not in ROLES:
            raise FleetError(f"role {role[:32]!r}: one of {', '.join(ROLES)}")
        for d in datasets or ():
            check_name(d, "dataset name")
        for g in groups or ():
            check_name(g, "group name")
        with self._fleet._tx() as db:
            current = db.execute("SELECT role FROM users WHERE name = ?", (name,)).fetchone()
            if current is None:
                raise NotFound(f"no user {name[:64]!r}")
            if role is not None and role != "admin" and current[0] == "admin":
                self._keep_an_admin(db, name)
            changes: dict[str, object] = {}
            if role is not None:
                db.execute("UPDATE users SET role = ? WHERE name = ?", (role, name))
                changes["role"] = role
            if datasets is not None:
                value = sorted(set(datasets))
                db.execute(
                    "UPDATE users SET datasets = ? WHERE name = ?", (json.dumps(value), name)
                )
                changes["datasets"] = value
            if groups is not None:
                value = sorted(set(groups))
                db.execute("UPDATE users SET groups = ? WHERE name = ?", (json.dumps(value), name))
                changes["groups"] = value
            self._fleet._audit(db, actor, "user.update", name, **changes)
        return self.user(name)

    def _keep_an_admin(self, db: sqlite3.Connection, leaving: str) -> None:
        others = db.execute(
            "SELECT count(*) FROM users WHERE role = 'admin' AND name != ?", (leaving,)
        ).fetchone()[0]
        if not others:
            raise Conflict(
                f"{leaving!r} is the last admin (add another first, or "
                "`estran hub admin-reset` on the hub's machine)"
            )

    def remove_user(self, name: str, actor: str) -> None:
        """Remove a user, their tokens and sessions (the audit keeps their name)."""
        with self._fleet._tx() as db:
            row = db.execute("SELECT role FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no user {name[:64]!r}")
            if row[0] == "admin":
                self._keep_an_admin(db, name)
            now = self._fleet._now_ms()
            db.execute(
                "UPDATE api_tokens SET revoked_ms = ? WHERE user = ? AND revoked_ms IS NULL",
                (now, name),
            )
            db.execute("DELETE FROM sessions WHERE user = ?", (name,))
            db.execute("DELETE FROM users WHERE name = ?", (name,))
            self._fleet._audit(db, actor, "user.remove", name)

    def set_password(self, name: str, password: str | None, actor: str) -> None:
        """Set (or with None, clear: no browser login) a user's password; their browser
        sessions end."""
        if password is not None:
            self._check_password(password)
        pw_hash = None if password is None else self._hasher.hash(password)
        with self._fleet._tx() as db:
            cur = db.execute("UPDATE users SET password_hash = ? WHERE name = ?", (pw_hash, name))
            if cur.rowcount == 0:
                raise NotFound(f"no user {name[:64]!r}")
            db.execute("DELETE FROM sessions WHERE user = ?", (name,))
            self._fleet._audit(db, actor, "user.passwd", name, cleared=password is None)

    # -- API tokens -----------------------------------------------------------------------------

    _TOKEN_COLUMNS = (
        "id, user, name, scopes, datasets, created_ms, created_by, expires_ms, revoked_ms,"
        " used_ms, used_from"
    )

    @staticmethod
    def _token(row: sqlite3.Row | tuple[object, ...]) -> ApiToken:
        (tid, user, name, scopes, datasets, created, by, expires, revoked, used, used_from) = row
        return ApiToken(
            str(tid),
            str(user),
            str(name),
            _names(str(scopes)),
            None if datasets is None else _names(str(datasets)),
            int(str(created)),
            str(by),
            None if expires is None else int(str(expires)),
            None if revoked is None else int(str(revoked)),
            None if used is None else int(str(used)),
            None if used_from is None else str(used_from),
        )

    def create_token(
        self,
        user: str,
        actor: str,
        *,
        name: str = "",
        ttl_s: float = DEFAULT_TOKEN_TTL_S,
        scopes: tuple[str, ...] | None = None,
        datasets: tuple[str, ...] | None = None,
    ) -> IssuedApiToken:
        """Issue an API token for `user`; `scopes` default to what the role may do (a reader:
        read only); `datasets` narrows the user's grants."""
        if not 0 < ttl_s <= MAX_TOKEN_TTL_S:
            raise FleetError(
                f"token lifetime: more than 0 and at most {MAX_TOKEN_TTL_S // 86400} days"
            )
        if len(name) > 128:
            raise FleetError("token name: at most 128 characters")
        u = self.user(user)
        allowed = ("read",) if u.role == "reader" else SCOPES
        chosen = allowed if scopes is None else tuple(sorted(set(scopes)))
        for s in chosen:
            if s not in allowed:
                raise FleetError(f"scope {s[:32]!r}: a {u.role} token takes {', '.join(allowed)}")
        if not chosen:
            raise FleetError("a token needs at least one scope")
        for d in datasets or ():
            check_name(d, "dataset name")
        tid = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = self._fleet._now_ms()
        with self._fleet._tx() as db:
            db.execute(
                "INSERT INTO api_tokens (id, user, hash, scheme, name, scopes, datasets,"
                " created_ms, created_by, expires_ms) VALUES (?, ?, ?, 'hmac', ?, ?, ?, ?, ?, ?)",
                (
                    tid,
                    user,
                    self.keyed_hash(secret),
                    name,
                    json.dumps(list(chosen)),
                    None if datasets is None else json.dumps(sorted(set(datasets))),
                    now,
                    actor,
                    now + int(ttl_s * 1000),
                ),
            )
            self._fleet._audit(
                db,
                actor,
                "token.create",
                tid,
                user=user,
                name=name,
                scopes=list(chosen),
                datasets=None if datasets is None else sorted(set(datasets)),
                expires_ms=now + int(ttl_s * 1000),
            )
        return IssuedApiToken(f"{TOKEN_PREFIX}.{tid}.{secret}", self.token(tid))

    def token(self, tid: str) -> ApiToken:
        with self._fleet._lock:
            row = self._fleet._db.execute(
                f"SELECT {self._TOKEN_COLUMNS} FROM api_tokens WHERE id = ?", (tid,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no token {tid[:32]!r}")
        return self._token(row)

    def tokens(self, user: str | None = None) -> list[ApiToken]:
        with self._fleet._lock:
            rows = self._fleet._db.execute(
                f"SELECT {self._TOKEN_COLUMNS} FROM api_tokens"
                " WHERE ? IS NULL OR user = ? ORDER BY created_ms, id",
                (user, user),
            ).fetchall()
        return [self._token(r) for r in rows]

    def revoke_token(self, tid: str, actor: str) -> ApiToken:
        with self._fleet._tx() as db:
            cur = db.execute(
                "UPDATE api_tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL",
                (self._fleet._now_ms(), tid),
            )
            if (
                cur.rowcount == 0
                and not db.execute("SELECT 1 FROM api_tokens WHERE id = ?", (tid,)).fetchone()
            ):
                raise NotFound(f"no token {tid[:32]!r}")
            self._fleet._audit(db, actor, "token.revoke", tid)
        return self.token(tid)

    def authenticate_token(self, text: str, remote: str | None = None) -> Identity:
        """The identity an `Authorization: Bearer` value speaks for, or AuthRefused."""
        text = text.strip()
        if text.startswith(LEGACY_PREFIX):
            tid, digest = LEGACY_ID, hashlib.sha256(text.encode()).hexdigest()
        else:
            parts = text.split(".")
            if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not _TOKEN_ID.match(parts[1]):
                raise AuthRefused("malformed")
            tid, digest = parts[1], self.keyed_hash(parts[2])
        with self._fleet._lock:
            row = self._fleet._db.execute(
                "SELECT hash, user, scopes, datasets, expires_ms, revoked_ms, used_ms"
                " FROM api_tokens WHERE id = ?",
                (tid,),
            ).fetchone()
        if row is None or not hmac.compare_digest(str(row[0]), digest):
            raise AuthRefused("unknown")
        _, user, scopes, datasets, expires, revoked, used = row
        now = self._fleet._now_ms()
        if revoked is not None:
            raise AuthRefused("revoked")
        if expires is not None and int(expires) <= now:
            raise AuthRefused("expired")
        try:
            u = self.user(str(user))
        except NotFound:
            raise AuthRefused("no user") from None
        if used is None or now - int(used) >= USED_RESOLUTION_MS:
            with self._fleet._tx() as db:
                db.execute(
                    "UPDATE api_tokens SET used_ms = ?, used_from = ? WHERE id = ?",
                    (now, (remote or "")[:64] or None, tid),
                )
        narrowed = set(u.datasets)
        if datasets is not None:
            narrowed &= set(_names(str(datasets)))
        return Identity(u, frozenset(_names(str(scopes))), frozenset(narrowed), tid)

    # -- sessions -------------------------------------------------------------------------------

    def login(self, name: str, password: str, remote: str | None = None) -> tuple[str, User]:
        """Check a password; a new session's secret (for the cookie) and the user."""
        with self._fleet._lock:
            row = self._fleet._db.execute(
                "SELECT password_hash FROM users WHERE name = ?", (name,)
            ).fetchone()
        stored = None if row is None else row[0]
        if stored is None and self._dummy is None:  # made once: unknown users cost the same
            self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        ok = self._hasher.verify(password[:MAX_PASSWORD], stored or self._dummy or "")
        if not ok or stored is None:
            raise AuthRefused("password")
        secret = secrets.token_urlsafe(32)
        now = self._fleet._now_ms()
        with self._fleet._tx() as db:
            db.execute(
                "DELETE FROM sessions WHERE expires_ms <= ? OR seen_ms <= ?",
                (now, now - SESSION_IDLE_S * 1000),
            )
            db.execute(
                "INSERT INTO sessions (hash, user, created_ms, expires_ms, seen_ms, remote)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self.keyed_hash(secret),
                    name,
                    now,
                    now + SESSION_TTL_S * 1000,
                    now,
                    (remote or "")[:64],
                ),
            )
            self._fleet._audit(db, name, "session.login", name)
        return secret, self.user(name)

    def authenticate_session(self, secret: str) -> Identity:
        digest = self.keyed_hash(secret)
        now = self._fleet._now_ms()
        with self._fleet._lock:
            row = self._fleet._db.execute(
                "SELECT user, expires_ms, seen_ms FROM sessions WHERE hash = ?", (digest,)
            ).fetchone()
        if row is None:
            raise AuthRefused("unknown session")
        user, expires, seen = row
        if int(expires) <= now or int(seen) <= now - SESSION_IDLE_S * 1000:
            raise AuthRefused("session expired")
        try:
            u = self.user(str(user))
        except NotFound:
            raise AuthRefused("no user") from None
        if now - int(seen) >= USED_RESOLUTION_MS:
            with self._fleet._tx() as db:
                db.execute("UPDATE sessions SET seen_ms = ? WHERE hash = ?", (now, digest))
        scopes = frozenset({"read"}) if u.role == "reader" else frozenset(SCOPES)
        return Identity(u, scopes, frozenset(u.datasets), None, secret)

    def logout(self, secret: str) -> None:
        digest = self.keyed_hash(secret)
        with self._fleet._tx() as db:
            row = db.execute("SELECT user FROM sessions WHERE hash = ?", (digest,)).fetchone()
            if row is not None:
                db.execute("DELETE FROM sessions WHERE hash = ?", (digest,))
                self._fleet._audit(db, str(row[0]), "session.logout", str(row[0]))

    # -- the admin -----------------------------------------------------------------------------

    def ensure_admin(self, legacy_hash: str | None) -> str | None:
        """On first start, the user `admin` and an API token for it, returned that once.
        A registry of the first release keeps its admin credential: it becomes a token of
        the user `admin` (no expiry: replace it with `estran hub admin-reset`)."""
        with self._fleet._tx() as db:
            if db.execute("SELECT 1 FROM users WHERE role = 'admin'").fetchone():
                return None
            now = self._fleet._now_ms()
            if not db.execute("SELECT 1 FROM users WHERE name = 'admin'").fetchone():
                db.execute(
                    "INSERT INTO users (name, role, created_ms, created_by)"
                    " VALUES ('admin', 'admin', ?, 'hub')",
                    (now,),
                )
            else:
                db.execute("UPDATE users SET role = 'admin' WHERE name = 'admin'")
            self._fleet._audit(db, "hub", "user.add", "admin", role="admin")
            if legacy_hash is not None:
                db.execute(
                    "INSERT OR REPLACE INTO api_tokens (id, user, hash, scheme, name, scopes,"
                    " created_ms, created_by) VALUES (?, 'admin', ?, 'sha256', ?, ?, ?, 'hub')",
                    (
                        LEGACY_ID,
                        legacy_hash,
                        "fleet admin credential (first release)",
                        json.dumps(list(SCOPES)),
                        now,
                    ),
                )
                self._fleet._audit(db, "hub", "token.migrate", LEGACY_ID, user="admin")
                return None
        return self.create_token(
            "admin", "hub", name="first admin credential", ttl_s=MAX_TOKEN_TTL_S
        ).token

    def reset_admin(self, actor: str, name: str = "admin") -> IssuedApiToken:
        """The lost-credential path, on the hub's machine: `name` becomes (or stays) an admin,
        every token and session of it ends, and a new token is issued."""
        check_name(name)
        with self._fleet._tx() as db:
            now = self._fleet._now_ms()
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                db.execute("UPDATE users SET role = 'admin' WHERE name = ?", (name,))
            else:
                db.execute(
                    "INSERT INTO users (name, role, created_ms, created_by)"
                    " VALUES (?, 'admin', ?, ?)",
                    (name, now, actor),
                )
            db.execute(
                "UPDATE api_tokens SET revoked_ms = ? WHERE user = ? AND revoked_ms IS NULL",
                (now, name),
            )
            db.execute("DELETE FROM sessions WHERE user = ?", (name,))
            self._fleet._audit(db, actor, "admin.reset", name)
        return self.create_token(name, actor, name="admin-reset", ttl_s=MAX_TOKEN_TTL_S)


__all__ = [
    "MAX_TOKEN_TTL_S",
    "ROLES",
    "SCOPES",
    "Accounts",
    "ApiToken",
    "AuthRefused",
    "Identity",
    "IssuedApiToken",
    "User",
    "check_name",
]
