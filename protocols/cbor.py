"""A small, bounded CBOR (RFC 8949) encoder and decoder. Firmware-style: runs under MicroPython.

Decoding is defensive: anything that is not well-formed CBOR, or that passes a hard limit,
raises `RemoteProtocolError` (never another exception); time and memory are linear in the
input (every item costs at least one input byte, so a declared length can never make us
allocate more than the input holds).

- `loads(data)`: exactly one data item; `decode_item(data, offset)`: one item of a CBOR
  sequence (RFC 8742), returning `(value, end_offset)`.
- `dumps(value)`: preferred serialization (shortest heads, shortest exact float).
- Major types map to: int (0, 1, and bignum tags 2/3), bytes, str, list, dict, `Tag`,
  False/True/None, `UNDEFINED`, `Simple` (other simple values) and float.
- Deviations, on purpose: duplicate map keys are refused (RFC 8949 §5.6: not valid),
  as are map keys that cannot be hashed (arrays, maps) and two-byte simple values below 32
  (RFC 8949 §3.3: not well-formed).
"""

import struct

from protocols.errors import (
    MALFORMED,
    OVERFLOW,
    TRUNCATED,
    UNSUPPORTED,
    LocalProtocolError,
    RemoteProtocolError,
)

MAX_DEPTH = 32  # nesting of arrays, maps and tags
MAX_BIGNUM_BYTES = 64  # bignum tags 2/3: at most 512-bit integers


class Tag:
    """A tagged data item (major type 6) other than the bignums 2 and 3."""

    __slots__ = ("tag", "value")

    def __init__(self, tag: "int", value: "object") -> "None":
        self.tag = tag
        self.value = value

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __hash__(self) -> "int":
        return hash((self.tag, repr(self.value)))

    def __repr__(self) -> "str":
        return "Tag(%d, %r)" % (self.tag, self.value)


class Simple:
    """A simple value (major type 7) other than false, true, null and undefined."""

    __slots__ = ("value",)

    def __init__(self, value: "int") -> "None":
        self.value = value

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Simple) and self.value == other.value

    def __hash__(self) -> "int":
        return hash(("simple", self.value))

    def __repr__(self) -> "str":
        return "Simple(%d)" % self.value


class _Undefined:
    __slots__ = ()

    def __repr__(self) -> "str":
        return "UNDEFINED"


UNDEFINED = _Undefined()


# ---------------------------------------------------------------------------- encoding

# heads for the small arguments, precomputed: the hot path of block encoding uses them
_SMALL_HEADS = [[bytes([(major << 5) | a]) for a in range(24)] for major in range(8)]


def encode_head(major: "int", arg: "int") -> "bytes":
    """The shortest head for major type `major` with argument `arg` (0 <= arg < 2**64)."""
    if arg < 24:
        if arg < 0:
            raise LocalProtocolError("negative CBOR argument")
        return _SMALL_HEADS[major][arg]
    mt = major << 5
    if arg < 0x100:
        return bytes((mt | 24, arg))
    if arg < 0x10000:
        return bytes((mt | 25, arg >> 8, arg & 0xFF))
    if arg < 0x100000000:
        return bytes((mt | 26,)) + arg.to_bytes(4, "big")
    if arg < 0x10000000000000000:
        return bytes((mt | 27,)) + arg.to_bytes(8, "big")
    raise LocalProtocolError("CBOR argument too large")


def encode_int(value: "int") -> "bytes":
    """An integer of any size (bignum tags 2/3 beyond 64 bits)."""
    if value >= 0:
        if value < 0x10000000000000000:
            return encode_head(0, value)
        return b"\xc2" + _encode_bytes(_int_to_bytes(value))
    n = -1 - value
    if n < 0x10000000000000000:
        return encode_head(1, n)
    return b"\xc3" + _encode_bytes(_int_to_bytes(n))


