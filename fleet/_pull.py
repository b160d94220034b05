"""Pull mode on the hub: signed update jobs for gateways behind NAT or on mobile links, and
the reports they answer (docs/updates.md, "Pull mode"; the job format is
`protocols.update_job`).

- `PullJobs(fleet).issue(gateway, release, ttl_s, actor)` signs a job with the hub's keys
  (context `CONTEXT_UPDATE`), queues it on the gateway's `cmd` topic through the fleet
  outbox, and records it in `update_jobs`;
- `PullJobs(fleet).record(gateway, report)`: what the hub's MQTT task calls for every report
  of kind `update`; each one is kept once (job, n) in `update_reports`, a job's final one sets
  its outcome; a report about another gateway's job is refused; refusals are audited;
- `PullExecutor(fleet)`: the rollout engine's executor for mode `pull` (fleet._executor):
  issues one job per target, turns its reports into step events and its last report into a
  `GatewayResult`. A gateway that does not answer within `accept_s` is UNREACHABLE (its job
  expires then: it never runs later).

Tables are created here (`CREATE TABLE IF NOT EXISTS`): they belong to this module alone.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleet._errors import Conflict, FleetError, NotFound
from fleet._executor import (
    GatewayResult,
    Mode,
    Outcome,
    ReleaseRef,
    StepEvent,
    StepState,
    Target,
    tail,
)
from fleet._fleet import Fleet
from protocols import update_job, wire
from protocols.errors import ProtocolError

SCHEMA = """
CREATE TABLE IF NOT EXISTS update_jobs (
    job TEXT PRIMARY KEY, gateway TEXT NOT NULL, seq INTEGER NOT NULL, release TEXT NOT NULL,
    issued_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, issued_by TEXT NOT NULL,
    outcome TEXT, code TEXT, reason TEXT, finished_ms INTEGER);
CREATE INDEX IF NOT EXISTS update_jobs_gateway ON update_jobs (gateway, seq);
CREATE TABLE IF NOT EXISTS update_reports (
    job TEXT NOT NULL, n INTEGER NOT NULL, gateway TEXT NOT NULL, step TEXT NOT NULL,
    outcome TEXT NOT NULL, code TEXT NOT NULL, reason TEXT NOT NULL, ts_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL, PRIMARY KEY (job, n));
