"""The wire schema: round trips, documented examples, hostile payloads, topics."""

from __future__ import annotations

import contextlib
import zlib

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import wire
from protocols.errors import LocalProtocolError, RemoteProtocolError

BLOCK_A = bytes.fromhex("8301020304")  # stands for a protocols.block payload
BLOCK_B = bytes.fromhex("820a0b")


def data_batch(**kw: object) -> wire.DataBatch:
    args: dict[str, object] = {
        "session": 7,
        "batch": 42,
        "first_seq": 1000,
        "last_seq": 1004,
        "count": 5,
        "blocks": [BLOCK_A, BLOCK_B],
        "flags": wire.FLAG_HISTORICAL,
        "backlog": 250_000,
    }
    args.update(kw)
    return wire.DataBatch(**args)  # type: ignore[arg-type]


# -- round trips and examples -------------------------------------------------------------


def test_data_round_trip_uncompressed_example() -> None:
    payload = wire.encode_data(data_batch(), compress=0)
    # the example of docs/wire-format.md
    assert payload.hex() == "8b010107182a1903e81903ec05011a0003d090008245830102030443820a0b"
    assert cbor2.loads(payload) == [1, 1, 7, 42, 1000, 1004, 5, 1, 250_000, 0, [BLOCK_A, BLOCK_B]]
    got = wire.decode_data(payload)
    assert (got.session, got.batch, got.first_seq, got.last_seq, got.count) == (
        7,
        42,
        1000,
        1004,
        5,
    )
    assert got.blocks == [BLOCK_A, BLOCK_B]
    assert got.historical and got.backlog == 250_000


def test_data_is_deflated_when_it_pays() -> None:
    blocks = [bytes(range(256)) * 8 for _ in range(4)]
    batch = data_batch(blocks=blocks, count=5)
    payload = wire.encode_data(batch)
    items = cbor2.loads(payload)
    assert items[9] == wire.CODEC_DEFLATE
    assert cbor2.loads(zlib.decompress(items[10])) == blocks
    assert len(payload) < 1000  # 8 KiB of blocks
    assert wire.decode_data(payload).blocks == blocks
    # a body that does not shrink stays as it is
    assert cbor2.loads(wire.encode_data(data_batch()))[9] == wire.CODEC_BLOCKS


def test_live_batch_has_no_flag_and_backlog_may_be_unknown() -> None:
    got = wire.decode_data(wire.encode_data(data_batch(flags=0, backlog=None)))
    assert not got.historical and got.backlog is None


def test_ack_round_trip() -> None:
    ack = wire.Ack(7, 42, [(1000, 1002), (1003, 1004), (2**40, 2**40 + 9)])
    payload = wire.encode_ack(ack)
    assert wire.encode_ack(wire.Ack(7, 42, [(1000, 1004)])).hex() == "86010207182a821903e81903ecf6"
    assert cbor2.loads(payload) == [1, 2, 7, 42, [1000, 1002, 1003, 1004, 2**40, 2**40 + 9], None]
    assert wire.decode_ack(payload) == ack
    nack = wire.Ack(7, 43, [(1005, 1010)], rejected="malformed: block 2")
    assert wire.decode_ack(wire.encode_ack(nack)) == nack


def test_state_round_trip() -> None:
    birth = wire.State(True, 12, 1_764_547_200_000, backlog=1_000_000, dropped=0, software="0.1.0")
    assert wire.encode_state(birth).hex() == "880103f50c1b0000019ad73584001a000f42400065302e312e30"
    assert wire.decode_state(wire.encode_state(birth)) == birth
    death = wire.State(False, 12, 1_764_547_200_000)
    payload = wire.encode_state(death)
    assert cbor2.loads(payload) == [1, 3, False, 12, 1_764_547_200_000, None, None, None]
    assert wire.decode_state(payload) == death


FOOTPRINT = {"bytes_sent": 81_920, "cpu_s": 12.5, "flash_write_bytes": 2**40, "rss_bytes": 31e6}


