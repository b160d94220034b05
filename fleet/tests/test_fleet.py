"""The fleet domain: tokens, enrollment, registry, layers, schema, signing, ACL rules."""

from __future__ import annotations

import contextlib
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fleet
from fleet import ConfigRejected, Fleet, TokenRefused
from protocols import signed, wire


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def f(tmp_path: Path, clock: Clock) -> Fleet:
    reg = Fleet(tmp_path, clock=clock)
    reg.create_group("marina", "alice")
    return reg


def enroll(f: Fleet, token: str, key: Ed25519PrivateKey | None = None) -> fleet.Enrollment:
    key = key or Ed25519PrivateKey.generate()
    pub = fleet.raw_public(key)
    nonce = f.challenge(token)
    tid = fleet.parse_token(token)[0]
    proof = key.sign(
        signed.signing_input(signed.CONTEXT_ENROLL, fleet.enroll_proof_payload(tid, nonce, pub))
    )
    return f.enroll(token, pub, nonce, proof, "mqtt://hub:1883")


def config_doc(message: bytes) -> dict[str, object]:
    env = wire.decode_envelope(message, wire.CONFIG)
    return signed.decode_signed(env.body).document()


# -- tokens and enrollment --------------------------------------------------------------------


def test_enrollment_gives_id_credentials_keys_and_signed_config(f: Fleet) -> None:
    token = f.create_token("marina", 3600, "alice").token
    assert token.startswith("et1.") and token.endswith("." + f.keys.ensure())
    result = enroll(f, token)
    assert result.gateway_id == "marina-001"
    answer = signed.decode_signed(result.answer)
    doc = answer.document()
    hub_keys = f.keys.public_keys()
    kid, sig = answer.signatures[0]
    assert fleet.verify(hub_keys[kid], signed.CONTEXT_ENROLLED, answer.payload, sig)
    assert doc["gateway"] == "marina-001" and doc["username"] == "marina-001"
    assert doc["keys"] == hub_keys
    account = next(a for a in f.broker_accounts() if a.username == "marina-001")
    assert fleet.verify_password(str(doc["password"]), account.password_hash)
    cfg = config_doc(result.config)
    assert cfg["gateway"] == "marina-001" and cfg["kind"] == "config"
    assert [g.id for g in f.gateways()] == ["marina-001"]
    assert f.gateways()[0].drift  # nothing reported yet
    # the token is stored hashed
    raw = (f.directory / "fleet.sqlite").read_bytes()
    assert fleet.parse_token(token)[1].encode() not in raw


def test_token_is_one_use(f: Fleet) -> None:
    token = f.create_token("marina", 3600, "alice").token
    enroll(f, token)
    with pytest.raises(TokenRefused) as e:
        enroll(f, token)
    assert e.value.reason == "used"
    assert "used already" in str(e.value)


def test_token_expires(f: Fleet, clock: Clock) -> None:
    token = f.create_token("marina", 60, "alice").token
    clock.t += 61
    with pytest.raises(TokenRefused) as e:
        enroll(f, token)
    assert e.value.reason == "expired"


@pytest.mark.parametrize("mangle", ["secret", "id", "garbage"])
def test_unknown_token(f: Fleet, mangle: str) -> None:
    token = f.create_token("marina", 60, "alice").token
    prefix, tid, secret, hub = token.split(".")
    bad = {
        "secret": f"{prefix}.{tid}.x{secret[1:]}.{hub}",
        "id": f"{prefix}.00000000.{secret}.{hub}",
        "garbage": "hello",
    }[mangle]
    with pytest.raises(TokenRefused) as e:
        enroll(f, bad)
    assert e.value.reason == "unknown"


def test_proof_of_possession_required(f: Fleet) -> None:
    token = f.create_token("marina", 60, "alice").token
    key = Ed25519PrivateKey.generate()
    nonce = f.challenge(token)
    other = Ed25519PrivateKey.generate()
    tid = fleet.parse_token(token)[0]
    pub = fleet.raw_public(key)
    bad_proof = other.sign(
        signed.signing_input(signed.CONTEXT_ENROLL, fleet.enroll_proof_payload(tid, nonce, pub))
    )
    with pytest.raises(TokenRefused) as e:
        f.enroll(token, pub, nonce, bad_proof, "mqtt://hub")
    assert e.value.reason == "proof"
    with pytest.raises(TokenRefused):  # the nonce was used up
        f.enroll(token, pub, nonce, bad_proof, "mqtt://hub")
    enroll(f, token, key)  # the token itself is still good


