"""`estran hub`: commands of the hub package."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import click

from protocols.wire import MAX_PACKET

if TYPE_CHECKING:
    from hub._service import Hub


@click.group()
def hub() -> None:
    """The hub: run the central service (broker, ingest, storage, HTTP API)."""


def _alert_commands() -> None:
    from hub.alerts._cli import alert
    from hub.numeriscore._cli import numeriscore

    hub.add_command(alert)
    hub.add_command(numeriscore)


_alert_commands()


@hub.command("run")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Data directory (the SQLite database lives here).",
)
@click.option(
    "--db",
    default="sqlite",
    show_default=True,
    help="sqlite, sqlite:///PATH, or postgresql://user@host:port/dbname",
)
@click.option(
    "--broker",
    default="embedded",
    show_default=True,
    help="embedded (MQTT 3.1.1, in this process) or mqtt://host:port (e.g. Mosquitto).",
)
@click.option(
    "--mqtt-listen",
    default="127.0.0.1:1883",
    show_default=True,
    help="Where the embedded broker listens: loopback by default; e.g. 0.0.0.0:1883 to serve "
    "gateways on the network (docs/security.md).",
)
@click.option(
    "--mqtt-max-packet",
    default=str(MAX_PACKET),
    show_default=True,
    help="Largest MQTT packet the embedded broker takes (bytes, or e.g. '2 MiB'); the default "
    "is a 1 MiB ingest payload with its topic and headers.",
)
@click.option(
    "--http",
    default="127.0.0.1:8080",
    show_default=True,
    help="HOST:PORT of the read API, or 'none'.",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=1,
    show_default=True,
    help="Ingest workers (they split the load on a shared subscription; 0: none).",
)
@click.option(
    "--broker-access",
    type=click.Choice(["fleet", "open"]),
    default="fleet",
    show_default=True,
    help="fleet: only enrolled gateways and the hub, each confined to its topics; "
    "open: anyone (development only).",
)
@click.option("--public-broker", default=None, help="mqtt://host:port told to enrolling gateways.")
@click.option(
    "--public-url",
    default=None,
    help="Where gateways reach this hub's HTTP API (release bundles; default: http://--http).",
)
@click.option(
    "--mosquitto-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep Mosquitto's passwd and acl files here (external broker).",
)
@click.option(
    "--mosquitto-pid",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Mosquitto's pid file: SIGHUP when its files change.",
)
@click.option(
    "--mqtt-tls-listen",
    default=None,
    help="HOST:PORT of an MQTT TLS listener on the embedded broker (estran fleet tls init).",
)
@click.option("--https", is_flag=True, help="Serve the HTTP API over TLS (estran fleet tls init).")
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    help="CIDR of a reverse proxy whose X-Forwarded-For/-Proto are believed (repeat).",
)
@click.option(
    "--tz",
    default="Europe/Paris",
    show_default=True,
    help="Local time of alert night windows and of the numériscore's days.",
)
@click.option(
    "--gateway-hardware",
    type=click.Choice(["rpi4", "rpi3b+", "rpi-zero-2w", "cm4"]),
    default="rpi4",
    show_default=True,
    help="The gateways' hardware class, for the numériscore's energy (docs/numeriscore.md).",
)
@click.option(
    "--map-tiles",
    default=None,
    help="Tile server of the dashboard's map, as https://HOST/{z}/{x}/{y}.png (default: none,"
    " a plain map; the browser then loads tiles from there).",
)
@click.option("--map-attribution", default=None, help="Credit shown under tiled maps.")
@click.option(
    "--fleet/--no-fleet",
    "run_fleet",
    default=True,
    show_default=True,
    help="Run the fleet in this process (signed configurations and commands published, "
    "reports recorded, Mosquitto's files kept). --no-fleet: an extra ingest or API process "
    "beside the one hub process that does, on the same --data (docs/hub.md, the topology at "
    "scale).",
)
@click.option("--log-level", default="info", show_default=True)
def run(
    data_dir: Path,
    db: str,
    broker: str,
    mqtt_listen: str,
    mqtt_max_packet: str,
    http: str,
    workers: int,
    broker_access: str,
    public_broker: str | None,
    public_url: str | None,
    mosquitto_dir: Path | None,
    mosquitto_pid: Path | None,
    mqtt_tls_listen: str | None,
    https: bool,
    trusted_proxies: tuple[str, ...],
    tz: str,
    gateway_hardware: str,
    map_tiles: str | None,
    map_attribution: str | None,
    run_fleet: bool,
    log_level: str,
) -> None:
    """Run the hub: MQTT ingest into the database, and the HTTP read API.

    \b
    estran hub run                                   embedded broker, SQLite in ./data
    estran hub run --broker mqtt://127.0.0.1:1883 --db postgresql://hub@db/estran --workers 3
    """
    from fleet import FleetError
    from hub._errors import HubError
    from hub._service import Hub, HubConfig
    from hub.alerts import AlertSettings
    from hub.broker import BrokerLimits
    from hub.numeriscore import NumeriscoreSettings
    from protocols.quantities import parse_size

    max_packet = parse_size(mqtt_max_packet)
    if max_packet is None or not 128 <= max_packet <= 256 << 20:
        raise click.BadParameter("a size from 128 B to 256 MiB", param_hint="--mqtt-max-packet")

    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = HubConfig(
        data_dir=data_dir,
        db=db,
        broker=broker,
        mqtt_listen=mqtt_listen,
        http=None if http.lower() in ("none", "off", "") else http,
        workers=workers,
        broker_access=broker_access,
        public_broker=public_broker,
        public_url=public_url,
        mosquitto_dir=mosquitto_dir,
        mosquitto_pid=mosquitto_pid,
        tls_listen=mqtt_tls_listen,
        https=https,
        trusted_proxies=trusted_proxies,
        alerts=AlertSettings(tz=tz),
        numeriscore=NumeriscoreSettings(tz=tz, gateway_hardware=gateway_hardware),
        map_tiles=map_tiles,
        map_attribution=map_attribution,
        broker_limits=BrokerLimits(max_packet_size=max_packet),
        fleet=run_fleet,
    )
    try:
        asyncio.run(_serve(Hub(config)))
    except (HubError, FleetError) as e:
        raise click.ClickException(str(e)) from e


def _add_access_commands() -> None:
    from hub._access_cli import admin_reset, dataset, erase, sensor, token, user

    for command in (user, token, admin_reset, dataset, sensor, erase):
        hub.add_command(command)


_add_access_commands()


async def _serve(hub_service: Hub) -> None:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main.cancel)
    try:
        await hub_service.run()
    except asyncio.CancelledError:
        logging.getLogger("estran.hub").info("hub stopped")
