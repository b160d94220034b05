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
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from estran.rollout_lab import Lab, LabError, lab
from estran.tests.wheels import built_wheels
from fleet import Fleet
from hub.tests.services import unavailable

V1, V2, BROKEN = "1.0.0", "1.0.1", "1.0.2"
# A release that connects its uplink to port 1: the daemon runs, reads, buffers, and never
# reaches the hub. Only the health gate can tell.
BREAK_UPLINK = {
    "edge/uplink/_uplink.py": (
        "            self.broker.port,\n            identifier",
        "            1,\n            identifier",
    )
}
GATEWAYS = 4  # CI-sized; `-m long`: 20


@pytest.fixture(scope="module")
def wheels() -> tuple[dict[str, Path], Path]:
    return built_wheels([(V1, None), (V2, None), (BROKEN, BREAK_UPLINK)])


@contextlib.asynccontextmanager
async def fleet_lab(
    tmp_path: Path, wheels: tuple[dict[str, Path], Path], n: int, over_ssh: int
) -> AsyncIterator[Lab]:
    built, house = wheels
    try:
        async with lab(
            tmp_path, gateways=n, rigs=2, over_ssh=over_ssh, wheels=built, wheelhouse=house,
            gate_timeout=60,
        ) as the_lab:  # fmt: skip
            yield the_lab
    except LabError as e:
        unavailable(str(e))


async def until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        await asyncio.sleep(0.5)


def status_of(the_lab: Lab, rid: int) -> dict[str, Any]:
    with Fleet(the_lab.hub_data) as f:
        return f.rollout(rid).as_dict()


def by_gateway(rollout: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["gateway"]: g for w in rollout["waves"] for g in w["gateways"]}


def seq_gaps(the_lab: Lab, gateway: str, since_seq: int) -> tuple[int, list[int]]:
    """(readings held, first missing sequence numbers) of a gateway at the hub from
    `since_seq` to the last one it holds."""
    db = sqlite3.connect(the_lab.hub_data / "estran.sqlite3")
    try:
        rows = [
            r[0]
            for r in db.execute(
                "SELECT r.seq FROM readings r JOIN gateways g ON g.id = r.gateway_id"
                " WHERE g.name = ? AND r.seq >= ? ORDER BY r.seq",
                (gateway, since_seq),
            )
        ]
    finally:
        db.close()
    if not rows:
        return 0, []
    held = set(rows)
    missing = [s for s in range(since_seq, rows[-1] + 1) if s not in held]
    return len(rows), missing[:5]


async def start_rollout(the_lab: Lab, *args: str) -> tuple[int, asyncio.Task[tuple[int, str, str]]]:
    """`estran fleet rollout start ... --json` in the background; its id (from stderr's
    first line, as soon as it is made) and the task of the whole run."""
    before = {
        r["id"] for r in json.loads((await the_lab.fleet_cli("rollout", "list", "--json"))[1])
    }
    task = asyncio.create_task(the_lab.fleet_cli("rollout", "start", *args, "--json"))
    for _ in range(600):
        rows = json.loads((await the_lab.fleet_cli("rollout", "list", "--json"))[1])
        new = [r["id"] for r in rows if r["id"] not in before]
        if new:
            return new[0], task
        if task.done():
            rc, out, err = task.result()
            raise AssertionError(f"rollout start exited {rc}: {err}{out}")
        await asyncio.sleep(0.5)
    raise AssertionError("the rollout was not made")


