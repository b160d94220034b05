"""Enrollment: one-use tokens, challenges and the registration of a gateway that proved its key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass

from fleet._configs import Configurations
from fleet._errors import Conflict, FleetError, NotFound, TokenRefused
from fleet._keys import verify
from fleet._passwd import hash_password, new_password
from protocols import signed

TOKEN_PREFIX = "et1"
MAX_TTL_S = 30 * 86400
NONCE_TTL_S = 120.0


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


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
class Enrollment:
    """What a gateway receives: `answer` is the signed enrollment document
    (protocols.signed, context CONTEXT_ENROLLED) and `config` its first configuration (the
    wire message published on its config topic)."""

    gateway_id: str
    answer: bytes
    config: bytes


def parse_token(text: str) -> tuple[str, str, str]:
    """(token id, secret, hub key id) of `et1.<id>.<secret>.<hub key id>`."""
    parts = text.strip().split(".")
    if len(parts) != 4 or parts[0] != TOKEN_PREFIX or not signed.valid_key_id(parts[3]):
        raise TokenRefused("unknown", "not an enrollment token (expected et1.<id>.<secret>.<hub>)")
    return parts[1], parts[2], parts[3]


def enroll_proof_payload(token_id: str, nonce: str, public_key: bytes) -> bytes:
    """The bytes a gateway signs (context CONTEXT_ENROLL) to prove it holds its key."""
    return signed.canonical({"token": token_id, "nonce": nonce, "key": public_key})


class Enrollments(Configurations):
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
