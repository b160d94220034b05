"""A marina's NMEA 0183 instrument at 4800 8N1: GGA, RMC, MWV, DPT, MTW and XDR each second.

A weather and depth station on a pontoon: fixed position (with GPS jitter), wind veering
and gusting, the tide moving the depth, water and air temperatures, pressure, humidity.
"""

from __future__ import annotations

import math
import time
from typing import ClassVar, Unpack

from edge.simulators.serial._base import SimOptions, StreamSimulator
from edge.simulators.serial._link import LineFormat
from protocols import nmea

_LAT = 46.1503  # La Rochelle, Vieux-Port
_LON = -1.1532


def _latlon(value: float, positive: str, negative: str, width: int) -> tuple[str, str]:
    hemisphere = positive if value >= 0 else negative
    value = abs(value)
    degrees = int(value)
    minutes = (value - degrees) * 60
    return f"{degrees:0{width}d}{minutes:07.4f}", hemisphere


class NmeaSimulator(StreamSimulator):
    """One burst of sentences per `interval` (1 s), talker `II` (GPS sentences `GP`)."""

    kind: ClassVar[str] = "nmea"
    default_line: ClassVar[LineFormat] = LineFormat(nmea.BAUD_RATE)
    default_interval: ClassVar[float] = 1.0

    def __init__(
        self,
        name: str = "ttyNMEA0",
        *,
        interval: float | None = None,
        **options: Unpack[SimOptions],
    ) -> None:
        super().__init__(name, interval=interval, **options)
        self.wind_angle = 220.0
        self.wind_speed = 9.0  # knots

    def sentences(self) -> list[bytes]:
        t = self.elapsed()
        self.wind_angle = (self.wind_angle + self.rng.gauss(0, 4)) % 360
        self.wind_speed = min(max(self.wind_speed + self.rng.gauss(0, 0.6), 0.0), 45.0)
        depth = 3.2 + 1.8 * math.sin(2 * math.pi * t / 44700)  # semi-diurnal tide
        now = time.gmtime()
        hhmmss = time.strftime("%H%M%S.00", now)
        ddmmyy = time.strftime("%d%m%y", now)
        lat, ns = _latlon(_LAT + self.rng.gauss(0, 0.000004), "N", "S", 2)
        lon, ew = _latlon(_LON + self.rng.gauss(0, 0.000004), "E", "W", 3)
        return [
            nmea.format_sentence(
                "GPGGA",
                [hhmmss, lat, ns, lon, ew, "1", "08", "0.9", "4.2", "M", "49.6", "M", "", ""],
            ),
            nmea.format_sentence(
                "GPRMC",
                [hhmmss, "A", lat, ns, lon, ew, "0.0", "", ddmmyy, "1.1", "W", "A"],
            ),
            nmea.format_sentence(
                "IIMWV", [f"{self.wind_angle:.1f}", "R", f"{self.wind_speed:.1f}", "N", "A"]
            ),
            nmea.format_sentence("IIDPT", [f"{depth:.1f}", "0.5", ""]),
            nmea.format_sentence("IIMTW", [f"{14.5 + self.rng.gauss(0, 0.05):.1f}", "C"]),
            nmea.format_sentence(
                "IIXDR",
                [
                    "C",
                    f"{17.0 + self.rng.gauss(0, 0.1):.1f}",
                    "C",
                    "AIR",
                    "P",
                    f"{1.01325 + self.rng.gauss(0, 0.0001):.5f}",
                    "B",
                    "BARO",
                    "H",
                    f"{72 + self.rng.gauss(0, 0.5):.1f}",
                    "P",
                    "HUM",
                ],
            ),
        ]

    def frame(self, bad_checksum: bool) -> bytes:
        lines = self.sentences()
        if bad_checksum:
            line = lines[2]  # MWV
            star = line.rindex(b"*")
            wrong = (int(line[star + 1 : star + 3], 16) ^ 0x5A) & 0xFF
            lines[2] = line[: star + 1] + f"{wrong:02X}".encode() + b"\r\n"
        return b"".join(lines)

    def port_config(self, sensor_prefix: str | None = None) -> dict[str, object]:
        return self._port("nmea", [{"sensor": sensor_prefix or "nmea", "interval": 0}])


__all__ = ["NmeaSimulator"]
