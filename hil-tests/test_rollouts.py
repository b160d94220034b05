"""Rollouts in waves over a fleet of real gateways on this machine (docs/updates.md).

Gateways (estran.rollout_lab): each a root directory with its own daemon reading an NMEA
simulator and sending to a real hub; a few reached over real SSH (an sshd this test starts on
a loopback port), the others with the local connection. Only what the docs name is used: the
playbooks with the hub's dynamic inventory script, `estran fleet release|rollout ...`.
4 gateways (2 over SSH) by default; `-m long`: 20 (3 over SSH) and pause/resume/cancel.

- provision 1.0.0 with a plain `ansible-playbook -i playbooks/inventory/estran_hub.py`;
- `estran fleet rollout start 1.0.1 --rigs group:rigs --canary 20%`: rigs, then the canary,
  then the rest, each wave finished before the next starts; one SSH gateway is unreachable
  when its turn comes (its host variables name a closed port), is deferred, not failed, and
  updated when it is reachable again; all run 1.0.1;
- the same rollout again: every gateway `unchanged` (the playbook changes nothing);
- update.yml with a wheel whose checksum is not the release's: refused on every gateway
  before anything is installed, the daemons untouched;
- a broken 1.0.2 (its uplink never connects): every canary gateway fails the health gate and
  is back on 1.0.1 by itself; the rollout stops before the next wave; the others are never
  touched (same daemon, same releases);
- nothing buffered is lost: for every gateway, the hub holds every sequence number its
  buffer gave from before the first rollout to the end, without a gap.

Times on two cores under a load average of 20-30 (other sessions' work): 20 gateways 17 min
(provision 203 s, rollout 398 s, again 68 s, broken canary 160 s); 8 gateways 21 min under a
higher load. Most of it is pip installing each release into its own environment and the
daemons starting: the default is 4 gateways.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from estran.rig import until
from estran.rollout_lab import BREAK_UPLINK, Lab, Release, lab, releases

V1, V2, BROKEN = "1.0.0", "1.0.1", "1.0.2"
GATEWAYS = 4  # CI-sized; `-m long`: 20


@pytest.fixture(scope="module")
def built() -> dict[str, Release]:
    """1.0.0, 1.0.1 and the broken 1.0.2 (made once: estran.rollout_lab)."""
    return releases([(V1, None), (V2, None), (BROKEN, BREAK_UPLINK)])


@contextlib.asynccontextmanager
async def fleet_lab(
    tmp_path: Path, built: dict[str, Release], n: int, over_ssh: int
) -> AsyncIterator[Lab]:
    async with lab(
        tmp_path, gateways=n, rigs=2, over_ssh=over_ssh, releases=built, gate_timeout=60
    ) as the_lab:
        yield the_lab


async def status_of(the_lab: Lab, rid: int) -> dict[str, Any]:
    return await the_lab.hub.rollout(rid)


def by_gateway(rollout: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["gateway"]: g for w in rollout["waves"] for g in w["gateways"]}


async def seq_gaps(
    the_lab: Lab, gateway: str, sensors: list[str], since_seq: int
) -> tuple[int, list[int]]:
    """(readings held, first missing sequence numbers) of a gateway at the hub (its sensors'
    readings over GET /api/v1/readings) from `since_seq` to the last one it holds."""
    held: set[int] = set()
    for sensor in sensors:
        rows = await the_lab.hub.readings_between(sensor)
        held |= {int(r["seq"]) for r in rows if r["gateway"] == gateway and r["seq"] >= since_seq}
    if not held:
        return 0, []
    missing = [s for s in range(since_seq, max(held) + 1) if s not in held]
    return len(held), missing[:5]


async def hostvars(the_lab: Lab, *args: str) -> None:
    """`estran fleet hostvars ...`, which must succeed."""
    rc, _, err = await the_lab.fleet_cli("hostvars", *args)
    assert rc == 0, err


async def scenario(the_lab: Lab, built: dict[str, Release], *, full: bool) -> None:
    t = the_lab.timings
    names = [g.name for g in the_lab.gateways]
    n = len(names)
    canary_n = -(-(n - 2) * 20 // 100)  # 20% of the gateways that are not rigs, rounded up
    broken_n = min(4, n // 2)

    # -- provision 1.0.0: plain ansible-playbook, the hub's dynamic inventory --------------------
    run = await the_lab.playbook("provision.yml", the_lab.release_vars(V1))
    t["provision"] = round(run.seconds, 1)
    assert run.rc == 0, run.output[-6000:]
    assert set(run.recap()) == set(names)
    statuses = await the_lab.statuses()
    for name, s in statuses.items():
        assert s is not None and s["software"] == V1, name
        assert s["uplink"]["state"] == "connected", name
    first_seq = {n: int(s["buffer"]["next_seq"]) for n, s in statuses.items() if s is not None}
    sensors = {n: list(s["sensors"]) for n, s in statuses.items() if s is not None}

    # -- 1.0.1 in waves; one SSH gateway unreachable at first: deferred, then updated ----------
    ssh_rest = [g.name for g in the_lab.gateways if g.ssh and not g.name.startswith("rigs")]
    away = ssh_rest[-1]
    await hostvars(the_lab, "--gateway", away, "ansible_port=1")  # nothing listens there
    started = time.monotonic()
    rid, task = await the_lab.hub.start_rollout(
        V2, "--rigs", "group:rigs", "--canary", "20%", "--batch", "10",
        "--retries", "3", "--retry-interval", "5",
    )  # fmt: skip

    async def deferred() -> bool:
        r = await status_of(the_lab, rid)
        assert r["state"] in ("running", "paused"), f"rollout ended {r['state']}: {r['reason']}"
        return by_gateway(r)[away]["state"] in ("deferred", "unreachable")

    await until(f"{away} deferred", deferred, 600, every=1.0)
    await hostvars(the_lab, "--gateway", away, f"ansible_port={the_lab.ssh_port}")  # back
    rc, out, err = await asyncio.wait_for(task, 1200)
    t["rollout"] = round(time.monotonic() - started, 1)
    assert rc == 0, err[-4000:] + out[-4000:]
    r = json.loads(out)
    assert r["state"] == "done", r["reason"]
    assert [(w["name"], len(w["gateways"])) for w in r["waves"]] == [
        ("rigs", 2), ("canary", canary_n), ("rest", n - 2 - canary_n),
    ]  # fmt: skip
    gws = by_gateway(r)
    assert all(g["state"] == "updated" for g in gws.values()), {
        n: (g["state"], g["reason"][-300:]) for n, g in gws.items() if g["state"] != "updated"
    }
    assert gws[away]["attempts"] >= 2
    for earlier, later in zip(r["waves"], r["waves"][1:], strict=False):  # waves in order
        assert max(g["finished_ms"] for g in earlier["gateways"]) <= min(
            g["started_ms"] for g in later["gateways"]
        )
    statuses = await the_lab.statuses()
    for name, s in statuses.items():
        assert s is not None and s["software"] == V2, name
        gw = the_lab.gateway(name)
        assert gw.releases() == [V1, V2] and gw.version() == V2
    entries = await the_lab.hub.audit("rollout.gateway")  # GET /api/v1/fleet/audit
    assert {e["target"] for e in entries if e["rollout"] == rid} == set(names)
    assert all(e["log"] and e["seconds"] > 0 for e in entries)
    assert any(e["state"] == "deferred" and e["target"] == away for e in entries)

    # -- the same again: the playbook changes nothing on any gateway ---------------------------
    pids = {g.name: g.pid() for g in the_lab.gateways}
    started = time.monotonic()
    rc, out, err = await the_lab.fleet_cli(
        "rollout", "start", V2, "--canary", "0", "--batch", "20", "--json"
    )
    t["rollout_again"] = round(time.monotonic() - started, 1)
    assert rc == 0, err[-4000:]
    again = json.loads(out)
    assert again["state"] == "done" and again["counts"]["unchanged"] == n, again["reason"]
    assert {g.name: g.pid() for g in the_lab.gateways} == pids

    # -- a wheel that is not the one the release names: refused before anything is installed --
    tampered = built[V2].extra_vars() | {
        "estran_wheel_url": "",  # copied from the controller: estran_release checks it
        "estran_version": "1.0.9",
        "estran_wheel_sha256": hashlib.sha256(b"another wheel").hexdigest(),
    }
    run = await the_lab.playbook("update.yml", tampered)
    t["tampered_refused"] = round(run.seconds, 1)
    assert run.rc != 0
    assert run.output.count("checksum mismatch") >= n, run.output[-6000:]
    for gw in the_lab.gateways:
        assert gw.pid() == pids[gw.name], f"{gw.name} was touched"
        assert gw.releases() == [V1, V2] and gw.version() == V2, gw.name

    # -- a broken release: the canary rolls back by itself, the rollout stops there ------------
    await hostvars(the_lab, "--fleet", "estran_gate_timeout=20")  # a broken uplink shows soon
    started = time.monotonic()
    rc, out, err = await the_lab.fleet_cli(
        "rollout", "start", BROKEN, "--canary", str(broken_n), "--max-failures", "0", "--batch", "10",
        "--json",
    )  # fmt: skip
    t["broken_rollout"] = round(time.monotonic() - started, 1)
    assert rc == 1, err[-4000:]
    broken = json.loads(out)
    assert (
        broken["state"] == "stopped"
        and f"{broken_n} of {broken_n} gateways failed" in broken["reason"]
    ), broken
    waves = {w["name"]: w["gateways"] for w in broken["waves"]}
    canary = [g["gateway"] for g in waves["canary"]]
    assert len(canary) == broken_n and len(waves["rest"]) == n - broken_n
    for g in waves["canary"]:
        assert g["state"] == "rolled_back" and f"rolled back to {V2}" in g["reason"], g
        assert "uplink disconnected" in g["reason"]
    assert all(g["state"] == "cancelled" for g in waves["rest"])
    statuses = await the_lab.statuses()
    for name, s in statuses.items():
        gw = the_lab.gateway(name)
        assert s is not None and s["software"] == V2, name
        assert s["uplink"]["state"] == "connected", name
        assert gw.releases() == [V1, V2] and gw.version() == V2, name
        if name not in canary:
            assert gw.pid() == pids[name], f"{name} was touched"

    if full:
        await pause_resume_cancel(the_lab, n)

    # -- nothing buffered was lost across the updates and rollbacks ----------------------------
    async def delivered() -> bool:
        gaps = [await seq_gaps(the_lab, n, sensors[n], first_seq[n]) for n in names]
        return all(not missing for _, missing in gaps)

    with contextlib.suppress(AssertionError):
        await until("every reading delivered", delivered, 60, every=2.0)
    for name in names:
        held, missing = await seq_gaps(the_lab, name, sensors[name], first_seq[name])
        assert held > 0 and not missing, f"{name}: {held} readings, missing {missing}"


async def pause_resume_cancel(the_lab: Lab, n: int) -> None:
    """A rollout paused in its rest wave spares what has not started; resumed, it goes on;
    cancelled, the gateways not yet started are spared."""
    rid, task = await the_lab.hub.start_rollout(V1, "--canary", "2", "--batch", "2")

    async def counted(state: str, at_least: int) -> bool:
        return int((await status_of(the_lab, rid))["counts"][state]) >= at_least

    await until("a batch runs", lambda: counted("running", 1), 300)
    rc, out, _ = await the_lab.fleet_cli("rollout", "pause", str(rid))
    assert rc == 0 and "paused" in out
    await asyncio.sleep(8)
    r = await status_of(the_lab, rid)
    assert r["state"] == "paused" and r["counts"]["pending"] >= n - 4
    rc, out, _ = await the_lab.fleet_cli("rollout", "resume", str(rid))
    assert rc == 0
    await until("resumed", lambda: counted("updated", 4), 600)
    rc, out, _ = await the_lab.fleet_cli("rollout", "cancel", str(rid))
    assert rc == 0
    rc, out, _ = await asyncio.wait_for(task, 600)
    final = json.loads(out)
    assert final["state"] == "cancelled" and final["counts"]["cancelled"] >= 1
    assert final["counts"]["updated"] + final["counts"]["cancelled"] == n


async def test_rollout_in_waves_deferral_idempotence_and_a_broken_canary(
    tmp_path: Path, built: dict[str, Release]
) -> None:
    async with fleet_lab(tmp_path, built, GATEWAYS, over_ssh=2) as the_lab:
        try:
            await scenario(the_lab, built, full=False)
        finally:
            print("timings", json.dumps(the_lab.timings))


@pytest.mark.long
async def test_rollout_of_20_gateways_with_pause_resume_cancel(
    tmp_path: Path, built: dict[str, Release]
) -> None:
    """The same with 20 gateways (3 over SSH), plus pause, resume and cancel."""
    async with fleet_lab(tmp_path, built, 20, over_ssh=3) as the_lab:
        try:
            await scenario(the_lab, built, full=True)
        finally:
            print("timings", json.dumps(the_lab.timings))
