"""Drivers of the rig that the hil-tests rely on, each checked on its own: the fake clock
moves a real process's wall clock (and not its monotonic clock), a relay's commands run and
a failing one is said, stored_twice finds what is stored twice."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from estran.rig import Child, FakeClock, RigError, Unavailable, parse_env, stored_twice
from estran.rig._faults import CommandPower, faketime_library


def fake_clock(tmp_path: Path) -> FakeClock:
    try:
        faketime_library()
    except Unavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{e} (CI=true)")
        pytest.skip(str(e))
    return FakeClock(tmp_path / "clock")


async def test_the_fake_clock_jumps_a_running_process(tmp_path: Path) -> None:
    clock = fake_clock(tmp_path)
    probe = (  # select, not time.sleep: see docs/hil.md on libfaketime and clock_nanosleep
        "import select, time\n"
        "t0, m0 = time.time(), time.monotonic()\n"
        "print(t0, flush=True)\n"
        "while time.monotonic() - m0 < 20:\n"
        "    select.select([], [], [], 0.05)\n"
        "    t = time.time()\n"
        "    if abs(t - t0 - (time.monotonic() - m0)) > 1000:\n"
        "        print('jumped', round(t - t0 - (time.monotonic() - m0)), flush=True)\n"
        "        break\n"
    )
    child = Child(
        "clock", [sys.executable, "-c", probe], tmp_path / "c.log", pipe_stdout=True, env=clock.env
    )
    async with child:
        float(await child.readline(30))
        clock.jump(-7200)
        line = await child.readline(30)
    assert line.split()[0] == "jumped"
    assert -7210 < int(line.split()[1]) < -7190  # the wall clock moved, the monotonic did not


async def test_a_relay_is_switched_by_the_benchs_commands(tmp_path: Path) -> None:
    log = tmp_path / "relay"
    env = parse_env(
        {
            "rig": "x",
            "resources": {
                "power.adapter": {
                    "driver": "command",
                    "off": ["sh", "-c", f"echo off >> {log}"],
                    "on": ["sh", "-c", f"echo on >> {log}"],
                },
                "power.pdu": {"driver": "command", "off": ["false"], "on": ["true"]},
            },
        }
    )
    relay = CommandPower(env.resource("power.adapter"), tmp_path)
    await relay.off()
    await relay.on()
    assert log.read_text().split() == ["off", "on"]
    with pytest.raises(RigError, match="failed"):
        await CommandPower(env.resource("power.pdu"), tmp_path).off()


def test_stored_twice_names_the_repeats() -> None:
    row = {"gateway": "g", "seq": 1, "quantity": "t", "ts_ms": 5}
    assert stored_twice([row, {**row, "seq": 2}]) == []  # two frames read in the same ms
    assert stored_twice([row, {**row, "gateway": "h"}]) == []  # another gateway's seq 1
    assert stored_twice([row, {**row, "ts_ms": 6}]) == ["t at 6 (seq 1 of g)"]
