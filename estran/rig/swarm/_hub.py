"""The hub a swarm meets: `estran hub run` (one process, or one plus extra `--no-fleet`
ingest processes) and a private Mosquitto running on the passwd and ACL files the hub keeps.

Order matters: the hub writes `passwd` and `acl` first (its fleet task), Mosquitto starts on
them, and the hub sends it SIGHUP (`--mosquitto-pid`) whenever a gateway enrolls or is
revoked. Everything is driven through public interfaces: the CLI, the HTTP API and the
files docs/fleet.md names.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import re
import time
from pathlib import Path

import httpx

from estran.rig import Child, PrivateMosquitto, RigError, estran_argv, free_port

READY_S = 90.0
_ADMIN = re.compile(r"\beat1\.[A-Za-z0-9_.\-]+")


async def power_cut(child: Child) -> None:
    """SIGKILL `child` and reap it."""
    await child.kill_and_wait()


class SwarmHub:
    """A hub on `db` (sqlite or a PostgreSQL URL) with a private Mosquitto, in `workdir`.
    `processes` > 1 adds `--no-fleet` ingest processes on the same data directory (they
    need PostgreSQL)."""

    def __init__(
        self, workdir: Path, db: str = "sqlite", *, processes: int = 1, workers: int = 1
    ) -> None:
        if processes > 1 and not db.startswith("postgresql"):
            raise RigError("several hub processes need PostgreSQL")
        self.workdir = workdir
        self.db = db
        self.data = workdir / "hub"
        self.mosquitto_dir = workdir / "mosquitto"
        self.pid_file = workdir / "mosquitto.pid"
        self.broker_port = free_port()
        self.http_port = free_port()
        self.http_ports = [self.http_port] + [free_port() for _ in range(1, processes)]
        self.workers = workers
        self.processes: list[Child] = []
        self.mosquitto: PrivateMosquitto | None = None
        self.admin_token = ""
        self._want = processes

    # -- addresses ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def broker(self) -> str:
        return f"mqtt://127.0.0.1:{self.broker_port}"

    # -- processes ----------------------------------------------------------------------------

    def _hub_argv(self, index: int) -> list[str]:
        primary = index == 0
        argv = [
            "hub",
            "run",
            "--data",
            str(self.data),
            "--db",
            self.db,
            "--broker",
            self.broker,
            "--workers",
            str(self.workers),
            "--log-level",
            "warning",
        ]
        if primary:
            argv += [
                "--http",
                f"127.0.0.1:{self.http_port}",
                "--public-broker",
                self.broker,
                "--mosquitto-dir",
                str(self.mosquitto_dir),
                "--mosquitto-pid",
                str(self.pid_file),
            ]
        else:
            # its own read API, for its /metrics (an ingest-only process takes --http none)
            argv += ["--http", f"127.0.0.1:{self.http_ports[index]}", "--no-fleet"]
        return estran_argv(*argv)

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        primary = Child("hub-0", self._hub_argv(0), self.workdir / "hub-0.log")
        self.processes = [primary]
        await primary.start()
        await self._wait_files(primary)
        self.mosquitto = PrivateMosquitto(
            self.workdir,
            self.broker_port,
            conf=self._mosquitto_conf(),
            name="mosquitto",
        )
        await self.start_broker()
        await self.wait_ready(0)
        self.admin_token = self._admin_token(primary)
        for i in range(1, self._want):
            extra = Child(f"hub-{i}", self._hub_argv(i), self.workdir / f"hub-{i}.log")
            self.processes.append(extra)
            await extra.start()
        for i in range(1, self._want):
            await self.wait_ready(i)

    def _mosquitto_conf(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    # started as root, Mosquitto drops to `mosquitto`, which could not read
                    # the files the hub wrote (0640, the hub's group): stay who we are
                    *([f"user {getpass.getuser()}"] if os.geteuid() == 0 else []),
                    "per_listener_settings false",
                    "allow_anonymous false",
                    f"listener {self.broker_port} 127.0.0.1",
                    f"password_file {self.mosquitto_dir / 'passwd'}",
                    f"acl_file {self.mosquitto_dir / 'acl'}",
                    "persistence false",
                    f"max_packet_size {1024 * 1024 + 1024}",
                    "max_queued_messages 100000",
                    "set_tcp_nodelay true",
                    "log_type error",
                    "log_type warning",
                    "log_dest stderr",
                    "",
                ]
            )
        )
        return conf

    async def start_broker(self) -> None:
        assert self.mosquitto is not None
        await self.mosquitto.start()
        self.pid_file.write_text(f"{self.mosquitto.pid}\n")  # what the hub sends SIGHUP to

    async def restart_broker(self) -> float:
        """Kill Mosquitto (a crash) and start it again; seconds it was away."""
        assert self.mosquitto is not None
        t = time.monotonic()
        await power_cut(self.mosquitto)
        await self.start_broker()
        return time.monotonic() - t

    async def _wait_files(self, hub: Child) -> None:
        deadline = time.monotonic() + READY_S
        while not (self.mosquitto_dir / "passwd").exists():
            if not hub.alive() or time.monotonic() > deadline:
                raise RigError("the hub wrote no Mosquitto files:\n" + hub.tail())
            await asyncio.sleep(0.1)

    async def wait_ready(self, index: int = 0, timeout: float = READY_S) -> None:
        """Until hub process `index` says it is ready (its workers subscribed)."""
        hub = self.processes[index]
        url = f"http://127.0.0.1:{self.http_ports[index]}"
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if not hub.alive():
                    raise RigError("the hub exited:\n" + hub.tail())
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    r = await http.get(f"{url}/api/v1/health")
                    if r.status_code == 200 and r.json().get("ready"):
                        return
                await asyncio.sleep(0.2)
        raise RigError("the hub did not become ready:\n" + hub.tail())

    def _admin_token(self, hub: Child) -> str:
        found = _ADMIN.findall(hub.log.read_text(errors="replace"))
        if not found:
            raise RigError("the hub printed no admin credential:\n" + hub.tail())
        return str(found[0])

    async def restart(self, *, kill: bool = False) -> float:
        """Stop (or kill -9) every hub process and start them again; seconds until the
        primary is ready."""
        t = time.monotonic()
        for p in reversed(self.processes):
            if kill:
                await power_cut(p)
            else:
                await p.stop()
        for p in self.processes:
            await p.start()
        for i in range(len(self.processes)):
            await self.wait_ready(i)
        return time.monotonic() - t

    async def scale(self, processes: int) -> float:
        """Stop every hub process, start `processes` of them (the first runs the fleet);
        seconds until all are ready. Mosquitto keeps running."""
        if processes > 1 and not self.db.startswith("postgresql"):
            raise RigError("several hub processes need PostgreSQL")
        t = time.monotonic()
        for p in reversed(self.processes):
            await p.stop()
        while len(self.http_ports) < processes:
            self.http_ports.append(free_port())
        self.processes = [
            Child(f"hub-{i}", self._hub_argv(i), self.workdir / f"hub-{i}.log")
            for i in range(processes)
        ]
        for p in self.processes:
            await p.start()
        for i in range(processes):
            await self.wait_ready(i)
        return time.monotonic() - t

    async def stop(self) -> None:
        for p in reversed(self.processes):
            await p.stop()
        if self.mosquitto is not None:
            await self.mosquitto.stop()

    def pids(self) -> dict[str, int]:
        out = {p.name: p.pid for p in self.processes if p.pid is not None and p.alive()}
        if self.mosquitto is not None and self.mosquitto.pid is not None:
            out["mosquitto"] = self.mosquitto.pid
        return out

    # -- the admin's side -----------------------------------------------------------------------

    async def cli(self, *args: str, timeout: float = 60.0) -> str:
        """`estran ARGS...` (e.g. `fleet --data DIR group create G`); its stdout."""
        proc = await asyncio.create_subprocess_exec(
            *estran_argv(*args),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        if proc.returncode != 0:
            raise RigError(f"estran {' '.join(args)}: {err.decode(errors='replace')[-2000:]}")
        return out.decode()

    async def create_group(self, name: str) -> None:
        await self.cli("fleet", "--data", str(self.data), "group", "create", name)

    def client(self, timeout: float = 30.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=timeout,
        )

    async def get_all(self, http: httpx.AsyncClient, path: str) -> list[dict[str, object]]:
        """Every item of a paged list endpoint (`limit`/`offset`)."""
        out: list[dict[str, object]] = []
        while True:
            r = await http.get(path, params={"limit": 1000, "offset": len(out)})
            r.raise_for_status()
            page = r.json()
            out.extend(page)
            total = int(r.headers.get("X-Total-Count", len(out)))
            if not page or len(out) >= total:
                return out

    async def set_fleet_config(self, http: httpx.AsyncClient, doc: dict[str, object]) -> None:
        r = await http.put("/api/v1/fleet/config/fleet", json=doc)
        if r.status_code >= 300:
            raise RigError(f"configuration refused ({r.status_code}): {r.text}")

    async def ingest_counts(self, http: httpx.AsyncClient) -> list[int]:
        """Readings each hub process has ingested since it started (`/api/v1/health`)."""
        out = []
        for port in self.http_ports[: len(self.processes)]:
            r = await http.get(f"http://127.0.0.1:{port}/api/v1/health")
            r.raise_for_status()
            out.append(int(r.json().get("ingest", {}).get("readings", 0)))
        return out

    async def metrics(self, http: httpx.AsyncClient) -> str:
        """/metrics of every hub process, one after the other."""
        texts = []
        for port in self.http_ports[: len(self.processes)]:
            r = await http.get(f"http://127.0.0.1:{port}/metrics")
            r.raise_for_status()
            texts.append(r.text)
        return "\n".join(texts)


def histogram(text: str, name: str) -> tuple[list[tuple[float, float]], float, float]:
    """(cumulative buckets [(le, count)], count, sum) of a Prometheus histogram in `text`,
    summed over its label sets."""
    buckets: dict[float, float] = {}
    count = total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "_bucket"):
            m = re.search(r'le="([^"]+)"\}\s+(\S+)', line)
            if m:
                le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
                buckets[le] = buckets.get(le, 0.0) + float(m.group(2))
        elif line.startswith(name + "_count"):
            count += float(line.split()[-1])
        elif line.startswith(name + "_sum"):
            total += float(line.split()[-1])
    return sorted(buckets.items()), count, total


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the bucket holding quantile `q` (a histogram's resolution)."""
    if not buckets or buckets[-1][1] == 0:
        return None
    want = q * buckets[-1][1]
    for le, c in buckets:
        if c >= want:
            return le
    return None


def diff_buckets(
    after: list[tuple[float, float]], before: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    prev = dict(before)
    return [(le, c - prev.get(le, 0.0)) for le, c in after]


__all__ = ["SwarmHub", "diff_buckets", "histogram", "power_cut", "quantile"]
