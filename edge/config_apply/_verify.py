"""Verification of the hub's signed documents against the pinned keys."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.errors import EdgeError
from protocols import signed
from protocols.errors import ProtocolError


class Refused(EdgeError):
    """A document the gateway will not run; `reason` says why (it is reported to the hub)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_signed(
    data: bytes, context: bytes, trusted: dict[str, bytes]
) -> tuple[dict[str, object], str]:
    """(document, key id that verified) of a signed document, or Refused."""
    try:
        sd = signed.decode_signed(data)
    except ProtocolError as e:
        raise Refused(f"unsigned or malformed: {e}") from e
    known = [(kid, sig) for kid, sig in sd.signatures if kid in trusted]
    if not known:
        names = ", ".join(k for k, _ in sd.signatures)
        raise Refused(f"signed by no pinned hub key (signed by {names})")
    message = signed.signing_input(context, sd.payload)
    for kid, sig in known:
        try:
            Ed25519PublicKey.from_public_bytes(trusted[kid]).verify(sig, message)
        except (InvalidSignature, ValueError):
            continue
        try:
            return sd.document(), kid
        except ProtocolError as e:
            raise Refused(f"malformed payload: {e}") from e
    raise Refused("bad signature")


__all__ = ["Refused", "verify_signed"]
