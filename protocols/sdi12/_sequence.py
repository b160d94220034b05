"""SDI-12 on the line: `LineReader` (framing) and `MeasureSequence` (the master sequence).

Firmware-style: standard library only, the part MicroPython has.
"""

from protocols._stream import LineBuffer
from protocols._typing import TYPE_CHECKING
from protocols.errors import (
    EXCEPTION,
    MALFORMED,
    OVERFLOW,
    TRUNCATED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.sdi12._commands import (
    CHAR_GAP_MS,
    CHAR_MS,
    MAX_LINE,
    MAX_VALUES_C,
    MAX_VALUES_M,
    RETRY_MIN_MS,
    TRIES,
    WAKES,
    _check_address,
    _check_index,
    acknowledge,
    send_data,
    start_concurrent,
    start_measurement,
    start_verification,
)
from protocols.sdi12._responses import Acknowledge, DataValues, MeasurementStart, parse_response

if TYPE_CHECKING:
    from typing import Union

    from protocols.sdi12._responses import Value


# -- line framing -------------------------------------------------------------------------


class LineReader(LineBuffer):
    """Frames the bytes read from the bus into lines, h11 style.

    `receive_data(data)` then `next_line()` until it returns None (more data needed). A line
    is a response ending in CR LF, or a command ending in '!' (half-duplex adapters echo what
    we send; `MeasureSequence.receive` ignores the echo). Returned lines keep their
    terminator. NUL bytes before a line (a break as the UART sees it) are skipped.
    `receive_data(b"")` marks the end of the stream: a pending partial line is then returned
    as it is, without terminator, so that the parser can say what it lacks. A line longer
    than MAX_LINE raises RemoteProtocolError(OVERFLOW); its rest is skipped up to the next
    terminator."""

    __slots__ = ("_skipping",)

    def __init__(self) -> "None":
        super().__init__()
        self._skipping = False

    def next_line(self) -> "bytes | None":
        buf = self._buf
        while True:
            start = 0
            n = len(buf)
            while start < n and buf[start] == 0:
                start += 1
            if start:
                buf[:start] = b""
                n = len(buf)
            bang = buf.find(b"!")
            lf = buf.find(b"\n")
            if bang < 0 and lf < 0:
                end = -1
            elif bang < 0:
                end = lf
            elif lf < 0:
                end = bang
            else:
                end = bang if bang < lf else lf
            if self._skipping:
                if end < 0:
                    buf[:] = b""
                    return None
                buf[: end + 1] = b""
                self._skipping = False
                continue
            if end < 0:
                if n > MAX_LINE:
                    buf[:] = b""
                    self._skipping = True
                    raise RemoteProtocolError(OVERFLOW, "no line end in %d bytes" % MAX_LINE)
                if self._eof and n:
                    line = bytes(buf)
                    buf[:] = b""
                    return line
                return None
            if end + 1 > MAX_LINE:
                buf[: end + 1] = b""
                raise RemoteProtocolError(OVERFLOW, "line longer than %d bytes" % MAX_LINE)
            line = bytes(buf[: end + 1])
            buf[: end + 1] = b""
            if end == lf and line[-2:] != b"\r\n":
                raise RemoteProtocolError(MALFORMED, "line ends with LF without CR")
            return line


# -- the measure-then-read master sequence -------------------------------------------------


class Send:
    """Send `command`. With `wake`, first a break (>= BREAK_MS of spacing) then MARKING_MS of
    marking. The response should start within `timeout_ms`; if it does not (or is invalid),
    call `retry()`. The whole response line arrives within `line_ms`."""

    __slots__ = ("command", "line_ms", "timeout_ms", "wake")

    def __init__(self, command: "bytes", wake: "bool", line_chars: "int" = 81) -> "None":
        self.command = command
        self.wake = wake
        self.timeout_ms = RETRY_MIN_MS
        self.line_ms = RETRY_MIN_MS + line_chars * (CHAR_MS + CHAR_GAP_MS)

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Send) and (self.command, self.wake) == (other.command, other.wake)

    def __repr__(self) -> "str":
        return "Send(%r, wake=%r)" % (self.command, self.wake)


class Wait:
    """Wait up to `seconds` for the data. With `service_request`, the sensor announces them
    earlier with a service request `a<CR><LF>`: feed it to `receive()`. When the time is up,
    call `elapsed()`. Without `service_request` (concurrent measurement) the bus is free for
    other sensors meanwhile."""

    __slots__ = ("seconds", "service_request")

    def __init__(self, seconds: "int", service_request: "bool") -> "None":
        self.seconds = seconds
        self.service_request = service_request

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Wait) and (self.seconds, self.service_request) == (
            other.seconds,
            other.service_request,
        )

    def __repr__(self) -> "str":
        return "Wait(%r, service_request=%r)" % (self.seconds, self.service_request)


class Done:
    """The measurement's values, in order."""

    __slots__ = ("values",)

    def __init__(self, values: "list[Value]") -> "None":
        self.values = values

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Done) and self.values == other.values

    def __repr__(self) -> "str":
        return "Done(%r)" % (self.values,)


if TYPE_CHECKING:
    Action = Union[Send, Wait, Done]

_IDLE = "idle"
_STARTED = "started"  # command sent, waiting for atttn / atttnn
_WAITING = "waiting"  # waiting ttt seconds or for the service request
_READING = "reading"  # aDn! sent
_DONE = "done"


