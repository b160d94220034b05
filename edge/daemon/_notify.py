"""systemd's notify protocol, by hand: a datagram of `KEY=value` lines to $NOTIFY_SOCKET.

    READY=1        startup done (Type=notify waits for it)
    RELOADING=1    a SIGHUP reload started (then READY=1 again)
    STOPPING=1     a clean stop started
    WATCHDOG=1     alive; must come within WatchdogSec ($WATCHDOG_USEC) or systemd restarts us
    STATUS=...     one line shown by `systemctl status`

No dependency: it is a few lines of socket code (sd_notify(3) documents the protocol). An
address starting with '@' is in the abstract namespace. Outside systemd (no $NOTIFY_SOCKET)
every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("estran.edge.daemon")


class SystemdNotifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        self.address: str | None = None
        if address is not None and (address.startswith("/") or address.startswith("@")):
            self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_s: float | None = None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send `fields` (e.g. "READY=1", "STATUS=running") as one datagram; False if not sent."""
        if self.address is None:
            return False
        message = "\n".join(f.replace("\n", " ") for f in fields).encode()
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.setblocking(False)
                sock.connect(self.address)
                self._sock = sock
            self._sock.send(message)
        except OSError as e:  # a full queue or a vanished manager must never stop the daemon
            log.debug("sd_notify %r: %r", fields, e)
            self.close()
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        fields = ["READY=1"] + ([f"STATUS={status}"] if status else [])
        return self.notify(*fields)

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


__all__ = ["SystemdNotifier"]