def _int_to_bytes(n: "int") -> "bytes":
    size = 0
    m = n
    while m:
        m >>= 8
        size += 1
    return n.to_bytes(size, "big")


def _encode_bytes(b: "bytes") -> "bytes":
    return encode_head(2, len(b)) + b


def encode_text(s: "str") -> "bytes":
    b = s.encode("utf-8")
    return encode_head(3, len(b)) + b


def _half_bits_to_float(h: "int") -> "float":
    exp = (h >> 10) & 0x1F
    mant = h & 0x3FF
    if exp == 0:
        val = mant * 5.960464477539063e-08  # 2**-24
    elif exp == 31:
        val = float("inf") if mant == 0 else float("nan")
    else:
        val = (1024 + mant) * (2.0 ** (exp - 25))
    return -val if h & 0x8000 else val


def encode_float(value: "float") -> "bytes":
    """The shortest of half, single and double that holds `value` exactly (NaN as f97e00)."""
    if value != value:
        return b"\xf9\x7e\x00"
    try:
        half = struct.pack(">e", value)
    except (OverflowError, ValueError, struct.error):
        half = None
    if half is not None:
        # MicroPython packs out-of-range values without complaint: check by decoding
        h = (half[0] << 8) | half[1]
        if _half_bits_to_float(h) == value:  # a zero keeps its sign: struct packs it right
            return b"\xf9" + half
    try:
        single = struct.pack(">f", value)
    except (OverflowError, ValueError, struct.error):
        single = None
    if single is not None and struct.unpack(">f", single)[0] == value:
        return b"\xfa" + single
    return b"\xfb" + struct.pack(">d", value)


def dumps(value: "object") -> "bytes":
    """Encode `value` (see the module docstring for the types) in preferred serialization."""
    out = []  # type: list[bytes]
    _encode(value, out, 0)
    return b"".join(out)


def _encode(value: "object", out: "list[bytes]", depth: "int") -> "None":
    if depth > MAX_DEPTH:
        raise LocalProtocolError("CBOR value nested too deeply (or cyclic)")
    t = type(value)
    if t is bool:
        out.append(b"\xf5" if value else b"\xf4")
    elif t is int:
        out.append(encode_int(value))  # type: ignore[arg-type]
    elif t is float:
        out.append(encode_float(value))  # type: ignore[arg-type]
    elif t is str:
        out.append(encode_text(value))  # type: ignore[arg-type]
    elif t is bytes or t is bytearray or t is memoryview:
        b = bytes(value)  # type: ignore[call-overload]
        out.append(encode_head(2, len(b)))
        out.append(b)
    elif value is None:
        out.append(b"\xf6")
    elif t is list or t is tuple:
        out.append(encode_head(4, len(value)))  # type: ignore[arg-type]
        for item in value:  # type: ignore[attr-defined]
            _encode(item, out, depth + 1)
    elif t is dict:
        out.append(encode_head(5, len(value)))  # type: ignore[arg-type]
        for k, v in value.items():  # type: ignore[attr-defined]
            _encode(k, out, depth + 1)
            _encode(v, out, depth + 1)
    elif t is Tag:
        out.append(encode_head(6, value.tag))  # type: ignore[attr-defined]
        _encode(value.value, out, depth + 1)  # type: ignore[attr-defined]
    elif value is UNDEFINED:
        out.append(b"\xf7")
    elif t is Simple:
        n = value.value  # type: ignore[attr-defined]
        if 0 <= n < 20:
            out.append(bytes((0xE0 | n,)))
        elif 32 <= n < 256:
            out.append(bytes((0xF8, n)))
        else:
            raise LocalProtocolError("simple value %r cannot be encoded" % n)
    else:
        raise LocalProtocolError("cannot encode %s as CBOR" % t.__name__)


# ---------------------------------------------------------------------------- decoding


def _fail(reason: "str", message: "str") -> "RemoteProtocolError":
    return RemoteProtocolError(reason, message)


