"""Helpers for the codec vector tests, which run under pytest and under MicroPython.

Vector test modules are named `test_vectors_*.py`: each holds one `unittest.TestCase` whose
tests use plain `assert` and import nothing MicroPython lacks. pytest runs them on CPython;
micropython-lib's `unittest` runs them on the MicroPython unix port (`make micropython`).
"""

import json
import unittest

from protocols._stream import NEED_DATA
from protocols.errors import REASONS, RemoteProtocolError


def skip(reason: "str") -> "None":
    """Skip the running test: unittest's SkipTest, which pytest and micropython-lib's
    unittest both report as a skip."""
    raise unittest.SkipTest(reason)


def _repo_root() -> "str":
    here = __file__.replace("\\", "/")
    parts = here.split("/")
    # .../<root>/protocols/tests/support.py
    root = "/".join(parts[:-3])
    return root if root else "."


def vectors_dir() -> "str":
    """../shared/vectors beside the repository (or $ESTRAN_VECTORS), or skip when absent."""
    try:
        import os

        env = os.getenv("ESTRAN_VECTORS")
    except (ImportError, AttributeError):
        env = None
    path = env or (_repo_root() + "/../shared/vectors")
    try:
        open(path + "/README.md").close()
    except OSError:
        skip("shared vectors not found at %s (a plain clone has none)" % path)
    return path


def load_json(relative: "str") -> "object":
    with open(vectors_dir() + "/" + relative) as f:
        return json.load(f)


def local_json(name: "str") -> "object":
    """Test data committed with the repository (protocols/tests/data/NAME): our own
    vectors, each file naming where its facts come from. Never skipped."""
    with open(_repo_root() + "/protocols/tests/data/" + name) as f:
        return json.load(f)


def read_text(relative: "str") -> "str":
    with open(vectors_dir() + "/" + relative) as f:
        return f.read()


def listdir(relative: "str") -> "list[str]":
    import os

    return sorted(os.listdir(vectors_dir() + "/" + relative))


def unhex(text: "str") -> "bytes":
    """Hex with optional spaces, newlines or colons to bytes."""
    clean = "".join(c for c in text if c not in " \t\r\n:")
    return bytes.fromhex(clean)


def close(a: "float", b: "float", rel: "float" = 1e-6, abs_: "float" = 1e-9) -> "bool":
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def drain(stream: "object") -> "list[object]":
    """A stream parser's events until NEED_DATA: frames, and errors as their reason."""
    out = []  # type: list[object]
    while True:
        try:
            event = stream.next_event()  # type: ignore[attr-defined]
        except RemoteProtocolError as e:
            out.append(e.reason)
            continue
        if event is NEED_DATA:
            return out
        out.append(event)


def mutate(base: "bytes", edits: "list[tuple[int, int]]", how: "str") -> "bytes":
    """`base` with every (position, byte) of `edits` applied as `how` says: "flip" (xor),
    "insert", "delete" or "truncate" (positions wrap around the length)."""
    data = bytearray(base)
    for pos, byte in edits:
        i = pos % (len(data) + 1)
        if how == "flip" and i < len(data):
            data[i] ^= byte or 1
        elif how == "insert":
            data.insert(i, byte)
        elif how == "delete" and i < len(data):
            del data[i]
        elif how == "truncate":
            del data[i:]
    return bytes(data)


def check_contract(results: "list[dict[str, object]]", protocol: "str") -> "None":
    """Every dict of a describe() result keeps the `estran decode --json` contract."""
    for r in results:
        assert list(r) == ["protocol", "valid", "error", "fields", "readings"]
        assert r["protocol"] == protocol
        assert isinstance(r["valid"], bool)
        assert (r["error"] is None) == r["valid"]
        if r["error"] is not None:
            assert str(r["error"]).split(":")[0] in REASONS
        assert isinstance(r["fields"], dict)
        assert isinstance(r["readings"], list)
        for reading in r["readings"]:
            assert set(reading) == {"name", "value", "unit"}
        json.dumps(r)
