"""Water meters heard over the air, through a wireless M-Bus USB dongle on a pseudo-terminal.

The simulator is the dongle: it speaks its serial framing at its real line rate and hands
over, every `interval` seconds in turn, a telegram of each of its meters as the radio
would have received it:

- ``im871a``: IMST iM871A, 57600 8N1, HCI messages with RSSI and CRC; answers ping,
  get-device-info and set-config (link mode) requests;
- ``amb8465``: Amber AMB8465 (Metis-II), 9600 8N1, command mode with RSSI; answers the
  serial number and set-mode requests;
- ``rtlwmbus``: rtl-wmbus text lines, 115200 8N1.

Meters (`RadioMeter`), or real telegrams played back (`ReplayMeter`, `replay_meters(FILE)`:
captures, one hex telegram a line): a Diehl IZAR (PRIOS, factory key), a Kamstrup-like OMS water meter
in security mode 5 and an OMS water meter in mode 7 (AFL counter and MAC), each with its
own clock. A meter set to leak at night (`leak="night"`) reports a constant night flow and
its leak alarm while its clock is between 00:00 and 06:00; `clock_start` sets that clock
(the demo starts the leaking meter's at 02:00 so the alarm shows whatever the hour).
Faults: noise, bad checksums (a broken CRC or checksum on the next messages), silence,
unplug. Imports only `protocols`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import ClassVar, Unpack

from edge.simulators.serial._base import SerialSimulator, SimOptions
from edge.simulators.serial._link import LineFormat
from protocols.wmbus import _diehl, dongles
from protocols.wmbus._build import build_telegram, manufacturer_field

DEVICE_WATER = 0x07
LEAK_NIGHT = "night"
LEAK_ALWAYS = "always"
LEAK_NEVER = "never"
_LEAKS = (LEAK_NIGHT, LEAK_ALWAYS, LEAK_NEVER)

_IM871A_GET_DEVICEINFO_REQ = 0x0F
_IM871A_GET_DEVICEINFO_RSP = 0x10
_IM871A_SET_CONFIG_REQ = 0x03
_IM871A_SET_CONFIG_RSP = 0x04
_AMBER_SET_MODE_REQ = 0x04


class AmberCommandParser:
    """How an AMB8465 reads its UART in command mode: a command starts with 0xFF, a known
    command byte and that command's length, and ends with its XOR checksum. Whatever is
    not such a frame (another device's query sent at 9600, a start byte followed by an
    unknown command or an impossible length, a bad checksum) is discarded from its first
    byte and the module keeps listening for the next 0xFF: it never waits on a frame that
    cannot be one."""

    def __init__(self, max_buffer: int = 512) -> None:
        self._buf = bytearray()
        self.max_buffer = max_buffer
        self.discarded = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The (command, payload) of every complete valid command in what came so far."""
        self._buf.extend(data)
        commands: list[tuple[int, bytes]] = []
        buf = self._buf
        while buf:
            start = buf.find(b"\xff")
            if start != 0:
                self._discard(len(buf) if start < 0 else start)
                continue
            if len(buf) < 3:
                break
            command, length = buf[1], buf[2]
            expected = dongles.AMBER_REQUESTS.get(command, -1)
            if (
                expected == -1
                or (expected is None and length == 0)
                or (expected is not None and length != expected)
            ):
                self._discard(1)
                continue
            if len(buf) < 4 + length:
                break
            frame = bytes(buf[: 4 + length])
            check = 0
            for b in frame[:-1]:
                check ^= b
            if check != frame[-1]:
                self._discard(1)
                continue
            del buf[: 4 + length]
            commands.append((command, frame[3:-1]))
        if len(buf) > self.max_buffer:
            self._discard(len(buf) - self.max_buffer)
        return commands

    def _discard(self, n: int) -> None:
        del self._buf[:n]
        self.discarded += n


