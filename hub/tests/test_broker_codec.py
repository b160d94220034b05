"""The embedded broker's MQTT 3.1.1 codec: captured packets, round trips, and random bytes
that may only raise MalformedPacket."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.broker import _codec as c
from hub.broker._topics import matches, split_shared, valid_filter


def test_a_captured_connect() -> None:
    body = bytes.fromhex("00044d51545404c6001e00026777000177000178000175000170")
    packet = c.decode(0x10, body)
    assert packet == c.Connect("MQTT", 4, True, 30, "gw", c.Will("w", b"x", 0, False), "u", b"p")


def test_mqtt5_and_31_connects_are_read_for_a_connack_1() -> None:
    v5 = bytes.fromhex("00044d5154540502003c0000026777")  # with properties
    assert c.decode(0x10, v5) == c.Connect("MQTT", 5, True, 60, "", None, None, None)
    with pytest.raises(c.MalformedPacket, match="protocol name"):
        c.decode(0x10, bytes.fromhex("0002686a0402003c00026777"))


@given(
    st.text(min_size=1, max_size=50).filter(lambda t: "\x00" not in t),
    st.binary(max_size=300),
    st.integers(0, 2),
    st.booleans(),
    st.booleans(),
    st.integers(1, 65535),
)
def test_publish_round_trip(
    topic: str, payload: bytes, qos: int, retain: bool, dup: bool, pid: int
) -> None:
    raw = c.encode_publish(topic, payload, qos, retain, dup, pid)
    lengths = c.LengthReader()
    i, size = 1, None
    while size is None:
        size = lengths.feed(raw[i])
        i += 1
    assert size == len(raw) - i
    packet = c.decode(raw[0], raw[i:])
    assert packet == c.Publish(topic, payload, qos, retain, dup, pid if qos else 0)


@given(st.integers(0, 255), st.binary(max_size=200))
def test_random_bytes_only_raise_malformed_packet(first: int, body: bytes) -> None:
    with contextlib.suppress(c.MalformedPacket):
        c.decode(first, body)


@given(st.binary(min_size=1, max_size=6))
def test_random_lengths_only_raise_malformed_packet(data: bytes) -> None:
    lengths = c.LengthReader()
    try:
        for byte in data:
            if lengths.feed(byte) is not None:
                break
    except c.MalformedPacket:
        assert len(data) > 4


def test_topic_rules() -> None:
    assert matches("a/b", "a/+") and matches("a/b/c", "a/#") and matches("a", "a/#")
    assert not matches("$SYS/x", "#") and not matches("$SYS/x", "+/x")
    assert matches("$SYS/x", "$SYS/#")
    assert not valid_filter("a/#/b") and not valid_filter("a+") and not valid_filter("")
    assert split_shared("$share/g/estran/#") == ("g", "estran/#")
    with pytest.raises(ValueError):
        split_shared("$share/g")