def test_token_scoped_to_existing_group(f: Fleet) -> None:
    with pytest.raises(fleet.NotFound):
        f.create_token("nowhere", 60, "alice")
    f.create_group("parks", "alice")
    r = enroll(f, f.create_token("parks", 60, "alice").token)
    assert r.gateway_id == "parks-001"
    assert f.gateway("parks-001").group == "parks"


def test_revoke_removes_broker_account_and_clears_config(f: Fleet) -> None:
    gw = enroll(f, f.create_token("marina", 60, "alice").token).gateway_id
    rev = f.revision()
    f.revoke(gw, "alice")
    assert f.revision() > rev
    assert gw not in {a.username for a in f.broker_accounts()}
    assert f.gateway(gw).state == "revoked"
    last = f.pending()[-1]
    assert last.topic == wire.topic(gw, "config") and last.payload == b"" and last.retain
    with pytest.raises(fleet.Conflict):
        f.revoke(gw, "alice")


def test_secrets_are_private(f: Fleet, tmp_path: Path) -> None:
    f.hub_credentials()
    for path in [*(tmp_path / "fleet" / "keys").iterdir(), tmp_path / "fleet/secrets/hub-mqtt"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "fleet").stat().st_mode) == 0o700


def test_admin_credential_shown_once(f: Fleet) -> None:
    cred = f.ensure_admin()
    assert cred is not None and f.check_admin(cred)
    assert f.ensure_admin() is None
    assert not f.check_admin(cred + "x")


# -- layers and schema -------------------------------------------------------------------------


def test_merge_semantics() -> None:
    base = {"buffer": {"quota": "1 GiB", "policy": "drop_oldest"}, "serial": [{"path": "a"}]}
    over = {"buffer": {"quota": "2 GiB"}, "serial": [{"path": "b"}], "daemon": None}
    assert fleet.merge(base, over) == {
        "buffer": {"quota": "2 GiB", "policy": "drop_oldest"},
        "serial": [{"path": "b"}],
    }
    assert fleet.merge(base, {"buffer": None}) == {"serial": [{"path": "a"}]}
    assert fleet.effective([base, {"buffer": {"policy": None}}, {}])["buffer"] == {"quota": "1 GiB"}


def test_set_and_unset_path() -> None:
    layer = fleet.set_path({}, "buffer.quota", "1 GiB")
    assert layer == {"buffer": {"quota": "1 GiB"}}
    assert fleet.unset_path(layer, "buffer.quota") == {}
    assert fleet.unset_path(layer, "nothing.here") == layer


def test_schema_errors_name_the_field() -> None:
    issues = fleet.check_config(
        {
            "buffer": {"quota": "lots", "policy": "keep"},
            "uplink": {"broker": "mqtt://evil", "keepalive": 2},
            "serial": [{"baudrate": 9600}],
            "bufer": {},
        }
    )
    text = "\n".join(map(str, issues))
    assert "buffer.quota: must be a size" in text
    assert 'buffer.policy: must be one of "drop_oldest", "refuse_new"; got "keep"' in text
    assert "uplink.broker: cannot be set by the hub" in text
    assert "uplink.keepalive: must be 5..3600, got 2" in text
    assert "serial[0].path: required" in text
    assert "bufer: unknown field (did you mean 'buffer'?)" in text


