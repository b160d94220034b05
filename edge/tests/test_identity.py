"""Gateway identity: atomic state, private key file, enrollment against a fake hub."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from edge.identity import (
    AtomicJSONStorage,
    EnrollError,
    GatewayKey,
    GatewayState,
    Identity,
    IdentityError,
    enroll,
)
from edge.tests.support.hub import FakeHub
from protocols import signed


def test_atomic_storage_survives_a_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    storage = AtomicJSONStorage(path)
    storage.write({"t": {"1": {"a": 1}}})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def crash(src: object, dst: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        storage.write({"t": {"1": {"a": 2}}})
    monkeypatch.undo()
    assert storage.read() == {"t": {"1": {"a": 1}}}  # the old file, whole
    assert json.loads(path.read_text()) == {"t": {"1": {"a": 1}}}


def test_state_round_trip(tmp_path: Path) -> None:
    hub = FakeHub()
    with GatewayState(tmp_path) as s:
        ident = Identity("g-001", "g", "http://hub", "mqtt://hub:1883", "g-001", "00" * 8, 1)
        s.set_identity(ident, "pw")
        s.set_trusted_keys(hub.public_keys())
    with GatewayState(tmp_path) as s:
        assert s.identity() == ident
        assert s.trusted_keys() == hub.public_keys()
        assert s.credentials_path.read_text() == "g-001:pw\n"
        assert stat.S_IMODE(s.credentials_path.stat().st_mode) == 0o600
        with pytest.raises(IdentityError):
            s.set_trusted_keys({"00" * 8: bytes(32)})
        with pytest.raises(IdentityError):
            s.set_trusted_keys({})


def test_private_key_file(tmp_path: Path) -> None:
    key = GatewayKey.generate()
    path = tmp_path / "identity" / "gateway.key"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert GatewayKey.load(path).public == key.public
    path.chmod(0o644)
    with pytest.raises(IdentityError, match="readable by others"):
        GatewayKey.load(path)


class HubEndpoints:
    """The two enrollment endpoints, answering as the hub would."""

    def __init__(self, hub: FakeHub, signer: FakeHub | None = None) -> None:
        self.hub = hub
        self.signer = signer or hub
        self.nonce = "n0nce"
        self.calls: list[str] = []

    def post(self, url: str, body: dict[str, object]) -> dict[str, object]:
        self.calls.append(url)
        if url.endswith("/challenge"):
            return {"nonce": self.nonce}
        pub = base64.b64decode(str(body["public_key"]))
        answer = self.signer.sign(
            signed.CONTEXT_ENROLLED,
            {
                "gateway": "marina-001",
                "group": "marina",
                "key": pub,
                "nonce": body["nonce"],
                "broker": "mqtt://hub:1883",
                "username": "marina-001",
                "password": "secret",
                "keys": self.hub.public_keys(),
            },
        )
        config = self.hub.config("marina-001", 1, {})
        return {
            "answer": base64.b64encode(answer).decode(),
            "config": base64.b64encode(config).decode(),
        }


def token_for(hub: FakeHub) -> str:
    return f"et1.abcd0123.s3cret.{next(iter(hub.public_keys()))}"


def test_enroll(tmp_path: Path) -> None:
    hub = FakeHub()
    endpoints = HubEndpoints(hub)
    result = enroll("hub:8080", token_for(hub), tmp_path, post=endpoints.post)
    assert result.identity.gateway_id == "marina-001"
    assert endpoints.calls == [
        "http://hub:8080/api/v1/enroll/challenge",
        "http://hub:8080/api/v1/enroll",
    ]
    with GatewayState(tmp_path) as s:
        assert s.identity() == result.identity
        assert s.trusted_keys() == hub.public_keys()
        assert s.config().pending is not None
        assert GatewayKey.load(s.key_path).key_id == result.identity.key_id
    with pytest.raises(EnrollError, match="already enrolled"):
        enroll("hub:8080", token_for(hub), tmp_path, post=endpoints.post)
    again = enroll("hub:8080", token_for(hub), tmp_path, post=endpoints.post, force=True)
    assert again.identity.key_id != result.identity.key_id


def test_enroll_refuses_an_impostor_hub(tmp_path: Path) -> None:
    hub, impostor = FakeHub(), FakeHub()
    with pytest.raises(EnrollError, match="wrong hub"):
        enroll("hub", token_for(hub), tmp_path, post=HubEndpoints(impostor).post)
    # holds the real key list but cannot sign with the real key
    with pytest.raises(EnrollError, match="not signed by the hub"):
        enroll("hub", token_for(hub), tmp_path, post=HubEndpoints(hub, impostor).post)
    with pytest.raises(EnrollError, match="another hub"):
        enroll(
            "hub", token_for(hub), tmp_path, hub_fingerprint="0" * 16, post=HubEndpoints(hub).post
        )
    with GatewayState(tmp_path) as s:
        assert s.identity() is None  # nothing kept


def test_enroll_refuses_bad_tokens_and_reports_hub_errors(tmp_path: Path) -> None:
    with pytest.raises(EnrollError, match="not an enrollment token"):
        enroll("hub", "hello", tmp_path, post=HubEndpoints(FakeHub()).post)

    def refuse(url: str, body: dict[str, object]) -> dict[str, object]:
        raise EnrollError("the hub refused: this enrollment token has expired")

    with pytest.raises(EnrollError, match="expired"):
        enroll("hub", token_for(FakeHub()), tmp_path, post=refuse)
