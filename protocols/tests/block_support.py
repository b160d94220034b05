"""Test helpers for the block format (CPython only), shared by protocols/tests/test_block.py
and the buffer's tests in edge/tests: the reference workload, exact comparison of readings,
and an independent block decoder (cbor2 and docs/buffer-format.md, none of our code)."""

import math
import sys
from pathlib import Path
from typing import Any

import cbor2
import pytest

from protocols.reading import Reading

BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "bench"


def reference_readings() -> Any:
    """The reference workload's `readings(n)` generator; the test skips when it is absent."""
    if not (BENCH / "workload.py").exists():
        pytest.skip(f"reference workload not found at {BENCH}")
    sys.path.insert(0, str(BENCH))
    try:
        from workload import readings  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(BENCH))
    return readings


def workload(n: int) -> list[Reading]:
    return [
        Reading(r.sensor, r.quantity, r.unit, r.value, r.ts_ms) for r in reference_readings()(n)
    ]


def exact(a: Reading, b: Reading) -> bool:
    """Same reading, and the value of the same type and bits (NaN equal, -0.0 not 0.0)."""
    va, vb = a.value, b.value
    if type(va) is not type(vb):
        return False
    if isinstance(va, float):
        assert isinstance(vb, float)
        if math.isnan(va):
            return math.isnan(vb) and a.key()[:3] + a.key()[4:] == b.key()[:3] + b.key()[4:]
        if math.copysign(1, va) != math.copysign(1, vb):
            return False
    return a == b


def cbor2_decode(data: bytes) -> tuple[int, list[tuple[str, str, str | None, object, int, int]]]:
    """An independent decoder: cbor2 plus docs/buffer-format.md, none of our code."""

    def uvarints(b: bytes) -> list[int]:
        out, x, shift = [], 0, 0
        for byte in b:
            x |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                out.append(x)
                x, shift = 0, 0
        return out

    def signed(z: int) -> int:
        return z >> 1 if z % 2 == 0 else -((z + 1) >> 1)

    item = cbor2.loads(data)
    version, first, n, fdef, fexc, t_min, _span, strings, series, sc, tc, vc, raw = item
    assert version == 1
    flags = [fdef] * n
    for k in range(0, len(fexc), 2):
        flags[fexc[k]] = fexc[k + 1]
    ser = uvarints(sc)
    tsd = [signed(z) for z in uvarints(tc)]
    vals = iter([signed(z) for z in uvarints(vc)])
    raws = iter(raw)
    mant: dict[int, int] = {}
    ts = t_min
    out = []
    for k in range(n):
        s = ser[k]
        si, qi, ui, kind = series[4 * s : 4 * s + 4]
        ts += tsd[k]
        value: object
        if kind == 0:
            value = next(raws)
        else:
            mant[s] = mant.get(s, 0) + next(vals)
            value = mant[s] if kind == 1 else float(mant[s]) / 10.0 ** (kind - 2)
        out.append(
            (strings[si], strings[qi], None if ui is None else strings[ui], value, ts, flags[k])
        )
    return first, out
