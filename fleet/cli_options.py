"""Command-line options shared by every command that runs on the hub's machine.

`estran fleet`, `estran hub user|token|dataset|...`, `estran hub alert` and `estran hub
numeriscore` all open the hub's data directory and database the way `estran hub run` does:
one spelling of the options (and their environment variables) for all of them.
"""

from __future__ import annotations

from pathlib import Path

import click

hub_data_option = click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    envvar="ESTRAN_HUB_DATA",
    show_default=True,
    help="The hub's data directory (as for estran hub run).",
)

hub_db_option = click.option(
    "--db",
    default="sqlite",
    envvar="ESTRAN_HUB_DB",
    show_default=True,
    help="The hub's database, as for `estran hub run`.",
)
