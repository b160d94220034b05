"""The demo territory: three gateways, the simulated sensors around them, and the gateway
configuration files (the same TOML a technician writes, docs/configuration.md).

- a public building (the town hall): a Linky meter (TIC historique), an Eastron SDM630 on
  Modbus RTU, a water meter on wired M-Bus, and three water meters of the street heard over
  the air (wireless M-Bus, an iM871A dongle): a Diehl IZAR, an OMS meter in security mode 5
  that leaks at night (its clock starts at 02:00, so its leak alarm shows at once), an OMS
  meter in mode 7;
- the marina: two BTHome berth sensors (one encrypted), an NMEA 0183 wind and depth
  instrument, a shore-power pedestal meter (SDM120 on Modbus RTU), and the canal's level
  gauge (an E+H FMR20 radar on Modbus RTU, its level above the canal's datum);
- a street and its park: two ultrasonic bin sensors (MaxBotix, A02YYUW), an SDI-12 soil
  probe, a street air-quality station (a Plantower PMS5003 read in passive mode), and over
  BLE a BTHome soil probe, a BTHome bin sensor and a Mi Flora.

Serial sensors are pty simulators (edge.simulators.serial) in the demo's process; BLE sensors
live in a radio world (edge.simulators.ble) in its own process, reached by each gateway's
bumble stack over an emulated HCI controller.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.simulators.serial import (
    A02yyuwSimulator,
    LineFormat,
    LinkySimulator,
    MaxBotixSimulator,
    MbusSimulator,
    ModbusSimulator,
    ModbusSlave,
    NmeaSimulator,
    PmsSimulator,
    Sdi12Simulator,
    SerialSimulator,
    WaterMeter,
    WmbusDongleSimulator,
)
from edge.simulators.serial.wmbus import demo_meters
from estran.rig._toml import toml_key, toml_table, toml_value

TOML = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SerialSensor:
    """A simulated serial device and the one sensor the gateway reads on it."""

    sensor: str
    make: Callable[[Path], SerialSimulator]  # directory of the pty symlinks -> simulator
    device: TOML = field(default_factory=dict)  # overrides in its [[serial.devices]] entry
    meta: TOML = field(default_factory=dict)  # its [sensors.ID] table
    port: TOML = field(default_factory=dict)  # overrides in its [[serial]] table
    headline: tuple[str, ...] = ()  # quantities the live view shows first
    # further sensors on the same port (a radio dongle hears several meters): the
    # simulator's devices after the first, in order, each (sensor id, [sensors.ID] table)
    also: tuple[tuple[str, TOML], ...] = ()

    @property
    def sensors(self) -> tuple[str, ...]:
        return (self.sensor, *(sensor for sensor, _ in self.also))


@dataclass(frozen=True, slots=True)
class GatewayPlan:
    """One gateway of the territory."""

    key: str  # short name: building, marina, street
    group: str  # the fleet group it enrolls into (its id is GROUP-NNN)
    title: str
    site: str
    serial: tuple[SerialSensor, ...]
    ble_zone: str | None = None  # the radio world zone it hears
    ble_meta: Mapping[str, TOML] = field(default_factory=dict)  # [sensors.ID] of BLE sensors

    @property
    def default_id(self) -> str:
        return f"{self.group}-001"


def _linky(d: Path) -> SerialSimulator:
    return LinkySimulator("ttyLINKY0", mode="historique", directory=d)


def _sdm630(d: Path) -> SerialSimulator:
    return ModbusSimulator("ttyRS485-TOWNHALL", slaves=[ModbusSlave(1, "sdm630")], directory=d)


def _water(d: Path) -> SerialSimulator:
    return MbusSimulator("ttyMBUS0", meters=[WaterMeter(5)], directory=d)


# The demo meters' AES keys (test keys, printed nowhere; the gateway's configuration has them).
DEMO_KEY5 = bytes.fromhex("8E2BD0F5A4C3B2A1908F7E6D5C4B3A29")
DEMO_KEY7 = bytes.fromhex("1F2E3D4C5B6A79880F1E2D3C4B5A6978")


def _radio_water(d: Path) -> SerialSimulator:
    return WmbusDongleSimulator(
        "ttyIM871A-TOWNHALL",
        dongle="im871a",
        meters=demo_meters(DEMO_KEY5, DEMO_KEY7),
        interval=6.0,
        directory=d,
    )


def _nmea(d: Path) -> SerialSimulator:
    return NmeaSimulator("ttyNMEA0", directory=d)


def _pedestal(d: Path) -> SerialSimulator:
    return ModbusSimulator("ttyRS485-PONTOON", slaves=[ModbusSlave(12, "sdm120")], directory=d)


def _canal_radar(d: Path) -> SerialSimulator:
    # the FMR20 as it leaves the factory: address 200, 9600 8E1
    return ModbusSimulator(
        "ttyRS485-CANAL",
        slaves=[ModbusSlave(200, "fmr20")],
        line=LineFormat(9600, 8, "E", 1),
        directory=d,
    )


def _air(d: Path) -> SerialSimulator:
    return PmsSimulator("ttyPMS0", directory=d)


def _maxbotix(d: Path) -> SerialSimulator:
    return MaxBotixSimulator("ttyMAXBOTIX0", empty_mm=1100, full_mm=250, directory=d)


def _a02yyuw(d: Path) -> SerialSimulator:
    return A02yyuwSimulator("ttyA02YYUW0", empty_mm=1300, full_mm=300, directory=d)


def _sdi12(d: Path) -> SerialSimulator:
    return Sdi12Simulator("ttySDI12-0", address="0", directory=d)


def _place(name: str, lat: float, lon: float) -> TOML:
    return {"name": name, "lat": lat, "lon": lon}


TERRITORY: tuple[GatewayPlan, ...] = (
    GatewayPlan(
        key="building",
        group="townhall",
        title="public building",
        site="Town hall, plant room",
        serial=(
            SerialSensor(
                "townhall-linky",
                _linky,
                device={"interval": 5},
                headline=("apparent_power", "current", "energy"),
                meta={
                    "dataset": "closed",
                    "location": _place("Town hall, meter room", 43.2965, 5.3698),
                    "ignore": ["ADCO", "OPTARIF", "ISOUSC", "PTEC", "HHPHC", "MOTDETAT"],
                    "rename": {"BASE": "energy", "PAPP": "apparent_power", "IINST": "current"},
                },
            ),
            SerialSensor(
                "townhall-sdm630",
                _sdm630,
                device={"interval": 5},
                headline=("total_active_power", "average_voltage", "frequency"),
                meta={"dataset": "open", "location": "Town hall, main switchboard"},
            ),
            SerialSensor(
                "townhall-water",
                _water,
                device={"interval": 10},
                headline=("volume", "volume_flow", "flow_temperature"),
                meta={"dataset": "open", "location": "Town hall, basement"},
            ),
            SerialSensor(
                "townhall-water-21242472",
                _radio_water,
                device={"interval": 0},
                headline=("volume", "leak", "remaining_battery_life"),
                meta={"dataset": "closed", "location": "Rue de la Loge 3, IZAR water meter"},
                also=(
                    (
                        "townhall-water-44556677",
                        {"dataset": "closed", "location": "Rue de la Loge 5, leaking at night"},
                    ),
                    (
                        "townhall-water-22862420",
                        {"dataset": "closed", "location": "Rue de la Loge 7"},
                    ),
                ),
            ),
        ),
    ),
    GatewayPlan(
        key="marina",
        group="marina",
        title="marina",
        site="Marina, pontoon B",
        serial=(
            SerialSensor(
                "marina-wind",
                _nmea,
                device={"interval": 5},
                headline=("apparent_wind_speed", "apparent_wind_angle", "water_temperature"),
                meta={
                    "dataset": "open",
                    # the instrument's GPS says where the mast is: nothing to publish
                    "ignore": [
                        "lat",
                        "lon",
                        "altitude",
                        "hdop",
                        "satellites",
                        "speed_over_ground",
                        "magnetic_variation",
                    ],
                    "location": _place("Marina, harbour-master mast", 43.2951, 5.3663),
                },
            ),
            SerialSensor(
                "marina-pedestal-b12",
                _pedestal,
                device={"interval": 5},
                headline=("active_power", "voltage", "import_active_energy"),
                meta={"dataset": "closed", "location": "Marina, pontoon B, pedestal 12"},
            ),
            SerialSensor(
                "marina-canal-level",
                _canal_radar,
                # the radar's flange 3.20 m above the canal's reference datum (the
                # simulator's mount): `level` = 3.20 - distance
                device={"interval": 5, "datum": 3.2},
                port={"parity": "E"},
                headline=("level", "distance", "temperature"),
                meta={
                    "dataset": "open",
                    "description": "Canal level above the canal's reference datum (m)",
                    "location": _place("Marina, canal lock bridge", 43.2948, 5.3672),
                },
            ),
        ),
        ble_zone="marina",
        ble_meta={
            "marina-berth-01": {"dataset": "closed", "location": "Marina, pontoon B, berth 1"},
            "marina-berth-02": {"dataset": "closed", "location": "Marina, pontoon B, berth 2"},
        },
    ),
    GatewayPlan(
        key="street",
        group="street",
        title="street and park",
        site="Rue Paradis, street cabinet by the park",
        serial=(
            SerialSensor(
                "street-bin-02",
                _maxbotix,
                device={"interval": 5},
                headline=("fill", "distance"),
                meta={
                    "dataset": "open",
                    "location": _place("Rue Paradis 12, glass", 43.2899, 5.3776),
                },
            ),
            SerialSensor(
                "street-bin-03",
                _a02yyuw,
                device={"interval": 5},
                headline=("fill", "distance"),
                meta={
                    "dataset": "open",
                    "location": _place("Rue Paradis 14, paper", 43.2897, 5.3777),
                },
            ),
            SerialSensor(
                "park-sdi12-01",
                _sdi12,
                device={"interval": 10},
                headline=("moisture", "temperature", "conductivity"),
                meta={"dataset": "open", "location": "Park, rose garden"},
                port={"wake": "nul"},  # a pty carries no break: NUL, as a UART reports one
            ),
            SerialSensor(
                "street-air-01",
                _air,
                device={"passive": True, "interval": 10},
                headline=("pm25", "pm10", "pm1"),
                meta={
                    "dataset": "open",
                    "description": "Particulate matter, Plantower PMS5003 (no humidity correction)",
                    "location": _place("Rue Paradis 16, lamp post", 43.2896, 5.3778),
                },
            ),
        ),
        ble_zone="park",
        ble_meta={
            "park-soil-01": {"dataset": "open", "location": "Park, lawn"},
            "street-bin-01": {"dataset": "open", "location": "Rue Paradis 10, household waste"},
            "park-miflora-01": {"dataset": "open", "location": "Park, greenhouse"},
        },
    ),
)


# -- the configuration file ------------------------------------------------------------------


def _table(header: str, table: TOML) -> list[str]:
    return toml_table(header, table)


@dataclass(frozen=True, slots=True)
class BleWorld:
    """What the radio world process printed: transports per zone, device entries per zone."""

    transports: Mapping[str, str]  # zone -> "tcp-client:127.0.0.1:PORT"
    devices: Mapping[str, Sequence[TOML]]  # zone -> [[ble.devices]] entries

    @classmethod
    def from_ready_line(cls, line: str) -> BleWorld:
        """Parse the first stdout line of ``python -m edge.simulators.ble``."""
        data = json.loads(line)
        transports: dict[str, str] = {}
        for name, gateway in data["gateways"].items():
            transports[str(name)] = str(gateway["transport"])
        devices: dict[str, list[TOML]] = {}
        for sensor in data["sensors"]:
            devices.setdefault(str(sensor["zone"]), []).append(dict(sensor["config"]))
        return cls(transports, devices)


@dataclass(frozen=True, slots=True)
class GatewaySetup:
    """Everything that differs between runs: where things are."""

    gateway_id: str
    data_dir: Path
    broker: str  # mqtt://127.0.0.1:PORT
    credentials_file: Path | None = None


def gateway_config(
    plan: GatewayPlan,
    setup: GatewaySetup,
    simulators: Mapping[str, SerialSimulator],
    world: BleWorld | None,
) -> str:
    """The gateway's configuration file, as TOML text."""
    lines = [
        f"# {plan.title}: {plan.site}",
        "# written by `estran demo` (see docs/configuration.md)",
        "",
    ]
    lines += _table(
        "[gateway]",
        {"id": setup.gateway_id, "data_dir": str(setup.data_dir), "log_level": "info"},
    )
    lines += _table("[buffer]", {"quota": "64 MiB", "commit_interval": 1})
    uplink: dict[str, Any] = {"broker": setup.broker, "state_interval": 5}
    if setup.credentials_file is not None:
        uplink["credentials_file"] = str(setup.credentials_file)
    lines += _table("[uplink]", uplink)
    lines += _table("[daemon]", {"stop_timeout": 5})
    meta: dict[str, TOML] = {}
    for sensor in plan.serial:
        sim = simulators[sensor.sensor]
        port = dict(sim.port_config(sensor.sensor))
        devices = port.pop("devices")
        assert isinstance(devices, list) and len(devices) == len(sensor.sensors)
        port["name"] = f"serial:{sim.name}"
        port.update(sensor.port)
        lines += _table("[[serial]]", port)
        tables = (sensor.meta, *(table for _, table in sensor.also))
        for device, sensor_id, table in zip(devices, sensor.sensors, tables, strict=True):
            lines += _table("[[serial.devices]]", {**device, "sensor": sensor_id, **sensor.device})
            meta[sensor_id] = table
    if plan.ble_zone is not None:
        if world is None or plan.ble_zone not in world.transports:
            raise ValueError(f"the radio world has no gateway for zone {plan.ble_zone!r}")
        lines += _table(
            "[ble]",
            {
                "backend": "bumble",
                "transport": world.transports[plan.ble_zone],
                "absent_after": "1min",
                "connect_timeout": 5,
                "poll_timeout": 10,
            },
        )
        for entry in world.devices.get(plan.ble_zone, ()):
            lines += _table("[[ble.devices]]", entry)
            sensor_id = str(entry["sensor"])
            meta[sensor_id] = plan.ble_meta.get(sensor_id, {})
    for sensor_id, table in meta.items():
        if table:
            lines += _table(f"[sensors.{toml_key(sensor_id)}]", table)
    return "\n".join(lines)


# Quantities the live view shows first for the BLE sensors (the serial ones carry theirs).
BLE_HEADLINES: Mapping[str, tuple[str, ...]] = {
    "marina-berth-01": ("occupancy", "battery"),
    "marina-berth-02": ("occupancy", "battery"),
    "park-soil-01": ("moisture", "temperature", "battery"),
    "street-bin-01": ("distance", "battery"),
    "park-miflora-01": ("moisture", "temperature", "illuminance"),
}


__all__ = [
    "BLE_HEADLINES",
    "TERRITORY",
    "BleWorld",
    "GatewayPlan",
    "GatewaySetup",
    "SerialSensor",
    "gateway_config",
    "toml_value",
]
