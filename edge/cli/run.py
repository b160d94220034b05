"""`estran edge run --config FILE`: the gateway daemon (edge/daemon), in the foreground.

This is what the systemd unit starts. The configuration file is described in
docs/configuration.md; a refused configuration exits with status 78 (EX_CONFIG), so that
systemd does not restart a gateway in a loop on a typo.
"""

from pathlib import Path

import click


@click.command("run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The gateway configuration file (TOML).",
)
@click.option("--log-level", default=None, help="debug, info, warning (default: the file's).")
def run(config_path: Path, log_level: str | None) -> None:
    """Run the gateway: read the sensors, keep every reading, sync to the hub."""
    from edge.daemon import run_daemon

    raise SystemExit(run_daemon(config_path, log_level))


__all__ = ["run"]