"""

POLL_S = 0.5
MANIFEST_FILE = "manifest.signed"  # in a release's directory on the hub (fleet releases)
_ROLLED_BACK_TO = re.compile(r"rolled back to (\S+?):")


@dataclass(frozen=True, slots=True)
class JobReport:
    job: str
    n: int
    step: str
    outcome: str
    code: str
    reason: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class JobStatus:
    job: str
    gateway: str
    seq: int
    release: str
    issued_ms: int
    expires_ms: int
    outcome: str | None  # None while it runs (or was never answered)
    code: str | None
    reason: str | None
    finished_ms: int | None


def manifest_sha256(release: ReleaseRef) -> str:
    """The SHA-256 of the release's signed manifest as the hub serves it (the job pins it):
    `manifest.signed` of the extracted bundle, or the bytes `manifest_url` serves."""
    if release.directory is not None and (release.directory / MANIFEST_FILE).is_file():
        data = (release.directory / MANIFEST_FILE).read_bytes()
    else:
        try:
            with urllib.request.urlopen(release.manifest_url, timeout=30) as response:
                data = response.read(1 << 20)
        except OSError as e:
            raise FleetError(f"the manifest of {release.version}: {e}") from e
    return hashlib.sha256(data).hexdigest()


class PullJobs:
    """Update jobs and their reports, in the fleet's database."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        with fleet._lock:
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    fleet._db.execute(stmt)

    def issue(
        self, gateway_id: str, release: ReleaseRef, *, ttl_s: float, actor: str
    ) -> update_job.UpdateJob:
        """Sign and queue one job for `gateway_id` to run `release`; expires in `ttl_s`."""
        f = self.fleet
        manifest_sha = manifest_sha256(release)
        with f._tx() as db:
            row = db.execute("SELECT state FROM gateways WHERE id = ?", (gateway_id,)).fetchone()
            if row is None:
                raise NotFound(f"no gateway {gateway_id!r}")
            if row[0] != "active":
                raise Conflict(f"{gateway_id} is revoked")
            last = db.execute(
                "SELECT MAX(seq) FROM update_jobs WHERE gateway = ?", (gateway_id,)
            ).fetchone()[0]
            seq = int(last or 0) + 1
            now = f._now_ms()
            job = update_job.UpdateJob(
                gateway_id,
                f"u{seq}-{gateway_id}"[: update_job.MAX_JOB_ID],
                seq,
                os.urandom(update_job.NONCE_BYTES),
                now,
                now + max(1, int(ttl_s * 1000)),
                release.version,
                release.manifest_url,
                release.files_url,
                manifest_sha,
            )
            try:
                job.payload()  # checks the job as the gateway will
            except ProtocolError as e:
                raise FleetError(
                    f"no update job for {gateway_id}: {e} (gateways fetch the release from the"
                    " hub's public URL: `estran hub run --public-url`, `rollout start --hub-url`)"
                ) from e
            body = f.keys.sign_document(update_job.CONTEXT_UPDATE, job.document())
            message = wire.encode_envelope(wire.Envelope(wire.CMD, body))
            db.execute(
                "INSERT INTO update_jobs (job, gateway, seq, release, issued_ms, expires_ms,"
                " issued_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job.job, gateway_id, seq, release.version, now, job.expires_ms, actor),
            )
            f._queue(db, wire.topic(gateway_id, "cmd"), message, retain=False)
            f._audit(db, actor, "update.job", gateway_id, job=job.job, release=release.version)
            f._bump(db)
        return job

    def record(self, gateway_id: str, document: object) -> None:
        """One `update` report of `gateway_id` (shape checked by protocols.update_job)."""
        doc = update_job.check_report(document)
        f = self.fleet
        job = doc.get("job")
        code, outcome, reason = str(doc["code"]), str(doc["outcome"]), str(doc["reason"])
        with f._tx() as db:
            row = db.execute("SELECT state FROM gateways WHERE id = ?", (gateway_id,)).fetchone()
            if row is None or row[0] != "active":
                raise NotFound(f"no active gateway {gateway_id!r}")
            owner = None
            if isinstance(job, str):
                r = db.execute("SELECT gateway FROM update_jobs WHERE job = ?", (job,)).fetchone()
                owner = None if r is None else r[0]
            # A refusal whose claims cannot be trusted (unsigned, malformed), or that is about
            # a message and not a job (a replay collides with the job it replays), is audited
            # and nothing else; so is one about another gateway's job.
            untrusted = code in (update_job.SIGNATURE, update_job.MALFORMED_JOB, update_job.REPLAY)
            if untrusted or owner != gateway_id or not isinstance(job, str):
                if outcome == update_job.REFUSED:
                    f._audit(
                        db, gateway_id, "update.refused", gateway_id,
                        job=job, seq=doc.get("seq"), code=code, reason=reason,
                    )  # fmt: skip
                    f._bump(db)
                return
            cur = db.execute(
                "INSERT OR IGNORE INTO update_reports (job, n, gateway, step, outcome, code,"
                " reason, ts_ms, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job, doc["n"], gateway_id, doc["step"], outcome, code, reason, doc["ts_ms"],
                 f._now_ms()),
            )  # fmt: skip
            if cur.rowcount and outcome == update_job.REFUSED:  # a report sent again: once
                f._audit(db, gateway_id, "update.refused", gateway_id, job=job,
                         seq=doc.get("seq"), code=code, reason=reason)  # fmt: skip
            if cur.rowcount and outcome in update_job.FINAL:
                done = db.execute(
                    "UPDATE update_jobs SET outcome = ?, code = ?, reason = ?, finished_ms = ?"
                    " WHERE job = ? AND outcome IS NULL",
                    (outcome, code, reason, f._now_ms(), job),
                )
                if done.rowcount:
                    f._audit(db, gateway_id, "update.finished", gateway_id, job=job,
                             outcome=outcome, code=code, reason=reason)  # fmt: skip
            f._bump(db)

    def status(self, job: str) -> JobStatus:
        with self.fleet._lock:
            r = self.fleet._db.execute(
                "SELECT job, gateway, seq, release, issued_ms, expires_ms, outcome, code, reason,"
                " finished_ms FROM update_jobs WHERE job = ?",
                (job,),
            ).fetchone()
        if r is None:
            raise NotFound(f"no update job {job!r}")
        return JobStatus(*r)

    def reports(self, job: str, after: int = 0) -> list[JobReport]:
        with self.fleet._lock:
            rows = self.fleet._db.execute(
                "SELECT job, n, step, outcome, code, reason, ts_ms FROM update_reports"
                " WHERE job = ? AND n > ? ORDER BY n",
                (job, after),
            ).fetchall()
        return [JobReport(*r) for r in rows]

    def refusals(self, gateway_id: str) -> dict[str, int]:
        """The refusals `gateway_id` reported, counted by code."""
        out: dict[str, int] = {}
        for entry in self.fleet.audit(target=gateway_id, action="update.refused", limit=10_000):
            code = str(entry.detail.get("code"))
            out[code] = out.get(code, 0) + 1
        return out