class MeasureSequence:
    """Sans-IO data recorder for one measurement: M (or Mn, MC, MCn), C (Cn, CC, CCn) or V,
    then D0, D1... until the announced number of values is in.

    `start()` gives the first Send. Feed every response line to `receive(line)`: it returns
    the next action (Send, Wait or Done), or None for the echo of our own command. During a
    Wait, call `elapsed()` when its time is up. A bad response raises RemoteProtocolError
    and leaves the state as it was: call `retry()` to send the same command again as the
    spec's retry rules say (2 retries without break, then the whole thing with a break, three
    times), which raises RemoteProtocolError(TRUNCATED) once the tries are spent."""

    __slots__ = (
        "_attempts",
        "_data_index",
        "_last",
        "_line_chars",
        "_state",
        "address",
        "concurrent",
        "count",
        "crc",
        "first",
        "index",
        "values",
        "verification",
    )

    def __init__(
        self,
        address: "str",
        index: "int" = 0,
        concurrent: "bool" = False,
        crc: "bool" = False,
        verification: "bool" = False,
    ) -> "None":
        _check_address(address, wildcard=False)
        _check_index(index)
        if verification and (concurrent or crc or index):
            raise LocalProtocolError("aV! has no concurrent, CRC or numbered form")
        self.address = address
        self.index = index
        self.concurrent = concurrent
        self.crc = crc
        self.verification = verification
        if verification:
            self.first = start_verification(address)
        elif concurrent:
            self.first = start_concurrent(address, index, crc)
        else:
            self.first = start_measurement(address, index, crc)
        self.count = -1  # announced number of values, once known
        self.values: "list[Value]" = []
        self._state = _IDLE
        self._last: "Send | None" = None
        self._attempts = 0
        self._line_chars = 0
        self._data_index = 0

    @property
    def done(self) -> "bool":
        return self._state == _DONE

    def _send(self, command: "bytes", wake: "bool", line_chars: "int") -> "Send":
        self._last = Send(command, wake, line_chars)
        self._line_chars = line_chars
        self._attempts = 1
        return self._last

    def start(self) -> "Send":
        if self._state != _IDLE:
            raise LocalProtocolError("sequence already started")
        self._state = _STARTED
        return self._send(self.first, True, 8)

    def retry(self) -> "Send":
        """The same command again after no or a bad response (spec section 5.2)."""
        if self._state not in (_STARTED, _READING) or self._last is None:
            raise LocalProtocolError("nothing to retry in state %s" % self._state)
        if self._attempts >= TRIES * WAKES:
            raise RemoteProtocolError(
                TRUNCATED,
                "no valid response to %r after %d tries"
                % (self._last.command.decode(), self._attempts),
            )
        wake = self._attempts % TRIES == 0
        self._attempts += 1
        self._last = Send(self._last.command, wake, self._line_chars)
        return self._last

    def elapsed(self) -> "Send":
        """The Wait's time is up without a service request: fetch the data (with a break)."""
        if self._state != _WAITING:
            raise LocalProtocolError("not waiting (state %s)" % self._state)
        return self._read(0, True)

    def _read(self, index: "int", wake: "bool") -> "Send":
        self._state = _READING
        self._data_index = index
        limit = MAX_VALUES_C if self.concurrent else MAX_VALUES_M
        return self._send(send_data(self.address, index), wake, 1 + limit + 3 + 2)

    def receive(self, line: "bytes") -> "Action | None":
        """Feed one line from the LineReader; see the class docstring."""
        last = self._last
        if last is not None and bytes(line) == last.command:
            return None  # our own command, echoed by a half-duplex adapter
        state = self._state
        if state == _STARTED:
            assert last is not None
            response = parse_response(line, last.command)
            assert isinstance(response, MeasurementStart)
            self.count = response.count
            if response.count == 0:
                self._state = _DONE
                return Done([])
            if response.seconds == 0:
                return self._read(0, False)
            self._state = _WAITING
            return Wait(response.seconds, not self.concurrent)
        if state == _WAITING:
            if self.concurrent:
                raise RemoteProtocolError(
                    MALFORMED, "a sensor sends no service request after aC!: %r" % bytes(line)
                )
            service = parse_response(line, acknowledge(self.address))
            assert isinstance(service, Acknowledge)
            return self._read(0, False)
        if state == _READING:
            assert last is not None
            data = parse_response(line, last.command, True if self.crc else None)
            assert isinstance(data, DataValues)
            if not data.values:
                raise RemoteProtocolError(
                    EXCEPTION, "sensor %r aborted the measurement (no values)" % self.address
                )
            got = len(self.values) + len(data.values)
            if got > self.count:
                raise RemoteProtocolError(
                    MALFORMED, "sensor announced %d values and sent %d" % (self.count, got)
                )
            self.values.extend(data.values)
            if got == self.count:
                self._state = _DONE
                return Done(list(self.values))
            if self._data_index == 9:
                raise RemoteProtocolError(
                    TRUNCATED, "only %d of %d values after aD9!" % (got, self.count)
                )
            return self._read(self._data_index + 1, False)
        raise LocalProtocolError("no line expected in state %s" % state)


__all__ = ["Done", "LineReader", "MeasureSequence", "Send", "Wait"]
