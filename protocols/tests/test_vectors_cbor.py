"""protocols.cbor against RFC 8949: the Appendix A examples (../shared/vectors/cbor) and the
not-well-formed examples of Appendix F.1. Runs under pytest and under MicroPython."""

import sys
import unittest

from protocols import cbor
from protocols.errors import RemoteProtocolError
from protocols.tests.support import load_json, unhex

MICROPYTHON = sys.implementation.name == "micropython"

# RFC 8949 §3.3: two-byte simple values below 32 are not well-formed. The shared vector file
# predates it (RFC 7049 listed simple(24) as f818), so that one example must be refused.
NOT_WELL_FORMED_IN_8949 = ("f818",)

# RFC 8949 Appendix F.1, "Examples of CBOR Data Items That Are Not Well-Formed" (all of them).
APPENDIX_F1 = (  # noqa: SIM905 (grouped by the RFC headings)
    # end of input in a head
    "18 19 1a 1b 1901 1a0102 1b01020304050607 38 58 78 98 9a01ff00 b8 d8 f8 f900 fa0000 "
    "fb000000 "
    # definite-length strings with short data
    "41 61 5affffffff00 5bffffffffffffffff010203 7affffffff00 7b7fffffffffffffff010203 "
    # definite-length maps and arrays not closed with enough items
    "81 818181818181818181 8200 a1 a20102 a100 a2000000 "
    # tag number not followed by tag content
    "c0 "
    # indefinite-length strings, maps and arrays not closed by a break
    "5f4100 7f6100 9f 9f0102 bf bf01020102 819f 9f8000 9f9f9f9f9fffffffff 9f819f819f9fffffff "
    # reserved additional information values
    "1c 1d 1e 3c 3d 3e 5c 5d 5e 7c 7d 7e 9c 9d 9e bc bd be dc dd de fc fd fe "
    # reserved two-byte encodings of simple values
    "f800 f801 f818 f81f "
    # indefinite-length string chunks not of the correct type, or not definite
    "5f00ff 5f21ff 5f6100ff 5f80ff 5fa0ff 5fc000ff 5fe0ff 7f4100ff 5f5f4100ffff 7f7f6100ffff "
    # break on its own, or inside a definite-length item or a tag
    "ff 81ff 8200ff a1ff a1ff00 a100ff a20000ff 9f81ff 9f829f819f9fffffffff "
    # break in a value position of an indefinite map
    "bf00ff bf000000ff "
    # major types 0, 1 and 6 with additional information 31
    "1f 3f df"
).split()


