"""The errors of fleet/: one root, each error named for what happened."""

from __future__ import annotations

from dataclasses import dataclass


class FleetError(Exception):
    """Root of every error raised by fleet/."""


class NotFound(FleetError):
    """No such gateway, group or token."""


class Conflict(FleetError):
    """The thing exists already, or the request contradicts the registry."""


class TokenRefused(FleetError):
    """An enrollment token was refused. `reason` is "unknown", "used", "expired" or "proof"."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    """One problem of a configuration document: `path` names the field."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigRejected(FleetError):
    """A configuration does not pass the schema; `issues` lists every problem."""

    def __init__(self, issues: list[SchemaIssue]) -> None:
        self.issues = list(issues)
        n = len(self.issues)
        head = f"configuration refused, {n} error{'s' if n != 1 else ''}:"
        super().__init__("\n".join([head, *(f"  {i}" for i in self.issues)]))


__all__ = [
    "ConfigRejected",
    "Conflict",
    "FleetError",
    "NotFound",
    "SchemaIssue",
    "TokenRefused",
]
