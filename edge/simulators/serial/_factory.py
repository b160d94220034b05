"""Simulators by kind name, and the ``--spec`` mini-language of the runner.

A spec is ``KIND[,key=value]...``::

    linky-historique
    linky-standard,name=ttyLINKY1
    linky-historique,phases=3
    modbus,devices=sdm630@1+soil@2+level@80,baud=19200,parity=E
    mbus,devices=water@5+heat@6
    sdi12-soil,address=0,measure_time=1
    maxbotix,interval=0.2
    nmea,pace=1
    wmbus-im871a,replay=captures.hex,interval=2
    sds011,period=5
    canal-radar

Common keys: name, dir, pace, seed, interval (streams), baud, bytesize, parity, stopbits.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from edge.simulators.serial._base import DEFAULT_DIRECTORY, SerialSimulator, SimOptions
from edge.simulators.serial._link import LineFormat
from edge.simulators.serial.air import (
    OttPlsSimulator,
    PmsSimulator,
    Sds011Simulator,
    Sps30Simulator,
    VegapulsSimulator,
)
from edge.simulators.serial.mbus import HeatMeter, MbusMeter, MbusSimulator, WaterMeter
from edge.simulators.serial.modbus import ModbusSimulator, ModbusSlave
from edge.simulators.serial.nmea import NmeaSimulator
from edge.simulators.serial.sdi12 import Sdi12Simulator
from edge.simulators.serial.tic import LinkySimulator
from edge.simulators.serial.ultrasonic import A02yyuwSimulator, MaxBotixSimulator
from edge.simulators.serial.wmbus import ReplayMeter, WmbusDongleSimulator, replay_meters
from protocols import modbus
from protocols.errors import LocalProtocolError

KINDS: dict[str, str] = {
    "linky-historique": "Linky, TIC historique, 1200 7E1, a frame every 1.5 s",
    "linky-standard": "Linky, TIC standard, 9600 7E1",
    "modbus": f"Modbus RTU bus, devices=MAP@ADDRESS+... (maps: {', '.join(sorted(modbus.MAPS))})",
    "sdm120": "Eastron SDM120 at address 1 (Modbus RTU 9600 8N1)",
    "sdm630": "Eastron SDM630 at address 1 (Modbus RTU 9600 8N1)",
    "soil-modbus": "RS-485 soil probe at address 1 (Modbus RTU 9600 8N1)",
    "level-modbus": "RS-485 level sensor at address 80 (Modbus RTU 9600 8N1)",
    "mbus": "M-Bus bus, devices=water@5+heat@6 (2400 8E1)",
    "water-meter": "M-Bus water meter at primary address 5",
    "heat-meter": "M-Bus heat meter at primary address 6 (two telegrams)",
    "sdi12-soil": "SDI-12 soil probe at address 0 (1200 7E1)",
    "maxbotix": "MaxBotix HRLV level sensor, ASCII mm (9600 8N1)",
    "a02yyuw": "DFRobot A02YYUW level sensor, binary mm (9600 8N1)",
    "nmea": "NMEA 0183 weather and depth instrument (4800 8N1)",
    "wmbus-im871a": "wireless M-Bus, IMST iM871A dongle (57600 8N1), 3 water meters"
    " (replay=FILE: real telegrams, one hex a line, instead)",
    "wmbus-amb8465": "wireless M-Bus, Amber AMB8465 dongle (9600 8N1), 3 water meters",
    "wmbus-rtlwmbus": "wireless M-Bus, rtl-wmbus text output (115200 8N1), 3 water meters",
    "pms5003": "Plantower PMS5003 particulate sensor (9600 8N1), interval= s between frames",
    "sds011": "Nova SDS011 particulate sensor (9600 8N1), period= working period (minutes)",
    "sps30": "Sensirion SPS30 particulate sensor over UART (SHDLC, 115200 8N1)",
    "canal-radar": "E+H Micropilot FMR20 radar level at address 200 (Modbus RTU 9600 8E1)",
    "canal-pressure": "KELLER Series 30 pressure level probe at address 1 (Modbus RTU 9600 8N1)",
    "ott-pls": "OTT PLS pressure level probe at address 0 (SDI-12 1200 7E1)",
    "vegapuls-c21": "VEGAPULS C 21 radar level at address 0 (SDI-12 1200 7E1)",
}

_DEFAULT_NAMES = {
    "linky-historique": "ttyLINKY0",
    "linky-standard": "ttyLINKY1",
    "modbus": "ttyRS485-0",
    "sdm120": "ttySDM120",
    "sdm630": "ttySDM630",
    "soil-modbus": "ttySOIL485",
    "level-modbus": "ttyLEVEL485",
    "mbus": "ttyMBUS0",
    "water-meter": "ttyMBUSW",
    "heat-meter": "ttyMBUSH",
    "sdi12-soil": "ttySDI12-0",
    "maxbotix": "ttyMAXBOTIX0",
    "a02yyuw": "ttyA02YYUW0",
    "nmea": "ttyNMEA0",
    "wmbus-im871a": "ttyIM871A0",
    "wmbus-amb8465": "ttyAMB8465-0",
    "wmbus-rtlwmbus": "ttyRTLWMBUS0",
    "pms5003": "ttyPMS0",
    "sds011": "ttySDS0",
    "sps30": "ttySPS30",
    "canal-radar": "ttyCANAL485",
    "canal-pressure": "ttyKELLER485",
    "ott-pls": "ttySDI12-PLS",
    "vegapuls-c21": "ttySDI12-VEGA",
}


_RS485 = LineFormat(9600)
_MBUS = LineFormat(2400, 8, "E", 1)
_DEFAULT_LINES = {
    "linky-historique": LineFormat(1200, 7, "E", 1),
    "linky-standard": LineFormat(9600, 7, "E", 1),
    "modbus": _RS485,
    "sdm120": _RS485,
    "sdm630": _RS485,
    "soil-modbus": _RS485,
    "level-modbus": _RS485,
    "mbus": _MBUS,
    "water-meter": _MBUS,
    "heat-meter": _MBUS,
    "sdi12-soil": LineFormat(1200, 7, "E", 1),
    "maxbotix": LineFormat(9600),
    "a02yyuw": LineFormat(9600),
    "nmea": LineFormat(4800),
    "wmbus-im871a": LineFormat(57600),
    "wmbus-amb8465": LineFormat(9600),
    "wmbus-rtlwmbus": LineFormat(115200),
    "pms5003": LineFormat(9600),
    "sds011": LineFormat(9600),
    "sps30": LineFormat(115200),
    "canal-radar": LineFormat(9600, 8, "E", 1),
    "canal-pressure": _RS485,
    "ott-pls": LineFormat(1200, 7, "E", 1),
    "vegapuls-c21": LineFormat(1200, 7, "E", 1),
}


def _with_line(common: SimOptions, line: LineFormat) -> SimOptions:
    """`common` with the device's factory line unless the spec gave one."""
    out: SimOptions = {**common}
    out.setdefault("line", line)
    return out


