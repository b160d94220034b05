"""`estran edge`: the technician's commands, one module per command.

Each command is `edge/cli/<name>.py`, a click command (or group) named `<name>` in it. The
group below lists them explicitly and imports a module only when its command runs or shows
its help: `estran edge --help` imports none of them, and none of them imports this package.
The engines behind two of them are libraries of their own, usable without click:
`edge.probe` (which protocol a serial port speaks) and `edge.doctor` (the checks).
"""

import click

from edge.cli._lazy import LazyGroup

COMMANDS = ("buffer", "doctor", "enroll", "probe", "run", "scan", "status", "wmbus")


@click.group(
    cls=LazyGroup,
    lazy={name: f"edge.cli.{name}:{name}" for name in COMMANDS},
    extras=dict.fromkeys(COMMANDS, "edge"),
)
def edge() -> None:
    """The gateway: run the daemon, inspect the buffer, scan, probe, enroll."""


__all__ = ["COMMANDS", "LazyGroup", "edge"]
