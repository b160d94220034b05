"""The configuration transaction: verification, refusals, rollback, reports, commands."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config_apply import ConfigApplier, report_message
from edge.identity import ConfigState, GatewayState
from edge.tests.support.hub import FakeHub
from protocols import cbor, signed, wire

GW = "marina-001"


class Target:
    """Records what the transaction asks; fails on demand."""

    def __init__(self) -> None:
        self.applied: list[tuple[dict[str, object], frozenset[str]]] = []
        self.unhealthy: str | None = None
        self.fail_apply = False
        self.fail_rollback = False

    async def apply(self, config: Mapping[str, object], changed: frozenset[str]) -> None:
        if self.fail_apply or (self.fail_rollback and self.applied):
            self.applied.append((dict(config), changed))
            raise RuntimeError("serial[0]: /dev/ttyUSB9 does not exist")
        self.applied.append((dict(config), changed))

    async def health(self, timeout: float) -> str | None:
        return self.unhealthy


@pytest.fixture
def hub() -> FakeHub:
    return FakeHub()


@pytest.fixture
def state(tmp_path: Path, hub: FakeHub) -> GatewayState:
    s = GatewayState(tmp_path)
    s.set_trusted_keys(hub.public_keys())
    return s


@pytest.fixture
def target() -> Target:
    return Target()


@pytest.fixture
def applier(state: GatewayState, target: Target) -> ConfigApplier:
    return ConfigApplier(state, target, GW)


SERIAL = {"serial": [{"path": "/dev/ttyUSB0", "protocol": "tic"}]}


async def test_applies_only_what_changed(
    applier: ConfigApplier, hub: FakeHub, target: Target, state: GatewayState
) -> None:
    out = await applier.handle_config(hub.config(GW, 1, {"buffer": {"quota": "1 GiB"}}))
    assert out is not None and out.outcome == signed.APPLIED and out.applied_version == 1
    out = await applier.handle_config(hub.config(GW, 2, {"buffer": {"quota": "1 GiB"}, **SERIAL}))
    assert out is not None and out.outcome == signed.APPLIED
    assert target.applied[-1][1] == frozenset({"serial"})  # the buffer section is untouched
    cs = state.config()
    assert cs.current_version == cs.last_good_version == cs.seen_version == 2
    # the report is a wire message the hub can read
    env = wire.decode_envelope(report_message(out), wire.REPORT)
    assert signed.check_report(env.value())["outcome"] == "applied"


async def test_retained_copy_is_ignored(applier: ConfigApplier, hub: FakeHub) -> None:
    msg = hub.config(GW, 1, SERIAL)
    assert await applier.handle_config(msg) is not None
    assert await applier.handle_config(msg) is None
    assert await applier.handle_config(b"") is None


async def test_older_config_is_refused_as_replay(
    applier: ConfigApplier, hub: FakeHub, state: GatewayState
) -> None:
    old = hub.config(GW, 1, {})
    await applier.handle_config(old)
    await applier.handle_config(hub.config(GW, 2, SERIAL))
    out = await applier.handle_config(old)
    assert out is not None and out.outcome == signed.REFUSED
    assert "not newer" in out.reason and out.version == 1 and out.applied_version == 2
    assert state.config().current_version == 2


async def test_unsigned_and_garbage_refused(applier: ConfigApplier, hub: FakeHub) -> None:
    unsigned = wire.encode_envelope(
        wire.Envelope.of(wire.CONFIG, {"gateway": GW, "version": 9, "config": {}})
    )
    for msg in (unsigned, b"\x00garbage", cbor.dumps([1, 5])):
        out = await applier.handle_config(msg)
        assert out is not None and out.outcome == signed.REFUSED, msg


async def test_tampered_config_refused(
    applier: ConfigApplier, hub: FakeHub, target: Target
) -> None:
    msg = hub.config(GW, 5, {"daemon": {"queue_size": 4096}})
    tampered = msg.replace(b"queue_size\x19\x10\x00", b"queue_size\x19\x20\x00")
    assert tampered != msg
    out = await applier.handle_config(tampered)
    assert out is not None and out.outcome == signed.REFUSED and out.reason == "bad signature"
    assert target.applied == []


async def test_signed_by_unknown_key_refused(applier: ConfigApplier) -> None:
    rogue = FakeHub()
    out = await applier.handle_config(rogue.config(GW, 5, SERIAL))
    assert out is not None and out.outcome == signed.REFUSED
    assert "no pinned hub key" in out.reason


async def test_config_for_another_gateway_refused(applier: ConfigApplier, hub: FakeHub) -> None:
    out = await applier.handle_config(hub.config("marina-002", 5, SERIAL))
    assert out is not None and out.outcome == signed.REFUSED and "marina-002" in out.reason


async def test_health_gate_failure_rolls_back(
    applier: ConfigApplier, hub: FakeHub, target: Target, state: GatewayState
) -> None:
    await applier.handle_config(hub.config(GW, 1, SERIAL))
    target.unhealthy = "source serial0 not up"
    bad = {"serial": [{"path": "/dev/ttyUSB9", "protocol": "tic"}]}
    out = await applier.handle_config(hub.config(GW, 2, bad))
    assert out is not None and out.outcome == signed.ROLLED_BACK
    assert out.reason == "health gate: source serial0 not up"
    assert out.version == 2 and out.applied_version == 1
    assert target.applied[-1] == (SERIAL, frozenset({"serial"}))  # last good is back
    cs = state.config()
    assert cs.current == SERIAL and cs.current_version == 1 and cs.seen_version == 2
    # the retained bad config, sent again on reconnect, is not retried
    assert await applier.handle_config(hub.config(GW, 2, bad)) is None


async def test_apply_error_rolls_back(applier: ConfigApplier, hub: FakeHub, target: Target) -> None:
    target.fail_apply = True
    out = await applier.handle_config(hub.config(GW, 1, SERIAL))
    assert out is not None and out.outcome == signed.FAILED  # rollback to {} failed too
    target.fail_apply = False
    target.fail_rollback = False
    t2 = Target()
    applier.target = t2
    await applier.handle_config(hub.config(GW, 2, SERIAL))
    t2.fail_rollback = True
    t2.unhealthy = "uplink down"
    out = await applier.handle_config(hub.config(GW, 3, {}))
    assert out is not None and out.outcome == signed.FAILED and "rollback failed" in out.reason


async def test_key_rotation_without_reenrolling(
    applier: ConfigApplier, hub: FakeHub, state: GatewayState
) -> None:
    old = dict(hub.public_keys())
    hub.keys.append(Ed25519PrivateKey.generate())  # hub adds a key: signs with both
    out = await applier.handle_config(hub.config(GW, 1, SERIAL))
    assert out is not None and out.outcome == signed.APPLIED
    assert state.trusted_keys() == hub.public_keys() and len(state.trusted_keys()) == 2
    hub.keys.pop(0)  # the old key is retired
    out = await applier.handle_config(hub.config(GW, 2, {}))
    assert out is not None and out.outcome == signed.APPLIED
    assert state.trusted_keys() == hub.public_keys()
    assert not set(old) & set(state.trusted_keys())


async def test_commands_run_once(applier: ConfigApplier, hub: FakeHub) -> None:
    ran: list[str] = []

    async def run(name: str, args: Mapping[str, object]) -> str:
        ran.append(name)
        return "ok"

    msg = hub.command(GW, 1, "rescan")
    out = await applier.handle_command(msg, run)
    assert out.outcome == signed.DONE and out.version == 1
    out = await applier.handle_command(msg, run)
    assert out.outcome == signed.REFUSED and "replay" in out.reason
    out = await applier.handle_command(hub.command(GW, 2, "reboot", expires_ms=1), run)
    assert out.outcome == signed.REFUSED and "expired" in out.reason
    out = await applier.handle_command(FakeHub().command(GW, 3, "reboot"), run)
    assert out.outcome == signed.REFUSED
    assert ran == ["rescan"]


async def test_enrollment_config_and_crash_recovery(
    applier: ConfigApplier, hub: FakeHub, state: GatewayState
) -> None:
    import base64

    await applier.handle_config(hub.config(GW, 1, SERIAL))
    cs = state.config()
    cs.applying = 2  # killed in the middle of a transaction to version 2
    cs.current = {"serial": []}
    cs.pending = base64.b64encode(hub.config(GW, 3, {})).decode()
    state.set_config(cs)
    out = await applier.apply_pending()
    assert out is not None and out.outcome == signed.APPLIED and out.version == 3
    assert state.config().applying is None and state.config().pending is None
    assert isinstance(state.config(), ConfigState)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=300))
async def test_random_bytes_on_the_config_topic_are_only_refused(
    applier: ConfigApplier, target: Target, data: bytes
) -> None:
    out = await applier.handle_config(data)
    assert out is None or out.outcome == signed.REFUSED
    assert target.applied == []


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(flip=st.integers(min_value=0, max_value=10_000))
async def test_any_flipped_bit_of_a_signed_config_is_refused(
    applier: ConfigApplier, hub: FakeHub, target: Target, flip: int
) -> None:
    msg = bytearray(hub.config(GW, 7, SERIAL))
    i = flip % (len(msg) * 8)
    msg[i // 8] ^= 1 << (i % 8)
    out = await applier.handle_config(bytes(msg))
    assert out is None or out.outcome == signed.REFUSED
    assert target.applied == []
