"""What the sans-IO stream parsers share (h11 style). MicroPython.

- `NEED_DATA`: what `next_event()` returns when it needs more bytes (TicStream, FrameParser,
  UltrasonicStream, the Modbus Master). One sentinel for every codec.
- `LineBuffer`: the receiving half of a line reader (nmea.SentenceReader, sdi12.LineReader):
  bytes fed in any pieces, `receive_data(b"")` for the end of the stream.
- `FrameBuffer`: the receiving half of a binary frame reader (PmsStream, SdsStream,
  ShdlcStream): at most `max_buffer` bytes wait, the bytes skipped between frames counted.
"""

from protocols.errors import OVERFLOW, LocalProtocolError, RemoteProtocolError


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


class FrameBuffer:
    """Bytes received and not yet framed (`_buf`), at most `max_buffer` of them.

    `receive_data` keeps the newest `max_buffer` bytes and raises ``overflow`` for the older
    ones it drops. `skipped_total` counts every byte dropped; `_pending_skip` those dropped
    since the last frame (the subclass hands it to that frame). Subclasses check `max_buffer`
    against their largest frame and frame `_buf` in their own `next_event()`.
    """

    __slots__ = ("_buf", "_pending_skip", "frames_total", "max_buffer", "skipped_total")

    def __init__(self, max_buffer: "int") -> "None":
        self.max_buffer = max_buffer
        self._buf = b""
        self._pending_skip = 0
        self.skipped_total = 0
        self.frames_total = 0

    def receive_data(self, data: "bytes") -> "None":
        buf = self._buf + bytes(data)
        excess = len(buf) - self.max_buffer
        if excess > 0:
            self._buf = buf[excess:]
            self.skipped_total += excess
            raise RemoteProtocolError(
                OVERFLOW, "%d bytes dropped: more than %d bytes waiting" % (excess, self.max_buffer)
            )
        self._buf = buf

    def _skip(self, count: "int") -> "None":
        """Drop `count` bytes before the next frame."""
        self._pending_skip += count
        self.skipped_total += count
        self._buf = self._buf[count:]

    def _bad(self, reason: "str", message: "str") -> "RemoteProtocolError":
        """The error for a bad frame, after dropping its first byte (to look again after it)."""
        self._buf = self._buf[1:]
        self._pending_skip = 0
        return RemoteProtocolError(reason, message)


__all__ = ["NEED_DATA", "FrameBuffer", "LineBuffer", "NeedData"]
