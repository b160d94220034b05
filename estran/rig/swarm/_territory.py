"""The territory's sensors for simulated gateways: the reference workload's 200 sensors
(/work/shared/bench/workload.py: 50 soil probes, 50 building meters, 50 waste bins, 50 berths,
their quantities and periods) plus the scripted ones the alerts need (a bin that fills, a
water meter that leaks at night), on a compressed clock.

A day is compressed by `speed`: the simulated clock runs from `sim_t0_ms` at `speed` times
the wall clock (readings carry simulated times, always in the past). Each sensor reads at its
period of simulated time; a gateway that is down reads nothing (its sensors' readings of that
time are not taken), as a real one would.

The ledger: after each buffer commit, the sequence numbers just committed are appended to
`DATA/ledger`, one line each with the reading's sensor, quantity and time (`seq sensor
quantity ts_ms`: what a failure names), a plain write: a kill -9 ends the process, not the
kernel, so what was written stays. On start, whatever the buffer holds beyond the ledger
(committed, then killed before the ledger line) is added from the buffer itself. At the end,
the ledger is exactly what the gateway committed: the hub must hold each of those sequence
numbers once, and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from estran.rig.swarm._gateway import COMMIT_INTERVAL_S, AckTimer, SimGateway
from protocols.reading import Reading

LEDGER = "ledger"
DAY_MS = 86_400_000

# kind, count, period_s, [(quantity, unit, start, step)] (the reference workload's table)
KINDS: list[tuple[str, int, float, list[tuple[str, str, float, float]]]] = [
    ("soil", 50, 900, [("moisture", "%RH", 35.0, 0.4), ("temperature", "Cel", 12.0, 0.2)]),
    ("meter", 50, 60, [("energy", "Wh", 1_000_000.0, 400.0), ("power", "W", 800.0, 40.0)]),
    ("bin", 50, 1800, [("fill", "%", 10.0, 1.5)]),
    ("berth", 50, 300, [("occupied", "/", 0.0, 0.0), ("shore_energy", "Wh", 50_000.0, 50.0)]),
]
# Scripted for the alerts: a bin filling over the day, a water meter never at zero at night.
SCRIPTED: list[tuple[str, str, str, float]] = [
    ("bin-900", "fill", "%", 1800.0),
    ("water-001", "flow", "m3/h", 900.0),
]


@dataclass(frozen=True, slots=True)
class Sensor:
    sensor: str
    quantity: str
    unit: str
    period_s: float
    start: float
    step: float


def territory_sensors() -> list[Sensor]:
    """Every sensor of the territory: 200 of the workload, and the scripted ones."""
    out: list[Sensor] = []
    for kind, count, period, quantities in KINDS:
        for i in range(count):
            for quantity, unit, start, step in quantities:
                out.append(Sensor(f"{kind}-{i:03d}", quantity, unit, period, start, step))
    for sensor, quantity, unit, period in SCRIPTED:
        out.append(Sensor(sensor, quantity, unit, period, 0.0, 0.0))
    return out


def day_readings(sensors: list[Sensor]) -> int:
    """The most readings a day of `sensors` gives (each at its period, from a phase of its
    own: one more than the day divided by the period, at most)."""
    return sum(DAY_MS // int(s.period_s * 1000) + 1 for s in sensors)


def split(sensors: list[Sensor], parts: int) -> list[list[Sensor]]:
    """The sensors shared among `parts` gateways, a physical sensor's quantities together."""
    names = sorted({s.sensor for s in sensors})
    owner = {name: i % parts for i, name in enumerate(names)}
    out: list[list[Sensor]] = [[] for _ in range(parts)]
    for s in sensors:
        out[owner[s.sensor]].append(s)
    return out


@dataclass(frozen=True, slots=True)
class Clock:
    """Simulated time: `sim_t0_ms` at wall time `wall_t0` (epoch seconds), `speed` times
    faster."""

    sim_t0_ms: int
    wall_t0: float
    speed: float

    def now_ms(self) -> int:
        """The simulated time now, at most the end of the day: a scenario that runs late
        (its outages took longer under load) reads nothing past the day, and no reading is
        stamped in the future."""
        sim = self.sim_t0_ms + int((time.time() - self.wall_t0) * self.speed * 1000)
        return min(sim, self.end_ms)

    @property
    def end_ms(self) -> int:
        return self.sim_t0_ms + DAY_MS


