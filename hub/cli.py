"""`estran hub`: commands of the hub package."""

import click


@click.group()
def hub() -> None:
    """The hub: run the central service (broker, ingest, storage, HTTP API)."""
