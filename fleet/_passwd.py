"""Broker passwords: Mosquitto's `$7$` format (PBKDF2-HMAC-SHA512), which both brokers check.

`$7$<iterations>$<base64 salt>$<base64 hash>` is what `mosquitto_passwd` writes; the hub's
embedded broker verifies the same strings, so one registry serves both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ITERATIONS = 1000  # passwords are 32 random bytes: the work factor guards nothing more
SALT_BYTES = 12


def new_password() -> str:
    """A random broker password (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a `$7$` string (False for anything malformed)."""
    parts = stored.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    if not 1 <= iterations <= 1_000_000:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return hmac.compare_digest(digest, expected)


__all__ = ["hash_password", "new_password", "verify_password"]
