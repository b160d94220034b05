"""`estran fleet`: commands of the fleet package."""

import click


@click.group()
def fleet() -> None:
    """The fleet: tokens, gateways, groups, signed configuration."""
