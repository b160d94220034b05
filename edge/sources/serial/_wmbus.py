"""Wireless M-Bus through a USB dongle: the dongle's framing, then the telegram codec.

The session sets the dongle's radio mode when the dongle takes commands (iM871A, AMB8465;
rtl-wmbus only talks), then listens. Every telegram heard is decoded with the keys of the
configured meters; a telegram of a configured meter becomes readings of its sensor (alarm
readings that are true carry FLAG_ALARM: they outrank the backlog); telegrams of meters
nobody configured are counted in `heard` (the technician's `estran edge wmbus listen`
shows them) and otherwise ignored: a radio hears the neighbours' meters too.

Errors are counted on the meter's sensor when the meter is configured (a missing or wrong
key is `decryption`, the message names the meter, never the key), on the port's first
sensor for the dongle's own framing errors.
"""

from __future__ import annotations

import asyncio
import time

from edge.sources import ReadingSink
from edge.sources.serial._config import DeviceConfig, SerialPortConfig, wmbus_meter
from edge.sources.serial._session import NO_RESPONSE, NOISE, Clock, Session, SilenceWatch
from edge.sources.serial._transport import SerialTransport
from protocols.errors import RemoteProtocolError
from protocols.reading import FLAG_ALARM, Reading
from protocols.wmbus import ALARMS, Decoder, WmbusTelegram, dongles
from protocols.wmbus._link import device_id
from protocols.wmbus._link import manufacturer as link_manufacturer

POLL = 1.0

# Radio mode codes per dongle (IMST link mode; Amber receive mode), by LINK_MODES name.
_IM871A_MODES = {"s1": 0x00, "t1": 0x03, "c1": 0x07, "t1c1": 0x0A}
_AMBER_MODES = {"s1": 0x03, "t1": 0x08, "c1": 0x0E, "t1c1": 0x09}
_IM871A_SET_CONFIG_REQ = 0x03
_IM871A_SET_CONFIG_RSP = 0x04
_AMBER_SET_MODE_REQ = 0x04


def setup_request(dongle: str, link_mode: str) -> tuple[bytes, int] | None:
    """(request, expected reply code) that puts a dongle in `link_mode`; None when the
    dongle takes no commands."""
    if dongle == dongles.IM871A:
        # temporary, radio mode set, mode, RSSI and timestamp flags set: RSSI on, no timestamp
        payload = bytes([0x00, 0x02, _IM871A_MODES[link_mode], 0x30, 0x01, 0x00])
        request = dongles.im871a_message(
            dongles.IM871A_DEVMGMT, _IM871A_SET_CONFIG_REQ, payload, crc=False
        )
        return request, (dongles.IM871A_DEVMGMT << 8) | _IM871A_SET_CONFIG_RSP
    if dongle == dongles.AMB8465:
        request = dongles.amber_message(_AMBER_SET_MODE_REQ, bytes([_AMBER_MODES[link_mode]]))
        return request, 0x80 | _AMBER_SET_MODE_REQ
    return None


class HeardMeter:
    """What the session knows of a meter it heard: for the technician's listen command."""

    __slots__ = (
        "count",
        "device_type",
        "encryption",
        "error",
        "frame",
        "last",
        "level",
        "meter",
        "rssi",
    )

    def __init__(self, meter: str) -> None:
        self.meter = meter
        self.count = 0
        self.last = 0.0
        self.rssi: float | None = None  # dBm (iM871A, AMB8465)
        self.level: float | None = None  # rtl-wmbus's uncalibrated packet RSSI, not dBm
        self.device_type = ""
        self.encryption = 0
        self.error = ""  # the last error ("" when the last telegram decoded)
        self.frame = b""  # the last telegram


def signal_text(rssi: float | None, level: float | None) -> str:
    """A meter's signal as a technician reads it, with its unit: ``-71.5 dBm`` (iM871A,
    AMB8465), ``level 97 (not dBm)`` (rtl-wmbus's own scale), or "" when the dongle gave none."""
    if rssi is not None:
        return f"{rssi:g} dBm"
    if level is not None:
        return f"level {level:g} (not dBm)"
    return ""


