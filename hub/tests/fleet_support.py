"""Test helpers for the fleet in the hub: a gateway's side of enrollment done with
cryptography and protocols only (hub tests may not import edge)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import fleet
from protocols import signed


def enroll_directly(f: fleet.Fleet, group: str = "marina") -> tuple[str, str]:
    """Enroll a gateway through the registry; (gateway id, broker password)."""
    if group not in {g.name for g in f.groups()}:
        f.create_group(group, "test")
    token = f.create_token(group, 600, "test").token
    key = Ed25519PrivateKey.generate()
    pub = fleet.raw_public(key)
    nonce = f.challenge(token)
    tid = fleet.parse_token(token)[0]
    proof = key.sign(
        signed.signing_input(signed.CONTEXT_ENROLL, fleet.enroll_proof_payload(tid, nonce, pub))
    )
    result = f.enroll(token, pub, nonce, proof, "mqtt://127.0.0.1:1883")
    password = signed.decode_signed(result.answer).document()["password"]
    assert isinstance(password, str)
    return result.gateway_id, password
