"""`SerialSimulator`: the common life of every simulated serial device, and its faults."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Final, TypedDict, Unpack

from edge.simulators.serial._link import LineFormat, PtyLink

DEFAULT_DIRECTORY: Final = "/tmp/estran-sim"

NOISE: Final = "noise"
BAD_CHECKSUM: Final = "bad_checksum"
SILENCE: Final = "silence"
RESUME: Final = "resume"
UNPLUG: Final = "unplug"
REPLUG: Final = "replug"
FAULTS: Final = (NOISE, BAD_CHECKSUM, SILENCE, RESUME, UNPLUG, REPLUG)

log = logging.getLogger("edge.simulators.serial")


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault to inject. Build with the class methods:

    - `Fault.noise(count)`: `count` random bytes spliced into the next transmission;
    - `Fault.bad_checksum(frames)`: the next `frames` frames or answers carry a wrong
      checksum (MaxBotix frames, which have none, a wrong character instead);
    - `Fault.silence(seconds)`: say nothing, answer nothing (None: until `Fault.resume()`);
    - `Fault.unplug(seconds)`: close the pseudo-terminal and remove the symlink (with
      `seconds`, replug by itself after that long); `Fault.replug()`: a new pair, same path.
    """

    kind: str
    count: int = 1
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise ValueError(f"unknown fault {self.kind!r} (known: {', '.join(FAULTS)})")
        if self.count < 1:
            raise ValueError("count must be >= 1")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError("seconds must be > 0")

    @classmethod
    def noise(cls, count: int = 16) -> Fault:
        return cls(NOISE, count)

    @classmethod
    def bad_checksum(cls, frames: int = 1) -> Fault:
        return cls(BAD_CHECKSUM, frames)

    @classmethod
    def silence(cls, seconds: float | None = None) -> Fault:
        return cls(SILENCE, 1, seconds)

    @classmethod
    def resume(cls) -> Fault:
        return cls(RESUME)

    @classmethod
    def unplug(cls, seconds: float | None = None) -> Fault:
        return cls(UNPLUG, 1, seconds)

    @classmethod
    def replug(cls) -> Fault:
        return cls(REPLUG)


class SimOptions(TypedDict, total=False):
    """The options every simulator takes (see `SerialSimulator`)."""

    directory: str | os.PathLike[str]
    line: LineFormat | None
    pace: float
    seed: int | None


