"""The hub's signed commands on the real daemon (scripted sources, in-memory buffer): `flush`
commits the buffer and asks the uplink to send its backlog now, `rescan` restarts the sources
without reopening the buffer, `reboot` stops the daemon cleanly with exit status 75 once its
outcome is reported; unsigned and replayed commands are still refused, and run nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from amqtt.broker import Broker

from edge.config import load_config
from edge.config_apply import ConfigApplier, DaemonCommands, DaemonTarget
from edge.daemon import EX_RESTART, Daemon, SystemdNotifier
from edge.health import HealthRegistry, UplinkStatus
from edge.identity import GatewayState, Identity
from edge.tests.support.daemon import FakeWiring, Plan, port, wait_until, write_config
from edge.tests.support.hub import FakeHub
from estran.rig import free_port
from protocols import signed, wire

GW = "gw-test"


class IdleUplink:
    """An uplink that only waits; records the drain requests (edge.daemon.DaemonUplink)."""

    def __init__(self) -> None:
        self.drains = 0
        self.health: HealthRegistry | None = None

    async def run(self) -> None:
        await asyncio.Event().wait()

    def attach(self, health: HealthRegistry) -> None:
        self.health = health

    def status(self) -> UplinkStatus:
        return {"state": "connected"}

    def drain_now(self) -> None:
        self.drains += 1

    def committed(self) -> None:
        pass


@dataclasses.dataclass
class Running:
    daemon: Daemon
    fakes: FakeWiring
    applier: ConfigApplier
    commands: DaemonCommands
    hub: FakeHub
    uplink: IdleUplink
    task: asyncio.Task[None]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    fakes = FakeWiring({"/dev/a": Plan(), "/dev/b": Plan()})
    local = write_config(
        tmp_path / "edge.toml",
        tmp_path / "d",
        port("/dev/a", "a") + port("/dev/b", "b"),
        daemon='[uplink]\nbroker = "mqtt://127.0.0.1:1"\n',
    )
    # commits only when asked to (a flush) or at the stop, within a test
    local.write_text(local.read_text().replace('commit_interval = "50ms"', "commit_interval = 60"))
    uplink = IdleUplink()
    wiring = dataclasses.replace(fakes.wiring(), uplink=lambda _config, _log: uplink)
    daemon = Daemon(load_config(local), wiring, SystemdNotifier({}))
    task = asyncio.create_task(daemon.run(), name="daemon-under-test")
    await asyncio.wait_for(daemon.ready.wait(), 5)
    hub = FakeHub()
    state = GatewayState(tmp_path / "state")
    state.set_trusted_keys(hub.public_keys())
    applier = ConfigApplier(state, DaemonTarget(daemon, local), GW)
    try:
        yield Running(daemon, fakes, applier, DaemonCommands(daemon), hub, uplink, task)
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 10)
        state.close()


async def test_flush_commits_the_buffer_and_drains_the_uplink(running: Running) -> None:
    r = running
    log = r.fakes.log
    await wait_until(lambda: r.fakes.plans["/dev/a"].delivered >= 5)
    await wait_until(lambda: r.daemon.uplink is not None)
    assert log.durable == [] and log.commits == 0  # nothing committed yet (60 s interval)
    delivered = sum(p.delivered for p in r.fakes.plans.values())  # queued or appended
    out = await r.applier.handle_command(r.hub.command(GW, 1, "flush"), r.commands)
    assert out.outcome == signed.DONE and out.version == 1, out
    assert "buffer committed" in out.reason and "backlog now" in out.reason
    assert log.commits == 1 and len(log.durable) >= delivered  # every one of them committed
    assert r.uplink.drains == 1
    assert not r.task.done()


async def test_rescan_restarts_the_sources_not_the_buffer(running: Running) -> None:
    r = running
    await wait_until(lambda: all(len(p.starts) == 1 for p in r.fakes.plans.values()))
    out = await r.applier.handle_command(r.hub.command(GW, 1, "rescan"), r.commands)
    assert out.outcome == signed.DONE, out
    assert "serial:/dev/a" in out.reason and "serial:/dev/b" in out.reason
    await wait_until(lambda: all(len(p.starts) == 2 for p in r.fakes.plans.values()))
    assert set(r.daemon.supervisor.names) == {"serial:/dev/a", "serial:/dev/b", "uplink"}
    assert r.daemon.supervisor.starts["uplink"] == 1  # the uplink keeps running
    assert r.fakes.opened == 1 and not r.fakes.log.closed  # the buffer: never reopened
    delivered = r.fakes.plans["/dev/a"].delivered
    await wait_until(lambda: r.fakes.plans["/dev/a"].delivered > delivered + 3)


async def test_reboot_stops_the_daemon_with_exit_status_75_after_the_report(
    running: Running,
) -> None:
    r = running
    out = await r.applier.handle_command(r.hub.command(GW, 1, "reboot"), r.commands)
    assert out.outcome == signed.DONE and "machine does not reboot" in out.reason, out
    await asyncio.sleep(0.1)
    assert not r.task.done()  # not before the outcome is reported
    r.commands.after_report(out)
    await asyncio.wait_for(r.task, 10)
    assert r.daemon.exit_status == EX_RESTART == 75
    assert r.fakes.log.closed and not r.fakes.log.pending  # a clean stop: buffer committed


async def test_unsigned_and_replayed_commands_are_refused_and_run_nothing(
    running: Running,
) -> None:
    r = running
    rogue = FakeHub()  # a key the gateway does not trust
    out = await r.applier.handle_command(rogue.command(GW, 1, "reboot"), r.commands)
    assert out.outcome == signed.REFUSED and "no pinned hub key" in out.reason
    doc = {"kind": "cmd", "gateway": GW, "seq": 1, "name": "reboot", "args": {}}
    unsigned = wire.encode_envelope(wire.Envelope(wire.CMD, signed.encode_payload(doc)))
    out = await r.applier.handle_command(unsigned, r.commands)
    assert out.outcome == signed.REFUSED and "unsigned" in out.reason

    flush = r.hub.command(GW, 1, "flush")
    out = await r.applier.handle_command(flush, r.commands)
    assert out.outcome == signed.DONE
    out = await r.applier.handle_command(flush, r.commands)
    assert out.outcome == signed.REFUSED and "replay" in out.reason
    assert r.uplink.drains == 1

    reboot = r.hub.command(GW, 2, "reboot")
    out = await r.applier.handle_command(reboot, r.commands)
    r.commands.after_report(out)
    await asyncio.wait_for(r.task, 10)
    assert r.daemon.exit_status == EX_RESTART
    replay = DaemonCommands(r.daemon)
    out = await r.applier.handle_command(reboot, replay)
    assert out.outcome == signed.REFUSED and "replay" in out.reason
    replay.after_report(out)  # a refused reboot restarts nothing
    assert r.daemon.exit_status == EX_RESTART and r.fakes.opened == 1


async def test_unknown_command_fails(running: Running) -> None:
    r = running
    out = await r.applier.handle_command(r.hub.command(GW, 1, "format-disk"), r.commands)
    assert out.outcome == signed.FAILED and "format-disk" in out.reason


def test_the_unit_restarts_the_daemon_on_exit_75() -> None:
    import configparser

    path = Path(__file__).resolve().parents[1] / "systemd" / "estran-edge.service"
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(path)
    service = unit["Service"]
    assert service["Restart"] == "always"  # restarts after any exit, 0 and 75 included
    assert str(EX_RESTART) in service["SuccessExitStatus"].split()  # not logged as a failure
    assert str(EX_RESTART) in service["RestartForceExitStatus"].split()


async def test_reboot_through_the_broker_exits_75_for_systemd(tmp_path: Path) -> None:
    """The real daemon process (`python -m edge.daemon`), enrolled: a signed `reboot` on its
    cmd topic is reported `done`, then the process exits 75 (systemd: Restart=always)."""
    mqtt_port = free_port()
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{mqtt_port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    hub = FakeHub()
    data = tmp_path / "data"
    with GatewayState(data) as state:
        ident = Identity(GW, "g", "http://hub", f"mqtt://127.0.0.1:{mqtt_port}", GW, "0" * 16, 1)
        state.set_identity(ident, "pw")
        state.set_trusted_keys(hub.public_keys())
    local = tmp_path / "edge.toml"
    local.write_text(f'[gateway]\nid = "{GW}"\ndata_dir = "{data}"\n')
    env = {**os.environ, "NOTIFY_SOCKET": "", "JOURNAL_STREAM": ""}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge.daemon", "--config", str(local), env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        async with aiomqtt.Client("127.0.0.1", mqtt_port, identifier="hub", timeout=5) as h:
            await h.subscribe(wire.topic(GW, "report"), qos=1)

            async def report() -> dict[str, object]:
                message = await anext(aiter(h.messages))
                assert isinstance(message.payload, bytes)
                return signed.check_report(
                    wire.decode_envelope(message.payload, wire.REPORT).value()
                )

            seq = 0
            async with asyncio.timeout(20):  # until the fleet link listens: status commands
                while True:
                    seq += 1
                    await h.publish(wire.topic(GW, "cmd"), hub.command(GW, seq, "status"), qos=1)
                    try:
                        async with asyncio.timeout(0.5):
                            got = await report()
                        break
                    except TimeoutError:
                        continue
            assert got["outcome"] == "done"
            await h.publish(wire.topic(GW, "cmd"), hub.command(GW, seq + 10, "reboot"), qos=1)
            async with asyncio.timeout(10):
                got = await report()
                while got["version"] != seq + 10:  # a late answer to a status
                    got = await report()
            assert got["outcome"] == "done" and "exit 75" in str(got["reason"])
        assert await asyncio.wait_for(proc.wait(), 20) == EX_RESTART
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await broker.shutdown()
