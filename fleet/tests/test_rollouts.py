"""Releases, the inventory and the rollout engine on a real registry (SQLite). The gateways'
side is a scripted executor here, so that waves, the threshold, deferral, pause and cancel
are checked exactly; hil-tests/test_rollouts.py runs the same engine with the real push
executor (ansible-runner) against 20 real gateway daemons."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from fleet import Fleet, FleetError
from fleet._errors import Conflict
from fleet._executor import GatewayResult, Mode, Outcome, ReleaseRef, StepEvent, Target
from fleet._releases import build_bundle
from fleet._rollout_run import RolloutRunner
from fleet.tests.test_fleet import enroll
from protocols import signed
from protocols.update_job import CONTEXT_RELEASE, check_manifest

REPO = Path(__file__).resolve().parents[2]


def enroll_one(fleet: Fleet, group: str) -> str:
    """A gateway enrolled in `group` (a real enrollment: token, challenge, proof)."""
    return enroll(fleet, fleet.create_token(group, 600, "admin").token).gateway_id


def fake_wheel(tmp: Path, version: str) -> Path:
    wheel = tmp / f"estran-{version}-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel " + version.encode())
    return wheel


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    f = Fleet(tmp_path / "hub")
    f.create_group("rigs", "admin")
    f.create_group("marina", "admin")
    return f


def add_release(fleet: Fleet, tmp: Path, version: str = "1.0.1") -> None:
    bundle = build_bundle(tmp / "dist", repo=REPO, wheel=fake_wheel(tmp, version))
    fleet.add_release(bundle, "admin")


def test_a_bundle_is_checked_signed_and_served(fleet: Fleet, tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "dist", repo=REPO, wheel=fake_wheel(tmp_path, "1.0.1"))
    r = fleet.add_release(bundle, "admin")
    assert r.version == "1.0.1" and r.files > 10
    body = fleet.release_manifest("1.0.1")
    doc = signed.decode_signed(body)
    (kid, sig), *_ = doc.signatures
    from fleet import verify

    assert verify(fleet.keys.public_keys()[kid], CONTEXT_RELEASE, doc.payload, sig)
    version, wheel, files = check_manifest(doc.document())
    assert version == "1.0.1" and "playbooks/update.yml" in files
    served = fleet.release_file("1.0.1", wheel)
    assert hashlib.sha256(served.read_bytes()).hexdigest() == files[wheel][0]
    assert fleet.add_release(bundle, "admin").version == "1.0.1"  # the same again: no-op
    with pytest.raises(FleetError, match="no file"):
        fleet.release_file("1.0.1", "../fleet.sqlite")
    assert fleet.verify_release("1.0.1") == []
    assert [e.action for e in fleet.audit(action="release.")] == ["release.add"]


def _retar(bundle: Path, out: Path, change: Callable[[str, bytes], bytes | None]) -> Path:
    with tarfile.open(bundle) as src, tarfile.open(out, "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()  # type: ignore[union-attr]
            new = change(m.name, data)
            if new is None:
                continue
            info = tarfile.TarInfo(m.name)
            info.size = len(new)
            dst.addfile(info, io.BytesIO(new))
    return out


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda n, d: d + b"x" if n.endswith(".whl") else d, "checksum"),
        (lambda n, d: None if n == "playbooks/update.yml" else d, "missing"),
        (lambda n, d: b"{" if n == "manifest.json" else d, "bad manifest"),
        (
            lambda n, d: (
                json.dumps({**json.loads(d), "version": "../../x"}).encode()
                if n == "manifest.json"
                else d
            ),
            "version",
        ),
    ],
)
def test_a_tampered_bundle_is_refused_and_nothing_kept(
    fleet: Fleet, tmp_path: Path, change: Callable[[str, bytes], bytes | None], says: str
) -> None:
    bundle = build_bundle(tmp_path / "dist", repo=REPO, wheel=fake_wheel(tmp_path, "1.0.1"))
    bad = _retar(bundle, tmp_path / "bad.tar", change)
    with pytest.raises(FleetError, match=says):
        fleet.add_release(bad, "admin")
    assert fleet.releases() == []
    assert [p.name for p in (fleet.directory / "releases").iterdir()] == []


def test_a_file_beside_the_manifest_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "dist", repo=REPO, wheel=fake_wheel(tmp_path, "1.0.1"))
    with tarfile.open(bundle, "a") as tar:
        info = tarfile.TarInfo("playbooks/evil.yml")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"x: 1"[:3]))
    with pytest.raises(FleetError, match="not in the manifest"):
        fleet.add_release(bundle, "admin")


def test_inventory_groups_hostvars_and_no_secrets(fleet: Fleet) -> None:
    a = enroll_one(fleet, "rigs")
    b = enroll_one(fleet, "marina")
    fleet.set_hostvars("fleet", None, {"estran_python": "/usr/bin/python3"}, "admin")
    fleet.set_hostvars("group", "marina", {"ansible_user": "pi"}, "admin")
    fleet.set_hostvars("gateway", b, {"ansible_host": "10.0.0.7", "ansible_port": 2222}, "admin")
    inv = fleet.inventory()
    assert inv["gateways"] == {"hosts": [b, a], "vars": {}} or sorted(
        inv["gateways"]["hosts"]  # type: ignore[index]
    ) == sorted([a, b])
    assert inv["marina"]["hosts"] == [b]  # type: ignore[index]
    hv = inv["_meta"]["hostvars"][b]  # type: ignore[index]
    assert hv["ansible_user"] == "pi" and hv["ansible_port"] == 2222
    assert hv["estran_python"] == "/usr/bin/python3" and hv["estran_hub_state"] == "active"
    assert "ansible_user" not in inv["_meta"]["hostvars"][a]  # type: ignore[index]
    for secret in ("ansible_password", "ansible_become_pass", "estran_enroll_token"):
        with pytest.raises(FleetError, match="secret"):
            fleet.set_hostvars("gateway", a, {secret: "x"}, "admin")
    fleet.set_hostvars("gateway", b, {"ansible_port": None}, "admin")
    assert "ansible_port" not in fleet.host(b)


class Scripted:
    """An executor whose gateways answer what `script` says (by gateway id), recording
    the batches it was given."""

    mode: Mode = "push"

    def __init__(self, script: dict[str, list[Outcome]], delay: float = 0.0) -> None:
        self.script = script
        self.delay = delay
        self.batches: list[list[str]] = []
        self.started = threading.Event()

    def run(
        self,
        release: ReleaseRef,
        targets: Sequence[Target],
        on_event: Callable[[StepEvent], None],
        stop: threading.Event,
    ) -> list[GatewayResult]:
        self.batches.append([t.gateway_id for t in targets])
        self.started.set()
        out = []
        for t in targets:
            now = int(time.time() * 1000)
            if stop.is_set():
                out.append(
                    GatewayResult(
                        t.gateway_id, Outcome.UNREACHABLE, "not started: paused", now, now
                    )
                )
                continue
            on_event(StepEvent(t.gateway_id, now, "Health gate", "started"))
            time.sleep(self.delay)
            answers = self.script.get(t.gateway_id) or [Outcome.UPDATED]
            outcome = answers.pop(0) if len(answers) > 1 else answers[0]
            reason = "rolled back to 1.0.0: gate" if outcome is Outcome.ROLLED_BACK else ""
            out.append(
                GatewayResult(
                    t.gateway_id, outcome, reason, now, int(time.time() * 1000), release.version
                )
            )
        return out


def fleet_of(fleet: Fleet, rigs: int, others: int) -> tuple[list[str], list[str]]:
    return (
        [enroll_one(fleet, "rigs") for _ in range(rigs)],
        [enroll_one(fleet, "marina") for _ in range(others)],
    )


def test_waves_rigs_canary_rest_all_updated(fleet: Fleet, tmp_path: Path) -> None:
    add_release(fleet, tmp_path)
    rigs, _others = fleet_of(fleet, 2, 10)
    r = fleet.create_rollout("1.0.1", "all", "admin", rigs="group:rigs", canary="20%", batch=4)
    assert [(n, len(g)) for n, g in r.waves] == [("rigs", 2), ("canary", 2), ("rest", 8)]
    ex = Scripted({})
    done = RolloutRunner(fleet, {"push": ex}, poll_s=0.05).run(r.id)
    assert done.state == "done" and done.counts()["updated"] == 12, done.reason
    assert ex.batches[0] == sorted(rigs) and [len(b) for b in ex.batches] == [2, 2, 4, 4]
    entries = fleet.audit(action="rollout.gateway", limit=100)
    assert len(entries) == 12 and all(e.detail["seconds"] is not None for e in entries)


def test_a_failing_canary_stops_before_the_rest(fleet: Fleet, tmp_path: Path) -> None:
    add_release(fleet, tmp_path)
    _, others = fleet_of(fleet, 0, 10)
    r = fleet.create_rollout("1.0.1", "group:marina", "admin", canary="30%", batch=10)
    canary = [g.gateway for g in r.gateways if g.wave_name == "canary"]
    ex = Scripted({g: [Outcome.ROLLED_BACK] for g in others})
    done = RolloutRunner(fleet, {"push": ex}, poll_s=0.05).run(r.id)
    assert done.state == "stopped" and "3 of 3 gateways failed" in done.reason
    assert ex.batches == [canary]
    states = {g.gateway: g.state for g in done.gateways}
    assert all(states[g] == "rolled_back" for g in canary)
    assert all(s == "cancelled" for g, s in states.items() if g not in canary)


def test_the_threshold_tolerates_what_it_says(fleet: Fleet, tmp_path: Path) -> None:
    add_release(fleet, tmp_path)
    _, _others = fleet_of(fleet, 0, 10)
    r = fleet.create_rollout("1.0.1", "all", "admin", canary="2", max_failures="1", batch=2)
    first = r.gateways[0].gateway
    done = RolloutRunner(fleet, {"push": Scripted({first: [Outcome.FAILED]})}, poll_s=0.05).run(
        r.id
    )
    assert done.state == "done" and done.counts()["failed"] == 1 and done.counts()["updated"] == 9


def test_unreachable_gateways_are_deferred_retried_not_failed(fleet: Fleet, tmp_path: Path) -> None:
    add_release(fleet, tmp_path)
    _, others = fleet_of(fleet, 0, 4)
    r = fleet.create_rollout("1.0.1", "all", "admin", canary="0", retries=2, retry_s=0.1)
    flaky, gone = others[0], others[1]
    ex = Scripted({flaky: [Outcome.UNREACHABLE, Outcome.UPDATED], gone: [Outcome.UNREACHABLE]})
    done = RolloutRunner(fleet, {"push": ex}, poll_s=0.05).run(r.id)
    states = {g.gateway: g.state for g in done.gateways}
    assert done.state == "done", done.reason
    assert states[flaky] == "updated" and states[gone] == "unreachable"
    assert [g.attempts for g in done.gateways if g.gateway == gone] == [3]
    assert ex.batches[1:] == [[flaky, gone], [gone]]


def test_pause_spares_what_has_not_started_then_resume_and_cancel(
    fleet: Fleet, tmp_path: Path
) -> None:
    add_release(fleet, tmp_path)
    fleet_of(fleet, 0, 6)
    r = fleet.create_rollout("1.0.1", "all", "admin", canary="0", batch=2)
    ex = Scripted({}, delay=0.3)
    runner = RolloutRunner(fleet, {"push": ex}, poll_s=0.05)
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(runner.run(r.id)))
    worker.start()
    assert ex.started.wait(10)
    fleet.pause_rollout(r.id, "admin")
    time.sleep(1.0)
    paused = fleet.rollout(r.id)
    assert paused.state == "paused"
    assert paused.counts()["pending"] >= 2 and len(ex.batches) <= 2
    with pytest.raises(Conflict):
        fleet.create_rollout("1.0.1", "all", "admin")  # its gateways are taken
    fleet.resume_rollout(r.id, "admin")
    time.sleep(0.2)
    fleet.cancel_rollout(r.id, "admin")
    worker.join(20)
    final = fleet.rollout(r.id)
    assert final.state == "cancelled"
    c = final.counts()
    assert c["cancelled"] >= 1 and c["updated"] + c["cancelled"] == 6 and c["running"] == 0
    actions = [e.action for e in fleet.audit(action="rollout.", limit=100)]
    assert {"rollout.start", "rollout.pause", "rollout.resume", "rollout.cancel"} <= set(actions)


def test_no_executor_for_a_mode_is_said(fleet: Fleet, tmp_path: Path) -> None:
    add_release(fleet, tmp_path)
    fleet_of(fleet, 0, 1)
    r = fleet.create_rollout("1.0.1", "all", "admin", mode="pull")
    done = RolloutRunner(fleet, {"push": Scripted({})}).run(r.id)
    assert done.state == "failed" and "pull mode: no executor" in done.reason


def test_bad_requests_are_refused_with_a_reason(fleet: Fleet, tmp_path: Path) -> None:
    add_release(fleet, tmp_path)
    fleet_of(fleet, 0, 1)
    for kwargs, says in [
        ({"release": "9.9.9"}, "no release"),
        ({"selector": "group:nope"}, "no group"),
        ({"selector": "marina-999"}, "no active gateway"),
        ({"canary": "lots"}, "a count"),
        ({"batch": 0}, "batch"),
    ]:
        args: dict[str, object] = {"release": "1.0.1", "selector": "all"} | kwargs
        with pytest.raises(FleetError, match=says):
            fleet.create_rollout(
                str(args.pop("release")),
                str(args.pop("selector")),
                "admin",
                **args,  # type: ignore[arg-type]
            )


def test_the_commands_an_admin_types(fleet: Fleet, tmp_path: Path) -> None:
    """release add/list, hostvars, inventory, rollout start --detach, status, pause, cancel,
    as `estran fleet` runs them (click), errors said plainly."""
    from click.testing import CliRunner

    from fleet.cli import fleet as fleet_cli

    gw = enroll_one(fleet, "marina")
    data = str(tmp_path / "hub")
    cli = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = cli.invoke(fleet_cli, ["--data", data, *args])
        return result.exit_code, result.output

    bundle = build_bundle(tmp_path / "dist", repo=REPO, wheel=fake_wheel(tmp_path, "2.0.0"))
    code, out = run("release", "add", str(bundle))
    assert code == 0 and "release 2.0.0" in out and "signed" in out
    code, out = run("release", "list", "--json")
    assert json.loads(out)[0]["version"] == "2.0.0"
    code, out = run("hostvars", "--gateway", gw, "ansible_port=2222", "ansible_user=pi")
    assert code == 0 and json.loads(out) == {"ansible_port": 2222, "ansible_user": "pi"}
    code, out = run("hostvars", "--gateway", gw, "ansible_password=x")
    assert code == 1 and "secret" in out
    code, out = run("hostvars", "ansible_port=1")
    assert code == 2 and "--fleet" in out
    code, out = run("inventory", "--list")
    assert json.loads(out)["_meta"]["hostvars"][gw]["ansible_port"] == 2222
    code, out = run("rollout", "start", "2.0.0", "--detach", "--canary", "0")
    assert code == 0, out
    rid = out.strip().splitlines()[-1]
    code, out = run("rollout", "status", rid)
    assert code == 0 and "release 2.0.0" in out and gw in out and "pending" in out
    code, out = run("rollout", "pause", rid)
    assert code == 0 and "paused" in out
    code, out = run("rollout", "cancel", rid)
    assert code == 0 and "cancelled" in out
    code, out = run("rollout", "resume", rid)
    assert code == 1 and "cannot resume" in out
    code, out = run("rollout", "start", "9.9.9")
    assert code == 1 and "no release" in out and "Traceback" not in out