class SerialSimulator:
    """A device on a pseudo-terminal. `await start()`, then open `path`; `inject(fault)`;
    `await stop()`. Also an async context manager.

    `pace` scales the line's real speed (1: real time, 10: ten times faster, 0: no pacing):
    tests use fast paces and short intervals, the demo and bench training real ones.
    `line` overrides the speed and format the device speaks (a Modbus meter set to 19200
    8E1); the program must set the same to be understood (see `_link`).
    """

    kind: ClassVar[str] = ""
    default_line: ClassVar[LineFormat] = LineFormat(9600)

    def __init__(
        self,
        name: str,
        *,
        directory: str | os.PathLike[str] = DEFAULT_DIRECTORY,
        line: LineFormat | None = None,
        pace: float = 1.0,
        seed: int | None = None,
    ) -> None:
        if not name or "/" in name:
            raise ValueError(f"a simulator name is a file name, not {name!r}")
        self.name = name
        self.line = line or self.default_line
        self.rng = random.Random(seed if seed is not None else name)
        self._link = PtyLink(os.path.join(os.fspath(directory), name), self.line, pace, self.rng)
        self._task: asyncio.Task[None] | None = None
        self._helpers: set[asyncio.Task[None]] = set()
        self._noise = 0
        self._bad = 0
        self._silent_until = 0.0
        self.started_at = 0.0
        self.stats: dict[str, int] = {"frames": 0, "answers": 0, "ignored": 0}
        self.error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The stable path to open (a symlink to the current /dev/pts/N)."""
        return self._link.path

    @property
    def pace(self) -> float:
        return self._link.pace

    @property
    def plugged(self) -> bool:
        return self._link.connected

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is not None:
            return
        self.started_at = time.monotonic()
        self._link.plug()
        self._task = asyncio.create_task(self._run(), name=f"sim:{self.name}")

    async def _run(self) -> None:
        try:
            await self._serve()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a simulator bug: keep it, log it, stop this simulator
            self.error = e
            log.exception("simulator %s failed", self.name)

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._helpers) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._helpers.clear()
        self._task = None
        self._link.unplug()
        if self.error is not None:
            raise RuntimeError(f"simulator {self.name} failed") from self.error

    async def __aenter__(self) -> SerialSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _serve(self) -> None:
        raise NotImplementedError

    # -- faults ----------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Apply `fault` now (see `Fault`)."""
        if fault.kind == NOISE:
            self._noise += fault.count
        elif fault.kind == BAD_CHECKSUM:
            self._bad += fault.count
        elif fault.kind == SILENCE:
            self._silent_until = (
                math.inf if fault.seconds is None else time.monotonic() + fault.seconds
            )
        elif fault.kind == RESUME:
            self._silent_until = 0.0
        elif fault.kind == UNPLUG:
            self._link.unplug()
            if fault.seconds is not None:
                self._later(fault.seconds, self._link.plug, "replug")
        elif fault.kind == REPLUG:
            self._link.plug()

    def _later(self, delay: float, action: object, what: str) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            assert callable(action)
            action()

        task = asyncio.create_task(run(), name=f"sim:{self.name}:{what}")
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    @property
    def silent(self) -> bool:
        return time.monotonic() < self._silent_until

    def take_bad_checksum(self) -> bool:
        """Whether the frame being built should carry a wrong checksum (uses one)."""
        if self._bad:
            self._bad -= 1
            return True
        return False

    def _with_noise(self, data: bytes) -> bytes:
        if not self._noise:
            return data
        count, self._noise = self._noise, 0
        noise = bytes(self.rng.randrange(256) for _ in range(count))
        at = self.rng.randrange(1, max(2, len(data)))
        return data[:at] + noise + data[at:]

    async def transmit(self, data: bytes) -> None:
        """Put `data` on the line at its pace, with any pending noise spliced in."""
        await self._link.send(self._with_noise(data))

    # -- for the program under test and the runner ------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def describe(self) -> str:
        return f"{self.kind} on {self.path} ({self.line})"

    def port_config(self, sensor_prefix: str | None = None) -> dict[str, object]:
        """The gateway configuration for this device: the mapping that
        `edge.sources.serial.SerialPortConfig.from_mapping` (and the config file) takes."""
        raise NotImplementedError

    def _port(self, protocol: str, devices: list[dict[str, object]]) -> dict[str, object]:
        return {
            "path": self.path,
            "protocol": protocol,
            "baud": self.line.baud,
            "bytesize": self.line.bytesize,
            "parity": self.line.parity,
            "stopbits": self.line.stopbits,
            "devices": devices,
        }


class StreamSimulator(SerialSimulator):
    """A device that talks on its own: one frame every `interval` seconds."""

    default_interval: ClassVar[float] = 1.0

    def __init__(
        self, name: str, *, interval: float | None = None, **options: Unpack[SimOptions]
    ) -> None:
        super().__init__(name, **options)
        self.interval = self.default_interval if interval is None else interval

    def frame(self, bad_checksum: bool) -> bytes:
        raise NotImplementedError

    def gap(self) -> float:
        """Seconds of silence at least after each frame (a device's inter-frame gap)."""
        return 0.0

    async def _serve(self) -> None:
        due = time.monotonic()
        while True:
            if not self.silent:
                data = self.frame(self.take_bad_checksum())
                self.stats["frames"] += 1
                await self.transmit(data)
            due += self.interval
            delay = due - time.monotonic()
            if delay < 0:  # frames longer than the interval: send back to back
                due = time.monotonic()
                delay = 0.0
            gap = self.gap()
            if gap > delay:
                due += gap - delay
                delay = gap
            await asyncio.sleep(delay if delay > 0 or self.interval > 0 else 0.01)


__all__ = [
    "BAD_CHECKSUM",
    "DEFAULT_DIRECTORY",
    "FAULTS",
    "NOISE",
    "REPLUG",
    "RESUME",
    "SILENCE",
    "UNPLUG",
    "Fault",
    "SerialSimulator",
    "SimOptions",
    "StreamSimulator",
]
