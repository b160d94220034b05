"""Configuration errors: every problem found, each naming its field."""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import EdgeError


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem: `path` names the field (`serial[1].devices[0].address`), `message` says
    what is wrong (`must be 1..247, got 300`)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(EdgeError):
    """The configuration cannot be used. `issues` lists every problem found, not only the
    first, so that a technician fixes the file in one pass."""

    def __init__(self, issues: list[ConfigIssue], source: str = "") -> None:
        self.issues = list(issues)
        self.source = source
        where = f" in {source}" if source else ""
        count = len(self.issues)
        head = f"{count} error{'s' if count != 1 else ''}{where}:"
        super().__init__("\n".join([head, *(f"  {issue}" for issue in self.issues)]))


__all__ = ["ConfigError", "ConfigIssue"]
