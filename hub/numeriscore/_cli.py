"""`estran hub numeriscore`: the day books on the hub's machine, as a table, JSON or CSV."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import click

from fleet.cli_options import hub_data_option, hub_db_option
from hub._errors import HubError


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected YYYY-MM-DD", param_hint=name) from None


@click.command("numeriscore")
@hub_data_option
@hub_db_option
@click.option("--from", "first", default=None, help="First day, YYYY-MM-DD.")
@click.option("--to", "last", default=None, help="Last day, YYYY-MM-DD.")
@click.option("--gateway", default=None, help="Only this gateway.")
@click.option(
    "--gateway-hardware",
    type=click.Choice(["rpi4", "rpi3b+", "rpi-zero-2w", "cm4"]),
    default="rpi4",
    show_default=True,
)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
def numeriscore(
    data: Path,
    db: str,
    first: str | None,
    last: str | None,
    gateway: str | None,
    gateway_hardware: str,
    fmt: str,
) -> None:
    """The numériscore per day: each gateway, the hub, the fleet, the peer (docs/numeriscore.md)."""
    from hub.numeriscore._api import Numeriscore
    from hub.numeriscore._tracker import NumeriscoreSettings
    from hub.storage import open_storage

    if not data.is_dir():
        raise click.ClickException(f"{data}: no hub data directory here (--data DIR)")
    a, b = _day(first, "--from"), _day(last, "--to")
    try:
        storage = open_storage(db, data)
    except HubError as e:
        raise click.ClickException(str(e)) from e
    try:
        ns = Numeriscore(storage, NumeriscoreSettings(gateway_hardware=gateway_hardware))
        days = ns.days(a, b, gateway)
    except HubError as e:
        raise click.ClickException(str(e)) from e
    finally:
        storage.close()
    if fmt == "json":
        click.echo(json.dumps({"formula": ns.formula(), "days": days}, indent=2))
        return
    if fmt == "csv":
        click.echo(ns.csv(days), nl=False)
        return
    click.echo(
        f"{'day':10}  {'service':24} {'readings':>10} {'wire B/r':>9} {'flash B/r':>9}"
        f" {'CPU ms/r':>9} {'mWh/r':>8}  score"
    )

    def cell(value: object, width: int) -> str:
        return f"{'-' if value is None else value:>{width}}"

    for entry in days:
        rows = [(f"gateway:{g['gateway']}", g) for g in entry["gateways"]]
        if entry["hub"] is not None:
            rows.append(("hub", entry["hub"]))
        rows += [("fleet", entry["fleet"]), ("peer", entry["peer"])]
        for service, f in rows:
            click.echo(
                f"{entry['day']:10}  {service:24} {cell(f.get('readings'), 10)}"
                f" {cell(f.get('wire_bytes_per_reading'), 9)}"
                f" {cell(f.get('flash_bytes_per_reading'), 9)}"
                f" {cell(f.get('cpu_ms_per_reading') or f.get('hub_cpu_ms_per_reading'), 9)}"
                f" {cell(f.get('energy_mwh_per_reading'), 8)}  {f.get('score') or '-'}"
            )


__all__ = ["numeriscore"]