def _head(data: "bytes", pos: "int", end: "int") -> "tuple[int, int, int, int]":
    """(major, additional info, argument, next position); argument is -1 for indefinite."""
    if pos >= end:
        raise _fail(TRUNCATED, "CBOR item missing at offset %d" % pos)
    ib = data[pos]
    pos += 1
    major = ib >> 5
    ai = ib & 0x1F
    if ai < 24:
        return major, ai, ai, pos
    if ai == 24:
        if pos + 1 > end:
            raise _fail(TRUNCATED, "CBOR head truncated")
        return major, ai, data[pos], pos + 1
    if ai == 25:
        if pos + 2 > end:
            raise _fail(TRUNCATED, "CBOR head truncated")
        return major, ai, (data[pos] << 8) | data[pos + 1], pos + 2
    if ai == 26:
        if pos + 4 > end:
            raise _fail(TRUNCATED, "CBOR head truncated")
        return major, ai, int.from_bytes(data[pos : pos + 4], "big"), pos + 4
    if ai == 27:
        if pos + 8 > end:
            raise _fail(TRUNCATED, "CBOR head truncated")
        return major, ai, int.from_bytes(data[pos : pos + 8], "big"), pos + 8
    if ai == 31:
        if major in (2, 3, 4, 5, 7):
            return major, ai, -1, pos
        raise _fail(MALFORMED, "indefinite length on major type %d" % major)
    raise _fail(MALFORMED, "reserved additional information %d" % ai)


def _decode(data: "bytes", pos: "int", end: "int", depth: "int") -> "tuple[object, int]":
    major, ai, arg, pos = _head(data, pos, end)
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major == 2 or major == 3:
        if arg >= 0:
            stop = pos + arg
            if stop > end:
                raise _fail(TRUNCATED, "string of %d bytes runs past the end" % arg)
            raw = bytes(data[pos:stop])
            pos = stop
        else:  # indefinite: definite chunks of the same major type, then a break
            chunks = []
            while True:
                if pos >= end:
                    raise _fail(TRUNCATED, "indefinite string not terminated")
                if data[pos] == 0xFF:
                    pos += 1
                    break
                cmajor, _cai, carg, pos = _head(data, pos, end)
                if cmajor != major or carg < 0:
                    raise _fail(MALFORMED, "bad chunk in an indefinite-length string")
                stop = pos + carg
                if stop > end:
                    raise _fail(TRUNCATED, "string chunk runs past the end")
                chunks.append(bytes(data[pos:stop]))
                pos = stop
            raw = b"".join(chunks)
        if major == 2:
            return raw, pos
        try:
            return raw.decode("utf-8"), pos
        except (UnicodeError, ValueError) as e:
            raise _fail(MALFORMED, "text string is not UTF-8") from e
    if major == 4 or major == 5:
        if depth >= MAX_DEPTH:
            raise _fail(OVERFLOW, "CBOR nested deeper than %d" % MAX_DEPTH)
        if major == 4:
            items = []  # type: list[object]
            if arg >= 0:
                if arg > end - pos:
                    raise _fail(TRUNCATED, "array of %d items runs past the end" % arg)
                for _ in range(arg):
                    item, pos = _decode(data, pos, end, depth + 1)
                    items.append(item)
            else:
                while True:
                    if pos >= end:
                        raise _fail(TRUNCATED, "indefinite array not terminated")
                    if data[pos] == 0xFF:
                        pos += 1
                        break
                    item, pos = _decode(data, pos, end, depth + 1)
                    items.append(item)
            return items, pos
        result = {}  # type: dict[object, object]
        count = 0
        while True:
            if arg >= 0:
                if count == arg:
                    break
                if count == 0 and 2 * arg > end - pos:
                    raise _fail(TRUNCATED, "map of %d pairs runs past the end" % arg)
            else:
                if pos >= end:
                    raise _fail(TRUNCATED, "indefinite map not terminated")
                if data[pos] == 0xFF:
                    pos += 1
                    break
            key, pos = _decode(data, pos, end, depth + 1)
            value, pos = _decode(data, pos, end, depth + 1)
            try:
                if key in result:
                    raise _fail(MALFORMED, "duplicate map key %r" % (key,))
                result[key] = value
            except TypeError as e:
                raise _fail(UNSUPPORTED, "map key of an unhashable type") from e
            count += 1
        return result, pos
    if major == 6:
        if arg < 0:
            raise _fail(MALFORMED, "indefinite tag")
        if depth >= MAX_DEPTH:
            raise _fail(OVERFLOW, "CBOR nested deeper than %d" % MAX_DEPTH)
        value, pos = _decode(data, pos, end, depth + 1)
        if arg == 2 or arg == 3:
            if type(value) is not bytes:
                raise _fail(MALFORMED, "bignum tag on a non-byte-string")
            if len(value) > MAX_BIGNUM_BYTES:
                raise _fail(OVERFLOW, "bignum of %d bytes" % len(value))
            n = int.from_bytes(value, "big") if value else 0
            return (n if arg == 2 else -1 - n), pos
        return Tag(arg, value), pos
    # major 7: simple values and floats
    if ai < 24:
        if ai == 20:
            return False, pos
        if ai == 21:
            return True, pos
        if ai == 22:
            return None, pos
        if ai == 23:
            return UNDEFINED, pos
        return Simple(ai), pos
    if ai == 24:
        if arg < 32:
            raise _fail(MALFORMED, "two-byte simple value below 32")
        return Simple(arg), pos
    if ai == 25:
        return _half_bits_to_float(arg), pos
    if ai == 26:
        return struct.unpack(">f", data[pos - 4 : pos])[0], pos
    if ai == 27:
        return struct.unpack(">d", data[pos - 8 : pos])[0], pos
    if ai == 31:
        raise _fail(MALFORMED, "break outside an indefinite-length item")
    raise _fail(MALFORMED, "bad simple value encoding")  # pragma: no cover


