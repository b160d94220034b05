"""Modbus RTU frames: address, function, data, CRC. Requests, responses, exceptions.

An RTU frame (ADU) is ``address function data... crc_lo crc_hi``: 4 to 256 bytes. Address 0
is the broadcast (write requests only, never answered), 1-247 are devices, 248-255 reserved.
A device reporting an error answers ``address function|0x80 code crc``.

Requests and responses share one shape (`start`, `count`, `registers` or `bits`):

| function | request | normal response |
|---|---|---|
| 01/02 read coils / discrete inputs | start, count | bits (count of them) |
| 03/04 read holding / input registers | start, count | registers |
| 05 write single coil | start = coil, bits = (value,) | the echo of the request |
| 06 write single register | start = register, registers = (value,) | the echo |
| 0F write multiple coils | start, count, bits | start, count |
| 10 write multiple registers | start, count, registers | start, count |

A read response does not say which registers it carries: `start` and `count` are filled in
only when the request is given to `parse_response` (or the Master, which always has it).
"""

import struct

from protocols.errors import (
    CHECKSUM,
    EXCEPTION,
    MALFORMED,
    TRUNCATED,
    UNSUPPORTED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.modbus._crc import crc16, crc_bytes, frame_crc

MIN_ADU = 4
MAX_ADU = 256
BROADCAST = 0
MAX_DEVICE_ADDRESS = 247

READ_COILS = 0x01
READ_DISCRETE_INPUTS = 0x02
READ_HOLDING_REGISTERS = 0x03
READ_INPUT_REGISTERS = 0x04
WRITE_SINGLE_COIL = 0x05
WRITE_SINGLE_REGISTER = 0x06
WRITE_MULTIPLE_COILS = 0x0F
WRITE_MULTIPLE_REGISTERS = 0x10

# Quantity limits of the Modbus application protocol v1.1b3.
MAX_READ_BITS = 2000
MAX_READ_REGISTERS = 125
MAX_WRITE_COILS = 1968
MAX_WRITE_REGISTERS = 123

# Frame length rules, used to find frame boundaries where there is no silence to go by
# (a pasted capture). A rule is (offset, width, extra): width 0 means a fixed ADU length
# `extra`; otherwise the ADU is `extra` + the count of `width` bytes at `offset`.
_FIXED_4 = (0, 0, 4)
_FIXED_5 = (0, 0, 5)
_FIXED_6 = (0, 0, 6)
_FIXED_8 = (0, 0, 8)
_FIXED_10 = (0, 0, 10)
_COUNT_AT_2 = (2, 1, 5)

# function code -> (name, request length rule, normal response length rule); None: variable.
FUNCTIONS = {
    0x01: ("read coils", _FIXED_8, _COUNT_AT_2),
    0x02: ("read discrete inputs", _FIXED_8, _COUNT_AT_2),
    0x03: ("read holding registers", _FIXED_8, _COUNT_AT_2),
    0x04: ("read input registers", _FIXED_8, _COUNT_AT_2),
    0x05: ("write single coil", _FIXED_8, _FIXED_8),
    0x06: ("write single register", _FIXED_8, _FIXED_8),
    0x07: ("read exception status", _FIXED_4, _FIXED_5),
    0x08: ("diagnostics", _FIXED_8, _FIXED_8),
    0x0B: ("get comm event counter", _FIXED_4, _FIXED_8),
    0x0C: ("get comm event log", _FIXED_4, _COUNT_AT_2),
    0x0F: ("write multiple coils", (6, 1, 9), _FIXED_8),
    0x10: ("write multiple registers", (6, 1, 9), _FIXED_8),
    0x11: ("report server id", _FIXED_4, _COUNT_AT_2),
    0x14: ("read file record", _COUNT_AT_2, _COUNT_AT_2),
    0x15: ("write file record", _COUNT_AT_2, _COUNT_AT_2),
    0x16: ("mask write register", _FIXED_10, _FIXED_10),
    0x17: ("read/write multiple registers", (10, 1, 13), _COUNT_AT_2),
    0x18: ("read fifo queue", _FIXED_6, (2, 2, 6)),
    0x2B: ("encapsulated interface transport", None, None),
}

# The functions this codec interprets (the others are framed and shown as raw data).
INTERPRETED = (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F, 0x10)

EXCEPTIONS = {
    0x01: "ILLEGAL FUNCTION",
    0x02: "ILLEGAL DATA ADDRESS",
    0x03: "ILLEGAL DATA VALUE",
    0x04: "SERVER DEVICE FAILURE",
    0x05: "ACKNOWLEDGE",
    0x06: "SERVER DEVICE BUSY",
    0x08: "MEMORY PARITY ERROR",
    0x0A: "GATEWAY PATH UNAVAILABLE",
    0x0B: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}


def function_name(function: "int") -> "str | None":
    """The specification's name of a function code (without the 0x80 exception bit)."""
    entry = FUNCTIONS.get(function & 0x7F)
    return entry[0] if entry else None


def exception_name(code: "int") -> "str":
    """ILLEGAL FUNCTION, ILLEGAL DATA ADDRESS, ...; "UNKNOWN EXCEPTION 0xNN" otherwise."""
    return EXCEPTIONS.get(code) or "UNKNOWN EXCEPTION 0x%02X" % code


def rule_length(rule: "tuple[int, int, int]", frame: "bytes") -> "int | None":
    """ADU length a rule gives for `frame` (its first bytes); None until they are there."""
    offset, width, extra = rule
    if not width:
        return extra
    if len(frame) < offset + width:
        return None
    count = frame[offset] if width == 1 else (frame[offset] << 8) | frame[offset + 1]
    return count + extra


class ModbusException(RemoteProtocolError):
    """The device answered with an exception response (function | 0x80, code).

    reason is EXCEPTION; `address`, `function` (without the 0x80 bit), `code` and `name`
    (ILLEGAL DATA ADDRESS, ...) say what it reported.
    """

    def __init__(self, address: "int", function: "int", code: "int") -> "None":
        self.address = address
        self.function = function
        self.code = code
        self.name = exception_name(code)
        super().__init__(
            EXCEPTION,
            "%s (exception code %d) from address %d to function %d"
            % (self.name, code, address, function),
        )


class _Message:
    __slots__ = ("address", "bits", "count", "function", "registers", "start")

    def __init__(
        self,
        address: "int",
        function: "int",
        start: "int | None" = None,
        count: "int | None" = None,
        registers: "tuple[int, ...] | None" = None,
        bits: "tuple[bool, ...] | None" = None,
    ) -> "None":
        self.address = address
        self.function = function
        self.start = start
        self.count = count
        self.registers = registers
        self.bits = bits

    def _key(self) -> "tuple[object, ...]":
        return (self.address, self.function, self.start, self.count, self.registers, self.bits)

    def __eq__(self, other: "object") -> "bool":
        return (
            isinstance(other, _Message)
            and type(other) is type(self)
            and self._key() == other._key()
        )

    def __hash__(self) -> "int":
        return hash(self._key())

    def __repr__(self) -> "str":
        return "%s(address=%r, function=%r, start=%r, count=%r, registers=%r, bits=%r)" % (
            (type(self).__name__,) + self._key()  # noqa: RUF005 (MicroPython has no *x here)
        )


class Request(_Message):
    """A request to a device. Build it with the builders; `encode()` gives the RTU frame."""

    __slots__ = ()

    @property
    def broadcast(self) -> "bool":
        return self.address == BROADCAST

    def encode(self) -> "bytes":
        """The RTU frame (ADU) with its CRC."""
        fc = self.function
        start = self.start or 0
        count = self.count or 0
        if fc in (READ_COILS, READ_DISCRETE_INPUTS, READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS):
            body = struct.pack(">BBHH", self.address, fc, start, count)
        elif fc == WRITE_SINGLE_COIL:
            value = 0xFF00 if self.bits and self.bits[0] else 0x0000
            body = struct.pack(">BBHH", self.address, fc, start, value)
        elif fc == WRITE_SINGLE_REGISTER:
            body = struct.pack(">BBHH", self.address, fc, start, (self.registers or (0,))[0])
        elif fc == WRITE_MULTIPLE_COILS:
            packed = pack_bits(self.bits or ())
            body = struct.pack(">BBHHB", self.address, fc, start, count, len(packed)) + packed
        elif fc == WRITE_MULTIPLE_REGISTERS:
            values = self.registers or ()
            body = struct.pack(">BBHHB", self.address, fc, start, count, 2 * len(values))
            body += b"".join(struct.pack(">H", v) for v in values)
        else:
            raise LocalProtocolError("cannot encode function %d" % fc)
        return body + crc_bytes(body)

    def response_length(self) -> "int":
        """The length of the normal response ADU (an exception response is 5 bytes)."""
        return response_length(self.function, self.count or 0)


class Response(_Message):
    """A device's normal response. `start`/`count` of a read are known only from its request."""

    __slots__ = ()


def response_length(function: "int", count: "int") -> "int":
    if function in (READ_COILS, READ_DISCRETE_INPUTS):
        return 5 + (count + 7) // 8
    if function in (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS):
        return 5 + 2 * count
    if function in (
        WRITE_SINGLE_COIL,
        WRITE_SINGLE_REGISTER,
        WRITE_MULTIPLE_COILS,
        WRITE_MULTIPLE_REGISTERS,
    ):
        return 8
    raise LocalProtocolError("unsupported function %d" % function)


def pack_bits(bits: "tuple[bool, ...] | list[bool]") -> "bytes":
    """Coil values packed as on the wire: first coil in the low bit of the first byte."""
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def unpack_bits(data: "bytes", count: "int | None" = None) -> "tuple[bool, ...]":
    """The first `count` bits (all of them when None) of packed coil bytes."""
    total = 8 * len(data) if count is None else count
    return tuple(bool(data[i // 8] >> (i % 8) & 1) for i in range(total))


# ---------------------------------------------------------------------------- builders


def _check_address(address: "int", write: "bool") -> "None":
    if not isinstance(address, int) or not 0 <= address <= MAX_DEVICE_ADDRESS:
        raise LocalProtocolError("device address must be 0..247, got %r" % (address,))
    if address == BROADCAST and not write:
        raise LocalProtocolError("a read cannot be broadcast (address 0)")


def _check_span(start: "int", count: "int", limit: "int") -> "None":
    if not isinstance(start, int) or not 0 <= start <= 0xFFFF:
        raise LocalProtocolError("start address must be 0..65535, got %r" % (start,))
    if not isinstance(count, int) or not 1 <= count <= limit:
        raise LocalProtocolError("count must be 1..%d, got %r" % (limit, count))
    if start + count > 0x10000:
        raise LocalProtocolError("start %d + count %d passes address 65535" % (start, count))


def _check_register(value: "int") -> "int":
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
        raise LocalProtocolError(
            "register values are 0..65535 (encode signed or wider values with encode_value), "
            "got %r" % (value,)
        )
    return value


def _read(function: "int", limit: "int", address: "int", start: "int", count: "int") -> "Request":
    _check_address(address, False)
    _check_span(start, count, limit)
    return Request(address, function, start, count)


def read_coils(address: "int", start: "int", count: "int") -> "Request":
    """FC 01: read `count` (1-2000) coils from `start`."""
    return _read(READ_COILS, MAX_READ_BITS, address, start, count)


def read_discrete_inputs(address: "int", start: "int", count: "int") -> "Request":
    """FC 02: read `count` (1-2000) discrete inputs from `start`."""
    return _read(READ_DISCRETE_INPUTS, MAX_READ_BITS, address, start, count)


def read_holding_registers(address: "int", start: "int", count: "int") -> "Request":
    """FC 03: read `count` (1-125) holding registers from `start` (0-based wire address)."""
    return _read(READ_HOLDING_REGISTERS, MAX_READ_REGISTERS, address, start, count)


def read_input_registers(address: "int", start: "int", count: "int") -> "Request":
    """FC 04: read `count` (1-125) input registers from `start` (0-based: 30001 is 0)."""
    return _read(READ_INPUT_REGISTERS, MAX_READ_REGISTERS, address, start, count)


def write_single_coil(address: "int", coil: "int", value: "bool") -> "Request":
    """FC 05: set one coil on (0xFF00) or off (0x0000)."""
    _check_address(address, True)
    _check_span(coil, 1, 1)
    return Request(address, WRITE_SINGLE_COIL, coil, 1, bits=(bool(value),))


def write_single_register(address: "int", register: "int", value: "int") -> "Request":
    """FC 06: write one register (value 0-65535)."""
    _check_address(address, True)
    _check_span(register, 1, 1)
    return Request(address, WRITE_SINGLE_REGISTER, register, 1, (_check_register(value),))


def write_multiple_coils(
    address: "int", start: "int", values: "list[bool] | tuple[bool, ...]"
) -> "Request":
    """FC 0F: write 1-1968 coils from `start`."""
    _check_address(address, True)
    _check_span(start, len(values), MAX_WRITE_COILS)
    return Request(
        address, WRITE_MULTIPLE_COILS, start, len(values), bits=tuple(bool(v) for v in values)
    )


def write_multiple_registers(
    address: "int", start: "int", values: "list[int] | tuple[int, ...]"
) -> "Request":
    """FC 10: write 1-123 registers from `start` (see encode_value for f32, s32...)."""
    _check_address(address, True)
    _check_span(start, len(values), MAX_WRITE_REGISTERS)
    registers = tuple(_check_register(v) for v in values)
    return Request(address, WRITE_MULTIPLE_REGISTERS, start, len(registers), registers)


# ----------------------------------------------------------------------------- parsers


def encode_frame(address: "int", function: "int", data: "bytes") -> "bytes":
    """Any RTU frame: address, function, data and the CRC (for functions without builders)."""
    if not 0 <= address <= 255 or not 0 <= function <= 255:
        raise LocalProtocolError("address and function are bytes")
    body = bytes((address, function)) + bytes(data)
    if len(body) + 2 > MAX_ADU:
        raise LocalProtocolError("an RTU frame is at most %d bytes" % MAX_ADU)
    return body + crc_bytes(body)


def parse_frame(adu: "bytes") -> "tuple[int, int, bytes]":
    """Check length and CRC of one RTU frame; return (address, function, data)."""
    if len(adu) < MIN_ADU:
        raise RemoteProtocolError(
            TRUNCATED, "%d bytes: an RTU frame has at least %d" % (len(adu), MIN_ADU)
        )
    if len(adu) > MAX_ADU:
        raise RemoteProtocolError(
            MALFORMED, "%d bytes: an RTU frame has at most %d" % (len(adu), MAX_ADU)
        )
    computed = crc16(adu[:-2])
    if computed != frame_crc(adu):
        raise RemoteProtocolError(
            CHECKSUM,
            "CRC %02X %02X on the wire, %02X %02X computed"
            % (adu[-2], adu[-1], computed & 0xFF, computed >> 8),
        )
    return adu[0], adu[1], bytes(adu[2:-2])


def _malformed(message: "str") -> "RemoteProtocolError":
    return RemoteProtocolError(MALFORMED, message)


def _span(data: "bytes") -> "tuple[int, int]":
    start: "int"
    count: "int"
    start, count = struct.unpack(">HH", data[:4])
    return start, count


def _check_quantity(start: "int", count: "int", limit: "int", what: "str") -> "None":
    if not 1 <= count <= limit:
        raise _malformed("%d %s: the limit is 1..%d" % (count, what, limit))
    if start + count > 0x10000:
        raise _malformed("start %d + count %d passes address 65535" % (start, count))


def parse_request(adu: "bytes") -> "Request":
    """Decode a request frame (what a master sends, or a capture a technician pasted)."""
    address, fc, data = parse_frame(adu)
    if fc & 0x80:
        raise _malformed("function 0x%02X is an exception code, not a request" % fc)
    if fc not in INTERPRETED:
        raise RemoteProtocolError(UNSUPPORTED, "function %d (%s)" % (fc, function_name(fc)))
    name = function_name(fc)
    if fc in (READ_COILS, READ_DISCRETE_INPUTS, READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS):
        if len(data) != 4:
            raise _malformed("%s request has %d data bytes, not 4" % (name, len(data)))
        # A read to address 0 breaks the spec (broadcasts are writes) but is well framed:
        # decoded (as pymodbus does), `broadcast` set; describe() adds a note.
        start, count = _span(data)
        if fc in (READ_COILS, READ_DISCRETE_INPUTS):
            _check_quantity(start, count, MAX_READ_BITS, "bits")
        else:
            _check_quantity(start, count, MAX_READ_REGISTERS, "registers")
        return Request(address, fc, start, count)
    if fc in (WRITE_SINGLE_COIL, WRITE_SINGLE_REGISTER):
        if len(data) != 4:
            raise _malformed("%s request has %d data bytes, not 4" % (name, len(data)))
        start, value = _span(data)
        if fc == WRITE_SINGLE_REGISTER:
            return Request(address, fc, start, 1, (value,))
        if value not in (0xFF00, 0x0000):
            raise _malformed("coil value 0x%04X (0xFF00 or 0x0000 expected)" % value)
        return Request(address, fc, start, 1, bits=(value == 0xFF00,))
    # WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS
    if len(data) < 5:
        raise _malformed("%s request has %d data bytes" % (name, len(data)))
    start, count = _span(data)
    byte_count = data[4]
    values = data[5:]
    if byte_count != len(values):
        raise _malformed("byte count %d but %d data bytes" % (byte_count, len(values)))
    if fc == WRITE_MULTIPLE_COILS:
        _check_quantity(start, count, MAX_WRITE_COILS, "coils")
        if byte_count != (count + 7) // 8:
            raise _malformed("byte count %d for %d coils" % (byte_count, count))
        return Request(address, fc, start, count, bits=unpack_bits(values, count))
    _check_quantity(start, count, MAX_WRITE_REGISTERS, "registers")
    if byte_count != 2 * count:
        raise _malformed("byte count %d for %d registers" % (byte_count, count))
    registers = struct.unpack(">%dH" % count, values)
    return Request(address, fc, start, count, tuple(registers))


def parse_response(adu: "bytes", request: "Request | None" = None) -> "Response":
    """Decode a response frame; with its `request`, also check that it answers it.

    Raises ModbusException for an exception response, RemoteProtocolError for the rest.
    """
    address, fc, data = parse_frame(adu)
    # Address 0 or 248..255 should not answer, but a well-framed answer from there is
    # decoded (pymodbus does; PZEM-004T meters use 0xF8 as their general address):
    # describe() adds a note, and with `request` the address must match it anyway.
    if request is not None:
        if address != request.address:
            raise _malformed(
                "response from address %d to a request for address %d" % (address, request.address)
            )
        if fc & 0x7F != request.function:
            raise _malformed(
                "function 0x%02X in the response to function 0x%02X" % (fc, request.function)
            )
    if fc & 0x80:
        if len(data) != 1:
            raise _malformed("exception response with %d data bytes, not 1" % len(data))
        raise ModbusException(address, fc & 0x7F, data[0])
    if fc not in INTERPRETED:
        raise RemoteProtocolError(UNSUPPORTED, "function %d (%s)" % (fc, function_name(fc)))
    name = function_name(fc)
    if fc in (READ_COILS, READ_DISCRETE_INPUTS, READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS):
        if not data:
            raise _malformed("%s response without a byte count" % name)
        byte_count = data[0]
        values = data[1:]
        if byte_count != len(values):
            raise _malformed("byte count %d but %d data bytes" % (byte_count, len(values)))
        if byte_count == 0:
            raise _malformed("byte count 0")
        count = request.count if request is not None else None
        start = request.start if request is not None else None
        if fc in (READ_COILS, READ_DISCRETE_INPUTS):
            if count is not None and byte_count != (count + 7) // 8:
                raise _malformed(
                    "byte count %d, expected %d for %d bits" % (byte_count, (count + 7) // 8, count)
                )
            return Response(address, fc, start, count, bits=unpack_bits(values, count))
        if byte_count % 2:
            raise _malformed("odd byte count %d for registers" % byte_count)
        if count is not None and byte_count != 2 * count:
            raise _malformed(
                "byte count %d, expected %d for %d registers" % (byte_count, 2 * count, count)
            )
        registers = tuple(struct.unpack(">%dH" % (byte_count // 2), values))
        return Response(address, fc, start, len(registers), registers)
    if len(data) != 4:
        raise _malformed("%s response has %d data bytes, not 4" % (name, len(data)))
    start, value = _span(data)
    if fc == WRITE_SINGLE_REGISTER:
        response = Response(address, fc, start, 1, (value,))
    elif fc == WRITE_SINGLE_COIL:
        if value not in (0xFF00, 0x0000):
            raise _malformed("coil value 0x%04X (0xFF00 or 0x0000 expected)" % value)
        response = Response(address, fc, start, 1, bits=(value == 0xFF00,))
    else:
        limit = MAX_WRITE_COILS if fc == WRITE_MULTIPLE_COILS else MAX_WRITE_REGISTERS
        _check_quantity(start, value, limit, "coils" if fc == WRITE_MULTIPLE_COILS else "registers")
        response = Response(address, fc, start, value)
    if request is not None:
        if fc in (WRITE_SINGLE_COIL, WRITE_SINGLE_REGISTER):
            same = (response.start, response.registers, response.bits) == (
                request.start,
                request.registers,
                request.bits,
            )
        else:
            same = (response.start, response.count) == (request.start, request.count)
        if not same:
            raise _malformed("the response does not echo the request: %s" % adu_hex(adu))
    return response


def adu_hex(adu: "bytes") -> "str":
    return " ".join("%02X" % b for b in adu)


__all__ = [
    "BROADCAST",
    "EXCEPTIONS",
    "FUNCTIONS",
    "MAX_ADU",
    "MAX_READ_BITS",
    "MAX_READ_REGISTERS",
    "MAX_WRITE_COILS",
    "MAX_WRITE_REGISTERS",
    "READ_COILS",
    "READ_DISCRETE_INPUTS",
    "READ_HOLDING_REGISTERS",
    "READ_INPUT_REGISTERS",
    "WRITE_MULTIPLE_COILS",
    "WRITE_MULTIPLE_REGISTERS",
    "WRITE_SINGLE_COIL",
    "WRITE_SINGLE_REGISTER",
    "ModbusException",
    "Request",
    "Response",
    "encode_frame",
    "exception_name",
    "function_name",
    "pack_bits",
    "parse_frame",
    "parse_request",
    "parse_response",
    "read_coils",
    "read_discrete_inputs",
    "read_holding_registers",
    "read_input_registers",
    "response_length",
    "rule_length",
    "unpack_bits",
    "write_multiple_coils",
    "write_multiple_registers",
    "write_single_coil",
    "write_single_register",
]
