"""Fleet scale: 1,000 simulated gateways against one hub and a private Mosquitto, then the
same gateways against the hub as 3 processes on a shared subscription (PostgreSQL).

Each gateway (estran.rig.swarm) has its own identity, enrolled through the hub's API, its
own credentials, buffer and two MQTT sessions (uplink, fleet link), and speaks the real wire
protocol with the gateway's own code. The test checks what must hold whatever the machine's
speed: every gateway connected and online at the hub, a configuration push verified, applied
and reported by every one, the live rate (10 sensors each, one reading a minute) ingested,
and every reading at the hub exactly once. The timings (connect storm, push, lag) and the CPU
seconds each process spent in each phase are figures, printed as JSON and written to
$ESTRAN_FIGURES (default: the test's temporary directory), never a pass/fail condition:
`estran bench fleet` and docs/benchmarks.md hold them beside their targets. The
10,000-gateway run is marked `long`.

Public interfaces only: the rig (`estran.rig`, its PostgreSQL database and the swarm), which
drives the hub and Mosquitto through their command lines, files and HTTP API.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
from pathlib import Path

import pytest

from estran.rig import Rig, Unavailable, mosquitto_binary
from estran.rig.swarm import FDS_PER_GATEWAY, FleetScale, Workload, loadavg, raise_fd_limit


def need_fds(gateways: int) -> None:
    """Mosquitto holds two connections per gateway and inherits this process's limit of
    open files (raised to what the run needs where this process may: root)."""
    limit = raise_fd_limit(gateways * FDS_PER_GATEWAY + 1024)
    if limit != resource.RLIM_INFINITY and limit < gateways * 2 + 256:
        raise Unavailable(f"ulimit -n is {limit}: {gateways} gateways need {gateways * 2 + 256}")


def data_root(tmp_path: Path) -> Path:
    """The gateways' data directories: on tmpfs when there is one (thousands of small
    fsyncs a second are the flash's concern, not this test's), else beside the test."""
    shm = Path("/dev/shm")
    return Path(shm / f"estran-swarm-{os.getpid()}") if shm.is_dir() else tmp_path


def publish(name: str, figures: dict[str, object], tmp_path: Path) -> None:
    out = Path(os.environ.get("ESTRAN_FIGURES", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(figures, indent=2)
    (out / f"{name}.json").write_text(text)
    print(f"\n{name}: {text}")


def check_run(phase: dict[str, object]) -> None:
    drained = phase["exactly_once"]
    assert isinstance(drained, dict)
    assert drained["produced"] > 0
    assert drained["held_at_hub"] == drained["produced"], drained


async def scale_run(
    rig: Rig, tmp_path: Path, n: int, *, three: bool, live_s: float
) -> dict[str, object]:
    mosquitto_binary()  # Unavailable when there is none
    need_fds(n)
    db = (await rig.database("database.postgresql")).spec
    root = data_root(tmp_path)
    figures: dict[str, object] = {"loadavg_start": loadavg()}
    try:
        async with FleetScale(
            tmp_path,
            n,
            db=db,
            workload=Workload(10, 60.0, 1.0),  # the live rate itself, not compressed
            data_root=root,
            timeout_scale=max(5.0, n / 200),  # liveness bounds, not figures: a loaded CI
        ) as run:
            figures.update(run.header())
            figures.update(await run.enroll())
            assert figures["enrolled"] == n
            for processes in (1, 3) if three else (1,):
                phase: dict[str, object] = {}
                if processes == 1:
                    phase["connect_storm"] = await run.storm()
                else:
                    # The same gateways stay connected while the hub becomes 3 processes:
                    # a second storm (the swarm stopped, started again) cost a minute and a
                    # half of the test; `estran bench fleet --hub-processes 3` measures it.
                    figures[f"scale_{processes}"] = await run.scale(processes)
                    phase["resumed"] = await run.resume()
                phase["config_push"] = await run.push()
                phase["live"] = live = await run.live(live_s)
                shares = live["ingested_by_hub_process"]
                assert isinstance(shares, list) and len(shares) == processes, shares
                assert all(share > 0 for share in shares), shares  # the shared subscription
                phase["exactly_once"] = await run.drain(stop=processes == 3 or not three)
                check_run(phase)
                figures[f"hub_{processes}_process"] = phase
            figures["processes"] = run.processes()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures["loadavg_end"] = loadavg()
    return figures


@pytest.mark.needs("broker", "database.postgresql", "hub")
async def test_thousand_gateways_one_hub_then_three_processes(rig: Rig, tmp_path: Path) -> None:
    figures = await scale_run(rig, tmp_path, 1000, three=True, live_s=10.0)
    publish("fleet-scale-1000", figures, tmp_path)


@pytest.mark.long
@pytest.mark.needs("broker", "database.postgresql", "hub")
async def test_ten_thousand_gateways(rig: Rig, tmp_path: Path) -> None:
    figures = await scale_run(rig, tmp_path, 10_000, three=True, live_s=60.0)
    publish("fleet-scale-10000", figures, tmp_path)