class SpecError(ValueError):
    """A simulator spec or option that cannot be understood."""


def _slaves(text: str) -> list[ModbusSlave]:
    slaves = []
    for item in text.split("+"):
        name, _, address = item.partition("@")
        try:
            register_map = modbus.get_map(name)
            slaves.append(
                ModbusSlave(int(address, 0) if address else register_map.address, register_map)
            )
        except (ValueError, LocalProtocolError) as e:
            raise SpecError(f"modbus device {item!r}: {e}") from e
    return slaves


def _meters(text: str) -> list[MbusMeter]:
    meters: list[MbusMeter] = []
    for item in text.split("+"):
        kind, _, address = item.partition("@")
        try:
            primary = int(address) if address else None
        except ValueError as e:
            raise SpecError(f"mbus device {item!r}: address is a number") from e
        if kind == "water":
            meters.append(WaterMeter() if primary is None else WaterMeter(primary))
        elif kind == "heat":
            meters.append(HeatMeter() if primary is None else HeatMeter(primary))
        else:
            raise SpecError(f"mbus device {item!r}: water or heat")
    return meters


def _replay(opts: dict[str, str]) -> list[ReplayMeter] | None:
    """`replay=FILE`: real telegrams played back instead of the built-in meters."""
    path = opts.pop("replay", None)
    return replay_meters(path) if path else None


