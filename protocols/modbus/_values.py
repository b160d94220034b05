"""Register values: u16/s16/u32/s32/u64/s64/f32/f64/str in every byte and word order,
and decimal scaling without float noise.

Orders name the wire layout of a 32-bit value whose big-endian bytes are A B C D:

    ABCD  big endian (Modbus default; Eastron meters)
    CDAB  words swapped (low word first), bytes big endian within each word
    BADC  bytes swapped within each word, words big endian
    DCBA  little endian

A 16-bit value follows the byte order only (AB for ABCD/CDAB, BA for BADC/DCBA); a 64-bit
value extends the rule to four words (CDAB: the four words in reverse order).

A float32 is returned as the shortest decimal within one unit in the last place of it, so
the 0x43663334 a meter sends for 230.2 V is 230.2, not 230.20001220703125. Scaling multiplies decimals
exactly (integers and powers of ten), so 658 x 0.1 is 65.8, never 65.80000000000001.
"""

import struct

from protocols._typing import TYPE_CHECKING
from protocols.errors import LocalProtocolError

if TYPE_CHECKING:
    from typing import Union

    Number = Union[int, float]
    Value = Union[int, float, str]

# type name -> (registers, kind): kind "u" unsigned, "s" signed, "f" IEEE 754, "t" text.
TYPES = {
    "u16": (1, "u"),
    "s16": (1, "s"),
    "u32": (2, "u"),
    "s32": (2, "s"),
    "u64": (4, "u"),
    "s64": (4, "s"),
    "f32": (2, "f"),
    "f64": (4, "f"),
    "str": (0, "t"),  # as many registers as the register map says, two ASCII bytes each
}

# order name -> (words reversed, bytes swapped within each word)
ORDERS = {
    "ABCD": (False, False),
    "CDAB": (True, False),
    "BADC": (False, True),
    "DCBA": (True, True),
}


def type_width(type_name: "str") -> "int":
    """Registers a value of `type_name` takes (0 for "str": the map says)."""
    if type_name not in TYPES:
        raise LocalProtocolError("unknown register type %r (known: %s)" % (type_name, _known()))
    return TYPES[type_name][0]


def _known() -> "str":
    return ", ".join(sorted(TYPES))


def _order(order: "str") -> "tuple[bool, bool]":
    if order not in ORDERS:
        raise LocalProtocolError("unknown order %r (ABCD, CDAB, BADC or DCBA)" % (order,))
    return ORDERS[order]


def registers_to_bytes(registers: "list[int] | tuple[int, ...]", order: "str" = "ABCD") -> "bytes":
    """The value bytes, most significant first, from registers in wire order."""
    words_reversed, bytes_swapped = _order(order)
    words = list(registers)
    if words_reversed:
        words.reverse()
    out = bytearray()
    for word in words:
        if not 0 <= word <= 0xFFFF:
            raise LocalProtocolError("register value out of range: %r" % (word,))
        if bytes_swapped:
            out.append(word & 0xFF)
            out.append(word >> 8)
        else:
            out.append(word >> 8)
            out.append(word & 0xFF)
    return bytes(out)


def bytes_to_registers(data: "bytes", order: "str" = "ABCD") -> "tuple[int, ...]":
    """Registers in wire order carrying `data` (most significant byte first)."""
    words_reversed, bytes_swapped = _order(order)
    if len(data) % 2:
        raise LocalProtocolError("odd number of bytes")
    words = []
    for i in range(0, len(data), 2):
        if bytes_swapped:
            words.append(data[i] | (data[i + 1] << 8))
        else:
            words.append((data[i] << 8) | data[i + 1])
    if words_reversed:
        words.reverse()
    return tuple(words)


def decode_value(
    registers: "list[int] | tuple[int, ...]", type_name: "str", order: "str" = "ABCD"
) -> "Value":
    """Decode one value from its registers (in wire order).

    Integers stay ints; f32 gives the shortest decimal that is the same float32; "str"
    gives ASCII with trailing NULs and spaces removed (other bytes dropped). A non-finite
    float (NaN, infinity: "no value" on many devices) is returned as a float.
    """
    width = type_width(type_name)
    kind = TYPES[type_name][1]
    if width and len(registers) != width:
        raise LocalProtocolError(
            "%s takes %d registers, got %d" % (type_name, width, len(registers))
        )
    data = registers_to_bytes(registers, order)
    if kind == "t":
        return "".join(chr(b) for b in data if 0x20 <= b < 0x7F or b == 0).rstrip("\x00 ")
    raw = int.from_bytes(data, "big")
    if kind == "u":
        return raw
    if kind == "s":
        bits = 16 * width
        return raw - (1 << bits) if raw >> (bits - 1) else raw
    if width == 2:
        text = f32_text(raw)
        if text is None:
            value: "float" = struct.unpack(">f", data)[0]
            return value
        return decimal_float(text)
    value = struct.unpack(">d", data)[0]
    return value


