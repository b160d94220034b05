"""Rate-limited warnings: what a remote peer can trigger must not flood the log."""

from __future__ import annotations

import logging
import time


class LogLimiter:
    """At most `burst` warnings per `period` seconds; the rest are counted and summarised
    ("N more <what> not logged") when the next period starts."""

    def __init__(
        self, logger: logging.Logger, what: str, period: float = 10.0, burst: int = 5
    ) -> None:
        self.logger = logger
        self.what = what
        self.period = period
        self.burst = burst
        self._window = 0.0
        self._count = 0
        self._suppressed = 0

    def warn(self, msg: str, *args: object) -> None:
        t = time.monotonic()
        if t - self._window > self.period:
            if self._suppressed:
                self.logger.warning("%d more %s not logged", self._suppressed, self.what)
            self._window, self._count, self._suppressed = t, 0, 0
        self._count += 1
        if self._count <= self.burst:
            self.logger.warning(msg, *args)
        else:
            self._suppressed += 1


__all__ = ["LogLimiter"]
