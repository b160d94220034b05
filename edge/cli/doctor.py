"""`estran edge doctor`: the command; the checks are `edge.doctor`."""

from __future__ import annotations

import json
from pathlib import Path

import click

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default="/etc/estran/edge.toml",
    show_default=True,
    help="The gateway configuration file.",
)
@click.option(
    "--time-url",
    help="An HTTP server to compare the clock with when no time-sync service answers.",
)
def doctor(as_json: bool, config: Path, time_url: str | None) -> None:
    """Check this gateway: clock, disk, broker, serial permissions, Bluetooth, the daemon.

    Exit status 1 when a check fails.
    """
    from edge.doctor import run_checks

    checks = run_checks(config, time_url=time_url)
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        click.echo(
            json.dumps({"ok": not failed, "checks": [c.as_dict() for c in checks]}, indent=2)
        )
    else:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(show_header=True, expand=False)
        table.add_column("check")
        table.add_column("")
        table.add_column("what was found, and what to do")
        for c in checks:
            style = _STYLE[c.status]
            text = escape(c.reason)
            if c.hint and c.status != "ok":
                text += f"\n[dim]→ {escape(c.hint)}[/dim]"
            table.add_row(escape(c.name), f"[{style}]{c.status}[/{style}]", text)
        Console().print(table)
    if failed:
        raise SystemExit(1)


__all__ = ["doctor"]
