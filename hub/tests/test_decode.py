"""The hub's ingest decoder against hostile gateways: only RemoteProtocolError, ever."""

from __future__ import annotations

import contextlib
import zlib

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import _decode
from protocols import wire
from protocols.block import MAX_STRING, MAX_TEXT_VALUE, check_reading, encode_block
from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.reading import FLAG_ALARM, FLAG_HISTORICAL, Reading

T0 = 1_764_547_200_000


def readings(n: int, start: int = 0) -> list[Reading]:
    return [
        Reading(
            f"soil-{i % 7:03d}",
            "moisture",
            "%RH",
            round(30 + (i % 13) * 0.25, 2),
            T0 + 1000 * (start + i),
        )
        for i in range(n)
    ]


def data(
    blocks: list[bytes],
    first: int,
    last: int,
    count: int,
    *,
    flags: int = 0,
    compress: int = 6,
) -> bytes:
    return wire.encode_data(
        wire.DataBatch(3, 9, first, last, count, blocks, flags=flags, backlog=123),
        compress=compress,
    )


def test_decode_columnar_batch_with_historical_flag() -> None:
    b1 = encode_block(100, readings(5))
    b2 = encode_block(
        105, [*readings(2, 5), Reading("berth-001", "status", None, "free", T0, FLAG_ALARM)]
    )
    batch = _decode.decode_data("gw-1", data([b1, b2], 100, 107, 8, flags=wire.FLAG_HISTORICAL))
    assert batch.gateway == "gw-1" and batch.session == 3 and batch.batch_no == 9
    assert batch.backlog == 123 and batch.historical
    assert batch.seqs == list(range(100, 108))
    assert batch.ranges == [(100, 107)]
    assert batch.values[:2] == [30.0, 30.25]
    assert batch.values[-1] == "free" and batch.has_text
    assert batch.series[batch.series_index[-1]] == ("berth-001", "status", None)
    assert all(f & FLAG_HISTORICAL for f in batch.flags)
    assert batch.flags[-1] == FLAG_ALARM | FLAG_HISTORICAL


def test_alarm_blocks_ahead_give_separate_ranges() -> None:
    alarm = encode_block(500, [Reading("bin-001", "fill", "%", 99, T0, FLAG_ALARM)])
    bulk = encode_block(100, readings(3))
    batch = _decode.decode_data("gw-1", data([alarm, bulk], 100, 500, 4))
    assert batch.ranges == [(100, 102), (500, 500)]
    assert batch.seqs == [500, 100, 101, 102]


def test_nul_characters_are_replaced_not_stored() -> None:
    b = encode_block(1, [Reading("s\x00", "q", None, "a\x00b", T0)])
    batch = _decode.decode_data("gw-1", data([b], 1, 1, 1))
    assert batch.series == [("s\ufffd", "q", None)]
    assert batch.values == ["a\ufffdb"]


def test_null_values_pass() -> None:
    b = encode_block(1, [Reading("s", "q", None, None, T0)])
    assert _decode.decode_data("gw-1", data([b], 1, 1, 1)).values == [None]


def reason(payload: bytes) -> str:
    with pytest.raises(RemoteProtocolError) as info:
        _decode.decode_data("gw-1", payload)
    return info.value.reason


def test_inconsistent_batches_are_rejected() -> None:
    b = encode_block(100, readings(5))
    assert reason(data([b], 100, 104, 4)) == "malformed"  # more readings than announced
    assert reason(data([b], 100, 110, 6)) == "malformed"  # fewer
    assert reason(data([b], 101, 104, 4)) == "malformed"  # block outside the span
    assert reason(data([b, b], 100, 104, 5)) == "malformed"  # blocks overlap
    assert reason(data([b"\x8d\x02"], 100, 104, 5)) == "unsupported"  # future block version
    assert reason(data([b"garbage"], 100, 104, 5)) == "malformed"