def test_config_layers_versions_and_signatures(f: Fleet) -> None:
    a = enroll(f, f.create_token("marina", 60, "alice").token).gateway_id
    f.create_group("parks", "alice")
    b = enroll(f, f.create_token("parks", 60, "alice").token).gateway_id
    v_a, _ = f.desired(a)
    f.set_layer("fleet", None, {"buffer": {"quota": "1 GiB", "policy": "drop_oldest"}}, "alice")
    f.set_layer("group", "marina", {"buffer": {"quota": "2 GiB"}}, "bob")
    f.set_layer("gateway", a, {"buffer": {"policy": None}}, "bob")
    v2, doc = f.desired(a)
    assert v2 > v_a
    assert doc == {"buffer": {"quota": "2 GiB"}}
    assert f.desired(b)[1] == {"buffer": {"quota": "1 GiB", "policy": "drop_oldest"}}
    # setting the same layer again signs nothing new
    assert f.set_layer("gateway", a, {"buffer": {"policy": None}}, "bob") == []
    assert f.desired(a)[0] == v2
    # the published message is the latest, signed by the hub
    msg = f.desired_message(a)
    sd = signed.decode_signed(wire.decode_envelope(msg, wire.CONFIG).body)
    assert sd.document()["version"] == v2 and sd.document()["config"] == doc
    kid, sig = sd.signatures[0]
    assert fleet.verify(f.keys.public_keys()[kid], signed.CONTEXT_CONFIG, sd.payload, sig)
    # audit: who changed what
    entries = [(e.actor, e.action, e.target) for e in f.audit()]
    assert ("bob", "config.set", "group:marina") in entries
    changes = next(e for e in f.audit() if e.target == "group:marina").detail["changes"]
    assert changes == [["+", "buffer.quota", None, "2 GiB"]]


def test_invalid_config_is_refused_and_nothing_signed(f: Fleet) -> None:
    a = enroll(f, f.create_token("marina", 60, "alice").token).gateway_id
    v = f.desired(a)[0]
    with pytest.raises(ConfigRejected) as e:
        f.set_layer("group", "marina", {"buffer": {"commit_readings": 0}}, "alice")
    assert "buffer.commit_readings" in str(e.value)
    assert f.desired(a)[0] == v
    assert f.layer("group", "marina") == {}


def test_a_push_to_a_group_merges_each_gateway_of_it_with_its_own_layer(f: Fleet) -> None:
    """The push merges a group's document once for the gateways without a layer of their
    own, and apart for each that has one."""
    a, b, c = (enroll(f, f.create_token("marina", 60, "a").token).gateway_id for _ in range(3))
    f.set_layer("gateway", b, {"buffer": {"quota": "3 GiB"}}, "alice")
    changed = f.set_layer(
        "fleet", None, {"buffer": {"quota": "1 GiB", "policy": "refuse_new"}}, "x"
    )
    assert sorted(g.id for g in changed) == sorted([a, b, c])
    assert (
        f.desired(a)[1] == f.desired(c)[1] == {"buffer": {"quota": "1 GiB", "policy": "refuse_new"}}
    )
    assert f.desired(b)[1] == {"buffer": {"quota": "3 GiB", "policy": "refuse_new"}}
    assert f.effective(gateway=b) == f.desired(b)[1]


def test_reports_and_drift(f: Fleet) -> None:
    a = enroll(f, f.create_token("marina", 60, "alice").token).gateway_id
    v = f.desired(a)[0]
    f.record_report(a, signed.report("config", signed.APPLIED, "", v, v, 1))
    g = f.gateway(a)
    assert not g.drift and g.outcome == "applied"
    f.set_layer("gateway", a, {"daemon": {"queue_size": 4096}}, "alice")
    assert f.gateway(a).drift
    v2 = f.desired(a)[0]
    f.record_report(a, signed.report("config", signed.ROLLED_BACK, "serial[0] down", v2, v, 2))
    g = f.gateway(a)
    assert g.drift and g.outcome == "rolled_back" and g.reason == "serial[0] down"
    assert f.audit()[-1].detail["outcome"] == "rolled_back"


def test_broker_account_of_one_gateway(f: Fleet) -> None:
    a = enroll(f, f.create_token("marina", 60, "a").token).gateway_id
    (account,) = [x for x in f.broker_accounts() if x.username == a]
    assert f.broker_account(a) == account
    f.revoke(a, "alice")
    assert f.broker_account(a) is None
    assert f.broker_account("nobody") is None


