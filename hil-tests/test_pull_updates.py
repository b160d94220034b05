"""Pull-mode updates end to end (docs/updates.md, "Pull mode"): a gateway behind NAT gets a
signed update job on its `cmd` topic, fetches the release bundle over HTTP, verifies it, runs
the same update.yml on itself with Ansible's local connection, and reports every step; the
hub records the reports and the rollout engine's pull executor turns them into a result. Real hub (embedded broker, SQLite), real enrolled daemon reading a serial simulator,
real ansible-playbook, real HTTP.

One gateway, `pull-001`, provisioned (and enrolled) on 1.0.0, then:

- refused, and reported with their code: a tampered job (its payload changed under the
  hub's signature), another gateway's job, an expired job, then a job for release 1.0.1
  whose wheel was changed on the hub's disk after the hub signed its manifest (the daemon
  is never touched);
- the wheel restored, updated to 1.0.1 by a pull rollout, the hub going down once the
  gateway has fetched and verified the bundle: a reading buffered before the update reaches
  the hub after it, the reports the new daemon sends once the hub is back complete the
  rollout's result;
- the same job message sent again (a replay): refused, nothing runs;
- the refusals are counted on the gateway (update/state.json) and at the hub;
- a rollout of 1.0.1 again: `unchanged`, the daemon untouched.

The release is built and added as an admin does (`estran fleet release build/add`: the hub
signs its manifest) and served by the hub's own endpoints (`/api/v1/releases/...`); every
update runs as the admin's `estran fleet rollout start --mode pull`; the hub is read over its
HTTP API (rollouts, audit, readings). What no interface makes (a job forged with the hub's
key, a file changed on the hub's disk, a message sent again) comes from the lab layer
(estran.rollout_lab).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from estran.rig import until
from estran.rollout_lab import (
    ANSIBLE_PLAYBOOK,
    LabGateway,
    LabHub,
    Release,
    forged_jobs,
    gateway_vars,
    last_cmd,
    nmea_port,
    playbook,
    release_file_changed,
    releases,
    send_cmd,
    static_inventory,
)

V1, V2 = "1.0.0", "1.0.1"
GW = "pull-001"  # the first gateway enrolled in group `pull`


@pytest.fixture(scope="module")
def built() -> dict[str, Release]:
    """1.0.0 and 1.0.1 (made once: estran.rollout_lab)."""
    return releases([(V1, None), (V2, None)])


async def refused(h: LabHub) -> dict[str, int]:
    """The refusals the gateway reported, by code, as the hub's audit log holds them."""
    return dict(Counter(str(e["code"]) for e in await h.audit("update.refused", GW)))


async def link_up(h: LabHub) -> bool:
    """The gateway's fleet link answers: a `status` command (sent again every few seconds)
    was reported on."""
    if await h.audit("report.cmd", GW):
        return True
    sent = await h.audit("cmd.status", GW)
    if not sent or time.time() * 1000 - max(e["ts_ms"] for e in sent) > 3000:
        await h.request(
            "POST", f"/api/v1/fleet/gateways/{GW}/commands", {"name": "status", "ttl_s": 60}
        )
    return False


async def pull_rollout(h: LabHub) -> tuple[int, asyncio.Task[tuple[int, str, str]]]:
    """The admin's `estran fleet rollout start 1.0.1 --target pull-001 --mode pull`."""
    return await h.start_rollout(
        V2, "--target", GW, "--canary", "1", "--mode", "pull", "--hub-url", h.url, timeout=900
    )


