"""Signed documents: deterministic CBOR, framing, hostile bytes."""

from __future__ import annotations

import contextlib

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import cbor, signed
from protocols.errors import LocalProtocolError, RemoteProtocolError

PUB = bytes(range(32))


def test_canonical_sorts_keys_by_encoded_bytes() -> None:
    # RFC 8949 4.2.1: shorter keys first, then bytewise
    assert signed.canonical({"bb": 1, "a": 2, 10: 3}) == bytes.fromhex("a30a0361610262626201")
    assert signed.canonical({"b": 1, "a": 2}) == signed.canonical({"a": 2, "b": 1})


def test_canonical_agrees_with_cbor2() -> None:
    value = {"z": [1, 2.5, -3, None, True], "a": {"y": b"\x00", "x": "é"}, "m": 1 << 40}
    assert signed.canonical(value) == cbor2.dumps(value, canonical=True)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_canonical_round_trip(value: object) -> None:
    data = signed.canonical(value)
    assert signed.is_canonical(data)
    assert data == cbor2.dumps(value, canonical=True)


def test_not_canonical_detected() -> None:
    assert not signed.is_canonical(bytes.fromhex("a2616201616102"))  # {"b":1,"a":2}
    assert not signed.is_canonical(bytes.fromhex("1817"))  # 23 in two bytes
    assert not signed.is_canonical(b"\xff")


def test_key_id() -> None:
    kid = signed.key_id(PUB)
    assert len(kid) == 16 and signed.valid_key_id(kid)
    assert kid == "630dcd2966c43366"
    with pytest.raises(LocalProtocolError):
        signed.key_id(b"short")


def test_signing_input_separates_contexts() -> None:
    a = signed.signing_input(signed.CONTEXT_CONFIG, b"x")
    b = signed.signing_input(signed.CONTEXT_CMD, b"x")
    assert a != b and a.startswith(b"estran/v1/config\x00")
    with pytest.raises(LocalProtocolError):
        signed.signing_input(b"a\x00b", b"x")


def test_signed_round_trip() -> None:
    payload = signed.encode_payload({"kind": "config", "gateway": "gw-1", "version": 3})
    doc = signed.Signed(payload, [("0011223344556677", b"s" * 64), ("8899aabbccddeeff", b"t" * 64)])
    data = signed.encode_signed(doc)
    assert signed.is_canonical(data)
    back = signed.decode_signed(data)
    assert back == doc
    assert back.document() == {"kind": "config", "gateway": "gw-1", "version": 3}


@pytest.mark.parametrize(
    "value",
    [
        [],
        [2, b"\xa0", [["0011223344556677", b"s" * 64]]],
        [1, "text", [["0011223344556677", b"s" * 64]]],
        [1, b"\xa0", []],
        [1, b"\xa0", [["0011223344556677", b"s" * 63]]],
        [1, b"\xa0", [["XX11223344556677", b"s" * 64]]],
        [1, b"\xa0", [["0011223344556677"]]],
        [1, b"\xa0", [["0011223344556677", b"s" * 64]] * 9],
        {"a": 1},
    ],
)
def test_decode_signed_refuses_bad_shapes(value: object) -> None:
    with pytest.raises(RemoteProtocolError):
        signed.decode_signed(cbor.dumps(value))


def test_payload_must_be_a_canonical_text_keyed_map() -> None:
    with pytest.raises(RemoteProtocolError):
        signed.decode_payload(cbor.dumps([1]))
    with pytest.raises(RemoteProtocolError):
        signed.decode_payload(cbor.dumps({1: 2}))
    with pytest.raises(RemoteProtocolError):
        signed.decode_payload(bytes.fromhex("a2616201616102"))
    with pytest.raises(LocalProtocolError):
        signed.encode_payload({1: 2})  # type: ignore[dict-item]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_the_protocol_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        signed.decode_signed(data).document()


def test_reports() -> None:
    doc = signed.report("config", signed.ROLLED_BACK, "source serial[0] down", 4, 3, 1000)
    assert signed.check_report(cbor.loads(cbor.dumps(doc))) == doc
    with pytest.raises(RemoteProtocolError):
        signed.check_report({**doc, "outcome": "maybe"})
    with pytest.raises(RemoteProtocolError):
        signed.check_report({**doc, "version": -1})
    with pytest.raises(RemoteProtocolError):
        signed.check_report({"kind": "config"})
    with pytest.raises(LocalProtocolError):
        signed.report("config", "maybe", "", 1, 1, 0)
