"""Modbus RTU slaves on one RS-485 bus: SDM120, SDM630, soil probes, level sensors, and the
water level transmitters of a canal gauge (FMR20 radar, KELLER Series 30 pressure probe).

The slaves answer FC03/FC04 reads of the registers of their map (`protocols.modbus` maps,
values encoded with `encode_value`), FC06/FC16 writes of their settings registers (bus
address, baud code), and exceptions where a real device would (01 unknown function, 02 an
address outside the map). Requests are framed as a slave frames them: complete frame by
length and CRC; a frame that does not check is dropped with everything until the line has
been silent for 3.5 characters. Answers start after the 3.5-character silence plus the
device's processing time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import ClassVar, Unpack

from edge.simulators.serial._base import SerialSimulator, SimOptions
from edge.simulators.serial._link import LineFormat
from protocols import modbus
from protocols.errors import RemoteProtocolError

SETTINGS_ADDRESS = 0x07D0  # soil probes and level sensors: bus address (FC06)
SETTINGS_BAUD = 0x07D1  # baud code 0: 2400, 1: 4800, 2: 9600
SDM_ADDRESS = 0x0014  # Eastron holding registers (f32): meter bus address
SDM_BAUD = 0x001C  # baud code

Gauss = Callable[[float, float], float]

TIDE_PERIOD = 44712.0  # s: the semi-diurnal lunar tide, 12 h 25 min
WATER_MEAN = 0.45  # m above the canal's datum
WATER_AMPLITUDE = 0.15  # m (a Mediterranean harbour: a small tide)
WATER_MOUNT = 3.2  # m: the radar's flange above the datum
WATER_PROBE = -1.5  # m: the pressure probe's membrane (below the datum)
WATER_DATUMS = {"fmr20": WATER_MOUNT, "keller30": WATER_PROBE}


def canal_level(t: float, gauss: Gauss) -> float:
    """The water level (m above the datum) at `t` seconds, with ripple."""
    tide = WATER_AMPLITUDE * math.sin(2 * math.pi * t / TIDE_PERIOD)
    return WATER_MEAN + tide + gauss(0, 0.004)


def request_length(frame: bytes) -> int | None:
    """The length of the request starting `frame` (None: not known yet, or -1: a function
    this bus does not frame, to be dropped with the rest of the line's noise)."""
    if len(frame) < 2:
        return None
    function = frame[1]
    if 1 <= function <= 6:
        return 8
    if function in (modbus.WRITE_MULTIPLE_COILS, modbus.WRITE_MULTIPLE_REGISTERS):
        return None if len(frame) < 7 else 9 + frame[6]
    return -1


class ModbusSlave:
    """One device on the bus: `address`, a register map (name or `RegisterMap`) and the
    physics that make its values evolve plausibly (picked by the map's name)."""

    def __init__(self, address: int, register_map: str | modbus.RegisterMap) -> None:
        if not 1 <= address <= 247:
            raise ValueError("a Modbus slave address is 1..247")
        self.address = address
        self.map = (
            register_map
            if isinstance(register_map, modbus.RegisterMap)
            else modbus.get_map(register_map)
        )
        self.values: dict[str, float] = {}
        self._last = 0.0
        self._t = 0.0
        self._energy_kwh = [1234.5, 2345.6, 3456.7]
        self._power = [420.0, 380.0, 510.0]
        self._moisture = 31.0
        self._distance = 0.9
        self._phase = float(address) * 997.0  # each gauge at its own point of the tide
        self.holding: dict[int, int] = {}
        if self.map.name.startswith("sdm"):
            for i, word in enumerate(modbus.encode_value(float(address), "f32")):
                self.holding[SDM_ADDRESS + i] = word
            for i, word in enumerate(modbus.encode_value(2.0, "f32")):
                self.holding[SDM_BAUD + i] = word
        else:
            self.holding[SETTINGS_ADDRESS] = address
            self.holding[SETTINGS_BAUD] = 2

    # -- physics ---------------------------------------------------------------------------

    def advance(self, gauss: Gauss, now: float) -> None:
        dt = 0.0 if self._last == 0.0 else now - self._last
        self._last = now
        self._t += dt
        name = self.map.name
        if name == "sdm120":
            self._sdm(gauss, dt, 1)
        elif name == "sdm630":
            self._sdm(gauss, dt, 3)
        elif name.startswith("soil"):
            self._soil(gauss)
        elif name.startswith("level"):
            self._level(gauss)
        elif name in ("fmr20", "keller30"):
            self._water(gauss, name)
        for r in self.map.registers:
            self.values.setdefault(r.name, 1.0)

    def _sdm(self, gauss: Gauss, dt: float, phases: int) -> None:
        v = self.values
        total_p = total_s = total_q = total_i = 0.0
        for n in range(phases):
            self._power[n] = min(max(self._power[n] + gauss(0, 25), 20.0), 7000.0)
            p = self._power[n]
            pf = 0.95 + 0.03 * math.sin(self._t / 50 + n)
            volts = 230.0 + 2.5 * math.sin(self._t / 30 + 2 * n) + gauss(0, 0.3)
            s = p / pf
            q = math.sqrt(max(s * s - p * p, 0.0))
            amps = s / volts
            self._energy_kwh[n] += p * dt / 3_600_000
            prefix = "" if phases == 1 else f"l{n + 1}_"
            v[prefix + "voltage"] = round(volts, 1)
            v[prefix + "current"] = round(amps, 3)
            v[prefix + "active_power"] = round(p, 1)
            v[prefix + "apparent_power"] = round(s, 1)
            v[prefix + "reactive_power"] = round(q, 1)
            v[prefix + "power_factor"] = round(pf, 3)
            v[prefix + "phase_angle"] = round(math.degrees(math.acos(pf)), 2)
            if phases == 3:
                v[prefix + "import_active_energy"] = round(self._energy_kwh[n] * 1000, 1)
                v[prefix + "export_active_energy"] = 0.0
                v[prefix + "total_active_energy"] = round(self._energy_kwh[n] * 1000, 1)
            total_p, total_s, total_q, total_i = (
                total_p + p,
                total_s + s,
                total_q + q,
                total_i + amps,
            )
        energy = sum(self._energy_kwh[:phases]) * 1000
        v["frequency"] = round(50.0 + gauss(0, 0.01), 2)
        v["import_active_energy"] = round(energy, 1)
        v["export_active_energy"] = 0.0
        v["import_reactive_energy"] = round(energy * 0.21, 1)
        v["export_reactive_energy"] = 0.0
        v["total_active_energy"] = round(energy, 1)
        v["total_reactive_energy"] = round(energy * 0.21, 1)
        if phases == 3:
            mean_v = sum(v[f"l{n + 1}_voltage"] for n in range(3)) / 3
            v["average_voltage"] = round(mean_v, 1)
            v["average_current"] = round(total_i / 3, 3)
            v["current_sum"] = round(total_i, 3)
            v["total_active_power"] = round(total_p, 1)
            v["total_apparent_power"] = round(total_s, 1)
            v["total_reactive_power"] = round(total_q, 1)
            v["total_power_factor"] = round(total_p / total_s, 3)
            v["total_phase_angle"] = round(math.degrees(math.acos(min(total_p / total_s, 1))), 2)
            v["total_power_demand"] = round(total_p, 1)
            v["max_total_power_demand"] = max(
                v.get("max_total_power_demand", 0.0), round(total_p, 1)
            )
            for a, b in ((1, 2), (2, 3), (3, 1)):
                v[f"l{a}_l{b}_voltage"] = round(mean_v * math.sqrt(3), 1)

    def _soil(self, gauss: Gauss) -> None:
        v = self.values
        self._moisture = min(max(self._moisture + gauss(0, 0.05), 5.0), 60.0)
        temperature = 14.0 + 4.0 * math.sin(self._t / 600) + gauss(0, 0.05)
        conductivity = 0.02 + self._moisture / 1000  # S/m
        v["moisture"] = round(self._moisture, 2)
        v["temperature"] = round(temperature, 2)
        v["conductivity"] = round(conductivity, 4)
        v["ph"] = 6.8
        v["salinity"] = round(conductivity * 0.55, 3)
        v["total_dissolved_solids"] = round(conductivity * 0.5, 3)
        v["permittivity"] = round(3 + self._moisture * 0.6, 2)

    def _level(self, gauss: Gauss) -> None:
        self._distance -= 0.0005
        if self._distance < 0.35:
            self._distance = 1.15
        self.values["distance"] = round(max(self._distance + gauss(0, 0.002), 0.0), 3)
        self.values["temperature"] = round(12.0 + gauss(0, 0.1), 1)

    def _water(self, gauss: Gauss, name: str) -> None:
        """A canal at the sea: the level above the canal's datum follows a small
        semi-diurnal tide (12 h 25 min) with wind ripple; the radar's flange sits
        `WATER_MOUNT` m above the datum, the pressure probe's membrane at `WATER_PROBE`."""
        water = canal_level(self._t + self._phase, gauss)
        v = self.values
        if name == "fmr20":
            v["distance"] = round(WATER_MOUNT - water, 4)
            v["device_level"] = round(water, 4)  # its empty calibration set to the datum
            v["signal"] = round(38.0 + gauss(0, 0.5), 2)
            v["temperature"] = round(14.0 + gauss(0, 0.1), 2)
        else:
            v["pressure"] = round((water - WATER_PROBE) * 1000.0 * 9.80665, 1)
            v["temperature"] = round(13.0 + gauss(0, 0.05), 2)

    # -- registers -------------------------------------------------------------------------

    def words(self, function: int) -> dict[int, int]:
        """Register address -> 16-bit word, for the registers `function` reads."""
        out: dict[int, int] = {}
        for r in self.map.registers:
            if r.function != function:
                continue
            raw: float | int = self.values.get(r.name, 0.0) / r.scale
            if r.type not in ("f32", "f64"):
                raw = round(raw)
            words = modbus.encode_value(raw, r.type, r.order or "ABCD", r.count)
            for i, word in enumerate(words):
                out[r.address + i] = word
        if function == modbus.READ_HOLDING_REGISTERS:
            out.update(self.holding)
        return out

    def apply_writes(self) -> None:
        """Settings that take effect after the answer (a new bus address)."""
        if self.map.name.startswith("sdm"):
            words = (self.holding[SDM_ADDRESS], self.holding[SDM_ADDRESS + 1])
            value = modbus.decode_value(words, "f32")
            if isinstance(value, float) and value.is_integer() and 1 <= value <= 247:
                self.address = int(value)
        elif 1 <= self.holding[SETTINGS_ADDRESS] <= 247:
            self.address = self.holding[SETTINGS_ADDRESS]


def _exception(address: int, function: int, code: int) -> bytes:
    return modbus.encode_frame(address, function | 0x80, bytes((code,)))


class ModbusSimulator(SerialSimulator):
    """A bus of `slaves`; default line 9600 8N1 (pass `line` for 19200 8E1 and the like)."""

    kind: ClassVar[str] = "modbus"
    default_line: ClassVar[LineFormat] = LineFormat(9600)

    def __init__(
        self,
        name: str = "ttyRS485-0",
        *,
        slaves: Sequence[ModbusSlave],
        processing: float = 0.004,
        **options: Unpack[SimOptions],
    ) -> None:
        super().__init__(name, **options)
        if not slaves:
            raise ValueError("a bus needs at least one slave")
        self.slaves = list(slaves)
        self.processing = processing

    def slave(self, address: int) -> ModbusSlave | None:
        for s in self.slaves:
            if s.address == address:
                return s
        return None

    async def _serve(self) -> None:
        silence = modbus.silent_interval(self.line.baud)
        buffer = bytearray()
        skipping = False
        while True:
            chunk = await self._link.receive(silence if buffer or skipping else 3600.0)
            if not chunk:  # 3.5 characters of silence: whatever is buffered is not a frame
                if buffer:
                    self.stats["ignored"] += 1
                buffer.clear()
                skipping = False
                continue
            if skipping:
                continue
            buffer += chunk
            while len(buffer) >= 2:
                length = request_length(bytes(buffer))
                if length is None:
                    break  # wait for the rest
                if length < 0 or length > modbus.MAX_ADU:
                    length = len(buffer)
                if len(buffer) < length:
                    break
                frame = bytes(buffer[:length])
                del buffer[:length]
                if not modbus.crc_ok(frame):
                    self.stats["ignored"] += 1
                    skipping = True
                    buffer.clear()
                    break
                await self._answer(frame, silence)

    async def _answer(self, frame: bytes, silence: float) -> None:
        address, function = frame[0], frame[1]
        slave = self.slave(address)
        if (slave is None and address != modbus.BROADCAST) or self.silent:
            self.stats["ignored"] += 1
            return
        try:
            request = modbus.parse_request(frame)
        except RemoteProtocolError:
            reply = _exception(address, function, 0x01)
        else:
            reply = self._execute(request)
        if address == modbus.BROADCAST:
            return
        await asyncio.sleep(silence + self.processing)
        if self.take_bad_checksum():
            reply = reply[:-1] + bytes(((reply[-1] + 1) & 0xFF,))
        self.stats["answers"] += 1
        await self.transmit(reply)
        for s in self.slaves:
            s.apply_writes()

    def _execute(self, request: modbus.Request) -> bytes:
        targets = self.slaves if request.broadcast else [self.slave(request.address)]
        reply = b""
        for slave in targets:
            if slave is not None:
                reply = self._execute_on(slave, request)
        return reply

    def _execute_on(self, slave: ModbusSlave, request: modbus.Request) -> bytes:
        fc = request.function
        start = request.start or 0
        count = request.count or 0
        address = request.address
        if fc in (modbus.READ_HOLDING_REGISTERS, modbus.READ_INPUT_REGISTERS):
            slave.advance(self.rng.gauss, time.monotonic())
            words = slave.words(fc)
            if any(a not in words for a in range(start, start + count)):
                return _exception(address, fc, 0x02)
            data = b"".join(words[a].to_bytes(2, "big") for a in range(start, start + count))
            return modbus.encode_frame(address, fc, bytes((len(data),)) + data)
        if fc in (modbus.WRITE_SINGLE_REGISTER, modbus.WRITE_MULTIPLE_REGISTERS):
            values = request.registers or ()
            if any(start + i not in slave.holding for i in range(len(values))):
                return _exception(address, fc, 0x02)
            for i, value in enumerate(values):
                slave.holding[start + i] = value
            if fc == modbus.WRITE_SINGLE_REGISTER:
                return request.encode()  # the echo
            body = start.to_bytes(2, "big") + count.to_bytes(2, "big")
            return modbus.encode_frame(address, fc, body)
        return _exception(address, fc, 0x01)

    def port_config(self, sensor_prefix: str | None = None) -> dict[str, object]:
        prefix = sensor_prefix or self.name.lower()
        devices: list[dict[str, object]] = []
        for s in self.slaves:
            device: dict[str, object] = {
                "sensor": f"{prefix}-{s.map.name}-{s.address}",
                "address": s.address,
                "map": s.map.name,
                "interval": 10.0,
            }
            datum = WATER_DATUMS.get(s.map.name)
            if datum is not None:  # where the simulated gauge sits: its level is the canal's
                device["datum"] = datum
            devices.append(device)
        return self._port("modbus", devices)


__all__ = ["ModbusSimulator", "ModbusSlave"]
