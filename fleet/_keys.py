"""The hub's Ed25519 signing keys: several may be trusted at once, so keys rotate without
re-enrolling a single gateway.

Each key lives in `<dir>/<key id>.pem` (PKCS#8, mode 0600). A key is `active` (signs, and is
sent to gateways as trusted) or `retired` (kept for the record, trusted no more). Documents
are signed by every active key; a gateway accepts a document when one signature verifies
with a key it pinned. Rotation (docs/security.md): `add` a key (the next configurations,
signed by the old key too, carry it to every gateway), wait for the gateways to report, then
`retire` the old one.
"""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fleet._errors import Conflict, FleetError, NotFound
from fleet._secrets import private_dir, write_secret
from protocols import signed


def raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def verify(public_key: bytes, context: bytes, payload: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, signed.signing_input(context, payload)
        )
    except (InvalidSignature, ValueError):
        return False
    return True


class Keyring:
    """The signing keys in a directory; state (active/retired) in `<dir>/<id>.retired`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._cache: dict[str, Ed25519PrivateKey] = {}

    def _load(self, kid: str) -> Ed25519PrivateKey:
        key = self._cache.get(kid)
        if key is None:
            path = self.directory / f"{kid}.pem"
            try:
                loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except FileNotFoundError:
                raise NotFound(f"no signing key {kid}") from None
            if not isinstance(loaded, Ed25519PrivateKey):
                raise FleetError(f"{path}: not an Ed25519 key")
            if signed.key_id(raw_public(loaded)) != kid:
                raise FleetError(f"{path}: the key does not match its id")
            key = self._cache[kid] = loaded
        return key

    def all_ids(self) -> list[str]:
        """Every key id, oldest first."""
        if not self.directory.is_dir():
            return []
        paths = sorted(self.directory.glob("*.pem"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [p.stem for p in paths]

    def active_ids(self) -> list[str]:
        return [k for k in self.all_ids() if not (self.directory / f"{k}.retired").exists()]

    def ensure(self) -> str:
        """The id of the oldest active key, created on first use."""
        active = self.active_ids()
        return active[0] if active else self.add()

    def add(self) -> str:
        private_dir(self.directory)
        key = Ed25519PrivateKey.generate()
        kid = signed.key_id(raw_public(key))
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_secret(self.directory / f"{kid}.pem", pem)
        time.sleep(0.002)  # distinct mtimes keep the order of creation
        self._cache[kid] = key
        return kid

    def retire(self, kid: str) -> None:
        active = self.active_ids()
        if kid not in self.all_ids():
            raise NotFound(f"no signing key {kid}")
        if kid in active and len(active) == 1:
            raise Conflict(f"{kid} is the only active key: add another one first")
        (self.directory / f"{kid}.retired").touch(mode=0o600)

    def public_keys(self) -> dict[str, bytes]:
        """{key id: raw public key} of the active keys: what gateways trust."""
        return {kid: raw_public(self._load(kid)) for kid in self.active_ids()}

    def sign(self, context: bytes, payload: bytes) -> list[tuple[str, bytes]]:
        """A signature by every active key."""
        kids = self.active_ids()
        if not kids:
            raise FleetError("no active signing key")
        return [(kid, self._load(kid).sign(signed.signing_input(context, payload))) for kid in kids]

    def sign_document(self, context: bytes, document: dict[str, object]) -> bytes:
        """The encoded signed document (protocols.signed) of `document`."""
        payload = signed.encode_payload(document)
        return signed.encode_signed(signed.Signed(payload, self.sign(context, payload)))


__all__ = ["Keyring", "raw_public", "verify"]
