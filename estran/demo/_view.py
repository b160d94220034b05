"""The live view: what the hub has received, read from its HTTP API only.

`HubPoller` reads `/api/v1/health`, `/api/v1/gateways` and `/api/v1/sensors` (standard library
HTTP on a worker thread, each request bounded); `render()` turns a `Snapshot` into a rich
renderable (a table of gateways, a table of sensors with their latest values); `summary()`
is the one-line form printed when the output is not a terminal.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

REQUEST_TIMEOUT_S = 2.0
NARROW = 110  # columns: below, a compact layout

_UNITS = {"Cel": "°C", "m3": "m³", "m3/h": "m³/h", "%RH": "%", "deg": "°", "/": "", "1": ""}


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """What the demo knows of a sensor beyond what the hub says: how it is read."""

    gateway: str  # plan key: building, marina, street
    via: str  # "serial · TIC", "BLE · BTHome (encrypted)"...
    ble: bool
    headline: tuple[str, ...] = ()  # quantities worth showing first


@dataclass(slots=True)
class Snapshot:
    """One poll of the hub."""

    ok: bool = False
    error: str | None = None
    health: Mapping[str, Any] = field(default_factory=dict)
    gateways: Sequence[Mapping[str, Any]] = ()
    sensors: Sequence[Mapping[str, Any]] = ()
    at: float = 0.0  # time.time() of the poll

    @property
    def readings(self) -> int:
        ingest = self.health.get("ingest", {})
        value = ingest.get("inserted", ingest.get("readings", 0)) if isinstance(ingest, dict) else 0
        return int(value) if isinstance(value, int) else 0

    def by_sensor(self) -> dict[str, list[Mapping[str, Any]]]:
        out: dict[str, list[Mapping[str, Any]]] = {}
        for row in self.sensors:
            out.setdefault(str(row.get("sensor")), []).append(row)
        return out


def _get_json(url: str, token: str = "") -> Any:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
        return json.loads(response.read())


class HubPoller:
    """Reads the hub's HTTP API (with an API token: the gateways are staff's)."""

    def __init__(self, base_url: str, token: str = "") -> None:
        self.base = base_url.rstrip("/")
        self.token = token

    def _poll(self) -> Snapshot:
        try:
            health = _get_json(self.base + "/api/v1/health")
            gateways = _get_json(self.base + "/api/v1/gateways", self.token)
            sensors = _get_json(self.base + "/api/v1/sensors", self.token)
        except (OSError, ValueError, urllib.error.URLError) as e:
            return Snapshot(ok=False, error=str(e), at=time.time())
        return Snapshot(
            ok=True,
            health=health if isinstance(health, dict) else {},
            gateways=gateways if isinstance(gateways, list) else [],
            sensors=sensors if isinstance(sensors, list) else [],
            at=time.time(),
        )

    async def poll(self) -> Snapshot:
        """One snapshot; never raises for a hub that does not answer (ok=False)."""
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._poll), timeout=3 * REQUEST_TIMEOUT_S + 1
            )
        except TimeoutError:
            return Snapshot(ok=False, error="the hub did not answer in time", at=time.time())

    async def ready(self) -> bool:
        try:
            health = await asyncio.wait_for(
                asyncio.to_thread(_get_json, self.base + "/api/v1/health"),
                timeout=REQUEST_TIMEOUT_S + 1,
            )
        except (OSError, ValueError, TimeoutError, urllib.error.URLError):
            return False
        return isinstance(health, dict) and health.get("ready") is True


def format_value(value: object, unit: object) -> str:
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, int):
        text = f"{value:,}".replace(",", " ")
    elif isinstance(value, float):
        if not math.isfinite(value):
            text = str(value)
        elif value != 0 and abs(value) < 0.01:
            text = f"{value:.3g}"
        else:
            text = f"{value:,.2f}".replace(",", " ").rstrip("0").rstrip(".")
    elif value is None:
        text = "-"
    else:
        text = str(value)
        text = text if len(text) <= 22 else text[:21] + "…"
    suffix = _UNITS.get(str(unit), str(unit)) if unit else ""
    return f"{text}{suffix}" if suffix in ("%", "°") else f"{text} {suffix}".rstrip()


def format_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# name -> (priority, column options, width with borders and padding); the view keeps the
# columns of highest priority that fit the terminal, in this order.
_GATEWAY_COLUMNS: dict[str, tuple[int, dict[str, Any], int]] = {
    "gateway": (0, {"style": "bold", "no_wrap": True}, 16),
    "what": (9, {"no_wrap": True}, 19),
    "state": (1, {"no_wrap": True}, 10),
    "last seen": (6, {"justify": "right"}, 12),
    "sensors": (2, {"justify": "right"}, 10),
    "readings": (3, {"justify": "right"}, 11),
    "backlog": (5, {"justify": "right"}, 10),
    "sent/reading": (4, {"justify": "right"}, 15),
    "RSS": (7, {"justify": "right"}, 10),
    "CPU": (8, {"justify": "right"}, 9),
}


def _gateway_columns(width: int) -> list[str]:
    chosen: set[str] = set()
    used = 1
    for name, (_, _, w) in sorted(_GATEWAY_COLUMNS.items(), key=lambda kv: kv[1][0]):
        if used + w <= width:
            chosen.add(name)
            used += w
    return [name for name in _GATEWAY_COLUMNS if name in chosen]


def _number(value: object) -> str:
    return f"{value:,}".replace(",", " ") if isinstance(value, int) else "-"


def _mib(value: object) -> float | None:
    return value / 2**20 if isinstance(value, int | float) else None


def _figure(value: object, unit: str, digits: int) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{value:.{digits}f} {unit}"


def short_via(via: str) -> str:
    """ "serial · Modbus RTU" -> "Modbus RTU", "BLE · BTHome, encrypted" -> "BLE BTHome+key"."""
    text = via.removeprefix("serial · ").replace("BLE · ", "BLE ")
    return text.replace(", encrypted", "+key").replace(" + GATT", "").replace(" v2", "")


def _headline(rows: Sequence[Mapping[str, Any]], wanted: Sequence[str], count: int = 3) -> str:
    by_quantity = {str(r.get("quantity")): r for r in rows}
    chosen = [q for q in wanted if q in by_quantity]
    for q in sorted(by_quantity):
        if len(chosen) >= count:
            break
        if q not in chosen and by_quantity[q].get("value") is not None:
            chosen.append(q)
    parts = []
    for q in chosen[:count]:
        row = by_quantity[q]
        value = row.get("value")
        if q == "occupancy" and value in (0, 1):
            parts.append("occupied" if value else "free")
        else:
            parts.append(f"{q} {format_value(value, row.get('unit'))}")
    return " · ".join(parts)


@dataclass(slots=True)
class ViewState:
    """What the view remembers between polls: the first reading time and the latest
    timestamp of each sensor (to highlight what just arrived) and the ingest rate."""

    started: float = field(default_factory=time.monotonic)
    last_ts: dict[str, int] = field(default_factory=dict)
    fresh: dict[str, float] = field(default_factory=dict)  # sensor -> monotonic time updated
    rate: float = 0.0
    _last: tuple[float, int] | None = None

    def update(self, snap: Snapshot) -> None:
        now = time.monotonic()
        for sensor, rows in snap.by_sensor().items():
            ts = max(int(r.get("ts_ms") or 0) for r in rows)
            if ts > self.last_ts.get(sensor, 0):
                self.last_ts[sensor] = ts
                self.fresh[sensor] = now
        if snap.ok:
            if self._last is not None and now > self._last[0]:
                instant = (snap.readings - self._last[1]) / (now - self._last[0])
                self.rate = instant if self.rate == 0 else 0.7 * self.rate + 0.3 * instant
            self._last = (now, snap.readings)


def render(
    snap: Snapshot,
    state: ViewState,
    *,
    gateways: Mapping[str, tuple[str, str]],  # gateway id -> (title, site)
    sensors: Mapping[str, SensorInfo],
    ids: Mapping[str, str],  # plan key -> gateway id
    header: str,
    remaining: float | None,
    width: int = 120,
) -> RenderableType:
    now = time.time()
    mono = time.monotonic()
    elapsed = mono - state.started
    by_sensor = snap.by_sensor()
    title = Text.assemble(
        ("Estran demo", "bold"),
        f" · {header} · running {format_age(elapsed)}",
        f" · stops in {format_age(remaining)}" if remaining is not None else " · Ctrl-C stops",
    )
    status = Text.assemble(
        ("hub ", "dim"),
        (f"{snap.readings:,}".replace(",", " ") + " readings stored", "bold"),
        f" ({state.rate:.1f}/s)" if state.rate else "",
        f"  ·  {len(set(by_sensor) & set(sensors))} of {len(sensors)} sensors reporting",
        (f"  ·  hub not answering: {snap.error}", "red") if not snap.ok else "",
    )

    narrow = width < NARROW
    gw_table = Table(
        title="Gateways (state and footprint as the hub has them)",
        title_justify="left",
        expand=False,
        pad_edge=False,
    )
    columns = _gateway_columns(width)
    for name in columns:
        gw_table.add_column(name, **_GATEWAY_COLUMNS[name][1])
    rows = {str(g.get("id")): g for g in snap.gateways}
    for gid, (what, _site) in gateways.items():
        g = rows.get(gid, {})
        state_text = str(g.get("state", "not yet"))
        style = {"online": "green", "offline": "red"}.get(state_text, "yellow")
        last_ms = g.get("last_seen_ms")
        seen = format_age(now - last_ms / 1000) if isinstance(last_ms, int) else "-"
        n_sensors = len({s for s, r in by_sensor.items() if r and r[0].get("gateway") == gid})
        footprint = g.get("footprint") if isinstance(g.get("footprint"), dict) else {}
        per_reading = g.get("per_reading") if isinstance(g.get("per_reading"), dict) else {}
        assert isinstance(footprint, dict) and isinstance(per_reading, dict)
        cells: dict[str, RenderableType] = {
            "gateway": gid,
            "what": what,
            "state": Text(state_text, style=style),
            "last seen": seen,
            "sensors": str(n_sensors),
            "readings": _number(g.get("readings")),
            "backlog": _number(g.get("backlog")),
            "sent/reading": _figure(per_reading.get("bytes_sent"), "B", 0),
            "RSS": _figure(_mib(footprint.get("rss_bytes")), "MiB", 0),
            "CPU": _figure(footprint.get("cpu_s"), "s", 1),
        }
        gw_table.add_row(*(cells[name] for name in columns))

    s_table = Table(title="Sensors (latest values at the hub)", title_justify="left")
    if narrow:  # the gateway is told by the sections; the transport in short
        fixed = 19 + 14 + 6 + 13
    else:
        fixed = 12 + 19 + 23 + 6 + 16  # the other columns, borders and padding
        s_table.add_column("gateway", no_wrap=True, min_width=12)
    s_table.add_column("sensor", style="bold", no_wrap=True, min_width=19)
    s_table.add_column("read over", no_wrap=True, min_width=14 if narrow else 23)
    s_table.add_column(
        "latest values", overflow="ellipsis", no_wrap=True, max_width=max(24, width - fixed)
    )
    s_table.add_column("age", justify="right", no_wrap=True, min_width=6)
    order = {key: i for i, key in enumerate(ids)}
    previous: str | None = None
    for sensor, info in sorted(
        sensors.items(), key=lambda kv: (order.get(kv[1].gateway, 9), kv[0])
    ):
        rows_of = by_sensor.get(sensor, [])
        gid = ids.get(info.gateway, info.gateway)
        if previous is not None and gid != previous:
            s_table.add_section()
        first = gid != previous
        previous = gid
        via = short_via(info.via) if narrow else info.via
        if not rows_of:
            row: list[RenderableType] = [sensor, via, Text("waiting…", style="dim"), ""]
        else:
            ts = state.last_ts.get(sensor, 0)
            age = format_age(now - ts / 1000) if ts else "-"
            just = mono - state.fresh.get(sensor, -1e9) < 2.5
            latest = Text(_headline(rows_of, info.headline), style="bold green" if just else "")
            row = [sensor, via, latest, age]
        if not narrow:
            row.insert(0, gid if first else "")
        s_table.add_row(*row)
    return Group(title, status, Text(""), gw_table, Text(""), s_table)


def summary(snap: Snapshot, sensors: Mapping[str, SensorInfo], elapsed: float) -> str:
    """One line: for logs and for output that is not a terminal."""
    if not snap.ok:
        return f"[{elapsed:4.0f} s] hub not answering: {snap.error}"
    seen = set(snap.by_sensor())
    online = sum(1 for g in snap.gateways if g.get("state") == "online")
    ble = sum(1 for s, i in sensors.items() if i.ble and s in seen)
    serial = sum(1 for s, i in sensors.items() if not i.ble and s in seen)
    return (
        f"[{elapsed:4.0f} s] {snap.readings} readings stored; gateways online {online}/"
        f"{len(snap.gateways)}; sensors reporting {len(seen & set(sensors))}/{len(sensors)} "
        f"(serial {serial}, BLE {ble})"
    )


__all__ = [
    "HubPoller",
    "SensorInfo",
    "Snapshot",
    "ViewState",
    "format_age",
    "format_value",
    "render",
    "summary",
]
