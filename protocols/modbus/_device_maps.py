"""The register maps Estran knows by name (`estran decode modbus --map NAME`).

Units are SenML (RFC 8428/8798). Where the device's unit is not a SenML one it is
converted by the register's scale: kWh -> Wh (x1000), kvarh -> VArh (x1000), uS/cm -> S/m
(x0.0001), mg/L -> kg/m3 (x0.001), mm/cm -> m. Sources are in docs/protocols/modbus.md.
"""

from protocols.errors import LocalProtocolError
from protocols.modbus._frames import READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS
from protocols.modbus._maps import Register, RegisterMap

# Eastron meters: FC04 input registers, every value a float32 big endian (ABCD) in two
# registers at an even address; at most 40 parameters (80 registers) per request.
SDM_MAX_COUNT = 80


def _f32(name: "str", address: "int", unit: "str | None", scale: "int | float" = 1) -> "Register":
    return Register(name, address, "f32", scale, unit)


SDM120 = RegisterMap(
    "sdm120",
    [
        _f32("voltage", 0x0000, "V"),
        _f32("current", 0x0006, "A"),
        _f32("active_power", 0x000C, "W"),
        _f32("apparent_power", 0x0012, "VA"),
        _f32("reactive_power", 0x0018, "var"),
        _f32("power_factor", 0x001E, "/"),
        _f32("phase_angle", 0x0024, "deg"),
        _f32("frequency", 0x0046, "Hz"),
        _f32("import_active_energy", 0x0048, "Wh", 1000),
        _f32("export_active_energy", 0x004A, "Wh", 1000),
        _f32("import_reactive_energy", 0x004C, "VArh", 1000),
        _f32("export_reactive_energy", 0x004E, "VArh", 1000),
        _f32("total_active_energy", 0x0156, "Wh", 1000),
        _f32("total_reactive_energy", 0x0158, "VArh", 1000),
    ],
    description="Eastron SDM120 single-phase energy meter (FC04, f32 ABCD)",
    function=READ_INPUT_REGISTERS,
    max_count=SDM_MAX_COUNT,
)


def _phases(name: "str", address: "int", unit: "str | None") -> "list[Register]":
    return [_f32("l%d_%s" % (i + 1, name), address + 2 * i, unit) for i in range(3)]


SDM630 = RegisterMap(
    "sdm630",
    _phases("voltage", 0x0000, "V")
    + _phases("current", 0x0006, "A")
    + _phases("active_power", 0x000C, "W")
    + _phases("apparent_power", 0x0012, "VA")
    + _phases("reactive_power", 0x0018, "var")
    + _phases("power_factor", 0x001E, "/")
    + _phases("phase_angle", 0x0024, "deg")
    + [
        _f32("average_voltage", 0x002A, "V"),
        _f32("average_current", 0x002E, "A"),
        _f32("current_sum", 0x0030, "A"),
        _f32("total_active_power", 0x0034, "W"),
        _f32("total_apparent_power", 0x0038, "VA"),
        _f32("total_reactive_power", 0x003C, "var"),
        _f32("total_power_factor", 0x003E, "/"),
        _f32("total_phase_angle", 0x0042, "deg"),
        _f32("frequency", 0x0046, "Hz"),
        _f32("import_active_energy", 0x0048, "Wh", 1000),
        _f32("export_active_energy", 0x004A, "Wh", 1000),
        _f32("import_reactive_energy", 0x004C, "VArh", 1000),
        _f32("export_reactive_energy", 0x004E, "VArh", 1000),
        _f32("total_power_demand", 0x0054, "W"),
        _f32("max_total_power_demand", 0x0056, "W"),
        _f32("l1_l2_voltage", 0x00C8, "V"),
        _f32("l2_l3_voltage", 0x00CA, "V"),
        _f32("l3_l1_voltage", 0x00CC, "V"),
        _f32("total_active_energy", 0x0156, "Wh", 1000),
    ]
    + [_f32("l%d_import_active_energy" % (i + 1), 0x015A + 2 * i, "Wh", 1000) for i in range(3)]
    + [_f32("l%d_export_active_energy" % (i + 1), 0x0160 + 2 * i, "Wh", 1000) for i in range(3)]
    + [_f32("l%d_total_active_energy" % (i + 1), 0x0166 + 2 * i, "Wh", 1000) for i in range(3)],
    description="Eastron SDM630 three-phase energy meter (FC04, f32 ABCD)",
    function=READ_INPUT_REGISTERS,
    max_count=SDM_MAX_COUNT,
)

