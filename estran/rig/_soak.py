"""Soak: processes left running, watched; does anything grow?

`SoakSampler` samples, every period, for each named process its resident memory (`VmRSS`
of /proc/PID/status), the anonymous part of it (`RssAnon`: heap and stacks, where a leak
grows; the rest is pages of files, the interpreter's and libraries' code first of all, which
fill as code runs for the first time and which the kernel may drop at any time) and its open
descriptors (/proc/PID/fd); for each named directory the bytes
of its files; and for each gateway daemon what its status socket says of its buffer
(`DATA_DIR/status.sock`, docs/operations.md): readings not yet acknowledged (`depth`) and
segment files (`segments`). Linux only.

`SoakSeries.summary()` fits a least-squares line through a series after a warm-up and says
whether it is **flat within noise** (`rss` is reported, `anon` judged): the growth that the
lower of the whole run's slope and its second half's predicts over the sampled span (a leak
keeps its rate in both, a warm-up slows down) is
no more than 3 standard deviations of the residuals, or no more than the series' floor
(`FLOORS`: 1 % of the mean for memory and bytes, half a descriptor, one reading). A series
with a bound (`BOUNDS`: a gateway holds at most two segment files while its hub
acknowledges) is judged by its maximum as well. `not_flat()` lists what is not flat.

`run_demo_soak()` runs `estran demo` (the hub on SQLite with its embedded broker, three
gateway daemons on simulated serial and BLE sensors) and samples its hub and gateways: what
`estran bench soak` and hil-tests/test_soak.py run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from estran.rig._child import Child, estran_argv
from estran.rig._errors import RigError

DEMO_START_S = 120.0  # the demo's start: hub, simulators, enrollment, three daemons
STATUS_TIMEOUT_S = 3.0
# the growth over the run below which a series is flat whatever its noise
FLOORS: dict[str, tuple[str, float]] = {
    "rss": ("mean", 0.01),
    "anon": ("mean", 0.01),
    "bytes": ("mean", 0.01),
    "fds": ("abs", 0.5),
    "depth": ("abs", 1.0),
    "segments": ("abs", 0.5),
}
BOUNDS: dict[str, float] = {"segments": 2}
REPORTED_ONLY = frozenset({"rss"})  # VmRSS: anonymous memory (judged) plus file pages


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) of `pid` in bytes ((0, 0) if it is gone)."""
    rss = anon = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0, 0
    return rss, anon


