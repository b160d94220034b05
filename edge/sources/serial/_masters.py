"""Bus masters: the session asks, the devices answer (Modbus RTU, M-Bus, SDI-12).

Each session polls its devices on their intervals, one exchange at a time on the bus, and
hands over each device's readings with one timestamp. A device that does not answer, or
answers garbage, is counted and polled again at its next turn: it never holds up the others
for longer than its timeouts.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from edge.sources import ReadingSink
from edge.sources.serial._config import (
    DeviceConfig,
    SerialPortConfig,
    mbus_selection,
    sdi12_command,
)
from edge.sources.serial._session import NO_RESPONSE, NOISE, Clock, Session
from edge.sources.serial._transport import SerialTransport
from protocols import mbus, modbus, sdi12
from protocols.errors import EXCEPTION, LocalProtocolError, RemoteProtocolError
from protocols.mbus.records import FUNCTION_MANUFACTURER
from protocols.reading import Measurement

SDI12_IDLE_BREAK: Final = sdi12.BREAK_AFTER_IDLE_MS / 1000  # marking longer than this: break
SDI12_LINE_MARGIN: Final = 0.25  # added to the spec's line time (USB latency, scheduling)


class _NoAnswer(Exception):
    pass


class _Scheduler:
    """When each device is next due. Devices start staggered so that a bus of many does
    not poll them all in the same second after a (re)connection."""

    def __init__(self, devices: tuple[DeviceConfig, ...]) -> None:
        now = time.monotonic()
        self.devices = devices
        self.next = [now + 0.05 * i for i in range(len(devices))]

    async def wait_next(self) -> int:
        index = min(range(len(self.devices)), key=self.next.__getitem__)
        delay = self.next[index] - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return index

    def done(self, index: int) -> None:
        now = time.monotonic()
        self.next[index] += self.devices[index].interval
        if self.next[index] < now:  # fell behind (a slow bus): no burst of catch-up polls
            self.next[index] = now + self.devices[index].interval


class _Master(Session):
    """A bus master: polls its devices in turn, each on its interval (`_Scheduler`)."""

    async def run(self, transport: SerialTransport) -> None:
        scheduler = _Scheduler(self.config.devices)
        while True:
            index = await scheduler.wait_next()
            await self.poll(transport, index)
            scheduler.done(index)

    async def poll(self, transport: SerialTransport, index: int) -> None:
        """One exchange with device `index`; its readings go to the sink."""
        raise NotImplementedError


class ModbusSession(_Master):
    """Modbus RTU master: each device's map read with as few requests as the map allows
    (`protocols.modbus.read_plan`), with the 3.5-character silence before every request."""

    def __init__(self, config: SerialPortConfig, sink: ReadingSink, clock: Clock) -> None:
        super().__init__(config, sink, clock)
        self.maps = [d.resolved_map() for d in config.devices]
        self.plans = [
            modbus.read_plan(m, d.address if isinstance(d.address, int) else None)
            for m, d in zip(self.maps, config.devices, strict=True)
        ]
        self.gap = modbus.silent_interval(config.line.baud)

    async def poll(self, transport: SerialTransport, index: int) -> None:
        device = self.config.devices[index]
        register_map = self.maps[index]
        ts = self.clock()
        found: list[Measurement] = []
        for request in self.plans[index]:
            try:
                response = await self.transact(transport, request)
            except _NoAnswer:
                self.count(device.sensor, NO_RESPONSE, f"address {request.address}")
                break  # it is not there: do not wait out every other request too
            except modbus.ModbusException as e:
                self.count(device.sensor, EXCEPTION, e.message)
                continue
            except RemoteProtocolError as e:
                self.count(device.sensor, e.reason, e.message)
                await transport.read_until_idle(self.gap * 2, self.config.response_timeout)
                continue
            found += modbus.decode_registers(
                register_map, request.start or 0, response.registers or (), request.function
            )
        if found:
            await self.emit(device, found, ts)

    async def transact(
        self, transport: SerialTransport, request: modbus.Request
    ) -> modbus.Response:
        await transport.wait_silence(self.gap)
        stray = transport.take()
        if stray:
            self.count(self.source, NOISE, f"{len(stray)} unsolicited bytes")
        master = modbus.Master(echo=self.config.echo)
        await transport.write(master.send(request))
        deadline = time.monotonic() + self.config.response_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                master.reset()
                raise _NoAnswer
            data = await transport.read(remaining)
            if not data:
                continue
            master.receive_data(data)
            event = master.next_event()
            if isinstance(event, modbus.Response):
                return event


class MbusSession(_Master):
    """M-Bus master: per meter SND_NKE, the secondary selection when the address is one,
    then REQ_UD2 with the FCB toggled while the meter says more telegrams follow
    (`protocols.mbus.MultiTelegramReader`)."""

    def reader(self, device: DeviceConfig) -> mbus.MultiTelegramReader:
        if isinstance(device.address, str):
            return mbus.MultiTelegramReader(
                select=mbus_selection(device.address),
                reset=False,
                max_telegrams=device.max_telegrams,
            )
        address = device.address if isinstance(device.address, int) else 0xFE
        return mbus.MultiTelegramReader(address, max_telegrams=device.max_telegrams)

    async def poll(self, transport: SerialTransport, index: int) -> None:
        device = self.config.devices[index]
        ts = self.clock()
        reader = self.reader(device)
        parser = mbus.FrameParser()
        if isinstance(device.address, str):
            # SND_NKE to 0xFD resets and deselects whichever meter was selected before
            # (none answers when none was): then the selection starts from a clean bus.
            transport.take()
            await transport.write(mbus.snd_nke(0xFD))
            await self.read_frame(transport, parser, device.sensor, quiet=True)
            parser = mbus.FrameParser()
        request: bytes | None = reader.start()
        while request is not None:
            transport.take()
            await transport.write(request)
            frame = await self.read_frame(transport, parser, device.sensor)
            if frame is None:
                request = reader.timeout()
                if request is None:
                    self.count(device.sensor, NO_RESPONSE, f"address {device.address}")
                continue
            try:
                request = reader.receive_frame(frame)
            except RemoteProtocolError as e:
                self.count(device.sensor, e.reason, e.message)
                request = reader.timeout()
        if reader.failed and not reader.telegrams:
            return
        measurements = [
            r.measurement() for r in reader.records() if r.function != FUNCTION_MANUFACTURER
        ]
        await self.emit(device, measurements, ts)

    async def read_frame(
        self,
        transport: SerialTransport,
        parser: mbus.FrameParser,
        sensor: str,
        quiet: bool = False,
    ) -> mbus.Frame | None:
        """The next frame, or None when none arrived in time (errors counted unless quiet)."""
        line = self.config.line
        first = time.monotonic() + self.config.response_timeout
        idle = max(0.05, 40 * line.char_time)  # a frame's bytes follow each other closely
        deadline = first
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            data = await transport.read(remaining)
            if data:
                parser.receive_data(data)
                deadline = time.monotonic() + idle
            while True:
                try:
                    event = parser.next_event()
                except RemoteProtocolError as e:
                    if not quiet:
                        self.count(sensor, e.reason, e.message)
                    continue
                if isinstance(event, mbus.Frame):
                    return event
                break


class Sdi12Session(_Master):
    """SDI-12 data recorder: break (when the line has idled), measurement command, wait
    for the service request (or the announced time), then aD0!, aD1!... until every
    announced value is in (`protocols.sdi12.MeasureSequence`)."""

    async def poll(self, transport: SerialTransport, index: int) -> None:
        device = self.config.devices[index]
        address = device.address if isinstance(device.address, str) else "0"
        concurrent, crc, measurement = sdi12_command(device.measurement, "measurement")
        sequence = sdi12.MeasureSequence(address, measurement, concurrent, crc)
        lines = sdi12.LineReader()
        ts = self.clock()
        action: sdi12.Send | sdi12.Wait | sdi12.Done = sequence.start()
        while True:
            try:
                if isinstance(action, sdi12.Done):
                    await self.emit(device, sdi12.readings(action.values, device.sdi12_names()), ts)
                    return
                if isinstance(action, sdi12.Wait):
                    action = await self.wait(transport, lines, sequence, action, device.sensor)
                    continue
                await self.send(transport, action)
                answer = await self.answer(transport, lines, sequence, action)
                if answer is None:
                    self.count(device.sensor, NO_RESPONSE, action.command.decode())
                    action = sequence.retry()
                else:
                    action = answer
            except RemoteProtocolError as e:
                self.count(device.sensor, e.reason, e.message)
                try:
                    action = sequence.retry()
                except RemoteProtocolError:
                    return  # the spec's tries are spent: next turn
                except LocalProtocolError:
                    return  # nothing to repeat in this state: next turn

    async def send(self, transport: SerialTransport, action: sdi12.Send) -> None:
        idle = time.monotonic() - max(transport.last_rx, transport.last_tx)
        if action.wake or idle > SDI12_IDLE_BREAK:
            await transport.send_break(self.config.wake)
        transport.take()
        await transport.write(action.command)

    async def answer(
        self,
        transport: SerialTransport,
        lines: sdi12.LineReader,
        sequence: sdi12.MeasureSequence,
        action: sdi12.Send,
    ) -> sdi12.Send | sdi12.Wait | sdi12.Done | None:
        """The sequence's next action after the response to `action` (None: no response)."""
        limit = max(action.line_ms / 1000, self.config.response_timeout) + SDI12_LINE_MARGIN
        deadline = time.monotonic() + limit
        while True:
            line = lines.next_line()
            if line is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                chunk = await transport.read(remaining)
                if chunk:  # never b"": that tells the reader the stream ended
                    lines.receive_data(chunk)
                continue
            result = sequence.receive(line)
            if result is not None:  # None: the echo of our own command
                return result

    async def wait(
        self,
        transport: SerialTransport,
        lines: sdi12.LineReader,
        sequence: sdi12.MeasureSequence,
        action: sdi12.Wait,
        sensor: str,
    ) -> sdi12.Send | sdi12.Wait | sdi12.Done:
        """Wait for the service request (or the announced time), then what comes next."""
        deadline = time.monotonic() + action.seconds + SDI12_LINE_MARGIN
        while action.service_request:
            try:
                line = lines.next_line()
                if line is not None:
                    result = sequence.receive(line)
                    if result is not None:
                        return result
                    continue
            except RemoteProtocolError as e:  # a garbled service request: wait it out
                self.count(sensor, e.reason, e.message)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            chunk = await transport.read(remaining)
            if chunk:
                lines.receive_data(chunk)
        if not action.service_request:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        return sequence.elapsed()


__all__ = ["MbusSession", "ModbusSession", "Sdi12Session"]
