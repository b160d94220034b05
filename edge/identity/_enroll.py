"""Enrollment, the gateway side: make a key pair, prove it to the hub, keep what it answers.

    1. POST /api/v1/enroll/challenge {"token"}            -> {"nonce"}
    2. POST /api/v1/enroll {"token", "public_key", "nonce", "proof", "site"}
                                                          -> {"answer", "config"}

`proof` is the gateway's signature (protocols.signed.CONTEXT_ENROLL) over the token id, the
nonce and its public key. `answer` is a document signed by the hub (CONTEXT_ENROLLED): the
gateway accepts it only if it is signed by the hub key named in the token (or given as
`--hub-fingerprint`), so a hub impersonated on the network is refused, then checks that it
answers this very key and nonce. Bytes travel as base64 in the JSON.
"""

from __future__ import annotations

import base64
import functools
import json
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.identity._errors import EnrollError
from edge.identity._key import GatewayKey
from edge.identity._state import ConfigState, GatewayState, Identity
from edge.identity._tls import HUB_CA_FILE, CAFileError, hub_tls_context
from protocols import signed
from protocols.errors import ProtocolError

Post = Callable[[str, dict[str, object]], dict[str, object]]
TIMEOUT_S = 20.0


def parse_token(token: str) -> tuple[str, str]:
    """(token id, hub key id) of `et1.<id>.<secret>.<hub key id>`."""
    parts = token.strip().split(".")
    if len(parts) != 4 or parts[0] != "et1" or not signed.valid_key_id(parts[3]):
        raise EnrollError("this is not an enrollment token (expected et1.<id>.<secret>.<hub>)")
    return parts[1], parts[3]


def http_post(
    url: str, body: dict[str, object], *, context: ssl.SSLContext | None = None
) -> dict[str, object]:
    """POST JSON, return JSON; an HTTP error becomes EnrollError with the hub's reason."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as response:
            data = json.loads(response.read(1 << 20))
    except urllib.error.HTTPError as e:
        try:
            detail = json.loads(e.read(4096)).get("detail", e.reason)
        except (ValueError, AttributeError):
            detail = e.reason
        raise EnrollError(f"the hub refused: {detail}") from e
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise EnrollError(f"cannot reach the hub at {url}: {e}") from e
    except ValueError as e:
        raise EnrollError(f"{url}: the answer is not JSON") from e
    if not isinstance(data, dict):
        raise EnrollError(f"{url}: unexpected answer")
    return data


@dataclass(frozen=True, slots=True)
class Enrolled:
    identity: Identity
    hub_keys: dict[str, bytes]


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise EnrollError(f"the hub's answer has no {what}")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as e:
        raise EnrollError(f"the hub's {what} is not base64") from e


def verify_answer(
    answer: bytes, hub_key_id: str, gateway_key: bytes, nonce: str
) -> dict[str, object]:
    """The enrollment answer, if signed by the pinned hub key and meant for this key."""
    try:
        sd = signed.decode_signed(answer)
        doc = sd.document()
    except ProtocolError as e:
        raise EnrollError(f"the hub's answer is malformed: {e}") from e
    keys = doc.get("keys")
    if not isinstance(keys, dict) or not isinstance(keys.get(hub_key_id), bytes):
        raise EnrollError(
            f"the hub does not hold the key {hub_key_id} named in the token: wrong hub?"
        )
    pub = keys[hub_key_id]
    if signed.key_id(pub) != hub_key_id:
        raise EnrollError(f"the hub's key does not match the fingerprint {hub_key_id}: wrong hub")
    sig = dict(sd.signatures).get(hub_key_id)
    try:
        if sig is None:
            raise InvalidSignature
        Ed25519PublicKey.from_public_bytes(pub).verify(
            sig, signed.signing_input(signed.CONTEXT_ENROLLED, sd.payload)
        )
    except (InvalidSignature, ValueError) as e:
        raise EnrollError(
            f"the answer is not signed by the hub {hub_key_id}: wrong hub, or someone in between"
        ) from e
    if doc.get("key") != gateway_key or doc.get("nonce") != nonce:
        raise EnrollError("the hub's answer is for another enrollment")
    for name in ("gateway", "group", "broker", "username", "password"):
        if not isinstance(doc.get(name), str):
            raise EnrollError(f"the hub's answer has no {name}")
    for kid, k in keys.items():
        if not isinstance(kid, str) or not isinstance(k, bytes) or len(k) != signed.KEY_BYTES:
            raise EnrollError("the hub's answer holds a malformed key")
    return doc


def enroll(
    hub: str,
    token: str,
    data_dir: Path,
    *,
    hub_fingerprint: str | None = None,
    site: str | None = None,
    force: bool = False,
    ca_file: Path | None = None,
    post: Post | None = None,
) -> Enrolled:
    """Enroll this gateway; its state goes to `data_dir`. Refuses to enroll twice unless
    `force` (a new key pair is made then). `ca_file`: the CA that signed the hub's
    certificate (`estran fleet tls init`), for https and mqtts; kept as DATA/hub-ca.crt."""
    if post is None:
        context = None
        if ca_file is not None:
            try:
                context = hub_tls_context(ca_file)
            except CAFileError as e:
                raise EnrollError(str(e)) from e
        post = functools.partial(http_post, context=context)
    token_id, hub_key_id = parse_token(token)
    if hub_fingerprint is not None and hub_fingerprint.lower() != hub_key_id:
        raise EnrollError(
            f"the token names hub {hub_key_id}, not {hub_fingerprint}: this token is for "
            "another hub"
        )
    base = hub.rstrip("/")
    if "://" not in base:
        base = "http://" + base
    with GatewayState(data_dir) as state:
        existing = state.identity()
        if existing is not None and not force:
            raise EnrollError(
                f"already enrolled as {existing.gateway_id} (hub {existing.hub}); "
                "--force enrolls again with a new key"
            )
        key = GatewayKey.generate()
        nonce = post(base + "/api/v1/enroll/challenge", {"token": token}).get("nonce")
        if not isinstance(nonce, str):
            raise EnrollError("the hub sent no challenge")
        proof_payload = signed.canonical({"token": token_id, "nonce": nonce, "key": key.public})
        reply = post(
            base + "/api/v1/enroll",
            {
                "token": token,
                "public_key": base64.b64encode(key.public).decode(),
                "nonce": nonce,
                "proof": base64.b64encode(key.sign(signed.CONTEXT_ENROLL, proof_payload)).decode(),
                "site": site,
            },
        )
        doc = verify_answer(_b64(reply.get("answer"), "answer"), hub_key_id, key.public, nonce)
        config = _b64(reply.get("config"), "configuration")
        hub_keys: dict[str, bytes] = dict(doc["keys"])  # type: ignore[call-overload]
        identity = Identity(
            gateway_id=str(doc["gateway"]),
            group=str(doc["group"]),
            hub=base,
            broker=str(doc["broker"]),
            username=str(doc["username"]),
            key_id=key.key_id,
            enrolled_ms=int(time.time() * 1000),
        )
        key.save(state.key_path)
        if ca_file is not None:
            shutil.copyfile(ca_file, data_dir / HUB_CA_FILE)
        state.set_trusted_keys(hub_keys)
        state.set_config(ConfigState(pending=base64.b64encode(config).decode()))
        state.set_identity(identity, str(doc["password"]))
    return Enrolled(identity, hub_keys)


__all__ = ["HUB_CA_FILE", "Enrolled", "enroll", "http_post", "parse_token", "verify_answer"]