def encode_value(
    value: "Value", type_name: "str", order: "str" = "ABCD", count: "int | None" = None
) -> "tuple[int, ...]":
    """Registers (in wire order) carrying `value`; the inverse of decode_value.

    `count` is the register count of a "str" (padded with NULs); other types know theirs.
    """
    width = type_width(type_name)
    kind = TYPES[type_name][1]
    if kind == "t":
        if not isinstance(value, str) or count is None or count < 1:
            raise LocalProtocolError("str needs a text value and a register count")
        text = value.encode()
        if len(text) > 2 * count:
            raise LocalProtocolError("%r does not fit in %d registers" % (value, count))
        return bytes_to_registers(text + bytes(2 * count - len(text)), order)
    if isinstance(value, (str, bool)):
        raise LocalProtocolError("%s needs a number, got %r" % (type_name, value))
    if kind == "f":
        data = struct.pack(">f" if width == 2 else ">d", value)
        return bytes_to_registers(data, order)
    if not isinstance(value, int):
        raise LocalProtocolError("%s needs an int, got %r" % (type_name, value))
    bits = 16 * width
    if kind == "s":
        if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
            raise LocalProtocolError("%r does not fit in %s" % (value, type_name))
        value &= (1 << bits) - 1
    elif not 0 <= value < (1 << bits):
        raise LocalProtocolError("%r does not fit in %s" % (value, type_name))
    return bytes_to_registers(value.to_bytes(2 * width, "big"), order)


def _f32(bits: "int") -> "float":
    value: "float" = struct.unpack(">f", bits.to_bytes(4, "big"))[0]
    return value


def f32_text(bits: "int") -> "str | None":
    """The shortest decimal (as "%e" text) strictly between the float32 values next to the
    one with these bits: within one unit in the last place of it.

    A float32 carries about 7 significant digits, and devices that compute in float32
    often end one unit off the decimal they mean: an Eastron meter sends 0x43663334
    (230.20001220703125) for the 230.2 V it displays, although the float32 nearest 230.2
    is 0x43663333. Accepting a decimal within one unit gives 230.2 for both; a value
    such as 12345678.0, exact in float32, is kept whole. None for NaN and infinities.
    """
    magnitude = bits & 0x7FFFFFFF
    if magnitude >= 0x7F800000:
        return None
    sign = "-" if bits >> 31 else ""
    if magnitude == 0:
        return sign + "0e+00"
    value = _f32(magnitude)
    below = value - _f32(magnitude - 1)
    above = _f32(magnitude + 1) - value if magnitude + 1 < 0x7F800000 else below
    for digits in range(9):
        text = ("%." + str(digits) + "e") % value
        candidate = float(text)
        if candidate >= value:
            if candidate - value < above:
                return sign + text
        elif value - candidate < below:
            return sign + text
    return sign + ("%.8e" % value)


def decimal(text: "str") -> "tuple[int, int]":
    """Parse a decimal ("-230.2", "2.302e+02", "7") into (mantissa, exponent): m x 10**e."""
    text = text.strip().lower()
    exponent = 0
    if "e" in text:
        text, _, tail = text.partition("e")
        exponent = int(tail)
    negative = text.startswith("-")
    if negative or text.startswith("+"):
        text = text[1:]
    whole, _, fraction = text.partition(".")
    digits = (whole + fraction) or "0"
    exponent -= len(fraction)
    mantissa = int(digits)
    while mantissa and mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    return (-mantissa if negative else mantissa), exponent


def decimal_float(text: "str") -> "float":
    """The float nearest the decimal `text` (an exact division by a power of ten)."""
    mantissa, exponent = decimal(text)
    return decimal_to_float(mantissa, exponent)


def pow10(exponent: "int") -> "int":
    """10**exponent as an int (exponent >= 0)."""
    return int(10**exponent)


def decimal_to_float(mantissa: "int", exponent: "int") -> "float":
    if exponent >= 0:
        return float(mantissa * pow10(exponent))
    return mantissa / pow10(-exponent)


def is_finite(value: "float") -> "bool":
    """False for NaN and infinities (x - x is NaN for both)."""
    return value - value == 0.0


def number_decimal(value: "Number") -> "tuple[int, int]":
    """(mantissa, exponent) of an int or of a float's shortest repr."""
    if isinstance(value, int):
        return value, 0
    return decimal(repr(value))


def scale_value(raw: "Value", scale: "tuple[int, int]") -> "Value":
    """raw x scale, computed on decimals: ints stay ints when the product is whole and the
    scale is (a whole number); floats come out as the nearest float to the exact product.

    `scale` is (mantissa, exponent) as from number_decimal. A float32 raw value is taken
    as its shortest decimal (what decode_value returned is already that).
    """
    if isinstance(raw, str) or scale == (1, 0):
        return raw
    if isinstance(raw, float) and not is_finite(raw):
        return raw
    mantissa, exponent = number_decimal(raw)
    mantissa *= scale[0]
    exponent += scale[1]
    if isinstance(raw, int) and scale[1] >= 0:
        return mantissa * pow10(exponent)
    return decimal_to_float(mantissa, exponent)


__all__ = [
    "ORDERS",
    "TYPES",
    "bytes_to_registers",
    "decimal",
    "decimal_float",
    "decode_value",
    "encode_value",
    "f32_text",
    "is_finite",
    "number_decimal",
    "registers_to_bytes",
    "scale_value",
    "type_width",
]
