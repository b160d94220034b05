"""`describe(data, options)`: wireless M-Bus bytes to the `estran decode --json` contract.

`data` holds one telegram or several back to back (each L-field first, with or without its
CRCs; wired M-Bus long frames too): each gives one result. `options["key"]` is an AES-128
key (hex) tried for every meter; `options["keys"]` a dict of meter -> key (see Decoder).
Keys never appear in a result.
"""

from protocols.describe import result
from protocols.errors import MALFORMED, TRUNCATED, LocalProtocolError, RemoteProtocolError
from protocols.wmbus._link import C_FIELDS, HEADER_SIZE, MIN_SIZE, frame_size
from protocols.wmbus._telegram import Decoder, WmbusTelegram


def _keys(options: "dict[str, object]") -> "dict[str, bytes]":
    keys: "dict[str, bytes]" = {}
    given = options.get("keys")
    if isinstance(given, dict):
        for name, key in given.items():
            keys[str(name)] = _key(key)
    key = options.get("key")
    if key:
        keys["*"] = _key(key)
    return keys


def _key(value: "object") -> "bytes":
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        text = str(value).replace(" ", "").replace(":", "")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
    if len(raw) != 16:
        raise LocalProtocolError("an AES-128 key is 32 hexadecimal digits")
    return raw


def _fields(telegram: "WmbusTelegram") -> "dict[str, object]":
    return telegram.fields() if telegram.id or telegram.manufacturer else {}


def _describe_one(decoder: "Decoder", frame: "bytes") -> "dict[str, object]":
    telegram = WmbusTelegram()
    try:
        decoder.decode_into(telegram, frame)
    except RemoteProtocolError as e:
        readings = [m.as_dict() for m in telegram.measurements()]
        return result("wmbus", False, str(e), _fields(telegram), readings)
    readings = [m.as_dict() for m in telegram.measurements()]
    return result("wmbus", True, None, telegram.fields(), readings)


def split(data: "bytes") -> "list[bytes]":
    """Telegrams laid back to back: each is cut by its L-field (without CRCs, or as a format
    A frame when that size fits exactly what remains or what follows), wired frames by
    theirs. Whatever cannot be cut is returned as it is, to fail with its reason."""
    out = []
    pos = 0
    while pos < len(data):
        rest = data[pos:]
        if len(rest) >= 4 and rest[0] == 0x68 and rest[3] == 0x68 and rest[1] == rest[2]:
            size = rest[1] + 6
        else:
            plain, format_a = frame_size(rest[0])
            size = plain
            if len(rest) == format_a or (
                len(rest) > format_a
                and not _looks_like_start(rest, plain)
                and _looks_like_start(rest, format_a)
            ):
                size = format_a
        if size <= 0 or size > len(rest):
            out.append(rest)
            break
        out.append(rest[:size])
        pos += size
    return out


def _looks_like_start(data: "bytes", pos: "int") -> "bool":
    if len(data) - pos < MIN_SIZE or data[pos] < HEADER_SIZE:
        return False
    return data[pos + 1] in C_FIELDS or (data[pos] == 0x68 and data[pos + 3] == 0x68)


def describe(data: "bytes", options: "dict[str, object]") -> "list[dict[str, object]]":
    decoder = Decoder(_keys(options))
    data = bytes(data)
    if len(data) < MIN_SIZE:
        return [
            result(
                "wmbus",
                False,
                "%s: a telegram has at least %d bytes, got %d" % (TRUNCATED, MIN_SIZE, len(data)),
                {},
                [],
            )
        ]
    results = []
    for frame in split(data):
        if len(frame) < MIN_SIZE:
            message = "%s: %d bytes left over after the last telegram" % (MALFORMED, len(frame))
            results.append(result("wmbus", False, message, {}, []))
            continue
        results.append(_describe_one(decoder, frame))
    return results


__all__ = ["describe", "split"]