def diag(value: "object") -> "str":
    """RFC 8949 §8 diagnostic notation, enough for the Appendix A examples."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if value is cbor.UNDEFINED:
        return "undefined"
    if isinstance(value, cbor.Simple):
        return "simple(%d)" % value.value
    if isinstance(value, cbor.Tag):
        return "%d(%s)" % (value.tag, diag(value.value))
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return "h'" + "".join("%02x" % b for b in value) + "'"
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, list):
        return "[" + ", ".join(diag(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = sorted(diag(k) + ": " + diag(v) for k, v in value.items())  # MicroPython: unordered
        return "{" + ", ".join(pairs) + "}"
    raise AssertionError("no diagnostic form for %r" % (value,))


def expected_diag(text: "str") -> "str":
    # "(_ h'0102', h'030405')": an indefinite-length byte string decodes to its concatenation
    if text.startswith("(_ h'"):
        return "h'" + "".join(part.strip()[2:-1] for part in text[3:-1].split(",")) + "'"
    return text


def same(got: "object", want: "object") -> "bool":
    """Equal, and of the same kind (1 is not 1.0, -0.0 is not 0.0)."""
    if isinstance(want, float):
        if not isinstance(got, float):
            return False
        if MICROPYTHON:  # its JSON parser may round the last digit of the expected value
            return abs(got - want) <= abs(want) * 1e-15 and str(got)[0] == str(want)[0]
        return got == want and str(got)[0] == str(want)[0]
    if isinstance(want, bool) or want is None:
        return got is want
    if isinstance(want, int):
        return isinstance(got, int) and not isinstance(got, bool) and got == want
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(same(got[i], want[i]) for i in range(len(want)))
        )
    if isinstance(want, dict):
        return (
            isinstance(got, dict)
            and len(got) == len(want)
            and all(k in got and same(got[k], v) for k, v in want.items())
        )
    return type(got) is type(want) and got == want


def has_unordered_map(value: "object") -> "bool":
    if isinstance(value, dict):
        return len(value) > 1 or any(has_unordered_map(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unordered_map(v) for v in value)
    return False


def vectors() -> "list[dict[str, object]]":
    return load_json("cbor/appendix_a.json")  # type: ignore[return-value]


class CborVectors(unittest.TestCase):
    def test_appendix_a_decodes(self) -> "None":
        checked = 0
        for vector in vectors():
            data = unhex(vector["hex"])  # type: ignore[arg-type]
            if vector["hex"] in NOT_WELL_FORMED_IN_8949:
                continue
            value = cbor.loads(data)
            if "decoded" in vector:
                assert same(value, vector["decoded"]), (vector["hex"], value)
            else:
                assert diag(value) == expected_diag(vector["diagnostic"]), (vector["hex"], value)  # type: ignore[arg-type]
            checked += 1
        assert checked == 81, checked

    def test_appendix_a_round_trips_in_preferred_serialization(self) -> "None":
        checked = 0
        for vector in vectors():
            if not vector["roundtrip"] or vector["hex"] in NOT_WELL_FORMED_IN_8949:
                continue
            data = unhex(vector["hex"])  # type: ignore[arg-type]
            value = cbor.loads(data)
            if MICROPYTHON and has_unordered_map(value):
                # MicroPython dicts do not keep insertion order: the bytes may differ, the value not
                assert same(cbor.loads(cbor.dumps(value)), value), vector["hex"]
            else:
                assert cbor.dumps(value) == data, vector["hex"]
            checked += 1
        assert checked == 64, checked

    def test_simple_24_is_not_well_formed_in_rfc_8949(self) -> "None":
        for hexed in NOT_WELL_FORMED_IN_8949:
            try:
                cbor.loads(unhex(hexed))
            except RemoteProtocolError:
                continue
            raise AssertionError(hexed + " accepted")

    def test_appendix_f1_not_well_formed_is_refused(self) -> "None":
        for hexed in APPENDIX_F1:
            try:
                value = cbor.loads(unhex(hexed))
            except RemoteProtocolError:
                continue
            raise AssertionError("%s decoded as %r" % (hexed, value))
        assert len(APPENDIX_F1) == 94, len(APPENDIX_F1)

    def test_a_sequence_walks_item_by_item(self) -> "None":
        data = unhex("01 6161 820203 f6")
        items = []
        pos = 0
        while pos < len(data):
            item, pos = cbor.decode_item(data, pos)
            items.append(item)
        assert items == [1, "a", [2, 3], None]
        assert cbor.loads_sequence(data) == items

    def test_the_block_codec_runs_here_too(self) -> "None":
        # protocols.block is built on this CBOR codec: a round trip on this platform
        from protocols.block import decode_block, encode_block
        from protocols.reading import Reading

        readings = [
            Reading("soil-017", "moisture", "%RH", 35.12, 1764547200000),
            Reading("soil-017", "moisture", "%RH", 35.1, 1764547260000, 2),
            Reading("meter-003", "energy", "Wh", 1000123, 1764547201000),
            Reading("meter-003", "energy", "Wh", 1000200.0, 1764547261000),
            Reading("berth-001", "occupied", "/", True, 1764547202000),
            Reading("bin-009", "state", None, "open", 1764547203000),
        ]
        data = encode_block(41, readings)
        first, back = decode_block(data)
        assert first == 41
        assert back == readings
        for a, b in zip(back, readings):  # noqa: B905 (MicroPython has no strict)
            assert type(a.value) is type(b.value)
