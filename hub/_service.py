"""The hub process: broker (embedded or external), ingest workers, storage, HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import sys
import time
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from hub._api import create_app
from hub._broker import EmbeddedBroker
from hub._errors import ConfigError
from hub._http import DEFAULT_MAX_BODY, limit_error_logs, parse_networks
from hub._ingest import IngestSettings, IngestStats, IngestWorker
from hub._mqtt import BrokerAddress
from hub.alerts import Alerting, AlertSettings, DeliverySettings
from hub.auth import Access, AccessSettings
from hub.broker import BrokerLimits
from hub.dashboard import check_tiles
from hub.fleet_api import FleetHub
from hub.metrics import HubMetrics
from hub.numeriscore import (
    Numeriscore,
    NumeriscoreSettings,
    NumeriscoreTracker,
    numeriscore_router,
)
from hub.storage import Storage, StorageThread, check_db, open_storage, sqlite_path

log = logging.getLogger("estran.hub")

API_READERS = 8  # read connections of the HTTP API (its requests run in a thread pool)


def listen_socket(host: str, port: int, what: str) -> socket.socket:
    """A bound, listening TCP socket, or a ConfigError in one line (address in use, no
    permission, unknown host) before anything else has started."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, addr = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise ConfigError(f"{what} {host}:{port}: {e.strerror or e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise ConfigError(f"{what} {host}:{port}: cannot listen: {reason}") from None
    return sock


def check_free(host: str, port: int, what: str) -> None:
    """Fail early, in one line, when another program holds `host:port`."""
    listen_socket(host, port, what).close()


def parse_host_port(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{what} {value!r}: expected HOST:PORT")
    return host or "127.0.0.1", int(port)


@dataclass(frozen=True, slots=True)
class HubConfig:
    """What `estran hub run` takes."""

    data_dir: Path = Path("data")
    db: str = "sqlite"
    broker: str = "embedded"  # or mqtt://host:port
    mqtt_listen: str = "127.0.0.1:1883"  # where the embedded broker listens (loopback)
    http: str | None = "127.0.0.1:8080"  # None: no HTTP API
    workers: int = 1  # ingest workers (0: broker and API only)
    shared: bool | None = None  # shared subscription ($share); None: yes (both brokers have it)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    broker_access: str = "open"  # "fleet": enrolled gateways and the hub only (docs/security.md)
    public_broker: str | None = None  # mqtt://host:port told to enrolling gateways
    public_url: str | None = None  # where gateways reach the HTTP API (release bundles)
    mosquitto_dir: Path | None = None  # passwd and acl kept here for an external Mosquitto
    mosquitto_pid: Path | None = None  # SIGHUP it when they change
    tls_listen: str | None = None  # HOST:PORT of an MQTT TLS listener (embedded broker)
    https: bool = False  # the HTTP API over TLS (files of `estran fleet tls init`)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For/-Proto are believed
    max_body: int = DEFAULT_MAX_BODY  # bytes of an HTTP request body (413 above)
    numeriscore: NumeriscoreSettings = field(default_factory=NumeriscoreSettings)
    map_tiles: str | None = None  # the dashboard map's tile server ({z}/{x}/{y}); None: none
    map_attribution: str | None = None  # shown under the map when tiles are drawn
    broker_limits: BrokerLimits = field(default_factory=BrokerLimits)  # embedded broker
    fleet: bool = True  # run the fleet's tasks here (False: an extra ingest or API process)

    @property
    def embedded(self) -> bool:
        return self.broker == "embedded"

    def validate(self) -> None:
        check_db(self.db, self.data_dir)
        if not self.embedded:
            BrokerAddress.parse(self.broker)
        parse_host_port(self.mqtt_listen, "--mqtt-listen")
        if self.http is not None:
            parse_host_port(self.http, "--http")
        if self.map_tiles is not None:
            try:
                check_tiles(self.map_tiles)
            except ValueError as e:
                raise ConfigError(str(e)) from e
        if self.workers < 0:
            raise ConfigError("--workers must be 0 or more")
        if not self.fleet and (self.embedded or self.mosquitto_dir is not None):
            raise ConfigError(
                "--no-fleet is for an extra process beside the hub that runs the fleet: it "
                "takes an external --broker and no --mosquitto-dir"
            )
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as e:
            raise ConfigError(f"--trusted-proxy: {e}") from e
        try:
            zoneinfo.ZoneInfo(self.alerts.tz)
            zoneinfo.ZoneInfo(self.numeriscore.tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
            raise ConfigError(f"--tz: unknown time zone {self.alerts.tz!r}") from e


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the hub owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Hub:
    """`await Hub(config).run()` serves until cancelled. `ready` is set once every worker
    has subscribed and the HTTP API listens."""

    def __init__(self, config: HubConfig) -> None:
        config.validate()
        self.config = config
        self.stats = IngestStats()
        self.ready = asyncio.Event()
        self.broker_address: BrokerAddress | None = None
        self.alerting: Alerting | None = None
        self.access: Access | None = None
        self.metrics: HubMetrics | None = None
        self.numeriscore: NumeriscoreTracker | None = None

        self.embedded: EmbeddedBroker | None = None

    def health(self) -> dict[str, object]:
        out: dict[str, object] = {"ready": self.ready.is_set(), "ingest": self.stats.as_dict()}
        if self.access is not None:
            out["auth"] = self.access.stats.as_dict()
        if self.embedded is not None and self.embedded.broker is not None:
            out["broker"] = self.embedded.broker.stats.as_dict()
        return out

    def _open(self, readers: int = 1) -> Storage:
        return open_storage(self.config.db, self.config.data_dir, readers=readers)

    async def run(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        workers = cfg.workers
        shared = True if cfg.shared is None else cfg.shared  # both brokers deliver $share
        async with contextlib.AsyncExitStack() as stack:
            http_socket: socket.socket | None = None
            if cfg.http is not None:
                http_socket = listen_socket(*parse_host_port(cfg.http, "--http"), "--http")
                stack.callback(http_socket.close)
            if cfg.embedded:
                check_free(*parse_host_port(cfg.mqtt_listen, "--mqtt-listen"), "--mqtt-listen")
            fleet = self._fleet()
            stack.callback(fleet.close)
            embedded: EmbeddedBroker | None = None
            if cfg.embedded:
                host, port = parse_host_port(cfg.mqtt_listen, "--mqtt-listen")
                acl = fleet.broker_access if cfg.broker_access == "fleet" else None
                embedded = EmbeddedBroker(
                    host, port, acl, fleet.tls_listener(cfg.tls_listen), cfg.broker_limits
                )
                address = await stack.enter_async_context(embedded)
                self.embedded = embedded
            else:
                address = BrokerAddress.parse(cfg.broker)
            user, password = fleet.credentials
            address = dataclasses.replace(address, username=user, password=password)
            self.broker_address = address
            # SQLite has one writer: the workers share one storage thread. PostgreSQL: one
            # connection (and thread) per worker.
            threads: list[StorageThread] = []
            single = sqlite_path(cfg.db, cfg.data_dir) is not None
            for i in range(workers if not single else min(workers, 1)):
                threads.append(StorageThread(self._open(), name=f"storage-{i}"))
                stack.callback(threads[-1].close)
            events = [asyncio.Event() for _ in range(workers)]
            ingest = [
                IngestWorker(
                    f"ingest-{i}",
                    address,
                    threads[i % len(threads)],
                    shared=shared,
                    prefer_v5=not cfg.embedded,
                    stats=self.stats,
                    settings=cfg.ingest,
                    connected=events[i],
                )
                for i in range(workers)
            ]
            alerting = self.alerting = Alerting(
                self._open,
                cfg.alerts,
                cfg.delivery,
                broker=lambda: self.broker_address,
                gateway_group=lambda: {g.id: g.group for g in fleet.fleet.gateways()},
            )
            stack.callback(alerting.close)
            metrics = self.metrics = HubMetrics(self.stats, alerting=alerting)
            books = self.numeriscore = NumeriscoreTracker(
                StorageThread(self._open(), name="numeriscore"), cfg.numeriscore
            )
            stack.callback(books.close)
            for w in ingest:
                w.add_observer(alerting.engine)
                w.add_observer(metrics)
                w.add_observer(books)
            server: _Server | None = None
            if cfg.http is not None:
                api_storage = self._open(readers=API_READERS)
                stack.callback(api_storage.close)
                host, port = parse_host_port(cfg.http, "--http")
                app = create_app(api_storage, self.health, fleet.access, cfg.max_body)
                metrics.storage = api_storage
                metrics.auth = fleet.access.stats.as_dict
                metrics.install(app)
                app.state.numeriscore = Numeriscore(api_storage, cfg.numeriscore)
                app.include_router(numeriscore_router(app.state.numeriscore))
                app.include_router(fleet.router())
                app.state.fleet = fleet.fleet  # the dashboard's fleet pages read the registry
                app.state.map_tiles, app.state.map_attribution = cfg.map_tiles, cfg.map_attribution
                app.state.alerts = alerting.service(api_storage)
                app.include_router(alerting.router(app.state.alerts))
                limit_error_logs()
                server = _Server(
                    uvicorn.Config(
                        app,
                        host=host,
                        port=port,
                        **fleet.https_options(cfg.https),
                        log_level="warning",
                        lifespan="off",
                        proxy_headers=False,  # hub._http reads them, from trusted proxies only
                    )
                )
            log.info(
                "hub: broker %s%s, db %s, %d ingest worker(s)%s, http %s",
                address,
                " (embedded)" if cfg.embedded else "",
                "sqlite" if single else "postgresql",
                workers,
                " on a shared subscription" if shared and workers else "",
                cfg.http or "off",
            )
            try:
                async with asyncio.TaskGroup() as tg:
                    for w in ingest:
                        tg.create_task(w.run(), name=w.name)
                    if server is not None and http_socket is not None:
                        tg.create_task(server.serve(sockets=[http_socket]), name="http")
                    tg.create_task(self._signal_ready(events, server), name="ready")
                    tg.create_task(self._log_stats(), name="stats")
                    tg.create_task(alerting.run(), name="alerts")
                    tg.create_task(books.run(), name="numeriscore")
                    # Only a fleet-guarded broker disconnects clients the registry does not
                    # know; with open access anyone may stay connected.
                    guarded = embedded is not None and cfg.broker_access == "fleet"
                    broker = embedded.broker if guarded and embedded is not None else None
                    if cfg.fleet:  # one process runs it; extra ones (--no-fleet) only ingest
                        tg.create_task(fleet.run(address, broker), name="fleet")
            finally:
                if server is not None:
                    server.should_exit = True

    def _fleet(self) -> FleetHub:
        cfg = self.config
        port = parse_host_port(cfg.mqtt_listen, "--mqtt-listen")[1]
        if not cfg.embedded:
            port = BrokerAddress.parse(cfg.broker).port
        fleet = FleetHub(
            cfg.data_dir,
            broker_url=cfg.public_broker,
            public_url=cfg.public_url
            or (f"http{'s' if cfg.https else ''}://{cfg.http}" if cfg.http else ""),
            mqtt_port=port,
            mosquitto_dir=cfg.mosquitto_dir,
            mosquitto_pid=cfg.mosquitto_pid,
            access_settings=AccessSettings(
                trusted_proxies=parse_networks(cfg.trusted_proxies),
                secure_cookies=True if cfg.https else None,
            ),
        )
        self.access = fleet.access
        if fleet.new_admin_credential is not None:  # first start: shown this once
            sys.stderr.write(
                "\nfleet admin credential, an API token of the user admin (shown once, keep it"
                " safe; HTTP: Authorization: "
                f"Bearer ...; lost: estran hub admin-reset):\n  {fleet.new_admin_credential}\n\n"
            )
        log.info("hub signing key %s (enrollment tokens name it)", fleet.hub_key)
        if cfg.broker_access != "fleet":
            log.warning("broker access is open: any client may connect (--broker-access fleet)")
        return fleet

    async def _signal_ready(self, events: list[asyncio.Event], server: _Server | None) -> None:
        for event in events:
            await event.wait()  # the workers reconnect on their own; no deadline to meet
        while server is not None and not server.started:
            await asyncio.sleep(0.05)
        self.ready.set()
        log.info("hub ready")

    async def _log_stats(self, period: float = 30.0) -> None:
        last = 0
        last_t = time.monotonic()
        while True:
            await asyncio.sleep(period)
            s = self.stats
            t = time.monotonic()
            if s.readings != last:
                log.info(
                    "ingest: %d readings (%.0f/s), %d inserted, %d duplicates, rejected %s",
                    s.readings,
                    (s.readings - last) / (t - last_t),
                    s.inserted,
                    s.duplicates,
                    dict(s.rejected) or "none",
                )
            last, last_t = s.readings, t


__all__ = ["Hub", "HubConfig", "parse_host_port"]
