"""`estran bench soak`: the territory of `estran demo` left running, its processes watched.

    estran bench soak --duration 3600      # the 1-hour soak; 86400 for the day

`estran demo` runs the hub (embedded broker, SQLite) and three gateway daemons (`estran edge
run`) on simulated serial and BLE sensors. Every `--period` seconds this samples the resident
memory and open file descriptors of the hub and of each gateway daemon, and the bytes of each
gateway's buffer directory; at the end it fits a least-squares line through each series
(after a warm-up) and says whether it is flat within noise (estran.rig.swarm.Series). It
prints one JSON document with the slopes per hour and the load average.

The hub's database grows by design (it keeps the readings): its size is reported, not judged.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click

from estran.rig import Child, RigError, estran_argv
from estran.rig.swarm import ProcessSampler, cmdline, descendants, dir_bytes

GATEWAYS_S = 120.0  # the demo's start: hub, simulators, enrollment, three daemons


def _roles(demo_pid: int) -> dict[str, int]:
    """{'hub': pid, 'gw-<key>': pid, ...} among the demo's processes."""
    out: dict[str, int] = {}
    for pid in descendants(demo_pid):
        argv = cmdline(pid)
        if "hub" in argv and "run" in argv:
            out["hub"] = pid
        elif "edge" in argv and "run" in argv and "--config" in argv:
            config = Path(argv[argv.index("--config") + 1])
            out[f"gw-{config.parent.name}"] = pid
    return out


def _buffers(workdir: Path) -> dict[str, Path]:
    root = workdir / "gateways"
    if not root.is_dir():
        return {}
    return {f"gw-{d.name}": d / "buffer" for d in sorted(root.iterdir()) if d.is_dir()}


async def run_soak(
    workdir: Path,
    duration_s: float,
    *,
    period_s: float = 2.0,
    warmup_s: float = 30.0,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, object]:
    """Run the demo for warm-up + `duration_s`, sampling; the figures."""
    demo = Child(
        "demo",
        estran_argv("demo", "--data", str(workdir), "--duration", str(duration_s + warmup_s + 60)),
        workdir.parent / f"{workdir.name}-demo.log",
    )
    started = time.monotonic()
    await demo.start()
    try:
        say("waiting for the hub and three gateway daemons ...")
        roles: dict[str, int] = {}
        while time.monotonic() - started < GATEWAYS_S:
            if not demo.alive():
                raise RigError("the demo exited:\n" + demo.tail())
            assert demo.pid is not None
            roles = _roles(demo.pid)
            if "hub" in roles and sum(k.startswith("gw-") for k in roles) >= 3:
                break
            await asyncio.sleep(0.5)
        else:
            raise RigError(f"the demo's processes did not all start: {roles}\n" + demo.tail())
        say(f"sampling {sorted(roles)} every {period_s:g} s for {warmup_s + duration_s:g} s ...")
        sampler = ProcessSampler()
        load: list[list[float]] = []
        end = time.monotonic() + warmup_s + duration_s
        while time.monotonic() < end:
            if not demo.alive():
                raise RigError("the demo exited during the soak:\n" + demo.tail())
            assert demo.pid is not None
            now = _roles(demo.pid)
            for name, pid in roles.items():
                if now.get(name) != pid:
                    raise RigError(f"{name} restarted or died during the soak:\n" + demo.tail())
            sampler.sample(roles, _buffers(workdir))
            load.append([round(x, 2) for x in os.getloadavg()])
            await asyncio.sleep(period_s)
        hub_db = dir_bytes(workdir / "hub")
    finally:
        await demo.stop(30.0)
    return {
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "period_s": period_s,
        "series": sampler.summary(skip_s=warmup_s),
        "hub_data_bytes_at_end": hub_db,
        "loadavg_start": load[0] if load else None,
        "loadavg_end": load[-1] if load else None,
    }


@click.command("soak")
@click.option("--duration", "duration_s", type=float, default=180.0, show_default=True)
@click.option("--period", "period_s", type=float, default=2.0, show_default=True)
@click.option("--warmup", "warmup_s", type=float, default=30.0, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None)
def bench_soak(duration_s: float, period_s: float, warmup_s: float, workdir: Path | None) -> None:
    """The demo's hub and gateways left running: memory, files, buffers and their slopes."""

    def say(text: str) -> None:
        click.echo(text, err=True)

    with tempfile.TemporaryDirectory(prefix="estran-soak-") as tmp:
        figures = asyncio.run(
            run_soak(
                (workdir or Path(tmp)) / "territory",
                duration_s,
                period_s=period_s,
                warmup_s=warmup_s,
                say=say,
            )
        )
    click.echo(json.dumps(figures, indent=2))
