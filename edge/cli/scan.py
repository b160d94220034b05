"""`estran edge scan`: the BLE devices around the gateway, for the technician.

Every device heard is listed with its address, RSSI, kind (BTHome, Mi Flora, or other),
its decoded values and whether the configuration reads it (and as which sensor). With
``--config`` the bind keys of the configured devices decrypt their values and configured
devices that stay silent are listed too. A live table for humans; ``--json`` prints a JSON
list at the end instead.

bleak and bumble are imported when the command runs, not when the CLI loads.
"""

import asyncio
import contextlib
import json
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData
    from rich.table import Table

    from edge.sources.ble._config import BleDeviceConfig
    from edge.sources.ble._spec import BackendSpec
    from protocols.reading import Measurement

MAX_DEVICES = 1024  # a street can be full of phones; beyond this, new ones are counted only


@dataclass(slots=True)
class ScanEntry:
    """One device heard (or configured and not heard)."""

    address: str
    name: str | None = None
    rssi: int | None = None
    kind: str | None = None  # bthome, miflora, or None (another kind of device)
    encrypted: bool = False
    sensor: str | None = None  # the configured sensor id, None when not configured
    seen: int = 0  # advertisements heard
    last_seen_ms: int | None = None
    values: "dict[str, Measurement]" = field(default_factory=dict)
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "address": self.address,
            "name": self.name,
            "rssi": self.rssi,
            "kind": self.kind,
            "encrypted": self.encrypted,
            "configured": self.sensor is not None,
            "sensor": self.sensor,
            "seen": self.seen,
            "last_seen_ms": self.last_seen_ms,
            "values": [m.as_dict() for m in self.values.values()],
            "error": self.error,
        }


class Scan:
    """What a scan heard so far: entries by address, decoded with the configured keys."""

    def __init__(self, devices: "Iterable[BleDeviceConfig]" = ()) -> None:
        from edge.sources.ble._decode import AdvertisementDecoder

        configured = list(devices)
        self.entries: dict[str, ScanEntry] = {
            d.address: ScanEntry(d.address, kind=d.kind, sensor=d.sensor) for d in configured
        }
        self.overflow = 0  # devices heard beyond MAX_DEVICES
        keys = {d.address: d.bind_key for d in configured if d.bind_key is not None}
        self._decoder = AdvertisementDecoder(keys, max_devices=MAX_DEVICES)

    def on_advertisement(self, device: "BLEDevice", data: "AdvertisementData") -> None:
        address = device.address.upper()
        entry = self.entries.get(address)
        if entry is None:
            if len(self.entries) >= MAX_DEVICES:
                self.overflow += 1
                return
            entry = self.entries[address] = ScanEntry(address)
        entry.seen += 1
        entry.rssi = data.rssi
        entry.last_seen_ms = time.time_ns() // 1_000_000
        entry.name = data.local_name or device.name or entry.name
        decoded = self._decoder.decode(address, data.service_data)
        if decoded is None:
            return
        entry.kind = decoded.kind
        entry.encrypted = decoded.encrypted
        if decoded.duplicate:
            return
        entry.error = str(decoded.error) if decoded.error is not None else None
        for m in decoded.measurements:
            entry.values[m.name] = m

    def sorted(self) -> list[ScanEntry]:
        """Configured first, then BTHome/Mi Flora, then the rest; loudest first."""
        return sorted(
            self.entries.values(),
            key=lambda e: (
                e.sensor is None,
                e.kind is None,
                -(e.rssi if e.rssi is not None else -999),
                e.address,
            ),
        )


def _format_value(m: "Measurement") -> str:
    unit = f" {m.unit}" if m.unit else ""
    return f"{m.name} {m.value}{unit}"


def render(scan: Scan, remaining: float | None = None) -> "Table":
    from rich.table import Table

    title = "BLE devices nearby"
    if remaining is not None:
        title += f" (scanning, {remaining:.0f} s left)"
    table = Table(title=title, title_justify="left")
    table.add_column("address", no_wrap=True)
    table.add_column("rssi", justify="right")
    table.add_column("kind")
    table.add_column("values")
    table.add_column("configured")
    table.add_column("heard", justify="right")
    table.add_column("name")
    for e in scan.sorted():
        if e.error is not None:
            values = f"[red]{e.error}[/red]"
        else:
            values = ", ".join(_format_value(m) for m in e.values.values())
        kind = (e.kind or "-") + (" (encrypted)" if e.encrypted else "")
        table.add_row(
            e.address,
            "-" if e.rssi is None else str(e.rssi),
            kind,
            values,
            e.sensor or "-",
            str(e.seen) if e.seen else "[yellow]not heard[/yellow]",
            e.name or "",
        )
    if scan.overflow:
        table.caption = f"and {scan.overflow} advertisements from more devices"
    return table


