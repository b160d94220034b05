"""The swarm: simulated gateways enrolled at a hub and run by a few worker processes.

    swarm = Swarm(workdir, n=1000, processes=2, workload=Workload(10, 60.0, speed=6))
    await swarm.enroll(hub.url, hub.admin_token, "swarm")     # through the enrollment API
    await swarm.start(); ...; swarm.total()["uplink"]         # how many are connected
    await swarm.stop()

Each worker process (`python -m estran.rig.swarm`) runs its share of the gateways on one
asyncio loop and prints a status line every `status_interval` seconds; the swarm keeps the
latest line of each and sums them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from estran.rig import Child, RigError
from estran.rig.swarm._enroll import enroll_many
from estran.rig.swarm._gateway import LAG_BUCKETS, Workload
from estran.rig.swarm._hub import power_cut
from estran.rig.swarm._worker import SUMMED_PER_GATEWAY

SUMMED = ("n", *SUMMED_PER_GATEWAY, "versioned")


class Swarm:
    def __init__(
        self,
        workdir: Path,
        n: int,
        *,
        processes: int = 2,
        workload: Workload | None = None,
        status_interval: float = 0.5,
        data_root: Path | None = None,
    ) -> None:
        """`data_root`: where the gateways' data directories live (default `workdir`; a
        tmpfs such as /dev/shm spares the disk thousands of small fsyncs a second)."""
        self.workdir = workdir
        self.n = n
        self.processes = max(1, min(processes, n))
        self.workload = workload or Workload()
        self.status_interval = status_interval
        self.root = (data_root or workdir) / "gateways"
        self.dirs = [self.root / f"gw{i:05d}" for i in range(n)]
        self.ids: list[str] = []
        self.children: list[Child] = []
        self.latest: dict[str, dict[str, object]] = {}
        self._readers: list[asyncio.Task[None]] = []
        # the latest a worker's event loop woke for a status line (since reset to 0):
        # a starved loop sends its keepalives and handles its CONNACKs late
        self.loop_late_max = 0.0

    async def enroll(
        self, hub_url: str, admin_token: str, group: str, *, site: str | None = None
    ) -> float:
        """Enroll every gateway (one token each, through the API); seconds taken."""
        self.ids, seconds = await asyncio.to_thread(
            enroll_many, hub_url, admin_token, group, self.dirs, site=site
        )
        return seconds

    def _argv(self, dirs_file: Path) -> list[str]:
        w = self.workload
        return [
            sys.executable,
            "-m",
            "estran.rig.swarm",
            str(dirs_file),
            "--sensors",
            str(w.sensors),
            "--period",
            str(w.period_s),
            "--speed",
            str(w.speed),
            "--status-interval",
            str(self.status_interval),
        ]

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for k in range(self.processes):
            share = self.dirs[k :: self.processes]
            dirs_file = self.workdir / f"swarm-{k}.dirs"
            dirs_file.write_text("\n".join(str(d) for d in share) + "\n")
            child = Child(
                f"swarm-{k}", self._argv(dirs_file), self.workdir / f"swarm-{k}.log",
                pipe_stdout=True,
            )  # fmt: skip
            await child.start()
            self.children.append(child)
            self._readers.append(asyncio.create_task(self._read(child), name=f"{child.name}-read"))

    async def _read(self, child: Child) -> None:
        while child.alive():
            try:
                line = await child.readline(60.0)
            except TimeoutError:
                continue
            if not line:
                return
            with contextlib.suppress(ValueError):
                status = self.latest[child.name] = json.loads(line)
                late = float(status.get("loop_late_s", 0.0))
                self.loop_late_max = max(self.loop_late_max, late)

    def total(self) -> dict[str, object]:
        """The sum of the latest status of every worker process."""
        out: dict[str, object] = {k: 0 for k in SUMMED}
        outcomes: dict[str, int] = {}
        lag = [0] * len(LAG_BUCKETS)
        lag_max = 0.0
        rss = fds = 0
        late = 0.0
        for s in self.latest.values():
            for k in SUMMED:
                out[k] = int(out[k]) + int(s.get(k, 0))  # type: ignore[call-overload]
            for v, c in dict(s.get("outcomes", {})).items():  # type: ignore[call-overload]
                outcomes[v] = outcomes.get(v, 0) + int(c)
            lag = [a + int(b) for a, b in zip(lag, list(s.get("lag_counts", lag)), strict=True)]  # type: ignore[call-overload]
            lag_max = max(lag_max, float(s.get("lag_max", 0.0)))  # type: ignore[arg-type]
            rss += int(s.get("rss", 0))  # type: ignore[call-overload]
            fds += int(s.get("fds", 0))  # type: ignore[call-overload]
            late = max(late, float(s.get("loop_late_s", 0.0)))  # type: ignore[arg-type]
        out.update(outcomes=outcomes, lag_counts=lag, lag_max=lag_max)
        out.update(rss=rss, fds=fds, processes=len(self.latest), loop_late_s=late)
        return out

    async def until(
        self, what: str, check: Callable[[dict[str, object]], bool], timeout: float
    ) -> float:
        """Seconds until `check(total())` holds; RigError after `timeout`."""
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            for c in self.children:
                if not c.alive() and not c.stopping:
                    raise RigError(f"{c.name} exited:\n{c.tail()}")
            if len(self.latest) == len(self.children) and check(self.total()):
                return time.monotonic() - t
            await asyncio.sleep(0.05)
        raise RigError(f"{what}: not within {timeout:g} s; swarm: {self.total()}")

    def pids(self) -> dict[str, int]:
        return {c.name: c.pid for c in self.children if c.pid is not None and c.alive()}

    async def kill(self, index: int) -> None:
        """SIGKILL one worker process: the power cut of its gateways."""
        child = self.children[index]
        await power_cut(child)
        self.latest.pop(child.name, None)

    async def restart(self, index: int) -> None:
        child = self.children[index]
        await child.start()
        self._readers.append(asyncio.create_task(self._read(child), name=f"{child.name}-read"))

    def fresh(self) -> Swarm:
        """The same gateways (identities, buffers) as a swarm not yet started."""
        again = Swarm(
            self.workdir,
            self.n,
            processes=self.processes,
            workload=self.workload,
            status_interval=self.status_interval,
        )
        again.root, again.dirs, again.ids = self.root, self.dirs, self.ids
        return again

    def quiesce(self) -> None:
        """Silence every sensor (SIGUSR1); the uplinks drain what the buffers hold."""
        for c in self.children:
            c.send_signal(signal.SIGUSR1)

    def resume(self) -> None:
        """The sensors read again (SIGUSR2), after `quiesce`."""
        for c in self.children:
            c.send_signal(signal.SIGUSR2)

    async def stop(self) -> None:
        for c in self.children:
            c.stopping = True
        await asyncio.gather(*(c.stop(20.0) for c in self.children), return_exceptions=True)
        for t in self._readers:
            t.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


__all__ = ["Swarm"]
