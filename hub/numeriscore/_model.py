"""The numériscore's figures and formula (docs/numeriscore.md), as pure functions.

Per service (a gateway, the hub) and per day:

    wire bytes per reading   = bytes the uplink sent / readings
    flash bytes per reading  = bytes the buffer wrote / readings
    CPU ms per reading       = CPU seconds * 1000 / readings
    energy (Wh)              = CPU seconds * W per busy core / 3600
                               + idle W * seconds the service ran / 3600

Each per-reading figure gets a grade A-E from the thresholds below; the service's score is
the mean of its grades' points (A=5 .. E=1) rounded to the nearest, halves going down
(towards E): a service is not better than its figures say. Energy is shown, not graded: the
idle power of the hardware dominates and says how many sensors share a gateway, not how
sober the software is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

LETTERS = ("A", "B", "C", "D", "E")


@dataclass(frozen=True, slots=True)
class HardwareClass:
    """Power of a class of machine: idle, and added per fully busy core (watts)."""

    name: str
    idle_w: float
    core_w: float
    source: str


# Idle and full-load figures of the boards, whole board at the wall, no peripherals
# (Raspberry Pi Ltd product briefs and the widely reproduced measurements of the boards,
# e.g. raspi.tv and Jeff Geerling's power tests); per core = (full load - idle) / cores.
HARDWARE: dict[str, HardwareClass] = {
    "rpi4": HardwareClass("rpi4", 2.7, 0.93, "Raspberry Pi 4 B: 2.7 W idle, 6.4 W 4 cores busy"),
    "rpi3b+": HardwareClass("rpi3b+", 1.9, 0.8, "Raspberry Pi 3 B+: 1.9 W idle, 5.1 W busy"),
    "rpi-zero-2w": HardwareClass(
        "rpi-zero-2w", 0.6, 0.35, "Raspberry Pi Zero 2 W: 0.6 W idle, 2.0 W busy"
    ),
    "cm4": HardwareClass("cm4", 1.4, 0.9, "Compute Module 4: 1.4 W idle, 5.0 W busy"),
    # The hub's machine runs other services: only its CPU time is attributed to Estran.
    "server": HardwareClass("server", 0.0, 10.0, "x86 server core: 10 W busy, idle not ours"),
}

# Grade thresholds per figure: the upper bound of A, B, C, D (above the last: E). Chosen
# from the measurements of docs/benchmarks.md: A is what Estran measures at its operating
# point, E where the peer's figures fall.
THRESHOLDS: dict[str, tuple[float, float, float, float]] = {
    # wire: 3.47 B/reading measured (sync bench), 4.7 with faults; the peer's JSON: 94
    "wire_bytes_per_reading": (6.0, 12.0, 25.0, 50.0),
    # flash: 5.96 B/reading in large blocks, ≈ 43 at live rates (small commits);
    # the peer's storages: 166 to 180
    "flash_bytes_per_reading": (8.0, 48.0, 100.0, 160.0),
    # gateway CPU: 1.75 % of a core at 100 readings/s = 0.175 ms per reading
    "cpu_ms_per_reading": (0.25, 0.5, 1.0, 2.0),
    # hub storage: 56.2 B per reading held, SQLite with its indexes and the latest-values
    # table, the replayed day of the reference workload (185,280 readings)
    "storage_bytes_per_reading": (64.0, 128.0, 256.0, 512.0),
    # hub CPU: 0.0039 ms per reading for the SQLite insert of that day; about 130,000
    # readings/s through MQTT, decoding and insert in the sync bench (about 0.008 ms)
    "hub_cpu_ms_per_reading": (0.02, 0.05, 0.1, 0.5),
}

GATEWAY_GRADED = ("wire_bytes_per_reading", "flash_bytes_per_reading", "cpu_ms_per_reading")
HUB_GRADED = ("storage_bytes_per_reading", "hub_cpu_ms_per_reading")

# The peer (ThingsBoard IoT Gateway), measured in the same benchmarks: one JSON message per
# reading on the wire (93.96 B/reading through MQTT, bench sync anchor) and 170 B/reading in
# its file storage (166-180 across its storages). Its CPU was not measured.
PEER = {
    "service": "peer: ThingsBoard IoT Gateway (benchmarks)",
    "wire_bytes_per_reading": 94.0,
    "flash_bytes_per_reading": 170.0,
}


def grade(figure: str, value: float | None) -> str | None:
    if value is None or not math.isfinite(value):
        return None
    for letter, bound in zip(LETTERS, THRESHOLDS[figure], strict=False):
        if value <= bound:
            return letter
    return "E"


def score(grades: dict[str, str | None]) -> str | None:
    """The mean of the grades' points (A=5 .. E=1), rounded, halves towards E."""
    points = [5 - LETTERS.index(g) for g in grades.values() if g is not None]
    if not points:
        return None
    mean = sum(points) / len(points)
    return LETTERS[5 - math.ceil(mean - 0.5)]