def open_fds(pid: int) -> int:
    """How many file descriptors `pid` holds open (0 if it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def cmdline(pid: int) -> list[str]:
    """The arguments `pid` was started with ([] if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def dir_bytes(path: Path) -> int:
    """Bytes of the regular files under `path`."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


def gateway_status(sock: Path, timeout: float = STATUS_TIMEOUT_S) -> dict[str, object] | None:
    """A gateway daemon's snapshot from its status socket (connect, read to the end: what
    `socat - UNIX-CONNECT:DATA_DIR/status.sock` shows), None when it does not answer."""
    chunks: list[bytes] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            while chunk := s.recv(65536):
                chunks.append(chunk)
        doc = json.loads(b"".join(chunks))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0.0 for fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    mx = statistics.fmean(p[0] for p in points)
    my = statistics.fmean(p[1] for p in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / sxx


class SoakSeries:
    """One figure sampled over time: (seconds since the start, value). `kind` (the part of
    the name after the last dot: rss, fds, bytes, depth, segments) picks its floor and
    bound."""

    def __init__(self, name: str, unit: str) -> None:
        self.name = name
        self.unit = unit
        self.kind = name.rsplit(".", 1)[-1]
        self.points: list[tuple[float, float]] = []

    def add(self, t: float, value: float) -> None:
        self.points.append((t, value))

    def summary(self, *, skip_s: float = 0.0) -> dict[str, object]:
        """Slope per hour and whether the series is flat within noise after a warm-up of
        `skip_s` seconds; `reason` says why not."""
        pts = [p for p in self.points if p[0] >= skip_s]
        out: dict[str, object] = {"name": self.name, "unit": self.unit, "samples": len(pts)}
        if len(pts) < 3:
            out.update(flat=False, reason=f"{len(pts)} samples after the warm-up")
            return out
        b = slope(pts)
        mx = statistics.fmean(p[0] for p in pts)
        my = statistics.fmean(p[1] for p in pts)
        residuals = [y - (my + b * (x - mx)) for x, y in pts]
        noise = statistics.pstdev(residuals)
        span = pts[-1][0] - pts[0][0]
        # Judged: the lower of the whole run's rate and its second half's, over the whole run.
        # A leak grows at the same rate from start to end and shows in both; a warm-up
        # (allocators' pages touched for the first time, caches filling) slows down and ends:
        # its second half is flat; a step near the end of a short run steepens only the
        # second half.
        late = slope(pts[len(pts) // 2 :])
        growth = min(b, late) * span
        how, k = FLOORS.get(self.kind, ("mean", 0.01))
        floor = k * abs(my) if how == "mean" else k
        flat = growth <= 3 * noise or growth <= floor or math.isclose(growth, 0.0)
        reason = (
            ""
            if flat
            else f"grows {growth:.4g} {self.unit} over {span:.0f} s (whole run and second half): "
            f"above 3 standard deviations of the residuals ({3 * noise:.4g}) and the floor "
            f"({floor:.4g})"
        )
        top = max(p[1] for p in pts)
        bound = BOUNDS.get(self.kind)
        if bound is not None and top > bound:
            flat = False
            reason = f"reached {top:g}, above its bound {bound:g}"
        out.update(
            span_s=round(span, 1),
            first=pts[0][1],
            last=pts[-1][1],
            min=min(p[1] for p in pts),
            max=top,
            mean=round(my, 3),
            slope_per_hour=round(b * 3600, 3),
            late_slope_per_hour=round(late * 3600, 3),
            growth_over_run=round(growth, 3),
            noise_stdev=round(noise, 3),
            floor=round(floor, 3),
            flat=flat,
        )
        if reason:
            out["reason"] = reason
        if self.kind in REPORTED_ONLY:
            out["judged"] = False
        return out


class SoakSampler:
    """Samples processes (RSS, descriptors), directories (bytes) and gateway daemons'
    status sockets (buffer depth and segments)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.series: dict[str, SoakSeries] = {}

    def _series(self, name: str, unit: str) -> SoakSeries:
        if name not in self.series:
            self.series[name] = SoakSeries(name, unit)
        return self.series[name]

    def sample(
        self,
        pids: Mapping[str, int],
        dirs: Mapping[str, Path] | None = None,
        status: Mapping[str, Path] | None = None,
    ) -> None:
        t = self._clock() - self.started
        for name, pid in pids.items():
            (rss, anon), fds = memory(pid), open_fds(pid)
            if rss:  # a process gone between samples is not a zero
                self._series(f"{name}.rss", "bytes").add(t, rss)
                self._series(f"{name}.anon", "bytes").add(t, anon)
                self._series(f"{name}.fds", "count").add(t, fds)
        for name, path in (dirs or {}).items():
            self._series(f"{name}.bytes", "bytes").add(t, dir_bytes(path))
        for name, sock in (status or {}).items():
            doc = gateway_status(sock)
            buffer = doc.get("buffer") if doc is not None else None
            if isinstance(buffer, dict):
                for key, unit in (("depth", "readings"), ("segments", "count")):
                    value = buffer.get(key)
                    if isinstance(value, int):
                        self._series(f"{name}.{key}", unit).add(t, value)

    def summary(self, *, skip_s: float = 0.0) -> dict[str, dict[str, object]]:
        return {name: s.summary(skip_s=skip_s) for name, s in self.series.items()}

    def last(self) -> dict[str, float]:
        """The latest sample of each series (seconds since the start under `t`)."""
        out = {name: s.points[-1][1] for name, s in self.series.items() if s.points}
        times = [s.points[-1][0] for s in self.series.values() if s.points]
        out["t"] = round(max(times), 1) if times else 0.0
        return out


def not_flat(series: Mapping[str, Mapping[str, object]]) -> dict[str, str]:
    """What is judged and not flat, with the reason (empty: everything is flat)."""
    return {
        name: str(s.get("reason", "not flat"))
        for name, s in series.items()
        if not s.get("flat") and s.get("judged", True)
    }