def test_reports_of_many_gateways_in_one_transaction(f: Fleet) -> None:
    """`record_reports`: every good report recorded, each bad one (malformed, or from a
    revoked gateway) returned with its error and the rest recorded all the same."""
    from protocols.errors import ProtocolError

    a, b, c = (enroll(f, f.create_token("marina", 60, "a").token).gateway_id for _ in range(3))
    f.revoke(c, "alice")
    va, vb = f.desired(a)[0], f.desired(b)[0]
    revision = f.revision()
    refused = f.record_reports(
        [
            (a, signed.report("config", signed.APPLIED, "", va, va, 1)),
            (b, {"kind": "config"}),  # malformed
            (c, signed.report("config", signed.APPLIED, "", 1, 1, 1)),  # revoked
            (b, signed.report("config", signed.ROLLED_BACK, "gate", vb, None, 2)),
        ]
    )
    assert [gw for gw, _ in refused] == [b, c]
    assert isinstance(refused[0][1], ProtocolError)
    assert isinstance(refused[1][1], fleet.NotFound)
    assert f.gateway(a).outcome == "applied" and f.gateway(a).applied_version == va
    assert f.gateway(b).outcome == "rolled_back" and f.gateway(b).reason == "gate"
    assert f.revision() == revision + 1  # one transaction
    assert f.record_reports([]) == []


def test_key_rotation_resigns_for_every_gateway(f: Fleet) -> None:
    a = enroll(f, f.create_token("marina", 60, "alice").token).gateway_id
    old = f.keys.ensure()
    new = f.add_key("alice")
    sd = signed.decode_signed(wire.decode_envelope(f.desired_message(a), wire.CONFIG).body)
    assert {k for k, _ in sd.signatures} == {old, new}
    assert set(sd.document()["keys"]) == {old, new}  # type: ignore[arg-type]
    f.retire_key(old, "alice")
    sd = signed.decode_signed(wire.decode_envelope(f.desired_message(a), wire.CONFIG).body)
    assert [k for k, _ in sd.signatures] == [new]
    with pytest.raises(fleet.Conflict):
        f.retire_key(new, "alice")


def test_signed_commands_have_growing_seq(f: Fleet) -> None:
    a = enroll(f, f.create_token("marina", 60, "alice").token).gateway_id
    assert f.command(a, "reboot", "alice") == 1
    assert f.command(a, "rescan", "alice", {"bus": "ble"}) == 2
    out = f.pending()[-1]
    assert out.topic == wire.topic(a, "cmd") and not out.retain
    doc = signed.decode_signed(wire.decode_envelope(out.payload, wire.CMD).body).document()
    assert doc["name"] == "rescan" and doc["seq"] == 2 and doc["args"] == {"bus": "ble"}
    f.mark_published(out.id)
    assert out.id not in {p.id for p in f.pending()}
    assert f.command(a, "flush", "alice") == 3
    with pytest.raises(fleet.FleetError, match=r"unknown command 'rebot'.*reboot"):
        f.command(a, "rebot", "alice")  # a typo is never signed nor sent
    assert f.command(a, "status", "alice") == 4


# -- broker access -----------------------------------------------------------------------------


def test_acl_rules() -> None:
    assert fleet.gateway_may("a", "publish", "estran/v1/gw/a/data")
    assert not fleet.gateway_may("a", "publish", "estran/v1/gw/b/data")
    assert not fleet.gateway_may("a", "publish", "estran/v1/gw/a/config")
    assert fleet.gateway_may("a", "subscribe", "estran/v1/gw/a/config")
    assert not fleet.gateway_may("a", "subscribe", "estran/v1/gw/b/config")
    assert not fleet.gateway_may("a", "subscribe", "estran/v1/gw/+/config")
    assert not fleet.gateway_may("a", "subscribe", "#")
    assert fleet.hub_may("subscribe", "$share/ingest/estran/v1/gw/+/data")
    assert not fleet.hub_may("publish", "other/topic")


