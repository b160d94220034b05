"""A third party reads a buffer with cbor2 and docs/buffer-format.md alone: none of our
decoding code is used below (only our writer, to make the buffer). Blocks are read with
protocols/tests/block_support.cbor2_decode, written from the same document."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import cbor2
import pytest

from edge.buffer import BufferConfig, SegmentLog
from edge.tests.support.buffer import exact, reading, workload
from protocols.reading import Reading
from protocols.tests.block_support import cbor2_decode

DOC = Path(__file__).resolve().parents[2] / "docs" / "buffer-format.md"


def decode_block(payload: bytes) -> list[tuple[int, Reading]]:
    first, rows = cbor2_decode(payload)
    return [(first + k, Reading(*row)) for k, row in enumerate(rows)]  # type: ignore[arg-type]


def read_segment(path: str) -> tuple[list[tuple[int, Reading]], dict[str, object] | None]:
    """Every reading of a segment file, and its footer if it is sealed."""
    data = Path(path).read_bytes()
    decoder = cbor2.CBORDecoder(io.BytesIO(data))
    header = decoder.decode()
    assert header[:2] == ["estran-buffer", 1]
    assert os.path.basename(path) == f"seg-{header[2]:020d}.cborseq"
    readings: list[tuple[int, Reading]] = []
    footer = None
    footer_at = -1
    while decoder.fp.tell() < len(data):
        start = decoder.fp.tell()
        try:
            item = decoder.decode()
        except cbor2.CBORDecodeError:
            break  # a torn tail
        if isinstance(item, bytes):  # the padding of a preallocated open segment
            assert decoder.fp.tell() == len(data) and not item.strip(b"\x00")
            break
        if isinstance(item, list) and len(item) == 2 and item[0] == "estran-seal":
            assert item[1] == footer_at  # the trailer points at the footer record
            assert decoder.fp.tell() == len(data)
            break
        crc, payload = item
        if zlib.crc32(payload) != crc:
            break  # a torn tail
        body = cbor2.loads(payload)
        if isinstance(body, dict):
            footer, footer_at = body, start
            continue
        readings.extend(decode_block(payload))
    return readings, footer


def test_the_format_document_is_there() -> None:
    text = DOC.read_text()
    for needle in (
        "estran-buffer",
        "estran-seal",
        "zigzag",
        "float(m) / 10.0**d",
        "seq.cbor",
        "Wiping",
    ):
        assert needle in text


@pytest.mark.parametrize("preallocate", [False, True])
def test_a_third_party_reads_a_buffer_with_cbor2_alone(tmp_path: Path, preallocate: bool) -> None:
    cfg = BufferConfig(
        tmp_path / "b", segment_bytes=16 * 1024, commit_readings=500, preallocate=preallocate
    )
    expected = workload(6000)
    extra = [
        reading(i, alarm=i % 5 == 0) for i in range(1, 400)
    ]  # text, booleans, raw floats, alarms
    log = SegmentLog.open(cfg)
    log.append_many(expected[:3000] + extra + expected[3000:])
    log.commit()
    log._release()  # stop as a crash would: the last segment stays open, unsealed
    last = sorted(Path(cfg.segments_dir).iterdir())[-1]
    if preallocate:
        data = last.read_bytes()
        assert data.endswith(bytes(64))  # zeros ahead, in the padding item
    else:
        with open(last, "ab") as f:
            f.write(b"\x82\x1a\x00\x00")  # and a torn tail
    everything = expected[:3000] + extra + expected[3000:]
    got: list[tuple[int, Reading]] = []
    sealed = 0
    for path in sorted(Path(cfg.segments_dir).iterdir()):
        readings, footer = read_segment(str(path))
        if footer is not None:
            sealed += 1
            assert footer["count"] == len(readings)
            assert footer["first_seq"] == readings[0][0] and footer["last_seq"] == readings[-1][0]
            index = footer["blocks"]
            assert isinstance(index, bytes) and len(index) % 56 == 0
            entries = [struct.unpack_from("<7q", index, i) for i in range(0, len(index), 56)]
            assert sum(e[3] for e in entries) == len(readings)
        got.extend(readings)
    assert sealed >= 2
    assert [s for s, _ in got] == list(range(1, len(everything) + 1))
    assert all(exact(r, want) for (_s, r), want in zip(got, everything, strict=True))


def test_the_small_files_read_as_documented(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "b")
    with SegmentLog.open(cfg) as log:
        log.append_many(reading(i) for i in range(1, 101))
        log.commit()
        log.ack([(1, 10), (20, 30)])
    assert cbor2.loads(Path(cfg.seq_file).read_bytes()) == {"v": 1, "reserved": 100}
    state = cbor2.loads(Path(cfg.state_path).read_bytes())
    assert state["v"] == 1 and state["acked"] == [1, 10, 20, 30]
    assert state["dropped"] == {} and state["reserved"] == 100
