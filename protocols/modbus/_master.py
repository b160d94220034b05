"""A sans-IO Modbus RTU master, and the RTU timing the caller needs.

    master = Master()
    port.write(master.send(read_input_registers(1, 0, 2)))
    while True:
        event = master.next_event()
        if event is not NEED_DATA:
            break                      # a Response (errors are raised)
        master.receive_data(port.read(...))   # after a timeout: master.reset()

The master knows from the request how long the response is, so it needs no silence to
find the end of the frame; detecting silence and timeouts is the caller's job
(`silent_interval(baud)` gives the 3.5-character gap of the specification).
"""

from protocols._stream import NEED_DATA, NeedData
from protocols.errors import CHECKSUM, MALFORMED, LocalProtocolError, RemoteProtocolError
from protocols.modbus._crc import crc16, frame_crc
from protocols.modbus._frames import (
    MAX_ADU,
    READ_COILS,
    READ_DISCRETE_INPUTS,
    READ_HOLDING_REGISTERS,
    READ_INPUT_REGISTERS,
    Request,
    Response,
    parse_response,
)


def character_time(baud: "int", bits: "int" = 11) -> "float":
    """Seconds one character takes on the line (RTU: 11 bits: start, 8 data, parity or a
    second stop bit, stop)."""
    if baud <= 0:
        raise LocalProtocolError("baud must be positive, got %r" % (baud,))
    return bits / baud


def silent_interval(baud: "int") -> "float":
    """t3.5 in seconds: the silence that ends an RTU frame (and must precede the next).

    3.5 characters of 11 bits up to 19200 baud; fixed 1.75 ms above 19200 baud, as the
    Modbus serial line specification (v1.02, 2.5.1.1) recommends.
    """
    if baud > 19200:
        return 0.00175
    return 3.5 * character_time(baud)


def inter_character_timeout(baud: "int") -> "float":
    """t1.5 in seconds: a longer gap inside a frame makes it incomplete (0.75 ms above 19200)."""
    if baud > 19200:
        return 0.00075
    return 1.5 * character_time(baud)


class Master:
    """One request at a time: `send`, then `receive_data` / `next_event` until a Response.

    - `echo=True` for RS-485 adapters that hear their own transmission: the request's own
      bytes are expected (and checked) before the response.
    - The receive buffer is bounded: at most the echo and the longest possible response
      (256 bytes) are kept; bytes past the response (or arriving with no request pending)
      are dropped and counted in `discarded`.
    - After a Response, an error, or `reset()` (the caller's timeout), the master is idle
      and ready for the next `send`. A broadcast (address 0) expects no response.
    """

    __slots__ = ("_buffer", "_echo", "_expected", "_request", "_wire", "discarded")

    def __init__(self, echo: "bool" = False) -> "None":
        self._echo = echo
        self._request: "Request | None" = None
        self._wire = b""
        self._buffer = bytearray()
        self._expected = 0
        self.discarded = 0

    @property
    def pending(self) -> "Request | None":
        """The request awaiting its response, or None when idle."""
        return self._request

    @property
    def expected_length(self) -> "int | None":
        """Bytes of the normal response (plus echo) awaited, or None when idle."""
        if self._request is None:
            return None
        return self._expected

    def send(self, request: "Request") -> "bytes":
        """The bytes to write for `request`; the master then awaits its response."""
        if self._request is not None:
            raise LocalProtocolError("a request is already pending; reset() after a timeout")
        wire = request.encode()
        if not request.broadcast:
            self._request = request
            self._wire = wire if self._echo else b""
            self._expected = len(self._wire) + request.response_length()
            self._buffer = bytearray()
        return wire

    def reset(self) -> "None":
        """Forget the pending request and any bytes received (after the caller's timeout)."""
        self._request = None
        self._buffer = bytearray()

    def receive_data(self, data: "bytes") -> "None":
        """Feed bytes read from the line, in pieces of any size."""
        if self._request is None:
            self.discarded += len(data)
            return
        room = len(self._wire) + MAX_ADU - len(self._buffer)
        if len(data) > room:
            self.discarded += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        self._buffer.extend(data)

    def next_event(self) -> "Response | NeedData":
        """NEED_DATA until the response is complete; then the Response.

        Raises ModbusException for an exception response, RemoteProtocolError when the
        bytes are not the response to the request (the master is then idle again).
        """
        request = self._request
        if request is None:
            raise LocalProtocolError("no request pending: send() one first")
        try:
            return self._next(request)
        except RemoteProtocolError:
            self.reset()
            raise

    def _next(self, request: "Request") -> "Response | NeedData":
        buffer = self._buffer
        echo = len(self._wire)
        if echo:
            seen = min(len(buffer), echo)
            if bytes(buffer[:seen]) != self._wire[:seen]:
                raise RemoteProtocolError(MALFORMED, "the local echo differs from the request")
            if len(buffer) < echo + 2:
                return NEED_DATA
        elif len(buffer) < 2:
            return NEED_DATA
        address = buffer[echo]
        function = buffer[echo + 1]
        if address != request.address:
            raise RemoteProtocolError(
                MALFORMED,
                "response from address %d to a request for address %d" % (address, request.address),
            )
        if function == request.function | 0x80:
            needed = echo + 5
        elif function == request.function:
            needed = self._expected
            if function in (
                READ_COILS,
                READ_DISCRETE_INPUTS,
                READ_HOLDING_REGISTERS,
                READ_INPUT_REGISTERS,
            ):
                if len(buffer) < echo + 3:
                    return NEED_DATA
                byte_count = buffer[echo + 2]
                if byte_count != needed - echo - 5:
                    raise RemoteProtocolError(
                        MALFORMED,
                        "byte count %d, expected %d for the request"
                        % (byte_count, needed - echo - 5),
                    )
        else:
            raise RemoteProtocolError(
                MALFORMED,
                "function 0x%02X in the response to function 0x%02X" % (function, request.function),
            )
        if len(buffer) < needed:
            return NEED_DATA
        frame = bytes(buffer[echo:needed])
        if crc16(frame[:-2]) != frame_crc(frame):
            raise RemoteProtocolError(CHECKSUM, "CRC of the %d-byte response" % len(frame))
        self.discarded += len(buffer) - needed
        self.reset()
        return parse_response(frame, request)


__all__ = [
    "NEED_DATA",
    "Master",
    "NeedData",
    "character_time",
    "inter_character_timeout",
    "silent_interval",
]