def test_state_footprint_round_trip() -> None:
    birth = wire.State(True, 12, 1_764_547_200_000, 0, 0, "0.1.0", footprint=FOOTPRINT)
    payload = wire.encode_state(birth)
    assert cbor2.loads(payload) == [1, 3, True, 12, 1_764_547_200_000, 0, 0, "0.1.0", FOOTPRINT]
    assert wire.decode_state(payload) == birth
    assert wire.decode_state(payload).footprint == FOOTPRINT
    example = wire.State(True, 3, 5, 6, footprint={"bytes_sent": 1024, "cpu_s": 1.25})
    # the example of docs/wire-format.md
    assert wire.encode_state(example).hex() == (
        "890103f5030506f6f6a26a62797465735f73656e74190400656370755f73f93d00"
    )
    # absent in older messages, null or empty when sent
    assert wire.decode_state(wire.encode_state(wire.State(True, 1, 2))).footprint is None
    assert wire.decode_state(cbor2.dumps([1, 3, True, 1, 2, None, None, None, None])) == (
        wire.State(True, 1, 2)
    )
    assert (
        wire.decode_state(wire.encode_state(wire.State(True, 1, 2, footprint={}))).footprint == {}
    )
    # negative integers and every float width; a later field after it is skipped
    figures = {"a": -(2**63), "b": 0.5, "c": 1.1, "d": 3.4028234663852886e38}
    extended = cbor2.dumps([1, 3, True, 1, 2, None, None, None, figures, None, None, "later"])
    assert wire.decode_state(extended).footprint == figures


SOURCES = [
    wire.SourceHealth("serial:/dev/ttyUSB0", wire.SOURCE_OK, 1_764_547_200_000, {}),
    wire.SourceHealth("ble", wire.SOURCE_DOWN, None, {"adapter lost": 2}, "retrying in 8 s"),
    wire.SourceHealth("linky", wire.SOURCE_DEGRADED, 5, {"checksum": 7, "timeout": 1}),
]


def test_state_sources_and_restart_pending_round_trip() -> None:
    state = wire.State(True, 3, 5, sources=SOURCES, restart_pending=["buffer"])
    payload = wire.encode_state(state)
    assert cbor2.loads(payload) == [
        1,
        3,
        True,
        3,
        5,
        None,
        None,
        None,
        None,  # no footprint: null in its place
        [
            ["serial:/dev/ttyUSB0", "ok", 1_764_547_200_000, {}, None],
            ["ble", "down", None, {"adapter lost": 2}, "retrying in 8 s"],
            ["linky", "degraded", 5, {"checksum": 7, "timeout": 1}, None],
        ],
        ["buffer"],
    ]
    assert wire.decode_state(payload) == state
    # the example of docs/wire-format.md
    down = wire.SourceHealth("serial:/dev/x", "down", None, {"timeout": 3}, "no port")
    assert wire.encode_state(
        wire.State(True, 1, 2, sources=[down], restart_pending=["buffer"])
    ).hex() == (
        "8b0103f50102f6f6f6f681856d73657269616c3a2f6465762f7864646f776ef6a16774696d656f7574"
        "03676e6f20706f72748166627566666572"
    )
    # sources alone: ten items; an older reader's view (the first nine) still decodes
    only = wire.encode_state(wire.State(True, 3, 5, footprint={"a": 1}, sources=[]))
    assert cbor2.loads(only)[8:] == [{"a": 1}, []]
    assert wire.decode_state(only).sources == [] and wire.decode_state(only).restart_pending is None
    # a message of the first release (eight or nine items) has neither
    old = wire.decode_state(cbor2.dumps([1, 3, True, 1, 2, None, None, None, {"a": 1}]))
    assert old.sources is None and old.restart_pending is None
    # a later field of a source, and a later item of the state, are skipped
    later = cbor2.dumps(
        [1, 3, True, 1, 2, None, None, None, None, [["s", "ok", None, {}, None, 9]], [], 0]
    )
    assert wire.decode_state(later).sources == [wire.SourceHealth("s", "ok")]


def _state_sources(sources: object) -> bytes:
    return cbor2.dumps([1, 3, True, 1, 2, None, None, None, None, sources])