async def test_pull_update_refusals_and_buffered_readings(
    tmp_path: Path, built: dict[str, Release]
) -> None:
    timings: dict[str, float] = {}
    gw = LabGateway(GW, tmp_path / GW)
    h = LabHub(tmp_path)
    await h.start()
    try:
        async with nmea_port("ttyP", tmp_path / "sim") as table:
            await h.fleet("group", "create", "pull")
            token = (
                await h.request("POST", "/api/v1/fleet/tokens", {"group": "pull", "ttl_s": 600})
            )["token"]
            inv = static_inventory(
                tmp_path,
                {
                    GW: {
                        "ansible_connection": "local",
                        "estran_root": str(gw.root),
                        "estran_config_extra": table,
                    }
                },
                gateway_vars(h.broker_url)
                | {
                    "estran_credentials_file": str(gw.root / "var/lib/estran/credentials"),
                    "estran_gateway_options": {"log_level": "info"},
                    # the system's ansible-playbook (here: the test's), not estran[pull]
                    "estran_pull_ansible_playbook": str(ANSIBLE_PLAYBOOK),
                },
            )
            # -- provision 1.0.0, enrolled ----------------------------------------------------
            run = await playbook(
                tmp_path, inv, "provision.yml",
                built[V1].extra_vars() | {"estran_hub_url": h.url, "estran_enroll_token": token},
            )  # fmt: skip
            timings["provision"] = round(run.seconds, 1)
            assert run.rc == 0, run.output[-6000:]
            assert token not in run.output  # no_log
            status = await gw.status()
            assert status is not None and status["software"] == V1
            pull_vars = json.loads((gw.root / "opt/estran/pull.json").read_text())
            assert pull_vars["estran_root"] == str(gw.root)
            assert pull_vars["estran_service_mode"] == "process"
            pid_v1 = gw.pid()

            # -- 1.0.1 added as an admin adds it: the bundle of `estran fleet release build` --
            added = await h.fleet_json("release", "add", str(built[V2].bundle))
            assert added["version"] == V2, added
            # the fleet link is up once a command gets an answer: refusals need it
            await until("the gateway's fleet link answers", lambda: link_up(h), 60, every=1.0)

            # -- refusals: tampered job, another gateway's job, an expired job -------------
            t0 = time.monotonic()
            for body in forged_jobs(h.data, V2, h.url, GW).values():
                send_cmd(h.data, GW, body)

            async def three_refused() -> bool:
                found = await refused(h)
                return all(found.get(c) for c in ("signature", "foreign", "expired"))

            await until(
                "tampered, foreign and expired jobs refused and reported", three_refused, 60,
                every=1.0,
            )  # fmt: skip
            timings["refusals"] = round(time.monotonic() - t0, 1)

            # -- a bundle changed after the hub signed it: refused, nothing touched -------
            t0 = time.monotonic()
            with release_file_changed(h.data, V2, built[V2].wheel.name):
                rid, task = await pull_rollout(h)
                rc, out, err = await task
            timings["tampered_bundle"] = round(time.monotonic() - t0, 1)
            assert rc == 1, err[-3000:]
            result = (await h.rollout(rid))["waves"][0]["gateways"][0]
            assert result["state"] == "failed", result
            assert "refused (bundle_checksum)" in result["reason"], result
            assert built[V2].wheel.name in result["reason"]
            assert gw.pid() == pid_v1
            assert gw.releases() == [V1]
            assert gw.version() == V1

            # -- the update, the hub going down while it runs ----------------------------
            t0 = time.monotonic()
            sensor = next(iter(status["sensors"]))
            rid, task = await pull_rollout(h)

            async def verified() -> bool:
                """The gateway runs update.yml: it fetched and verified the bundle before."""
                r = await h.rollout(rid)
                assert r["state"] == "running", r
                return str(r["waves"][0]["gateways"][0]["step"]).startswith("playbook")

            await until("the bundle fetched and verified, the playbook started", verified, 120)
            await h.stop()
            down_ms = int(time.time() * 1000)
            await until(
                "the daemon restarted on 1.0.1 by the gateway's own run",
                lambda: task.done() or gw.pid() not in (None, pid_v1),
                180,
            )
            switched_ms = int(time.time() * 1000)
            await asyncio.sleep(1)
            await h.start()
            rc, out, err = await task
            timings["update"] = round(time.monotonic() - t0, 1)
            assert rc == 0, err[-3000:] + out[-3000:]
            rollout = json.loads(out)
            result = rollout["waves"][0]["gateways"][0]
            assert rollout["state"] == "done" and result["state"] == "updated", rollout
            assert result["version"] == V2, result
            log = next(
                e["log"] for e in await h.audit("rollout.gateway", GW) if e["rollout"] == rid
            )
            for step in ("received", "fetched", "verified", "playbook", "finished"):
                assert f" {step} " in log, log
            status = await gw.status()
            assert status is not None and status["software"] == V2
            assert gw.releases() == [V1, V2]
            assert gw.previous() == V1

            # what the gateway buffered before the update reached the hub after it
            async def delivered() -> int:
                rows = await h.readings_between(sensor, down_ms, switched_ms)
                return sum(1 for r in rows if r["gateway"] == GW)

            async def enough() -> bool:
                return await delivered() >= 3

            await until(
                "readings buffered before the update delivered", enough, 120,
                lambda: f"[{down_ms}, {switched_ms}]", every=1.0,
            )  # fmt: skip

            # -- the same job message again: a replay, refused; nothing runs ------------
            pid_v2 = gw.pid()
            send_cmd(h.data, GW, last_cmd(h.data, GW))

            async def replay_refused() -> bool:
                return bool((await refused(h)).get("replay"))

            await until("the replay refused", replay_refused, 60, every=1.0)
            assert gw.pid() == pid_v2

            counted = gw.update_state()["refused"]
            assert counted == {
                "signature": 1, "foreign": 1, "expired": 1, "bundle_checksum": 1, "replay": 1,
            }, counted  # fmt: skip
            assert await refused(h) == counted

            # -- the same rollout again: it runs it, nothing changes --------------------
            t0 = time.monotonic()
            rid, task = await pull_rollout(h)
            rc, out, err = await task
            timings["rollout_pull_unchanged"] = round(time.monotonic() - t0, 1)
            assert rc == 0, err[-3000:]
            rollout = json.loads(out)
            assert rollout["mode"] == "pull" and rollout["state"] == "done", rollout
            states = [g["state"] for w in rollout["waves"] for g in w["gateways"]]
            assert states == ["unchanged"], rollout
            assert gw.pid() == pid_v2
    finally:
        gw.stop()
        await h.stop()
        print("timings", json.dumps(timings))
