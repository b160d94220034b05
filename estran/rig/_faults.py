"""Fault drivers of a rig: power switches, the network link, the clock.

Power (`PowerSwitch`: `off`, `on`, `cycle`):
- `process-kill`: the power cut of a process — SIGKILL of the gateway (`target: gateway`) or
  the hub (`target: hub`), no goodbye, no flush; `on` starts it again.
- `serial-unplug`: the USB cable of a simulated adapter pulled (`serial: CAPABILITY`): the
  simulator's unplug fault; `on` replugs it.
- `command`: a USB relay or a PDU driven by a command of the bench (`off: [argv]`,
  `on: [argv]`, e.g. `usbrelay HURTM_1=0`, `sispmctl -f 1`, `snmpset ... outletControl`).

Link (`link`, driver `proxy`): a LinkProxy between the gateway and its broker (cut, blackhole,
delay, MQTT PUBLISH repeated). The gateway of the rig dials the link, not the broker.

Clock (`clock`, driver `faketime`): the gateway's wall clock moved by libfaketime
(LD_PRELOAD), as an NTP step or a dead RTC moves it, while its monotonic clock runs on
(`DONT_FAKE_MONOTONIC=1`). `jump(seconds)` moves it, forward or back, while it runs.
"""

from __future__ import annotations

import asyncio
import glob
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from estran.rig._child import Child
from estran.rig._env import Resource
from estran.rig._errors import RigError, Unavailable

COMMAND_S = 30.0
FAKETIME_GLOBS = (
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


class PowerSwitch(Protocol):
    async def off(self) -> None: ...
    async def on(self) -> None: ...


async def power_cycle(switch: PowerSwitch, off_s: float) -> None:
    """Off, `off_s` seconds dark, on."""
    await switch.off()
    await asyncio.sleep(off_s)
    await switch.on()


class ProcessPower:
    """kill -9 of a process of the rig; `on` starts it again (`start` is its start)."""

    def __init__(self, child: Child, start: Callable[[], Awaitable[None]]) -> None:
        self.child = child
        self._start = start

    async def off(self) -> None:
        await self.child.kill_and_wait()

    async def on(self) -> None:
        await self._start()


class UnplugPower:
    """The simulated adapter's cable: `off` unplugs (for at most an hour), `on` replugs."""

    def __init__(self, inject: Callable[..., Awaitable[None]]) -> None:
        self._inject = inject

    async def off(self) -> None:
        await self._inject("unplug", seconds=3600.0)

    async def on(self) -> None:
        await self._inject("replug")


class CommandPower:
    """A relay or a PDU outlet switched by the bench's own commands."""

    def __init__(self, resource: Resource, workdir: Path) -> None:
        self.off_argv = resource.argv("off")
        self.on_argv = resource.argv("on")
        self.log = workdir / f"{resource.capability}.log"

    async def _run(self, argv: Sequence[str]) -> None:
        child = Child("power", argv, self.log)
        await child.start()
        try:
            status = await child.wait(COMMAND_S)
        except TimeoutError:
            await child.kill_and_wait()
            raise RigError(f"{argv[0]} did not finish in {COMMAND_S:g} s") from None
        if status != 0:
            raise RigError(f"{' '.join(argv)} failed (status {status}):\n{child.tail(5)}")

    async def off(self) -> None:
        await self._run(self.off_argv)

    async def on(self) -> None:
        await self._run(self.on_argv)


# -- the clock -----------------------------------------------------------------------------------


def faketime_library() -> str:
    """libfaketime's path ($ESTRAN_FAKETIME, or Debian's), or Unavailable."""
    given = os.environ.get("ESTRAN_FAKETIME")
    if given:
        if not Path(given).is_file():
            raise Unavailable(f"ESTRAN_FAKETIME={given}: no such file")
        return given
    for pattern in FAKETIME_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise Unavailable("libfaketime not found (apt-get install faketime, or set ESTRAN_FAKETIME)")


class FakeClock:
    """The wall clock of the processes started with `env`: an offset kept in a file that
    libfaketime reads again every second, so a jump lands within a second."""

    def __init__(self, workdir: Path) -> None:
        self.library = faketime_library()
        self.file = workdir / "faketime.rc"
        self.offset_s = 0
        workdir.mkdir(parents=True, exist_ok=True)
        self._write()

    def _write(self) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(f"{self.offset_s:+d}s\n")
        tmp.replace(self.file)

    @property
    def env(self) -> dict[str, str]:
        """What a child's environment needs to live on this clock."""
        return {
            "LD_PRELOAD": self.library,
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            # re-read at most once a second: a jump lands within 1 s, and a daemon that asks
            # the time often does not read the file each time (FAKETIME_NO_CACHE would)
            "FAKETIME_CACHE_DURATION": "1",
            "DONT_FAKE_MONOTONIC": "1",
        }

    def jump(self, seconds: int) -> None:
        """Move the wall clock by `seconds` (negative: back), for every process on it."""
        self.offset_s += seconds
        self._write()


__all__ = [
    "CommandPower",
    "FakeClock",
    "PowerSwitch",
    "ProcessPower",
    "UnplugPower",
    "faketime_library",
    "power_cycle",
]