@pytest.mark.parametrize(
    "payload",
    [
        _state_sources({"s": "ok"}),  # not an array
        _state_sources([["s", "ok", None, {}]]),  # four items
        _state_sources([["s", "fine", None, {}, None]]),  # unknown status
        _state_sources([["", "ok", None, {}, None]]),
        _state_sources([["s", "ok", None, {}, None], ["s", "down", None, {}, None]]),
        _state_sources([["s", "ok", -1, {}, None]]),
        _state_sources([["s", "ok", None, {"crc": -1}, None]]),
        _state_sources([["s", "ok", None, {"": 1}, None]]),
        _state_sources([["s", "ok", None, {f"r{i}": 1 for i in range(17)}, None]]),
        _state_sources([["s", "ok", None, {}, 5]]),  # detail not text
        _state_sources([[f"s{i}", "ok", None, {}, None] for i in range(wire.MAX_SOURCES + 1)]),
        _state_sources([["x" * 300, "ok", None, {}, None]]),
        cbor2.dumps([1, 3, True, 1, 2, None, None, None, None, [], ["b"] * 17]),
        cbor2.dumps([1, 3, True, 1, 2, None, None, None, None, [], [1]]),
    ],
)
def test_hostile_sources_are_refused(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        wire.decode_state(payload)


def test_sources_the_encoder_refuses() -> None:
    for bad in (
        wire.SourceHealth("s", "fine"),
        wire.SourceHealth("", "ok"),
        wire.SourceHealth("s", "ok", errors={f"r{i}": 1 for i in range(17)}),
    ):
        with pytest.raises(LocalProtocolError):
            wire.encode_state(wire.State(True, 1, 2, sources=[bad]))


STATE_HEAD = bytes.fromhex("890103f5010200f6f6")  # [1, 3, true, 1, 2, 0, null, null, ...


def _state_with(footprint: object) -> bytes:
    return cbor2.dumps([1, 3, True, 1, 2, None, None, None, footprint])


@pytest.mark.parametrize(
    "payload",
    [
        _state_with([1, 2]),  # not a map
        _state_with("bytes_sent"),
        _state_with({f"k{i}": i for i in range(wire.MAX_FOOTPRINT + 1)}),  # too many figures
        _state_with({"k" * (wire.MAX_FOOTPRINT_KEY + 1): 1}),  # name too long
        _state_with({"": 1}),
        _state_with({1: 1}),  # name not text
        _state_with({"a": True}),
        _state_with({"a": None}),
        _state_with({"a": "12"}),
        _state_with({"a": b"12"}),
        _state_with({"a": [1]}),
        _state_with({"a": {"b": 1}}),
        _state_with({"a": float("nan")}),
        _state_with({"a": float("inf")}),
        _state_with({"a": float("-inf")}),
        _state_with({"a": 2**63}),  # beyond signed 64 bits
        _state_with({"a": -(2**63) - 1}),
        _state_with({"a": 2**64}),  # a bignum
        _state_with(cbor2.CBORTag(1, 5)),
        STATE_HEAD + bytes.fromhex("a2616101616102"),  # a repeated name
        STATE_HEAD + bytes.fromhex("a161ff01"),  # a name that is not UTF-8
        STATE_HEAD + bytes.fromhex("bf616101ff"),  # indefinite-length map
        STATE_HEAD + bytes.fromhex("a5616101"),  # map longer than the message
        STATE_HEAD + bytes.fromhex("a1627801"),  # cut inside a name
        STATE_HEAD + bytes.fromhex("a16161fb3ff0"),  # cut inside a float
    ],
)
def test_hostile_footprints_are_refused(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        wire.decode_state(payload)


@pytest.mark.parametrize(
    "footprint",
    [
        {f"k{i}": i for i in range(wire.MAX_FOOTPRINT + 1)},
        {"k" * (wire.MAX_FOOTPRINT_KEY + 1): 1},
        {"": 1},
        {"a": True},
        {"a": None},
        {"a": "1"},
        {"a": float("nan")},
        {"a": float("inf")},
        {"a": 2**63},
        {"a": -(2**63) - 1},
    ],
)
def test_encoder_refuses_bad_footprints(footprint: dict[str, int | float]) -> None:
    with pytest.raises(LocalProtocolError):
        wire.encode_state(wire.State(True, 1, 2, footprint=footprint))


@pytest.mark.parametrize("kind", [wire.REPORT, wire.CONFIG, wire.CMD])
def test_envelopes_carry_one_cbor_item(kind: int) -> None:
    body = cbor2.dumps({"version": 3, "sensors": ["soil-001"]})
    env = wire.Envelope(kind, body)
    payload = wire.encode_envelope(env)
    assert cbor2.loads(payload) == [1, kind, {"version": 3, "sensors": ["soil-001"]}]
    assert wire.decode_envelope(payload, kind) == env
    assert wire.message_type(payload) == kind
    with pytest.raises(LocalProtocolError):
        wire.encode_envelope(wire.Envelope(kind, body + b"\x00"))
    # the bodies go through protocols.cbor
    env = wire.Envelope.of(kind, {"version": 3, "sensors": ["soil-001"]})
    assert env.body == body
    assert wire.decode_envelope(wire.encode_envelope(env), kind).value() == {
        "version": 3,
        "sensors": ["soil-001"],
    }


def test_later_minor_versions_may_append_fields() -> None:
    items = cbor2.loads(wire.encode_ack(wire.Ack(1, 2, [(3, 4)])))
    extended = cbor2.dumps([*items, {"new": [1, 2]}, "field"])
    assert wire.decode_ack(extended) == wire.Ack(1, 2, [(3, 4)])


def test_merge_ranges() -> None:
    assert wire.merge_ranges([(6, 9), (1, 5), (20, 20), (3, 4), (21, 30)]) == [(1, 9), (20, 30)]
    assert wire.merge_ranges([]) == []


def test_encoder_refuses_nonsense() -> None:
    with pytest.raises(LocalProtocolError):
        wire.encode_data(data_batch(blocks=[]))
    with pytest.raises(LocalProtocolError):
        wire.encode_data(data_batch(count=6))  # 5 seqs cannot hold 6 readings
    with pytest.raises(LocalProtocolError):
        wire.encode_data(data_batch(first_seq=-1))
    with pytest.raises(LocalProtocolError):
        wire.encode_ack(wire.Ack(1, 1, [(5, 4)]))


# -- hostile payloads ---------------------------------------------------------------------


def reason(payload: bytes, decode: object = wire.decode_data) -> str:
    with pytest.raises(RemoteProtocolError) as info:
        decode(payload)  # type: ignore[operator]
    return info.value.reason


def test_wrong_version_and_wrong_type() -> None:
    items = cbor2.loads(wire.encode_data(data_batch(), compress=0))
    assert reason(cbor2.dumps([2, *items[1:]])) == "unsupported"
    assert reason(wire.encode_ack(wire.Ack(1, 1, []))) == "malformed"
    assert reason(wire.encode_data(data_batch()), wire.decode_ack) == "malformed"
    assert reason(cbor2.dumps({"v": 1})) == "malformed"
    assert reason(b"") == "truncated"


def test_oversize_payload_and_zip_bomb() -> None:
    assert reason(b"\x00" * (wire.MAX_PAYLOAD + 1)) == "overflow"
    bomb = zlib.compress(b"\x00" * (wire.MAX_INFLATED + 1024), 9)
    assert len(bomb) < 20_000
    payload = cbor2.dumps([1, 1, 1, 1, 0, 9, 10, 0, None, 1, bomb])
    assert reason(payload) == "overflow"
    assert reason(cbor2.dumps([1, 1, 1, 1, 0, 9, 10, 0, None, 1, b"not zlib"])) == "malformed"
    cut = zlib.compress(cbor2.dumps([BLOCK_A]))[:-3]
    assert reason(cbor2.dumps([1, 1, 1, 1, 0, 9, 10, 0, None, 1, cut])) == "truncated"


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    deep = b"\x81" * 100_000 + b"\x00"
    ack = wire.encode_ack(wire.Ack(1, 2, [(3, 4)]))
    payload = b"\x87" + ack[1:] + deep
    assert reason(payload, wire.decode_ack) == "overflow"
    body = b"\x81" * (wire.MAX_DEPTH + 5) + b"\x00"
    assert (
        reason(b"\x83\x01\x04" + body, lambda p: wire.decode_envelope(p, wire.REPORT)) == "overflow"
    )


def test_lengths_larger_than_the_message() -> None:
    assert reason(bytes.fromhex("9b00000000ffffffff")) == "overflow"
    assert reason(bytes.fromhex("8b0101")) == "truncated"
    huge_array = bytes.fromhex("870102010280") + bytes.fromhex("f6") + bytes.fromhex("9a7fffffff")
    assert reason(huge_array, wire.decode_ack) in ("truncated", "overflow")


def test_inconsistent_spans_and_limits() -> None:
    def data(first: int, last: int, count: int, blocks: object = None) -> bytes:
        return cbor2.dumps(
            [1, 1, 1, 1, first, last, count, 0, None, 0, [BLOCK_A] if blocks is None else blocks]
        )

    assert reason(data(10, 5, 1)) == "malformed"
    assert reason(data(0, 4, 6)) == "malformed"
    assert reason(data(0, 4, 0)) == "malformed"
    assert reason(data(0, 10**6, wire.MAX_BATCH_READINGS + 1)) == "overflow"
    assert reason(data(0, 4, 5, [])) == "malformed"
    assert reason(data(0, 2**64 - 1, 5)) == "overflow"
    assert reason(data(0, 4, 5, ["text"])) == "malformed"


# Every byte string must either decode or raise RemoteProtocolError, never anything else.
DECODERS = [
    wire.decode_data,
    wire.decode_ack,
    wire.decode_state,
    wire.message_type,
    lambda p: wire.decode_envelope(p, wire.CMD),
]


def only_protocol_errors(payload: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(RemoteProtocolError):
            decode(payload)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_protocol_errors(payload: bytes) -> None:
    only_protocol_errors(payload)


VALID = [
    wire.encode_data(data_batch(), compress=0),
    wire.encode_data(data_batch(blocks=[bytes(200)] * 3)),
    wire.encode_ack(wire.Ack(7, 42, [(1, 5), (9, 9)], "rejected")),
    wire.encode_state(wire.State(True, 3, 5, 6, 7, "x")),
    wire.encode_state(wire.State(True, 3, 5, 6, 7, "x", {"bytes_sent": 1, "cpu_s": 0.25})),
    wire.encode_envelope(wire.Envelope(wire.CMD, cbor2.dumps({"a": [1.5, None, True]}))),
]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 400),
)
def test_mutated_messages_only_raise_protocol_errors(
    payload: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    mutated = bytearray(payload)
    for pos, value in flips:
        if pos < len(mutated):
            mutated[pos] = value
    only_protocol_errors(bytes(mutated))
    only_protocol_errors(bytes(mutated[: len(mutated) - cut % (len(mutated) + 1)]))


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**64), 2**64 - 1)
        | st.floats()
        | st.text(max_size=20)
        | st.binary(max_size=20),
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=5), children, max_size=5)
        ),
        max_leaves=30,
    )
)
def test_any_cbor_value_only_raises_protocol_errors(value: object) -> None:
    only_protocol_errors(cbor2.dumps(value))
    only_protocol_errors(cbor2.dumps([1, 1, value]))
    only_protocol_errors(cbor2.dumps([1, 1, 1, 1, 0, 1, 1, 0, value, 0, [b"x"]]))


# -- topics -------------------------------------------------------------------------------


def test_topics() -> None:
    assert wire.topic("gw-017", "data") == "estran/v1/gw/gw-017/data"
    assert wire.parse_topic("estran/v1/gw/gw-017/ack") == ("gw-017", "ack")
    assert wire.subscription("data") == "estran/v1/gw/+/data"
    assert wire.subscription("data", "estran-ingest") == "$share/estran-ingest/estran/v1/gw/+/data"
    for bad in ["gw/017", "", "+", "#", "a" * 65, "..", "gw 1", "gwé"]:
        assert not wire.valid_gateway_id(bad)
        with pytest.raises(LocalProtocolError):
            wire.topic(bad, "data")
    for bad_topic in [
        "estran/v2/gw/a/data",
        "estran/v1/gw/a/b/data",
        "estran/v1/gw/a/other",
        "estran/v1/gw//data",
        "x",
    ]:
        with pytest.raises(RemoteProtocolError):
            wire.parse_topic(bad_topic)