def decode_item(data: "bytes", offset: "int" = 0, end: "int" = -1) -> "tuple[object, int]":
    """Decode one data item at `offset` (up to `end`, default the end of `data`).

    Returns `(value, offset just past the item)`: call again from there to walk a CBOR
    sequence (RFC 8742). Raises `RemoteProtocolError` for anything malformed.
    """
    if end < 0:
        end = len(data)
    try:
        return _decode(data, offset, end, 0)
    except RemoteProtocolError:
        raise
    except RecursionError as e:  # a small C stack (MicroPython) before MAX_DEPTH
        raise _fail(OVERFLOW, "CBOR nested too deeply for this platform") from e
    except (ValueError, TypeError, IndexError, OverflowError, MemoryError) as e:
        raise _fail(MALFORMED, "undecodable CBOR: %r" % (e,)) from e


def loads(data: "bytes") -> "object":
    """Decode `data`, which must hold exactly one CBOR data item."""
    value, pos = decode_item(data, 0)
    if pos != len(data):
        raise _fail(MALFORMED, "%d bytes after the CBOR item" % (len(data) - pos))
    return value


def loads_sequence(data: "bytes", max_items: "int" = 1 << 20) -> "list[object]":
    """Decode a whole CBOR sequence (RFC 8742) into a list of its items."""
    items = []  # type: list[object]
    pos = 0
    while pos < len(data):
        if len(items) >= max_items:
            raise _fail(OVERFLOW, "more than %d items in the sequence" % max_items)
        value, pos = decode_item(data, pos)
        items.append(value)
    return items


__all__ = [
    "MAX_BIGNUM_BYTES",
    "MAX_DEPTH",
    "UNDEFINED",
    "Simple",
    "Tag",
    "decode_item",
    "dumps",
    "encode_float",
    "encode_head",
    "encode_int",
    "encode_text",
    "loads",
    "loads_sequence",
]
