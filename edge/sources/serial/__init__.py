"""Serial sources: TIC, Modbus RTU, M-Bus, SDI-12, ultrasonic, NMEA and particulate-matter
sensors (PMS, SDS011, SPS30) over pyserial.

    from edge.sources.serial import SerialPortConfig, DeviceConfig, SerialSource

    config = SerialPortConfig(
        path="/dev/ttyUSB0",
        protocol="modbus",
        devices=(DeviceConfig("bldg-sdm630", address=1, register_map="sdm630"),),
    )
    source = SerialSource(config)        # an edge.sources.Source
    await source.run(sink)               # until cancelled

One source per port, several devices per bus. Passive streams (TIC, ultrasonic, NMEA) are
read as they come; masters (Modbus RTU, M-Bus, SDI-12) poll their devices. A port that
disappears is reported DOWN and reopened with backoff. `probe` finds what a port speaks.
See docs/serial.md.
"""

from edge.sources.serial._config import (
    DEFAULT_LINES,
    PROTOCOLS,
    DeviceConfig,
    LineSettings,
    SerialConfigError,
    SerialError,
    SerialPortConfig,
)
from edge.sources.serial._source import SerialSource
from edge.sources.serial._transport import PortLost, PortUnavailable, SerialTransport

__all__ = [
    "DEFAULT_LINES",
    "PROTOCOLS",
    "DeviceConfig",
    "LineSettings",
    "PortLost",
    "PortUnavailable",
    "SerialConfigError",
    "SerialError",
    "SerialPortConfig",
    "SerialSource",
    "SerialTransport",
]
