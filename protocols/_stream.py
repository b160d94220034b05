"""What the sans-IO stream parsers share (h11 style). MicroPython.

- `NEED_DATA`: what `next_event()` returns when it needs more bytes (TicStream, FrameParser,
  UltrasonicStream, the Modbus Master). One sentinel for every codec.
- `LineBuffer`: the receiving half of a line reader (nmea.SentenceReader, sdi12.LineReader):
  bytes fed in any pieces, `receive_data(b"")` for the end of the stream.
"""

from protocols.errors import LocalProtocolError


class NeedData:
    """The type of NEED_DATA: next_event() has nothing until more bytes arrive."""

    __slots__ = ()

    def __repr__(self) -> "str":
        return "NEED_DATA"


NEED_DATA = NeedData()


class LineBuffer:
    """Bytes received and not yet framed (`_buf`), and whether the stream ended (`_eof`).

    `receive_data(b"")` marks the end of the stream; data after it is a LocalProtocolError.
    Subclasses frame `_buf` into lines in their own `next_line()`.
    """

    __slots__ = ("_buf", "_eof")

    def __init__(self) -> "None":
        self._buf = bytearray()
        self._eof = False

    def receive_data(self, data: "bytes") -> "None":
        if self._eof and data:
            raise LocalProtocolError("data after the end of the stream")
        if not data:
            self._eof = True
            return
        self._buf.extend(data)


__all__ = ["NEED_DATA", "LineBuffer", "NeedData"]
