"""Particulate-matter sensors: Plantower PMS, Nova SDS011, Sensirion SPS30.

- PMS: active mode (the sensor talks, one frame's readings per `interval`), or passive mode
  (`passive = true`: a read command every `interval`), optionally asleep between reads
  (`sleep = true`: woken `pms.WARMUP` seconds before each read, to spare laser and fan).
  The port's opening wakes the sensor and sets the configured mode: a sensor left asleep
  or in the other mode by an earlier configuration comes back by itself.
- SDS011: the sensor talks; with `duty_cycle = N` the gateway wakes it, sets active
  reporting and the working period when the port opens, and checks each reply. A sleeping
  sensor is silent for up to N minutes: the silence limit grows with the period.
- SPS30: SHDLC master: start measurement (a refusal because it already measures is fine),
  then read the measured values every `interval`; "no new values" is not an error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from edge.sources import ReadingSink
from edge.sources.serial._config import SerialPortConfig
from edge.sources.serial._session import NO_RESPONSE, NOISE, Clock, Session, SilenceWatch
from edge.sources.serial._transport import SerialTransport
from protocols import pms, sds011, sps30
from protocols.errors import EXCEPTION, RemoteProtocolError

POLL = 1.0  # longest wait for bytes before the silence check runs again
NOT_CONFIRMED = "not_confirmed"  # a setting the sensor did not acknowledge
WARMING_UP = "warming_up"  # a frame sent while the fan settles: not a measurement


class PmsSession(Session):
    """A Plantower PMS5003/7003/5003T/5003ST; see the module docstring."""

    def __init__(self, config: SerialPortConfig, sink: ReadingSink, clock: Clock) -> None:
        super().__init__(config, sink, clock)
        self.device = config.devices[0]
        self.stream = pms.PmsStream()
        self.replies: list[pms.PmsReply] = []
        self._synced = False
        self._spoilt = False

    def _feed(self, data: bytes) -> list[pms.PmsFrame]:
        sensor = self.device.sensor
        try:
            self.stream.receive_data(data)
        except RemoteProtocolError as e:
            self.count(sensor, e.reason, e.message)
        frames: list[pms.PmsFrame] = []
        while True:
            try:
                event = self.stream.next_event()
            except RemoteProtocolError as e:
                self.count(sensor, e.reason, e.message)
                self._spoilt = True  # the rest of the bad frame is not noise as well
                continue
            if not isinstance(event, (pms.PmsFrame, pms.PmsReply)):
                return frames
            if self._synced and event.skipped and not self._spoilt:
                self.count(sensor, NOISE, f"{event.skipped} bytes outside frames")
            self._synced = True
            self._spoilt = False
            if isinstance(event, pms.PmsReply):
                self.replies.append(event)
            else:
                frames.append(event)

    async def _emit_frame(self, frame: pms.PmsFrame, decimate: bool) -> bool:
        try:
            found = pms.measurements(frame, self.device.model)
        except RemoteProtocolError as e:
            self.count(self.device.sensor, e.reason, e.message)
            return False
        if frame.error_code:
            self.count(self.device.sensor, EXCEPTION, f"sensor error code {frame.error_code}")
        if not decimate or self.due(self.device.sensor, self.device.interval):
            await self.emit(self.device, found)
        return True

    async def _command(self, transport: SerialTransport, data: bytes, what: str) -> None:
        """Send a mode or sleep command and wait for its reply (counted when missing)."""
        self.replies.clear()
        await transport.write(data)
        deadline = time.monotonic() + self.config.response_timeout
        while not self.replies and time.monotonic() < deadline:
            chunk = await transport.read(deadline - time.monotonic())
            if chunk:
                for frame in self._feed(chunk):
                    await self._emit_frame(frame, True)
        if not self.replies:
            self.count(self.device.sensor, NOT_CONFIRMED, f"no reply to {what}")

    async def run(self, transport: SerialTransport) -> None:
        device = self.device
        await self._command(transport, pms.wake(), "wake-up")
        await self._command(transport, pms.set_mode(not device.passive), "the mode command")
        if device.passive:
            await self._passive(transport)
        else:
            await self._active(transport)

    async def _active(self, transport: SerialTransport) -> None:
        watch = SilenceWatch(self, self.device.sensor, self.config.silence)
        while True:
            data = await transport.read(min(POLL, max(watch.remaining(), 0.05)))
            if data:
                heard = False
                for frame in self._feed(data):
                    heard = await self._emit_frame(frame, True) or heard
                if heard:
                    watch.heard()
            watch.check()

    async def _passive(self, transport: SerialTransport) -> None:
        device = self.device
        due = time.monotonic()
        woken = False
        if device.sleep:
            # the port's opening just woke it (it was asleep if a gateway put it to sleep):
            # the first read waits for the fan to settle, like every later one
            due += pms.WARMUP
            woken = True
        while True:
            if device.sleep and not woken:
                await self._until(transport, due - pms.WARMUP)
                await self._command(transport, pms.wake(), "wake-up")
            woken = False
            await self._until(transport, due, warming_up=device.sleep)
            await transport.write(pms.read_passive())
            line = transport.line
            deadline = time.monotonic() + self.config.response_timeout + line.transfer_time(40)
            got = False
            while not got and time.monotonic() < deadline:
                chunk = await transport.read(deadline - time.monotonic())
                for frame in self._feed(chunk) if chunk else ():
                    got = await self._emit_frame(frame, False) or got
            if not got:
                self.count(device.sensor, NO_RESPONSE, "no frame after a passive read")
            if device.sleep:
                await self._command(transport, pms.sleep(), "sleep")
            due += device.interval
            if due < time.monotonic():
                due = time.monotonic() + device.interval

    async def _until(
        self, transport: SerialTransport, when: float, warming_up: bool = False
    ) -> None:
        """Listen (and count what comes) until monotonic time `when`. While the sensor warms
        up, a frame it sends unasked (woken still in active mode, before the mode command
        reached it) is counted, not read: the fan has not settled."""
        while True:
            left = when - time.monotonic()
            if left <= 0:
                return
            chunk = await transport.read(min(left, POLL))
            if chunk:
                for frame in self._feed(chunk):
                    if warming_up:
                        self.count(self.device.sensor, WARMING_UP, "a frame before the fan settled")
                    else:
                        await self._emit_frame(frame, True)


class Sds011Session(Session):
    """A Nova SDS011; see the module docstring."""

    def __init__(self, config: SerialPortConfig, sink: ReadingSink, clock: Clock) -> None:
        super().__init__(config, sink, clock)
        self.device = config.devices[0]
        self.stream = sds011.SdsStream()
        self.replies: list[sds011.SdsFrame] = []
        self._synced = False
        self._spoilt = False

    @property
    def silence(self) -> float:
        if self.config.silence_timeout is not None or not self.device.duty_cycle:
            return self.config.silence
        return self.config.silence + self.device.duty_cycle * 60.0

    async def _feed(self, data: bytes) -> bool:
        sensor = self.device.sensor
        try:
            self.stream.receive_data(data)
        except RemoteProtocolError as e:
            self.count(sensor, e.reason, e.message)
        good = False
        while True:
            try:
                event = self.stream.next_event()
            except RemoteProtocolError as e:
                self.count(sensor, e.reason, e.message)
                self._spoilt = True  # the rest of the bad frame is not noise as well
                continue
            if not isinstance(event, sds011.SdsFrame):
                return good
            if self._synced and event.skipped and not self._spoilt:
                self.count(sensor, NOISE, f"{event.skipped} bytes outside frames")
            self._synced = True
            self._spoilt = False
            good = True
            if event.kind == sds011.REPLY:
                self.replies.append(event)
            elif self.due(sensor, self.device.interval):
                await self.emit(self.device, sds011.measurements(event))

    async def _set(
        self,
        transport: SerialTransport,
        data: bytes,
        what: str,
        confirmed: Callable[[sds011.SdsFrame], bool],
    ) -> None:
        self.replies.clear()
        await transport.write(data)
        deadline = time.monotonic() + self.config.response_timeout
        while time.monotonic() < deadline:
            if any(confirmed(r) for r in self.replies):
                return
            chunk = await transport.read(deadline - time.monotonic())
            if chunk:
                await self._feed(chunk)
        if not any(confirmed(r) for r in self.replies):
            self.count(self.device.sensor, NOT_CONFIRMED, f"no reply to {what}")

    async def run(self, transport: SerialTransport) -> None:
        period = self.device.duty_cycle
        if period is not None:
            await self._set(
                transport,
                sds011.set_sleep(False),
                "work",
                lambda r: r.command == sds011.SLEEP_WORK and r.payload[2] == 1,
            )
            await self._set(
                transport,
                sds011.set_reporting_mode(False),
                "active reporting",
                lambda r: r.command == sds011.REPORTING_MODE and r.payload[2] == 0,
            )
            await self._set(
                transport,
                sds011.set_working_period(period),
                f"working period {period} min",
                lambda r: r.command == sds011.WORKING_PERIOD and r.payload[2] == period,
            )
        watch = SilenceWatch(self, self.device.sensor, self.silence)
        while True:
            data = await transport.read(min(POLL, max(watch.remaining(), 0.05)))
            if data and await self._feed(data):
                watch.heard()
            watch.check()


class Sps30Session(Session):
    """A Sensirion SPS30 over UART (SHDLC); see the module docstring."""

    def __init__(self, config: SerialPortConfig, sink: ReadingSink, clock: Clock) -> None:
        super().__init__(config, sink, clock)
        self.device = config.devices[0]
        self.stream = sps30.ShdlcStream(sps30.MISO)
        self.started = False

    async def exchange(self, transport: SerialTransport, request: bytes) -> sps30.ShdlcFrame | None:
        """Send `request`; the answer to its command, or None (counted) after the timeout."""
        sensor = self.device.sensor
        stray = transport.take()
        if stray:
            self.count(sensor, NOISE, f"{len(stray)} unsolicited bytes")
        await transport.write(request)
        command = request[request.index(0x7E) + 2]
        deadline = time.monotonic() + self.config.response_timeout
        while True:
            try:
                event = self.stream.next_event()
            except RemoteProtocolError as e:
                self.count(sensor, e.reason, e.message)
                continue
            if isinstance(event, sps30.ShdlcFrame):
                if event.command == command:
                    return event
                self.count(sensor, NOISE, f"answer to command 0x{event.command:02X}")
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                self.count(sensor, NO_RESPONSE, f"command 0x{command:02X}")
                return None
            chunk = await transport.read(left)
            if chunk:
                try:
                    self.stream.receive_data(chunk)
                except RemoteProtocolError as e:
                    self.count(sensor, e.reason, e.message)

    async def start(self, transport: SerialTransport) -> None:
        answer = await self.exchange(transport, sps30.start_measurement())
        if answer is None:
            return
        if answer.state in (0, 0x43):  # 0x43: it measures already
            self.started = True
            return
        self.count(self.device.sensor, EXCEPTION, f"start measurement: {answer.error}")

    async def run(self, transport: SerialTransport) -> None:
        device = self.device
        due = time.monotonic()
        while True:
            if not self.started:
                await self.start(transport)
            if self.started:
                answer = await self.exchange(transport, sps30.read_values())
                if answer is not None:
                    try:
                        found = sps30.values(answer)
                    except RemoteProtocolError as e:
                        self.count(device.sensor, e.reason, e.message)
                        if answer.state == 0x43:  # not measuring (reset, power cut)
                            self.started = False
                    else:
                        if found:
                            await self.emit(device, found)
            due += device.interval
            delay = due - time.monotonic()
            if delay < 0:
                due = time.monotonic()
                delay = 0.0
            await asyncio.sleep(delay)


__all__ = ["NOT_CONFIRMED", "PmsSession", "Sds011Session", "Sps30Session"]