def test_broker_access_snapshot(f: Fleet) -> None:
    r = enroll(f, f.create_token("marina", 60, "alice").token)
    password = str(signed.decode_signed(r.answer).document()["password"])
    access = fleet.BrokerAccess(f.broker_accounts())
    assert access.authenticate(r.gateway_id, password)
    assert not access.authenticate(r.gateway_id, password + "x")
    assert not access.authenticate(None, None)
    assert not access.authenticate("nobody", password)
    assert access.allowed(r.gateway_id, "publish", wire.topic(r.gateway_id, "data"))
    hub_user, hub_pw = f.hub_credentials()
    access = fleet.BrokerAccess(f.broker_accounts())
    assert access.authenticate(hub_user, hub_pw)
    assert access.allowed(hub_user, "subscribe", "estran/v1/gw/+/data")
    f.revoke(r.gateway_id, "alice")
    access = fleet.BrokerAccess(f.broker_accounts())
    assert not access.authenticate(r.gateway_id, password)
    assert not access.allowed(r.gateway_id, "publish", wire.topic(r.gateway_id, "data"))


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="no mosquitto_passwd")
def test_password_hash_is_mosquitto_compatible(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "u", "s3cret"], check=True)
    stored = path.read_text().strip().split(":", 1)[1]
    assert fleet.verify_password("s3cret", stored)
    assert not fleet.verify_password("other", stored)
    assert fleet.verify_password("s3cret", fleet.hash_password("s3cret"))
    assert not fleet.verify_password("s3cret", "$6$nonsense")


def test_mosquitto_files(tmp_path: Path) -> None:
    accounts = [
        fleet.BrokerAccount("estran-hub", fleet.hash_password("h"), "hub"),
        fleet.BrokerAccount("gw-1", fleet.hash_password("g"), "gateway"),
    ]
    assert fleet.write_mosquitto_files(tmp_path, accounts)
    assert not fleet.write_mosquitto_files(tmp_path, accounts)
    acl = (tmp_path / "acl").read_text()
    assert "user gw-1\ntopic write estran/v1/gw/gw-1/data" in acl
    assert "topic read estran/v1/gw/gw-1/config" in acl
    assert (tmp_path / "passwd").read_text().startswith("estran-hub:$7$")
    assert stat.S_IMODE((tmp_path / "passwd").stat().st_mode) == 0o640


def test_demo_tls_ca(tmp_path: Path) -> None:
    from cryptography import x509

    files = fleet.init_tls(tmp_path / "tls", ["hub.example", "192.0.2.10"])
    ca = files.ca_cert.read_bytes()
    cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["hub.example"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.10"]
    assert stat.S_IMODE(files.server_key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls" / "ca.key").stat().st_mode) == 0o600
    again = fleet.init_tls(tmp_path / "tls", ["other.example"])
    assert again.ca_cert.read_bytes() == ca  # the CA is kept, the server certificate is new
    assert len(again.ca_fingerprint) == 64
    assert fleet.tls_files(tmp_path / "nowhere") is None


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=4),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=6)
        ),
        max_leaves=12,
    )
)
def test_hostile_reports_only_raise_fleet_or_protocol_errors(f: Fleet, doc: object) -> None:
    from protocols.errors import ProtocolError

    gw = (
        "marina-001"
        if f.gateways()
        else enroll(f, f.create_token("marina", 60, "a").token).gateway_id
    )
    with contextlib.suppress(fleet.FleetError, ProtocolError):
        f.record_report(gw, doc)


def test_the_outbox_finds_what_is_pending_without_reading_its_history(f: Fleet) -> None:
    """The outbox keeps a day of published messages; queueing a retained message deletes
    the older unpublished one of its topic, and the publisher asks for what is pending.
    Without an index each was a scan of that history: a push to 2,000 gateways over a
    history of 20,000 messages took 10 CPU seconds to queue (0.1 s with the index)."""
    plans = {
        sql: " ".join(str(r[-1]) for r in f._db.execute("EXPLAIN QUERY PLAN " + sql, args))
        for sql, args in (
            ("DELETE FROM outbox WHERE topic = ? AND published_ms IS NULL", ("t",)),
            (
                "SELECT id, topic, payload, retain FROM outbox WHERE published_ms IS NULL"
                " ORDER BY id LIMIT ?",
                (256,),
            ),
            ("DELETE FROM outbox WHERE published_ms < ?", (0,)),
        )
    }
    for sql, plan in plans.items():
        assert "USING INDEX" in plan, (sql, plan)
        assert "TEMP B-TREE" not in plan, (sql, plan)
