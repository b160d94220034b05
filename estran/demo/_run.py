"""`estran demo`, the orchestration: the hub, the simulators, the gateways, the live view, and
a clean stop.

Processes, as in a real deployment: the hub (`estran hub run`: embedded MQTT broker, SQLite,
HTTP API), one gateway daemon per site (`estran edge run --config FILE`, what the systemd
unit runs), and the BLE radio world
(`python -m edge.simulators.ble`). The serial simulators run in the demo's own event loop,
on pseudo-terminals the gateways open by their stable symlink paths.

Broker access: the hub runs with `--broker-access fleet` (its default) and every gateway is
enrolled the way a technician does it: the demo creates a group and a one-time token per site
in the hub's registry (what `estran fleet group create` and `estran fleet token create` do),
then runs `estran edge enroll`; the gateway's configuration points `uplink.credentials_file`
at the credentials enrollment wrote. It takes a few seconds. (`--broker-access open`, hidden,
skips it.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from edge.simulators.serial import SerialSimulator
from estran.demo._territory import (
    BLE_HEADLINES,
    TERRITORY,
    BleWorld,
    GatewayPlan,
    GatewaySetup,
    gateway_config,
)
from estran.demo._view import HubPoller, SensorInfo, Snapshot, ViewState, render, summary
from estran.rig import Child, RigError, estran_argv, free_port

HUB_READY_S = 60.0
WORLD_READY_S = 45.0
ENROLL_S = 45.0
STOP_GATEWAY_S = 15.0
STOP_HUB_S = 15.0
POLL_S = 1.0
SUMMARY_EVERY_S = 5.0
MAX_RESTARTS = 5
SOCKET_PATH_MAX = 107  # sun_path, Linux

_VIA = {
    "tic": "serial · TIC",
    "modbus": "serial · Modbus RTU",
    "mbus": "serial · M-Bus",
    "sdi12": "serial · SDI-12",
    "ultrasonic": "serial · ultrasonic",
    "nmea": "serial · NMEA 0183",
    "wmbus": "radio · wireless M-Bus",
}


class DemoError(Exception):
    """The demo cannot go on: said to the user, with the log that explains it."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration: float | None = None
    http: str | None = None  # HOST:PORT of the hub's API; None: a free port on 127.0.0.1
    data: Path | None = None  # None: a temporary directory, removed at exit
    broker_access: str = "fleet"  # fleet: gateways enrolled; open: anyone (development)


