"""A stand-in for the hub's signing side (edge tests may not import fleet): signed configs
and commands made with cryptography and protocols.signed only."""

from __future__ import annotations

import time
from collections.abc import Mapping

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols import signed, wire


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class FakeHub:
    def __init__(self) -> None:
        self.keys = [Ed25519PrivateKey.generate()]

    def public_keys(self) -> dict[str, bytes]:
        return {signed.key_id(raw(k)): raw(k) for k in self.keys}

    def sign(self, context: bytes, doc: dict[str, object]) -> bytes:
        payload = signed.encode_payload(doc)
        sigs = [
            (signed.key_id(raw(k)), k.sign(signed.signing_input(context, payload)))
            for k in self.keys
        ]
        return signed.encode_signed(signed.Signed(payload, sigs))

    def config(
        self,
        gateway: str,
        version: int,
        config: Mapping[str, object],
        *,
        keys: dict[str, bytes] | None = None,
    ) -> bytes:
        body = self.sign(
            signed.CONTEXT_CONFIG,
            {
                "kind": "config",
                "gateway": gateway,
                "version": version,
                "issued_ms": int(time.time() * 1000),
                "config": dict(config),
                "keys": keys if keys is not None else self.public_keys(),
            },
        )
        return wire.encode_envelope(wire.Envelope(wire.CONFIG, body))

    def command(self, gateway: str, seq: int, name: str, expires_ms: int | None = None) -> bytes:
        now = int(time.time() * 1000)
        body = self.sign(
            signed.CONTEXT_CMD,
            {
                "kind": "cmd",
                "gateway": gateway,
                "seq": seq,
                "issued_ms": now,
                "expires_ms": expires_ms if expires_ms is not None else now + 60_000,
                "name": name,
                "args": {},
            },
        )
        return wire.encode_envelope(wire.Envelope(wire.CMD, body))
