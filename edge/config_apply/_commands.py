"""The hub's commands (`protocols.signed.COMMANDS`) on the daemon: the runner the fleet link
hands to `ConfigApplier.handle_command`, on the hooks the daemon implements.

- `reload`: the daemon reads its file again (as SIGHUP does);
- `status`: how many sources it runs;
- `rescan`: every source restarts (serial ports reopened, BLE scan started again); the buffer,
  the uplink and the fleet link keep running;
- `flush`: the buffer is committed now and the uplink sends its backlog now (unpaced);
- `reboot`: a clean stop with exit status EX_RESTART (75, sysexits' EX_TEMPFAIL), once the
  outcome is reported, so that systemd starts the daemon again. The machine itself is never rebooted from here: that
  is an admin's (Ansible's) action.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from edge.config_apply._transaction import Outcome
from edge.health import HealthRegistry
from protocols import signed

# The daemon's exit status for a restart (edge.daemon.EX_RESTART is this same constant; this
# package does not import the daemon, which imports it).
EX_RESTART = os.EX_TEMPFAIL


class DaemonHooks(Protocol):
    """What the commands need of the daemon (`edge.daemon.Daemon` has it)."""

    health: HealthRegistry

    def request_reload(self) -> None: ...
    async def rescan(self) -> list[str]: ...
    async def flush(self) -> str: ...
    def request_restart(self) -> None: ...


class DaemonCommands:
    """`await commands(name, args)` runs a verified command and returns a short result;
    `after_report(outcome)` runs what must wait until the outcome is reported (the restart)."""

    def __init__(self, daemon: DaemonHooks) -> None:
        self.daemon = daemon
        self._restart = False

    async def __call__(self, name: str, args: Mapping[str, object]) -> str:
        daemon = self.daemon
        if name == "reload":
            daemon.request_reload()
            return "reload requested"
        if name == "status":
            return f"{len(daemon.health.sources)} source(s)"
        if name == "rescan":
            names = await daemon.rescan()
            return "restarted " + (", ".join(names) or "no sources")
        if name == "flush":
            return await daemon.flush()
        if name == "reboot":
            self._restart = True
            return f"the daemon restarts (exit {EX_RESTART}); the machine does not reboot"
        raise NotImplementedError(f"no command {name!r} on this gateway")

    def after_report(self, outcome: Outcome) -> None:
        if self._restart and outcome.kind == "cmd" and outcome.outcome == signed.DONE:
            self._restart = False
            self.daemon.request_restart()


__all__ = ["DaemonCommands", "DaemonHooks"]
