"""The numériscore's day books: an ingest observer that sums, per local day, what each
gateway reports (its cumulative footprint, turned into daily increases) and the readings
the hub committed for it, and the hub's own CPU and storage. Rows (`numeriscore_days`) are
written every `flush_s` and at shutdown; a restarted hub carries on from them.

A gateway's figures count from its daemon's start: an increase is `now - before`, and a
figure that went down means the daemon restarted, so the increase is the new value itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from hub.numeriscore import _model
from hub.storage import GatewayState, IngestBatch, Storage, StorageThread

log = logging.getLogger("estran.hub.numeriscore")

COUNTERS = ("bytes_sent", "flash_write_bytes", "cpu_s", "uptime_s")
HUB = "hub"


def _gw(name: str) -> str:
    return f"gateway:{name}"


@dataclass(frozen=True, slots=True)
class NumeriscoreSettings:
    tz: str = "Europe/Paris"  # days are local days
    gateway_hardware: str = "rpi4"  # hub.numeriscore HARDWARE key
    hub_hardware: str = "server"
    flush_s: float = 60.0


def _hub_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _hub_rss() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class NumeriscoreTracker:
    """`committed`/`state`: an ingest observer. `await tracker.run()` writes the books."""

    def __init__(
        self,
        storage: StorageThread,
        settings: NumeriscoreSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.thread = storage
        self.settings = settings or NumeriscoreSettings()
        self.tz = zoneinfo.ZoneInfo(self.settings.tz)
        self.clock = clock
        self.days: dict[tuple[str, str], dict[str, Any]] = {}  # (day, service) -> doc
        self.last: dict[str, dict[str, float]] = {}  # gateway -> its last figures
        self._dirty: set[tuple[str, str]] = set()
        self._hub_cpu = _hub_cpu_s()

    def today(self) -> str:
        return datetime.fromtimestamp(self.clock(), self.tz).date().isoformat()

    def _day(self, service: str) -> dict[str, Any]:
        key = (self.today(), service)
        self._dirty.add(key)
        doc = self.days.get(key)
        if doc is None:
            doc = self.days[key] = {"readings": 0}
            # keep memory bounded: drop days already written, older than today
            for old in [k for k in self.days if k[0] < key[0] and k not in self._dirty]:
                del self.days[old]
        return doc

    # -- the ingest observer ----------------------------------------------------------------

    def committed(self, batches: Sequence[IngestBatch], seconds: float) -> None:
        total = 0
        for batch in batches:
            self._day(_gw(batch.gateway))["readings"] += len(batch)
            total += len(batch)
        self._day(HUB)["readings"] += total

    def state(self, gateway: str, state: GatewayState, applied: bool) -> None:
        figures = state.footprint
        if not figures:
            return
        doc = self._day(_gw(gateway))
        before = self.last.get(gateway)
        for name in COUNTERS:
            now = figures.get(name)
            if now is None:
                continue
            if before is not None and before.get(name) is not None:
                prev = before[name]
                inc = now - prev if now >= prev else now
            else:
                inc = 0.0  # the first figures we see: the next ones give increases
            key = "ran_s" if name == "uptime_s" else name
            doc[key] = round(doc.get(key, 0) + inc, 6)
        rss = figures.get("rss_bytes")
        if rss is not None:
            doc["rss_bytes_max"] = max(int(rss), int(doc.get("rss_bytes_max", 0)))
        self.last[gateway] = {k: float(v) for k, v in figures.items()}
        doc["last"] = self.last[gateway]

    # -- the hub's own share ----------------------------------------------------------------

    @staticmethod
    def measure_hub(storage: Storage) -> tuple[float, int, int | None, int | None]:
        """(CPU seconds, peak RSS, storage bytes, readings held): from a storage thread."""
        size = storage.size_bytes()
        held = sum(g.readings for g in storage.gateways()) if size is not None else None
        return _hub_cpu_s(), _hub_rss(), size, held

    def apply_hub(self, sample: tuple[float, int, int | None, int | None]) -> None:
        cpu, rss, size, held = sample
        doc = self._day(HUB)
        doc["cpu_s"] = round(doc.get("cpu_s", 0.0) + max(0.0, cpu - self._hub_cpu), 6)
        self._hub_cpu = cpu
        doc["rss_bytes_max"] = max(rss, int(doc.get("rss_bytes_max", 0)))
        if size is not None:
            doc["storage_bytes"] = size
            doc["readings_held"] = held

    # -- books ------------------------------------------------------------------------------

    def load(self, storage: Storage) -> None:
        """Today's rows and each gateway's last figures, after a restart."""
        today = self.today()
        p = storage.placeholder
        for day, service, doc in storage._fetch(
            f"SELECT day, service, doc FROM numeriscore_days WHERE day >= {p}", (today,)
        ):
            value = json.loads(doc)
            self.days[(day, service)] = value
            if service.startswith("gateway:") and isinstance(value.get("last"), dict):
                self.last[service[len("gateway:") :]] = value["last"]

    def _ops(self, placeholder: str) -> list[tuple[str, tuple[object, ...]]]:
        """The rows that changed, as statements (on the loop: the books are its own)."""
        dirty, self._dirty = self._dirty, set()
        p = placeholder
        now = int(self.clock() * 1000)
        return [
            (
                f"INSERT INTO numeriscore_days (day, service, doc, updated_ms) VALUES ({p}, {p},"
                f" {p}, {p}) ON CONFLICT (day, service) DO UPDATE SET doc = excluded.doc,"
                " updated_ms = excluded.updated_ms",
                (day, service, json.dumps(self.days[(day, service)], sort_keys=True), now),
            )
            for day, service in sorted(dirty)
            if (day, service) in self.days
        ]

    async def flush(self) -> None:
        storage = self.thread.storage
        self.apply_hub(await self.thread.call(self.measure_hub, storage))
        ops = self._ops(storage.placeholder)
        if ops:
            await self.thread.call(storage._write, ops)

    async def run(self) -> None:
        await self.thread.call(self.load, self.thread.storage)
        while True:
            await asyncio.sleep(self.settings.flush_s)
            try:
                await self.flush()
            except Exception as e:
                log.warning("numériscore: books not written: %s", e)

    def close(self) -> None:
        """Write the books (at shutdown, the loop no longer feeding them), release storage."""
        storage = self.thread.storage
        try:
            self.apply_hub(self.measure_hub(storage))
            ops = self._ops(storage.placeholder)
            if ops:
                storage._write(ops)
        except Exception as e:
            log.warning("numériscore: books not written at shutdown: %s", e)
        self.thread.close()


def report(
    storage: Storage,
    settings: NumeriscoreSettings,
    *,
    first: date | None = None,
    last: date | None = None,
    gateway: str | None = None,
) -> list[dict[str, Any]]:
    """Per day (newest first): each gateway's figures, the hub's, the fleet's, the peer's."""
    p = storage.placeholder
    rows = storage._fetch(
        f"SELECT day, service, doc FROM numeriscore_days WHERE day >= {p} AND day <= {p}"
        " ORDER BY day DESC, service",
        ((first or date.min).isoformat(), (last or date.max).isoformat()),
    )
    gw_hw = _model.HARDWARE[settings.gateway_hardware]
    hub_hw = _model.HARDWARE[settings.hub_hardware]
    days: dict[str, dict[str, Any]] = {}
    for day, service, doc in rows:
        entry = days.setdefault(day, {"day": day, "gateways": [], "hub": None})
        value = json.loads(doc)
        if service == HUB:
            entry["hub"] = _model.hub_figures(value, hub_hw)
        elif service.startswith("gateway:"):
            name = service[len("gateway:") :]
            if gateway is None or gateway == name:
                figures = _model.gateway_figures(value, gw_hw)
                entry["gateways"].append({"gateway": name, **figures})
    out = []
    for entry in days.values():
        entry["fleet"] = _model.fleet_figures(entry["gateways"], entry["hub"])
        entry["peer"] = _model.peer_figures()
        out.append(entry)
    return out


CSV_COLUMNS = (
    "day",
    "service",
    "readings",
    "bytes_sent",
    "flash_write_bytes",
    "cpu_s",
    "rss_bytes_max",
    "energy_wh",
    "wire_bytes_per_reading",
    "flash_bytes_per_reading",
    "cpu_ms_per_reading",
    "energy_mwh_per_reading",
    "storage_bytes",
    "storage_bytes_per_reading",
    "hub_cpu_ms_per_reading",
    "score",
)


def csv_rows(days: list[dict[str, Any]]) -> list[list[object]]:
    """One row per day and service (each gateway, the hub, the fleet, the peer)."""
    out: list[list[object]] = []
    for entry in days:
        services: list[tuple[str, dict[str, Any]]] = [
            (f"gateway:{g['gateway']}", g) for g in entry["gateways"]
        ]
        if entry["hub"] is not None:
            services.append(("hub", entry["hub"]))
        services.append(("fleet", entry["fleet"]))
        services.append(("peer", entry["peer"]))
        for service, figures in services:
            row: list[object] = [entry["day"], service]
            row += ["" if figures.get(c) is None else figures[c] for c in CSV_COLUMNS[2:]]
            out.append(row)
    return out


__all__ = [
    "CSV_COLUMNS",
    "HUB",
    "NumeriscoreSettings",
    "NumeriscoreTracker",
    "csv_rows",
    "report",
]
