"""Installing and updating gateways with the playbooks (playbooks/, docs/updates.md): real
ansible-playbook runs against real gateway daemons, each in its own root directory on this
machine, reading a serial simulator and sending to a real hub.

Two gateways: `gw-local` over Ansible's local connection, `gw-ssh` over real SSH (an sshd this
test starts on a loopback port with a throwaway key). One hub (embedded broker, SQLite).

- provision 1.0.0: user, directories, release, configuration, daemon, health gate;
- the hub goes down, readings pile up in the buffers; update to 1.0.1 while it is down (the
  gate waits for the uplink; the hub comes back once the new daemons run): the readings
  buffered before the update reach the hub after it (read back over its HTTP API);
  configuration untouched;
- a wheel whose checksum is not the release's is refused before anything is installed: the
  daemons keep running, untouched;
- a broken 1.0.2 (its uplink never connects) fails the gate and every gateway is back on
  1.0.1 by itself, the failed release removed, two releases kept.

Both tests run behind `-m long` (pytest -m long hil-tests/test_updates.py); `make test`
has each step elsewhere, on a lab it provisions anyway: provision, update over the local
connection and over SSH, the tampered wheel and the broken release rolled back in
test_rollouts.py, an update while the hub is down with the buffered readings delivered after
it in test_pull_updates.py. The second test adds provision and update run twice (nothing
changes), configure.yml (an option changed and reloaded; run again: nothing changes) and
decommission.yml draining the buffer.

Only public interfaces: the playbooks, the hub's command line and HTTP API, the files
docs/updates.md names, through the lab layer (estran.rollout_lab). sshd missing: skipped,
failed under CI=true (.ci/run installs openssh-server).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from estran.rig import until
from estran.rollout_lab import (
    BREAK_UPLINK,
    LabGateway,
    LabHub,
    Release,
    Run,
    gateway_vars,
    nmea_port,
    playbook,
    releases,
    ssh_hostvars,
    sshd,
    static_inventory,
)

V1, V2, BROKEN = "1.0.0", "1.0.1", "1.0.2"
Play = Callable[[str, Mapping[str, object], str], Awaitable[Run]]


@pytest.fixture(scope="module")
def built() -> dict[str, Release]:
    """1.0.0, 1.0.1 and the broken 1.0.2 (made once: estran.rollout_lab)."""
    return releases([(V1, None), (V2, None), (BROKEN, BREAK_UPLINK)])


async def buffered_at_hub(hub: LabHub, gw: str, sensor: str, from_ms: int, to_ms: int) -> int:
    """Readings of `sensor` from `gw` the hub holds, stamped in [from_ms, to_ms)."""
    rows = await hub.readings_between(sensor, from_ms, to_ms)
    return sum(1 for r in rows if r["gateway"] == gw)


async def scenario(tmp_path: Path, built: dict[str, Release], *, full: bool) -> None:
    timings: dict[str, float] = {}
    gateways = [
        LabGateway("gw-local", tmp_path / "gw-local"),
        LabGateway("gw-ssh", tmp_path / "gw-ssh", ssh=True),
    ]
    names = [gw.name for gw in gateways]

    async def statuses() -> list[dict[str, Any] | None]:
        return list(await asyncio.gather(*(gw.status() for gw in gateways)))

    with sshd(tmp_path / "sshd") as (ssh_port, ssh_key):
        async with (
            LabHub(tmp_path) as h,
            nmea_port("ttyA", tmp_path / "sim") as table_a,
            nmea_port("ttyB", tmp_path / "sim") as table_b,
        ):
            tables = {"gw-local": table_a, "gw-ssh": table_b}
            hosts = {
                gw.name: {"estran_root": str(gw.root), "estran_config_extra": tables[gw.name]}
                | (ssh_hostvars(ssh_port, ssh_key) if gw.ssh else {"ansible_connection": "local"})
                for gw in gateways
            }
            inv = static_inventory(
                tmp_path,
                hosts,
                gateway_vars(h.broker_url) | {"estran_gateway_options": {"log_level": "info"}},
            )

            async def play(name: str, extra: Mapping[str, object], step: str) -> Run:
                run = await playbook(tmp_path, inv, name, extra)
                timings[step] = round(run.seconds, 1)
                return run

            try:
                # -- provision ----------------------------------------------------------------
                run = await play("provision.yml", built[V1].extra_vars(), "provision")
                assert run.rc == 0, run.output[-6000:]
                for gw, status in zip(gateways, await statuses(), strict=True):
                    assert status is not None and status["software"] == V1, gw.name
                    assert status["uplink"]["state"] == "connected"
                    assert gw.version() == V1
                    assert oct(gw.config.stat().st_mode & 0o777) == "0o640"
                if full:
                    run = await play("provision.yml", built[V1].extra_vars(), "provision_again")
                    assert run.unchanged(names), run.output[-6000:]

                # -- the hub goes down; readings pile up ---------------------------------------
                config_before = {gw.name: gw.config.read_bytes() for gw in gateways}
                sensors = {
                    gw.name: next(iter(s["sensors"] if s else ()))
                    for gw, s in zip(gateways, await statuses(), strict=True)
                }
                await h.stop()
                down_ms = int(time.time() * 1000)

                async def pending() -> bool:
                    return time.time() * 1000 - down_ms > 5000 and all(
                        s is not None and s["buffer"]["pending"] >= 5 for s in await statuses()
                    )

                # held by the buffers, unacknowledged: the hub cannot have them
                await until("readings buffered while the hub is down", pending, 30)
                buffered_ms = int(time.time() * 1000)
                pids = {gw.name: gw.pid() for gw in gateways}

                # -- update to 1.0.1 while the hub is down; it comes back once 1.0.1 runs -------
                update = asyncio.create_task(play("update.yml", built[V2].extra_vars(), "update"))
                await until(
                    "the daemons restarted on 1.0.1",
                    lambda: (
                        update.done()
                        or all(gw.pid() not in (None, pids[gw.name]) for gw in gateways)
                    ),
                    300,
                )
                await h.start()
                run = await update
                assert run.rc == 0, run.output[-6000:]
                for gw, status in zip(gateways, await statuses(), strict=True):
                    assert status is not None and status["software"] == V2
                    assert gw.config.read_bytes() == config_before[gw.name]
                    assert gw.releases() == [V1, V2]
                    assert gw.previous() == V1

                # what each gateway buffered before the update reached the hub after it
                async def delivered() -> dict[str, int]:
                    return {
                        gw.name: await buffered_at_hub(
                            h, gw.name, sensors[gw.name], down_ms, buffered_ms
                        )
                        for gw in gateways
                    }

                async def all_delivered() -> bool:
                    return all(n >= 5 for n in (await delivered()).values())

                await until(
                    "readings buffered before the update delivered", all_delivered, 120,
                    lambda: f"[{down_ms}, {buffered_ms}]", every=1.0,
                )  # fmt: skip
                if full:  # (make test: test_rollouts runs the same update twice, unchanged)
                    run = await play("update.yml", built[V2].extra_vars(), "update_again")
                    assert run.unchanged(names), run.output[-6000:]

                # -- a wheel that is not the one the release names: refused, nothing touched ---
                pids = {gw.name: gw.pid() for gw in gateways}
                tampered = built[V2].extra_vars() | {
                    "estran_version": "1.0.9",
                    "estran_wheel_sha256": hashlib.sha256(b"another wheel").hexdigest(),
                }
                run = await play("update.yml", tampered, "tampered_refused")
                assert run.rc != 0
                assert run.output.count("checksum mismatch") >= len(gateways), run.output[-6000:]
                for gw in gateways:
                    assert gw.pid() == pids[gw.name]
                    assert gw.releases() == [V1, V2]
                    assert gw.version() == V2

                # -- a broken release fails the gate and rolls back by itself -------------------
                run = await play(
                    "update.yml",
                    built[BROKEN].extra_vars() | {"estran_gate_timeout": 10},
                    "broken_rolled_back",
                )
                assert run.rc != 0
                assert run.output.count(f"rolled back to {V2}") >= len(gateways), run.output[-6000:]
                assert "uplink disconnected" in run.output
                for gw, status in zip(gateways, await statuses(), strict=True):
                    assert status is not None and status["software"] == V2, gw.name
                    assert status["uplink"]["state"] == "connected"
                    assert gw.releases() == [V1, V2]
                    assert gw.version() == V2
                    assert gw.config.read_bytes() == config_before[gw.name]

                if full:
                    await configure_and_decommission(gateways, play, names)
            finally:
                for gw in gateways:
                    gw.stop()
                (tmp_path / "timings.json").write_text(json.dumps(timings))
                print("timings", json.dumps(timings))


async def configure_and_decommission(
    gateways: list[LabGateway], play: Play, names: list[str]
) -> None:
    # configure.yml: a changed option is written and the daemon reloads it; again: nothing
    debug = {"estran_gateway_options": {"log_level": "debug"}}
    run = await play("configure.yml", debug, "configure")
    assert run.rc == 0, run.output[-6000:]
    for gw in gateways:
        assert 'log_level = "debug"' in gw.config.read_text()

    async def reloaded() -> bool:
        found = await asyncio.gather(*(gw.status() for gw in gateways))
        return all(s is not None and s["config"]["reloads"] >= 1 for s in found)

    await until("the daemons reloaded the configuration", reloaded, 30)
    run = await play("configure.yml", debug, "configure_again")
    assert run.unchanged(names), run.output[-6000:]
    # decommission.yml, draining the buffer to the hub first
    run = await play("decommission.yml", {"estran_decommission_buffer": "drain"}, "decommission")
    assert run.rc == 0, run.output[-6000:]
    for gw in gateways:
        assert gw.pid() is None and await gw.status() is None
        data = gw.root / "var/lib/estran"
        assert not (data / "identity").exists() and not (data / "state.json").exists()
        assert (data / "buffer").is_dir()  # drained, kept
        assert not (gw.root / "opt/estran/releases").exists()


@pytest.mark.long
async def test_provision_update_rollback_local_and_over_ssh(
    tmp_path: Path, built: dict[str, Release]
) -> None:
    await scenario(tmp_path, built, full=False)


@pytest.mark.long
async def test_full_cycle_with_idempotence_configure_and_decommission(
    tmp_path: Path, built: dict[str, Release]
) -> None:
    """The default test, plus: provision and update again change nothing, configure.yml (a
    changed option reloaded, again: nothing), decommission.yml draining the buffer."""
    await scenario(tmp_path, built, full=True)
