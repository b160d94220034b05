"""`estran edge`: commands of the edge package."""

import click


@click.group()
def edge() -> None:
    """The gateway: run the daemon, inspect the buffer, scan, probe, enroll."""
