"""The services of a rig: broker, database, hub, gateway daemon — each a real process or a
real server, reached only through what the docs name (command line, HTTP, MQTT, files).

Broker drivers: `embedded` (the hub's own, in the hub process: restarting the broker is
restarting the hub), `mosquitto` (a private Mosquitto on a free port), `external` (`url`:
a broker that is already there). Database drivers: `sqlite` (a file in the hub's data
directory), `postgresql` (`dsn` of a server: a database of its own is created for the run and
dropped after). Hub and gateway: `process` (`estran hub run`, `estran edge run`).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from estran.rig._available import postgresql_execute
from estran.rig._ble import BleRadio
from estran.rig._child import Child, estran_argv
from estran.rig._env import Resource
from estran.rig._errors import RigError, Unavailable
from estran.rig._mosquitto import PrivateMosquitto
from estran.rig._ports import LOOPBACK, free_port
from estran.rig._serial import SerialPort
from estran.rig._toml import toml_table

HUB_READY_S = 60.0


# -- broker -----------------------------------------------------------------------------------


class Broker:
    """Where gateways and the hub meet: `url` (mqtt://host:port), the hub's `hub_args`."""

    def __init__(self, resource: Resource, workdir: Path) -> None:
        self.resource = resource
        self.kind = resource.driver
        self.mosquitto: PrivateMosquitto | None = None
        self.workdir = workdir
        self.fleet_dir: Path | None = None  # the hub's passwd and acl, once it keeps them
        if self.kind == "external":
            url = urllib.parse.urlsplit(resource.text("url"))
            if url.scheme != "mqtt" or url.hostname is None or url.port is None:
                raise RigError(f"{resource.capability}: url must be mqtt://HOST:PORT")
            self.host, self.port = url.hostname, url.port
        else:
            self.host, self.port = LOOPBACK, free_port()
            if self.kind == "mosquitto":
                self.mosquitto = PrivateMosquitto(workdir / "mosquitto", self.port)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def hub_args(self) -> list[str]:
        if self.kind == "embedded":
            return ["--broker", "embedded", "--mqtt-listen", f"{self.host}:{self.port}"]
        return ["--broker", self.url]

    @property
    def pid_file(self) -> Path:
        return self.workdir / "mosquitto-fleet" / "mosquitto.pid"

    def fleet_args(self) -> list[str]:
        """For a hub with fleet access on this Mosquitto: where it keeps Mosquitto's `passwd`
        and `acl`, and the pid file it sends SIGHUP to when they change (docs/security.md)."""
        directory = self.workdir / "mosquitto-fleet"
        directory.mkdir(parents=True, exist_ok=True)
        return ["--mosquitto-dir", str(directory), "--mosquitto-pid", str(self.pid_file)]

    async def follow_fleet_files(self, hub: Child, timeout: float = HUB_READY_S) -> None:
        """Restart this Mosquitto on the files the hub `hub` writes (once they exist): no
        anonymous access, every gateway its own password and topics — production's setup
        (`estran fleet broker mosquitto-conf`, run as the rig's user rather than `mosquitto`,
        which could not read files the rig's user wrote 0640)."""
        if self.mosquitto is None or self.fleet_dir is not None:
            return
        directory = self.pid_file.parent
        deadline = time.monotonic() + timeout
        while not (directory / "passwd").exists():
            if not hub.alive() or time.monotonic() > deadline:
                raise RigError(f"the hub wrote no Mosquitto files in {directory}:\n{hub.tail()}")
            await asyncio.sleep(0.1)
        conf = directory / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    *([f"user {getpass.getuser()}"] if os.geteuid() == 0 else []),
                    "per_listener_settings false",
                    "allow_anonymous false",
                    f"listener {self.port} {self.host}",
                    f"password_file {directory / 'passwd'}",
                    f"acl_file {directory / 'acl'}",
                    "persistence false",
                    f"max_packet_size {1024 * 1024 + 1024}",
                    "max_queued_messages 100000",
                    "log_type error",
                    "log_type warning",
                    "log_dest stderr",
                    "",
                ]
            )
        )
        await self.mosquitto.stop(10)
        self.mosquitto = PrivateMosquitto(directory, self.port, conf=conf)
        self.fleet_dir = directory
        await self.start()

    async def start(self) -> None:
        if self.mosquitto is not None:
            await self.mosquitto.start()
            if self.fleet_dir is not None:  # what the hub sends SIGHUP to
                self.pid_file.write_text(f"{self.mosquitto.pid}\n")

    async def stop(self) -> None:
        if self.mosquitto is not None:
            await self.mosquitto.stop(10)


