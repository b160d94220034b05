"""An SDI-12 v1.3 soil probe (1200 7E1): moisture, temperature, conductivity.

It sleeps until a break, stays awake 100 ms after the last character on the line, and
answers the commands addressed to it: ``a!``, ``?!``, ``aI!``, ``aAb!``, ``aM!``/``aMn!``
(service request when the data are ready), ``aMC!`` (data with CRC), ``aC!``/``aCC!``
(concurrent: no service request), ``aV!``, ``aD0!``..``aD9!``, ``aR0!``/``aRC0!``.
Responses are built with `protocols.sdi12` (`format_measurement`, `format_data`, ...).

A pseudo-terminal carries no break: the simulator takes a NUL character as one, which is
what a UART reports for a break and what the recorder's ``nul`` wake-up sends (see
docs/serial.md).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import ClassVar, Unpack

from edge.simulators.serial._base import SerialSimulator, SimOptions
from edge.simulators.serial._link import LineFormat
from protocols import sdi12
from protocols.errors import RemoteProtocolError

WAKE_WINDOW = 0.1  # a sensor returns to standby after 100 ms of marking
RESPONSE_DELAY = 0.008  # a response starts within 15 ms of the command's stop bit

Value = int | float


class Sdi12Simulator(SerialSimulator):
    """One soil probe at `address`; `measure_time` seconds per measurement (announced
    rounded up to whole seconds, as ttt)."""

    kind: ClassVar[str] = "sdi12"
    default_line: ClassVar[LineFormat] = LineFormat(sdi12.BAUD_RATE, 7, "E", 1)
    identity: ClassVar[tuple[str, str, str, str]] = ("ESTRAN", "SOIL01", "100", "SN0042")
    values_count: ClassVar[int] = 3  # values of aM! (sample(0))

    def __init__(
        self,
        name: str = "ttySDI12-0",
        *,
        address: str = "0",
        measure_time: float = 1.0,
        **options: Unpack[SimOptions],
    ) -> None:
        super().__init__(name, **options)
        self.address = address
        self.measure_time = measure_time
        self._awake_until = 0.0
        self._ready_at = math.inf
        self._service_request = False
        self._measuring_crc = False
        self._measuring_index = 0
        self._data: list[Value] | None = None
        self._data_crc = False
        self._moisture = 28.0
        self.commands: list[bytes] = []  # what it understood, for tests and training

    # -- the probe's physics -----------------------------------------------------------------

    def sample(self, index: int) -> list[Value]:
        if index == 1:  # aM1!: supply voltage
            return [round(12.1 + self.rng.gauss(0, 0.05), 2)]
        self._moisture = min(max(self._moisture + self.rng.gauss(0, 0.1), 5.0), 55.0)
        temperature = 13.5 + 3 * math.sin(self.elapsed() / 900) + self.rng.gauss(0, 0.05)
        conductivity = 0.02 + self._moisture / 1200
        return [round(self._moisture, 1), round(temperature, 2), round(conductivity, 4)]

    # -- the line --------------------------------------------------------------------------

    async def _serve(self) -> None:
        line = bytearray()
        while True:
            now = time.monotonic()
            wait = self._ready_at - now if self._ready_at < math.inf else 3600.0
            chunk = await self._link.receive(max(wait, 0.0))
            now = time.monotonic()
            if now >= self._ready_at:
                self._ready_at = math.inf
                self._data = self.sample(self._measuring_index)
                self._data_crc = self._measuring_crc
                if self._service_request and not self.silent:
                    await self._respond((self.address + "\r\n").encode())
            for b in chunk:
                if b == 0:  # a break
                    line.clear()
                    self._awake_until = time.monotonic() + WAKE_WINDOW
                    continue
                if time.monotonic() > self._awake_until:
                    self.stats["ignored"] += 1  # asleep: only a break wakes us
                    continue
                self._awake_until = time.monotonic() + WAKE_WINDOW
                line.append(b)
                if b == ord("!"):
                    command, line = bytes(line), bytearray()
                    await self._command(command)
                elif len(line) > sdi12.MAX_LINE:
                    line.clear()

    async def _respond(self, data: bytes, values: bool = False) -> None:
        await asyncio.sleep(RESPONSE_DELAY)
        if values and self.take_bad_checksum():  # faults hit data lines, where a CRC is
            data = _spoil(data)
        self.stats["answers"] += 1
        await self.transmit(data)
        self._awake_until = time.monotonic() + WAKE_WINDOW

    async def _command(self, raw: bytes) -> None:
        try:
            cmd = sdi12.parse_command(raw)
        except RemoteProtocolError:
            self.stats["ignored"] += 1
            return
        if cmd.address not in (self.address, "?") or self.silent:
            return
        self.commands.append(raw)
        a = self.address
        if self._ready_at < math.inf and cmd.kind != sdi12.DATA:
            self._ready_at = math.inf  # a new command aborts the measurement in progress
        reply: bytes | None = None
        kind = cmd.kind
        if kind == sdi12.ACKNOWLEDGE:
            reply = (a + "\r\n").encode()
        elif kind == sdi12.IDENTIFY:
            reply = sdi12.format_identification(a, *self.identity)
        elif kind == sdi12.CHANGE_ADDRESS and cmd.new_address is not None:
            self.address = cmd.new_address
            reply = (self.address + "\r\n").encode()
        elif kind in (sdi12.MEASURE, sdi12.CONCURRENT, sdi12.VERIFY):
            count = 1 if kind == sdi12.VERIFY or cmd.index == 1 else self.values_count
            seconds = math.ceil(self.measure_time)
            self._measuring_index = 9 if kind == sdi12.VERIFY else cmd.index
            self._measuring_crc = cmd.crc
            self._service_request = kind != sdi12.CONCURRENT
            self._data = None
            self._ready_at = time.monotonic() + self.measure_time
            reply = sdi12.format_measurement(a, seconds, count, kind == sdi12.CONCURRENT)
        elif kind == sdi12.DATA:
            values: list[Value] = []
            if self._data is not None and cmd.index == 0:
                values = [0] if self._measuring_index == 9 else self._data
            reply = sdi12.format_data(a, list(values), self._data_crc and bool(values))
        elif kind == sdi12.CONTINUOUS:
            reply = sdi12.format_data(a, list(self.sample(0)), cmd.crc)
        if reply is not None:
            await self._respond(reply, kind in (sdi12.DATA, sdi12.CONTINUOUS))

    def port_config(self, sensor_prefix: str | None = None) -> dict[str, object]:
        device: dict[str, object] = {
            "sensor": sensor_prefix or f"soil-sdi12-{self.address}",
            "address": self.address,
            "measurement": "M",
            "names": "moisture:%,temperature:Cel,conductivity:S/m",
            "interval": 60.0,
        }
        return self._port("sdi12", [device])


def _spoil(data: bytes) -> bytes:
    """A response with a wrong CRC (or, without CRC, a character hit by noise)."""
    body = data[:-2]
    if len(body) >= 4 and all(0x40 <= c <= 0x7F for c in body[-3:]):
        return body[:-1] + bytes((0x40 | ((body[-1] + 1) & 0x3F),)) + b"\r\n"
    if len(body) >= 2:
        return body[:1] + b"#" + body[2:] + b"\r\n"
    return data


__all__ = ["Sdi12Simulator"]
