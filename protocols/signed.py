"""Signed documents: the hub's desired configurations and commands, and enrollment proofs.

Sans-IO and firmware-style: this module frames, encodes and checks the shape of signed
documents; it does not compute signatures (Ed25519 lives where a crypto library is, on the
hub and in edge/). Both sides use these functions, so the bytes that are signed are defined
once.

A signed document is one CBOR array, the body of a wire `config` or `cmd` envelope::

    [1, payload, [[key_id, signature], ...]]

- `payload` is a byte string: the deterministic CBOR (`canonical`) of a map. Signatures
  cover the exact bytes, so a verifier never re-encodes anything.
- each signature is Ed25519 over `signing_input(context, payload)`, where `context` names
  the purpose (`CONTEXT_CONFIG`, `CONTEXT_CMD`, `CONTEXT_ENROLL`...): a signature made for
  one purpose never verifies for another.
- `key_id` names the hub key that signed: the first 8 bytes of SHA-256 of its raw 32-byte
  public key, in hex (`key_id(public_key)`). The hub signs with every key it currently
  trusts, so a gateway that pinned either the old or the new key accepts the document while
  keys rotate.

Configuration payload (a map, keys are text)::

    {"kind": "config", "gateway": "gw-017", "version": 12, "issued_ms": ...,
     "config": {...}, "keys": {key_id: public_key_bytes, ...}}

Command payload::

    {"kind": "cmd", "gateway": "gw-017", "seq": 4, "issued_ms": ..., "expires_ms": ...,
     "name": "reboot", "args": {...}}
"""

from protocols import cbor
from protocols.errors import (
    MALFORMED,
    OVERFLOW,
    UNSUPPORTED,
    LocalProtocolError,
    RemoteProtocolError,
)

try:
    import hashlib
except ImportError:  # pragma: no cover - MicroPython without hashlib
    hashlib = None  # type: ignore[assignment]

FORMAT = 1
CONTEXT_CONFIG = b"estran/v1/config"
CONTEXT_CMD = b"estran/v1/cmd"
CONTEXT_ENROLL = b"estran/v1/enroll"  # the gateway's proof of possession
CONTEXT_ENROLLED = b"estran/v1/enrolled"  # the hub's answer to an enrollment

KEY_BYTES = 32  # raw Ed25519 public key
SIGNATURE_BYTES = 64
KEY_ID_CHARS = 16
MAX_SIGNATURES = 8
MAX_SIGNED_PAYLOAD = 60 << 10


# -- deterministic CBOR ------------------------------------------------------------------


def canonical(value: "object") -> "bytes":
    """Deterministic CBOR (RFC 8949 §4.2.1): preferred serialization, definite lengths,
    map keys sorted by their encoded bytes. The same value always gives the same bytes."""
    out = []  # type: list[bytes]
    _canonical(value, out, 0)
    return b"".join(out)


def _canonical(value: "object", out: "list[bytes]", depth: "int") -> "None":
    if depth > cbor.MAX_DEPTH:
        raise LocalProtocolError("value nested too deeply (or cyclic)")
    t = type(value)
    if t is dict:
        pairs = []
        for k, v in value.items():  # type: ignore[attr-defined]
            key = []  # type: list[bytes]
            _canonical(k, key, depth + 1)
            pairs.append((b"".join(key), v))
        pairs.sort(key=lambda p: p[0])
        for i in range(1, len(pairs)):
            if pairs[i][0] == pairs[i - 1][0]:
                raise LocalProtocolError("duplicate map key")
        out.append(cbor.encode_head(5, len(pairs)))
        for k, v in pairs:
            out.append(k)
            _canonical(v, out, depth + 1)
    elif t is list or t is tuple:
        out.append(cbor.encode_head(4, len(value)))  # type: ignore[arg-type]
        for item in value:  # type: ignore[attr-defined]
            _canonical(item, out, depth + 1)
    elif t is cbor.Tag:
        out.append(cbor.encode_head(6, value.tag))  # type: ignore[attr-defined]
        _canonical(value.value, out, depth + 1)  # type: ignore[attr-defined]
    else:
        out.append(cbor.dumps(value))


def is_canonical(data: "bytes") -> "bool":
    """Whether `data` is one CBOR item in deterministic encoding."""
    try:
        return canonical(cbor.loads(data)) == bytes(data)
    except (RemoteProtocolError, LocalProtocolError):
        return False


# -- keys and signing input ---------------------------------------------------------------


