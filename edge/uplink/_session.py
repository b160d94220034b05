"""The uplink session counter: persisted, only grows, survives a wiped state directory.

Every MQTT connection of the gateway gets a new session number, sent in its birth, its Will
and its data batches. The hub trusts a higher session over a lower one (a late Will from a
dead connection must not mark a live gateway offline), so the counter must never go back:
it is stored atomically (temporary file, fsync, rename) and, should the file be lost, starts
again above the wall-clock seconds, which are above any count a gateway could have reached.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


class SessionCounter:
    FILE = "uplink-session.json"

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / self.FILE

    def current(self) -> int:
        try:
            data = json.loads(self.path.read_text())
            value = int(data["session"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        return max(value, 0)

    def next(self) -> int:
        """The next session number, durably recorded before it is returned."""
        value = self.current() + 1
        if value == 1:  # no file: never go below what a previous life may have used
            value = max(value, int(time.time()))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump({"session": value}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return value


__all__ = ["SessionCounter"]