async def scenario(the_lab: Lab, *, full: bool) -> None:
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

    # -- 1.0.1 in waves; one SSH gateway unreachable at first: deferred, then updated ----------
    ssh_rest = [g.name for g in the_lab.gateways if g.ssh and not g.name.startswith("rigs")]
    away = ssh_rest[-1]
    with Fleet(the_lab.hub_data) as f:
        f.set_hostvars("gateway", away, {"ansible_port": 1}, "test")  # nothing listens there
    started = time.monotonic()
    rid, task = await start_rollout(
        the_lab, V2, "--rigs", "group:rigs", "--canary", "20%", "--batch", "10",
        "--retries", "3", "--retry-interval", "5",
    )  # fmt: skip

    async def deferred() -> bool:
        r = status_of(the_lab, rid)
        assert r["state"] in ("running", "paused"), f"rollout ended {r['state']}: {r['reason']}"
        return by_gateway(r)[away]["state"] in ("deferred", "unreachable")

    await until(deferred, 600, f"{away} deferred")
    with Fleet(the_lab.hub_data) as f:
        f.set_hostvars("gateway", away, {"ansible_port": the_lab.ssh_port}, "test")  # back
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
    with Fleet(the_lab.hub_data) as f:
        entries = f.audit(action="rollout.gateway", limit=1000)
        assert {e.target for e in entries if e.detail["rollout"] == rid} == set(names)
        assert all(e.detail["log"] and e.detail["seconds"] > 0 for e in entries)
        assert any(e.detail["state"] == "deferred" and e.target == away for e in entries)

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

    # -- a broken release: the canary rolls back by itself, the rollout stops there ------------
    with Fleet(the_lab.hub_data) as f:  # a broken uplink shows within seconds
        f.set_hostvars("fleet", None, {"estran_gate_timeout": 20}, "test")
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
        return all(not seq_gaps(the_lab, n, first_seq[n])[1] for n in names)

    with contextlib.suppress(AssertionError):
        await until(delivered, 60, "every reading delivered")
    for name in names:
        held, missing = seq_gaps(the_lab, name, first_seq[name])
        assert held > 0 and not missing, f"{name}: {held} readings, missing {missing}"


async def pause_resume_cancel(the_lab: Lab, n: int) -> None:
    """A rollout paused in its rest wave spares what has not started; resumed, it goes on;
    cancelled, the gateways not yet started are spared."""
    rid, task = await start_rollout(the_lab, V1, "--canary", "2", "--batch", "2")
    await until(
        lambda: _async(status_of(the_lab, rid)["counts"]["running"] > 0), 300, "a batch runs"
    )
    rc, out, _ = await the_lab.fleet_cli("rollout", "pause", str(rid))
    assert rc == 0 and "paused" in out
    await asyncio.sleep(8)
    r = status_of(the_lab, rid)
    assert r["state"] == "paused" and r["counts"]["pending"] >= n - 4
    rc, out, _ = await the_lab.fleet_cli("rollout", "resume", str(rid))
    assert rc == 0
    await until(lambda: _async(status_of(the_lab, rid)["counts"]["updated"] >= 4), 600, "resumed")
    rc, out, _ = await the_lab.fleet_cli("rollout", "cancel", str(rid))
    assert rc == 0
    rc, out, _ = await asyncio.wait_for(task, 600)
    final = json.loads(out)
    assert final["state"] == "cancelled" and final["counts"]["cancelled"] >= 1
    assert final["counts"]["updated"] + final["counts"]["cancelled"] == n


async def _async(value: bool) -> bool:
    return value


async def test_rollout_in_waves_deferral_idempotence_and_a_broken_canary(
    tmp_path: Path, wheels: tuple[dict[str, Path], Path]
) -> None:
    async with fleet_lab(tmp_path, wheels, GATEWAYS, over_ssh=2) as the_lab:
        try:
            await scenario(the_lab, full=False)
        finally:
            print("timings", json.dumps(the_lab.timings))


@pytest.mark.long
async def test_rollout_of_20_gateways_with_pause_resume_cancel(
    tmp_path: Path, wheels: tuple[dict[str, Path], Path]
) -> None:
    """The same with 20 gateways (3 over SSH), plus pause, resume and cancel."""
    async with fleet_lab(tmp_path, wheels, 20, over_ssh=3) as the_lab:
        try:
            await scenario(the_lab, full=True)
        finally:
            print("timings", json.dumps(the_lab.timings))
