"""What does this serial port speak? Listen first, then ask politely.

`Prober(path).steps()` is an async iterator of `ProbeStep`s (for a live display); when it
ends, `result` holds the `ProbeResult`. `probe(path)` does both and returns the result.

1. Listen (8N1, so that a 7-bit line's parity bits show in bit 7) at 1200, 4800 and 9600
   baud for a TIC frame, an NMEA sentence with a good checksum, a run of ultrasonic
   frames, a Plantower PMS or an SDS011 frame. Each window is sized from the real frame time of the talkers at that speed
   (`TALKERS`): a listener that starts just after a frame began loses it, so it needs the
   rest of that frame and then the whole frames its finder wants (a Linky historique at
   1200 7E1 sends frames of up to ~300 bytes, 2.5 s each, back to back: 5.3 s). A line
   where nothing at all arrives has no talker: the other speeds are skipped. Also
   rtl-wmbus's text lines (wireless M-Bus telegrams heard by an RTL-SDR) at 115200.
2. Particulate-matter sensors that only answer: an SPS30's device information (SHDLC at
   115200), an SDS011's working period (answered asleep too), a PMS passive read. Then
   wireless M-Bus dongles: an iM871A ping at 57600 8N1, an AMB8465 serial number request
   at 9600 8N1; a dongle that answers is then listened to for a few seconds, and the
   meters it hears go in the configuration snippet (their keys are for the technician to
   add: `estran edge wmbus listen` says which meters encrypt).
3. SDI-12: a break and ``?!`` at 1200 7E1; then ``aI!`` and one measurement for a sample.
4. M-Bus: SND_NKE and REQ_UD2 to the test address 0xFE at 2400 and 300 baud 8E1; when
   several meters answer at once (a collision), a bounded scan of primary addresses.
5. Modbus RTU: at the common speeds and parities, FC03 of one register to a bounded list of
   addresses; any answer with a good CRC (an exception too) is a device. Then each known
   register map's first request finds the map whose values make sense.

Every exchange has a timeout; nothing is written to a device except reads (and the
SDI-12 measurement, which a sensor does on every poll anyway). The whole probe of one port
is bounded (`ProbeOptions.budget`): once it is spent, the candidates left are skipped, and
each step says how long it took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from edge.sources.serial._config import (
    MBUS,
    MODBUS,
    NMEA,
    PMS,
    SDI12,
    SDS011,
    SPS30,
    TIC,
    ULTRASONIC,
    WMBUS,
    DeviceConfig,
    LineSettings,
    config_snippet,
)
from edge.sources.serial._transport import PortLost, PortUnavailable, SerialTransport
from edge.sources.serial._wmbus import ask_dongle, signal_text
from protocols import level, mbus, modbus, nmea, pms, sdi12, sds011, sps30, tic, ultrasonic, wmbus
from protocols._stream import NeedData
from protocols.describe import describe
from protocols.errors import UNSUPPORTED, RemoteProtocolError
from protocols.reading import Measurement
from protocols.wmbus import dongles

MAX_CAPTURE = 65536

RUNNING = "running"
FOUND = "found"
NOTHING = "nothing"
SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Talker:
    """A device that talks on its own, as the listening step must hear it: its line speed,
    bits per character on the wire (start + data + parity + stop), its longest frame, the
    longest time between the starts of two frames, and how many whole frames the finder
    needs to recognise it."""

    name: str
    baud: int
    char_bits: int
    max_frame: int  # bytes
    period: float  # seconds (frames sent back to back: the frame time plus the gap)
    frames_needed: int = 1

    @property
    def frame_time(self) -> float:
        return self.max_frame * self.char_bits / self.baud

    @property
    def window(self) -> float:
        """Long enough when listening starts just after a frame began: the rest of that
        frame is lost, then `frames_needed` whole ones must arrive."""
        return max(self.period, self.frame_time) * (self.frames_needed + 1)


TALKERS: tuple[Talker, ...] = (
    # Enedis TIC historique: 1200 7E1, frames of ~250-300 bytes (three-phase) sent one after
    # the other with 16.7 to 33.4 ms between them.
    Talker("TIC historique", 1200, 10, 300, 300 * 10 / 1200 + 0.034),
    # NMEA 0183: sentences of at most 82 characters, a burst once a second (1 Hz talkers).
    Talker("NMEA 0183", 4800, 10, 82, 1.0),
    # TIC standard: 9600 7E1; a full three-phase producer frame is about 2.5 KiB.
    Talker("TIC standard", 9600, 10, 2560, 2560 * 10 / 9600 + 0.034),
    # Ultrasonic rangers at 9600 8N1: MaxBotix "R1234\r" at up to ~5 Hz free-run, A02YYUW
    # 4-byte frames every 100-300 ms; the finder wants three frames.
    Talker("MaxBotix", 9600, 10, 6, 0.2, 3),
    Talker("A02YYUW", 9600, 10, 4, 0.3, 3),
    # Plantower PMS in active mode: 32-byte frames (40 for the PMS5003ST), every 200 ms to
    # 2.3 s (the data manual's "stable mode"); one frame with a good checksum is enough.
    Talker("PMS", 9600, 10, 40, 2.3),
    # Nova SDS011 reporting continuously: a 10-byte frame every second.
    Talker("SDS011", 9600, 10, 10, 1.0),
    # rtl-wmbus: a text line per telegram heard (at most ~600 characters); meters send every
    # few seconds to minutes, so a quiet street may need a second probe.
    Talker("rtl-wmbus", 115200, 10, 600, 1.0),
)
LISTEN_MARGIN = 0.3  # seconds: the OS and the simulator's scheduling


def listen_windows(talkers: tuple[Talker, ...] = TALKERS) -> tuple[tuple[int, float], ...]:
    """(baud, seconds) for each speed the talkers use, slowest first: the longest window
    any talker at that speed needs, plus a margin."""
    windows: dict[int, float] = {}
    for t in talkers:
        windows[t.baud] = max(windows.get(t.baud, 0.0), t.window + LISTEN_MARGIN)
    return tuple((baud, round(windows[baud], 2)) for baud in sorted(windows))


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """Budgets and candidates. The defaults fit real devices (windows from `TALKERS`);
    tests shorten the listening windows only for simulators that talk faster than real
    time."""

    listen: tuple[tuple[int, float], ...] = listen_windows()
    # nothing at all for this long: no talker on this line (longer than any talker's gap)
    quiet_line: float = 2.5  # a PMS in stable mode pauses 2.3 s between frames
    budget: float = 45.0  # seconds for the whole probe of one port; what is left is skipped
    sdi12_timeout: float = 0.4
    mbus_bauds: tuple[int, ...] = (2400, 300)
    mbus_timeout: float = 0.4
    mbus_scan: tuple[int, ...] = tuple(range(0, 11))
    modbus_lines: tuple[tuple[int, str], ...] = (
        (9600, "N"),
        (9600, "E"),
        (19200, "E"),
        (19200, "N"),
        (4800, "N"),
        (2400, "N"),
        (38400, "N"),
    )
    modbus_addresses: tuple[int, ...] = (*range(1, 12), 80, 200)
    modbus_timeout: float = 0.15
    wmbus_timeout: float = 0.5  # for a dongle's answer
    wmbus_listen: float = 3.0  # then the meters it hears, for the snippet
    query_timeout: float = 0.5  # SPS30, SDS011 and PMS queries (a read: nothing changes)


@dataclass(frozen=True, slots=True)
class ProbeStep:
    """One candidate tried: `label` (``listen 1200 8N1``), `state` (running, found,
    nothing, skipped), how long it took, and what was seen."""

    label: str
    state: str
    seconds: float = 0.0
    detail: str = ""


@dataclass(slots=True)
class ProbeResult:
    """What the probe found (`protocol` None: nothing it knows)."""

    port: str
    protocol: str | None = None
    line: LineSettings | None = None
    mode: str | None = None
    sample: dict[str, object] | None = None
    devices: list[DeviceConfig] = field(default_factory=list)
    steps: list[ProbeStep] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0  # the whole probe

    @property
    def config(self) -> str | None:
        if self.protocol is None or self.line is None:
            return None
        dongle = self.mode if self.protocol == WMBUS else None
        return config_snippet(
            self.port, self.protocol, self.line, self.mode, self.devices, dongle=dongle
        )

    def as_json(self) -> dict[str, object]:
        params: dict[str, object] | None = None
        if self.line is not None:
            params = {
                "baud": self.line.baud,
                "bytesize": self.line.bytesize,
                "parity": self.line.parity,
                "mode": self.mode,
            }
        return {
            "port": self.port,
            "protocol": self.protocol,
            "params": params,
            "sample": self.sample,
            "config": self.config,
            "seconds": round(self.seconds, 2),
            "steps": [
                {
                    "step": s.label,
                    "result": s.state,
                    "seconds": round(s.seconds, 2),
                    "detail": s.detail,
                }
                for s in self.steps
            ],
        }


@dataclass(slots=True)
class _Found:
    protocol: str
    line: LineSettings
    mode: str | None
    sample: dict[str, object] | None
    devices: list[DeviceConfig]
    detail: str


def _first_valid(results: list[dict[str, object]]) -> dict[str, object] | None:
    with_values = [r for r in results if r.get("valid") and r.get("readings")]
    valid = with_values or [r for r in results if r.get("valid")]
    return valid[0] if valid else None


def _even_parity_share(data: bytes) -> tuple[float, bool]:
    """Share of bytes whose 8 bits have even parity, and whether any has bit 7 set."""
    if not data:
        return 0.0, False
    even = sum(1 for b in data if bin(b).count("1") % 2 == 0)
    return even / len(data), any(b & 0x80 for b in data)


# -- what a capture contains -------------------------------------------------------------


def _find_tic(data: bytes, baud: int) -> _Found | None:
    stream = tic.TicStream()
    stream.receive_data(data)
    while True:
        try:
            event = stream.next_event()
        except RemoteProtocolError:
            continue
        if not isinstance(event, tic.Frame):
            return None
        if event.valid and event.mode is not None and tic.BAUDRATE[event.mode] == baud:
            share, high = _even_parity_share(data)
            parity = "even parity bits seen" if high and share > 0.98 else "7E1 by the standard"
            sample = _first_valid(tic.describe(data, {}))
            return _Found(
                TIC,
                LineSettings(baud, 7, "E", 1),
                event.mode,
                sample,
                [DeviceConfig("linky", interval=0)],
                f"TIC {event.mode}, {len(event.groups)} groups ({parity})",
            )


def _find_nmea(data: bytes, baud: int) -> _Found | None:
    reader = nmea.SentenceReader()
    reader.receive_data(data)
    while True:
        try:
            line = reader.next_line()
        except RemoteProtocolError:
            continue
        if line is None:
            return None
        try:
            sentence = nmea.parse_sentence(line)
        except RemoteProtocolError:
            continue
        if sentence.checksum is None:
            continue
        try:
            nmea.decode(sentence)
        except RemoteProtocolError as e:
            if e.reason != UNSUPPORTED:
                continue
        sample = _first_valid(nmea.describe(line + b"\r\n", {}))
        return _Found(
            NMEA,
            LineSettings(baud),
            None,
            sample,
            [DeviceConfig("nmea", interval=0)],
            f"NMEA {sentence.address} with a good checksum",
        )


def _find_ultrasonic(data: bytes, baud: int) -> _Found | None:
    stream = ultrasonic.UltrasonicStream(None, max_buffer=len(data) + 8)
    stream.receive_data(data)
    frames: dict[str, list[ultrasonic.DistanceFrame]] = {}
    errors = 0
    while True:
        try:
            event = stream.next_event()
        except RemoteProtocolError:
            errors += 1
            continue
        if not isinstance(event, ultrasonic.DistanceFrame):
            break
        frames.setdefault(event.format, []).append(event)
    for frame_format, found in frames.items():
        if len(found) >= 3 and len(found) > errors:
            sample = _first_valid(ultrasonic.describe(found[-1].data, {}))
            model = ultrasonic.model_for(found[-1])
            return _Found(
                ULTRASONIC,
                LineSettings(baud),
                frame_format,
                sample,
                [DeviceConfig("level", model=model, interval=10.0)],
                f"{len(found)} {frame_format} frames",
            )
    return None


def _wmbus_found(
    dongle: str, baud: int, heard: dict[str, object], frames: list[bytes], detail: str
) -> _Found:
    """A wireless M-Bus dongle: the meters it heard as devices, the first one as sample."""
    devices = [
        DeviceConfig(f"water-{meter.rpartition('-')[2]}", address=meter, interval=0)
        for meter in sorted(heard)
        if meter != "?"
    ] or [DeviceConfig("water-meter", address="00000000", interval=0)]
    sample = None
    for frame in frames:
        sample = _first_valid(wmbus.describe(frame, {})) or sample
        if sample is not None:
            break
    return _Found(WMBUS, LineSettings(baud), dongle, sample, devices, detail)


def _find_rtlwmbus(data: bytes, baud: int) -> _Found | None:
    stream = dongles.RtlWmbusStream()
    frames: list[bytes] = []
    levels: list[float] = []
    for line in data.split(b"\n")[:-1]:
        try:  # a line longer than the stream's buffer (garbage at 115200) is an overflow
            stream.receive_data(line + b"\n")
            event = stream.next_event()
        except RemoteProtocolError:
            continue
        if isinstance(event, dongles.RadioTelegram):
            frames.append(event.frame)
            if event.level is not None:
                levels.append(event.level)
    if not frames:
        return None
    if len(frames) < 2 and _first_valid(wmbus.describe(frames[0], {})) is None:
        return None  # one telegram we cannot read (encrypted?): let a second one come
    heard: dict[str, object] = {}
    for frame in frames:
        try:
            meter = wmbus.decode(frame).meter
        except wmbus.MissingKeyError as e:
            meter = e.meter
        except RemoteProtocolError:
            continue
        heard[meter] = True
    detail = f"rtl-wmbus: {len(frames)} telegrams, {len(heard)} meters"
    if levels:
        detail += f", {signal_text(None, max(levels))} at best"
    return _wmbus_found(dongles.RTLWMBUS, baud, heard, frames, detail)


def _find_pms(data: bytes, baud: int) -> _Found | None:
    """A PMS data frame: start, length and 16-bit checksum all right (active mode)."""
    stream = pms.PmsStream(max_buffer=len(data) + pms.MAX_FRAME)
    stream.receive_data(data)
    while True:
        try:
            event = stream.next_event()
        except RemoteProtocolError:
            continue
        if isinstance(event, pms.PmsFrame):
            model = pms.model_for(event)
            return _Found(
                PMS,
                LineSettings(baud),
                None,
                _first_valid(pms.describe(event.data, {})),
                [DeviceConfig("air-pms", model=model, interval=10.0)],
                f"Plantower {len(event.data)}-byte frames (active mode)",
            )
        if not isinstance(event, pms.PmsReply):
            return None


def _find_sds011(data: bytes, baud: int) -> _Found | None:
    """An SDS011 measurement frame (head, tail and checksum right: active reporting)."""
    stream = sds011.SdsStream(max_buffer=len(data) + sds011.COMMAND_LEN)
    stream.receive_data(data)
    while True:
        try:
            event = stream.next_event()
        except RemoteProtocolError:
            continue
        if not isinstance(event, sds011.SdsFrame):
            return None
        if event.kind == sds011.DATA:
            return _Found(
                SDS011,
                LineSettings(baud),
                None,
                _first_valid(sds011.describe(event.data, {})),
                [DeviceConfig("air-sds011", interval=0)],
                f"SDS011 measurements, device id {event.device_id:04X}",
            )


_FINDERS: tuple[Callable[[bytes, int], _Found | None], ...] = (
    _find_tic,
    _find_nmea,
    _find_ultrasonic,
    _find_rtlwmbus,
    _find_pms,
    _find_sds011,
)


# -- plausibility of register maps ----------------------------------------------------------


def _within(values: dict[str, object], name: str, low: float, high: float) -> bool:
    value = values.get(name)
    return isinstance(value, (int, float)) and low <= value <= high


_PLAUSIBLE: dict[str, Callable[[dict[str, object]], bool]] = {
    "sdm630": lambda v: _within(v, "l1_voltage", 50, 300),
    "sdm120": lambda v: _within(v, "voltage", 50, 300),
    "soil_es103": lambda v: _within(v, "moisture", 0, 100) and _within(v, "temperature", -40, 85),
    "soil": lambda v: _within(v, "moisture", 0, 100) and _within(v, "temperature", -40, 85),
    "level": lambda v: _within(v, "distance", 0, 15),
    "level_sen0310": lambda v: _within(v, "distance", 0, 15),
    "fmr20": lambda v: _within(v, "distance", 0.001, 30) and _within(v, "temperature", -40, 85),
    "keller30": lambda v: (
        _within(v, "pressure", -1.1e5, 1e8) and _within(v, "temperature", -40, 120)
    ),
}
MAP_ORDER = (
    "sdm630",
    "sdm120",
    "soil_es103",
    "soil",
    "level",
    "level_sen0310",
    "fmr20",
    "keller30",
)


class Prober:
    """Probe one port; see the module docstring."""

    def __init__(self, path: str, options: ProbeOptions | None = None) -> None:
        self.path = path
        self.options = options or ProbeOptions()
        self.result = ProbeResult(path)

    async def steps(self) -> AsyncIterator[ProbeStep]:
        """The candidates as they are tried. Raises PortUnavailable when the port cannot
        be opened; a port lost midway ends the probe with a note."""
        transport = SerialTransport(self.path, LineSettings(1200))
        transport.open()
        started = time.monotonic()
        try:
            async for step in self._run(transport, started + self.options.budget):
                yield step
        except PortLost as e:
            self.result.note = f"the port went away: {e}"
        finally:
            transport.close()
            self.result.seconds = time.monotonic() - started

    def _record(self, step: ProbeStep) -> ProbeStep:
        if step.state != RUNNING:
            self.result.steps.append(step)
        return step

    def _found(self, found: _Found) -> None:
        r = self.result
        r.protocol, r.line, r.mode = found.protocol, found.line, found.mode
        r.sample, r.devices = found.sample, found.devices

    def _over_budget(self, label: str, deadline: float) -> ProbeStep | None:
        if time.monotonic() < deadline:
            return None
        detail = f"the probe's budget of {self.options.budget:g} s is spent"
        return self._record(ProbeStep(label, SKIPPED, 0, detail))

    async def _run(self, transport: SerialTransport, deadline: float) -> AsyncIterator[ProbeStep]:
        opts = self.options
        quiet = False
        for baud, window in opts.listen:
            label = f"listen {baud} 8N1 (TIC, NMEA, ultrasonic, rtl-wmbus)"
            if quiet:
                yield self._record(ProbeStep(label, SKIPPED, 0, "the line is silent"))
                continue
            if (skipped := self._over_budget(label, deadline)) is not None:
                yield skipped
                continue
            yield ProbeStep(label, RUNNING)
            started = time.monotonic()
            window = min(window, deadline - started)
            found, heard = await self._listen(transport, baud, window)
            seconds = time.monotonic() - started
            if found is not None:
                self._found(found)
                yield self._record(ProbeStep(label, FOUND, seconds, found.detail))
                return
            if heard == 0:
                quiet = True
            detail = "silence" if heard == 0 else f"{heard} bytes, nothing known"
            yield self._record(ProbeStep(label, NOTHING, seconds, detail))
        for label, attempt in (
            ("SPS30 device information at 115200 8N1", self._sps30),
            ("SDS011 working-period query at 9600 8N1", self._sds011),
            ("PMS passive read at 9600 8N1", self._pms),
            ("wireless M-Bus iM871A ping at 57600 8N1", self._wmbus_at(dongles.IM871A)),
            ("wireless M-Bus AMB8465 at 9600 8N1", self._wmbus_at(dongles.AMB8465)),
            ("SDI-12 ?! at 1200 7E1", self._sdi12),
            *((f"M-Bus SND_NKE/REQ_UD2 at {b} 8E1", self._mbus_at(b)) for b in opts.mbus_bauds),
            *(
                (f"Modbus RTU scan at {b} 8{p}1", self._modbus_at(b, p))
                for b, p in opts.modbus_lines
            ),
        ):
            if (skipped := self._over_budget(label, deadline)) is not None:
                yield skipped
                continue
            yield ProbeStep(label, RUNNING)
            started = time.monotonic()
            detail = "no answer"
            try:
                async with asyncio.timeout_at(_loop_time(deadline)):
                    found = await attempt(transport)
            except TimeoutError:
                found, detail = None, f"cut short: the probe's budget of {opts.budget:g} s"
            seconds = time.monotonic() - started
            if found is not None:
                self._found(found)
                yield self._record(ProbeStep(label, FOUND, seconds, found.detail))
                return
            yield self._record(ProbeStep(label, NOTHING, seconds, detail))

    # -- listening -------------------------------------------------------------------------

    async def _listen(
        self, transport: SerialTransport, baud: int, window: float
    ) -> tuple[_Found | None, int]:
        transport.configure(LineSettings(baud))
        transport.reset_input()
        capture = bytearray()
        start = time.monotonic()
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= window:
                return None, len(capture)
            if not capture and elapsed >= self.options.quiet_line:
                return None, 0
            chunk = await transport.read(min(0.25, window - elapsed))
            if not chunk:
                continue
            capture += chunk
            del capture[:-MAX_CAPTURE]
            data = bytes(capture)
            for finder in _FINDERS:
                found = finder(data, baud)
                if found is not None:
                    return found, len(capture)

    # -- wireless M-Bus dongles ------------------------------------------------------------

    def _wmbus_at(self, dongle: str) -> Callable[[SerialTransport], Awaitable[_Found | None]]:
        async def attempt(transport: SerialTransport) -> _Found | None:
            baud = dongles.BAUD[dongle]
            transport.configure(LineSettings(baud))
            transport.reset_input()
            answered, heard = await ask_dongle(
                transport, dongle, self.options.wmbus_timeout, self.options.wmbus_listen
            )
            if not answered:
                return None
            meters = []
            for m, h in sorted(heard.items()):
                signal = signal_text(h.rssi, h.level)
                meters.append(f"{m} ({h.count} telegrams{', ' + signal if signal else ''})")
            detail = f"{dongle} answered; meters heard: {', '.join(meters) or 'none yet'}"
            frames = [h.frame for h in heard.values()]
            return _wmbus_found(dongle, baud, dict(heard), frames, detail)

        return attempt

    # -- particulate-matter sensors that only answer ------------------------------------------

    async def _ask(self, transport: SerialTransport, request: bytes, line: LineSettings) -> bytes:
        """Send `request` on `line`; every byte heard until the line is quiet or the query
        timeout (a read command: it changes nothing on the device)."""
        transport.configure(line)
        transport.reset_input()
        transport.take()
        await transport.write(request)
        heard = bytearray()
        deadline = time.monotonic() + self.options.query_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(heard)
            chunk = await transport.read(remaining if not heard else min(remaining, 0.05))
            if chunk:
                heard += chunk
                del heard[:-MAX_CAPTURE]
            elif heard:
                return bytes(heard)

    async def _sps30(self, transport: SerialTransport) -> _Found | None:
        line = LineSettings(sps30.BAUD_RATE)
        heard = await self._ask(transport, sps30.device_info(0), line)
        stream = sps30.ShdlcStream(sps30.MISO, max_buffer=len(heard) + sps30.MAX_STUFFED)
        stream.receive_data(heard)
        for event in _events(stream):
            if isinstance(event, sps30.ShdlcFrame) and event.command == sps30.DEVICE_INFO:
                sample = _first_valid(sps30.describe(event.raw, {"direction": "miso"}))
                fields = sample.get("fields") if sample else None
                info = fields.get("info") if isinstance(fields, dict) else None
                device = DeviceConfig("air-sps30", interval=10.0)
                return _Found(SPS30, line, None, sample, [device], f"SPS30, product {info}")
        return None

    async def _sds011(self, transport: SerialTransport) -> _Found | None:
        line = LineSettings(sds011.BAUD_RATE)
        heard = await self._ask(transport, sds011.query_working_period(), line)
        stream = sds011.SdsStream(max_buffer=len(heard) + sds011.COMMAND_LEN)
        stream.receive_data(heard)
        for event in _events(stream):
            if not isinstance(event, sds011.SdsFrame):
                continue
            if event.kind == sds011.REPLY and event.command == sds011.WORKING_PERIOD:
                minutes = event.payload[2]
                sample = _first_valid(sds011.describe(event.data, {}))
                device = DeviceConfig("air-sds011", interval=0, duty_cycle=minutes)
                what = f"every {minutes} min" if minutes else "continuous"
                return _Found(SDS011, line, None, sample, [device], f"SDS011 ({what})")
            if event.kind == sds011.DATA:
                sample = _first_valid(sds011.describe(event.data, {}))
                device = DeviceConfig("air-sds011", interval=0)
                return _Found(SDS011, line, None, sample, [device], "SDS011 measurements")
        return None

    async def _pms(self, transport: SerialTransport) -> _Found | None:
        line = LineSettings(pms.BAUD_RATE)
        heard = await self._ask(transport, pms.read_passive(), line)
        stream = pms.PmsStream(max_buffer=len(heard) + pms.MAX_FRAME)
        stream.receive_data(heard)
        for event in _events(stream):
            if isinstance(event, pms.PmsFrame):
                sample = _first_valid(pms.describe(event.data, {}))
                device = DeviceConfig(
                    "air-pms", model=pms.model_for(event), passive=True, interval=60.0
                )
                return _Found(PMS, line, None, sample, [device], "Plantower in passive mode")
        return None

    # -- SDI-12 ----------------------------------------------------------------------------

    async def _sdi12_exchange(
        self, transport: SerialTransport, command: bytes, wake: bool, timeout: float
    ) -> bytes | None:
        if wake:
            await transport.send_break("auto")
        transport.take()
        await transport.write(command)
        lines = sdi12.LineReader()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.next_line()
            except RemoteProtocolError:
                continue
            if line is not None and line != command:
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            chunk = await transport.read(remaining)
            if chunk:
                lines.receive_data(chunk)

    async def _sdi12(self, transport: SerialTransport) -> _Found | None:
        line_settings = LineSettings(sdi12.BAUD_RATE, 7, "E", 1)
        transport.configure(line_settings)
        transport.reset_input()
        timeout = self.options.sdi12_timeout
        address: str | None = None
        for _ in range(2):
            line = await self._sdi12_exchange(transport, b"?!", True, timeout)
            if line is None:
                continue
            try:
                response = sdi12.parse_response(line, b"?!")
            except RemoteProtocolError:
                continue
            address = response.address
            break
        if address is None:
            return None
        sample: dict[str, object] | None = None
        ident_cmd = sdi12.identify(address)
        ident = await self._sdi12_exchange(transport, ident_cmd, True, timeout + 0.3)
        detail = f"sensor at address {address}"
        model: str | None = None
        if ident is not None:
            sample = _first_valid(sdi12.describe(ident_cmd + ident, {}))
            if sample is not None:
                fields = sample.get("fields")
                if isinstance(fields, dict):
                    vendor, model_id = str(fields.get("vendor")), str(fields.get("model"))
                    detail += f": {vendor} {model_id}"
                    model = level.model_from_identification(vendor, model_id)
        device = DeviceConfig(
            f"sdi12-{address}", address=address, measurement="M", interval=60, model=model
        )
        if model is not None:
            detail += f" (level transmitter {model})"
        values = await self._sdi12_measure(transport, address, timeout, device.sdi12_names())
        if values is not None:
            sample = values
        return _Found(SDI12, line_settings, None, sample, [device], detail)

    async def _sdi12_measure(
        self, transport: SerialTransport, address: str, timeout: float, names: str | None
    ) -> dict[str, object] | None:
        """aM!, the service request (or ttt seconds if at most 5), aD0!: a sample with values."""
        start_cmd = sdi12.start_measurement(address)
        line = await self._sdi12_exchange(transport, start_cmd, True, timeout + 0.2)
        if line is None:
            return None
        try:
            started = sdi12.parse_response(line, start_cmd)
        except RemoteProtocolError:
            return None
        if not isinstance(started, sdi12.MeasurementStart) or started.seconds > 5:
            return None
        deadline = time.monotonic() + started.seconds + 0.3
        lines = sdi12.LineReader()
        while started.seconds and time.monotonic() < deadline:
            chunk = await transport.read(deadline - time.monotonic())
            if chunk:
                lines.receive_data(chunk)
                try:
                    if lines.next_line() is not None:
                        break  # the service request
                except RemoteProtocolError:
                    continue
        data_cmd = sdi12.send_data(address, 0)
        data = await self._sdi12_exchange(transport, data_cmd, True, timeout + 0.5)
        if data is None:
            return None
        return _first_valid(sdi12.describe(data_cmd + data, {"names": names} if names else {}))

    # -- M-Bus -----------------------------------------------------------------------------

    def _mbus_at(self, baud: int) -> Callable[[SerialTransport], Awaitable[_Found | None]]:
        async def attempt(transport: SerialTransport) -> _Found | None:
            return await self._mbus(transport, baud)

        return attempt

    async def _mbus_exchange(
        self, transport: SerialTransport, request: bytes
    ) -> tuple[mbus.Frame | None, int]:
        """Send `request`; the frame that answers (or None) and how many bytes came."""
        line = transport.line
        transport.take()
        await transport.write(request)
        parser = mbus.FrameParser()
        heard = 0
        deadline = time.monotonic() + self.options.mbus_timeout + 330 / line.baud
        idle = max(0.05, 40 * line.char_time)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, heard
            chunk = await transport.read(remaining)
            if chunk:
                heard += len(chunk)
                parser.receive_data(chunk)
                deadline = time.monotonic() + idle
            while True:
                try:
                    event = parser.next_event()
                except RemoteProtocolError:
                    continue
                if isinstance(event, mbus.Frame):
                    return event, heard
                break

    async def _mbus_read(
        self, transport: SerialTransport, address: int
    ) -> tuple[mbus.Frame | None, int]:
        """REQ_UD2 (after SND_NKE): the RSP_UD frame if it decodes, and bytes heard."""
        ack, heard = await self._mbus_exchange(transport, mbus.snd_nke(address))
        if ack is None and heard == 0:
            return None, 0
        frame, more = await self._mbus_exchange(transport, mbus.req_ud2(address, True))
        heard += more
        if frame is None:
            return None, heard
        try:
            mbus.decode_response(frame)
        except RemoteProtocolError:
            return None, heard
        return frame, heard

    async def _mbus(self, transport: SerialTransport, baud: int) -> _Found | None:
        line_settings = LineSettings(baud, 8, "E", 1)
        transport.configure(line_settings)
        transport.reset_input()
        frame, heard = await self._mbus_read(transport, 0xFE)
        frames: list[mbus.Frame] = []
        if frame is not None:
            frames.append(frame)
        elif heard:  # answers collided: ask the primary addresses one by one
            for address in self.options.mbus_scan:
                found, _ = await self._mbus_read(transport, address)
                if found is not None:
                    frames.append(found)
        if not frames:
            return None
        devices = [
            DeviceConfig(f"mbus-{f.address}", address=f.address, interval=60) for f in frames
        ]
        sample = mbus.describe_frame(frames[0])
        fields = sample.get("fields")
        medium = fields.get("medium") if isinstance(fields, dict) else None
        detail = f"{len(frames)} meter(s) at {', '.join(str(f.address) for f in frames)}"
        if medium:
            detail += f" ({medium}...)"
        return _Found(MBUS, line_settings, None, sample, devices, detail)

    # -- Modbus RTU ------------------------------------------------------------------------

    def _modbus_at(
        self, baud: int, parity: str
    ) -> Callable[[SerialTransport], Awaitable[_Found | None]]:
        async def attempt(transport: SerialTransport) -> _Found | None:
            return await self._modbus(transport, LineSettings(baud, 8, parity, 1))

        return attempt

    async def _modbus_transact(
        self, transport: SerialTransport, request: modbus.Request
    ) -> modbus.Response | modbus.ModbusException | None:
        line = transport.line
        await transport.wait_silence(modbus.silent_interval(line.baud))
        transport.take()
        master = modbus.Master()
        await transport.write(master.send(request))
        timeout = self.options.modbus_timeout + line.transfer_time(request.response_length())
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                master.reset()
                return None
            chunk = await transport.read(remaining)
            if not chunk:
                continue
            master.receive_data(chunk)
            try:
                event = master.next_event()
            except modbus.ModbusException as e:
                return e
            except RemoteProtocolError:
                await transport.read_until_idle(0.02, 0.2)
                return None
            if isinstance(event, modbus.Response):
                return event

    async def _modbus(self, transport: SerialTransport, line: LineSettings) -> _Found | None:
        transport.configure(line)
        transport.reset_input()
        present = []
        for address in self.options.modbus_addresses:
            answer = await self._modbus_transact(
                transport, modbus.read_holding_registers(address, 0, 1)
            )
            if answer is not None:
                present.append(address)
        if not present:
            return None
        devices: list[DeviceConfig] = []
        sample: dict[str, object] | None = None
        names = []
        for address in present:
            name, found_sample = await self._guess_map(transport, address)
            names.append(f"{address}: {name or 'unknown map'}")
            devices.append(
                DeviceConfig(f"modbus-{address}", address=address, register_map=name, interval=10.0)
            )
            if sample is None:
                sample = found_sample
        detail = "devices " + ", ".join(names)
        return _Found(MODBUS, line, "rtu", sample, devices, detail)

    async def _guess_map(
        self, transport: SerialTransport, address: int
    ) -> tuple[str | None, dict[str, object] | None]:
        fallback: dict[str, object] | None = None
        for name in MAP_ORDER:
            register_map = modbus.get_map(name)
            request = modbus.read_plan(register_map, address)[0]
            answer = await self._modbus_transact(transport, request)
            if not isinstance(answer, modbus.Response) or answer.registers is None:
                continue
            start = request.start or 0
            measurements: list[Measurement] = modbus.decode_registers(
                register_map, start, answer.registers, request.function
            )
            wire = request.encode() + _response_bytes(answer)
            if _PLAUSIBLE[name]({m.name: m.value for m in measurements}):
                return name, _last(describe("modbus", wire, {"map": name}))
            if fallback is None:
                fallback = _last(describe("modbus", wire, {}))
        return None, fallback


def _loop_time(deadline: float) -> float:
    """A `time.monotonic()` deadline on the running loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())


