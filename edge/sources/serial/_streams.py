"""Passive streams: the device talks on its own, the session listens (TIC, ultrasonic, NMEA)."""

from __future__ import annotations

from edge.sources import ReadingSink
from edge.sources.serial._config import SerialPortConfig
from edge.sources.serial._session import NOISE, Clock, Session, SilenceWatch
from edge.sources.serial._transport import SerialTransport
from protocols import nmea, tic, ultrasonic
from protocols.errors import UNSUPPORTED, RemoteProtocolError

POLL = 1.0  # longest wait for bytes before the silence check runs again


class _StreamSession(Session):
    async def run(self, transport: SerialTransport) -> None:
        device = self.config.devices[0]
        watch = SilenceWatch(self, device.sensor, self.config.silence)
        while True:
            data = await transport.read(min(POLL, max(watch.remaining(), 0.05)))
            if data and await self.feed(data):
                watch.heard()
            watch.check()

    async def feed(self, data: bytes) -> bool:
        """Take bytes; True when at least one valid frame came out of them."""
        raise NotImplementedError


class TicSession(_StreamSession):
    """A Linky (or older electronic meter) in historique or standard mode."""

    def __init__(self, config: SerialPortConfig, sink: ReadingSink, clock: Clock) -> None:
        super().__init__(config, sink, clock)
        self.stream = tic.TicStream(self.config.tic_mode)
        self._discarded = 0
        self._synced = False

    async def feed(self, data: bytes) -> bool:
        device = self.config.devices[0]
        sensor = device.sensor
        self.stream.receive_data(data)
        good = False
        while True:
            try:
                event = self.stream.next_event()
            except RemoteProtocolError as e:
                self.count(sensor, e.reason, e.message)
                continue
            if not isinstance(event, tic.Frame):
                break
            if self._synced and self.stream.discarded > self._discarded:
                skipped = self.stream.discarded - self._discarded
                self.count(sensor, NOISE, f"{skipped} bytes outside frames")
            self._discarded = self.stream.discarded
            self._synced = True
            for error in event.errors():
                reason, _, message = error.partition(": ")
                self.count(sensor, reason, message)
            measurements = event.measurements()
            if measurements:
                good = True
                if self.due(sensor, device.interval):
                    await self.emit(device, measurements)
        return good


class UltrasonicSession(_StreamSession):
    """A MaxBotix or A02YYUW level sensor: distance and, with a bin geometry, fill."""

    def __init__(self, config: SerialPortConfig, sink: ReadingSink, clock: Clock) -> None:
        super().__init__(config, sink, clock)
        device = self.config.devices[0]
        self.model = device.model
        self.geometry = device.geometry()
        frame_format = ultrasonic.MODELS[self.model][0] if self.model else None
        self.stream = ultrasonic.UltrasonicStream(frame_format)
        self._synced = False

    async def feed(self, data: bytes) -> bool:
        device = self.config.devices[0]
        sensor = device.sensor
        try:
            self.stream.receive_data(data)
        except RemoteProtocolError as e:
            self.count(sensor, e.reason, e.message)
        good = False
        while True:
            try:
                event = self.stream.next_event()
                if not isinstance(event, ultrasonic.DistanceFrame):
                    break
                level = ultrasonic.measure(event, self.model, self.geometry)
            except RemoteProtocolError as e:
                self.count(sensor, e.reason, e.message)
                continue
            if self._synced and event.skipped:
                self.count(sensor, NOISE, f"{event.skipped} bytes outside frames")
            self._synced = True
            good = True
            measurements = level.measurements()
            if measurements and self.due(sensor, device.interval):
                await self.emit(device, measurements)
        return good


class NmeaSession(_StreamSession):
    """NMEA 0183 instruments; a device's `address` filters by talker id."""

    def __init__(self, config: SerialPortConfig, sink: ReadingSink, clock: Clock) -> None:
        super().__init__(config, sink, clock)
        self.reader = nmea.SentenceReader()

    async def feed(self, data: bytes) -> bool:
        fallback = self.config.devices[0].sensor
        self.reader.receive_data(data)
        good = False
        while True:
            try:
                line = self.reader.next_line()
                if line is None:
                    break
                sentence = nmea.parse_sentence(line)
            except RemoteProtocolError as e:
                self.count(fallback, e.reason, e.message)
                continue
            device = next(
                (
                    d
                    for d in self.config.devices
                    if d.address is None
                    or (isinstance(d.address, str) and sentence.talker.startswith(d.address))
                ),
                None,
            )
            if device is None:
                continue
            if sentence.checksum is None:
                self.count(device.sensor, "checksum", f"{sentence.address} without checksum")
                continue
            try:
                _fields, measurements = nmea.decode(sentence)
            except RemoteProtocolError as e:
                if e.reason != UNSUPPORTED:  # a sentence type we do not read is no error
                    self.count(device.sensor, e.reason, e.message)
                continue
            good = True
            if measurements and self.due((device.sensor, sentence.type), device.interval):
                await self.emit(device, measurements)
        return good


__all__ = ["NmeaSession", "TicSession", "UltrasonicSession"]
