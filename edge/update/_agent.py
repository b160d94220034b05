"""The update agent of a running daemon: it receives pull-mode update jobs from the fleet
link (the `cmd` topic), refuses what must be refused, starts the job runner for the rest,
and publishes every report of every job on the gateway's `report` topic.

    agent = UpdateAgent(data_dir, config_path, gateway_id)
    if agent.claims(payload): await agent.handle(payload, trusted_keys)   # from cmd
    await agent.pump(publish)        # while connected: publishes what the hub was not sent

A refusal (malformed, signature, foreign, replay, expired, busy) is counted by code in
`<data>/update/state.json` and reported at once; an accepted job's seq and id are recorded
before anything runs, so the same job never runs twice, even across a crash.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from edge.update._errors import JobRefused
from edge.update._journal import Journal, read_journal
from edge.update._runner import JOB_FILE, RUNNER_PID, SPEC_FILE, VARS_FILE, lock_held
from edge.update._state import KEEP_JOBS, UpdateState
from edge.update._verify import check_fresh, claimed, verify_message
from protocols import update_job, wire
from protocols.errors import ProtocolError

log = logging.getLogger("estran.edge.update")

POLL_S = 0.5  # journals of running jobs are read this often (nothing is read when idle)
RUNNER_START_S = 60.0  # a runner that has not taken its lock by then never started
MAX_REFUSALS_QUEUED = 32

Publish = Callable[[bytes], Awaitable[None]]
Launcher = Callable[[Path], "subprocess.Popen[bytes] | None"]


def report_message(doc: Mapping[str, object]) -> bytes:
    return wire.encode_envelope(wire.Envelope.of(wire.REPORT, dict(doc)))


def spawn_runner(job_dir: Path) -> subprocess.Popen[bytes]:
    """Process mode: the runner in a session of its own (it outlives the daemon it restarts)."""
    out = open(job_dir / "runner.log", "ab")  # noqa: SIM115 (the child holds it)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "edge.update", "run", str(job_dir)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            cwd=job_dir,
        )  # fmt: skip
    finally:
        out.close()


def systemd_runner(job_dir: Path) -> None:
    """systemd: the `estran-update@JOB` unit runs the job outside the daemon's unit (whose
    restart would kill it), as root (edge/systemd/estran-update@.service)."""
    subprocess.run(
        ["systemctl", "start", "--no-block", f"estran-update@{job_dir.name}.service"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


def default_launcher() -> Launcher:
    if os.environ.get("INVOCATION_ID") and Path("/run/systemd/system").is_dir():
        return systemd_runner
    return spawn_runner


class UpdateAgent:
    def __init__(
        self,
        data_dir: Path,
        config_path: Path,
        gateway_id: str,
        *,
        launcher: Launcher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dir = data_dir / "update"
        self.data_dir = data_dir
        self.config_path = config_path
        self.gateway_id = gateway_id
        self.launcher = launcher or default_launcher()
        self._clock = clock
        self._refusals: collections.deque[bytes] = collections.deque(maxlen=MAX_REFUSALS_QUEUED)
        self._children: list[subprocess.Popen[bytes]] = []
        self._wake = asyncio.Event()
        self.refused: dict[str, int] = dict(self._load().refused)

    def _load(self) -> UpdateState:
        try:
            return UpdateState.load(self.dir)
        except ValueError as e:  # a state a hand edit broke: start afresh, say so
            log.error("update state unreadable, starting afresh: %s", e)
            return UpdateState()

    # -- jobs -----------------------------------------------------------------------------------

    def claims(self, payload: bytes) -> bool:
        """Whether a `cmd` message is an update job (this agent's), not a command."""
        try:
            body = wire.decode_envelope(payload, wire.CMD).body
        except ProtocolError:
            return False
        return update_job.is_update_job(body)

    async def handle(self, payload: bytes, trusted: Mapping[str, bytes]) -> None:
        state = self._load()
        try:
            job = verify_message(payload, trusted, self.gateway_id)
            check_fresh(job, state, int(self._clock() * 1000))
            if lock_held(self.dir):
                raise JobRefused(update_job.BUSY, "another update job is running")
        except JobRefused as e:
            self._refuse(state, payload, e)
            return
        state.seq = job.seq
        state.jobs = [*state.jobs, job.job][-KEEP_JOBS:]
        state.published[job.job] = 0
        state.save(self.dir)  # before anything runs: the same job never runs twice
        job_dir = self.dir / "jobs" / job.job
        if job_dir.exists():
            shutil.rmtree(job_dir)
        job_dir.mkdir(parents=True)
        (job_dir / JOB_FILE).write_bytes(payload)
        spec = {
            "gateway": self.gateway_id,
            "job": job.job,
            "seq": job.seq,
            "release": job.release,
            "data_dir": str(self.data_dir),
            "config": str(self.config_path),
            "launched_ms": int(self._clock() * 1000),
        }
        (job_dir / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")
        journal = Journal(job_dir, job.job, job.seq, job.release)
        journal.append(update_job.RECEIVED, update_job.RUNNING, f"job {job.job}: {job.release}")
        log.info("update job %s (seq %d): %s, starting the runner", job.job, job.seq, job.release)
        try:
            child = self.launcher(job_dir)
        except (OSError, subprocess.SubprocessError) as e:
            journal.append(update_job.FINISHED, update_job.FAILED, f"the runner did not start: {e}")
        else:
            if child is not None:
                self._children.append(child)
        self._prune(state)
        self._wake.set()

    def _refuse(self, state: UpdateState, payload: bytes, e: JobRefused) -> None:
        log.warning("update job refused (%s): %s", e.code, e.reason)
        state.refused[e.code] = state.refused.get(e.code, 0) + 1
        state.save(self.dir)
        self.refused = dict(state.refused)
        job, seq = claimed(payload)
        doc = update_job.report(
            job, seq, 1, update_job.FINISHED, update_job.REFUSED, e.reason, None,
            int(self._clock() * 1000), e.code,
        )  # fmt: skip
        self._refusals.append(report_message(doc))
        self._wake.set()

    def _prune(self, state: UpdateState) -> None:
        jobs = self.dir / "jobs"
        keep = set(state.jobs)
        for d in jobs.iterdir() if jobs.is_dir() else ():
            if d.name not in keep:
                shutil.rmtree(d, ignore_errors=True)

    # -- reports --------------------------------------------------------------------------------

    def _dead_runner(self, job_dir: Path) -> str | None:
        """Why a job without its last report will never get one (its runner is gone)."""
        if lock_held(self.dir):
            return None
        if (job_dir / RUNNER_PID).exists():
            return "the runner stopped before the end (killed, or a power cut)"
        try:
            launched = json.loads((job_dir / SPEC_FILE).read_text())["launched_ms"]
        except (OSError, ValueError, KeyError):
            return "the job's files are unreadable"
        if self._clock() * 1000 - int(launched) > RUNNER_START_S * 1000:
            return f"the runner did not start within {RUNNER_START_S:g} s"
        return None

    def _unpublished(
        self, state: UpdateState
    ) -> tuple[list[tuple[str, int, dict[str, object]]], bool]:
        """(job, n, entry) not sent yet, and whether a job is still running."""
        out: list[tuple[str, int, dict[str, object]]] = []
        running = False
        for job in state.jobs:
            sent = state.published.get(job)
            if sent is None:
                continue
            job_dir = self.dir / "jobs" / job
            entries = read_journal(job_dir / "journal.jsonl")
            final = any(e.get("outcome") in update_job.FINAL for e in entries)
            if not final and entries:
                why = self._dead_runner(job_dir)
                if why is not None:
                    first = entries[0]
                    rel = first.get("release")
                    seq = first.get("seq")
                    Journal(job_dir, job, seq if isinstance(seq, int) else None,
                            rel if isinstance(rel, str) else None).append(
                        update_job.FINISHED, update_job.FAILED, why)  # fmt: skip
                    entries = read_journal(job_dir / "journal.jsonl")
                    final = True
            if not final:
                running = True
            out.extend((job, i + 1, e) for i, e in enumerate(entries) if i >= sent)
        return out, running

    async def pump(self, publish: Publish) -> None:
        """Publish refusals and journal entries until cancelled (a failed publish raises: the
        fleet link tries again). On every new session the last job's reports are all sent
        again first: the broker's ack says the broker has a report, not that the hub recorded
        it (a hub that stopped in between lost it); the hub keeps each (job, n) once."""
        state = self._load()
        if state.jobs and state.jobs[-1] in state.published:
            last = state.jobs[-1]
            sent = state.published[last]
            for entry in read_journal(self.dir / "jobs" / last / "journal.jsonl")[:sent]:
                await publish(report_message(entry))
        while True:
            self._children = [c for c in self._children if c.poll() is None]  # reap
            while self._refusals:
                await publish(self._refusals[0])
                self._refusals.popleft()
            state = self._load()
            pending, running = self._unpublished(state)
            for job, n, entry in pending:
                await publish(report_message(entry))
                state.published[job] = n
                code = entry.get("code")
                if entry.get("outcome") == update_job.REFUSED and isinstance(code, str) and code:
                    state.refused[code] = state.refused.get(code, 0) + 1  # the runner's refusal
                    self.refused = dict(state.refused)
                state.save(self.dir)
            if running or self._children:
                await asyncio.sleep(POLL_S)
            else:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(60):
                        await self._wake.wait()


__all__ = ["VARS_FILE", "UpdateAgent", "report_message", "spawn_runner", "systemd_runner"]
