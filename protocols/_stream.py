"""What the sans-IO stream parsers share (h11 style). MicroPython.

- `NEED_DATA`: what `next_event()` returns when it needs more bytes (TicStream, FrameParser,
  UltrasonicStream, the Modbus Master). One sentinel for every codec.
"""


class NeedData:
    """The type of NEED_DATA: next_event() has nothing until more bytes arrive."""

    __slots__ = ()

    def __repr__(self) -> "str":
        return "NEED_DATA"


NEED_DATA = NeedData()

__all__ = ["NEED_DATA", "NeedData"]
