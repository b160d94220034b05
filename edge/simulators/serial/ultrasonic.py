"""Ultrasonic level sensors in a waste bin: MaxBotix ASCII and A02YYUW binary (9600 8N1).

Both talk on their own, several times a second. The bin fills slowly between two
collections (the distance to the rubbish shrinks), with the jitter of a real echo.
"""

from __future__ import annotations

from typing import ClassVar, Unpack

from edge.simulators.serial._base import SimOptions, StreamSimulator
from edge.simulators.serial._link import LineFormat
from protocols import ultrasonic


class _BinLevel(StreamSimulator):
    default_line: ClassVar[LineFormat] = LineFormat(9600)
    model: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        *,
        empty_mm: int = 1200,
        full_mm: int = 300,
        fill_per_frame: float = 0.02,
        interval: float | None = None,
        **options: Unpack[SimOptions],
    ) -> None:
        super().__init__(name, interval=interval, **options)
        self.empty_mm = empty_mm
        self.full_mm = full_mm
        self.fill_per_frame = fill_per_frame
        self.distance_mm = float(empty_mm - 150)

    def _next_mm(self) -> int:
        self.distance_mm -= self.fill_per_frame
        if self.distance_mm <= self.full_mm:  # collected: empty again
            self.distance_mm = float(self.empty_mm - 50)
        return max(0, round(self.distance_mm + self.rng.gauss(0, 3)))

    def port_config(self, sensor_prefix: str | None = None) -> dict[str, object]:
        device: dict[str, object] = {
            "sensor": sensor_prefix or self.name.lower(),
            "model": self.model,
            "empty_mm": self.empty_mm,
            "full_mm": self.full_mm,
            "interval": 0,
        }
        return self._port("ultrasonic", [device])


class MaxBotixSimulator(_BinLevel):
    """An HRXL/HRLV-MaxSonar: ``R`` + 4 digits (mm) + CR, about 6 times a second."""

    kind: ClassVar[str] = "maxbotix"
    model: ClassVar[str] = "hrlv"
    default_interval: ClassVar[float] = 0.15

    def frame(self, bad_checksum: bool) -> bytes:
        data = ultrasonic.build_maxbotix(min(self._next_mm(), 4999), 4)
        if bad_checksum:  # no checksum in this format: a character hit by noise instead
            data = data[:2] + b"?" + data[3:]
        return data


class A02yyuwSimulator(_BinLevel):
    """A DFRobot A02YYUW: ``FF H L SUM`` (mm), every 100 ms."""

    kind: ClassVar[str] = "a02yyuw"
    model: ClassVar[str] = "a02yyuw"
    default_interval: ClassVar[float] = 0.1

    def frame(self, bad_checksum: bool) -> bytes:
        data = ultrasonic.build_a02(self._next_mm())
        if bad_checksum:
            data = data[:3] + bytes(((data[3] + 1) & 0xFF,))
        return data


__all__ = ["A02yyuwSimulator", "MaxBotixSimulator"]