def per_reading(value: float | None, readings: int, scale: float = 1.0) -> float | None:
    if value is None or readings <= 0:
        return None
    return round(value * scale / readings, 4)


def energy_wh(cpu_s: float | None, ran_s: float | None, hw: HardwareClass) -> float | None:
    if cpu_s is None and ran_s is None:
        return None
    return round(((cpu_s or 0.0) * hw.core_w + (ran_s or 0.0) * hw.idle_w) / 3600, 4)


def gateway_figures(day: dict[str, Any], hw: HardwareClass) -> dict[str, Any]:
    """A gateway's day (raw sums) with its per-reading figures, grades and score."""
    n = int(day.get("readings", 0))
    cpu = day.get("cpu_s")
    out: dict[str, Any] = {
        "readings": n,
        "bytes_sent": day.get("bytes_sent"),
        "flash_write_bytes": day.get("flash_write_bytes"),
        "cpu_s": None if cpu is None else round(cpu, 3),
        "rss_bytes_max": day.get("rss_bytes_max"),
        "ran_s": day.get("ran_s"),
        "hardware": hw.name,
        "energy_wh": energy_wh(cpu, day.get("ran_s"), hw),
        "wire_bytes_per_reading": per_reading(day.get("bytes_sent"), n),
        "flash_bytes_per_reading": per_reading(day.get("flash_write_bytes"), n),
        "cpu_ms_per_reading": per_reading(cpu, n, 1000.0),
    }
    out["energy_mwh_per_reading"] = per_reading(out["energy_wh"], n, 1000.0)
    out["grades"] = {f: grade(f, out[f]) for f in GATEWAY_GRADED}
    out["score"] = score(out["grades"])
    return out


def hub_figures(day: dict[str, Any], hw: HardwareClass) -> dict[str, Any]:
    """The hub's day: its CPU, its storage, per reading it took in."""
    n = int(day.get("readings", 0))
    cpu = day.get("cpu_s")
    held = day.get("readings_held")
    size = day.get("storage_bytes")
    out: dict[str, Any] = {
        "readings": n,
        "cpu_s": None if cpu is None else round(cpu, 3),
        "rss_bytes_max": day.get("rss_bytes_max"),
        "storage_bytes": size,
        "readings_held": held,
        "hardware": hw.name,
        "energy_wh": energy_wh(cpu, None, hw),
        "storage_bytes_per_reading": per_reading(size, int(held or 0)),
        "hub_cpu_ms_per_reading": per_reading(cpu, n, 1000.0),
    }
    out["energy_mwh_per_reading"] = per_reading(out["energy_wh"], n, 1000.0)
    out["grades"] = {f: grade(f, out[f]) for f in HUB_GRADED}
    out["score"] = score(out["grades"])
    return out


def fleet_figures(gateways: list[dict[str, Any]], hub: dict[str, Any] | None) -> dict[str, Any]:
    """Every gateway and the hub together: sums, and per-reading figures over the fleet's
    readings (the hub's share included in CPU and energy)."""
    n = sum(g["readings"] for g in gateways)

    def total(key: str, rows: list[dict[str, Any]]) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return sum(values) if values else None

    rows = gateways + ([hub] if hub is not None else [])
    out: dict[str, Any] = {
        "gateways": len(gateways),
        "readings": n,
        "bytes_sent": total("bytes_sent", gateways),
        "flash_write_bytes": total("flash_write_bytes", gateways),
        "cpu_s": total("cpu_s", rows),
        "energy_wh": total("energy_wh", rows),
        "hub_cpu_s": None if hub is None else hub.get("cpu_s"),
    }
    out["wire_bytes_per_reading"] = per_reading(out["bytes_sent"], n)
    out["flash_bytes_per_reading"] = per_reading(out["flash_write_bytes"], n)
    gw_cpu = total("cpu_s", gateways)
    out["cpu_ms_per_reading"] = per_reading(gw_cpu, n, 1000.0)
    out["energy_mwh_per_reading"] = per_reading(out["energy_wh"], n, 1000.0)
    out["grades"] = {f: grade(f, out[f]) for f in GATEWAY_GRADED}
    if hub is not None:
        out["grades"].update(hub["grades"])
    out["score"] = score(out["grades"])
    return out


def peer_figures() -> dict[str, Any]:
    out: dict[str, Any] = dict(PEER)
    out["grades"] = {
        f: grade(f, out.get(f)) for f in ("wire_bytes_per_reading", "flash_bytes_per_reading")
    }
    out["score"] = score(out["grades"])
    return out


__all__ = [
    "GATEWAY_GRADED",
    "HARDWARE",
    "HUB_GRADED",
    "LETTERS",
    "PEER",
    "THRESHOLDS",
    "HardwareClass",
    "energy_wh",
    "fleet_figures",
    "gateway_figures",
    "grade",
    "hub_figures",
    "peer_figures",
    "score",
]
