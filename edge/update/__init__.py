"""Pull-mode updates on the gateway (docs/updates.md, "Pull mode"): the hub's signed update
job arrives on the `cmd` topic; the `UpdateAgent` refuses a replayed, expired, tampered or
foreign one (typed code, counted, reported), and starts the job runner for the rest, which
fetches the release bundle from the hub, verifies it, and runs the same `update.yml` on this
machine with Ansible's local connection, under a lock; every step is reported on `report`.

Needs ansible-core only when a job runs: `pip install 'estran[edge,pull]'` in the release,
or a system ansible-playbook (docs/updates.md). The lean `estran[edge]` install stays lean.
"""

from edge.update._agent import VARS_FILE, UpdateAgent, report_message, spawn_runner, systemd_runner
from edge.update._errors import FetchError, JobRefused, UpdateError
from edge.update._journal import Journal, read_journal
from edge.update._runner import find_ansible_playbook, lock_held, run_job
from edge.update._state import UpdateState

__all__ = [
    "VARS_FILE",
    "FetchError",
    "JobRefused",
    "Journal",
    "UpdateAgent",
    "UpdateError",
    "UpdateState",
    "find_ansible_playbook",
    "lock_held",
    "read_journal",
    "report_message",
    "run_job",
    "spawn_runner",
    "systemd_runner",
]
