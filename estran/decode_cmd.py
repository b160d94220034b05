"""`estran decode PROTOCOL [HEX ...]`: paste a frame, read the values."""

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from protocols.describe import PROTOCOLS, describe
from protocols.errors import LocalProtocolError

Result = dict[str, Any]


def _parse_hex(text: str) -> bytes:
    clean = "".join(text.split()).replace(":", "")
    if clean.lower().startswith("0x"):
        clean = clean[2:]
    try:
        return bytes.fromhex(clean)
    except ValueError as e:
        raise click.UsageError(f"not hexadecimal: {text[:40]!r}") from e


def _inputs(hex_args: tuple[str, ...], file: str | None) -> list[bytes]:
    if file is not None:
        with open(file, "rb") as f:
            return [f.read()]
    if hex_args == ("-",):
        return [_parse_hex(line) for line in sys.stdin.read().splitlines() if line.strip()]
    if not hex_args:
        raise click.UsageError("give HEX, '-' to read hex lines from stdin, or --file PATH")
    # Several arguments are one payload split by the shell (spaces inside the hex), unless
    # each one is a whole payload; the codecs find frame boundaries themselves, so joining
    # is right for streams and for single payloads alike.
    return [_parse_hex(" ".join(hex_args))]


def _print_table(console: Console, result: Result) -> None:
    status = "[green]valid[/]" if result["valid"] else f"[red]invalid[/]: {result['error']}"
    console.print(f"[bold]{result['protocol']}[/] {status}")
    if result["fields"]:
        fields = Table(show_header=False, box=None, pad_edge=False)
        for key, value in result["fields"].items():
            fields.add_row(f"  {key}", str(value))
        console.print(fields)
    if result["readings"]:
        table = Table("name", "value", "unit", box=None)
        for r in result["readings"]:
            table.add_row(str(r["name"]), str(r["value"]), str(r["unit"] or ""))
        console.print(table)


@click.command()
@click.argument("protocol", type=click.Choice(sorted(PROTOCOLS)))
@click.argument("hex_data", nargs=-1, metavar="[HEX ...]")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False), help="Raw bytes.")
@click.option("--key", help="BTHome bind key (hex) for encrypted payloads.")
@click.option("--mac", help="Device MAC address AA:BB:CC:DD:EE:FF (BTHome, Mi Flora).")
@click.option("--map", "register_map", help="Modbus register map: sdm120, sdm630, ...")
@click.option("--start", help="Modbus: start register of a read response (e.g. 0x0046).")
@click.option("--mode", type=click.Choice(["historique", "standard"]), help="TIC: force the mode.")
@click.option("--names", help="SDI-12: reading names (and units) by position: 'vwc:%,temp:Cel'.")
@click.option("--model", help="Ultrasonic sensor model: lv, xl, hrlv, a02yyuw, ...")
@click.option("--empty-mm", type=float, help="Ultrasonic: distance to the empty bin's floor.")
@click.option("--full-mm", type=float, help="Ultrasonic: distance when the bin is full.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per frame.")
def decode(
    protocol: str,
    hex_data: tuple[str, ...],
    file: str | None,
    key: str | None,
    mac: str | None,
    register_map: str | None,
    start: str | None,
    mode: str | None,
    names: str | None,
    model: str | None,
    empty_mm: float | None,
    full_mm: float | None,
    as_json: bool,
) -> None:
    """Decode frames of PROTOCOL given as HEX (spaces allowed), '-' (hex lines on stdin)
    or --file. Exit status: 0 all valid, 1 something invalid, 2 usage error."""
    options: dict[str, object] = {
        "key": key,
        "mac": mac,
        "map": register_map,
        "start": start,
        "mode": mode,
        "names": names,
        "model": model,
        "empty_mm": empty_mm,
        "full_mm": full_mm,
    }
    results: list[Result] = []
    for payload in _inputs(hex_data, file):
        try:
            results.extend(describe(protocol, payload, options))
        except LocalProtocolError as e:
            raise click.UsageError(str(e)) from e
    if not results:
        results.append(
            {
                "protocol": protocol,
                "valid": False,
                "error": "truncated: no frame found",
                "fields": {},
                "readings": [],
            }
        )
    if as_json:
        for r in results:
            click.echo(json.dumps(r, ensure_ascii=False))
    else:
        console = Console()
        for r in results:
            _print_table(console, r)
    sys.exit(0 if all(r["valid"] for r in results) else 1)
