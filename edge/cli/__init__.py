"""`estran edge`: commands of the edge package."""

import click


@click.group()
def edge() -> None:
    """The gateway: run the daemon, inspect the buffer, scan, probe, enroll."""


from edge.cli import buffer as _buffer  # noqa: E402, F401  (registers `estran edge buffer`)
from edge.cli import doctor as _doctor  # noqa: E402, F401  (registers `estran edge doctor`)
from edge.cli import enroll as _enroll  # noqa: E402, F401  (registers `estran edge enroll`)
from edge.cli import probe as _probe  # noqa: E402, F401  (registers `estran edge probe`)
from edge.cli import run as _run  # noqa: E402, F401  (registers `estran edge run`)
from edge.cli import scan as _scan  # noqa: E402, F401  (registers `estran edge scan`)
from edge.cli import status as _status  # noqa: E402, F401  (registers `estran edge status`)
from edge.cli import wmbus as _wmbus  # noqa: E402, F401  (registers `estran edge wmbus`)
