"""Fakes for the daemon tests: an in-memory buffer and scripted sources built from the
configuration's [[serial]] ports (so that reloads diff them as they diff real ones)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.buffer import BufferStats, StoredBlock
from edge.config import EdgeConfig
from edge.daemon import Intake, TaskSpec, Wiring
from edge.sources.serial._config import SerialPortConfig
from protocols.reading import Reading


class MemoryLog:
    """The buffer's interface (edge.buffer.Buffer), in memory; records what was committed
    and when it closed."""

    def __init__(self) -> None:
        self.pending: list[Reading] = []
        self.durable: list[Reading] = []
        self.commits = 0
        self.closed = False

    def append_many(self, readings: Iterable[Reading]) -> int:
        assert not self.closed, "append after close"
        self.pending.extend(readings)
        return len(self.durable) + len(self.pending)

    def commit(self) -> int:
        self.durable += self.pending
        self.pending = []
        self.commits += 1
        return len(self.durable)

    @property
    def durable_seq(self) -> int:
        return len(self.durable)

    def read_blocks(
        self,
        after_seq: int,
        max_readings: int,
        *,
        alarms_first: bool = True,
        skip: Collection[int] = (),
    ) -> list[StoredBlock]:
        return []  # no uplink reads this one

    def ack(self, ranges: Iterable[tuple[int, int]]) -> None:
        pass

    def stats(self) -> BufferStats:
        return BufferStats(
            depth=len(self.durable) + len(self.pending),
            pending=len(self.pending),
            oldest_ts_ms=self.durable[0].ts_ms if self.durable else None,
            bytes=0,
            segments=0,
            quota_bytes=0,
            policy="drop_oldest",
            durable_seq=len(self.durable),
            next_seq=len(self.durable) + len(self.pending) + 1,
            acked_ranges=0,
        )

    def close(self) -> None:
        self.commit()
        self.closed = True


@dataclass
class Plan:
    """How the fake source on a port behaves."""

    period_s: float = 0.01
    crash_after: int | None = None  # readings per run before raising
    value: object = None  # None: a counter
    starts: list[float] = field(default_factory=list)
    delivered: int = 0  # readings whose put() returned


class FakeSource:
    def __init__(self, port: SerialPortConfig, plan: Plan) -> None:
        self.port = port
        self.plan = plan
        self.name = port.source_name

    async def run(self, sink: Intake) -> None:
        plan = self.plan
        plan.starts.append(time.monotonic())
        sink.set_state(self.name, "up")
        n = 0
        while True:
            for device in self.port.devices:
                value = n if plan.value is None else plan.value
                await sink.put(Reading(device.sensor, "value", "1", value, int(time.time() * 1000)))
                plan.delivered += 1
            n += 1
            if plan.crash_after is not None and n >= plan.crash_after:
                raise RuntimeError(f"boom on {self.port.path}")
            await asyncio.sleep(plan.period_s)


class FakeWiring:
    def __init__(self, plans: dict[str, Plan] | None = None) -> None:
        self.plans = plans if plans is not None else {}
        self.log = MemoryLog()
        self.opened = 0

    def open_log(self, config: EdgeConfig) -> MemoryLog:
        self.opened += 1
        return self.log

    def sources(self, config: EdgeConfig, intake: Intake) -> list[TaskSpec]:
        specs = []
        for port in config.serial:
            plan = self.plans.setdefault(port.path, Plan())

            def runner(port: SerialPortConfig = port, plan: Plan = plan) -> object:
                return FakeSource(port, plan).run(intake)

            specs.append(TaskSpec(port.source_name, port, runner))  # type: ignore[arg-type]
        return specs

    def wiring(self) -> Wiring:
        return Wiring(open_log=self.open_log, sources=self.sources, uplink=lambda config, log: None)


def port(path: str, sensor: str, interval: float = 0) -> str:
    return (
        f'[[serial]]\npath = "{path}"\nprotocol = "nmea"\n'
        f'[[serial.devices]]\nsensor = "{sensor}"\ninterval = {interval}\n'
    )


def toml(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def port_table(port: dict[str, Any], **extra: object) -> str:
    lines = ["[[serial]]"]
    lines += [f"{k} = {toml(v)}" for k, v in {**port, **extra}.items() if k != "devices"]
    for device in port["devices"]:
        lines.append("[[serial.devices]]")
        lines += [f"{k} = {toml(v)}" for k, v in device.items()]
    return "\n".join(lines) + "\n"


def write_config(path: Path, data_dir: Path, body: str, daemon: str = "") -> Path:
    path.write_text(
        f'[gateway]\nid = "gw-test"\ndata_dir = "{data_dir}"\n'
        '[buffer]\ncommit_interval = "50ms"\n'
        "[daemon]\nrestart_min = 0.05\nrestart_max = 0.2\nstop_timeout = 2\nput_timeout = 1\n"
        f"{daemon}\n{body}"
    )
    return path


async def wait_until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
