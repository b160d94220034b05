"""protocols.modbus on CPython: builders round trips, the master fed at every split point,
values in every order, read plans, describe and `estran decode modbus`, and fuzzing.

Frames from the Modbus application protocol specification v1.1b3 (section 6) and the
serial line specification v1.02; the shared vectors are covered by test_vectors_modbus.py.
"""

import contextlib
import json
import math
import struct

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from estran.cli import cli
from protocols import modbus
from protocols.errors import (
    CHECKSUM,
    EXCEPTION,
    MALFORMED,
    TRUNCATED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.modbus._values import f32_text
from protocols.reading import Measurement

FUZZ = settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def frame(hex_text: str) -> bytes:
    """Hex of address + PDU; the CRC is appended (checked against the reference below)."""
    body = bytes.fromhex(hex_text)
    return body + modbus.crc_bytes(body)


def crc_reference(data: bytes) -> int:
    """Bit-by-bit CRC-16/MODBUS, as the serial line specification (6.2.2) describes it."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


# ------------------------------------------------------------------------------------ CRC


def test_crc_check_value_and_spec_example() -> None:
    assert modbus.crc16(b"123456789") == 0x4B37
    # Serial line spec v1.02 example: 02 07 -> CRC 41 12 on the wire.
    assert modbus.crc_bytes(b"\x02\x07") == b"\x41\x12"
    assert modbus.crc_ok(b"\x02\x07\x41\x12")
    assert not modbus.crc_ok(b"\x02\x07\x12\x41")


@given(st.binary(max_size=300))
@FUZZ
def test_crc_table_matches_the_bitwise_definition(data: bytes) -> None:
    assert modbus.crc16(data) == crc_reference(data)
    assert modbus.crc_ok(data + modbus.crc_bytes(data)) or len(data) == 0


# ------------------------------------------------------------------------------- builders

SPEC_REQUESTS = [
    # (request, spec PDU hex): Modbus application protocol v1.1b3 section 6 examples
    (modbus.read_coils(1, 19, 19), "01 01 0013 0013"),
    (modbus.read_discrete_inputs(1, 196, 22), "01 02 00C4 0016"),
    (modbus.read_holding_registers(1, 107, 3), "01 03 006B 0003"),
    (modbus.read_input_registers(1, 8, 1), "01 04 0008 0001"),
    (modbus.write_single_coil(1, 172, True), "01 05 00AC FF00"),
    (modbus.write_single_register(1, 1, 3), "01 06 0001 0003"),
    (
        modbus.write_multiple_coils(1, 19, [1, 0, 1, 1, 0, 0, 1, 1, 1, 0]),
        "01 0F 0013 000A 02 CD01",
    ),
    (modbus.write_multiple_registers(1, 1, [0x000A, 0x0102]), "01 10 0001 0002 04 000A 0102"),
]


@pytest.mark.parametrize(("request_", "spec"), SPEC_REQUESTS)
def test_builders_make_the_spec_frames_and_parse_back(request_: modbus.Request, spec: str) -> None:
    wire = request_.encode()
    assert wire == frame(spec.replace(" ", ""))
    assert modbus.parse_request(wire) == request_


def test_builder_response_lengths() -> None:
    assert modbus.read_coils(1, 0, 19).response_length() == 5 + 3
    assert modbus.read_holding_registers(1, 0, 125).response_length() == 5 + 250
    assert modbus.write_single_register(1, 0, 0).response_length() == 8
    assert modbus.write_multiple_registers(1, 0, [1, 2]).response_length() == 8


@pytest.mark.parametrize(
    "build",
    [
        lambda: modbus.read_holding_registers(1, 0, 0),
        lambda: modbus.read_holding_registers(1, 0, 126),
        lambda: modbus.read_input_registers(0, 0, 1),  # a read cannot be broadcast
        lambda: modbus.read_input_registers(248, 0, 1),
        lambda: modbus.read_coils(1, 0, 2001),
        lambda: modbus.read_holding_registers(1, 65535, 2),
        lambda: modbus.write_single_register(1, 0, 65536),
        lambda: modbus.write_single_register(1, 0, -1),
        lambda: modbus.write_multiple_registers(1, 0, []),
        lambda: modbus.write_multiple_registers(1, 0, [0] * 124),
        lambda: modbus.write_multiple_coils(1, 0, [True] * 1969),
        lambda: modbus.encode_frame(1, 3, bytes(260)),
    ],
)
def test_builders_refuse_what_the_spec_forbids(build: object) -> None:
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


def test_broadcast_write() -> None:
    request = modbus.write_single_register(0, 5, 7)
    assert request.broadcast
    parsed = modbus.parse_request(request.encode())
    assert parsed == request
    master = modbus.Master()
    master.send(request)
    assert master.pending is None  # no response to a broadcast


requests = st.one_of(
    st.builds(
        modbus.read_holding_registers,
        st.integers(1, 247),
        st.integers(0, 65535 - 125),
        st.integers(1, 125),
    ),
    st.builds(
        modbus.read_input_registers,
        st.integers(1, 247),
        st.integers(0, 65535 - 125),
        st.integers(1, 125),
    ),
    st.builds(modbus.read_coils, st.integers(1, 247), st.integers(0, 60000), st.integers(1, 2000)),
    st.builds(
        modbus.write_single_register,
        st.integers(0, 247),
        st.integers(0, 65535),
        st.integers(0, 65535),
    ),
    st.builds(modbus.write_single_coil, st.integers(0, 247), st.integers(0, 65535), st.booleans()),
    st.builds(
        modbus.write_multiple_registers,
        st.integers(0, 247),
        st.integers(0, 60000),
        st.lists(st.integers(0, 65535), min_size=1, max_size=123),
    ),
    st.builds(
        modbus.write_multiple_coils,
        st.integers(0, 247),
        st.integers(0, 60000),
        st.lists(st.booleans(), min_size=1, max_size=1968),
    ),
)


@given(requests)
@FUZZ
def test_request_round_trip(request_: modbus.Request) -> None:
    wire = request_.encode()
    assert len(wire) <= modbus.MAX_ADU
    assert modbus.parse_request(wire) == request_
    (described,) = modbus.describe(wire, {})
    assert described["valid"] is True
    assert described["fields"]["kind"] == "request"
    assert described["fields"]["start"] == request_.start


def answer(request: modbus.Request, registers: list[int] | None = None) -> bytes:
    """The normal response a device gives to `request` (register values given or 0..n)."""
    fc = request.function
    count = request.count or 0
    if fc in (1, 2):
        bits = [(i % 3) == 0 for i in range(count)]
        data = modbus._frames.pack_bits(bits)
        return frame("%02X%02X%02X" % (request.address, fc, len(data)) + data.hex())
    if fc in (3, 4):
        values = registers if registers is not None else list(range(count))
        data = b"".join(struct.pack(">H", v) for v in values)
        return frame("%02X%02X%02X" % (request.address, fc, len(data)) + data.hex())
    return request.encode()[:6] + modbus.crc_bytes(request.encode()[:6])


@given(requests)
@FUZZ
def test_master_reads_the_answer_at_every_split_point(request_: modbus.Request) -> None:
    if request_.broadcast:
        return
    response = answer(request_)
    expected = modbus.parse_response(response, request_)
    for split in range(len(response) + 1):
        master = modbus.Master()
        master.send(request_)
        master.receive_data(response[:split])
        if split < len(response):
            assert master.next_event() is modbus.NEED_DATA
        master.receive_data(response[split:])
        assert master.next_event() == expected
        assert master.pending is None


# --------------------------------------------------------------------------------- master


def test_master_spec_read_holding_registers_byte_by_byte() -> None:
    # Spec 6.3: registers 108-110 = 555, 0, 100.
    request = modbus.read_holding_registers(1, 107, 3)
    response = frame("0103" + "06" + "022B" + "0000" + "0064")
    master = modbus.Master()
    assert master.send(request) == request.encode()
    assert master.expected_length == 11
    for i in range(len(response) - 1):
        master.receive_data(response[i : i + 1])
        assert master.next_event() is modbus.NEED_DATA
    master.receive_data(response[-1:])
    event = master.next_event()
    assert isinstance(event, modbus.Response)
    assert (event.start, event.count, event.registers) == (107, 3, (555, 0, 100))


def test_master_exception_response_at_every_split() -> None:
    # Spec 7: read input registers answered with exception 02 ILLEGAL DATA ADDRESS.
    request = modbus.read_input_registers(10, 0x0000, 2)
    response = frame("0A8402")
    for split in range(len(response) + 1):
        master = modbus.Master()
        master.send(request)
        master.receive_data(response[:split])
        if split < len(response):
            assert master.next_event() is modbus.NEED_DATA
        master.receive_data(response[split:])
        with pytest.raises(modbus.ModbusException) as info:
            master.next_event()
        error = info.value
        assert isinstance(error, RemoteProtocolError) and error.reason == EXCEPTION
        assert (error.address, error.function, error.code) == (10, 4, 2)
        assert error.name == "ILLEGAL DATA ADDRESS"
        assert master.pending is None


def test_exception_names() -> None:
    assert modbus.exception_name(1) == "ILLEGAL FUNCTION"
    assert modbus.exception_name(3) == "ILLEGAL DATA VALUE"
    assert modbus.exception_name(4) == "SERVER DEVICE FAILURE"
    assert modbus.exception_name(6) == "SERVER DEVICE BUSY"
    assert modbus.exception_name(0x0B) == "GATEWAY TARGET DEVICE FAILED TO RESPOND"
    assert modbus.exception_name(0x42) == "UNKNOWN EXCEPTION 0x42"


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (frame("0203020001"), MALFORMED),  # another device answers
        (frame("0104020001"), MALFORMED),  # another function
        (frame("0103040001 0002".replace(" ", "")), MALFORMED),  # byte count for 2 registers
        (bytes.fromhex("01030200010000"), CHECKSUM),
        (frame("018302")[:-1] + b"\x00", CHECKSUM),
    ],
)
def test_master_rejects_what_does_not_answer(response: bytes, reason: str) -> None:
    master = modbus.Master()
    master.send(modbus.read_holding_registers(1, 0, 1))
    master.receive_data(response)
    with pytest.raises(RemoteProtocolError) as info:
        master.next_event()
    assert info.value.reason == reason
    assert master.pending is None  # ready for the next request


def test_master_misuse_and_reset() -> None:
    master = modbus.Master()
    with pytest.raises(LocalProtocolError):
        master.next_event()
    master.receive_data(b"\x01\x02")  # nothing pending: dropped, counted
    assert master.discarded == 2
    request = modbus.read_holding_registers(1, 0, 1)
    master.send(request)
    with pytest.raises(LocalProtocolError):
        master.send(request)
    master.receive_data(b"\x01\x03")
    master.reset()  # the caller's timeout
    assert master.pending is None
    master.send(request)
    master.receive_data(frame("0103020007") + b"\xff\xff")
    event = master.next_event()
    assert isinstance(event, modbus.Response) and event.registers == (7,)
    assert master.discarded == 4


def test_master_buffer_is_bounded() -> None:
    master = modbus.Master()
    master.send(modbus.read_holding_registers(1, 0, 1))
    master.receive_data(frame("0103020007") + bytes(10_000))
    assert isinstance(master.next_event(), modbus.Response)
    assert master.discarded == 10_000


def test_master_local_echo() -> None:
    request = modbus.read_holding_registers(20, 289, 1)
    response = frame("140302 0302".replace(" ", ""))
    wire = request.encode() + response
    for split in range(len(wire) + 1):
        master = modbus.Master(echo=True)
        master.send(request)
        assert master.expected_length == 8 + 7
        master.receive_data(wire[:split])
        if split < len(wire):
            assert master.next_event() is modbus.NEED_DATA
        master.receive_data(wire[split:])
        event = master.next_event()
        assert isinstance(event, modbus.Response) and event.registers == (770,)
    master = modbus.Master(echo=True)
    master.send(request)
    master.receive_data(b"\x14\x04")
    with pytest.raises(RemoteProtocolError) as info:
        master.next_event()
    assert info.value.reason == MALFORMED


def test_silent_interval() -> None:
    # t3.5 = 3.5 characters of 11 bits; fixed 1.75 ms above 19200 baud.
    assert modbus.silent_interval(9600) == pytest.approx(3.5 * 11 / 9600)
    assert modbus.silent_interval(9600) == pytest.approx(0.004010, abs=1e-6)
    assert modbus.silent_interval(19200) == pytest.approx(0.002005, abs=1e-6)
    assert modbus.silent_interval(38400) == 0.00175
    assert modbus.silent_interval(115200) == 0.00175
    assert modbus.inter_character_timeout(9600) == pytest.approx(1.5 * 11 / 9600)
    assert modbus.inter_character_timeout(57600) == 0.00075
    assert modbus.character_time(2400) == pytest.approx(11 / 2400)
    with pytest.raises(LocalProtocolError):
        modbus.silent_interval(0)


# --------------------------------------------------------------------------------- values


def test_orders_of_0x12345678() -> None:
    assert modbus.encode_value(0x12345678, "u32", "ABCD") == (0x1234, 0x5678)
    assert modbus.encode_value(0x12345678, "u32", "CDAB") == (0x5678, 0x1234)
    assert modbus.encode_value(0x12345678, "u32", "BADC") == (0x3412, 0x7856)
    assert modbus.encode_value(0x12345678, "u32", "DCBA") == (0x7856, 0x3412)
    assert modbus.encode_value(0x1234, "u16", "DCBA") == (0x3412,)
    assert modbus.encode_value(0x0102030405060708, "u64", "CDAB") == (
        0x0708,
        0x0506,
        0x0304,
        0x0102,
    )


values = st.one_of(
    st.tuples(st.just("u16"), st.integers(0, 0xFFFF)),
    st.tuples(st.just("s16"), st.integers(-0x8000, 0x7FFF)),
    st.tuples(st.just("u32"), st.integers(0, 0xFFFFFFFF)),
    st.tuples(st.just("s32"), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just("u64"), st.integers(0, 2**64 - 1)),
    st.tuples(st.just("s64"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("f64"), st.floats(allow_nan=False)),
)


@given(values, st.sampled_from(sorted(modbus.ORDERS)))
@FUZZ
def test_values_round_trip_in_every_order(typed: tuple[str, object], order: str) -> None:
    type_name, value = typed
    registers = modbus.encode_value(value, type_name, order)  # type: ignore[arg-type]
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert modbus.decode_value(registers, type_name, order) == value


@given(st.integers(0, 0xFFFFFFFF), st.sampled_from(sorted(modbus.ORDERS)))
@FUZZ
def test_f32_is_within_one_unit_of_the_wire_value(bits: int, order: str) -> None:
    exact = struct.unpack(">f", bits.to_bytes(4, "big"))[0]
    registers = modbus.encode_value(bits, "u32", order)
    value = modbus.decode_value(registers, "f32", order)
    assert isinstance(value, float)
    if math.isnan(exact):
        assert math.isnan(value)
        return
    if math.isinf(exact) or exact == 0:
        assert value == exact
        return
    magnitude = bits & 0x7FFFFFFF
    below = struct.unpack(">f", (magnitude - 1).to_bytes(4, "big"))[0]
    above = (
        struct.unpack(">f", (magnitude + 1).to_bytes(4, "big"))[0]
        if magnitude + 1 < 0x7F800000
        else math.inf
    )
    assert below < abs(value) < above
    # The shortest form: at most 9 significant digits (float32 needs no more).
    significant = repr(abs(value)).split("e")[0].replace(".", "").strip("0")
    assert len(significant) <= 9


def test_f32_without_noise() -> None:
    # The meter's 0x43663334 and the nearest float32 to 230.2 both read 230.2.
    assert modbus.decode_value((0x4366, 0x3334), "f32") == 230.2
    assert modbus.decode_value((0x4366, 0x3333), "f32") == 230.2
    # 1.1 truncated to float32 (0x3F8CCCCC, 1.09999990463...) is 1.1 too: 1.1 lies above it
    # by more than half a unit, less than one.
    assert modbus.decode_value((0x3F8C, 0xCCCC), "f32") == 1.1
    assert modbus.decode_value((0x3F8C, 0xCCCD), "f32") == 1.1
    assert f32_text(0x3DCCCCCD) == "1e-01"
    assert modbus.decode_value(modbus.encode_value(12345678.0, "f32"), "f32") == 12345678.0
    assert modbus.decode_value((0x3F80, 0x0000), "f32") == 1.0
    assert modbus.decode_value((0xC2F6, 0xE979), "f32") == -123.456
    assert modbus.decode_value((0, 0), "f32") == 0.0


def test_str_values() -> None:
    assert modbus.decode_value((0x4142, 0x4300), "str") == "ABC"
    assert modbus.encode_value("ABC", "str", count=2) == (0x4142, 0x4300)
    assert modbus.decode_value((0x4241,), "str", "BADC") == "AB"
    with pytest.raises(LocalProtocolError):
        modbus.encode_value("ABCDE", "str", count=2)


def test_value_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        modbus.decode_value((1,), "u32")
    with pytest.raises(LocalProtocolError):
        modbus.decode_value((1,), "u12")
    with pytest.raises(LocalProtocolError):
        modbus.decode_value((1, 2), "u32", "ACBD")
    with pytest.raises(LocalProtocolError):
        modbus.encode_value(70000, "u16")
    with pytest.raises(LocalProtocolError):
        modbus.encode_value(-1, "u32")


# ------------------------------------------------------------------------ maps and plans


def test_decode_registers_scales_without_noise() -> None:
    device = modbus.RegisterMap(
        "probe",
        [
            modbus.Register("moisture", 0, "u16", 0.1, "%"),
            modbus.Register("temperature", 1, "s16", 0.01, "Cel"),
            modbus.Register("ec", 2, "u16", 0.0001, "S/m"),
            modbus.Register("count", 3, "u32", 1, None),
            modbus.Register("energy", 5, "f32", 1000, "Wh"),
            modbus.Register("x10", 7, "u16", 10, "m"),
        ],
    )
    registers = [658, 0xFC17, 1234, 0x0001, 0x0000, 0x4366, 0x3334, 7]
    assert modbus.decode_registers(device, 0, registers) == [
        Measurement("moisture", 65.8, "%"),
        Measurement("temperature", -10.01, "Cel"),
        Measurement("ec", 0.1234, "S/m"),
        Measurement("count", 65536, None),
        Measurement("energy", 230200.0, "Wh"),
        Measurement("x10", 70, "m"),
    ]
    got = modbus.decode_registers(device, 0, registers)
    assert isinstance(got[3].value, int) and isinstance(got[5].value, int)
    # Only registers wholly inside what was read.
    assert [m.name for m in modbus.decode_registers(device, 1, registers[1:6])] == [
        "temperature",
        "ec",
        "count",
    ]
    # NaN ("no value") gives no measurement.
    nan = modbus.RegisterMap("m", [modbus.Register("v", 0, "f32")])
    assert modbus.decode_registers(nan, 0, [0x7FC0, 0]) == []


def test_read_plan_groups_contiguous_registers() -> None:
    plan = modbus.read_plan(modbus.SDM120)
    assert [(r.function, r.start, r.count) for r in plan] == [
        (4, 0x00, 2),
        (4, 0x06, 2),
        (4, 0x0C, 2),
        (4, 0x12, 2),
        (4, 0x18, 2),
        (4, 0x1E, 2),
        (4, 0x24, 2),
        (4, 0x46, 10),
        (4, 0x156, 4),
    ]
    # Bridging gaps of up to 6 registers: three requests; max 80 registers each (Eastron).
    bridged = modbus.read_plan(modbus.SDM120, max_gap=6)
    assert [(r.start, r.count) for r in bridged] == [(0x00, 0x26), (0x46, 10), (0x156, 4)]
    wide = modbus.read_plan(modbus.SDM630, max_gap=200)
    assert all((r.count or 0) <= 80 for r in wide)
    assert modbus.read_plan(modbus.SOIL) == [modbus.read_holding_registers(1, 0, 4)]
    assert modbus.read_plan(modbus.LEVEL, address=7) == [modbus.read_holding_registers(7, 0x34, 1)]


def test_read_plan_respects_max_count_and_functions() -> None:
    registers = [modbus.Register("r%d" % i, i, "u16") for i in range(300)]
    registers.append(modbus.Register("input", 5, "u16", function=4))
    device = modbus.RegisterMap("big", registers)
    plan = modbus.read_plan(device)
    assert [(r.function, r.start, r.count) for r in plan] == [
        (3, 0, 125),
        (3, 125, 125),
        (3, 250, 50),
        (4, 5, 1),
    ]
    assert [(r.start, r.count) for r in modbus.read_plan(device, max_count=100)][:3] == [
        (0, 100),
        (100, 100),
        (200, 100),
    ]


@given(
    st.lists(
        st.tuples(st.integers(0, 2000), st.sampled_from(["u16", "u32", "f32", "u64"])),
        min_size=1,
        max_size=40,
    ),
    st.integers(0, 10),
    st.integers(4, 125),
)
@FUZZ
def test_read_plan_covers_every_register_once(
    layout: list[tuple[int, str]], gap: int, limit: int
) -> None:
    registers = [modbus.Register("r%d" % i, a, t) for i, (a, t) in enumerate(layout)]
    device = modbus.RegisterMap("any", registers, max_gap=gap, max_count=limit)
    plan = modbus.read_plan(device)
    for r in device.registers:
        covering = [
            p
            for p in plan
            if (p.start or 0) <= r.address
            and r.address + r.count <= (p.start or 0) + (p.count or 0)
        ]
        assert covering, r
    for p in plan:
        assert 1 <= (p.count or 0) <= limit
    # Decoding each request's registers gives every register; exactly once when the
    # registers do not overlap one another.
    seen: dict[str, int] = {}
    for p in plan:
        for m in modbus.decode_registers(device, p.start or 0, [0] * (p.count or 0)):
            seen[m.name] = seen.get(m.name, 0) + 1
    assert set(seen) == {r.name for r in device.registers}
    words = [w for r in device.registers for w in range(r.address, r.address + r.count)]
    if len(words) == len(set(words)):
        assert set(seen.values()) == {1}


def test_register_map_from_and_to_dict() -> None:
    config = {
        "name": "my_probe",
        "function": 4,
        "address": 3,
        "registers": [
            {
                "name": "temperature",
                "address": "0x0000",
                "type": "s16",
                "scale": 0.01,
                "unit": "Cel",
            },
            {"name": "moisture", "address": 1, "scale": 0.01, "unit": "%"},
        ],
    }
    device = modbus.RegisterMap.from_dict(config)
    assert modbus.read_plan(device) == [modbus.read_input_registers(3, 0, 2)]
    again = modbus.RegisterMap.from_dict(device.as_dict())
    assert again.as_dict() == device.as_dict()
    assert modbus.decode_registers(device, 0, [0xFC17, 4512]) == [
        Measurement("temperature", -10.01, "Cel"),
        Measurement("moisture", 45.12, "%"),
    ]
    for bad in (
        {"name": "x"},
        {"name": "x", "registers": []},
        {"name": "x", "registers": [{"name": "a", "address": 0, "type": "u12"}]},
        {"name": "x", "registers": [{"name": "a", "address": 0, "function": 5}]},
        {"name": "x", "registers": [{"name": "a", "address": 0}, {"name": "a", "address": 1}]},
        {"name": "x", "registers": [{"name": "a", "address": 0}], "max_count": 126},
    ):
        with pytest.raises(LocalProtocolError):
            modbus.RegisterMap.from_dict(bad)


def test_every_named_map_is_usable() -> None:
    assert sorted(modbus.MAPS) == [
        "fmr20",
        "keller30",
        "level",
        "level_sen0310",
        "sdm120",
        "sdm630",
        "soil",
        "soil_es103",
    ]
    senml = {
        "V",
        "A",
        "W",
        "VA",
        "var",
        "/",
        "deg",
        "Hz",
        "Wh",
        "VArh",
        "%",
        "Cel",
        "S/m",
        "pH",
        "kg/m3",
        "m",
        "dB",
        "Pa",
    }
    for name, device in modbus.MAPS.items():
        assert modbus.get_map(name.upper()) is device
        assert {r.unit for r in device.registers} <= senml, name
        for request in modbus.read_plan(device):
            assert modbus.parse_request(request.encode()) == request
    with pytest.raises(LocalProtocolError):
        modbus.get_map("sdm999")


# ------------------------------------------------------------------------------- describe


def test_describe_exception_response() -> None:
    (result,) = modbus.describe(frame("018402"), {})
    assert result == {
        "protocol": "modbus",
        "valid": True,
        "error": None,
        "fields": {
            "address": 1,
            "function": 0x84,
            "function_name": "read input registers",
            "kind": "exception",
            "exception": 2,
            "exception_name": "ILLEGAL DATA ADDRESS",
        },
        "readings": [],
    }


def test_describe_request_then_exception() -> None:
    request = modbus.read_input_registers(1, 0x0100, 2).encode()
    first, second = modbus.describe(request + frame("018402"), {"map": "sdm120"})
    assert first["fields"]["kind"] == "request" and first["fields"]["start"] == 0x100
    assert second["valid"] and second["fields"]["exception_name"] == "ILLEGAL DATA ADDRESS"
    # An exception from another device is not the answer.
    first, second = modbus.describe(request + frame("028402"), {})
    assert second["valid"] is False and second["error"].startswith("malformed: ")


def test_describe_start_option_and_map_first_block() -> None:
    response = frame("0104 04 4366 3334".replace(" ", ""))
    (by_map,) = modbus.describe(response, {"map": "sdm630"})
    assert by_map["fields"]["start"] == 0 and by_map["fields"]["start_from"] == "map"
    assert by_map["readings"] == [{"name": "l1_voltage", "value": 230.2, "unit": "V"}]
    (by_option,) = modbus.describe(response, {"map": "sdm630", "start": "0x0046"})
    assert by_option["fields"]["start_from"] == "option"
    assert by_option["readings"] == [{"name": "frequency", "value": 230.2, "unit": "Hz"}]
    (no_map,) = modbus.describe(response, {"map": None, "start": 6})
    assert no_map["fields"]["start"] == 6 and no_map["readings"] == []
    with pytest.raises(LocalProtocolError):
        modbus.describe(response, {"map": "nope"})
    with pytest.raises(LocalProtocolError):
        modbus.describe(response, {"start": "x"})


def test_describe_write_single_register_echo() -> None:
    request = modbus.write_single_register(7, 0x1001, 800).encode()
    first, second = modbus.describe(request + request, {})
    assert first["fields"]["kind"] == "request"
    assert second["fields"]["kind"] == "response" and second["valid"]
    assert second["fields"]["registers"] == [800]
    (alone,) = modbus.describe(request, {})
    assert alone["fields"]["kind"] == "request"


def test_describe_bus_capture() -> None:
    # Two polls and a write on the same line, pasted as one blob.
    sdm = modbus.read_input_registers(1, 0, 2).encode() + frame("010404436633341B38"[:-4])
    soil = modbus.read_holding_registers(2, 0, 3).encode() + frame("0203060292FF9B03E8")
    write = modbus.write_multiple_registers(2, 0x20, [1]).encode() + frame("021000200001")
    results = modbus.describe(sdm + soil + write, {})
    assert [r["fields"]["kind"] for r in results] == ["request", "response"] * 3
    assert all(r["valid"] for r in results)
    assert results[3]["fields"]["registers"] == [658, 65435, 1000]
    assert results[5]["fields"]["count"] == 1


def test_describe_unusual_addresses_are_well_framed() -> None:
    # pymodbus test/framer/test_framer.py RTU frames for device ids 0 and 255: framing and
    # CRC are right, so they are valid frames; the address oddity is a note
    for hx, kind, note in (
        ("0003007c00020402", "request", "broadcast"),
        ("000304008d008efabc", "response", "should not answer"),
        ("0083029131", "exception", "should not answer"),
        ("ff03007c0002100d", "request", "reserved"),
        ("ff0304008d008ef5b3", "response", "should not answer"),
        ("ff8302a101", "exception", "should not answer"),
    ):
        [r] = modbus.describe(bytes.fromhex(hx), {})
        assert r["valid"] is True, (hx, r["error"])
        assert r["fields"]["kind"] == kind and note in r["fields"]["note"]
    [r] = modbus.describe(bytes.fromhex("110304008d008efbbd"), {})
    assert r["valid"] is True and "note" not in r["fields"]
    assert r["fields"]["registers"] == [0x8D, 0x8E]


def test_describe_resynchronises_after_a_bad_frame() -> None:
    # pymodbus test_decode_complicated: a bad CRC (or a stray byte), then a good frame
    good = bytes.fromhex("0083029131")
    for bad in ("0083029121", "008302f09131"):
        results = modbus.describe(bytes.fromhex(bad) + good, {})
        assert [r["valid"] for r in results] == [False, True]
        assert results[0]["error"].startswith(CHECKSUM + ": ")
        assert results[1]["fields"]["exception"] == 2
    # garbage with no frame after it still ends the decoding in one invalid result
    assert len(modbus.describe(bytes.fromhex("0083029121") + b"TEST", {})) == 1
    # bounded: thousands of bad spots give a result quickly and never raise
    sdm = modbus.read_input_registers(1, 0, 2).encode()
    results = modbus.describe((b"\x00\x00\x00" + sdm) * 2000, {})
    assert results[-1]["valid"] is False and len(results) < 4000


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("", None),
        ("01", TRUNCATED),
        ("010404436633", TRUNCATED),
        ("010404436633341B39", CHECKSUM),
        ("5445535445", CHECKSUM),
    ],
)
def test_describe_invalid(data: str, reason: str | None) -> None:
    results = modbus.describe(bytes.fromhex(data), {})
    if reason is None:
        assert results == []
        return
    (result,) = results
    assert result["valid"] is False
    assert result["error"].startswith(reason + ": ")


@given(st.binary(max_size=600))
@FUZZ
def test_fuzz_random_bytes_only_raise_remote_errors(data: bytes) -> None:
    for parse in (modbus.parse_request, modbus.parse_response, modbus.parse_frame):
        with contextlib.suppress(RemoteProtocolError):
            parse(data)
    for result in modbus.describe(data, {"map": "sdm630"}):
        json.dumps(result)
        assert result["valid"] or result["error"].split(": ")[0] in (
            "checksum",
            "truncated",
            "malformed",
            "unsupported",
            "overflow",
        )


SEEDS = [
    modbus.read_input_registers(1, 0, 2).encode() + frame("010404436633341B38"[:-4]),
    frame("0103060292FF9B03E8"),
    modbus.write_multiple_coils(1, 19, [1, 0, 1, 1, 0, 0, 1, 1, 1, 0]).encode(),
    frame("018402"),
]


@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    st.integers(0, 4),
)
@FUZZ
def test_fuzz_mutated_frames(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for position, value in flips:
        if data:
            data[position % len(data)] = value
    data = data[: len(data) - cut]
    for result in modbus.describe(bytes(data), {"map": "soil"}):
        json.dumps(result)
    for request in (
        modbus.read_input_registers(1, 0, 2),
        modbus.read_holding_registers(1, 0, 3),
        modbus.write_multiple_coils(1, 19, [True] * 10),
    ):
        master = modbus.Master()
        master.send(request)
        for i in range(0, len(data), 3):
            master.receive_data(bytes(data[i : i + 3]))
            try:
                event = master.next_event()
            except RemoteProtocolError:
                break
            if event is not modbus.NEED_DATA:
                break


# -------------------------------------------------------------------------------- the CLI


def test_cli_decode_modbus_json() -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "decode",
            "modbus",
            "01 04 00 00 00 02 71 CB 01 04 04 43 66 33 34 1B 38",
            "--map",
            "sdm120",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [set(line) for line in lines] == [
        {"protocol", "valid", "error", "fields", "readings"}
    ] * 2
    request, response = lines
    assert request["fields"] == {
        "address": 1,
        "function": 4,
        "function_name": "read input registers",
        "kind": "request",
        "start": 0,
        "count": 2,
    }
    assert response["valid"] is True and response["error"] is None
    assert response["fields"]["registers"] == [0x4366, 0x3334]
    assert response["readings"] == [{"name": "voltage", "value": 230.2, "unit": "V"}]


def test_cli_decode_modbus_exit_codes() -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["decode", "modbus", "01 04 04 43 66 33 34 1B 39", "--json"])
    assert bad.exit_code == 1
    (line,) = [json.loads(x) for x in bad.output.splitlines()]
    assert line["valid"] is False and line["error"].startswith("checksum: ")
    table = runner.invoke(cli, ["decode", "modbus", "010404436633341B38", "--map", "soil"])
    assert table.exit_code == 0 and "moisture" in table.output
    unknown = runner.invoke(cli, ["decode", "modbus", "010404436633341B38", "--map", "nope"])
    assert unknown.exit_code == 2
