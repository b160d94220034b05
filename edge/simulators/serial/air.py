"""Particulate-matter sensors of a street air-quality station, and an SDI-12 water-level probe.

- `PmsSimulator`: a Plantower PMS5003 (9600 8N1, 32-byte frames): active mode (a frame every
  `interval`, 1 s by default), passive mode (a frame on each read command), sleep and
  wake-up (no frames while asleep), the 8-byte replies to mode and sleep commands.
- `Sds011Simulator`: a Nova SDS011 (9600 8N1, 10-byte frames): active or query reporting,
  sleep and work, the working period (works `work` seconds, 30 by default, then sends its
  frame and sleeps `period x minute - work`), firmware and device id; every command gets the
  datasheet's reply. `minute` (60 s) shortens the duty cycle for tests only.
- `Sps30Simulator`: a Sensirion SPS30 over UART (115200 8N1, SHDLC): start/stop measurement,
  read measured values (new values once a second, "no new values" in between, state 0x43
  when not measuring), device information, version, status register, sleep and wake-up.
- `OttPlsSimulator`: an OTT PLS pressure probe on SDI-12 (aM! gives the water column above
  the probe in m and the water temperature), at a canal's tide.
- `VegapulsSimulator`: a VEGAPULS C 21 radar on SDI-12 (aM! gives stage, distance,
  temperature, reliability and error code), above the same canal.

A street's particles follow the traffic: a daily cycle with rush-hour peaks and noise.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from typing import ClassVar, Unpack

from edge.simulators.serial._base import SerialSimulator, SimOptions
from edge.simulators.serial._link import LineFormat
from edge.simulators.serial.modbus import WATER_MOUNT, WATER_PROBE, canal_level
from edge.simulators.serial.sdi12 import Sdi12Simulator
from protocols import pms, sds011, sps30
from protocols.errors import RemoteProtocolError

Value = int | float


class _Street:
    """PM2.5 in a street (ug/m3), slowly varying, with rush hours at 8:00 and 18:00."""

    def __init__(self, base: float) -> None:
        self.base = base
        self.drift = 0.0

    def pm25(self, rng_gauss: Callable[[float, float], float], hour: float) -> float:
        rush = 6.0 * math.exp(-(((hour - 8.0) / 1.5) ** 2)) + 8.0 * math.exp(
            -(((hour - 18.0) / 2.0) ** 2)
        )
        self.drift = min(max(self.drift + rng_gauss(0, 0.3), -4.0), 6.0)
        return max(0.5, self.base + rush + self.drift + rng_gauss(0, 0.6))


def _hour() -> float:
    t = time.gmtime()
    return t.tm_hour + t.tm_min / 60 + 1.0  # about local time in France


class PmsSimulator(SerialSimulator):
    """A Plantower PMS5003; see the module docstring."""

    kind: ClassVar[str] = "pms5003"
    default_line: ClassVar[LineFormat] = LineFormat(pms.BAUD_RATE)

    def __init__(
        self,
        name: str = "ttyPMS0",
        *,
        interval: float = 1.0,
        **options: Unpack[SimOptions],
    ) -> None:
        super().__init__(name, **options)
        self.interval = interval
        self.active = True
        self.asleep = False
        self.street = _Street(9.0)
        self.commands: list[tuple[int, int]] = []
        self.command_times: list[float] = []  # time.monotonic() of each of `commands`

    def words(self) -> list[int]:
        pm25 = self.street.pm25(self.rng.gauss, _hour())
        pm1 = pm25 * 0.68
        pm10 = pm25 * 1.45
        cf1 = [round(pm1), round(pm25), round(pm10)]  # equal to atmospheric below ~30
        atm = [round(pm1), round(pm25), round(pm10)]
        counts = [round(pm25 * c) for c in (160, 48, 9, 1.2, 0.35, 0.1)]
        return [*cf1, *atm, *counts, 0x9700]

    def frame(self) -> bytes:
        data = pms.build_frame(self.words())
        if self.take_bad_checksum():
            data = data[:-1] + bytes(((data[-1] + 1) & 0xFF,))
        return data

    async def _serve(self) -> None:
        buffer = bytearray()
        due = time.monotonic()
        while True:
            wait = due - time.monotonic() if self.active and not self.asleep else 3600.0
            chunk = await self._link.receive(max(wait, 0.0))
            if chunk:
                buffer += chunk
                del buffer[:-64]  # bounded: a command is 7 bytes
                await self._commands(buffer)
                continue
            if self.active and not self.asleep and time.monotonic() >= due:
                if not self.silent:
                    self.stats["frames"] += 1
                    await self.transmit(self.frame())
                due += self.interval
                if due < time.monotonic():
                    due = time.monotonic() + self.interval

    async def _commands(self, buffer: bytearray) -> None:
        """Take every complete 7-byte command (42 4D CMD DH DL CS CS) out of `buffer`."""
        while True:
            i = buffer.find(pms.START)
            if i < 0:
                del buffer[: max(len(buffer) - 1, 0)]
                return
            del buffer[:i]
            if len(buffer) < 7:
                return
            try:
                cmd, value = pms.parse_command(bytes(buffer[:7]))
            except RemoteProtocolError:
                self.stats["ignored"] += 1
                del buffer[:1]
                continue
            del buffer[:7]
            if self.silent:
                continue
            self.commands.append((cmd, value))
            self.command_times.append(time.monotonic())
            await asyncio.sleep(0.002)
            if cmd == pms.CMD_READ:
                if not self.active and not self.asleep:
                    self.stats["answers"] += 1
                    await self.transmit(self.frame())
                continue
            if cmd == pms.CMD_MODE:
                self.active = value == pms.MODE_ACTIVE
            elif cmd == pms.CMD_SLEEP:
                self.asleep = value == 0
            self.stats["answers"] += 1
            await self.transmit(pms.build_reply(cmd, value & 0xFF))

    def port_config(self, sensor_prefix: str | None = None) -> dict[str, object]:
        device: dict[str, object] = {
            "sensor": sensor_prefix or "air-pms",
            "model": "pms5003",
            "interval": 10.0,
        }
        return self._port("pms", [device])


class Sds011Simulator(SerialSimulator):
    """A Nova SDS011; see the module docstring."""

    kind: ClassVar[str] = "sds011"
    default_line: ClassVar[LineFormat] = LineFormat(sds011.BAUD_RATE)

    def __init__(
        self,
        name: str = "ttySDS0",
        *,
        period: int = 0,
        device_id: int = 0xA160,
        work: float = float(sds011.WORK_SECONDS),
        minute: float = 60.0,
        interval: float = 1.0,
        **options: Unpack[SimOptions],
    ) -> None:
        super().__init__(name, **options)
        if not 0 <= period <= sds011.MAX_PERIOD:
            raise ValueError("the working period is 0..30 minutes")
        self.period = period
        self.device_id = device_id
        self.work = work
        self.minute = minute
        self.interval = interval
        self.query_mode = False
        self.sleeping = False
        self.street = _Street(11.0)
        self.commands: list[int] = []
        self._cycle_start = time.monotonic()

    def data_frame(self) -> bytes:
        pm25 = self.street.pm25(self.rng.gauss, _hour())
        data = sds011.build_data(round(pm25 * 10), round(pm25 * 16.5), self.device_id)
        if self.take_bad_checksum():
            data = data[:8] + bytes(((data[8] + 1) & 0xFF,)) + data[9:]
        return data

    def _next_due(self, now: float) -> float:
        """When the next frame is due in active reporting (inf: never, asleep)."""
        if self.sleeping or self.query_mode:
            return math.inf
        if self.period == 0:
            return now  # the caller paces continuous frames by `interval`
        cycle = self.period * self.minute
        into = (now - self._cycle_start) % cycle
        frame_at = now - into + min(self.work, cycle)
        return frame_at if frame_at > now else frame_at + cycle

    async def _serve(self) -> None:
        stream = sds011.SdsStream(commands=True)
        last = 0.0
        while True:
            now = time.monotonic()
            due = self._next_due(now)
            if self.period == 0 and due < math.inf:
                due = max(due, last + self.interval)
            chunk = await self._link.receive(min(max(due - now, 0.0), 3600.0))
            if chunk:
                with contextlib.suppress(RemoteProtocolError):
                    stream.receive_data(chunk)
                while True:
                    try:
                        event = stream.next_event()
                    except RemoteProtocolError:
                        self.stats["ignored"] += 1
                        continue
                    if not isinstance(event, sds011.SdsFrame):
                        break
                    if event.kind == sds011.COMMAND:
                        await self._command(event)
                continue
            now = time.monotonic()
            if due <= now and not self.silent:
                self.stats["frames"] += 1
                last = now
                await self.transmit(self.data_frame())
                if self.period:
                    await asyncio.sleep(0.01)  # past this cycle's frame time

    async def _command(self, frame: sds011.SdsFrame) -> None:
        if frame.device_id not in (sds011.ANY_DEVICE, self.device_id) or self.silent:
            return
        p = frame.payload
        cmd = p[0]
        self.commands.append(cmd)
        write = p[1] == 1
        reply: bytes | None = None
        if cmd == sds011.REPORTING_MODE:
            if write:
                self.query_mode = p[2] == 1
            reply = self._reply(cmd, 1 if write else 0, 1 if self.query_mode else 0)
        elif cmd == sds011.QUERY_DATA:
            if not self.sleeping:
                reply = self.data_frame()
        elif cmd == sds011.SLEEP_WORK:
            if write:
                self.sleeping = p[2] == 0
                self._cycle_start = time.monotonic()
            reply = self._reply(cmd, 1 if write else 0, 0 if self.sleeping else 1)
        elif cmd == sds011.WORKING_PERIOD:
            if write and p[2] <= sds011.MAX_PERIOD:
                self.period = p[2]
                self._cycle_start = time.monotonic()
            reply = self._reply(cmd, 1 if write else 0, self.period)
        elif cmd == sds011.FIRMWARE:
            reply = sds011.build_frame(sds011.REPLY, bytes((cmd, 15, 7, 10)), self.device_id)
        elif cmd == sds011.SET_DEVICE_ID:
            self.device_id = p[11] << 8 | p[12]
            reply = self._reply(cmd, 0, 0)
        if reply is not None:
            await asyncio.sleep(0.005)
            self.stats["answers"] += 1
            await self.transmit(reply)

    def _reply(self, cmd: int, write: int, value: int) -> bytes:
        return sds011.build_frame(sds011.REPLY, bytes((cmd, write, value, 0)), self.device_id)

    def port_config(self, sensor_prefix: str | None = None) -> dict[str, object]:
        device: dict[str, object] = {"sensor": sensor_prefix or "air-sds011", "interval": 0}
        if self.period:
            device["duty_cycle"] = self.period
        return self._port("sds011", [device])


class Sps30Simulator(SerialSimulator):
    """A Sensirion SPS30 on its UART; see the module docstring."""

    kind: ClassVar[str] = "sps30"
    default_line: ClassVar[LineFormat] = LineFormat(sps30.BAUD_RATE)

    def __init__(self, name: str = "ttySPS30", **options: Unpack[SimOptions]) -> None:
        super().__init__(name, **options)
        self.measuring = False
        self.floats = True
        self.asleep = False
        self.street = _Street(7.0)
        self._last_read = 0.0
        self._started_at = 0.0
        self.commands: list[int] = []

    def values(self) -> list[float]:
        pm25 = self.street.pm25(self.rng.gauss, _hour())
        pm1 = pm25 * 0.82
        mass = [pm1, pm25, pm25 * 1.08, pm25 * 1.12]
        number = [pm1 * 5.9, pm1 * 6.9, pm25 * 7.0, pm25 * 7.05, pm25 * 7.06]
        return [*mass, *number, 0.55 + self.rng.gauss(0, 0.03)]

    async def _serve(self) -> None:
        stream = sps30.ShdlcStream(sps30.MOSI)
        while True:
            chunk = await self._link.receive(3600.0)
            if not chunk:
                continue
            if self.asleep:  # the UART sleeps: a 0xFF wakes it, the rest is lost
                if 0xFF not in chunk:
                    self.stats["ignored"] += 1
                    continue
                chunk = chunk[chunk.index(0xFF) + 1 :]
                self.asleep = False
            with contextlib.suppress(RemoteProtocolError):
                stream.receive_data(chunk)
            while True:
                try:
                    event = stream.next_event()
                except RemoteProtocolError:
                    self.stats["ignored"] += 1
                    continue
                if not isinstance(event, sps30.ShdlcFrame):
                    break
                if not self.silent:
                    await self._answer(event)

    async def _answer(self, frame: sps30.ShdlcFrame) -> None:
        cmd = frame.command
        self.commands.append(cmd)
        state = 0
        data = b""
        now = time.monotonic()
        if cmd == sps30.START_MEASUREMENT:
            if frame.data[:1] != b"\x01" or frame.data[1:] not in (b"\x03", b"\x05"):
                state = 0x04
            elif self.measuring:
                state = 0x43
            else:
                self.measuring = True
                self.floats = frame.data[1:] == b"\x03"
                self._started_at = now
                self._last_read = now
        elif cmd == sps30.STOP_MEASUREMENT:
            self.measuring = False
        elif cmd == sps30.READ_VALUES:
            if not self.measuring:
                state = 0x43
            elif now - self._last_read >= 1.0 and now - self._started_at >= 1.0:
                self._last_read = now
                data = sps30.encode_values(self.values(), self.floats)
        elif cmd == sps30.DEVICE_INFO:
            what = frame.data[:1]
            info = {b"\x00": b"00080000", b"\x03": b"ESTRANSIM0000042"}.get(what)
            if info is None:
                state = 0x04
            else:
                data = info + b"\x00"
        elif cmd == sps30.VERSION:
            data = bytes((2, 3, 0, 7, 0, 2, 0))
        elif cmd == 0xD2:  # status register
            data = bytes(5)
        elif cmd == 0x10:  # sleep
            if self.measuring:
                state = 0x43
            else:
                self.asleep = True
        elif cmd == 0x11:  # wake-up (only reached when awake)
            pass
        elif cmd == 0xD3:  # reset
            self.measuring = False
        else:
            state = 0x02
        reply = sps30.miso(cmd, state, data)
        if self.take_bad_checksum():
            reply = reply[:-2] + bytes(((reply[-2] + 1) & 0xFF,)) + reply[-1:]
        await asyncio.sleep(0.002)
        self.stats["answers"] += 1
        await self.transmit(reply)

    def port_config(self, sensor_prefix: str | None = None) -> dict[str, object]:
        device: dict[str, object] = {"sensor": sensor_prefix or "air-sps30", "interval": 5.0}
        return self._port("sps30", [device])


class OttPlsSimulator(Sdi12Simulator):
    """An OTT PLS pressure probe (SDI-12): aM! answers the water column above the probe
    (m, compensated) and the water temperature (degC). Its membrane sits `WATER_PROBE` m
    relative to the canal's datum."""

    kind: ClassVar[str] = "ott-pls"
    identity: ClassVar[tuple[str, str, str, str]] = ("OTTHACH", "PLS000", "100", "123456")
    values_count: ClassVar[int] = 2

    def sample(self, index: int) -> list[Value]:
        if index == 1:  # aM1!: status of the last measurement (0: fine)
            return [0]
        water = canal_level(self.elapsed(), self.rng.gauss)
        return [round(water - WATER_PROBE, 3), round(13.0 + self.rng.gauss(0, 0.05), 1)]

    def port_config(self, sensor_prefix: str | None = None) -> dict[str, object]:
        device: dict[str, object] = {
            "sensor": sensor_prefix or f"level-sdi12-{self.address}",
            "address": self.address,
            "model": "ott_pls",
            "datum": WATER_PROBE,
            "interval": 60.0,
        }
        port = self._port("sdi12", [device])
        port["wake"] = "nul"  # a pty carries no break
        return port


