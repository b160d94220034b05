"""The value types every codec and the whole data path share.

- `Measurement`: what a codec decodes from a frame: a name, a value and a SenML unit.
  It knows nothing of sensor ids or time: the source that read the frame adds those.
- `Reading`: a measurement of one sensor at one time, as it travels the data path
  (buffer, uplink, hub). Timestamps are UTC milliseconds.

Plain classes with __slots__ (no dataclasses: MicroPython), compared by value.
"""

# Reading flags (bit field).
FLAG_HISTORICAL = 1  # sent from the backlog, not live
FLAG_ALARM = 2  # outranks bulk backlog
FLAG_ESTIMATED = 4  # derived or aggregated rather than sampled
# Set by the hub only (a gateway's own bits there are cleared on ingest; docs/hub.md):
FLAG_IMPLAUSIBLE_TIME = 8  # timestamp outside the plausible window: stored, never "latest"
FLAG_NOT_A_NUMBER = 16  # the value was NaN (SQLite would otherwise store it as NULL)
HUB_FLAGS = FLAG_IMPLAUSIBLE_TIME | FLAG_NOT_A_NUMBER


class Measurement:
    """A decoded value. `value` is int, float, str or bool; `unit` a SenML unit or None."""

    __slots__ = ("name", "unit", "value")

    def __init__(self, name: "str", value: "object", unit: "str | None" = None) -> "None":
        self.name = name
        self.value = value
        self.unit = unit

    def as_dict(self) -> "dict[str, object]":
        return {"name": self.name, "value": self.value, "unit": self.unit}

    def __eq__(self, other: "object") -> "bool":
        return (
            isinstance(other, Measurement)
            and self.name == other.name
            and self.value == other.value
            and self.unit == other.unit
        )

    def __repr__(self) -> "str":
        return "Measurement(%r, %r, %r)" % (self.name, self.value, self.unit)


class Reading:
    """One sensor's value at one time: sensor id, quantity, SenML unit, value, UTC ms, flags."""

    __slots__ = ("flags", "quantity", "sensor", "ts_ms", "unit", "value")

    def __init__(
        self,
        sensor: "str",
        quantity: "str",
        unit: "str | None",
        value: "object",
        ts_ms: "int",
        flags: "int" = 0,
    ) -> "None":
        self.sensor = sensor
        self.quantity = quantity
        self.unit = unit
        self.value = value
        self.ts_ms = ts_ms
        self.flags = flags

    def key(self) -> "tuple[str, str, str | None, object, int, int]":
        return (self.sensor, self.quantity, self.unit, self.value, self.ts_ms, self.flags)

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Reading) and self.key() == other.key()

    def __hash__(self) -> "int":
        return hash(self.key())

    def __repr__(self) -> "str":
        return "Reading(%r, %r, %r, %r, %r, %r)" % self.key()


__all__ = [
    "FLAG_ALARM",
    "FLAG_ESTIMATED",
    "FLAG_HISTORICAL",
    "FLAG_IMPLAUSIBLE_TIME",
    "FLAG_NOT_A_NUMBER",
    "HUB_FLAGS",
    "Measurement",
    "Reading",
]
