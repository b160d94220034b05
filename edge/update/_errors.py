"""Why an update job is refused or fails: a typed code (`protocols.update_job.REFUSALS`, or
`failed`) with a reason in words; both reach the hub in the job's report."""

from __future__ import annotations

from edge.errors import EdgeError
from protocols import update_job


class UpdateError(EdgeError):
    """Root of the update agent's errors."""


class JobRefused(UpdateError):
    """A job (or its bundle) that the gateway will not run: `code` is one of
    `protocols.update_job.REFUSALS`, `reason` says why in words."""

    def __init__(self, code: str, reason: str) -> None:
        if code not in update_job.REFUSALS:
            raise ValueError(f"unknown refusal code {code!r}")
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class FetchError(UpdateError):
    """The bundle could not be downloaded (network, HTTP status, size): the job fails, the
    running release is kept."""


__all__ = ["FetchError", "JobRefused", "UpdateError"]
