"""`estran decode PROTOCOL [HEX ...]`: paste a frame, read the values."""

import codecs
import json
import string
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


# The ASCII protocols also take their frames as text, one line a frame; each line gets the
# protocol's own framing (TIC: LF group CR; NMEA and SDI-12: CR LF; MaxBotix: CR) unless it
# already holds control characters, written as escapes (\r, \n, \t, \x02, ...).
TEXT_FRAMING: dict[str, tuple[bytes, bytes]] = {
    "tic": (b"\n", b"\r"),
    "nmea": (b"", b"\r\n"),
    "sdi12": (b"", b"\r\n"),
    "ultrasonic": (b"", b"\r"),
}


def _is_hex(text: str) -> bool:
    clean = "".join(text.split()).replace(":", "")
    if clean.lower().startswith("0x"):
        clean = clean[2:]
    return bool(clean) and len(clean) % 2 == 0 and all(c in string.hexdigits for c in clean)


def _parse_text(protocol: str, text: str) -> bytes:
    if not text.isascii():
        raise click.UsageError(f"{protocol} frames are ASCII: {text[:40]!r}")
    try:
        raw = codecs.escape_decode(text.encode("ascii"))[0]
    except ValueError as e:
        raise click.UsageError(f"bad escape in {text[:40]!r}: {e}") from e
    if any(c < 0x20 and c != 0x09 for c in raw):
        return raw  # framed by the user
    head, tail = TEXT_FRAMING[protocol]
    return head + raw + tail


def _parse(protocol: str, text: str, as_text: bool) -> bytes:
    if protocol in TEXT_FRAMING and (as_text or not _is_hex(text)):
        return _parse_text(protocol, text)
    if as_text:
        raise click.UsageError(f"--text: {protocol} is a binary protocol; give HEX")
    return _parse_hex(text)


def _inputs(protocol: str, args: tuple[str, ...], file: str | None, as_text: bool) -> list[bytes]:
    if file is not None:
        with open(file, "rb") as f:
            return [f.read()]
    if args == ("-",):
        lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
        return [_parse(protocol, line, as_text) for line in lines]
    if not args:
        raise click.UsageError("give HEX (or TEXT), '-' to read lines from stdin, or --file PATH")
    # Several arguments are one payload split by the shell (spaces inside the hex), unless
    # each one is a whole payload; the codecs find frame boundaries themselves, so joining
    # is right for streams and for single payloads alike.
    return [_parse(protocol, " ".join(args), as_text)]


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
@click.argument("hex_data", nargs=-1, metavar="[HEX|TEXT ...]")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False), help="Raw bytes.")
@click.option(
    "--key", help="AES key (hex): BTHome bind key, or wireless M-Bus meter key (modes 5/7)."
)
@click.option("--mac", help="Device MAC address AA:BB:CC:DD:EE:FF (BTHome, Mi Flora).")
@click.option("--map", "register_map", help="Modbus register map: sdm120, sdm630, ...")
@click.option("--start", help="Modbus: start register of a read response (e.g. 0x0046).")
@click.option("--mode", type=click.Choice(["historique", "standard"]), help="TIC: force the mode.")
@click.option("--names", help="SDI-12: reading names (and units) by position: 'vwc:%,temp:Cel'.")
@click.option(
    "--model", help="Sensor model: ultrasonic lv, hrlv, a02yyuw, ...; pms pms5003, pms5003t, ..."
)
@click.option("--empty-mm", type=float, help="Ultrasonic: distance to the empty bin's floor.")
@click.option("--full-mm", type=float, help="Ultrasonic: distance when the bin is full.")
@click.option(
    "--text",
    "as_text",
    is_flag=True,
    help="Frames as text even if they look like hex (tic, nmea, sdi12, ultrasonic).",
)
@click.option(
    "--direction",
    type=click.Choice(["miso", "mosi"]),
    help="SPS30: frames from the sensor (miso) or the host (mosi); default: guessed per frame.",
)
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
    as_text: bool,
    direction: str | None,
    as_json: bool,
) -> None:
    """Decode frames of PROTOCOL given as HEX (spaces allowed), as TEXT for the ASCII
    protocols (tic, nmea, sdi12, ultrasonic: a line a frame, framing added), '-' (lines on
    stdin) or --file. Exit status: 0 all valid, 1 something invalid, 2 usage error."""
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
        "direction": direction,
    }
    results: list[Result] = []
    for payload in _inputs(protocol, hex_data, file, as_text):
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
