"""protocols.signed: deterministic CBOR (RFC 8949 §4.2.1), key ids, signing input and the
signed document frame, on fixed vectors. Runs under pytest and under MicroPython."""

import unittest

from protocols import signed
from protocols.errors import RemoteProtocolError

# RFC 8032 §7.1 test 1: the public key of the empty-message test vector.
RFC8032_PUB = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")


class SignedVectors(unittest.TestCase):
    def test_map_keys_sorted_bytewise_on_their_encoding(self) -> None:
        # RFC 8949 §4.2.1 example order: 10, 100, -1, "z", "aa", [100], [-1], false
        value = {False: 8, "aa": 5, 100: 2, "z": 4, -1: 3, 10: 1}
        assert signed.canonical(value) == bytes.fromhex("a60a011864022003617a0462616105f408")

    def test_shortest_heads_and_nesting(self) -> None:
        doc = {"version": 1000, "config": {"b": [1.5, None, True], "a": ""}, "gateway": "gw-1"}
        # "config" (6 letters) before "gateway" and "version" (7): shorter encodings first
        assert signed.canonical(doc) == bytes.fromhex(
            "a3"
            "66636f6e666967a2616160616283f93e00f6f5"  # "config": {"a": "", "b": [1.5, null, true]}
            "67676174657761796467772d31"  # "gateway": "gw-1"
            "6776657273696f6e1903e8"  # "version": 1000
        )

    def test_key_id_of_the_rfc8032_key(self) -> None:
        assert signed.key_id(RFC8032_PUB) == "21fe31dfa154a261"
        assert signed.valid_key_id("21fe31dfa154a261")
        assert not signed.valid_key_id("21FE31DFA154A261")

    def test_signing_input(self) -> None:
        assert signed.signing_input(signed.CONTEXT_CMD, b"\xa0") == b"estran/v1/cmd\x00\xa0"

    def test_signed_frame(self) -> None:
        payload = signed.encode_payload({"kind": "cmd", "seq": 1})
        frame = signed.encode_signed(signed.Signed(payload, [("21fe31dfa154a261", bytes(64))]))
        assert frame[:3] == bytes.fromhex("83014f")  # [1, h'<15 bytes>', ...]
        back = signed.decode_signed(frame)
        assert back.payload == payload and back.signatures == [("21fe31dfa154a261", bytes(64))]
        assert back.document() == {"kind": "cmd", "seq": 1}

    def test_non_deterministic_payload_refused(self) -> None:
        for hex_payload in ("a2616201616102", "a1616119000a", "bf616101ff"):
            try:
                signed.decode_payload(bytes.fromhex(hex_payload))
            except RemoteProtocolError:
                continue
            raise AssertionError("accepted " + hex_payload)
