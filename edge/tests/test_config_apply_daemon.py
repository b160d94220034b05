"""Hub configurations applied to the real daemon (scripted sources, in-memory buffer): only
what changed restarts, a source that does not come up rolls the change back, and the
buffer is never reopened by a config push."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge.config import load_config
from edge.config_apply import ConfigApplier, DaemonTarget, overlay
from edge.daemon import Daemon, SystemdNotifier
from edge.identity import GatewayState
from edge.tests.support.daemon import FakeWiring, Plan, port, wait_until, write_config
from edge.tests.support.hub import FakeHub
from protocols import signed

GW = "gw-test"


def serial(*paths: str) -> list[dict[str, object]]:
    return [
        {"path": p, "protocol": "nmea", "devices": [{"sensor": p.rsplit("/", 1)[1], "interval": 0}]}
        for p in paths
    ]


def test_overlay() -> None:
    base = {"gateway": {"id": "x"}, "buffer": {"quota": "1 GiB"}, "serial": [1]}
    assert overlay(base, {"buffer": {"policy": "refuse_new"}, "serial": [2], "gateway": None}) == {
        "buffer": {"quota": "1 GiB", "policy": "refuse_new"},
        "serial": [2],
    }


async def test_push_applies_only_what_changed_and_rolls_back_a_broken_source(
    tmp_path: Path,
) -> None:
    fakes = FakeWiring({"/dev/bad": Plan(crash_after=1)})
    local = write_config(tmp_path / "edge.toml", tmp_path / "d", port("/dev/a", "a"))
    daemon = Daemon(load_config(local), fakes.wiring(), SystemdNotifier({}))
    task = asyncio.create_task(daemon.run(), name="daemon-under-test")
    await asyncio.wait_for(daemon.ready.wait(), 5)
    hub = FakeHub()
    state = GatewayState(tmp_path / "state")
    state.set_trusted_keys(hub.public_keys())
    applier = ConfigApplier(state, DaemonTarget(daemon, local, settle_s=0.2), GW)
    try:
        await wait_until(lambda: fakes.log.commits >= 1)
        gate = {"apply": {"health_timeout": 1}}
        out = await applier.handle_config(
            hub.config(GW, 1, {"serial": serial("/dev/a", "/dev/b"), **gate})
        )
        assert out is not None and out.outcome == signed.APPLIED, out
        assert len(fakes.plans["/dev/a"].starts) == 1  # untouched
        assert daemon.supervisor.names == ["serial:/dev/a", "serial:/dev/b"]

        out = await applier.handle_config(
            hub.config(GW, 2, {"serial": serial("/dev/a", "/dev/bad"), **gate})
        )
        assert out is not None and out.outcome == signed.ROLLED_BACK, out
        assert "serial:/dev/bad" in out.reason and out.applied_version == 1
        assert daemon.supervisor.names == ["serial:/dev/a", "serial:/dev/b"]
        assert len(fakes.plans["/dev/a"].starts) == 1

        # invalid for the gateway's own loader: refused by the daemon, rolled back
        out = await applier.handle_config(
            hub.config(GW, 3, {"serial": serial("/dev/a"), "sensors": {"ghost": {}}, **gate})
        )
        assert out is not None and out.outcome == signed.ROLLED_BACK
        assert "sensors.ghost" in out.reason

        # the hub cannot move the gateway's identity
        out = await applier.handle_config(
            hub.config(GW, 4, {"gateway": {"id": "other"}, "serial": serial("/dev/a"), **gate})
        )
        assert out is not None and out.outcome == signed.APPLIED
        assert daemon.config.gateway.id == GW

        # the buffer: opened once, never closed or reopened, still written
        commits = fakes.log.commits
        await wait_until(lambda: fakes.log.commits > commits)
        assert fakes.opened == 1 and not fakes.log.closed
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 10)
        state.close()
