"""Water level above a reference datum, from radar and pressure level transmitters.

A canal or tide gauge measures one of three things, and the level follows from where the
sensor sits relative to the reference datum of the waterway (the canal's reference level,
a chart datum, or a national levelling datum such as NGF-IGN69):

- ``distance`` (a radar or ultrasonic sensor above the water, looking down): ``datum`` is
  the elevation of the sensor's reference point (its flange or antenna face) above the
  reference datum, and ``level = datum - distance``;
- ``depth`` (a submerged probe that reports the water column above it): ``datum`` is the
  elevation of the probe's membrane, and ``level = datum + depth``;
- ``pressure`` (a submerged probe that reports the gauge pressure of the water column,
  in Pa, vented to the air through its cable): ``depth = pressure / (density x g)`` with
  ``g = 9.80665 m/s2`` and the configured water ``density`` (1000 kg/m3 fresh water; about
  1025 for sea water), then as ``depth``.

`Datum(elevation, source, density)` does that on a device's measurements and adds a
``level`` measurement in metres, rounded to the millimetre. A distance of 0 or less gives
no level (a transmitter still warming up reads zeros). The models of `MODELS` say
which measurement each known transmitter gives and how it is read (a Modbus register map
of protocols.modbus, or an SDI-12 measurement command and the order of its values).

Pure and MicroPython-compatible, like every codec. See docs/protocols/water-level.md.
"""

from protocols.errors import LocalProtocolError
from protocols.reading import Measurement

DISTANCE = "distance"
DEPTH = "depth"
PRESSURE = "pressure"
SOURCES = (DISTANCE, DEPTH, PRESSURE)
GRAVITY = 9.80665  # m/s2, standard gravity
FRESH_WATER = 1000.0  # kg/m3
MAX_ABS_METRES = 10000.0

# model -> (bus, how it is read, level source, description)
# bus "modbus": how = the register map name in protocols.modbus.MAPS;
# bus "sdi12": how = (measurement command, names of the values in order, as
# protocols.sdi12.parse_names reads them).
MODELS = {
    "fmr20": (
        "modbus",
        "fmr20",
        DISTANCE,
        "Endress+Hauser Micropilot FMR20 radar (Modbus RTU, address 200, 9600 8E1)",
    ),
    "keller30": (
        "modbus",
        "keller30",
        PRESSURE,
        "KELLER Series 30 / 36XW / Acculevel pressure transmitter (Modbus RTU, vented)",
    ),
    "ott_pls": (
        "sdi12",
        ("M", "depth:m,temperature:Cel"),
        DEPTH,
        "OTT PLS pressure probe (SDI-12; water column in m, compensated by the probe)",
    ),
    "vegapuls_c21": (
        "sdi12",
        ("M", "stage:m,distance:m,temperature:Cel,reliability:dB,error_code"),
        DISTANCE,
        "VEGAPULS C 21 radar (SDI-12)",
    ),
}


# SDI-12 identification (aI!: 8-character vendor, 6-character model) -> model name: the
# OTT PLS answers "OTT HACH" + "PLS000" (its operating instructions, chapter 6; the PLS 500
# "OTTHYDRO" + "PLS500"); VEGA's C 21 names itself with vendor "VEGA".
IDENTIFICATIONS = (
    ("OTT", "PLS", "ott_pls"),
    ("VEGA", "", "vegapuls_c21"),
)


def model_from_identification(vendor: "str", model_id: "str") -> "str | None":
    """The level model an SDI-12 sensor's identification names (vendor and model fields
    of its aI! answer), or None when it is not a known level transmitter."""
    vendor = vendor.replace(" ", "").upper()
    model_id = model_id.strip().upper()
    for vendor_prefix, model_prefix, name in IDENTIFICATIONS:
        if vendor.startswith(vendor_prefix) and model_id.startswith(model_prefix):
            return name
    return None


def model(name: "str") -> "tuple[str, object, str, str]":
    """The entry of MODELS called `name` (LocalProtocolError naming the known ones)."""
    found = MODELS.get(name) if isinstance(name, str) else None
    if found is None:
        raise LocalProtocolError(
            "unknown level transmitter %r (known: %s)" % (name, ", ".join(sorted(MODELS)))
        )
    return found


def _number(name: "str", value: "object") -> "float":
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value - value != 0:
        raise LocalProtocolError("%s must be a finite number, got %r" % (name, value))
    return float(value)


class Datum:
    """Where the sensor sits: `elevation` (m above the reference datum) of its reference
    point, which measurement gives the level (`source`), the water `density` (kg/m3, for
    a pressure source)."""

    __slots__ = ("density", "elevation", "source")

    def __init__(self, elevation: "float", source: "str", density: "float" = FRESH_WATER) -> "None":
        elevation = _number("datum", elevation)
        if abs(elevation) > MAX_ABS_METRES:
            raise LocalProtocolError("datum must be within +-10000 m, got %r" % (elevation,))
        if source not in SOURCES:
            raise LocalProtocolError(
                "level source must be one of %s, got %r" % (", ".join(SOURCES), source)
            )
        density = _number("density", density)
        if not 500.0 <= density <= 2000.0:
            raise LocalProtocolError("density must be 500..2000 kg/m3, got %r" % (density,))
        self.elevation = elevation
        self.source = source
        self.density = density

    def level_from(self, value: "float") -> "float":
        """The level (m above the datum) for a value of the source measurement."""
        if self.source == DISTANCE:
            level = self.elevation - value
        elif self.source == DEPTH:
            level = self.elevation + value
        else:
            level = self.elevation + value / (self.density * GRAVITY)
        return round(level, 3)

    def level(self, measurements: "list[Measurement]") -> "Measurement | None":
        """A ``level`` measurement (m) from the source among `measurements`, or None when
        the source is not there or not a number."""
        for m in measurements:
            if m.name != self.source:
                continue
            value = m.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            if value - value != 0:  # NaN or infinite
                return None
            if self.source == DISTANCE and value <= 0:
                # no radar measures 0 (its blind zone): a transmitter still warming up
                # (the FMR20 reads zeros for its first seconds), not water at the antenna
                return None
            return Measurement("level", self.level_from(float(value)), "m")
        return None

    def __repr__(self) -> "str":
        return "Datum(%r, %r, %r)" % (self.elevation, self.source, self.density)


__all__ = [
    "DEPTH",
    "DISTANCE",
    "FRESH_WATER",
    "GRAVITY",
    "IDENTIFICATIONS",
    "MODELS",
    "PRESSURE",
    "SOURCES",
    "Datum",
    "model",
    "model_from_identification",
]