class RadioMeter:
    """One water meter: `kind` is ``izar`` (Diehl PRIOS), ``oms5`` (security mode 5, with
    Kamstrup-style info codes carrying the leak, burst, dry and reverse alarms) or ``oms7``
    (mode 7). `key` (16 bytes) is needed by oms5/oms7 and optional for izar (default: the
    factory key). `flow_lph` is the day flow; at night a leaking meter shows `leak_lph`."""

    def __init__(
        self,
        kind: str,
        meter_id: str,
        *,
        key: bytes | None = None,
        leak: str = LEAK_NEVER,
        volume_l: int = 123_456,
        flow_lph: float = 40.0,
        leak_lph: float = 12.0,
        clock_start: float | None = None,
    ) -> None:
        if kind not in ("izar", "oms5", "oms7"):
            raise ValueError(f"meter kind izar, oms5 or oms7, not {kind!r}")
        if kind != "izar" and (key is None or len(key) != 16):
            raise ValueError(f"a {kind} meter needs a 16-byte key")
        if leak not in _LEAKS:
            raise ValueError(f"leak is one of {', '.join(_LEAKS)}, not {leak!r}")
        if len(meter_id) != 8 or not meter_id.isdigit():
            raise ValueError(f"a meter id is 8 digits, not {meter_id!r}")
        self.kind = kind
        self.meter_id = meter_id
        self.key = key
        self.leak = leak
        self.volume = float(volume_l)
        self.flow_lph = flow_lph
        self.leak_lph = leak_lph
        self._clock0 = time.time() if clock_start is None else clock_start
        self._started = time.monotonic()
        self._last = time.monotonic()
        self.access = int(meter_id) & 0xFF
        self.counter = 1

    @property
    def manufacturer(self) -> str:
        return {"izar": "DME", "oms5": "KAM", "oms7": "EFE"}[self.kind]

    @property
    def meter(self) -> str:
        return f"{self.manufacturer}-{self.meter_id}"

    def clock(self) -> float:
        """The meter's own time (seconds since the epoch)."""
        return self._clock0 + (time.monotonic() - self._started)

    def leaking(self) -> bool:
        if self.leak == LEAK_ALWAYS:
            return True
        if self.leak == LEAK_NEVER:
            return False
        return time.gmtime(self.clock()).tm_hour < 6

    def _advance(self) -> float:
        now = time.monotonic()
        hours = (now - self._last) / 3600.0
        self._last = now
        flow = self.leak_lph if self.leaking() else self.flow_lph
        self.volume += flow * hours
        return flow

    def telegram(self) -> bytes:
        """The next telegram (L-field first, no CRCs)."""
        flow = self._advance()
        self.access = (self.access + 1) & 0xFF
        self.counter += 1
        litres = int(self.volume)
        leak = self.leaking()
        if self.kind == "izar":
            t = time.gmtime(self.clock())
            return _diehl.build_prios(
                manufacturer_field("DME"),
                self.meter_id,
                litres,
                max(0, litres - 2500),
                (t.tm_year, t.tm_mon, 1),
                leak=leak,
                key=self.key,
            )
        info = 0x04 if leak else 0x00  # Kamstrup info code bit 2: leak
        records = b""
        if self.kind == "oms5":
            records += bytes.fromhex("02FF20") + bytes([info, 0])
        records += bytes.fromhex("0413") + litres.to_bytes(4, "little")
        records += bytes.fromhex("023B") + int(flow).to_bytes(2, "little")
        records += bytes.fromhex("046D") + _type_f(self.clock())
        return build_telegram(
            self.manufacturer,
            self.meter_id,
            0x1B if self.kind == "oms5" else 0x02,
            DEVICE_WATER,
            records,
            access_number=self.access,
            mode=5 if self.kind == "oms5" else 7,
            key=self.key,
            counter=self.counter,
        )


class ReplayMeter:
    """Real telegrams of one meter played back in turn (captures, or the shared vectors):
    `telegrams` L-field first without CRCs, `key` the meter's key if they are encrypted.
    The meter's name comes from its first telegram's link layer."""

    def __init__(self, telegrams: Sequence[bytes], key: bytes | None = None) -> None:
        if not telegrams or any(len(t) < 11 for t in telegrams):
            raise ValueError("a replayed meter needs telegrams of at least 11 bytes")
        self.telegrams = [bytes(t) for t in telegrams]
        self.key = key
        first = self.telegrams[0]
        code = first[2] | (first[3] << 8)
        self.manufacturer = "".join(chr(((code >> s) & 0x1F) + 64) for s in (10, 5, 0))
        self.meter_id = "".join(f"{first[i]:02X}" for i in (7, 6, 5, 4))
        self._next = 0

    @property
    def meter(self) -> str:
        return f"{self.manufacturer}-{self.meter_id}"

    def telegram(self) -> bytes:
        telegram = self.telegrams[self._next % len(self.telegrams)]
        self._next += 1
        return telegram


