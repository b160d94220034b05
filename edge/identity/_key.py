"""The gateway's own Ed25519 key pair. The private key never leaves the gateway: it is made
here, kept in a file readable by the daemon's user only (0600), and only its public half is
sent to the hub."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.identity._errors import IdentityError
from edge.identity._storage import atomic_write
from protocols import signed


class GatewayKey:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private

    @classmethod
    def generate(cls) -> GatewayKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> GatewayKey:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                raise IdentityError(f"{path}: readable by others (mode {mode:o}); chmod 600 it")
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as e:
            raise IdentityError(f"{path}: {e}") from e
        if not isinstance(key, Ed25519PrivateKey):
            raise IdentityError(f"{path}: not an Ed25519 key")
        return cls(key)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        atomic_write(path, pem, 0o600)

    @property
    def public(self) -> bytes:
        return self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def key_id(self) -> str:
        return signed.key_id(self.public)

    def sign(self, context: bytes, payload: bytes) -> bytes:
        return self._private.sign(signed.signing_input(context, payload))


__all__ = ["GatewayKey"]
