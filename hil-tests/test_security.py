"""Fleet security from the outside: a real `estran hub run` (`--broker-access fleet`),
gateways enrolled with `estran edge enroll` and run with `estran edge run`, attackers
speaking real MQTT with the credentials they stole.

What each attacker holds is a file the docs name (docs/security.md, "Secrets at rest"): a
gateway's `DATA/credentials` (`username:password`), the hub's broker password
`<data>/fleet/secrets/hub-mqtt` (the `estran-hub` identity, docs/fleet.md). What they send is
encoded with `protocols` (the wire format and signed documents, as any peer would) and, for a
forgery, signed with a key of their own (`cryptography`'s Ed25519). What the gateway did is
read where an admin reads it: the hub's API (`/api/v1/fleet/gateways`, `/api/v1/fleet/audit`,
`/api/v1/readings`).

The broker isolation runs on both brokers: the embedded one and a Mosquitto on the `passwd`
and `acl` the hub writes (`--mosquitto-dir`, SIGHUP on every change); the signed documents and
enrollment do not depend on the broker and run on the embedded one. The same attacks, in one
process and on both brokers, with the gateway's internals in view:
estran/tests/test_fleet_security.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from estran.rig import (
    EnrolledGateway,
    HubProcess,
    Rig,
    enroll_gateway,
    estran_run,
    messages_within,
    until,
)
from protocols import block, signed, wire
from protocols.reading import Reading

pytestmark = pytest.mark.needs("broker.embedded", "database", "hub", "gateway")

HUB_USER = "estran-hub"  # the hub's broker identity (docs/fleet.md, "Broker access")
WAIT_S = 30.0  # a report or a reading through a loaded machine


# -- the site: a hub and its enrolled gateways ---------------------------------------------------


@dataclass
class Site:
    rig: Rig
    hub: HubProcess
    tmp: Path

    @property
    def mqtt_port(self) -> int:
        return self.hub.broker.port

    async def token(self, ttl_s: float = 600) -> str:
        return await self.hub.enrollment_token("marina", ttl_s)

    async def enroll(self, name: str, token: str | None = None) -> EnrolledGateway:
        """A gateway enrolled, once its broker account is live: at once on the embedded
        broker, after the hub's reload of Mosquitto ("within a second", docs/security.md)."""
        gw = await enroll_gateway(self.hub, self.tmp, name, group="marina", token=token)

        async def accepted() -> bool:
            try:
                async with self.client(f"probe-{name}", gw.id, gw.password):
                    return True
            except aiomqtt.MqttError:
                return False

        await until(f"{gw.id}'s broker account is live", accepted, 10)
        return gw

    async def gateways(self) -> dict[str, Mapping[str, object]]:
        status, rows = await self.hub.send("GET", "/api/v1/fleet/gateways")
        assert status == 200 and isinstance(rows, list), rows
        return {str(r["id"]): r for r in rows}

    async def audit(self) -> list[Mapping[str, object]]:
        status, rows = await self.hub.send("GET", "/api/v1/fleet/audit?limit=1000")
        assert status == 200 and isinstance(rows, list), rows
        return rows

    def hub_password(self) -> str:
        return (self.hub.data / "fleet" / "secrets" / "hub-mqtt").read_text().strip()

    def client(self, client_id: str, user: str | None, password: str | None) -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1",
            self.mqtt_port,
            identifier=client_id,
            username=user,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V311,  # the embedded broker speaks 3.1.1
            timeout=5,
        )


@contextlib.asynccontextmanager
async def site(
    rig: Rig, tmp: Path, broker_capability: str = "broker.embedded"
) -> AsyncIterator[Site]:
    """The hub with fleet access on the rig's broker: the embedded one, or a Mosquitto the
    rig restarts on the `passwd` and `acl` the hub keeps (`--mosquitto-dir`)."""
    broker = await rig.broker(broker_capability)
    hub = await rig.hub(
        broker=broker_capability, access="fleet", extra=["--public-broker", broker.url]
    )
    await hub.fleet("group", "create", "marina")
    yield Site(rig, hub, tmp)


async def enroll_cli(s: Site, name: str, token: str, *extra: str) -> tuple[int, str]:
    """`estran edge enroll` as the technician types it on gateway `name`."""
    return await EnrolledGateway.enroll(s.hub.url, token, s.tmp, name, *extra)


def data_message(sensor: str, first_seq: int, n: int = 3) -> bytes:
    """A valid data message of `n` readings of `sensor` (protocols: block, wire)."""
    now = int(time.time() * 1000)
    readings = [Reading(sensor, "temperature", "Cel", 20.0 + i, now + i) for i in range(n)]
    blk = block.BlockEncoder().encode(first_seq, readings)
    batch = wire.DataBatch(1, 1, first_seq, first_seq + n - 1, n, [blk])
    return wire.encode_data(batch)


