"""Logs for journald and for a human at a terminal.

Under systemd (journald sets $JOURNAL_STREAM for the services whose stderr it reads), each
line starts with a syslog priority `<N>` that journald turns into the entry's priority
(`journalctl -p warning` works) and carries no timestamp (journald stamps every entry).
At a terminal, lines carry a local timestamp and the level name. A traceback's every line
gets the prefix so that journald keeps it at the record's priority.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

PRIORITIES = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def _priority(levelno: int) -> int:
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return PRIORITIES[level]
    return 7


class JournalFormatter(logging.Formatter):
    """`<N>logger: message`, each line of a multi-line record prefixed."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


class HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")


def under_journald(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM"))


def setup_logging(
    level: str = "info", stream: TextIO | None = None, journald: bool | None = None
) -> logging.Handler:
    """Configure the `estran` loggers (and the root, for libraries) once; returns the handler."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    use_journal = under_journald() if journald is None else journald
    handler.setFormatter(JournalFormatter() if use_journal else HumanFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_estran", False)]:
        root.removeHandler(old)
    handler._estran = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # libraries: warnings and up
    for name in ("estran", "edge"):  # our loggers: "estran.edge...." and module names
        logging.getLogger(name).setLevel(level.upper())
    return handler


__all__ = ["HumanFormatter", "JournalFormatter", "setup_logging", "under_journald"]
