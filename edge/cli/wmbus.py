"""`estran edge wmbus listen`: which meters a wireless M-Bus dongle hears, and which lack a key.

    estran edge wmbus listen --port /dev/ttyUSB0 --dongle im871a --seconds 60
    estran edge wmbus listen --port /dev/ttyUSB0 --config /etc/estran/edge.toml --json

Sets the dongle's radio mode, listens for `--seconds`, then prints one row per meter heard:
its manufacturer and id, device type, telegrams heard, signal (`rssi_dbm` in dBm from an
iM871A or AMB8465; `rtlwmbus_level`, rtl-wmbus's uncalibrated packet RSSI, not dBm),
encryption mode, the sensor it is configured as (with `--config`: the `[[serial]]` table of that port gives
the dongle, its line, the meters and their keys) and its key status:

- ``clear``: not encrypted; ``ok``: decrypted with the configured key;
- ``missing``: encrypted and no key configured: ask the water utility for it;
- ``wrong``: a key is configured but does not decrypt (or authenticate) its telegrams;
- ``error``: the telegram could not be decoded (the reason is shown).

Keys are read from the configuration and never printed. Exit status: 0 when every meter
heard can be read, 1 when one lacks a key or fails, 2 when the port cannot be opened or
the configuration is wrong. The daemon must not be using the port at the same time.
"""

from __future__ import annotations

import asyncio
import json
import sys

import click


@click.group("wmbus")
def wmbus() -> None:
    """Wireless M-Bus dongles: what they hear."""


def _status(error: str, encryption: int, configured: bool) -> str:
    if not error:
        return "ok" if encryption else "clear"
    if error.startswith("decryption") and "no key" in error:
        return "missing"
    if error.startswith("decryption"):
        return "wrong" if configured else "missing"
    return "error"


@wmbus.command("listen")
@click.option("--port", "port", help="The dongle's serial port (or take it from --config).")
@click.option(
    "--dongle",
    type=click.Choice(["im871a", "amb8465", "rtlwmbus"]),
    help="The dongle (default: from --config, else im871a).",
)
@click.option(
    "--seconds", type=click.FloatRange(min=1.0, max=3600.0), default=60.0, show_default=True
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Gateway configuration: the port's meters and their keys.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def listen(
    port: str | None,
    dongle: str | None,
    seconds: float,
    config_path: str | None,
    as_json: bool,
) -> None:
    """List the meters the dongle hears in SECONDS, and which lack a key."""
    from edge.sources.serial._config import WMBUS, SerialConfigError, SerialPortConfig
    from edge.sources.serial._transport import PortUnavailable, SerialTransport
    from edge.sources.serial._wmbus import HeardMeter, listen, signal_text

    config: SerialPortConfig | None = None
    if config_path is not None:
        from edge.config import ConfigError, load_config

        try:
            loaded = load_config(config_path)
        except ConfigError as e:
            click.echo(f"error: {config_path}: {e}", err=True)
            sys.exit(2)
        ports = [
            p for p in loaded.serial if p.protocol == WMBUS and (port is None or p.path == port)
        ]
        if not ports:
            click.echo(
                f"error: {config_path} has no wmbus port{' ' + port if port else ''}", err=True
            )
            sys.exit(2)
        config = ports[0]
    if config is None:
        if port is None:
            click.echo("error: give --port (or --config)", err=True)
            sys.exit(2)
        try:
            config = SerialPortConfig.from_mapping(
                {
                    "path": port,
                    "protocol": WMBUS,
                    "devices": [{"sensor": "listen", "address": "00000000"}],
                    "dongle": dongle or "im871a",
                },
                "--port",
            )
        except SerialConfigError as e:
            raise click.UsageError(str(e)) from e
    elif dongle is not None and dongle != config.dongle:
        raise click.UsageError(f"--dongle {dongle}, but the configuration says {config.dongle}")
    sensors: dict[str, str] = {}
    for device in config.devices:
        address = str(device.address).upper()
        if device.sensor != "listen":
            sensors[address] = device.sensor
            sensors[address.rpartition("-")[2]] = device.sensor

    async def run() -> dict[str, HeardMeter]:
        transport = SerialTransport(config.path, config.line)
        transport.open()
        try:
            return await listen(config, seconds, transport)
        finally:
            transport.close()

    try:
        heard = asyncio.run(run())
    except PortUnavailable as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    rows = []
    for name, meter in sorted(heard.items()):
        sensor = sensors.get(name) or sensors.get(name.rpartition("-")[2])
        error = meter.error
        status = _status(error, meter.encryption, sensor is not None)
        rows.append(
            {
                "meter": name,
                "device_type": meter.device_type,
                "telegrams": meter.count,
                "rssi_dbm": meter.rssi,
                "rtlwmbus_level": meter.level,
                "encryption_mode": meter.encryption,
                "sensor": sensor,
                "key": status,
                "error": error if status == "error" else None,
            }
        )
    missing = [r["meter"] for r in rows if r["key"] in ("missing", "wrong", "error")]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "port": config.path,
                    "dongle": config.dongle,
                    "seconds": seconds,
                    "meters": rows,
                    "without_key": [r["meter"] for r in rows if r["key"] == "missing"],
                }
            )
        )
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(
            "meter",
            "type",
            "telegrams",
            "signal",
            "mode",
            "sensor",
            "key",
            box=None,
            title=f"{config.dongle} on {config.path}: {len(rows)} meters in {seconds:g} s",
        )
        style = {"ok": "green", "clear": "green", "missing": "bold red", "wrong": "bold red"}
        for r in rows:
            table.add_row(
                str(r["meter"]),
                str(r["device_type"] or ""),
                str(r["telegrams"]),
                signal_text(_number(r["rssi_dbm"]), _number(r["rtlwmbus_level"])),
                str(r["encryption_mode"]),
                str(r["sensor"] or "-"),
                f"[{style.get(str(r['key']), 'yellow')}]{r['key']}[/]"
                + (f" ({r['error']})" if r["error"] else ""),
            )
        Console().print(table)
        if not rows:
            click.echo("no meter heard: is the dongle in the right mode, and a meter in range?")
    sys.exit(1 if missing else 0)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


__all__ = ["listen", "wmbus"]