def create_simulator(kind: str, **options: str) -> SerialSimulator:
    """A simulator of `kind` (see KINDS) from string options (as a spec gives them)."""
    if kind not in KINDS:
        raise SpecError(f"unknown simulator {kind!r} (known: {', '.join(KINDS)})")
    opts = dict(options)
    name = opts.pop("name", _DEFAULT_NAMES[kind])
    common: SimOptions = {"directory": opts.pop("dir", DEFAULT_DIRECTORY)}
    try:
        if "pace" in opts:
            common["pace"] = float(opts.pop("pace"))
        if "seed" in opts:
            common["seed"] = int(opts.pop("seed"))
        line_keys = {
            k: opts.pop(k) for k in ("baud", "bytesize", "parity", "stopbits") if k in opts
        }
        interval = float(opts.pop("interval")) if "interval" in opts else None
        phases = int(opts.pop("phases")) if kind.startswith("linky") and "phases" in opts else 1
        if line_keys:
            base = _DEFAULT_LINES[kind]
            common["line"] = LineFormat(
                int(line_keys.get("baud", base.baud)),
                int(line_keys.get("bytesize", base.bytesize)),
                line_keys.get("parity", base.parity).upper(),
                int(line_keys.get("stopbits", base.stopbits)),
            )
    except ValueError as e:
        raise SpecError(f"{kind}: {e}") from e
    builders: dict[str, Callable[[], SerialSimulator]] = {
        "linky-historique": lambda: LinkySimulator(
            name, mode="historique", interval=interval, phases=phases, **common
        ),
        "linky-standard": lambda: LinkySimulator(
            name, mode="standard", interval=interval, phases=phases, **common
        ),
        "modbus": lambda: ModbusSimulator(
            name, slaves=_slaves(opts.pop("devices", "sdm630@1")), **common
        ),
        "sdm120": lambda: ModbusSimulator(
            name, slaves=[ModbusSlave(int(opts.pop("address", "1")), "sdm120")], **common
        ),
        "sdm630": lambda: ModbusSimulator(
            name, slaves=[ModbusSlave(int(opts.pop("address", "1")), "sdm630")], **common
        ),
        "soil-modbus": lambda: ModbusSimulator(
            name, slaves=[ModbusSlave(int(opts.pop("address", "1")), "soil")], **common
        ),
        "level-modbus": lambda: ModbusSimulator(
            name, slaves=[ModbusSlave(int(opts.pop("address", "80")), "level")], **common
        ),
        "mbus": lambda: MbusSimulator(
            name, meters=_meters(opts.pop("devices", "water@5+heat@6")), **common
        ),
        "water-meter": lambda: MbusSimulator(
            name, meters=[WaterMeter(int(opts.pop("address", "5")))], **common
        ),
        "heat-meter": lambda: MbusSimulator(
            name, meters=[HeatMeter(int(opts.pop("address", "6")))], **common
        ),
        "sdi12-soil": lambda: Sdi12Simulator(
            name,
            address=opts.pop("address", "0"),
            measure_time=float(opts.pop("measure_time", "1")),
            **common,
        ),
        "maxbotix": lambda: MaxBotixSimulator(name, interval=interval, **common),
        "a02yyuw": lambda: A02yyuwSimulator(name, interval=interval, **common),
        "nmea": lambda: NmeaSimulator(name, interval=interval, **common),
        "wmbus-im871a": lambda: WmbusDongleSimulator(
            name, dongle="im871a", meters=_replay(opts), interval=interval or 5.0, **common
        ),
        "wmbus-amb8465": lambda: WmbusDongleSimulator(
            name, dongle="amb8465", meters=_replay(opts), interval=interval or 5.0, **common
        ),
        "wmbus-rtlwmbus": lambda: WmbusDongleSimulator(
            name, dongle="rtlwmbus", meters=_replay(opts), interval=interval or 5.0, **common
        ),
        "pms5003": lambda: PmsSimulator(
            name, interval=1.0 if interval is None else interval, **common
        ),
        "sds011": lambda: Sds011Simulator(
            name,
            period=int(opts.pop("period", "0")),
            minute=float(opts.pop("minute", "60")),
            work=float(opts.pop("work", "30")),
            **common,
        ),
        "sps30": lambda: Sps30Simulator(name, **common),
        "canal-radar": lambda: ModbusSimulator(
            name,
            slaves=[ModbusSlave(int(opts.pop("address", "200")), "fmr20")],
            **_with_line(common, LineFormat(9600, 8, "E", 1)),
        ),
        "canal-pressure": lambda: ModbusSimulator(
            name, slaves=[ModbusSlave(int(opts.pop("address", "1")), "keller30")], **common
        ),
        "ott-pls": lambda: OttPlsSimulator(
            name,
            address=opts.pop("address", "0"),
            measure_time=float(opts.pop("measure_time", "1")),
            **common,
        ),
        "vegapuls-c21": lambda: VegapulsSimulator(
            name,
            address=opts.pop("address", "0"),
            measure_time=float(opts.pop("measure_time", "1")),
            **common,
        ),
    }
    try:
        simulator = builders[kind]()
    except ValueError as e:
        raise SpecError(f"{kind}: {e}") from e
    if opts:
        raise SpecError(f"{kind}: unknown option {sorted(opts)[0]!r}")
    return simulator


def parse_spec(spec: str, directory: str | os.PathLike[str] | None = None) -> SerialSimulator:
    """``KIND[,key=value]...`` -> a simulator (not started)."""
    kind, *items = [part.strip() for part in spec.split(",") if part.strip()]
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SpecError(f"{spec!r}: {item!r} is not key=value")
        options[key] = value
    if directory is not None:
        options.setdefault("dir", os.fspath(directory))
    return create_simulator(kind, **options)


__all__ = ["KINDS", "SpecError", "create_simulator", "parse_spec"]
