"""protocols.cbor: round trips, cross-checks with cbor2, and hostile input (CPython)."""

import math
import struct

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import cbor
from protocols.errors import OVERFLOW, TRUNCATED, LocalProtocolError, RemoteProtocolError

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
keys = st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=10)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(keys, children, max_size=6),
    max_leaves=30,
)


def same(a: object, b: object) -> bool:
    """Equal, NaN equal to NaN, -0.0 distinct from 0.0, 1 distinct from 1.0 and True."""
    if isinstance(a, float) or isinstance(b, float):
        if type(a) is not float or type(b) is not float:
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


@given(values)
def test_round_trip(value: object) -> None:
    assert same(cbor.loads(cbor.dumps(value)), value)


@given(values)
def test_cbor2_reads_what_we_write(value: object) -> None:
    assert same(cbor2.loads(cbor.dumps(value)), value)


@given(values)
def test_we_read_what_cbor2_writes(value: object) -> None:
    assert same(cbor.loads(cbor2.dumps(value)), value)
    assert same(cbor.loads(cbor2.dumps(value, canonical=True)), value)


@given(st.floats(allow_nan=False) | st.integers(min_value=-(2**64), max_value=2**64 - 1))
def test_preferred_serialization_matches_cbor2_canonical(value: object) -> None:
    assert cbor.dumps(value) == cbor2.dumps(value, canonical=True)


@pytest.mark.parametrize(
    ("value", "size"),
    [(0.0, 3), (-0.0, 3), (1.5, 3), (65504.0, 3), (100000.0, 5), (1.1, 9), (math.inf, 3)],
)
def test_shortest_exact_float(value: float, size: int) -> None:
    data = cbor.dumps(value)
    assert len(data) == size
    assert same(cbor.loads(data), value)


@given(st.binary(max_size=64))
@settings(max_examples=500)
def test_random_bytes_only_raise_the_protocol_error(data: bytes) -> None:
    try:
        ours = cbor.loads(data)
    except RemoteProtocolError as e:
        assert e.reason in ("truncated", "malformed", "overflow", "unsupported")
        assert not e.message.startswith("undecodable"), e.message  # a check of ours refused it
        return
    # what we accept, cbor2 reads the same way (where it maps to plain Python values)
    try:
        theirs = cbor2.loads(data)
    except Exception:
        return
    if _plain(ours):
        assert same(ours, theirs)


def _plain(value: object) -> bool:
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return value is None or isinstance(value, bool | int | float | str | bytes)


@given(values, st.data())
@settings(max_examples=300)
def test_mutated_encodings_only_raise_the_protocol_error(
    value: object, data: st.DataObject
) -> None:
    encoded = bytearray(cbor.dumps(value))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, max(0, len(encoded) - 1)))
        if op == "flip" and encoded:
            encoded[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del encoded[at:]
        elif op == "insert":
            encoded.insert(at, data.draw(st.integers(0, 255)))
        elif op == "delete" and encoded:
            del encoded[at]
    try:
        cbor.loads(bytes(encoded))
    except RemoteProtocolError as e:
        assert not e.message.startswith("undecodable"), e.message


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(RemoteProtocolError) as e:
        cbor.loads(b"\x81" * 100_000 + b"\x00")
    assert e.value.reason == OVERFLOW
    with pytest.raises(RemoteProtocolError):
        cbor.loads(b"\xc6" * 100_000 + b"\x00")  # tags nest too


def test_huge_declared_lengths_fail_fast_without_allocating() -> None:
    for data in (
        b"\x9b" + b"\xff" * 8,  # array of 2**64 - 1 items
        b"\xbb" + b"\xff" * 8,  # map
        b"\x5b" + b"\xff" * 8,  # byte string
        b"\x7b\x00\x00\x00\x01\x00\x00\x00\x00",  # text of 4 GiB
    ):
        with pytest.raises(RemoteProtocolError) as e:
            cbor.loads(data)
        assert e.value.reason == TRUNCATED


def test_bignums_are_bounded() -> None:
    assert cbor.loads(b"\xc2\x49\x01" + b"\x00" * 8) == 2**64
    with pytest.raises(RemoteProtocolError):
        cbor.loads(b"\xc2\x58\x41" + b"\x01" * 65)


def test_duplicate_and_unhashable_keys_are_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        cbor.loads(bytes.fromhex("a2 01 02 01 03".replace(" ", "")))
    with pytest.raises(RemoteProtocolError):
        cbor.loads(bytes.fromhex("a1 80 01".replace(" ", "")))


def test_trailing_bytes_are_refused_but_a_sequence_walks() -> None:
    with pytest.raises(RemoteProtocolError):
        cbor.loads(b"\x01\x02")
    assert cbor.loads_sequence(b"\x01\x02") == [1, 2]
    assert cbor.decode_item(b"\x01\x02", 1) == (2, 2)


def test_half_floats_decode_exactly() -> None:
    for bits in range(0, 0x10000, 7):
        (expected,) = struct.unpack(">e", bits.to_bytes(2, "big"))
        got = cbor.loads(b"\xf9" + bits.to_bytes(2, "big"))
        assert same(got, expected), hex(bits)


def test_what_cannot_be_encoded_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        cbor.dumps(object())
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(LocalProtocolError):
        cbor.dumps(loop)
    with pytest.raises(LocalProtocolError):
        cbor.dumps(cbor.Simple(24))