def key_id(public_key: "bytes") -> "str":
    """The id of a raw 32-byte Ed25519 public key: hex of the first 8 bytes of its SHA-256."""
    if len(public_key) != KEY_BYTES:
        raise LocalProtocolError("an Ed25519 public key is %d bytes" % KEY_BYTES)
    if hashlib is None:  # pragma: no cover
        raise LocalProtocolError("no hashlib on this platform")
    digest = hashlib.sha256(bytes(public_key)).digest()
    return "".join("%02x" % b for b in digest[:8])


def valid_key_id(kid: "object") -> "bool":
    if type(kid) is not str or len(kid) != KEY_ID_CHARS:
        return False
    return all(c in "0123456789abcdef" for c in kid)


def signing_input(context: "bytes", payload: "bytes") -> "bytes":
    """The bytes an Ed25519 signature covers: context, a zero byte, then the payload."""
    if not context or b"\x00" in context:
        raise LocalProtocolError("a context is a non-empty string without NUL")
    return bytes(context) + b"\x00" + bytes(payload)


# -- the signed document ------------------------------------------------------------------


class Signed:
    """A payload (deterministic CBOR bytes of a map) and its signatures [(key id, sig)]."""

    __slots__ = ("payload", "signatures")

    def __init__(self, payload: "bytes", signatures: "list[tuple[str, bytes]]") -> "None":
        self.payload = payload
        self.signatures = signatures

    def document(self) -> "dict[str, object]":
        """The payload decoded: a map with text keys (RemoteProtocolError otherwise)."""
        return decode_payload(self.payload)

    def __eq__(self, other: "object") -> "bool":
        return (
            isinstance(other, Signed)
            and self.payload == other.payload
            and self.signatures == other.signatures
        )

    def __repr__(self) -> "str":
        return "Signed(%d bytes, keys=%r)" % (len(self.payload), [k for k, _ in self.signatures])


def encode_payload(document: "dict[str, object]") -> "bytes":
    """The payload bytes of `document` (a map with text keys), deterministic CBOR."""
    if type(document) is not dict:
        raise LocalProtocolError("a signed document is a map")
    for k in document:
        if type(k) is not str:
            raise LocalProtocolError("signed document keys are text")
    payload = canonical(document)
    if len(payload) > MAX_SIGNED_PAYLOAD:
        raise LocalProtocolError("signed payload exceeds %d bytes" % MAX_SIGNED_PAYLOAD)
    return payload


def decode_payload(payload: "bytes") -> "dict[str, object]":
    if len(payload) > MAX_SIGNED_PAYLOAD:
        raise RemoteProtocolError(OVERFLOW, "signed payload exceeds %d bytes" % MAX_SIGNED_PAYLOAD)
    doc = cbor.loads(payload)
    if type(doc) is not dict:
        raise RemoteProtocolError(MALFORMED, "signed payload is not a map")
    for k in doc:
        if type(k) is not str:
            raise RemoteProtocolError(MALFORMED, "signed payload has a non-text key")
    if canonical(doc) != bytes(payload):
        raise RemoteProtocolError(MALFORMED, "signed payload is not deterministic CBOR")
    return doc


def encode_signed(signed: "Signed") -> "bytes":
    """The CBOR bytes of a signed document (the body of a config or cmd envelope)."""
    if not signed.signatures or len(signed.signatures) > MAX_SIGNATURES:
        raise LocalProtocolError("1 to %d signatures" % MAX_SIGNATURES)
    sigs = []
    for kid, sig in signed.signatures:
        if not valid_key_id(kid):
            raise LocalProtocolError("invalid key id %r" % (kid,))
        if len(sig) != SIGNATURE_BYTES:
            raise LocalProtocolError("an Ed25519 signature is %d bytes" % SIGNATURE_BYTES)
        sigs.append([kid, bytes(sig)])
    return canonical([FORMAT, bytes(signed.payload), sigs])


