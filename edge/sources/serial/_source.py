"""`SerialSource`: one serial port, its protocol, its devices; kept alive across unplugs."""

from __future__ import annotations

import asyncio
import time

from edge.sources import ReadingSink, SourceState
from edge.sources.serial._air import PmsSession, Sds011Session, Sps30Session
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
    SerialPortConfig,
)
from edge.sources.serial._masters import MbusSession, ModbusSession, Sdi12Session
from edge.sources.serial._session import UNAVAILABLE, UNPLUGGED, Clock, Session, utc_ms
from edge.sources.serial._streams import NmeaSession, TicSession, UltrasonicSession
from edge.sources.serial._transport import PortLost, PortUnavailable, SerialTransport
from edge.sources.serial._wmbus import WmbusSession

_SESSIONS: dict[str, type[Session]] = {
    TIC: TicSession,
    ULTRASONIC: UltrasonicSession,
    NMEA: NmeaSession,
    MODBUS: ModbusSession,
    MBUS: MbusSession,
    SDI12: Sdi12Session,
    WMBUS: WmbusSession,
    PMS: PmsSession,
    SDS011: Sds011Session,
    SPS30: Sps30Session,
}


class SerialSource:
    """A `Source` (edge.sources) for one serial port.

    `run(sink)` opens the port, runs the protocol's session on it and, when the port
    disappears or cannot be opened, reports the source DOWN, counts the error (``unplugged``
    when it went away, ``unavailable`` when it cannot be opened: once per outage, not per
    attempt) and tries again after a backoff that doubles from `reconnect_min` to
    `reconnect_max` seconds; once the port has stayed up for a while the backoff starts
    over. It returns only when cancelled.
    """

    def __init__(self, config: SerialPortConfig, *, clock: Clock = utc_ms) -> None:
        self.config = config
        self.name = config.source_name
        self.clock = clock
        self.state = SourceState.CONNECTING
        self.detail = ""
        self.connects = 0  # successful opens
        self.bytes_in = 0
        self.bytes_out = 0
        self.readings = 0

    def _set(self, sink: ReadingSink, state: str, detail: str = "") -> None:
        self.state, self.detail = state, detail
        sink.set_state(self.name, state, detail)

    async def run(self, sink: ReadingSink) -> None:
        config = self.config
        delay = config.reconnect_min
        outage = False  # an error was counted for the current outage
        self._set(sink, SourceState.CONNECTING)
        while True:
            transport = SerialTransport(config.path, config.line)
            try:
                transport.open()
            except PortUnavailable as e:
                if not outage:
                    sink.count_error(self.name, UNAVAILABLE, str(e))
                    outage = True
                self._set(sink, SourceState.DOWN, f"{e}; retry in {delay:.1f} s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, config.reconnect_max)
                continue
            self.connects += 1
            outage = False
            opened = time.monotonic()
            self._set(sink, SourceState.UP, str(config.line))
            session = _SESSIONS[config.protocol](config, sink, self.clock)
            try:
                await session.run(transport)
            except PortLost as e:
                if time.monotonic() - opened >= 10 * config.reconnect_min:
                    delay = config.reconnect_min  # it was up a while: start the backoff over
                sink.count_error(self.name, UNPLUGGED, str(e))
                outage = True
                self._set(sink, SourceState.DOWN, f"{e}; retry in {delay:.1f} s")
            finally:
                self.bytes_in += transport.bytes_in
                self.bytes_out += transport.bytes_out
                self.readings += session.readings
                transport.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, config.reconnect_max)


__all__ = ["SerialSource"]
