"""Wired M-Bus meters on one bus (2400 8E1): a water meter and a heat meter.

Each meter answers, at its primary address, at the test address 0xFE and (once selected
by secondary address) at 0xFD:

- SND_NKE: E5, and the link is reset (the next REQ_UD2 starts a new readout);
- SND_UD with CI 0x52 (secondary selection, 'F' wildcards): E5 from the meter that
  matches, which then listens on 0xFD; the others deselect;
- SND_UD with CI 0x51 ``01 7A a`` (new primary address) or CI 0x50 (application reset): E5;
- REQ_UD2: RSP_UD, a long frame with CI 0x72 (variable data, long header). The heat meter
  splits its data over two telegrams: the first ends with DIF 0x1F (more records follow);
  a REQ_UD2 with the FCB toggled gets the next telegram, one with the same FCB gets the
  last one again (the master lost it).

Several meters answering at once (0xFE on a bus of two) collide: the master gets the
wire-AND of their frames, as on a real bus where a space from any slave wins. The frames
are built with `protocols.mbus` (`long_frame`, `ack`); the variable data records (DIF, VIF,
little-endian data) are written here from EN 13757-3, as the codec only decodes them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import ClassVar, Unpack

from edge.simulators.serial._base import SerialSimulator, SimOptions
from edge.simulators.serial._link import LineFormat
from protocols import mbus
from protocols.errors import RemoteProtocolError
from protocols.mbus.frames import (
    ADDRESS_BROADCAST,
    ADDRESS_SECONDARY,
    ADDRESS_TEST,
    FCB,
    KIND_LONG,
    KIND_SHORT,
    REQ_UD2,
    RSP_UD,
    SND_NKE,
    SND_UD,
)
from protocols.mbus.telegram import (
    CI_APPLICATION_RESET,
    CI_DATA_SEND,
    CI_SELECT,
    CI_VARIABLE_LONG,
)

MEDIUM_HEAT = 0x04
MEDIUM_WATER = 0x07
DIF_MORE = 0x1F

Gauss = Callable[[float, float], float]


def manufacturer_bytes(code: str) -> bytes:
    """EN 13757-3 manufacturer id: three letters packed 5 bits each, little endian."""
    value = ((ord(code[0]) - 64) << 10) | ((ord(code[1]) - 64) << 5) | (ord(code[2]) - 64)
    return value.to_bytes(2, "little")


def bcd_id(ident: int) -> bytes:
    """An 8-digit identification number, BCD, least significant byte first."""
    text = f"{ident:08d}"
    return bytes(int(text[i : i + 2], 16) for i in (6, 4, 2, 0))


def date_time_f(t: time.struct_time) -> bytes:
    """Type F date and time (4 bytes)."""
    year = t.tm_year % 100
    return bytes(
        (
            t.tm_min & 0x3F,
            t.tm_hour & 0x1F,
            (t.tm_mday & 0x1F) | ((year & 0x07) << 5),
            (t.tm_mon & 0x0F) | (((year >> 3) & 0x0F) << 4),
        )
    )


def record(dif: int, vif: int, value: int, size: int) -> bytes:
    return bytes((dif, vif)) + (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


class MbusMeter:
    """One meter: primary `address` (0..250), 8-digit `ident`, manufacturer, medium."""

    kind: ClassVar[str] = "meter"
    medium: ClassVar[int] = 0

    def __init__(
        self, address: int, ident: int, manufacturer: str = "ESR", version: int = 1
    ) -> None:
        if not 0 <= address <= 250:
            raise ValueError("an M-Bus primary address is 0..250")
        self.address = address
        self.ident = ident
        self.manufacturer = manufacturer
        self.version = version
        self.selected = False
        self.access = 0
        self.index = 0
        self.last_fcb: bool | None = None
        self.last_reply: bytes | None = None
        self._last = time.monotonic()

    @property
    def secondary(self) -> str:
        """The 16-hex-digit secondary address: id, manufacturer, version, medium."""
        man = int.from_bytes(manufacturer_bytes(self.manufacturer), "little")
        return f"{self.ident:08d}{man:04X}{self.version:02X}{self.medium:02X}"

    def matches(self, selection: bytes) -> bool:
        """Whether an 8-byte secondary selection (with F wildcards) designates this meter."""
        mine = (
            bcd_id(self.ident)
            + manufacturer_bytes(self.manufacturer)
            + bytes((self.version, self.medium))
        )
        for i, (want, have) in enumerate(zip(selection, mine, strict=True)):
            if i < 4:  # BCD digits: an F nibble is a wildcard
                for shift in (0, 4):
                    nibble = (want >> shift) & 0x0F
                    if nibble != 0x0F and nibble != (have >> shift) & 0x0F:
                        return False
            elif want != 0xFF and want != have:
                return False
        return True

    def reset_link(self) -> None:
        self.index = 0
        self.last_fcb = None
        self.last_reply = None

    def telegrams(self) -> list[bytes]:
        """The variable data records of each telegram of one readout."""
        raise NotImplementedError

    def advance(self, gauss: Gauss) -> None:
        raise NotImplementedError

    def answer_req_ud2(self, fcb: bool, gauss: Gauss) -> bytes:
        if self.last_reply is not None and self.last_fcb is not None and fcb == self.last_fcb:
            return self.last_reply  # same FCB: the master lost our answer; send it again
        if self.last_reply is not None:
            self.index += 1
        if self.index >= len(self.telegrams()) or self.last_reply is None:
            self.index = 0
        if self.index == 0:
            self.advance(gauss)
        self.access = (self.access + 1) & 0xFF
        header = (
            bcd_id(self.ident)
            + manufacturer_bytes(self.manufacturer)
            + bytes((self.version, self.medium, self.access, 0x00, 0x00, 0x00))
        )
        data = header + self.telegrams()[self.index]
        reply = mbus.long_frame(RSP_UD, self.address, CI_VARIABLE_LONG, data).encode()
        self.last_fcb = fcb
        self.last_reply = reply
        return reply

    def port_device(self, prefix: str, secondary: bool) -> dict[str, object]:
        return {
            "sensor": f"{prefix}-{self.kind}-{self.ident}",
            "address": self.secondary if secondary else self.address,
            "interval": 30.0,
        }


class WaterMeter(MbusMeter):
    """Volume (litres), flow, water temperature, date, last due-date volume. One telegram."""

    kind: ClassVar[str] = "water"
    medium: ClassVar[int] = MEDIUM_WATER

    def __init__(
        self, address: int = 5, ident: int = 12345678, manufacturer: str = "ESR", version: int = 1
    ) -> None:
        super().__init__(address, ident, manufacturer, version)
        self.volume_l = 154_321.0
        self.flow_lh = 0.0

    def advance(self, gauss: Gauss) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        hour = time.localtime().tm_hour
        base = 300.0 if 6 <= hour <= 22 else 20.0
        self.flow_lh = max(0.0, base + gauss(0, 80))
        self.volume_l += self.flow_lh * dt / 3600

    def telegrams(self) -> list[bytes]:
        return [
            record(0x04, 0x13, int(self.volume_l), 4)  # volume, litres
            + record(0x04, 0x3B, int(self.flow_lh), 4)  # volume flow, l/h
            + record(0x02, 0x5A, 112, 2)  # flow temperature, 0.1 degC
            + bytes((0x04, 0x6D))
            + date_time_f(time.localtime())
            + record(0x44, 0x13, int(self.volume_l) - 9_876, 4)  # volume at the due date
        ]


class HeatMeter(MbusMeter):
    """Energy, volume, power, flow; then temperatures and history in a second telegram."""

    kind: ClassVar[str] = "heat"
    medium: ClassVar[int] = MEDIUM_HEAT

    def __init__(
        self,
        address: int = 6,
        ident: int = 87654321,
        manufacturer: str = "ESR",
        version: int = 1,
        *,
        multi_telegram: bool = True,
    ) -> None:
        super().__init__(address, ident, manufacturer, version)
        self.multi_telegram = multi_telegram
        self.energy_kwh = 48_215.0
        self.volume_l = 1_234_567.0
        self.flow_c = 70.0
        self.return_c = 50.0
        self.flow_lh = 900.0
        self.power_w = 1.163 * self.flow_lh * (self.flow_c - self.return_c)

    def advance(self, gauss: Gauss) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        self.flow_c = min(max(self.flow_c + gauss(0, 0.2), 55.0), 85.0)
        self.return_c = min(max(self.flow_c - 20 + gauss(0, 0.5), 30.0), self.flow_c - 2)
        self.flow_lh = max(100.0, self.flow_lh + gauss(0, 15))
        # P = rho * c * q * dT: 1.16 Wh per litre and kelvin
        self.power_w = 1.163 * self.flow_lh * (self.flow_c - self.return_c)
        self.energy_kwh += self.power_w * dt / 3_600_000
        self.volume_l += self.flow_lh * dt / 3600

    def telegrams(self) -> list[bytes]:
        power = int(self.power_w)
        first = (
            record(0x04, 0x06, int(self.energy_kwh), 4)  # energy, kWh
            + record(0x04, 0x13, int(self.volume_l), 4)  # volume, litres
            + record(0x04, 0x2B, power, 4)  # power, W
            + record(0x04, 0x3B, int(self.flow_lh), 4)  # volume flow, l/h
        )
        second = (
            record(0x02, 0x59, round(self.flow_c * 100), 2)  # flow temperature, 0.01 degC
            + record(0x02, 0x5D, round(self.return_c * 100), 2)  # return temperature
            + record(0x02, 0x61, round((self.flow_c - self.return_c) * 100), 2)  # dT, 0.01 K
            + record(0x44, 0x06, int(self.energy_kwh) - 3_210, 4)  # energy at the due date
            + bytes((0x04, 0x6D))
            + date_time_f(time.localtime())
        )
        if not self.multi_telegram:
            return [first + second]
        return [first + bytes((DIF_MORE,)), second]


def _collide(frames: list[bytes]) -> bytes:
    """What the master hears when several slaves answer at once: a space from any wins."""
    length = max(len(f) for f in frames)
    out = bytearray(b"\xff" * length)
    for f in frames:
        for i, b in enumerate(f):
            out[i] &= b
    return bytes(out)


class MbusSimulator(SerialSimulator):
    """A bus of `meters` (default: a water meter at 5 and a heat meter at 6), 2400 8E1."""

    kind: ClassVar[str] = "mbus"
    default_line: ClassVar[LineFormat] = LineFormat(2400, 8, "E", 1)

    def __init__(
        self,
        name: str = "ttyMBUS0",
        *,
        meters: Sequence[MbusMeter] | None = None,
        processing: float = 0.015,
        **options: Unpack[SimOptions],
    ) -> None:
        super().__init__(name, **options)
        self.meters = list(meters) if meters is not None else [WaterMeter(), HeatMeter()]
        self.processing = processing

    async def _serve(self) -> None:
        parser = mbus.FrameParser()
        while True:
            chunk = await self._link.receive(3600.0)
            if not chunk:
                continue
            parser.receive_data(chunk)
            while True:
                try:
                    event = parser.next_event()
                except RemoteProtocolError:
                    self.stats["ignored"] += 1
                    continue
                if not isinstance(event, mbus.Frame):
                    break
                await self._handle(event)

    def _targets(self, address: int) -> list[MbusMeter]:
        if address in (ADDRESS_TEST, ADDRESS_BROADCAST):
            return list(self.meters)
        if address == ADDRESS_SECONDARY:
            return [m for m in self.meters if m.selected]
        return [m for m in self.meters if m.address == address]

    async def _handle(self, frame: mbus.Frame) -> None:
        if not frame.from_master or self.silent:
            self.stats["ignored"] += 1
            return
        control = frame.control & ~FCB
        replies: list[bytes] = []
        if frame.kind == KIND_LONG and control == SND_UD and frame.ci == CI_SELECT:
            if frame.address == ADDRESS_SECONDARY and len(frame.data) == 8:
                for m in self.meters:
                    m.selected = m.matches(frame.data)
                    if m.selected:
                        replies.append(mbus.ack().encode())
        else:
            for meter in self._targets(frame.address):
                reply = self._answer(meter, frame, control)
                if reply is not None:
                    replies.append(reply)
        if not replies or frame.address == ADDRESS_BROADCAST:
            return
        await asyncio.sleep(self.processing)
        reply = replies[0] if len(replies) == 1 else _collide(replies)
        if len(reply) > 2 and self.take_bad_checksum():
            reply = reply[:-2] + bytes(((reply[-2] + 1) & 0xFF,)) + reply[-1:]
        self.stats["answers"] += 1
        await self.transmit(reply)

    def _answer(self, meter: MbusMeter, frame: mbus.Frame, control: int) -> bytes | None:
        if frame.kind == KIND_SHORT and control == SND_NKE:
            meter.reset_link()
            if frame.address == ADDRESS_SECONDARY:
                meter.selected = False
            return mbus.ack().encode()
        if frame.kind == KIND_SHORT and control == REQ_UD2:
            return meter.answer_req_ud2(bool(frame.control & FCB), self.rng.gauss)
        if frame.kind == KIND_LONG and control == SND_UD:
            if frame.ci == CI_DATA_SEND and frame.data[:2] == b"\x01\x7a" and len(frame.data) == 3:
                meter.address = frame.data[2]
                return mbus.ack().encode()
            if frame.ci == CI_APPLICATION_RESET:
                meter.reset_link()
                return mbus.ack().encode()
        self.stats["ignored"] += 1
        return None

    def port_config(
        self, sensor_prefix: str | None = None, *, secondary: bool = False
    ) -> dict[str, object]:
        prefix = sensor_prefix or self.name.lower()
        return self._port("mbus", [m.port_device(prefix, secondary) for m in self.meters])


__all__ = ["HeatMeter", "MbusMeter", "MbusSimulator", "WaterMeter"]
