"""Pull-mode updates end to end (docs/updates.md, "Pull mode"): a gateway behind NAT gets a
signed update job on its `cmd` topic, fetches the release bundle over HTTP, verifies it, runs
the same update.yml on itself with Ansible's local connection, and reports every step; the
hub records the reports and the rollout executor (`fleet.PullExecutor`) turns them into a
result. Real hub (embedded broker, SQLite), real enrolled daemon reading a serial simulator,
real ansible-playbook, real HTTP.

One gateway, `pull-001`, provisioned (and enrolled) on 1.0.0, then:

- refused, and reported with their code: a tampered job (its payload changed under the
  hub's signature), another gateway's job, an expired job, then a job for release 1.0.1
  whose wheel was changed on the hub's disk after the hub signed its manifest (the daemon
  is never touched);
- the wheel restored, updated to 1.0.1 through the executor, the hub going down once the
  gateway has fetched and verified the bundle: a reading buffered before the update reaches
  the hub after it, the reports the new daemon sends once the hub is back complete the
  rollout's result;
- the same job message sent again (a replay): refused, nothing runs;
- the refusals are counted on the gateway (update/state.json) and at the hub.

The release is built and added as an admin does (`estran fleet release build/add`: the hub
signs its manifest) and served by the hub's own endpoints (`/api/v1/releases/...`).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import grp
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edge.simulators.serial import NmeaSimulator
from edge.tests.support.daemon import port_table
from estran.bench_sync import wait_hub_ready
from estran.rig import Child, estran_argv, free_port
from estran.rollout_lab import PLAYBOOKS, REPO, LabGateway, Run, wheelhouse_tar
from estran.tests.wheels import built_wheels
from fleet import Fleet, Outcome, PullExecutor, PullJobs, ReleaseRef, StepEvent, Target
from fleet._releases import build_bundle
from hub.storage import open_storage
from hub.tests.services import unavailable
from protocols import signed, update_job, wire

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
V1, V2 = "1.0.0", "1.0.1"
GW = "pull-001"  # the first gateway enrolled in group `pull`


@pytest.fixture(scope="module")
def releases() -> tuple[dict[str, Path], Path]:
    """The wheels of 1.0.0 and 1.0.1 (built once per session) and the wheelhouse, a .tar."""
    if not ANSIBLE_PLAYBOOK.exists():
        unavailable("ansible-playbook is not installed (pip install -e '.[dev]')")
    wheels, house = built_wheels([(V1, None), (V2, None)])
    return wheels, wheelhouse_tar(house, house.parent / "wheelhouse-pull.tar")


class Hub:
    """The hub (`estran hub run`: embedded broker, SQLite), stopped and started again."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.mqtt_port, self.http_port = free_port(), free_port()
        self.child = Child(
            "hub",
            estran_argv(
                "hub", "run", "--data", str(work), "--broker", "embedded",
                "--mqtt-listen", f"127.0.0.1:{self.mqtt_port}",
                "--http", f"127.0.0.1:{self.http_port}", "--log-level", "warning",
                "--broker-access", "open",
            ),
            work,
        )  # fmt: skip

    async def start(self) -> None:
        await self.child.start()
        await wait_hub_ready(self.http_port, self.child)

    def readings_between(self, gateway: str, sensor: str, from_ms: int, to_ms: int) -> int:
        db = f"sqlite:///{self.work / 'estran.sqlite3'}"
        with contextlib.closing(open_storage(db, self.work, migrate=False)) as st:
            return sum(1 for row in st.readings(sensor, from_ms, to_ms) if row.gateway == gateway)


async def playbook(work: Path, inv: Path, name: str, extra: dict[str, Any]) -> Run:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        str(ANSIBLE_PLAYBOOK), "-i", str(inv), str(PLAYBOOKS / name), "-e", json.dumps(extra),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=work,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 900)
    text = out.decode(errors="replace")
    (work / f"ansible-{name}.log").write_text(text)
    assert proc.returncode is not None
    return Run(proc.returncode, text, time.monotonic() - started)


async def until(predicate: Any, timeout: float, what: str, detail: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}" + (f": {detail()}" if detail else ""))
        await asyncio.sleep(0.3)


def add_release(fleet: Fleet, work: Path, wheel: Path, house: Path) -> None:
    """The release bundle of `wheel` (the wheel, the wheelhouse, playbooks/), added to the
    hub's store as an admin adds it: checked, its manifest signed."""
    tar = build_bundle(work, repo=REPO, wheel=wheel, wheelhouse=house)
    fleet.add_release(tar, "admin")


def publish_raw(fleet: Fleet, gateway_id: str, body: bytes) -> None:
    """A cmd message queued as the hub queues its own (published by the hub's fleet task)."""
    message = wire.encode_envelope(wire.Envelope(wire.CMD, body))
    with fleet._tx() as db:
        fleet._queue(db, wire.topic(gateway_id, "cmd"), message, retain=False)
        fleet._bump(db)