def test_big_integers_are_refused_by_the_encoder_and_the_decoder() -> None:
    # The encoder used to accept what the hub then refused, losing the whole batch.
    with pytest.raises(LocalProtocolError, match="outside 64 bits"):
        encode_block(1, [Reading("s", "q", None, 2**70, T0)])
    near = 2**62 + 5  # kept raw (beyond the mantissa range), inside 64 bits
    block = encode_block(1, [Reading("s", "q", None, near, T0)])
    assert _decode.decode_data("gw-1", data([block], 1, 1, 1)).values == [near]
    hostile = block.replace(cbor2.dumps(near), cbor2.dumps(2**64 - 1))  # same length
    assert hostile != block
    assert reason(data([hostile], 1, 1, 1)) == "overflow"


names = st.text(min_size=1, max_size=MAX_STRING)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    st.text(max_size=MAX_TEXT_VALUE + 8),
)
any_reading = st.builds(
    Reading,
    names,
    names,
    st.one_of(st.none(), names),
    values,
    st.integers(min_value=-(2**64), max_value=2**64),
    st.integers(min_value=0, max_value=2**32),
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(any_reading, min_size=1, max_size=6))
def test_what_the_encoder_accepts_the_hub_decodes(rs: list[Reading]) -> None:
    """The encoder's whole domain goes through the hub's decoder: a batch a gateway could
    write is never one the hub refuses (and what the encoder refuses, check_reading
    refuses first, so the daemon drops and counts that one reading, not a batch)."""
    refused = False
    for r in rs:
        try:
            check_reading(r)
        except LocalProtocolError:
            refused = True
    try:
        block = encode_block(1, rs)
    except LocalProtocolError:
        assert refused
        return
    assert not refused
    batch = _decode.decode_data("gw-1", data([block], 1, len(rs), len(rs)))
    assert len(batch) == len(rs)


def test_peek_batch_reads_the_envelope_of_a_bad_batch() -> None:
    payload = data([b"garbage"], 100, 104, 5)
    assert _decode.peek_batch(payload) == (3, 9, 100, 104)
    assert _decode.peek_batch(b"\x00") is None


def test_decode_state() -> None:
    s = _decode.decode_state(wire.encode_state(wire.State(True, 4, T0, 10, 2, "0.1.0")))
    assert (s.online, s.session, s.ts_ms, s.backlog) == (True, 4, T0, 10)
    assert s.info == {"dropped": 2, "software": "0.1.0"} and s.footprint is None
    figures = {"bytes_sent": 4096, "cpu_s": 0.5}
    s = _decode.decode_state(wire.encode_state(wire.State(True, 4, T0, footprint=figures)))
    assert s.footprint == figures


VALID_BLOCK = encode_block(1000, readings(20))
VALID = [
    data([VALID_BLOCK], 1000, 1019, 20, compress=0),
    data([VALID_BLOCK], 1000, 1019, 20),
]


def survives(payload: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        _decode.decode_data("gw-1", payload)
    with contextlib.suppress(RemoteProtocolError):
        _decode.decode_state(payload)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_mutated_batches_only_raise_protocol_errors(
    payload: bytes, flips: list[tuple[int, int]]
) -> None:
    mutated = bytearray(payload)
    for pos, value in flips:
        if pos < len(mutated):
            mutated[pos] = value
    survives(bytes(mutated))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID_BLOCK) - 1), st.integers(0, 255)), min_size=1, max_size=6
    ),
    st.booleans(),
)
def test_mutated_blocks_inside_valid_envelopes(flips: list[tuple[int, int]], deflate: bool) -> None:
    block = bytearray(VALID_BLOCK)
    for pos, value in flips:
        block[pos] = value
    survives(data([bytes(block)], 1000, 1019, 20, compress=6 if deflate else 0))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_blocks_and_payloads(blob: bytes) -> None:
    survives(blob)
    survives(cbor2.dumps([1, 1, 1, 1, 0, 100, 5, 0, None, 0, [blob]]))
    survives(cbor2.dumps([1, 1, 1, 1, 0, 100, 5, 0, None, 1, zlib.compress(cbor2.dumps([blob]))]))