def _demo_roles(demo_pid: int) -> dict[str, int]:
    """{'hub': pid, 'gw-<site>': pid, ...} among the demo's processes."""
    out: dict[str, int] = {}
    for pid in descendants(demo_pid):
        argv = cmdline(pid)
        if "hub" in argv and "run" in argv:
            out["hub"] = pid
        elif "edge" in argv and "run" in argv and "--config" in argv:
            config = Path(argv[argv.index("--config") + 1])
            out[f"gw-{config.parent.name}"] = pid
    return out


def _demo_gateways(workdir: Path) -> dict[str, Path]:
    root = workdir / "gateways"
    if not root.is_dir():
        return {}
    return {f"gw-{d.name}": d for d in sorted(root.iterdir()) if d.is_dir()}


async def run_demo_soak(
    workdir: Path,
    duration_s: float,
    *,
    period_s: float = 2.0,
    warmup_s: float = 30.0,
    say: Callable[[str], None] = lambda _: None,
    samples: Path | None = None,
) -> dict[str, object]:
    """`estran demo` in `workdir`, sampled for `warmup_s` + `duration_s`; the figures (one
    JSON-able document: each series' summary after the warm-up, the load average). Every
    sample is also appended to `samples` (JSON lines) as it is taken, when given."""
    demo = Child(
        "demo",
        estran_argv("demo", "--data", str(workdir), "--duration", str(duration_s + warmup_s + 90)),
        workdir.parent / f"{workdir.name}-demo.log",
    )
    started = time.monotonic()
    await demo.start()
    try:
        say("waiting for the hub and three gateway daemons ...")
        roles: dict[str, int] = {}
        while time.monotonic() - started < DEMO_START_S:
            if not demo.alive():
                raise RigError("the demo exited:\n" + demo.tail())
            assert demo.pid is not None
            roles = _demo_roles(demo.pid)
            if "hub" in roles and sum(k.startswith("gw-") for k in roles) >= 3:
                break
            await asyncio.sleep(0.5)
        else:
            raise RigError(f"the demo's processes did not all start: {roles}\n" + demo.tail())
        gateways = _demo_gateways(workdir)
        buffers = {name: d / "buffer" for name, d in gateways.items()}
        sockets = {name: d / "status.sock" for name, d in gateways.items()}
        say(f"sampling {sorted(roles)} every {period_s:g} s for {warmup_s + duration_s:g} s ...")
        sampler = SoakSampler()
        load: list[tuple[float, ...]] = []
        end = time.monotonic() + warmup_s + duration_s
        while time.monotonic() < end:
            if not demo.alive():
                raise RigError("the demo exited during the soak:\n" + demo.tail())
            assert demo.pid is not None
            now = _demo_roles(demo.pid)
            for name, pid in roles.items():
                if now.get(name) != pid:
                    raise RigError(f"{name} restarted or died during the soak:\n" + demo.tail())
            await asyncio.to_thread(sampler.sample, roles, buffers, sockets)
            load.append(os.getloadavg())
            if samples is not None:
                with samples.open("a") as f:
                    f.write(json.dumps({**sampler.last(), "load1": load[-1][0]}) + "\n")
            await asyncio.sleep(period_s)
        hub_data = dir_bytes(workdir / "hub")
    finally:
        await demo.stop(30.0)
    series = sampler.summary(skip_s=warmup_s)
    return {
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "period_s": period_s,
        "series": series,
        "not_flat": not_flat(series),
        "hub_data_bytes_at_end": hub_data,
        "loadavg_1min": {
            "start": round(load[0][0], 2) if load else None,
            "end": round(load[-1][0], 2) if load else None,
            "min": round(min(x[0] for x in load), 2) if load else None,
            "max": round(max(x[0] for x in load), 2) if load else None,
            "mean": round(statistics.fmean(x[0] for x in load), 2) if load else None,
        },
    }


__all__ = [
    "BOUNDS",
    "FLOORS",
    "SoakSampler",
    "SoakSeries",
    "cmdline",
    "descendants",
    "dir_bytes",
    "gateway_status",
    "memory",
    "not_flat",
    "open_fds",
    "run_demo_soak",
    "slope",
]