def job_body(fleet: Fleet, ref: ReleaseRef, gateway: str, seq: int, **changes: Any) -> bytes:
    now = int(time.time() * 1000)
    job = update_job.UpdateJob(
        gateway, f"t{seq}-{gateway}", seq, os.urandom(16), now, now + 60_000, ref.version,
        ref.manifest_url, ref.files_url,
        hashlib.sha256((ref.directory / "manifest.signed").read_bytes()).hexdigest(),  # type: ignore[operator]
    )  # fmt: skip
    doc = job.document() | changes
    return fleet.keys.sign_document(update_job.CONTEXT_UPDATE, doc)


def gateway_update_state(gw: Any) -> dict[str, Any]:
    path = gw.root / "var/lib/estran/update/state.json"
    return json.loads(path.read_text()) if path.exists() else {}


async def test_pull_update_refusals_and_buffered_readings(
    tmp_path: Path, releases: tuple[dict[str, Any], Path]
) -> None:
    built, house = releases
    timings: dict[str, float] = {}
    gw = LabGateway(GW, tmp_path / GW, ssh=False)
    (tmp_path / "hub").mkdir()
    h = Hub(tmp_path / "hub")
    await h.start()
    async with NmeaSimulator("ttyP", directory=tmp_path / "sim", interval=1.0) as sim:
        fleet = Fleet(h.work)
        try:
            fleet.create_group("pull", "test")
            token = fleet.create_token("pull", 600, "test").token
            inv = tmp_path / "inventory.json"
            inv.write_text(
                json.dumps(
                    {
                        "gateways": {
                            "hosts": {
                                GW: {
                                    "ansible_connection": "local",
                                    "estran_root": str(gw.root),
                                    "estran_config_extra": port_table(
                                        sim.port_config(), reconnect_min=0.1, reconnect_max=0.5
                                    ),
                                }
                            },
                            "vars": {
                                "ansible_python_interpreter": sys.executable,
                                "estran_python": sys._base_executable,
                                "estran_manage_user": False,
                                "estran_user": getpass.getuser(),
                                "estran_group": grp.getgrgid(os.getgid()).gr_name,
                                "estran_service_mode": "process",
                                "estran_broker": f"mqtt://127.0.0.1:{h.mqtt_port}",
                                "estran_credentials_file": str(
                                    gw.root / "var/lib/estran/credentials"
                                ),
                                "estran_gateway_options": {"log_level": "info"},
                                "estran_gate_timeout": 60,
                                # the system's ansible-playbook (here: the test's), not estran[pull]
                                "estran_pull_ansible_playbook": str(ANSIBLE_PLAYBOOK),
                            },
                        }
                    }
                )
            )
            # -- provision 1.0.0, enrolled ----------------------------------------------------
            t0 = time.monotonic()
            run = await playbook(
                tmp_path, inv, "provision.yml",
                {
                    "estran_version": V1,
                    "estran_wheel_src": str(built[V1]),
                    "estran_wheel_sha256": hashlib.sha256(built[V1].read_bytes()).hexdigest(),
                    "estran_wheelhouse_src": str(house),
                    "estran_hub_url": f"http://127.0.0.1:{h.http_port}",
                    "estran_enroll_token": token,
                },
            )  # fmt: skip
            timings["provision"] = round(time.monotonic() - t0, 1)
            assert run.rc == 0, run.output[-6000:]
            assert token not in run.output  # no_log
            status = await gw.status()
            assert status is not None and status["software"] == V1
            pull_vars = json.loads((gw.root / "opt/estran/pull.json").read_text())
            assert pull_vars["estran_root"] == str(gw.root)
            assert pull_vars["estran_service_mode"] == "process"
            jobs = PullJobs(fleet)
            pid_v1 = gw.pid()

            add_release(fleet, tmp_path / "bundles", built[V2], house)
            good = fleet.release_ref(V2, f"http://127.0.0.1:{h.http_port}")
            assert good.directory is not None
            wheel = good.directory / built[V2].name
            original = wheel.read_bytes()
            data = bytearray(original)
            data[len(data) // 2] ^= 0xFF  # on the hub's disk, after it signed the manifest
            wheel.write_bytes(bytes(data))

            # the fleet link is up once a command gets an answer: refusals need it
            await until(lambda: _link_up(fleet), 60, "the gateway's fleet link answers")

            # -- refusals: tampered job, another gateway's job, an expired job -------------
            t0 = time.monotonic()
            body = job_body(fleet, good, GW, 100)
            sd = signed.decode_signed(body)
            forged_doc = sd.document() | {"release": "6.6.6"}  # same signature, new payload
            forged = signed.encode_signed(
                signed.Signed(signed.encode_payload(forged_doc), sd.signatures)
            )
            publish_raw(fleet, GW, forged)
            publish_raw(fleet, GW, job_body(fleet, good, "pull-999", 101))
            expired = job_body(
                fleet, good, GW, 102,
                issued_ms=int(time.time() * 1000) - 120_000,
                expires_ms=int(time.time() * 1000) - 60_000,
            )  # fmt: skip
            publish_raw(fleet, GW, expired)

            def refused() -> dict[str, int]:
                return jobs.refusals(GW)

            await until(
                lambda: all(refused().get(c) for c in ("signature", "foreign", "expired")),
                60,
                "tampered, foreign and expired jobs refused and reported",
                refused,
            )
            timings["refusals"] = round(time.monotonic() - t0, 1)

            # -- a bundle changed after the hub signed it: refused, nothing touched -------
            t0 = time.monotonic()
            result = await asyncio.to_thread(
                PullExecutor(fleet, accept_s=60, timeout_s=120).run,
                good, [Target(GW, "pull")], lambda e: None, threading.Event(),
            )  # fmt: skip
            timings["tampered_bundle"] = round(time.monotonic() - t0, 1)
            assert result[0].outcome is Outcome.FAILED, result
            assert "refused (bundle_checksum)" in result[0].reason, result
            assert built[V2].name in result[0].reason
            assert gw.pid() == pid_v1
            assert gw.releases() == [V1]
            assert gw.current.resolve().name == V1
            wheel.write_bytes(original)

            # -- the update, the hub going down while it runs ----------------------------
            t0 = time.monotonic()
            events: list[StepEvent] = []
            sensor = next(iter((await gw.status())["sensors"]))  # type: ignore[index]
            update = asyncio.create_task(
                asyncio.to_thread(
                    PullExecutor(fleet, accept_s=60, timeout_s=300).run,
                    good, [Target(GW, "pull")], events.append, threading.Event(),
                )
            )  # fmt: skip
            await until(
                lambda: any(e.step.startswith("verified") for e in events),
                120,
                "the bundle fetched and verified, the hub told",
            )
            await h.child.stop()
            down_ms = int(time.time() * 1000)
            await until(
                lambda: update.done() or gw.pid() not in (None, pid_v1),
                180,
                "the daemon restarted on 1.0.1 by the gateway's own run",
            )
            switched_ms = int(time.time() * 1000)
            await asyncio.sleep(1)
            await h.start()
            result = await update
            timings["update"] = round(time.monotonic() - t0, 1)
            assert result[0].outcome is Outcome.UPDATED, (result, events[-5:])
            assert result[0].version == V2
            steps = [e.step.split(":")[0] for e in events]
            for step in ("job sent", "received", "fetched", "verified", "playbook", "finished"):
                assert step in steps, steps
            status = await gw.status()
            assert status is not None and status["software"] == V2
            assert gw.releases() == [V1, V2]
            assert (gw.root / "opt/estran/previous").resolve().name == V1

            # what the gateway buffered before the update reached the hub after it
            def delivered() -> int:
                return h.readings_between(GW, sensor, down_ms, switched_ms)  # type: ignore[no-any-return]

            await until(
                lambda: delivered() >= 3,
                120,
                "readings buffered before the update delivered",
                lambda: f"{delivered()} in [{down_ms}, {switched_ms}]",
            )

            # -- the same job message again: a replay, refused; nothing runs ------------
            pid_v2 = gw.pid()
            with fleet._lock:
                row = fleet._db.execute(
                    "SELECT payload FROM outbox WHERE topic = ? ORDER BY id DESC LIMIT 1",
                    (wire.topic(GW, "cmd"),),
                ).fetchone()
            publish_raw(fleet, GW, wire.decode_envelope(bytes(row[0]), wire.CMD).body)
            await until(lambda: refused().get("replay"), 60, "the replay refused", refused)
            assert gw.pid() == pid_v2

            counted = gateway_update_state(gw)["refused"]
            assert counted == {
                "signature": 1, "foreign": 1, "expired": 1, "bundle_checksum": 1, "replay": 1,
            }, counted  # fmt: skip
            assert refused() == counted

            # -- the admin's command: a rollout of 1.0.1 in pull mode; it runs it: unchanged --
            t0 = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                *estran_argv(
                    "fleet", "--data", str(h.work), "rollout", "start", V2, "--target", GW,
                    "--canary", "1", "--mode", "pull", "--json",
                    "--hub-url", f"http://127.0.0.1:{h.http_port}",
                ),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 600)
            timings["rollout_pull_unchanged"] = round(time.monotonic() - t0, 1)
            assert proc.returncode == 0, err.decode()[-3000:]
            rollout = json.loads(out)
            assert rollout["mode"] == "pull" and rollout["state"] == "done", rollout
            states = [g["state"] for w in rollout["waves"] for g in w["gateways"]]
            assert states == ["unchanged"], rollout
            assert gw.pid() == pid_v2
        finally:
            gw.stop()
            fleet.close()
            await h.child.stop()
            print("timings", json.dumps(timings))


def _link_up(fleet: Fleet) -> bool:
    """The gateway's fleet link is subscribed: a `status` command was answered."""
    entries = fleet.audit(target=GW, action="report.cmd", limit=5)
    if entries:
        return True
    if (
        not fleet.audit(target=GW, action="cmd.status", limit=1)
        or time.time() * 1000 - fleet.audit(target=GW, action="cmd.status", limit=1)[-1].ts_ms
        > 3000
    ):
        fleet.command(GW, "status", "test", ttl_s=60)
    return False