def decode_signed(data: "bytes") -> "Signed":
    """A signed document, its shape checked (not its signatures: see the module doc)."""
    value = cbor.loads(data)
    if type(value) is not list or len(value) < 3:
        raise RemoteProtocolError(MALFORMED, "a signed document is [format, payload, sigs]")
    fmt, payload, sigs = value[0], value[1], value[2]
    if type(fmt) is not int:
        raise RemoteProtocolError(MALFORMED, "signed format is not an integer")
    if fmt != FORMAT:
        raise RemoteProtocolError(UNSUPPORTED, "signed format %d" % fmt)
    if type(payload) is not bytes:
        raise RemoteProtocolError(MALFORMED, "signed payload is not a byte string")
    if len(payload) > MAX_SIGNED_PAYLOAD:
        raise RemoteProtocolError(OVERFLOW, "signed payload exceeds %d bytes" % MAX_SIGNED_PAYLOAD)
    if type(sigs) is not list or not sigs:
        raise RemoteProtocolError(MALFORMED, "no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise RemoteProtocolError(OVERFLOW, "more than %d signatures" % MAX_SIGNATURES)
    out = []  # type: list[tuple[str, bytes]]
    for item in sigs:
        if type(item) is not list or len(item) != 2:
            raise RemoteProtocolError(MALFORMED, "a signature is [key_id, signature]")
        kid, sig = item[0], item[1]
        if not valid_key_id(kid):
            raise RemoteProtocolError(MALFORMED, "invalid key id")
        if type(sig) is not bytes or len(sig) != SIGNATURE_BYTES:
            raise RemoteProtocolError(MALFORMED, "a signature is %d bytes" % SIGNATURE_BYTES)
        out.append((kid, sig))
    return Signed(payload, out)


# -- payload fields ---------------------------------------------------------------------


def field(doc: "dict[str, object]", name: "str", kind: "type") -> "object":
    """`doc[name]`, which must be of type `kind` (RemoteProtocolError otherwise)."""
    if name not in doc:
        raise RemoteProtocolError(MALFORMED, "signed document without %r" % name)
    value = doc[name]
    if kind is int and type(value) is bool:
        raise RemoteProtocolError(MALFORMED, "%r is not an integer" % name)
    if not isinstance(value, kind):
        raise RemoteProtocolError(MALFORMED, "%r is not %s" % (name, kind.__name__))
    return value


# -- what the gateway answers (the body of a wire `report` envelope, not signed: the broker
# identity and topic ACL say who sent it) ---------------------------------------------------

APPLIED = "applied"  # verified, applied, the health gate passed
ROLLED_BACK = "rolled_back"  # applied, the gate failed: the last good configuration is back
REFUSED = "refused"  # never applied: unsigned, badly signed, not newer, wrong gateway, invalid
FAILED = "failed"  # applied and the rollback failed too: the gateway needs a technician
DONE = "done"  # a command ran
OUTCOMES = (APPLIED, ROLLED_BACK, REFUSED, FAILED, DONE)

# The commands a gateway runs (docs/fleet.md): reload the configuration file, report its
# sources, restart its sources, commit the buffer and send the backlog now, restart the daemon.
COMMANDS = ("reload", "status", "rescan", "flush", "reboot")


def report(
    kind: "str",
    outcome: "str",
    reason: "str",
    version: "int | None",
    applied_version: "int | None",
    ts_ms: "int",
) -> "dict[str, object]":
    """A report document: {"kind": "config"|"cmd", "outcome", "reason", "version" (of the
    document answered, or the command seq), "applied" (the configuration version running
    now), "ts_ms"}. Encode it with `wire.Envelope.of(wire.REPORT, doc)`."""
    if outcome not in OUTCOMES:
        raise LocalProtocolError("unknown outcome %r" % outcome)
    return {
        "kind": kind,
        "outcome": outcome,
        "reason": reason[:200],
        "version": version,
        "applied": applied_version,
        "ts_ms": ts_ms,
    }


def check_report(doc: "object") -> "dict[str, object]":
    """A report document received by the hub, its shape checked."""
    if type(doc) is not dict:
        raise RemoteProtocolError(MALFORMED, "a report is a map")
    kind = field(doc, "kind", str)
    outcome = field(doc, "outcome", str)
    field(doc, "reason", str)
    field(doc, "ts_ms", int)
    if kind not in ("config", "cmd"):
        raise RemoteProtocolError(MALFORMED, "report kind %r" % kind)
    if outcome not in OUTCOMES:
        raise RemoteProtocolError(MALFORMED, "report outcome %r" % outcome)
    for name in ("version", "applied"):
        value = doc.get(name)
        if value is not None and (type(value) is not int or value < 0):
            raise RemoteProtocolError(MALFORMED, "report %r is not a version" % name)
    return doc


__all__ = [
    "APPLIED",
    "COMMANDS",
    "CONTEXT_CMD",
    "CONTEXT_CONFIG",
    "CONTEXT_ENROLL",
    "CONTEXT_ENROLLED",
    "DONE",
    "FAILED",
    "FORMAT",
    "KEY_BYTES",
    "KEY_ID_CHARS",
    "MAX_SIGNATURES",
    "MAX_SIGNED_PAYLOAD",
    "OUTCOMES",
    "REFUSED",
    "ROLLED_BACK",
    "SIGNATURE_BYTES",
    "Signed",
    "canonical",
    "check_report",
    "decode_payload",
    "decode_signed",
    "encode_payload",
    "encode_signed",
    "field",
    "is_canonical",
    "key_id",
    "report",
    "signing_input",
    "valid_key_id",
]