async def run_scan(
    backend: "BackendSpec | str",
    seconds: float,
    devices: "Iterable[BleDeviceConfig]" = (),
    *,
    passive: bool = True,
    live: bool = False,
) -> Scan:
    """Scan for `seconds` on `backend`; with `live`, show the table as it fills."""
    from edge.sources.ble._backend import open_backend

    scan = Scan(devices)
    async with open_backend(backend, name="estran-scan") as opened:
        scanner = await opened.start_scanner(scan.on_advertisement, passive=passive)
        try:
            if live:
                await _live(scan, seconds)
            else:
                await asyncio.sleep(seconds)
        finally:
            async with asyncio.timeout(10.0):
                await scanner.stop()
    return scan


async def _live(scan: Scan, seconds: float) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    if not console.is_terminal:
        # Piped or logged: no live redraw, the table once at the end.
        await asyncio.sleep(seconds)
        console.print(render(scan))
        return
    end = time.monotonic() + seconds
    with Live(render(scan, seconds), console=console, refresh_per_second=4) as live:
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(0.25, left))
            live.update(render(scan, max(0.0, end - time.monotonic())))
        live.update(render(scan))


def _refuse_if_daemon_uses_ble(config_path: Path | None) -> None:
    """Exit 3 with a clear message when a running daemon (status socket of `config_path`'s
    data directory, or the default one) has a BLE source."""
    from edge.config import DEFAULT_CONFIG, DEFAULT_DATA_DIR, ConfigError, load_config
    from edge.health import daemon_using_ble

    socket_path = DEFAULT_DATA_DIR / "status.sock"
    path = config_path if config_path is not None else DEFAULT_CONFIG
    if path.exists():
        # scanning needs no valid configuration: the default socket is asked then
        with contextlib.suppress(ConfigError):
            socket_path = load_config(path).gateway.status_socket
    holder = daemon_using_ble(socket_path)
    if holder is None:
        return
    click.echo(
        f"error: {holder}: a scan now would take the adapter from it.\n"
        "What it hears is in `estran edge status` (its sensors and their last values). To "
        "scan, stop it first (sudo systemctl stop estran-edge), or pass --force (a BlueZ "
        "adapter is shared; with a bumble transport the daemon loses it).",
        err=True,
    )
    raise SystemExit(3)


def read_ble_config(path: Path) -> "tuple[BackendSpec, list[BleDeviceConfig]]":
    """The ``[ble]`` table of a gateway configuration file (TOML): backend and devices."""
    from edge.sources.ble._config import BleDeviceConfig
    from edge.sources.ble._spec import backend_from_table

    with path.open("rb") as f:
        root = tomllib.load(f)
    table = root.get("ble", {})
    if not isinstance(table, Mapping):
        raise click.BadParameter("[ble] must be a table", param_hint="--config")
    entries = table.get("devices", [])
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise click.BadParameter("ble.devices must be an array of tables", param_hint="--config")
    devices = [
        BleDeviceConfig.from_mapping(entry, f"ble.devices[{i}]") for i, entry in enumerate(entries)
    ]
    return backend_from_table(table), devices


@click.command("scan")
@click.option(
    "--seconds",
    "-s",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="How long to listen.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option(
    "--backend",
    "-b",
    default=None,
    metavar="SPEC",
    help="bluez (default), bluez:hciN, or bumble:<transport> (e.g. bumble:tcp-client:127.0.0.1:7001).",
)
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Gateway configuration: its backend, its devices and their bind keys.",
)
@click.option("--active", is_flag=True, help="Active scanning (ask devices for scan responses).")
@click.option(
    "--force",
    is_flag=True,
    help="Scan even while the gateway daemon uses the adapter (BlueZ shares it; a bumble "
    "transport does not: the daemon loses it).",
)
def scan(
    seconds: float,
    as_json: bool,
    backend: str | None,
    config_path: Path | None,
    active: bool,
    force: bool,
) -> None:
    """List the BLE devices nearby: address, RSSI, kind, decoded values, configured or not.

    Refused while the gateway daemon uses the Bluetooth adapter (it would lose it): what the
    daemon hears is in `estran edge status`; stop the daemon to scan, or --force."""
    from bleak.exc import BleakError

    from edge.sources.ble._errors import AdapterLostError, BleConfigError
    from edge.sources.ble._spec import DEFAULT_BACKEND, parse_backend

    if not force:
        _refuse_if_daemon_uses_ble(config_path)

    devices: list[BleDeviceConfig] = []
    try:
        spec = parse_backend(backend or DEFAULT_BACKEND)
        if config_path is not None:
            config_spec, devices = read_ble_config(config_path)
            if backend is None:
                spec = config_spec
    except BleConfigError as e:
        raise click.BadParameter(
            str(e), param_hint="--config" if config_path else "--backend"
        ) from e
    except tomllib.TOMLDecodeError as e:
        raise click.BadParameter(f"{config_path}: {e}", param_hint="--config") from e
    try:
        result = asyncio.run(run_scan(spec, seconds, devices, passive=not active, live=not as_json))
    except (AdapterLostError, BleakError, OSError, TimeoutError) as e:
        raise click.ClickException(f"Bluetooth adapter {spec} unavailable: {e}") from e
    if as_json:
        click.echo(json.dumps([e.as_json() for e in result.sorted()], indent=2))