def _step_state(report: JobReport) -> StepState:
    if report.outcome == update_job.RUNNING:
        return "started" if report.step == update_job.PLAYBOOK else "ok"
    return "changed" if report.outcome == update_job.DONE else "failed"


def _result(
    target: Target, release: ReleaseRef, status: JobStatus, log: list[str]
) -> GatewayResult:
    outcome, reason = status.outcome, status.reason or ""
    version: str | None = None
    if outcome == update_job.DONE:
        result = Outcome.UNCHANGED if reason.startswith("unchanged") else Outcome.UPDATED
        reason, version = "", release.version
    elif outcome == update_job.ROLLED_BACK:
        result = Outcome.ROLLED_BACK
        m = _ROLLED_BACK_TO.search(reason)
        version = m.group(1) if m else None
    elif outcome == update_job.REFUSED and status.code == update_job.BUSY:
        result = Outcome.UNREACHABLE  # another job runs there: not started, tried again later
        reason = f"not started: {reason}"
    else:
        result = Outcome.FAILED
        if outcome == update_job.REFUSED:
            reason = f"refused ({status.code}): {reason}"
    return GatewayResult(
        target.gateway_id, result, reason, status.issued_ms,
        status.finished_ms or status.issued_ms, version, tail("\n".join(log)),
    )  # fmt: skip


def now_ms() -> int:
    return int(time.time() * 1000)


class PullExecutor:
    """The rollout engine's executor for pull mode (fleet._executor.Executor)."""

    mode: Mode = "pull"

    def __init__(
        self,
        fleet: Fleet,
        *,
        accept_s: float = 60.0,
        timeout_s: float = 900.0,
        actor: str = "rollout",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jobs = PullJobs(fleet)
        self.accept_s = accept_s
        self.timeout_s = timeout_s
        self.actor = actor
        self._clock = clock

    def run(
        self,
        release: ReleaseRef,
        targets: Sequence[Target],
        on_event: Callable[[StepEvent], None],
        stop: threading.Event,
    ) -> list[GatewayResult]:
        results: dict[str, GatewayResult] = {}
        running: dict[str, tuple[Target, str, float]] = {}  # gateway: (target, job, started)
        seen: dict[str, int] = {}
        logs: dict[str, list[str]] = {}
        for t in targets:
            if stop.is_set():
                results[t.gateway_id] = GatewayResult(
                    t.gateway_id, Outcome.UNREACHABLE, "not started: paused or cancelled",
                    now_ms(), now_ms(),
                )  # fmt: skip
                continue
            try:
                issued = self.jobs.issue(
                    t.gateway_id, release, ttl_s=self.accept_s, actor=self.actor
                )
            except FleetError as e:
                results[t.gateway_id] = GatewayResult(
                    t.gateway_id, Outcome.FAILED, f"no job: {e}", now_ms(), now_ms()
                )
                continue
            running[t.gateway_id] = (t, issued.job, self._clock())
            seen[t.gateway_id] = 0
            logs[t.gateway_id] = [f"job {issued.job} (seq {issued.seq}) sent: {release.version}"]
            on_event(StepEvent(t.gateway_id, now_ms(), "job sent", "ok", issued.job))
        while running:
            for gw, (t, job, started) in list(running.items()):
                for r in self.jobs.reports(job, seen[gw]):
                    seen[gw] = r.n
                    detail = r.reason if not r.code else f"{r.code}: {r.reason}"
                    logs[gw].append(f"{r.n:3d} {r.step:9s} {r.outcome:11s} {detail}")
                    on_event(StepEvent(gw, r.ts_ms, f"{r.step}: {r.reason}"[:200], _step_state(r),
                                       detail))  # fmt: skip
                status = self.jobs.status(job)
                if status.outcome is not None:
                    results[gw] = _result(t, release, status, logs[gw])
                    del running[gw]
                elif seen[gw] == 0 and self._clock() - started > self.accept_s:
                    results[gw] = GatewayResult(
                        gw, Outcome.UNREACHABLE,
                        f"no answer to job {job} within {self.accept_s:g} s (it has expired)",
                        status.issued_ms, now_ms(), None, tail("\n".join(logs[gw])),
                    )  # fmt: skip
                    del running[gw]
                elif self._clock() - started > self.timeout_s:
                    results[gw] = GatewayResult(
                        gw, Outcome.FAILED,
                        f"job {job}: no last report within {self.timeout_s:g} s",
                        status.issued_ms, now_ms(), None, tail("\n".join(logs[gw])),
                    )  # fmt: skip
                    del running[gw]
            if running:
                time.sleep(POLL_S)
        return [results[t.gateway_id] for t in targets]


__all__ = ["JobReport", "JobStatus", "PullExecutor", "PullJobs", "manifest_sha256"]