def replay_meters(path: str) -> list[ReplayMeter]:
    """Meters from a capture file: one telegram a line in hex (``#`` comments), optionally
    followed by `` key=HEX``; telegrams of one meter are grouped into one ReplayMeter."""
    grouped: dict[str, tuple[list[bytes], bytes | None]] = {}
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            hex_text, _, rest = line.partition(" ")
            try:
                telegram = bytes.fromhex(hex_text)
                key = bytes.fromhex(rest.strip()[4:]) if rest.strip().startswith("key=") else None
            except ValueError as e:
                raise ValueError(f"{path}:{number}: not hex") from e
            if len(telegram) < 11:
                raise ValueError(f"{path}:{number}: a telegram has at least 11 bytes")
            name = telegram[2:8].hex()
            telegrams, known = grouped.setdefault(name, ([], key))
            telegrams.append(telegram)
            if key is not None and known is None:
                grouped[name] = (telegrams, key)
    if not grouped:
        raise ValueError(f"{path}: no telegram")
    return [ReplayMeter(t, k) for t, k in grouped.values()]


def _type_f(epoch: float) -> bytes:
    """EN 13757-3 data type F (date and time to the minute)."""
    t = time.gmtime(epoch)
    yy = t.tm_year % 100
    return bytes(
        [
            t.tm_min & 0x3F,
            t.tm_hour & 0x1F,
            ((yy & 0x07) << 5) | (t.tm_mday & 0x1F),
            ((yy & 0x78) << 1) | (t.tm_mon & 0x0F),
        ]
    )


def demo_meters(key5: bytes, key7: bytes, leak_clock: float | None = None) -> list[RadioMeter]:
    """The town hall's meters: an IZAR, a mode 5 meter leaking at night, a mode 7 meter."""
    night = leak_clock
    if night is None:
        day = int(time.time()) // 86400 * 86400
        night = day + 2 * 3600  # 02:00 UTC today: the leaking meter's clock is at night
    return [
        RadioMeter("izar", "21242472"),
        RadioMeter("oms5", "44556677", key=key5, leak=LEAK_NIGHT, clock_start=night),
        RadioMeter("oms7", "22862420", key=key7),
    ]


