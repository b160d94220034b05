"""`estran edge enroll`: enroll this gateway with the hub, in one command."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge.cli import edge


@edge.command("enroll")
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
@click.option("--force", is_flag=True, help="Enroll again with a new key pair.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def enroll_command(
    hub_url: str,
    token: str,
    data_dir: Path,
    hub_fingerprint: str | None,
    site: str | None,
    ca_file: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Make this gateway's key pair, prove it to the hub, and keep its identity, broker
    credentials, the hub's keys and its first configuration in DATA.

    \b
    estran edge enroll --hub https://hub.example --token et1.4f2a9c1e.Xy...Q.8c1f0e2d4b6a7788
    """
    from edge.identity import EnrollError, enroll

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
                }
            )
        )
        return
    click.echo(f"enrolled as {ident.gateway_id} (group {ident.group})")
    click.echo(f"  gateway key  {ident.key_id}  (private key: {data_dir / 'identity/gateway.key'})")
    click.echo(f"  hub keys     {', '.join(sorted(result.hub_keys))}")
    click.echo(f"  broker       {ident.broker} as {ident.username}")
    click.echo(f"  credentials  {data_dir / 'credentials'}")
    click.echo("the first configuration is applied when the daemon starts")
