"""The segment file format (docs/buffer-format.md): a CBOR sequence (RFC 8742) of

    header    [ "estran-buffer", 1, first_seq ]             25 bytes, fixed
    record*   [ crc32, bstr ]                               11 bytes + payload
                the bstr holds one CBOR item: a block (protocols.block) or, last, the footer
    trailer   [ "estran-seal", footer_offset ]              22 bytes, fixed, sealed files only
    padding   bstr of the bytes up to the end of the file       5 bytes + its length, the
                open segment of a preallocated buffer only (zeros in a fresh file)

Every head has a fixed width (the integers in 4 or 8 bytes even when small: valid CBOR, not
the preferred serialization) so that records can be framed, checked and skipped without
decoding, and found again from the end of the file.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from dataclasses import dataclass

import cbor2

SEGMENT_PREFIX = "seg-"
SEGMENT_SUFFIX = ".cborseq"

HEADER_LEN = 25
_HEADER_PREFIX = b"\x83\x6destran-buffer\x01\x1b"
FRAME_LEN = 11
_FRAME_0 = 0x82
_FRAME_1 = 0x1A
_FRAME_6 = 0x5A
TRAILER_LEN = 22
_TRAILER_PREFIX = b"\x82\x6bestran-seal\x1b"
INDEX_FIELDS = 7  # offset, length, first_seq, count, flags, t_min, t_max (int64 little-endian)
INDEX_ENTRY = 8 * INDEX_FIELDS
MAX_RECORD = 1 << 30

PAD_HEAD_LEN = 5
PAGE = 4096

crc32 = zlib.crc32


def padding_head(length: int) -> bytes:
    """The head of the padding item: a byte string of `length` bytes up to the file's end."""
    return b"\x5a" + length.to_bytes(4, "big")


def padding_at(data: bytes | memoryview, pos: int) -> bool:
    """Whether the padding item starts at `pos` and runs exactly to the end of `data`."""
    end = len(data)
    if pos + PAD_HEAD_LEN > end or data[pos] != 0x5A:
        return False
    return pos + PAD_HEAD_LEN + int.from_bytes(bytes(data[pos + 1 : pos + 5]), "big") == end


def segment_name(first_seq: int) -> str:
    return f"{SEGMENT_PREFIX}{first_seq:020d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    if not (name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX)):
        return None
    digits = name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]
    if len(digits) != 20 or not digits.isdigit():
        return None
    return int(digits)


def segment_header(first_seq: int) -> bytes:
    return _HEADER_PREFIX + first_seq.to_bytes(8, "big")


def parse_segment_header(data: bytes) -> int | None:
    if len(data) < HEADER_LEN or data[: HEADER_LEN - 8] != _HEADER_PREFIX:
        return None
    return int.from_bytes(data[HEADER_LEN - 8 : HEADER_LEN], "big")


def frame(payload: bytes) -> bytes:
    """One record: `[crc32(payload), payload]` with fixed-width heads."""
    return (
        b"\x82\x1a"
        + crc32(payload).to_bytes(4, "big")
        + b"\x5a"
        + len(payload).to_bytes(4, "big")
        + payload
    )


def frame_at(data: bytes | memoryview, pos: int) -> tuple[int, int] | None:
    """(payload start, payload end) of a sound record at `pos`, or None (torn, garbled)."""
    end = len(data)
    if pos + FRAME_LEN > end:
        return None
    if data[pos] != _FRAME_0 or data[pos + 1] != _FRAME_1 or data[pos + 6] != _FRAME_6:
        return None
    length = int.from_bytes(data[pos + 7 : pos + 11], "big")
    start = pos + FRAME_LEN
    stop = start + length
    if length == 0 or stop > end:
        return None
    if crc32(data[start:stop]) != int.from_bytes(data[pos + 2 : pos + 6], "big"):
        return None
    return start, stop


def frame_head(head: bytes) -> tuple[int, int] | None:
    """(crc, payload length) from the 11 bytes of a record head, or None."""
    if len(head) < FRAME_LEN or head[0] != _FRAME_0 or head[1] != _FRAME_1 or head[6] != _FRAME_6:
        return None
    return int.from_bytes(head[2:6], "big"), int.from_bytes(head[7:11], "big")


def trailer(footer_offset: int) -> bytes:
    return _TRAILER_PREFIX + footer_offset.to_bytes(8, "big")


def parse_trailer(data: bytes) -> int | None:
    if len(data) != TRAILER_LEN or data[: TRAILER_LEN - 8] != _TRAILER_PREFIX:
        return None
    return int.from_bytes(data[TRAILER_LEN - 8 :], "big")


def is_footer_payload(payload: bytes | memoryview) -> bool:
    """A block is a CBOR array (0x8d); the footer a map."""
    return len(payload) > 0 and payload[0] >> 5 == 5


def pack_index(index: array[int]) -> bytes:
    if sys.byteorder == "little":
        return index.tobytes()
    swapped = array("q", index)
    swapped.byteswap()
    return swapped.tobytes()


def unpack_index(data: bytes) -> array[int]:
    if len(data) % INDEX_ENTRY:
        raise ValueError("index is not a whole number of entries")
    index = array("q")
    index.frombytes(data)
    if sys.byteorder != "little":
        index.byteswap()
    return index


@dataclass(slots=True)
class Footer:
    first_seq: int
    last_seq: int
    count: int
    t_min: int
    t_max: int
    sensors: dict[str, int]
    index: array[int]  # INDEX_FIELDS per block
    alarms: array[int]  # the entries of the blocks holding an alarm


def footer_payload(footer: Footer) -> bytes:
    return cbor2.dumps(
        {
            "footer": 1,
            "first_seq": footer.first_seq,
            "last_seq": footer.last_seq,
            "count": footer.count,
            "t_min": footer.t_min,
            "t_max": footer.t_max,
            "sensors": footer.sensors,
            "blocks": pack_index(footer.index),
            "alarms": pack_index(footer.alarms),
        }
    )


def parse_footer(payload: bytes) -> Footer:
    """The footer of a record whose CRC held; ValueError if it is not one."""
    try:
        m = cbor2.loads(payload)
    except Exception as e:
        raise ValueError(f"footer does not decode: {e!r}") from e
    if not isinstance(m, dict) or m.get("footer") != 1:
        raise ValueError("not a footer")
    try:
        f = Footer(
            first_seq=int(m["first_seq"]),
            last_seq=int(m["last_seq"]),
            count=int(m["count"]),
            t_min=int(m["t_min"]),
            t_max=int(m["t_max"]),
            sensors={str(k): int(v) for k, v in m["sensors"].items()},
            index=unpack_index(m["blocks"]),
            alarms=unpack_index(m["alarms"]),
        )
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"footer fields: {e!r}") from e
    return f


__all__ = [
    "FRAME_LEN",
    "HEADER_LEN",
    "INDEX_ENTRY",
    "INDEX_FIELDS",
    "PAD_HEAD_LEN",
    "PAGE",
    "TRAILER_LEN",
    "Footer",
    "crc32",
    "footer_payload",
    "frame",
    "frame_at",
    "frame_head",
    "is_footer_payload",
    "pack_index",
    "padding_at",
    "padding_head",
    "parse_footer",
    "parse_segment_header",
    "parse_segment_name",
    "parse_trailer",
    "segment_header",
    "segment_name",
    "trailer",
    "unpack_index",
]