class WmbusDongleSimulator(SerialSimulator):
    """A wireless M-Bus USB dongle and the meters it hears (see the module docstring)."""

    kind: ClassVar[str] = "wmbus"
    default_line: ClassVar[LineFormat] = LineFormat(dongles.BAUD[dongles.IM871A])

    def __init__(
        self,
        name: str = "ttyWMBUS0",
        *,
        dongle: str = dongles.IM871A,
        meters: Sequence[RadioMeter | ReplayMeter] | None = None,
        interval: float = 5.0,
        **options: Unpack[SimOptions],
    ) -> None:
        if dongle not in dongles.DONGLES:
            raise ValueError(f"dongle is one of {', '.join(dongles.DONGLES)}, not {dongle!r}")
        if "line" not in options or options["line"] is None:
            options["line"] = LineFormat(dongles.BAUD[dongle])
        super().__init__(name, **options)
        self.dongle = dongle
        key = bytes(range(16))
        self.meters: list[RadioMeter | ReplayMeter] = []
        self.meters.extend(meters if meters is not None else demo_meters(key, key[::-1]))
        self.interval = interval
        self._next = 0
        self._lock = asyncio.Lock()
        self._stream = dongles.stream(dongle)
        self._amber = AmberCommandParser()
        self.link_mode: int | None = None

    def describe(self) -> str:
        return f"wmbus {self.dongle} on {self.path} ({self.line}), {len(self.meters)} meters"

    def frame_for(self, telegram: bytes, bad_checksum: bool) -> bytes:
        """`telegram` in this dongle's framing."""
        if self.dongle == dongles.IM871A:
            data = dongles.im871a_telegram(telegram, rssi=int(self.rng.uniform(150, 210)))
            return data[:-1] + bytes([data[-1] ^ 0x55]) if bad_checksum else data
        if self.dongle == dongles.AMB8465:
            data = dongles.amber_telegram(telegram, rssi=int(self.rng.uniform(0xC0, 0xF0)))
            return data[:-1] + bytes([data[-1] ^ 0x55]) if bad_checksum else data
        when = time.strftime("%Y-%m-%d %H:%M:%S.000", time.gmtime())
        line = dongles.rtlwmbus_line(telegram, when, int(self.rng.uniform(60, 120)))
        return line.replace(b";1;1;", b";0;1;", 1) if bad_checksum else line

    async def _send(self, data: bytes) -> None:
        async with self._lock:
            await self.transmit(data)

    async def _serve(self) -> None:
        listener = asyncio.create_task(self._listen(), name=f"sim:{self.name}:listen")
        self._helpers.add(listener)
        due = time.monotonic()
        while True:
            if not self.silent and self.meters and self.plugged:
                meter = self.meters[self._next % len(self.meters)]
                self._next += 1
                await self._send(self.frame_for(meter.telegram(), self.take_bad_checksum()))
                self.stats["frames"] += 1
            due += self.interval / max(1, len(self.meters))
            delay = due - time.monotonic()
            if delay < 0:
                due = time.monotonic()
                delay = 0.0
            await asyncio.sleep(max(delay, 0.01))

    async def _listen(self) -> None:
        while True:
            chunk = await self._link.receive(3600.0)
            if not chunk or self.silent or self.dongle == dongles.RTLWMBUS:
                continue
            if self.dongle == dongles.AMB8465:
                before = self._amber.discarded
                for command, payload in self._amber.feed(chunk):
                    await self._reply(dongles.DongleReply(dongles.AMB8465, command, payload))
                self.stats["ignored"] += self._amber.discarded - before
                continue
            try:
                self._stream.receive_data(chunk)
            except Exception:  # overflow of garbage: start afresh
                self._stream = dongles.stream(self.dongle)
                continue
            while True:
                try:
                    event = self._stream.next_event()
                except Exception:
                    self.stats["ignored"] += 1
                    continue
                if not isinstance(event, dongles.DongleReply):
                    break
                await self._reply(event)

    async def _reply(self, request: dongles.DongleReply) -> None:
        reply = self._answer(request)
        if reply is None:
            self.stats["ignored"] += 1
            return
        self.stats["answers"] += 1
        await self._send(reply)

    def _answer(self, request: dongles.DongleReply) -> bytes | None:
        bad = self.take_bad_checksum()
        if self.dongle == dongles.IM871A:
            endpoint, msg_id = request.code >> 8, request.code & 0xFF
            if endpoint != dongles.IM871A_DEVMGMT:
                return None
            if msg_id == dongles.IM871A_PING_REQ:
                payload, rsp = b"", dongles.IM871A_PING_RSP
            elif msg_id == _IM871A_GET_DEVICEINFO_REQ:
                # module type iM871A (0x33), device mode other, firmware 1.5, hw 1.2, uid
                payload, rsp = bytes([0x33, 0x00, 0x15, 0x12, 0x20, 0x24, 0x01, 0x07]), 0x10
            elif msg_id == _IM871A_SET_CONFIG_REQ:
                if len(request.payload) >= 3 and request.payload[1] & 0x02:
                    self.link_mode = request.payload[2]
                payload, rsp = b"\x00", _IM871A_SET_CONFIG_RSP
            else:
                return None
            data = dongles.im871a_message(dongles.IM871A_DEVMGMT, rsp, payload, crc=True)
            return data[:-1] + bytes([data[-1] ^ 0x55]) if bad else data
        if request.code == dongles.AMBER_SERIALNO_REQ:
            data = dongles.amber_message(0x80 | request.code, bytes([0x00, 0x07, 0x21, 0x9A]))
        elif request.code == _AMBER_SET_MODE_REQ:
            if request.payload:
                self.link_mode = request.payload[0]
            data = dongles.amber_message(0x80 | request.code, b"\x00")
        else:
            return None
        return data[:-1] + bytes([data[-1] ^ 0x55]) if bad else data

    def port_config(self, sensor_prefix: str | None = None) -> dict[str, object]:
        prefix = sensor_prefix or "water"
        devices: list[dict[str, object]] = []
        for meter in self.meters:
            device: dict[str, object] = {
                "sensor": f"{prefix}-{meter.meter_id}",
                "address": meter.meter,
                "interval": 0,
            }
            if meter.key is not None:
                device["key"] = meter.key.hex()
            devices.append(device)
        config = self._port("wmbus", devices)
        config["dongle"] = self.dongle
        return config


__all__ = ["RadioMeter", "ReplayMeter", "WmbusDongleSimulator", "demo_meters", "replay_meters"]
