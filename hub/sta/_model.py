"""Our data as SensorThings entities, as one reader may see them.

    sensor                  -> Thing, Sensor, FeatureOfInterest (the same id: the sensor's
                               first series id), Location and HistoricalLocation when the
                               catalogue gives it a position
    quantity                -> ObservedProperty (id: its first series id)
    series (sensor, quantity, unit) -> Datastream (id: the series id)
    reading                 -> Observation (id: gateway id << 40 | sequence number)

Only sensors the principal may read are in the universe (`Principal.can_read` on the
sensor's dataset, from the catalogue; a sensor in no dataset is closed: admin only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub._api import iso
from hub.storage import Observation, SeriesInfo, Storage, obs_id

OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
UCUM = "http://unitsofmeasure.org/ucum.html#para-"
QUANTITY_URN = "urn:estran:quantity:"

Record = dict[str, Any]

# entity set -> {navigation property: (target set, to-many)}
NAVIGATION: dict[str, dict[str, tuple[str, bool]]] = {
    "Things": {
        "Locations": ("Locations", True),
        "HistoricalLocations": ("HistoricalLocations", True),
        "Datastreams": ("Datastreams", True),
    },
    "Locations": {"Things": ("Things", True), "HistoricalLocations": ("HistoricalLocations", True)},
    "HistoricalLocations": {"Thing": ("Things", False), "Locations": ("Locations", True)},
    "Sensors": {"Datastreams": ("Datastreams", True)},
    "ObservedProperties": {"Datastreams": ("Datastreams", True)},
    "Datastreams": {
        "Thing": ("Things", False),
        "Sensor": ("Sensors", False),
        "ObservedProperty": ("ObservedProperties", False),
        "Observations": ("Observations", True),
    },
    "Observations": {
        "Datastream": ("Datastreams", False),
        "FeatureOfInterest": ("FeaturesOfInterest", False),
    },
    "FeaturesOfInterest": {"Observations": ("Observations", True)},
}
SETS = tuple(NAVIGATION)


def sta_time(ts_ms: int | None) -> str | None:
    text = iso(ts_ms)
    return None if text is None else text.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class SensorMeta:
    """What the catalogue says of a sensor (the parts SensorThings shows)."""

    dataset: str | None = None
    is_open: bool = False
    licence: str | None = None
    location: tuple[float, float] | None = None  # (lon, lat), WGS84
    site: str | None = None
    description: str | None = None
    kind: str | None = None


def catalogue_of(storage: Storage, granted: frozenset[str] | None = None) -> dict[str, SensorMeta]:
    """The hub's sensor catalogue (hub.storage `sensor_catalogue`) by sensor id: with
    `granted`, only the sensors of open datasets and of those closed ones."""
    return {
        e.sensor: SensorMeta(
            dataset=e.dataset,
            is_open=e.open,
            licence=e.licence,
            location=e.location,
            site=e.site,
            description=e.description or None,
            kind=e.kind,
        )
        for e in storage.sensor_catalogue(granted)
    }


class Universe:
    """The entities (all but Observations) one principal may see, built per request from the
    series table and the catalogue; Observations stay in the database."""

    def __init__(
        self,
        base: str,
        series: list[SeriesInfo],
        meta: dict[str, SensorMeta],
        can_read: Callable[[str | None, bool], bool],
        everything: bool,
    ) -> None:
        self.base = base
        self.meta = meta
        self.all_series = len(series)
        thing_of: dict[str, int] = {}
        op_of: dict[str, int] = {}
        for s in series:  # by id: a sensor's and a quantity's first series names them
            thing_of.setdefault(s.sensor, s.id)
            op_of.setdefault(s.quantity, s.id)
        self.visible = [
            s
            for s in series
            if can_read(
                meta.get(s.sensor, SensorMeta()).dataset, meta.get(s.sensor, SensorMeta()).is_open
            )
        ]
        self.everything = everything and len(self.visible) == len(series)
        self.thing_of = thing_of
        self.series_by_id = {s.id: s for s in self.visible}
        self.records: dict[str, dict[int, Record]] = {
            name: {} for name in SETS if name != "Observations"
        }
        for s in self.visible:
            self._add(s, thing_of[s.sensor], op_of[s.quantity])

    def link(self, name: str, ident: int) -> str:
        return f"{self.base}/{name}({ident})"

    def _nav_links(self, name: str, ident: int, record: Record) -> None:
        for nav in NAVIGATION[name]:
            record[f"{nav}@iot.navigationLink"] = f"{self.link(name, ident)}/{nav}"

    def _add(self, s: SeriesInfo, tid: int, opid: int) -> None:
        m = self.meta.get(s.sensor, SensorMeta())
        r = self.records
        if tid not in r["Things"]:
            props: dict[str, Any] = {"sensor": s.sensor}
            for key in ("kind", "site", "dataset", "licence"):
                value = getattr(m, key)
                if value is not None:
                    props[key] = value
            if m.dataset is not None:
                props["access"] = "open" if m.is_open else "closed"
            description = m.description or f"sensor {s.sensor}"
            self._put(
                "Things", tid, {"name": s.sensor, "description": description, "properties": props}
            )
            self._put(
                "Sensors",
                tid,
                {
                    "name": s.sensor,
                    "description": description,
                    "encodingType": "text/plain",
                    "metadata": m.kind or s.sensor,
                },
            )
            feature = None
            if m.location is not None:
                feature = {"type": "Point", "coordinates": [m.location[0], m.location[1]]}
                self._put(
                    "Locations",
                    tid,
                    {
                        "name": m.site or s.sensor,
                        "description": f"where {s.sensor} is",
                        "encodingType": "application/geo+json",
                        "location": feature,
                    },
                )
                self._put("HistoricalLocations", tid, {"time": None})
            self._put(
                "FeaturesOfInterest",
                tid,
                {
                    "name": m.site or s.sensor,
                    "description": f"what {s.sensor} observes",
                    "encodingType": "application/geo+json",
                    "feature": feature,
                },
            )
        if opid not in r["ObservedProperties"]:
            self._put(
                "ObservedProperties",
                opid,
                {
                    "name": s.quantity,
                    "definition": QUANTITY_URN + s.quantity,
                    "description": s.quantity,
                },
            )
        unit = s.unit
        self._put(
            "Datastreams",
            s.id,
            {
                "name": f"{s.sensor} {s.quantity}",
                "description": f"{s.quantity} of {s.sensor}" + (f" in {unit}" if unit else ""),
                "unitOfMeasurement": {
                    "name": unit,
                    "symbol": unit,
                    "definition": None if unit is None else UCUM + unit,
                },
                "observationType": OM + ("OM_Measurement" if unit else "OM_Observation"),
                "_thing": tid,
                "_op": opid,
            },
        )

    def _put(self, name: str, ident: int, record: Record) -> None:
        record = {"@iot.id": ident, "@iot.selfLink": self.link(name, ident), **record}
        self._nav_links(name, ident, record)
        self.records[name][ident] = record

    # -- relations -------------------------------------------------------------------------

    def related_filter(self, name: str, record: Record, nav: str) -> Callable[[Record], bool]:
        """Which records of the navigation's target belong to `record`."""
        rid = record["@iot.id"]
        if name in ("Things", "Locations", "HistoricalLocations", "FeaturesOfInterest") and nav in (
            "Things",
            "Thing",
            "Locations",
            "HistoricalLocations",
        ):
            return lambda r: r["@iot.id"] == rid
        if name == "Things" and nav == "Datastreams":
            return lambda r: r["_thing"] == rid
        if name == "Sensors":
            return lambda r: r["_thing"] == rid
        if name == "ObservedProperties":
            return lambda r: r["_op"] == rid
        if name == "Datastreams":
            target = {
                "Thing": record["_thing"],
                "Sensor": record["_thing"],
                "ObservedProperty": record["_op"],
            }[nav]
            return lambda r: r["@iot.id"] == target
        if name == "Observations":
            s = self.series_by_id.get(record["_series"])
            target = (
                record["_series"] if nav == "Datastream" else (self.thing_of[s.sensor] if s else -1)
            )
            return lambda r: r["@iot.id"] == target
        return lambda r: False

    def related_series(self, name: str, record: Record) -> list[int]:
        """The series whose readings are the Observations of `record`."""
        if name == "Datastreams":
            return [record["@iot.id"]]
        if name == "FeaturesOfInterest":
            return [s.id for s in self.visible if self.thing_of[s.sensor] == record["@iot.id"]]
        return []

    def visible_series(self) -> list[int] | None:
        """Series ids to restrict Observations to (None: every series)."""
        return None if self.everything else [s.id for s in self.visible]

    def observation(self, o: Observation, gateways: dict[int, str]) -> Record:
        oid = obs_id(o.gateway_id, o.seq)
        t = sta_time(o.ts_ms)
        record: Record = {
            "@iot.id": oid,
            "@iot.selfLink": self.link("Observations", oid),
            "phenomenonTime": t,
            "resultTime": t,
            "result": o.value,
            "parameters": {
                "gateway": gateways.get(o.gateway_id, str(o.gateway_id)),
                "sequence": o.seq,
                "historical": bool(o.flags & 1),
            },
            "_series": o.series_id,
            "_ts": o.ts_ms,
        }
        self._nav_links("Observations", oid, record)
        return record


__all__ = [
    "NAVIGATION",
    "SETS",
    "Record",
    "SensorMeta",
    "Universe",
    "catalogue_of",
    "sta_time",
]
