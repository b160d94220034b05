"""The journal of one job: `<data>/update/jobs/<job>/journal.jsonl`, one JSON object per
report (`protocols.update_job.report` fields), appended and fsync'd by whichever process
does the step (the daemon when it accepts or refuses a job, the runner for the rest).

The daemon publishes the entries the hub has not been sent yet (`UpdateState.published`):
the runner outlives the daemon it restarts, and the next daemon goes on where the last one
stopped. An entry torn by a power cut (no closing newline) is ignored until it is whole.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from protocols import update_job

JOURNAL_NAME = "journal.jsonl"


class Journal:
    def __init__(self, job_dir: Path, job: str | None, seq: int | None, release: str | None):
        self.path = job_dir / JOURNAL_NAME
        self.job = job
        self.seq = seq
        self.release = release

    def entries(self) -> list[dict[str, object]]:
        return read_journal(self.path)

    def append(self, step: str, outcome: str, reason: str, code: str = "") -> dict[str, object]:
        n = len(self.entries()) + 1
        doc = update_job.report(
            self.job,
            self.seq,
            n,
            step,
            outcome,
            reason,
            self.release,
            int(time.time() * 1000),
            code,
        )
        line = (json.dumps(doc, separators=(",", ":")) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return doc

    def finished(self) -> dict[str, object] | None:
        for entry in reversed(self.entries()):
            if entry.get("outcome") in update_job.FINAL:
                return entry
        return None


def read_journal(path: Path) -> list[dict[str, object]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    out: list[dict[str, object]] = []
    for line in raw.split(b"\n")[:-1]:  # the part after the last newline is torn or empty
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


__all__ = ["JOURNAL_NAME", "Journal", "read_journal"]