# DFRobot SEN0601 (3 registers) / SEN0604 (4), the JXBS / ComWinTop THC-S family:
# FC03 from 0, moisture x0.1 %, temperature x0.1 degC signed, EC uS/cm, pH x0.1.
SOIL = RegisterMap(
    "soil",
    [
        Register("moisture", 0x0000, "u16", 0.1, "%"),
        Register("temperature", 0x0001, "s16", 0.1, "Cel"),
        Register("conductivity", 0x0002, "u16", 0.0001, "S/m"),
        Register("ph", 0x0003, "u16", 0.1, "pH"),
    ],
    function=READ_HOLDING_REGISTERS,
    description="RS-485 soil probe, DFRobot SEN0601/SEN0604 (THC-S type), FC03",
)

# Seeed 101990667 / Womaster ES103 (S-Soil MT-02 type): temperature first, /100.
SOIL_ES103 = RegisterMap(
    "soil_es103",
    [
        Register("temperature", 0x0000, "s16", 0.01, "Cel"),
        Register("moisture", 0x0001, "u16", 0.01, "%"),
        Register("conductivity", 0x0002, "u16", 0.0001, "S/m"),
        Register("salinity", 0x0003, "u16", 0.001, "kg/m3"),
        Register("total_dissolved_solids", 0x0004, "u16", 0.001, "kg/m3"),
        Register("permittivity", 0x0005, "u16", 0.01, "/"),
    ],
    function=READ_HOLDING_REGISTERS,
    description="RS-485 soil probe, Seeed 101990667 / Womaster ES103 (S-Soil MT-02 type), FC03",
)

# DFRobot SEN0492 RS-485 ultrasonic level sensor: address 0x50, FC03 0x0034 distance mm.
LEVEL = RegisterMap(
    "level",
    [Register("distance", 0x0034, "u16", 0.001, "m")],
    function=READ_HOLDING_REGISTERS,
    address=0x50,
    description="RS-485 ultrasonic level sensor, DFRobot SEN0492 (address 0x50), FC03",
)

# DFRobot SEN0310 (URM14 type): address 0x0B, 0x05 distance (1 cm), 0x06 temperature 0.1 degC.
LEVEL_SEN0310 = RegisterMap(
    "level_sen0310",
    [
        Register("distance", 0x0005, "u16", 0.01, "m"),
        Register("temperature", 0x0006, "s16", 0.1, "Cel"),
    ],
    function=READ_HOLDING_REGISTERS,
    address=0x0B,
    description="RS-485 ultrasonic level sensor, DFRobot SEN0310 (address 0x0B), FC03",
)

# Endress+Hauser Micropilot FMR20 radar level transmitter (Modbus RTU; factory address 200,
# 9600 8E1): FC03 from 5000 (0x1388), big-endian floats: level (in the unit and with the
# empty calibration set in the device), distance from the sensor's reference point (m),
# signal strength (dB), electronics temperature (degC). Frames: docs/protocols/water-level.md.
FMR20 = RegisterMap(
    "fmr20",
    [
        Register("device_level", 0x1388, "f32", 1, "m"),
        Register("distance", 0x138A, "f32", 1, "m"),
        Register("signal", 0x138C, "f32", 1, "dB"),
        Register("temperature", 0x138E, "f32", 1, "Cel"),
    ],
    function=READ_HOLDING_REGISTERS,
    address=200,
    description="Endress+Hauser Micropilot FMR20 radar level (address 200), FC03 f32",
)

# KELLER Series 30 transmitters (PR-36XW, Acculevel; Modbus RTU, address 1 by default):
# FC03 from 0x0100, big-endian floats: P1 (bar; relative to the air for vented probes)
# and TOB1 (temperature of the pressure sensor, degC). bar -> Pa (x100000).
KELLER30 = RegisterMap(
    "keller30",
    [
        Register("pressure", 0x0100, "f32", 100000, "Pa"),
        Register("temperature", 0x0102, "f32", 1, "Cel"),
    ],
    function=READ_HOLDING_REGISTERS,
    address=1,
    description="KELLER Series 30 pressure / level transmitter (P1, TOB1), FC03 f32",
)

MAPS = {
    m.name: m for m in (SDM120, SDM630, SOIL, SOIL_ES103, LEVEL, LEVEL_SEN0310, FMR20, KELLER30)
}


def get_map(name: "str") -> "RegisterMap":
    """The register map called `name` (LocalProtocolError naming the known ones)."""
    found = MAPS.get(name.lower()) if isinstance(name, str) else None
    if found is None:
        raise LocalProtocolError(
            "unknown register map %r (known: %s)" % (name, ", ".join(sorted(MAPS)))
        )
    return found


__all__ = [
    "FMR20",
    "KELLER30",
    "LEVEL",
    "LEVEL_SEN0310",
    "MAPS",
    "SDM120",
    "SDM630",
    "SOIL",
    "SOIL_ES103",
    "get_map",
]