class WmbusSession(Session):
    """One wireless M-Bus dongle and the meters configured on it."""

    def __init__(self, config: SerialPortConfig, sink: ReadingSink, clock: Clock) -> None:
        super().__init__(config, sink, clock)
        keys: dict[str, bytes] = {}
        self._devices: dict[str, DeviceConfig] = {}
        for device in config.devices:
            parsed = wmbus_meter(str(device.address))
            if parsed is None:
                continue
            manufacturer, ident = parsed
            name = f"{manufacturer}-{ident}" if manufacturer else ident
            self._devices[name] = device
            if device.key is not None:
                keys[name] = device.key
        self.decoder = Decoder(keys)
        self.stream = dongles.stream(config.dongle, config.rssi)
        self.heard: dict[str, HeardMeter] = {}
        self.telegrams = 0
        # Until a message checks out (a dongle reply, a telegram that decodes), what comes is
        # a stream joined mid-way: its garbage and broken telegrams are not counted.
        self._synced = False

    def device_for(self, manufacturer: str, ident: str) -> DeviceConfig | None:
        return self._devices.get(f"{manufacturer}-{ident}") or self._devices.get(ident)

    async def run(self, transport: SerialTransport) -> None:
        fallback = self.config.devices[0].sensor
        await self._setup(transport, fallback)
        watch = SilenceWatch(self, fallback, self.config.silence)
        while True:
            data = await transport.read(min(POLL, max(watch.remaining(), 0.05)))
            if data and await self.feed(data):
                watch.heard()
            watch.check()

    async def _setup(self, transport: SerialTransport, sensor: str) -> None:
        setup = setup_request(self.config.dongle, self.config.link_mode)
        if setup is None:
            return
        request, expected = setup
        await transport.write(request)
        deadline = time.monotonic() + self.config.response_timeout
        while time.monotonic() < deadline:
            data = await transport.read(max(0.01, deadline - time.monotonic()))
            if not data:
                continue
            replies = await self.feed(data, want=expected)
            if replies:
                return
        self.count(
            sensor,
            NO_RESPONSE,
            f"{self.config.dongle} did not confirm link mode {self.config.link_mode}",
        )

    async def feed(self, data: bytes, want: int | None = None) -> bool:
        """Take bytes; True when a telegram decoded (or, with `want`, that reply came)."""
        fallback = self.config.devices[0].sensor
        try:
            self.stream.receive_data(data)
        except RemoteProtocolError as e:
            self.count(fallback, e.reason, e.message)
        good = False
        while True:
            try:
                event = self.stream.next_event()
            except RemoteProtocolError as e:
                if e.reason != "malformed":
                    self.count(fallback, e.reason, e.message)
                elif self._synced:
                    self.count(fallback, NOISE, e.message)
                continue
            if isinstance(event, dongles.DongleReply):
                self._synced = True
                if want is not None and event.code == want:
                    good = True
                continue
            if not isinstance(event, dongles.RadioTelegram):
                return good
            if await self._telegram(event):
                good = True

    async def _telegram(self, event: dongles.RadioTelegram) -> bool:
        self.telegrams += 1
        # decoded into a telegram we keep: when the key is missing or wrong, its clear link
        # and transport headers (device type, security mode) are still known
        header = WmbusTelegram()
        try:
            self.decoder.decode_into(header, event.frame, crcs=False)
            error: RemoteProtocolError | None = None
            telegram: WmbusTelegram | None = header
        except RemoteProtocolError as e:
            error = e
            telegram = None
        meter, manufacturer, ident = _identity(event.frame, telegram, error)
        heard = self.heard.get(meter)
        if heard is None:
            if len(self.heard) >= 1024:  # bounded: a busy street hears many meters
                self.heard.pop(next(iter(self.heard)))
            heard = self.heard[meter] = HeardMeter(meter)
        heard.count += 1
        heard.last = time.time()
        heard.rssi = event.rssi
        heard.level = event.level
        heard.frame = event.frame
        device = self.device_for(manufacturer, ident) if ident else None
        if header.id or header.manufacturer:
            heard.device_type = header.device_type_name
            heard.encryption = header.security_mode
        heard.error = str(error) if error is not None else ""
        if error is not None:
            mode = getattr(error, "mode", None)
            if mode is not None:
                heard.encryption = mode
                self._synced = True  # framed right: only the key is in question
            if device is not None and self._synced:
                self.count(device.sensor, error.reason, error.message)
            return False
        self._synced = True
        if device is None or telegram is None:
            return True  # a neighbour's meter: heard, not ours
        ts = self.clock()
        for m in telegram.measurements():
            flags = FLAG_ALARM if m.name in ALARMS and m.value is True else 0
            if not flags and not self.due((device.sensor, m.name), device.interval):
                continue
            await self.sink.put(Reading(device.sensor, m.name, m.unit, m.value, ts, flags))
            self.readings += 1
        return True