# -- database ---------------------------------------------------------------------------------


class Database:
    """The hub's database: `spec` for `estran hub run --db`."""

    def __init__(self, resource: Resource, workdir: Path) -> None:
        self.resource = resource
        self.kind = resource.driver
        self._admin = ""
        self._name = ""
        if self.kind == "sqlite":
            self.spec = f"sqlite:///{workdir / 'hub' / 'estran.sqlite3'}"
        else:
            self._admin = resource.text("dsn")
            self._name = f"estran_rig_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            base, _, _ = self._admin.rpartition("/")
            self.spec = f"{base}/{self._name}"

    async def start(self) -> None:
        if self.kind == "postgresql":
            await asyncio.to_thread(self._execute, f'CREATE DATABASE "{self._name}"')

    async def stop(self) -> None:
        if self.kind == "postgresql":
            with contextlib.suppress(Unavailable):
                await asyncio.to_thread(
                    self._execute, f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)'
                )

    def _execute(self, sql: str) -> None:
        postgresql_execute(self._admin, sql)


# -- hub ----------------------------------------------------------------------------------------


def http_json(
    method: str,
    url: str,
    *,
    token: str = "",
    body: object = None,
    timeout: float = 10.0,
) -> tuple[int, object]:
    """One HTTP request with a JSON body (or none): the status and the decoded answer (the
    text when it is not JSON). Blocking: run it with `asyncio.to_thread` in async code."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


async def hub_ready(url: str, child: Child | None = None, timeout: float = HUB_READY_S) -> None:
    """Return once the hub at `url` (http://host:port) says ready on /api/v1/health; a
    RigError with the log of `child` (the hub's process) when it exits or is not ready in
    time. For a hub started by hand (`Child(estran_argv("hub", "run", ...))`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RigError(f"the hub exited:\n{child.tail()}")
        with contextlib.suppress(OSError, ValueError):
            status, health = await asyncio.to_thread(
                http_json, "GET", f"{url}/api/v1/health", timeout=2
            )
            if status == 200 and isinstance(health, dict) and health.get("ready"):
                return
        await asyncio.sleep(0.2)
    log = f":\n{child.tail()}" if child is not None else ""
    raise RigError(f"the hub at {url} was not ready within {timeout:g} s{log}")


class HubProcess:
    """`estran hub run` on a free HTTP port, with the rig's broker and database.

    `access` is the broker access: `open` (any client, for gateways without enrollment) or
    `fleet` (enrolled gateways only)."""

    def __init__(
        self,
        workdir: Path,
        broker: Broker,
        database: Database,
        *,
        access: str = "open",
        extra: Sequence[str] = (),
    ) -> None:
        self.data = workdir / "hub"
        self.broker = broker
        self.database = database
        self.access = access
        self.http_port = free_port()
        if access == "fleet" and broker.mosquitto is not None:
            extra = [*broker.fleet_args(), *extra]
        self.child = Child(
            "hub",
            estran_argv(
                "hub", "run", "--data", str(self.data), "--db", database.spec,
                *broker.hub_args, "--http", f"{LOOPBACK}:{self.http_port}",
                "--log-level", "warning", "--broker-access", access, *extra,
            ),
            workdir / "hub.log",
        )  # fmt: skip
        self._token = ""

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    async def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        await self.child.start()
        if self.access == "fleet":
            await self.broker.follow_fleet_files(self.child)
        await self.ready()

    async def ready(self, timeout: float = HUB_READY_S) -> None:
        """Return once /api/v1/health says ready; RigError with the hub's log otherwise."""
        await hub_ready(self.url, self.child, timeout)

    async def restart(self) -> None:
        """kill -9 and start again (what a power cut of the hub's machine does)."""
        await self.child.kill_and_wait()
        await self.start()

    async def stop(self) -> None:
        await self.child.stop(15)

    async def token(self) -> str:
        """An admin API token (`estran hub token create admin`), made once."""
        if not self._token:
            maker = Child(
                "hub-token",
                estran_argv("hub", "token", "--data", str(self.data), "create", "admin"),
                self.child.log.with_name("hub-token.log"),
                pipe_stdout=True,
            )
            await maker.start()
            line = await maker.readline(30)
            if await maker.wait(30) != 0 or not line.strip():
                raise RigError(f"no admin token from the hub:\n{maker.tail()}")
            self._token = line.split()[0]
        return self._token

    async def get(self, path: str, *, auth: bool = True, **params: object) -> object:
        """GET a JSON document of the hub's HTTP API (RigError on an HTTP error)."""
        headers = {"Authorization": f"Bearer {await self.token()}"} if auth else {}
        query = urllib.parse.urlencode({k: str(v) for k, v in params.items()})
        url = f"{self.url}{path}" + (f"?{query}" if query else "")

        def fetch() -> object:
            request = urllib.request.Request(url, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as e:
                raise RigError(f"GET {path}: HTTP {e.code}: {e.read()[:200]!r}") from e

        return await asyncio.to_thread(fetch)

    async def send(
        self, method: str, path: str, body: object = None, *, auth: bool = True
    ) -> tuple[int, object]:
        """Any request to the hub's HTTP API (as the admin unless `auth` is False): the
        status and the JSON answer. No exception on an HTTP error: the status says it."""
        token = await self.token() if auth else ""
        return await asyncio.to_thread(
            http_json, method, f"{self.url}{path}", token=token, body=body
        )

    async def enrollment_token(self, group: str, ttl_s: float = 600.0) -> str:
        """A one-use enrollment token of `group` (POST /api/v1/fleet/tokens, as the admin)."""
        status, answer = await self.send(
            "POST", "/api/v1/fleet/tokens", {"group": group, "ttl_s": ttl_s}
        )
        if status != 200 or not isinstance(answer, dict):
            raise RigError(f"no enrollment token for {group}: HTTP {status}: {answer}")
        return str(answer["token"])

    async def fleet(self, *args: str) -> str:
        """`estran fleet --data HUB ARGS` on the hub's machine (what an admin types there):
        its standard output; RigError with its log when it exits non-zero."""
        child = Child(
            "fleet",
            estran_argv("fleet", "--data", str(self.data), *args),
            self.child.log.with_name("fleet-cli.log"),
            pipe_stdout=True,
        )
        await child.start()
        lines = []
        while line := await child.readline(60):
            lines.append(line)
        if await child.wait(30) != 0:
            raise RigError(f"estran fleet {' '.join(args)} failed:\n{child.tail()}")
        return "".join(lines)

    async def readings(self, sensor: str) -> list[Mapping[str, object]]:
        """Every reading of `sensor` at the hub (GET /api/v1/readings, page by page)."""
        out: list[Mapping[str, object]] = []
        offset: int | None = 0
        while offset is not None:
            page = await self.get("/api/v1/readings", sensor=sensor, offset=offset, limit=10_000)
            assert isinstance(page, dict)
            out += page["readings"]
            offset = page["next_offset"]
        return out


def stored_twice(rows: Sequence[Mapping[str, object]]) -> list[str]:
    """Readings of /api/v1/readings stored more than once: the same (gateway, sequence
    number) twice — what the hub's idempotent insert must never let through. Not (quantity,
    time): a gateway that reads two frames of a line in one go (a loaded machine, a burst)
    stamps both with the same millisecond, and they are two readings. Empty when none."""
    seen: set[tuple[object, object]] = set()
    twice: list[str] = []
    for r in rows:
        key = (r["gateway"], r["seq"])
        if key in seen:
            twice.append(f"{r['quantity']} at {r['ts_ms']} (seq {r['seq']} of {r['gateway']})")
        seen.add(key)
    return twice


# -- gateway ------------------------------------------------------------------------------------


async def estran_run(*args: str, timeout: float = 60.0) -> tuple[int, str]:
    """`estran ARGS` as a user types it, to its end: its exit status and its output (standard
    error included)."""
    proc = await asyncio.create_subprocess_exec(
        *estran_argv(*args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RigError(f"estran {' '.join(args)}: not done within {timeout:g} s") from None
    return proc.returncode or 0, out.decode(errors="replace")


class EnrolledGateway:
    """A gateway enrolled with `estran edge enroll` in `workdir/NAME` (its `data` directory and
    the `edge.toml` enrollment wrote): `id`, `password` (its `DATA/credentials`), and `run()`
    (`estran edge run` on that file: the daemon with its fleet link)."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.directory = workdir / name
        self.data = self.directory / "data"
        self.config = self.directory / "edge.toml"
        self.id = str(tomllib.loads(self.config.read_text())["gateway"]["id"])
        user, _, self.password = (self.data / "credentials").read_text().strip().partition(":")
        if user != self.id:
            raise RigError(f"{self.data / 'credentials'} is for {user}, not {self.id}")
        self.child = Child(
            self.id,
            estran_argv("edge", "run", "--config", str(self.config)),
            workdir / f"{self.id}.log",
        )

    @staticmethod
    async def enroll(
        hub_url: str, token: str, workdir: Path, name: str, *extra: str
    ) -> tuple[int, str]:
        """`estran edge enroll` into `workdir/NAME`: its exit status and output (a refusal is
        an answer here, not an error)."""
        return await estran_run(
            "edge", "enroll", "--hub", hub_url, "--token", token,
            "--data", str(workdir / name / "data"),
            "--config", str(workdir / name / "edge.toml"), *extra,
        )  # fmt: skip

    async def run(self) -> None:
        await self.child.start()

    async def stop(self) -> None:
        await self.child.stop(15)


async def enroll_gateway(
    hub: HubProcess, workdir: Path, name: str, *, group: str, token: str | None = None
) -> EnrolledGateway:
    """A gateway enrolled into `group` of `hub` (with `token`, or a new one), not running."""
    token = token or await hub.enrollment_token(group)
    code, out = await EnrolledGateway.enroll(hub.url, token, workdir, name)
    if code != 0:
        raise RigError(f"estran edge enroll {name}: exit {code}:\n{out}")
    return EnrolledGateway(workdir, name)


class GatewayProcess:
    """`estran edge run` with a configuration written from the rig's ports, radio and broker
    (`broker_url`: the broker, or a link to it); `extra` tables are added as they are."""

    def __init__(
        self,
        workdir: Path,
        gateway_id: str,
        broker_url: str,
        *,
        serial: Sequence[SerialPort] = (),
        ble: BleRadio | None = None,
        extra: Mapping[str, Mapping[str, object]] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.gateway_id = gateway_id
        self.data = workdir / gateway_id
        self.config = workdir / f"{gateway_id}.toml"
        lines = toml_table("[gateway]", {"id": gateway_id, "data_dir": str(self.data)})
        tables: dict[str, dict[str, object]] = {
            "uplink": {"broker": broker_url, "state_interval": 5},
            "buffer": {"commit_interval": 0.2},
            "daemon": {"stop_timeout": 5},
        }
        for name, table in (extra or {}).items():
            tables.setdefault(name, {}).update(table)
        for name, table in tables.items():
            lines += toml_table(f"[{name}]", table)
        for port in serial:
            table = dict(port.port)
            devices = table.pop("devices")
            assert isinstance(devices, list)
            lines += toml_table("[[serial]]", table)
            for device in devices:
                lines += toml_table("[[serial.devices]]", device)
        if ble is not None:
            lines += toml_table("[ble]", ble.table)
            for device in ble.devices:
                lines += toml_table("[[ble.devices]]", device)
        self.config.write_text("\n".join(lines))
        self.child = Child(
            gateway_id,
            estran_argv("edge", "run", "--config", str(self.config)),
            workdir / f"{gateway_id}.log",
            env=env,
        )

    async def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        await self.child.start()

    async def stop(self) -> None:
        await self.child.stop(15)


__all__ = [
    "Broker",
    "Database",
    "EnrolledGateway",
    "GatewayProcess",
    "HubProcess",
    "enroll_gateway",
    "estran_run",
    "http_json",
    "hub_ready",
    "stored_twice",
]
