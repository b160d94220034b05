"""`estran edge`: commands of the edge package."""

import click


@click.group()
def edge() -> None:
    """The gateway: run the daemon, inspect the buffer, scan, probe, enroll."""


from edge import buffer_cli as _buffer_cli  # noqa: E402, F401  (registers `estran edge buffer`)
from edge import enroll_cmd as _enroll_cmd  # noqa: E402, F401  (registers `estran edge enroll`)
from edge import run_cmd as _run_cmd  # noqa: E402, F401  (registers `estran edge run`)
from edge import status_cmd as _status_cmd  # noqa: E402, F401  (registers `estran edge status`)
from edge.ble import scan_cmd as _scan_cmd  # noqa: E402, F401  (registers `estran edge scan`)
from edge.doctor import _cmd as _doctor_cmd  # noqa: E402, F401  (registers `estran edge doctor`)
from edge.serial import probe_cmd as _probe_cmd  # noqa: E402, F401  (registers `estran edge probe`)
from edge.serial import wmbus_cmd as _wmbus_cmd  # noqa: E402, F401  (registers `estran edge wmbus`)