class TerritoryProducer:
    """The sources of one simulated gateway of the territory (SimGateway's producer)."""

    def __init__(self, sensors: list[Sensor], clock: Clock, seed: int = 0) -> None:
        self.sensors = sensors
        self.clock = clock
        self.random = random.Random(seed)
        self.values: dict[tuple[str, str], float] = {}

    @classmethod
    def from_file(cls, path: Path, seed: int = 0) -> TerritoryProducer:
        doc = json.loads(path.read_text())
        sensors = [Sensor(*s) for s in doc["sensors"]]
        return cls(sensors, Clock(doc["sim_t0_ms"], doc["wall_t0"], doc["speed"]), seed)

    @staticmethod
    def write_file(path: Path, sensors: list[Sensor], clock: Clock) -> None:
        path.write_text(
            json.dumps(
                {
                    "sensors": [
                        [s.sensor, s.quantity, s.unit, s.period_s, s.start, s.step] for s in sensors
                    ],
                    "sim_t0_ms": clock.sim_t0_ms,
                    "wall_t0": clock.wall_t0,
                    "speed": clock.speed,
                }
            )
        )

    def value(self, s: Sensor, ts_ms: int) -> float | int:
        key = (s.sensor, s.quantity)
        v = self.values.get(key, s.start)
        hour = (ts_ms // 3_600_000 + 1) % 24  # local time, Europe/Paris in winter (UTC+1)
        if s.sensor == "bin-900":  # fills over the day from 10 % to 95 %
            day_ms = ts_ms - self.clock.sim_t0_ms
            return round(min(95.0, 10.0 + 85.0 * day_ms / 86_400_000 * 1.25), 0)
        if s.sensor == "water-001":  # a leak: never zero, even at night
            return round((0.4 if 1 <= hour < 6 else 2.5) + self.random.uniform(0, 0.2), 3)
        if s.quantity in ("energy", "shore_energy"):
            v += self.random.uniform(0, s.step)
            out: float | int = round(v)
        elif s.quantity == "occupied":
            v = v if self.random.random() < 0.9 else 1.0 - v
            out = int(v)
        elif s.quantity == "fill":
            v = min(100.0, v + self.random.random() * s.step)
            out = round(v)
        else:
            v = max(0.0, v + self.random.uniform(-s.step, s.step))
            out = round(v, 2)
        self.values[key] = v
        return out

    async def __call__(self, gateway: SimGateway, buffer: AckTimer) -> None:
        ledger_path = gateway.data_dir / LEDGER
        recover(buffer, ledger_path)
        with open(ledger_path, "a") as ledger:
            now = self.clock.now_ms()
            # each sensor at its period, at a phase of its own, from now on
            due = [now + int(self.random.uniform(0, s.period_s) * 1000) for s in self.sensors]
            while True:
                await asyncio.sleep(COMMIT_INTERVAL_S)
                if not gateway.producing:
                    continue
                now = self.clock.now_ms()
                lines: list[str] = []
                for i, s in enumerate(self.sensors):
                    while due[i] <= now:
                        ts = due[i]
                        r = Reading(s.sensor, s.quantity, s.unit, self.value(s, ts), ts)
                        lines.append(ledger_line(buffer.append(r), r))
                        due[i] += int(s.period_s * 1000)
                if lines:
                    buffer.commit()
                    gateway.produced += len(lines)
                    ledger.write("".join(lines))
                    ledger.flush()


def ledger_line(seq: int, r: Reading) -> str:
    return f"{seq} {r.sensor} {r.quantity} {r.ts_ms}\n"


def read_ledger_entries(path: Path) -> dict[int, str]:
    """seq -> "sensor quantity ts_ms" of every line of the ledger (the first if a seq
    repeats: `read_ledger` counts repeats)."""
    out: dict[int, str] = {}
    try:
        text = path.read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        seq, _, what = line.partition(" ")
        if seq:
            out.setdefault(int(seq), what)
    return out


def read_ledger(path: Path) -> list[int]:
    """Every sequence number of the ledger, in order, repeats included."""
    try:
        return [int(line.partition(" ")[0]) for line in path.read_text().splitlines() if line]
    except FileNotFoundError:
        return []


def recover(buffer: AckTimer, ledger_path: Path) -> int:
    """Add to the ledger what the buffer committed after its last line; how many."""
    known = read_ledger(ledger_path)
    last = max(known, default=-1)
    extra = [
        ledger_line(seq, r) for seq, r in buffer.log.iter_readings(include_acked=True) if seq > last
    ]
    if extra:
        with open(ledger_path, "a") as f:
            f.write("".join(extra))
    return len(extra)


__all__ = [
    "DAY_MS",
    "KINDS",
    "LEDGER",
    "SCRIPTED",
    "Clock",
    "Sensor",
    "TerritoryProducer",
    "day_readings",
    "ledger_line",
    "read_ledger",
    "read_ledger_entries",
    "recover",
    "split",
    "territory_sensors",
]