def check_free(host: str, port: int) -> None:
    """Fail early and clearly when the API's address is taken (the hub would say it in a
    traceback)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise DemoError(f"--http {host}:{port}: {e}") from e
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise DemoError(f"--http {host}:{port}: {e.strerror or e}") from e


def split_host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise DemoError(f"--http {text!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclass(slots=True)
class _Gateway:
    plan: GatewayPlan
    data_dir: Path
    gateway_id: str
    config: Path | None = None
    child: Child | None = None
    credentials: Path | None = None


OPEN_DATASET = "territory"
CLOSED_DATASET = "territory-closed"


def territory_meta() -> list[tuple[str, Mapping[str, object]]]:
    """(sensor, its [sensors.ID] table) of every sensor of the territory."""
    out: list[tuple[str, Mapping[str, object]]] = []
    for plan in TERRITORY:
        for s in plan.serial:
            out += [(s.sensor, s.meta), *s.also]
        out += list(plan.ble_meta.items())
    return out


class Demo:
    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.stop = asyncio.Event()
        self.starting = True
        self.workdir = Path()
        self.temporary = options.data is None
        self.children: list[Child] = []
        self.simulators: dict[str, SerialSimulator] = {}
        self.gateways: list[_Gateway] = []
        self.world: BleWorld | None = None
        self.events: deque[str] = deque(maxlen=4)
        self.http_host, self.http_port = "127.0.0.1", 0
        self.mqtt_port = 0
        self.fleet_access = False
        self.hub: Child | None = None
        self.api_token = ""
        self.demo_password = ""

    # -- paths -------------------------------------------------------------------------------

    @property
    def hub_dir(self) -> Path:
        return self.workdir / "hub"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def base_url(self) -> str:
        host = self.http_host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.http_port}"

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> None:
        opts = self.options
        if opts.http is not None:
            self.http_host, self.http_port = split_host_port(opts.http)
            check_free(self.http_host, self.http_port)
        else:
            self.http_port = free_port()
        if opts.data is not None:
            self.workdir = opts.data.resolve()
            self.workdir.mkdir(parents=True, exist_ok=True)
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="estran-demo-"))
        longest = self.workdir / "gateways" / "building" / "status.sock"
        if len(str(longest)) > SOCKET_PATH_MAX:
            if self.temporary:
                shutil.rmtree(self.workdir, ignore_errors=True)
            raise DemoError(
                f"{self.workdir}: too long a path: a gateway's status socket "
                f"({longest}) must fit in {SOCKET_PATH_MAX} bytes"
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            async with contextlib.AsyncExitStack() as stack:
                stack.push_async_callback(self._stop_hub)
                stack.push_async_callback(self._stop_world)
                stack.push_async_callback(self._stop_simulators)
                stack.push_async_callback(self._stop_gateways)
                await self._start()
                self.starting = False
                await self._serve()
                await self._final_summary()
        finally:
            if self.temporary:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def request_stop(self, main: asyncio.Task[None] | None) -> None:
        """Ctrl-C or SIGTERM: stop (while starting: at once); a second time: kill children."""
        if self.stop.is_set():
            for child in self.children:
                child.kill()
            return
        self.stop.set()
        if self.starting and main is not None:
            main.cancel()

    def _event(self, text: str) -> None:
        """Something the user should know while it runs: under the live table, or a line."""
        self.events.append(text)
        if not self.console.is_terminal:
            print(f"! {text}", flush=True)

    def _say(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    async def _start(self) -> None:
        opts = self.options
        self.fleet_access = opts.broker_access == "fleet"
        self.mqtt_port = free_port()
        for plan in TERRITORY:
            data_dir = self.workdir / "gateways" / plan.key
            data_dir.mkdir(parents=True, exist_ok=True)
            self.gateways.append(_Gateway(plan, data_dir, plan.default_id))
        tokens: dict[str, str] = {}
        if self.fleet_access:
            tokens = await asyncio.wait_for(asyncio.to_thread(self._prepare_fleet), 30)
        self.api_token = await asyncio.wait_for(asyncio.to_thread(self._prepare_access), 30)
        await asyncio.wait_for(asyncio.to_thread(self._prepare_alerts), 30)
        self._say(f"[bold]Estran demo[/]: the territory on this machine, in {self.workdir}")
        self._say("  starting the hub, the radio world and the serial simulators …")
        self.hub = self._child(
            "hub",
            estran_argv(
                "hub",
                "run",
                "--data",
                str(self.hub_dir),
                "--http",
                f"{self.http_host}:{self.http_port}",
                "--mqtt-listen",
                f"127.0.0.1:{self.mqtt_port}",
                "--broker-access",
                "fleet" if self.fleet_access else "open",
            ),
        )
        world = self._child(
            "ble-world",
            [
                sys.executable,
                "-m",
                "edge.simulators.ble",
                "--gateway",
                "marina@marina",
                "--gateway",
                "park@park",
                "--advertising-interval",
                "1",
                "--update-interval",
                "4",
                "--poll-interval",
                "20",
            ],
            pipe_stdout=True,
        )
        await self.hub.start()
        await world.start()
        await self._start_simulators()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._wait_hub(), name="demo:wait-hub")
            tg.create_task(self._wait_world(world), name="demo:wait-world")
        if self.fleet_access:
            await self._enroll_all(tokens)
        for gw in self.gateways:
            self._write_config(gw)
        for gw in self.gateways:
            assert gw.config is not None
            gw.child = self._child(
                gw.plan.key,
                estran_argv("edge", "run", "--config", str(gw.config)),
            )
            await gw.child.start()
        self._intro()

    def _child(self, name: str, argv: list[str], *, pipe_stdout: bool = False) -> Child:
        child = Child(name, argv, self.log_dir / f"{name}.log", pipe_stdout=pipe_stdout)
        self.children.append(child)
        return child

    async def _start_simulators(self) -> None:
        directory = self.workdir / "serial"
        directory.mkdir(parents=True, exist_ok=True)
        for plan in TERRITORY:
            for sensor in plan.serial:
                sim = sensor.make(directory)
                self.simulators[sensor.sensor] = sim
                await asyncio.wait_for(sim.start(), 10)

    async def _wait_hub(self) -> None:
        assert self.hub is not None
        poller = HubPoller(self.base_url, self.api_token)
        deadline = time.monotonic() + HUB_READY_S
        while time.monotonic() < deadline:
            if not self.hub.alive():
                raise DemoError(
                    f"the hub exited while starting ({self.hub.log}):\n" + self.hub.tail()
                )
            if await poller.ready():
                return
            await asyncio.sleep(0.2)
        raise DemoError(f"the hub did not become ready in {HUB_READY_S:.0f} s:\n" + self.hub.tail())

    async def _wait_world(self, world: Child) -> None:
        try:
            line = await world.readline(WORLD_READY_S)
        except TimeoutError as e:
            raise DemoError("the BLE radio world did not start:\n" + world.tail()) from e
        if not line:
            raise DemoError("the BLE radio world exited while starting:\n" + world.tail())
        try:
            self.world = BleWorld.from_ready_line(line)
        except (ValueError, KeyError, TypeError) as e:
            raise DemoError(f"the BLE radio world said {line!r}: {e}") from e

    # -- enrollment ----------------------------------------------------------------------------

    def _prepare_access(self) -> str:
        """The hub's catalogue and the demo's viewer, before the hub starts: the sensors
        marked open in the territory go into the open dataset `territory` (Etalab Licence
        Ouverte 2.0), the others into the closed `territory-closed` (what `estran hub
        dataset set` and `estran hub sensor set` do); the viewer (`estran hub user add demo
        --role technician --group ... --dataset territory-closed --password`: it commands
        the territory's gateways and reads the closed dataset) gets a password for this run
        (the dashboard's login) and an API token (`estran hub token create demo`). The hub
        still makes its own admin at first start (its log shows the token)."""
        from fleet import Fleet, NotFound
        from hub.storage import ETALAB, Dataset, SensorMeta, open_storage

        now = int(time.time() * 1000)
        with open_storage("sqlite", self.hub_dir) as storage:
            storage.put_dataset(
                Dataset(OPEN_DATASET, True, ETALAB, "The demo territory's open sensors", "demo"),
                "estran-demo",
                now,
            )
            storage.put_dataset(
                Dataset(CLOSED_DATASET, False, "restricted", "Meters and berths", "demo"),
                "estran-demo",
                now,
            )
            for sensor, meta in territory_meta():
                place = meta.get("location")
                lonlat = None
                site = place if isinstance(place, str) else None
                if isinstance(place, dict):
                    site = str(place.get("name"))
                    lonlat = (float(place["lon"]), float(place["lat"]))
                dataset = OPEN_DATASET if meta.get("dataset") == "open" else CLOSED_DATASET
                storage.put_sensor_meta(
                    SensorMeta(sensor, dataset, lonlat, site, site or ""), "estran-demo", now
                )
        with Fleet(self.hub_dir) as fleet:
            try:
                fleet.accounts.user("demo")
            except NotFound:
                groups = tuple(sorted({plan.group for plan in TERRITORY}))
                fleet.accounts.add_user(
                    "demo",
                    "technician",
                    "estran-demo",
                    groups=groups,
                    datasets=(CLOSED_DATASET,),
                )
            self.demo_password = secrets.token_urlsafe(12)
            fleet.accounts.set_password("demo", self.demo_password, "estran-demo")
            return fleet.accounts.create_token(
                "demo", "estran-demo", name="estran demo", ttl_s=86400.0
            ).token

    def _prepare_alerts(self) -> None:
        """The town hall's water meter alarms as a hub alert rule (what `estran hub alert
        rule add` does): the leaking meter's `leak` reading raises an alert at the hub."""
        from fleet import Fleet
        from hub.alerts._service import AlertService
        from hub.storage import open_storage

        storage = open_storage("sqlite", self.hub_dir)
        try:
            with Fleet(self.hub_dir) as fleet:

                def audit(actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
                    fleet.record(actor, action, target, origin="cli", **detail)

                service = AlertService(storage, audit=audit)
                if "water-meter-alarms" not in {r.id for r in service.rules()}:
                    service.create_rule(
                        {
                            "id": "water-meter-alarms",
                            "kind": "meter_flag",
                            "scope": {"group": "townhall"},
                            "severity": "critical",
                            "description": "leak, burst, back-flow, tamper... of a water meter",
                        },
                        "estran-demo",
                    )
        finally:
            storage.close()

    def _prepare_fleet(self) -> dict[str, str]:
        """Groups and one-time tokens, in the hub's registry (what `estran fleet group create`
        and `estran fleet token create` do). Gateways enrolled in an earlier run (--data)
        keep their identity."""
        from edge.identity import GatewayState
        from fleet import Fleet

        tokens: dict[str, str] = {}
        with Fleet(self.hub_dir) as fleet:
            groups = {g.name for g in fleet.groups()}
            for gw in self.gateways:
                with GatewayState(gw.data_dir) as state:
                    identity = state.identity()
                if identity is not None:
                    gw.gateway_id = identity.gateway_id
                    gw.credentials = gw.data_dir / "credentials"
                    continue
                if gw.plan.group not in groups:
                    fleet.create_group(gw.plan.group, "estran-demo", gw.plan.title)
                    groups.add(gw.plan.group)
                issued = fleet.create_token(gw.plan.group, 600.0, "estran-demo", gw.plan.site)
                tokens[gw.plan.key] = issued.token
        return tokens

    async def _enroll_all(self, tokens: Mapping[str, str]) -> None:
        async with asyncio.TaskGroup() as tg:
            for gw in self.gateways:
                token = tokens.get(gw.plan.key)
                if token is not None:
                    tg.create_task(self._enroll(gw, token), name=f"demo:enroll-{gw.plan.key}")

    async def _enroll(self, gw: _Gateway, token: str) -> None:
        argv = estran_argv(
            "edge",
            "enroll",
            "--hub",
            self.base_url,
            "--token",
            token,
            "--data",
            str(gw.data_dir),
            "--site",
            gw.plan.site,
            "--no-config",  # the demo writes each gateway's configuration itself, below
            "--json",
        )
        log = self.log_dir / f"enroll-{gw.plan.key}.log"
        with open(log, "w") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), ENROLL_S)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(proc.wait(), 5)
        lines = out.decode("utf-8", "replace").strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise DemoError(f"enrolling {gw.plan.key} failed:\n{log.read_text()}")
        result = json.loads(lines[-1])
        gw.gateway_id = str(result["gateway_id"])
        gw.credentials = gw.data_dir / "credentials"

    # -- configuration -------------------------------------------------------------------------

    def _write_config(self, gw: _Gateway) -> None:
        from edge.config import ConfigError, load_config

        setup = GatewaySetup(
            gateway_id=gw.gateway_id,
            data_dir=gw.data_dir,
            broker=f"mqtt://127.0.0.1:{self.mqtt_port}",
            credentials_file=gw.credentials,
        )
        text = gateway_config(gw.plan, setup, self.simulators, self.world)
        path = gw.data_dir / "edge.toml"
        path.write_text(text)
        try:
            load_config(path)
        except ConfigError as e:  # a demo bug: say it as the daemon would
            raise DemoError(str(e)) from e
        gw.config = path

    def sensor_infos(self) -> dict[str, SensorInfo]:
        infos: dict[str, SensorInfo] = {}
        for gw in self.gateways:
            for sensor in gw.plan.serial:
                protocol = str(self.simulators[sensor.sensor].port_config()["protocol"])
                for sensor_id in sensor.sensors:
                    infos[sensor_id] = SensorInfo(
                        gw.plan.key,
                        _VIA.get(protocol, f"serial · {protocol}"),
                        False,
                        sensor.headline,
                    )
            zone = gw.plan.ble_zone
            if zone is None or self.world is None:
                continue
            for device in self.world.devices.get(zone, ()):
                sensor_id = str(device["sensor"])
                kind = {"bthome": "BTHome v2", "miflora": "Mi Flora"}.get(
                    str(device.get("kind")), str(device.get("kind"))
                )
                if device.get("bind_key"):
                    kind = "BTHome, encrypted"
                elif device.get("poll_interval"):
                    kind += " + GATT"
                infos[sensor_id] = SensorInfo(
                    gw.plan.key, f"BLE · {kind}", True, BLE_HEADLINES.get(sensor_id, ())
                )
        return infos

    def _intro(self) -> None:
        url = self.base_url
        gateways = ", ".join(f"{gw.gateway_id} ({gw.plan.title})" for gw in self.gateways)
        keep = "removed at exit; --data DIR keeps it" if self.temporary else "kept"
        access = (
            "fleet access: gateways enrolled with one-time tokens, each confined to its topics"
            if self.fleet_access
            else "open access (development only)"
        )
        marina = next(gw for gw in self.gateways if gw.plan.key == "marina")
        lines = [
            f"  dashboard  {url}/  (in a browser; sign in as demo, password {self.demo_password})",
            f"  hub        {url}  (API docs {url}/api/docs)",
            f"  broker     mqtt://127.0.0.1:{self.mqtt_port}, embedded, {access}",
            f"  gateways   {gateways}",
            f"  data       {self.workdir}  ({keep}); logs in {self.log_dir}",
            f"  token      {self.api_token}",
            "             (a technician's; header Authorization: Bearer TOKEN)",
            f"  try        curl -s {url}/open/v1/datasets/{OPEN_DATASET}.geojson",
            f"             curl -s {url}/api/v1/sensors   (open data; with the token: all)",
            f"             curl -s '{url}/api/v1/readings?sensor=marina-berth-02&limit=5'",
            f"             estran edge status --data {marina.data_dir}",
        ]
        if self.fleet_access:
            lines.append(f"             estran fleet --data {self.hub_dir} gateways")
        for line in lines:
            self._say(line)
        self._say("")

    # -- while it runs -------------------------------------------------------------------------

    async def _serve(self) -> None:
        tasks = [
            asyncio.create_task(self._watch(), name="demo:watch"),
            asyncio.create_task(self._show(), name="demo:view"),
            asyncio.create_task(self.stop.wait(), name="demo:stop"),
        ]
        try:
            done, _ = await asyncio.wait(
                tasks, timeout=self.options.duration, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=5)
        for task in done:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    async def _watch(self) -> None:
        """Supervise the children: a gateway that dies is restarted (a few times, as systemd
        would); the hub or the radio world dying ends the demo with its log."""
        restarts: dict[str, int] = {}
        failed: set[str] = set()
        while True:
            await asyncio.sleep(0.5)
            for child in self.children:
                if child.alive() or child.stopping or child.proc is None:
                    continue
                if child is self.hub or child.name == "ble-world":
                    raise DemoError(
                        f"{child.name} exited (status {child.returncode}):\n{child.tail()}"
                    )
                n = restarts.get(child.name, 0)
                if n >= MAX_RESTARTS:
                    child.stopping = True
                    self._event(f"{child.name}: exited {n + 1} times, left stopped")
                    continue
                restarts[child.name] = n + 1
                self._event(
                    f"{child.name}: exited (status {child.returncode}), restarting "
                    f"(see {child.log})"
                )
                await asyncio.sleep(min(2.0 * 2**n, 10.0))
                await child.start()
            for name, sim in self.simulators.items():
                if sim.error is not None and name not in failed:
                    failed.add(name)
                    self._event(f"simulator of {name} failed: {sim.error}")

    async def _show(self) -> None:
        poller = HubPoller(self.base_url, self.api_token)
        state = ViewState()
        infos = self.sensor_infos()
        gateways = {gw.gateway_id: (gw.plan.title, gw.plan.site) for gw in self.gateways}
        ids = {gw.plan.key: gw.gateway_id for gw in self.gateways}
        header = self.base_url
        deadline = (
            time.monotonic() + self.options.duration if self.options.duration is not None else None
        )
        snap = Snapshot()

        def view() -> object:
            remaining = deadline - time.monotonic() if deadline is not None else None
            body = render(
                snap,
                state,
                gateways=gateways,
                sensors=infos,
                ids=ids,
                header=header,
                remaining=remaining,
                width=self.console.width,
            )
            if not self.events:
                return body
            from rich.console import Group
            from rich.text import Text

            notes = [Text(e, style="yellow") for e in self.events]
            return Group(body, Text(""), *notes)

        if not self.console.is_terminal:
            last = 0.0
            while True:
                snap = await poller.poll()
                state.update(snap)
                now = time.monotonic()
                if now - last >= SUMMARY_EVERY_S:
                    last = now
                    print(summary(snap, infos, now - state.started), flush=True)
                await asyncio.sleep(POLL_S)
        with Live(
            view(),  # type: ignore[arg-type]
            console=self.console,
            refresh_per_second=2,
            auto_refresh=False,
            vertical_overflow="visible",
        ) as live:
            try:
                while True:
                    snap = await poller.poll()
                    state.update(snap)
                    live.update(view(), refresh=True)  # type: ignore[arg-type]
                    await asyncio.sleep(POLL_S)
            finally:
                live.update(view(), refresh=True)  # type: ignore[arg-type]

    # -- stopping ------------------------------------------------------------------------------

    async def _stop_gateways(self) -> None:
        children = [gw.child for gw in self.gateways if gw.child is not None]
        if children:
            await asyncio.gather(*(c.stop(STOP_GATEWAY_S) for c in children))

    async def _stop_simulators(self) -> None:
        for sim in self.simulators.values():
            with contextlib.suppress(RuntimeError):
                await asyncio.wait_for(sim.stop(), 5)

    async def _stop_world(self) -> None:
        for child in self.children:
            if child.name == "ble-world":
                await child.stop(10)

    async def _stop_hub(self) -> None:
        if self.hub is not None:
            await self.hub.stop(STOP_HUB_S)
        for child in self.children:  # anything left (none should be)
            child.kill()

    async def _final_summary(self) -> None:
        """What reached the hub, from its API, before anything stops."""
        snap = await HubPoller(self.base_url, self.api_token).poll()
        if not snap.ok:
            return
        seen = snap.by_sensor()
        infos = self.sensor_infos()
        self._say(
            f"the hub stored {snap.readings} readings from {len(snap.gateways)} gateways "
            f"and {len(set(seen) & set(infos))} of the {len(infos)} sensors:"
        )
        for gw in self.gateways:
            mine = [s for s, i in infos.items() if i.gateway == gw.plan.key]
            heard = [s for s in mine if s in seen]
            missing = sorted(set(mine) - set(heard))
            note = f"; waiting for {', '.join(missing)}" if missing else ""
            self._say(f"  {gw.gateway_id:14} {len(heard)}/{len(mine)} sensors{note}")


def _demo_errors(error: BaseException) -> list[Exception] | None:
    """The DemoErrors and RigErrors (a child that could not start) in `error` (bare or in
    groups), or None if anything else is in it."""
    if isinstance(error, DemoError | RigError):
        return [error]
    if isinstance(error, BaseExceptionGroup):
        found: list[Exception] = []
        for inner in error.exceptions:
            sub = _demo_errors(inner)
            if sub is None:
                return None
            found += sub
        return found
    return None


async def run_demo(options: DemoOptions, console: Console) -> int:
    """Run the demo until `options.duration` or a signal. Returns the exit status."""
    demo = Demo(options, console)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, demo.request_stop, main)
    try:
        await demo.run()
    except asyncio.CancelledError:
        if not demo.stop.is_set():
            raise
        console.print("demo stopped while starting; every process ended")
        return 130
    except BaseException as e:
        errors = _demo_errors(e)
        if errors is None:
            raise
        for error in errors:
            console.print(f"[red]estran demo:[/] {error}", highlight=False, soft_wrap=True)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    where = "removed" if demo.temporary else f"kept in {demo.workdir}"
    console.print(f"demo stopped: every process ended, data {where}", highlight=False)
    return 0


__all__ = ["Demo", "DemoError", "DemoOptions", "run_demo"]