def _events(stream: pms.PmsStream | sds011.SdsStream | sps30.ShdlcStream) -> list[object]:
    """Every frame a stream holds (bad ones skipped)."""
    out: list[object] = []
    while True:
        try:
            event = stream.next_event()
        except RemoteProtocolError:
            continue
        if isinstance(event, NeedData):
            return out
        out.append(event)


def _response_bytes(response: modbus.Response) -> bytes:
    """The wire form of a register read response (for `describe`)."""
    registers = response.registers or ()
    data = b"".join(r.to_bytes(2, "big") for r in registers)
    return modbus.encode_frame(response.address, response.function, bytes((len(data),)) + data)


def _last(results: list[dict[str, object]]) -> dict[str, object] | None:
    return results[-1] if results else None


async def probe(path: str, options: ProbeOptions | None = None) -> ProbeResult:
    """Probe `path` and return what it speaks (see the module docstring)."""
    prober = Prober(path, options)
    async for _step in prober.steps():
        pass
    return prober.result


__all__ = [
    "FOUND",
    "NOTHING",
    "RUNNING",
    "SKIPPED",
    "TALKERS",
    "PortUnavailable",
    "ProbeOptions",
    "ProbeResult",
    "ProbeStep",
    "Prober",
    "Talker",
    "listen_windows",
    "probe",
]
