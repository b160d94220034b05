"""`probe` against meters that talk at their real line rate: full-length frames sent back
to back with the real gap between them, and a listener that starts just after a frame
began (it loses that frame and must wait for the next whole one). The default options, as
a technician runs them: nothing is shortened here (issue 9: a real Linky historique was not
recognised because the 1200-baud window was shorter than two frame times).

A few probes only (each takes seconds of real time); the timings are printed as JSON
lines (`pytest -s`), never asserted: the steps are."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from edge.probe import FOUND, NOTHING, TALKERS, ProbeOptions, listen_windows, probe
from edge.simulators.serial import LinkySimulator, SerialSimulator


async def just_after_a_frame_began(sim: SerialSimulator, into: float = 0.1) -> None:
    """Return `into` seconds after the simulator started sending a frame."""
    frames = sim.stats["frames"]
    async with asyncio.timeout(10):
        while sim.stats["frames"] == frames:
            await asyncio.sleep(0.005)
    await asyncio.sleep(into)


def report(name: str, sim: SerialSimulator, started: float, result: object) -> None:
    steps = [(s.label, s.state, round(s.seconds, 2)) for s in result.steps]  # type: ignore[attr-defined]
    print(
        json.dumps(
            {
                "probe": name,
                "frame_bytes": len(sim.frame(False)),  # type: ignore[attr-defined]
                "seconds": round(time.monotonic() - started, 2),
                "steps": steps,
            }
        )
    )


def test_windows_cover_two_real_frame_times() -> None:
    windows = dict(ProbeOptions().listen)
    assert windows == dict(listen_windows())
    for talker in TALKERS:
        # started just after a frame began: the rest of it, then the whole frames needed
        needed = max(talker.period, talker.frame_time) * (talker.frames_needed + 1)
        assert windows[talker.baud] >= needed, talker
    historique = next(t for t in TALKERS if t.name == "TIC historique")
    assert historique.max_frame >= 300 and historique.frame_time >= 2.5
    assert windows[1200] < 10.0  # a Linky is recognised within the first step, under 10 s


async def test_a_real_speed_three_phase_linky_heard_from_mid_frame(tmp_path: Path) -> None:
    async with LinkySimulator("ttyLINKY3", directory=tmp_path, phases=3) as sim:
        assert sim.pace == 1.0 and len(sim.frame(False)) >= 250  # 2.1 s at 1200 7E1
        await just_after_a_frame_began(sim)
        started = time.monotonic()
        result = await probe(sim.path)
    report("linky-historique-3ph", sim, started, result)
    assert (result.protocol, result.mode) == ("tic", "historique"), result.steps
    assert result.line is not None and str(result.line) == "1200 7E1"
    # found by listening at 1200, the first step: nothing else was asked
    assert [(s.label.split(" (")[0], s.state) for s in result.steps] == [("listen 1200 8N1", FOUND)]
    sample = result.sample
    assert sample is not None
    names = {r["name"] for r in sample["readings"]}  # type: ignore[attr-defined]
    assert {"iinst1", "iinst3", "papp"} <= {n.lower() for n in names}


async def test_a_real_speed_linky_standard_heard_from_mid_frame(tmp_path: Path) -> None:
    async with LinkySimulator("ttyLINKYS", directory=tmp_path, mode="standard") as sim:
        await just_after_a_frame_began(sim)
        started = time.monotonic()
        result = await probe(sim.path)
    report("linky-standard", sim, started, result)
    assert (result.protocol, result.mode) == ("tic", "standard"), result.steps
    states = [(s.label.split(" (")[0], s.state) for s in result.steps]
    assert states == [
        ("listen 1200 8N1", NOTHING),  # garbage at the wrong speed: heard, not recognised
        ("listen 4800 8N1", NOTHING),
        ("listen 9600 8N1", FOUND),
    ]