def _identity(
    frame: bytes, telegram: object, error: RemoteProtocolError | None
) -> tuple[str, str, str]:
    """(meter name, manufacturer, id) of a telegram, decoded or not."""
    meter = getattr(error, "meter", None) or getattr(telegram, "meter", None)
    if isinstance(meter, str) and "-" in meter:
        manufacturer, _, ident = meter.partition("-")
        return meter, manufacturer, ident
    if len(frame) >= 10:
        manufacturer = link_manufacturer(frame[2:4])
        ident = device_id(frame[4:8])
        return f"{manufacturer}-{ident}", manufacturer, ident
    return "?", "", ""


class _QuietSink:
    """A sink that keeps nothing: `listen` only wants the meters heard."""

    async def put(self, reading: Reading) -> None:
        return None

    def count_error(self, sensor: str, reason: str, detail: str = "") -> None:
        return None

    def set_state(self, source: str, state: str, detail: str = "") -> None:
        return None


async def listen(
    config: SerialPortConfig, seconds: float, transport: SerialTransport
) -> dict[str, HeardMeter]:
    """Listen on an open port for `seconds`: every meter heard (for `wmbus listen`)."""
    session = WmbusSession(config, _QuietSink(), lambda: 0)
    await session._setup(transport, config.devices[0].sensor)
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        data = await transport.read(min(POLL, left))
        if data:
            await session.feed(data)
        await asyncio.sleep(0)
    return session.heard


def identify_request(dongle: str) -> tuple[bytes, int] | None:
    """(a harmless request, the reply code that proves the dongle is there): iM871A ping,
    AMB8465 serial number request; None for rtl-wmbus (it only talks)."""
    if dongle == dongles.IM871A:
        return dongles.im871a_ping(), (dongles.IM871A_DEVMGMT << 8) | dongles.IM871A_PING_RSP
    if dongle == dongles.AMB8465:
        return dongles.amber_serialno_request(), 0x80 | dongles.AMBER_SERIALNO_REQ
    return None


async def ask_dongle(
    transport: SerialTransport, dongle: str, timeout: float, listen_for: float
) -> tuple[bool, dict[str, HeardMeter]]:
    """Whether a `dongle` answers its identify request on `transport` (already set to its
    line), then the meters heard in `listen_for` seconds (for the probe's snippet)."""
    ask = identify_request(dongle)
    if ask is None:
        return False, {}
    request, expected = ask
    config = SerialPortConfig(
        path=transport.path,
        protocol="wmbus",
        devices=(DeviceConfig("probe", address="00000000"),),
        dongle=dongle,
    )
    session = WmbusSession(config, _QuietSink(), lambda: 0)
    if isinstance(session.stream, dongles.AmberStream):
        # we ask in command mode: only command-mode messages can answer (bytes of a message
        # joined mid-way are dropped, never taken for a transparent-mode telegram)
        session.stream.command_mode = True
    transport.take()
    answered = False
    # twice: a module still holding the bytes of a request that was not for it (another
    # device's query sent on the same line before) may drop the first one with them
    for _attempt in range(2):
        await transport.write(request)
        deadline = time.monotonic() + timeout
        while not answered and (left := deadline - time.monotonic()) > 0:
            data = await transport.read(left)
            if data:
                answered = await session.feed(data, want=expected)
        if answered:
            break
    if not answered:
        return False, {}
    end = time.monotonic() + listen_for
    while (left := end - time.monotonic()) > 0:
        data = await transport.read(min(POLL, left))
        if data:
            await session.feed(data)
    return True, session.heard


__all__ = [
    "HeardMeter",
    "WmbusSession",
    "ask_dongle",
    "identify_request",
    "listen",
    "setup_request",
    "signal_text",
]
