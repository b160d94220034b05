"""What the rollout engine calls to update gateways: an executor (/work/notes ROLLOUT-SEAM,
docs/updates.md). Push mode (`fleet._push`: ansible-runner over SSH or the local connection)
and pull mode (a signed update job on the gateway's cmd topic) implement the same protocol;
the engine (`fleet._rollouts`) knows nothing else of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal, Protocol

from fleet._errors import FleetError

Mode = Literal["push", "pull"]
MODES: tuple[Mode, ...] = ("push", "pull")
LOG_LIMIT = 16 << 10  # bytes of a gateway's log kept in the audit log


class Outcome(StrEnum):
    UPDATED = "updated"  # runs the release now, its gate passed
    UNCHANGED = "unchanged"  # ran it already (self-checked only)
    ROLLED_BACK = "rolled_back"  # the gate failed, back on N by itself: a failure
    FAILED = "failed"  # anything else (bundle refused, no N to go back to...): a failure
    UNREACHABLE = "unreachable"  # never started: deferred and retried, not a failure

    @property
    def failure(self) -> bool:
        return self in (Outcome.ROLLED_BACK, Outcome.FAILED)


StepState = Literal["started", "ok", "changed", "failed", "skipped", "unreachable"]


@dataclass(frozen=True, slots=True)
class ReleaseRef:
    """A release the hub holds: `manifest` is its checked manifest payload
    (protocols.release), `directory` the extracted bundle on the hub."""

    version: str
    manifest_url: str  # {hub}/api/v1/releases/{version}/manifest (the signed document)
    files_url: str  # {hub}/api/v1/releases/{version}/files/ + a file's name
    directory: Path | None
    manifest: Mapping[str, object]

    @property
    def wheel(self) -> str:
        return str(self.manifest["wheel"])

    def sha256(self, name: str) -> str:
        files = self.manifest["files"]
        assert isinstance(files, Mapping)
        entry = files[name]
        assert isinstance(entry, Mapping)
        return str(entry["sha256"])

    def has(self, name: str) -> bool:
        files = self.manifest["files"]
        return isinstance(files, Mapping) and name in files


@dataclass(frozen=True, slots=True)
class Target:
    gateway_id: str
    group: str
    hostvars: Mapping[str, object] = field(default_factory=dict)  # the inventory's host vars


@dataclass(frozen=True, slots=True)
class StepEvent:
    """One step of one gateway's update, streamed while it runs."""

    gateway_id: str
    ts_ms: int
    step: str  # push: the Ansible task; pull: the agent's step
    state: StepState
    detail: str = ""


@dataclass(frozen=True, slots=True)
class GatewayResult:
    gateway_id: str
    outcome: Outcome
    reason: str  # "" when updated or unchanged
    started_ms: int
    finished_ms: int
    version: str | None = None  # what the gateway runs at the end, when known
    log: str = ""  # a readable tail, at most LOG_LIMIT bytes
    failed_ms: int | None = None  # when its first step failed (a rollback: the gate)


class RunAborted(FleetError):
    """The runner's owner stops (the hub shuts down): the batch under way was ended and its
    gateways are left `running`, for the next runner to run again."""


class Executor(Protocol):
    """Updates one batch of gateways to a release. `run` blocks, returns exactly one result
    per target and raises (fleet.FleetError) only when it cannot run at all; a gateway's
    problem is its result. `stop` set: no further gateway starts (those come back
    UNREACHABLE, reason 'not started: ...'); started ones finish."""

    mode: Mode

    def run(
        self,
        release: ReleaseRef,
        targets: Sequence[Target],
        on_event: Callable[[StepEvent], None],
        stop: threading.Event,
    ) -> list[GatewayResult]: ...


def tail(text: str, limit: int = LOG_LIMIT) -> str:
    """The end of a log, at most `limit` bytes of UTF-8."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return "…" + data[-limit:].decode(errors="ignore")


__all__ = [
    "LOG_LIMIT",
    "MODES",
    "Executor",
    "GatewayResult",
    "Mode",
    "Outcome",
    "ReleaseRef",
    "RunAborted",
    "StepEvent",
    "StepState",
    "Target",
    "tail",
]
