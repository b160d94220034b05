"""`estran edge enroll`: enroll this gateway with the hub, in one command."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge.config import DEFAULT_CONFIG


@click.command("enroll")
@click.option(
    "--hub", "hub_url", required=True, help="The hub's HTTP address, e.g. https://hub.example"
)
@click.option(
    "--token", required=True, help="The enrollment token from `estran fleet token create`."
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/var/lib/estran"),
    show_default=True,
    help="The gateway's data directory (state, key, credentials).",
)
@click.option(
    "--hub-fingerprint",
    default=None,
    help="The hub key id printed by the hub; checked against the one in the token.",
)
@click.option("--site", default=None, help="Where the gateway is installed (free text).")
@click.option(
    "--ca",
    "ca_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The hub's CA certificate (estran fleet tls init), for https:// and mqtts://.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="The configuration file to write (or update: its gateway id, data directory, "
    "broker and credentials; the rest is kept).",
)
@click.option("--no-config", is_flag=True, help="Leave the configuration file alone.")
@click.option("--force", is_flag=True, help="Enroll again with a new key pair.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def enroll(
    hub_url: str,
    token: str,
    data_dir: Path,
    hub_fingerprint: str | None,
    site: str | None,
    ca_file: Path | None,
    config_path: Path,
    no_config: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Make this gateway's key pair, prove it to the hub, and keep its identity, broker
    credentials, the hub's keys and its first configuration in DATA; write (or update) the
    configuration file so that the daemon runs as enrolled; say what to do next.

    \b
    estran edge enroll --hub https://hub.example --token et1.4f2a9c1e.Xy...Q.8c1f0e2d4b6a7788
    """
    from edge.identity import ConfigFileError, EnrollError, enroll, enrolled_fields, write_config

    if not hub_url.lower().startswith("https://"):
        click.echo(
            f"warning: {hub_url} is not https://: the enrollment token goes out and the broker "
            "password comes back in clear, readable (and changeable) by anyone on the way. "
            "Use https:// (`estran fleet tls init` on the hub, then --ca) on any network you do "
            "not control.",
            err=True,
        )
    try:
        result = enroll(
            hub_url,
            token,
            data_dir,
            hub_fingerprint=hub_fingerprint,
            site=site,
            force=force,
            ca_file=ca_file,
        )
    except EnrollError as e:
        raise click.ClickException(str(e)) from e
    ident = result.identity
    credentials = data_dir / "credentials"
    written: str | None = None
    problem: ConfigFileError | None = None
    if not no_config:
        fields = enrolled_fields(ident.gateway_id, data_dir.absolute(), ident.broker, credentials)
        try:
            written = write_config(config_path, fields)
        except ConfigFileError as e:
            problem = e
    if as_json:
        click.echo(
            json.dumps(
                {
                    "gateway_id": ident.gateway_id,
                    "group": ident.group,
                    "broker": ident.broker,
                    "key_id": ident.key_id,
                    "hub_keys": sorted(result.hub_keys),
                    "data": str(data_dir),
                    "config": None if no_config else str(config_path),
                    "config_written": written,
                    "config_error": None if problem is None else str(problem),
                }
            )
        )
        return
    click.echo(f"enrolled as {ident.gateway_id} (group {ident.group})")
    click.echo(f"  gateway key  {ident.key_id}  (private key: {data_dir / 'identity/gateway.key'})")
    click.echo(f"  hub keys     {', '.join(sorted(result.hub_keys))}")
    click.echo(f"  broker       {ident.broker} as {ident.username}")
    click.echo(f"  credentials  {credentials}")
    if written is not None:
        click.echo(f"  config       {config_path} {written} (gateway id, broker, credentials)")
    elif problem is not None:
        click.echo(f"warning: {problem}; put these lines in the configuration:", err=True)
        click.echo(problem.snippet.rstrip(), err=True)
    config_arg = "" if config_path == DEFAULT_CONFIG else f" --config {config_path}"
    click.echo("next:")
    click.echo(
        "  1. add the sensors: `estran edge probe /dev/ttyUSB0` (a serial port) and "
        f"`estran edge scan` (BLE) print the tables to paste into {config_path}"
    )
    click.echo(f"  2. check the gateway: estran edge doctor{config_arg}")
    click.echo("  3. start the daemon: sudo systemctl enable --now estran-edge")
    click.echo(
        "  4. watch it: estran edge status; the first configuration from the hub is applied "
        "when the daemon starts"
    )