class VegapulsSimulator(Sdi12Simulator):
    """A VEGAPULS C 21 radar (SDI-12) whose antenna sits `WATER_MOUNT` m above the canal's
    datum: aM! answers its own stage (its reference set to the datum), the distance to
    the water (m), its temperature (degC), the echo's reliability (dB) and an error code
    (0)."""

    kind: ClassVar[str] = "vegapuls-c21"
    identity: ClassVar[tuple[str, str, str, str]] = ("VEGA    ", "PS21  ", "100", "43210987")
    values_count: ClassVar[int] = 5

    def sample(self, index: int) -> list[Value]:
        if index == 1:
            return [0]
        water = canal_level(self.elapsed(), self.rng.gauss)
        distance = round(WATER_MOUNT - water, 3)
        return [
            round(WATER_MOUNT - distance, 3),
            distance,
            round(14.0 + self.rng.gauss(0, 0.1), 1),
            round(42.0 + self.rng.gauss(0, 0.5), 1),
            0,
        ]

    def port_config(self, sensor_prefix: str | None = None) -> dict[str, object]:
        device: dict[str, object] = {
            "sensor": sensor_prefix or f"level-radar-{self.address}",
            "address": self.address,
            "model": "vegapuls_c21",
            "datum": WATER_MOUNT,
            "interval": 60.0,
        }
        port = self._port("sdi12", [device])
        port["wake"] = "nul"  # a pty carries no break
        return port


__all__ = [
    "OttPlsSimulator",
    "PmsSimulator",
    "Sds011Simulator",
    "Sps30Simulator",
    "VegapulsSimulator",
]
