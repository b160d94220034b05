"""protocols.block: exact round trips, compactness on the reference workload, cross-check
with cbor2, and hostile input (random and mutated bytes only raise RemoteProtocolError)."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.block import (
    MAX_READINGS,
    MAX_STRING,
    BlockEncoder,
    check_reading,
    decode_block,
    encode_block,
    read_block_header,
    unpack_svarints,
    unpack_uvarints,
)
from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.reading import FLAG_ALARM, FLAG_HISTORICAL, Reading
from protocols.tests.block_support import cbor2_decode, exact, workload


def assert_round_trip(
    first_seq: int, readings: list[Reading], encoder: BlockEncoder | None = None
) -> bytes:
    data = (encoder or BlockEncoder()).encode(first_seq, readings)
    seq, back = decode_block(data)
    assert seq == first_seq
    assert len(back) == len(readings)
    for a, b in zip(readings, back, strict=True):
        assert exact(a, b), (a, b)
    header = read_block_header(data)
    assert (header.first_seq, header.count) == (first_seq, len(readings))
    assert header.t_min == min(r.ts_ms for r in readings)
    assert header.t_max == max(r.ts_ms for r in readings)
    flags = 0
    for r in readings:
        flags |= r.flags
    assert header.flags == flags
    return data


def test_reference_workload_round_trips_exactly_in_few_bytes() -> None:
    readings = workload(20_000)
    encoder = BlockEncoder()
    size = 0
    for i in range(0, len(readings), 2000):
        size += len(assert_round_trip(1 + i, readings[i : i + 2000], encoder))
    # the buffer's target is 8 bytes per reading on disk, framing included
    assert size / len(readings) < 7.0, size / len(readings)


def test_a_fresh_encoder_gives_the_same_readings_back() -> None:
    readings = workload(3000)
    data = encode_block(5, readings)
    assert decode_block(data) == (5, readings)


VALUES: list[object] = [
    0,
    -1,
    2**61,
    -(2**61),
    2**62,  # beyond the integer column: kept raw
    2**63 - 1,  # the largest a block (and the hub's column) holds
    -(2**63),
    35.12,
    35.1,
    35.0,
    -0.0,
    0.0,
    1e-7,
    0.1 + 0.2,  # 17 significant digits: raw
    1e300,
    math.inf,
    -math.inf,
    math.nan,
    1e22,
    123456789.123,
    True,
    False,
    "open",
    "",
    None,
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_every_kind_of_value_round_trips(value: object) -> None:
    readings = [
        Reading("s-1", "q", "u", value, 1_764_547_200_000),
        Reading("s-1", "q", "u", value, 1_764_547_201_000),
        Reading("s-2", "q", None, value, 1_764_547_199_000),
    ]
    assert_round_trip(1, readings)


def test_a_series_whose_values_change_type_and_precision() -> None:
    values: list[object] = [20, 20.5, 20.25, "error", 21, 21.125, True, 2**63 - 1, 19.0, math.nan]
    readings = [Reading("probe", "temperature", "Cel", v, 1000 + i) for i, v in enumerate(values)]
    assert_round_trip(7, readings)


def test_decimals_learned_in_one_block_hold_in_the_next() -> None:
    encoder = BlockEncoder()
    first = [Reading("p", "t", "Cel", 20.5, 1), Reading("p", "t", "Cel", 20.25, 2)]
    second = [Reading("p", "t", "Cel", 20.1, 3), Reading("p", "t", "Cel", 20.125, 4)]
    assert_round_trip(1, first, encoder)
    assert_round_trip(3, second, encoder)


def test_flags_default_and_exceptions() -> None:
    base = [Reading("s", "q", "u", i, 100 + i) for i in range(10)]
    alarms = [Reading("s", "q", "u", i, 100 + i, FLAG_ALARM) for i in range(10)]
    mixed = [
        Reading(
            "s",
            "q",
            "u",
            i,
            100 + i,
            FLAG_ALARM if i % 3 == 0 else (FLAG_HISTORICAL if i == 4 else 0),
        )
        for i in range(10)
    ]
    assert read_block_header(assert_round_trip(1, base)).has_alarm is False
    assert read_block_header(assert_round_trip(1, alarms)).has_alarm is True
    assert read_block_header(assert_round_trip(1, mixed)).has_alarm is True


def test_timestamps_out_of_order_and_negative() -> None:
    ts = [5000, 3000, -2000, 10**12, 0, 0, 7]
    assert_round_trip(1, [Reading("s", "q", "u", 1, t) for t in ts])


def test_misuse_is_a_local_error() -> None:
    ok = Reading("s", "q", "u", 1, 0)
    with pytest.raises(LocalProtocolError):
        encode_block(1, [])
    with pytest.raises(LocalProtocolError):
        encode_block(1, [ok] * (MAX_READINGS + 1))
    with pytest.raises(LocalProtocolError):
        encode_block(-1, [ok])
    with pytest.raises(LocalProtocolError):
        encode_block(1, [Reading("x" * (MAX_STRING + 1), "q", "u", 1, 0)])
    with pytest.raises(LocalProtocolError):
        encode_block(1, [Reading("s", "q", "u", [1, 2], 0)])
    with pytest.raises(LocalProtocolError):
        encode_block(1, [Reading("s", "q", "u", 1, 1.5)])  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        encode_block(1, [Reading("s", "q", "u", 1, 0, -1)])
    for wide in (2**63, -(2**63) - 1, 2**70):  # what the hub could not store
        with pytest.raises(LocalProtocolError, match="outside 64 bits"):
            encode_block(1, [Reading("s", "q", "u", wide, 0)])


names = st.text(min_size=1, max_size=12)
values = (
    st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.decimals(
        places=3, min_value=-(10**9), max_value=10**9, allow_nan=False, allow_infinity=False
    ).map(float)
    | st.booleans()
    | st.text(max_size=20)
)
readings_st = st.lists(
    st.builds(
        Reading,
        st.sampled_from(["soil-001", "meter-002", "bin-003"]) | names,
        st.sampled_from(["moisture", "energy"]) | names,
        st.none() | st.sampled_from(["%RH", "Wh"]) | names,
        values,
        st.integers(min_value=-(2**50), max_value=2**50),
        st.sampled_from([0, 0, 0, FLAG_ALARM, FLAG_HISTORICAL, 2**31 - 1]),
    ),
    min_size=1,
    max_size=60,
)


@given(st.integers(min_value=0, max_value=2**62), readings_st)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_random_readings_round_trip(first_seq: int, readings: list[Reading]) -> None:
    assert_round_trip(first_seq, readings)


@given(st.integers(min_value=0, max_value=2**40), readings_st)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_cbor2_and_the_format_document_decode_the_same(
    first_seq: int, readings: list[Reading]
) -> None:
    data = encode_block(first_seq, readings)
    first, rows = cbor2_decode(data)
    assert first == first_seq
    for r, row in zip(readings, rows, strict=True):
        assert exact(r, Reading(*row))  # type: ignore[arg-type]


def test_cbor2_decodes_the_reference_workload() -> None:
    readings = workload(4000)
    first, rows = cbor2_decode(encode_block(1, readings))
    assert first == 1
    assert [Reading(*row) for row in rows] == readings  # type: ignore[arg-type]


def assert_deliberate(e: RemoteProtocolError) -> None:
    """Refused by a check of ours, not by the last-resort catch of an unexpected exception."""
    assert not e.message.startswith("undecodable"), e.message


@given(st.binary(max_size=200))
@settings(max_examples=1000)
def test_random_bytes_only_raise_the_protocol_error(data: bytes) -> None:
    try:
        decode_block(data)
    except RemoteProtocolError as e:
        assert_deliberate(e)
    try:
        read_block_header(data)
    except RemoteProtocolError as e:
        assert_deliberate(e)


_SAMPLE = encode_block(
    1000,
    [
        Reading("soil-001", "moisture", "%RH", 35.12, 1_764_547_200_000),
        Reading("soil-001", "temperature", "Cel", 12.5, 1_764_547_200_000, FLAG_ALARM),
        Reading("bin-002", "fill", "%", 40, 1_764_547_201_000),
        Reading("bin-002", "state", None, "open", 1_764_547_202_000),
        Reading("soil-001", "moisture", "%RH", 35.2, 1_764_547_260_000),
    ],
)


@given(st.data())
@settings(max_examples=2000)
def test_mutated_blocks_only_raise_the_protocol_error(data: st.DataObject) -> None:
    block = bytearray(_SAMPLE)
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, len(block) - 1)) if block else 0
        if op == "flip" and block:
            block[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and block:
            block[at] = data.draw(st.sampled_from([0x00, 0x17, 0x18, 0x1B, 0x7F, 0x80, 0xFF]))
        elif op == "cut":
            del block[at:]
        elif op == "insert":
            block.insert(at, data.draw(st.integers(0, 255)))
        elif op == "delete" and block:
            del block[at]
    try:
        first, readings = decode_block(bytes(block))
    except RemoteProtocolError as e:
        assert_deliberate(e)
        return
    assert first >= 0 and 0 < len(readings) <= MAX_READINGS


def test_hostile_counts_are_refused_fast() -> None:
    # a header announcing 65536 readings with empty columns
    assert _SAMPLE[:6] == bytes.fromhex("8d011903e805")  # version 1, first_seq 1000, count 5
    forged = _SAMPLE[:5] + b"\x19\xff\xff" + _SAMPLE[6:]  # count 65535
    with pytest.raises(RemoteProtocolError) as e:
        decode_block(forged)
    assert_deliberate(e.value)


def test_varint_columns_refuse_overlong_and_truncated_values() -> None:
    assert unpack_uvarints(b"\x00\x7f\x80\x01", 3) == [0, 127, 128]
    assert unpack_svarints(b"\x00\x01\x02\x03", 4) == [0, -1, 1, -2]
    with pytest.raises(RemoteProtocolError):
        unpack_uvarints(b"\x80" * 11 + b"\x01", 1)
    with pytest.raises(RemoteProtocolError):
        unpack_uvarints(b"\x80", 1)
    with pytest.raises(RemoteProtocolError):
        unpack_uvarints(b"\x01\x02", 1)


anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=5000),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
)


@given(
    st.one_of(st.text(max_size=300), st.none(), st.integers()),
    st.one_of(st.text(max_size=300), st.none()),
    st.one_of(st.text(max_size=300), st.none(), st.integers()),
    anything,
    st.one_of(st.integers(min_value=-(2**63), max_value=2**63), st.floats(), st.none()),
    st.one_of(st.integers(min_value=-5, max_value=2**32), st.none()),
)
@settings(max_examples=500)
def test_check_reading_accepts_exactly_what_a_block_can_hold(
    sensor: object, quantity: object, unit: object, value: object, ts: object, flags: object
) -> None:
    r = Reading(sensor, quantity, unit, value, ts, flags)  # type: ignore[arg-type]
    try:
        check_reading(r)
        ok = True
    except LocalProtocolError:
        ok = False
    try:
        encode_block(1, [r])
        encoded = True
    except LocalProtocolError:
        encoded = False
    assert ok == encoded, r
