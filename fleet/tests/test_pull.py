"""Pull mode on the hub (fleet._pull): signed jobs queued on the cmd topic, reports recorded
once, another gateway's or a forged claim kept out of a job's status, and the executor's
results. The gateway's side is edge/tests/test_update_agent.py; both together run in
hil-tests/test_pull_updates.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import fleet
from fleet import Fleet, Outcome, PullExecutor, PullJobs, ReleaseRef, StepEvent, Target
from fleet.tests.test_fleet import enroll
from protocols import signed, update_job, wire


@pytest.fixture
def f(tmp_path: Path) -> Fleet:
    reg = Fleet(tmp_path)
    reg.create_group("pull", "alice")
    for _ in range(2):
        enroll(reg, reg.create_token("pull", 3600, "alice").token)
    return reg


@pytest.fixture
def release(tmp_path: Path) -> ReleaseRef:
    d = tmp_path / "rel"
    d.mkdir()
    (d / "manifest.signed").write_bytes(b"the signed manifest")
    return ReleaseRef("1.0.1", "http://hub/r/manifest", "http://hub/r/files/", d, {})


def report(
    job: str | None, n: int, step: str, outcome: str, reason: str = "", code: str = ""
) -> dict[str, object]:
    return update_job.report(
        job, 1, n, step, outcome, reason, "1.0.1", int(time.time() * 1000), code
    )


def test_a_job_is_signed_for_its_gateway_and_queued_on_its_cmd_topic(
    f: Fleet, release: ReleaseRef
) -> None:
    jobs = PullJobs(f)
    a = jobs.issue("pull-001", release, ttl_s=60, actor="alice")
    b = jobs.issue("pull-001", release, ttl_s=60, actor="alice")
    assert (a.seq, b.seq) == (1, 2) and a.nonce != b.nonce and a.job != b.job
    out = [m for m in f.pending() if m.topic == wire.topic("pull-001", "cmd")]
    assert len(out) == 2 and not out[0].retain
    sd = signed.decode_signed(wire.decode_envelope(out[0].payload, wire.CMD).body)
    kid, sig = sd.signatures[0]
    assert fleet.verify(f.keys.public_keys()[kid], update_job.CONTEXT_UPDATE, sd.payload, sig)
    assert not fleet.verify(f.keys.public_keys()[kid], signed.CONTEXT_CMD, sd.payload, sig)
    job = update_job.check_job(sd.document())
    assert job.gateway == "pull-001" and job.release == "1.0.1"
    assert job.manifest_sha256 == update_job.check_job(sd.document()).manifest_sha256
    assert job.expires_ms - job.issued_ms == 60_000
    with pytest.raises(fleet.NotFound):
        jobs.issue("pull-404", release, ttl_s=60, actor="alice")


def test_reports_are_kept_once_and_only_from_the_job_s_gateway(
    f: Fleet, release: ReleaseRef
) -> None:
    jobs = PullJobs(f)
    job = jobs.issue("pull-001", release, ttl_s=60, actor="alice").job
    jobs.record("pull-001", report(job, 1, "received", "running"))
    jobs.record("pull-001", report(job, 1, "received", "running"))  # sent again
    jobs.record("pull-002", report(job, 2, "finished", "done", "forged by another"))
    jobs.record("pull-001", report(job, 2, "finished", "refused", "sha", "bundle_checksum"))
    jobs.record("pull-001", report(job, 2, "finished", "refused", "sha", "bundle_checksum"))
    # a forged message claiming the job: refused for its signature, audited, never the job's
    jobs.record("pull-001", report(job, 3, "finished", "refused", "bad sig", "signature"))
    assert [r.n for r in jobs.reports(job)] == [1, 2]
    status = jobs.status(job)
    assert (status.outcome, status.code) == ("refused", "bundle_checksum")
    assert jobs.refusals("pull-001") == {"bundle_checksum": 1, "signature": 1}
    assert jobs.refusals("pull-002") == {}
    with pytest.raises(Exception, match=r"without .n."):
        jobs.record("pull-001", {"kind": "update"})


def gateway(jobs: PullJobs, gw: str, steps: list[tuple[str, str, str, str]]) -> threading.Thread:
    """A gateway answering its next job (from the hub's own table) with `steps`."""

    def run() -> None:
        for _ in range(200):
            with jobs.fleet._lock:
                row = jobs.fleet._db.execute(
                    "SELECT job FROM update_jobs WHERE gateway = ? AND outcome IS NULL", (gw,)
                ).fetchone()
            if row:
                for n, (step, outcome, reason, code) in enumerate(steps, 1):
                    jobs.record(gw, report(row[0], n, step, outcome, reason, code))
                return
            time.sleep(0.02)

    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.mark.parametrize(
    ("last", "expected", "version"),
    [
        (("finished", "done", "updated to 1.0.1, health gate passed", ""), Outcome.UPDATED, "1.0.1"),
        (("finished", "done", "unchanged: already runs 1.0.1", ""), Outcome.UNCHANGED, "1.0.1"),
        (("finished", "rolled_back", "rolled back to 1.0.0: 1.0.1 failed: uplink", ""), Outcome.ROLLED_BACK, "1.0.0"),
        (("finished", "failed", "update.yml failed: x", ""), Outcome.FAILED, None),
        (("finished", "refused", "another job runs", "busy"), Outcome.UNREACHABLE, None),
    ],
)  # fmt: skip
def test_executor_maps_the_last_report(
    f: Fleet,
    release: ReleaseRef,
    last: tuple[str, str, str, str],
    expected: Outcome,
    version: str | None,
) -> None:
    jobs = PullJobs(f)
    events: list[StepEvent] = []
    t = gateway(
        jobs,
        "pull-001",
        [("received", "running", "job", ""), ("playbook", "running", "Facts", ""), last],
    )
    results = PullExecutor(f, accept_s=10, timeout_s=20).run(
        release, [Target("pull-001", "pull")], events.append, threading.Event()
    )
    t.join()
    assert [r.outcome for r in results] == [expected], results
    assert results[0].version == version
    assert [e.state for e in events][:3] == ["ok", "ok", "started"]


def test_executor_unreachable_and_stopped(f: Fleet, release: ReleaseRef) -> None:
    stop = threading.Event()
    results = PullExecutor(f, accept_s=0.3, timeout_s=5).run(
        release, [Target("pull-001", "pull")], lambda e: None, stop
    )
    assert results[0].outcome is Outcome.UNREACHABLE and "expired" in results[0].reason
    stop.set()
    results = PullExecutor(f, accept_s=0.3).run(
        release, [Target("pull-002", "pull")], lambda e: None, stop
    )
    assert results[0].outcome is Outcome.UNREACHABLE and "not started" in results[0].reason
    assert PullJobs(f).status("u1-pull-001").outcome is None  # no job sent to pull-002
    with pytest.raises(fleet.NotFound):
        PullJobs(f).status("u1-pull-002")


def test_a_release_without_the_hub_s_public_url_gives_no_job(f: Fleet, release: ReleaseRef) -> None:
    relative = ReleaseRef("1.0.1", "/api/v1/releases/1.0.1/manifest", "/api/v1/releases/1.0.1/files/",
                          release.directory, {})  # fmt: skip
    with pytest.raises(fleet.FleetError, match="public URL"):
        PullJobs(f).issue("pull-001", relative, ttl_s=60, actor="alice")
    results = PullExecutor(f, accept_s=1).run(
        relative, [Target("pull-001", "pull")], lambda e: None, threading.Event()
    )
    assert results[0].outcome is Outcome.FAILED and "public URL" in results[0].reason