class RogueKey:
    """An Ed25519 key that is not the hub's: what a forger signs with."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.public = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, context: bytes, document: dict[str, object]) -> bytes:
        payload = signed.encode_payload(document)
        sig = self.key.sign(signed.signing_input(context, payload))
        return signed.encode_signed(signed.Signed(payload, [(signed.key_id(self.public), sig)]))


def resigned_body(payload: bytes, kind: int, change: Mapping[str, object]) -> bytes:
    """A captured config or cmd message with its document changed and the hub's signatures
    kept as they were: a tampered message."""
    env = wire.decode_envelope(payload, kind)
    doc = signed.decode_signed(env.body)
    tampered = signed.encode_payload({**doc.document(), **change})
    return wire.encode_envelope(
        wire.Envelope(kind, signed.encode_signed(signed.Signed(tampered, doc.signatures)))
    )


# -- enrollment ------------------------------------------------------------------------------------


async def test_enrollment_refuses_bad_used_expired_and_foreign_tokens(
    rig: Rig, tmp_path: Path
) -> None:
    other = tmp_path / "other-hub"  # another hub's data directory (`estran fleet` on it)
    other.mkdir()

    async def foreign_token() -> str:
        assert (await estran_run("fleet", "--data", str(other), "group", "create", "marina"))[
            0
        ] == 0
        code, out = await estran_run(
            "fleet", "--data", str(other), "token", "create", "--group", "marina", "--json"
        )
        assert code == 0, out
        return str(json.loads(out)["token"])

    async with site(rig, tmp_path) as s:
        token, short, fresh = await s.token(), await s.token(ttl_s=1), await s.token()
        started = time.monotonic()
        first, foreign = await asyncio.gather(s.enroll("first", token), foreign_token())
        await asyncio.sleep(max(0.0, 1.5 - (time.monotonic() - started)))  # `short` expired
        prefix, token_id, secret, hub_key = token.split(".")
        garbage = ".".join([prefix, token_id, secret[::-1], hub_key])  # a wrong secret
        attempts = {  # the technician's mistakes and an intruder's guesses, all at once
            "used": (("again", token), "used already"),
            "garbage": (("garbage", garbage), "the hub refused"),
            "not a token": (("nottoken", "hello"), "not an enrollment"),
            "expired": (("late", short), "expired"),
            # issued by another hub: this one does not know it
            "another hub's": (("foreign", foreign), "unknown enrollment token"),
            "wrong fingerprint": (
                ("pinned", fresh, "--hub-fingerprint", "0" * 16),
                "another hub",
            ),
        }
        answers = await asyncio.gather(*(enroll_cli(s, *args) for args, _ in attempts.values()))
        refusals = {
            name: (answer, said)
            for (name, (_, said)), answer in zip(attempts.items(), answers, strict=True)
        }
        for name, ((code, out), said) in refusals.items():
            assert code != 0 and said in out and "Traceback" not in out, (name, out)
        for name in ("again", "garbage", "nottoken", "late", "foreign", "pinned"):
            assert not (tmp_path / name / "data" / "credentials").exists(), name
        # nothing was enrolled but the first; the fresh token is still good for one gateway
        assert list(await s.gateways()) == [first.id]
        second = await s.enroll("second", fresh)
        assert sorted(await s.gateways()) == sorted([first.id, second.id])
        # a hub that is not the one the token names (someone in between, a wrong address):
        # its answer is not signed by the named key, and the gateway keeps nothing of it
        prefix, token_id, secret, _ = (await s.token()).split(".")
        spoofed = ".".join([prefix, token_id, secret, foreign.split(".")[3]])
        code, out = await enroll_cli(s, "spoofed", spoofed)
        assert code != 0 and "wrong hub" in out and "Traceback" not in out, out
        assert not (tmp_path / "spoofed" / "data" / "credentials").exists()


# -- the broker: one gateway's credentials reach nothing of another's -------------------------------


@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("broker.embedded", id="embedded"),
        pytest.param("broker", id="mosquitto", marks=pytest.mark.needs("broker")),
    ],
)
async def test_another_gateways_credentials_reach_nothing_of_this_gateway(
    rig: Rig, tmp_path: Path, broker: str
) -> None:
    """A stolen gateway A's credentials against gateway B: no subscription to B's config or
    commands delivers anything (retained, live, wildcards; the embedded broker refuses the
    subscription, Mosquitto grants it and delivers nothing), a reading published under B's
    data topic never reaches the hub, while A's own readings do (the check can fail); once A
    is revoked it cannot connect. On both brokers: the embedded one and Mosquitto on the
    files the hub generates."""
    async with site(rig, tmp_path, broker) as s:
        a = await s.enroll("a")
        b = await s.enroll("b")
        for user, password in ((None, None), (b.id, a.password), (HUB_USER, b.password)):
            with pytest.raises(aiomqtt.MqttError):  # anonymous, or a password not its own
                async with s.client("intruder", user, password):
                    pass
        async with (
            s.client("spy-a", a.id, a.password) as spy,
            s.client("watch-b", b.id, b.password) as owner,
        ):
            for flt in (
                wire.topic(b.id, "config"), wire.topic(b.id, "cmd"), wire.topic(b.id, "ack"),
                "estran/v1/gw/+/config", "estran/v1/gw/+/cmd", "estran/#", "#",
            ):  # fmt: skip
                with contextlib.suppress(aiomqtt.MqttError):  # refused: SUBACK 0x80
                    await spy.subscribe(flt, qos=1)
            await owner.subscribe(wire.topic(b.id, "config"), qos=1)
            await owner.subscribe(wire.topic(b.id, "cmd"), qos=1)
            status, sent = await s.hub.send(
                "POST", f"/api/v1/fleet/gateways/{b.id}/commands", {"name": "status"}
            )
            assert status == 200, sent
            # B's own credentials get its retained configuration and the live command...
            got = await messages_within(owner, 3.0)
            kinds = sorted(wire.parse_topic(str(m.topic))[1] for m in got)
            assert kinds == ["cmd", "config"], kinds
            # ...A's get nothing of B (nor of anyone)
            stolen = await messages_within(spy, 1.0)
            assert not [str(m.topic) for m in stolen if a.id not in str(m.topic)], stolen
            # readings: under B's prefix dropped, under A's own stored
            await spy.publish(wire.topic(b.id, "data"), data_message("forged-by-a", 1), qos=1)
            await spy.publish(wire.topic(a.id, "data"), data_message("own-of-a", 1), qos=1)

            async def own_stored() -> object:
                status, page = await s.hub.send("GET", "/api/v1/readings?sensor=own-of-a")
                return status == 200 and isinstance(page, dict) and page["readings"]

            rows = await until("A's own readings stored", own_stored, WAIT_S)
            assert isinstance(rows, list) and {r["gateway"] for r in rows} == {a.id}
            status, page = await s.hub.send("GET", "/api/v1/readings?sensor=forged-by-a")
            assert status in (200, 404) and not (isinstance(page, dict) and page["readings"])
        status, _ = await s.hub.send("POST", f"/api/v1/fleet/gateways/{a.id}/revoke")
        assert status == 200

        async def refused() -> bool:
            try:
                async with s.client("spy-a-again", a.id, a.password):
                    return False
            except aiomqtt.MqttError:
                return True

        await until("A refused after revocation", refused, 10)
        async with s.client("watch-b-again", b.id, b.password):
            pass  # B is untouched


# -- signed documents: forged, tampered, replayed, misdirected --------------------------------------


async def test_forged_tampered_replayed_and_misdirected_documents_are_refused(
    rig: Rig, tmp_path: Path
) -> None:
    """With the hub's own broker password (the strongest broker identity) an attacker can
    publish on any gateway's config and cmd topics; the running gateway still refuses every
    document the hub did not sign for it, reports each refusal (seen in the hub's API), and
    keeps applying what the hub does sign."""
    async with site(rig, tmp_path) as s:
        a = await s.enroll("a")
        b = await s.enroll("b")
        await b.run()  # `estran edge run`: the daemon and its fleet link
        try:
            await run_attacks(s, a, b)
            assert b.child.alive(), b.child.tail()
        finally:
            await b.stop()


async def run_attacks(s: Site, a: EnrolledGateway, b: EnrolledGateway) -> None:
    async def applied() -> object:
        row = (await s.gateways())[b.id]
        return row["outcome"] == "applied" and row["applied_version"] == row["desired_version"]

    await until("B runs its first configuration", applied, 60)

    async def cmd_reports() -> list[Mapping[str, object]]:
        return [e for e in await s.audit() if e["action"] == "report.cmd" and e["actor"] == b.id]

    async with s.client("estran-hub-attacker", HUB_USER, s.hub_password()) as rogue:
        for kind in ("config", "cmd"):
            await rogue.subscribe(wire.topic(a.id, kind), qos=1)
            await rogue.subscribe(wire.topic(b.id, kind), qos=1)
        # captured: A's retained configuration, a command the hub really sent to A and one to B
        for gw in (a, b):
            status, sent = await s.hub.send(
                "POST", f"/api/v1/fleet/gateways/{gw.id}/commands", {"name": "status"}
            )
            assert status == 200, sent
        captured: dict[tuple[str, str], bytes] = {}
        deadline = time.monotonic() + WAIT_S
        while len(captured) < 4 and time.monotonic() < deadline:
            for m in await messages_within(rogue, 1.0):
                gw_id, kind = wire.parse_topic(str(m.topic))
                assert isinstance(m.payload, bytes)
                captured[(gw_id, kind)] = m.payload
        assert set(captured) == {(g.id, k) for g in (a, b) for k in ("config", "cmd")}
        await until("B ran the hub's command", cmd_reports, WAIT_S)
        (done,) = await cmd_reports()
        assert done["outcome"] == "done", done

        # -- commands
        rogue_key = RogueKey()
        seq = signed.decode_signed(
            wire.decode_envelope(captured[(b.id, "cmd")], wire.CMD).body
        ).document()["seq"]
        assert isinstance(seq, int)
        now = int(time.time() * 1000)
        forged_cmd = {
            "kind": "cmd", "gateway": b.id, "seq": seq + 10, "issued_ms": now,
            "expires_ms": now + 600_000, "name": "reboot", "args": {},
        }  # fmt: skip
        commands = {
            "replayed": (captured[(b.id, "cmd")], "(replay)"),
            "tampered": (
                resigned_body(
                    captured[(b.id, "cmd")], wire.CMD, {"seq": seq + 5, "name": "reboot"}
                ),
                "bad signature",
            ),
            "forged": (
                wire.encode_envelope(
                    wire.Envelope(wire.CMD, rogue_key.sign(signed.CONTEXT_CMD, forged_cmd))
                ),
                "no pinned hub key",
            ),
            "another gateway's": (captured[(a.id, "cmd")], "another gateway"),
            "not signed": (
                wire.encode_envelope(wire.Envelope.of(wire.CMD, forged_cmd)),
                "unsigned",
            ),
        }
        for name, (payload, reason) in commands.items():
            before = len(await cmd_reports())
            await rogue.publish(wire.topic(b.id, "cmd"), payload, qos=1)

            async def reported(before: int = before) -> list[Mapping[str, object]]:
                reports = await cmd_reports()
                return reports[before:] if len(reports) > before else []

            new = await until(f"B reports the {name} command", reported, WAIT_S)
            assert isinstance(new, list)
            assert [r["outcome"] for r in new] == ["refused"], (name, new)
            assert reason in str(new[0]["reason"]), (name, new)

        # -- configurations
        row = (await s.gateways())[b.id]
        running = row["applied_version"]
        assert isinstance(running, int)
        forged_config = {
            "kind": "config", "gateway": b.id, "version": running + 100, "issued_ms": now,
            "config": {"uplink": {"backlog_rate": 1.0}},
            "keys": {signed.key_id(rogue_key.public): rogue_key.public},
        }  # fmt: skip
        configs = {
            "forged": (
                wire.encode_envelope(
                    wire.Envelope(wire.CONFIG, rogue_key.sign(signed.CONTEXT_CONFIG, forged_config))
                ),
                "no pinned hub key",
            ),
            "tampered": (
                resigned_body(captured[(b.id, "config")], wire.CONFIG, {"version": running + 50}),
                "bad signature",
            ),
            "another gateway's": (captured[(a.id, "config")], "meant for gateway"),
        }
        for name, (payload, reason) in configs.items():
            await rogue.publish(wire.topic(b.id, "config"), payload, qos=1)

            async def refused(reason: str = reason) -> object:
                row = (await s.gateways())[b.id]
                return row["outcome"] == "refused" and reason in str(row["reason"])

            await until(f"B refuses the {name} configuration", refused, WAIT_S)
            assert (await s.gateways())[b.id]["applied_version"] == running, name

    # what the hub signs still applies: the gateway was not knocked off its configuration
    status, changed = await s.hub.send(
        "PUT", f"/api/v1/fleet/config/gateway?name={b.id}", {"uplink": {"backlog_rate": 700.0}}
    )
    assert status == 200, changed
    await until("B applies the hub's next configuration", applied, 60)
    status, config = await s.hub.send("GET", f"/api/v1/fleet/gateways/{b.id}/config")
    assert status == 200 and isinstance(config, dict)
    assert config["applied"] == {"uplink": {"backlog_rate": 700.0}} and not config["drift"]
    refusals = [
        e for e in await s.audit()
        if e["action"] == "report.config" and e["actor"] == b.id and e["outcome"] == "refused"
    ]  # fmt: skip
    assert len(refusals) == len(configs), refusals
