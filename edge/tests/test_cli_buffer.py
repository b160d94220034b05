"""`estran edge buffer dump|verify|stats` (their contracts)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from edge.buffer import BufferConfig, SegmentLog
from edge.buffer._format import FRAME_LEN, HEADER_LEN
from edge.cli import edge
from edge.tests.support.buffer import reading


def make(directory: Path, n: int = 50) -> BufferConfig:
    cfg = BufferConfig(directory, commit_readings=10, segment_bytes=4096)
    with SegmentLog.open(cfg) as log:
        log.append_many(reading(i) for i in range(1, n + 1))
        log.commit()
        log.ack([(1, 10)])  # the first block
    return cfg


def test_dump_json_lines(tmp_path: Path) -> None:
    make(tmp_path / "b")
    r = CliRunner().invoke(edge, ["buffer", "dump", "--dir", str(tmp_path / "b"), "--json"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert [row["seq"] for row in rows] == list(range(11, 51))  # acknowledged ones are gone
    first = rows[0]
    assert set(first) == {"seq", "sensor", "quantity", "unit", "ts_ms", "value"}
    want = reading(11)
    assert (first["sensor"], first["quantity"], first["unit"], first["ts_ms"], first["value"]) == (
        want.sensor,
        want.quantity,
        want.unit,
        want.ts_ms,
        want.value,
    )
    r = CliRunner().invoke(edge, ["buffer", "dump", "--dir", str(tmp_path / "b")])
    assert r.exit_code == 0 and len(r.output.splitlines()) == 40


def test_verify_exit_codes(tmp_path: Path) -> None:
    cfg = make(tmp_path / "b", 400)
    r = CliRunner().invoke(edge, ["buffer", "verify", "--dir", str(tmp_path / "b")])
    assert r.exit_code == 0 and r.output.startswith("sound"), r.output
    victim = sorted(Path(cfg.segments_dir).iterdir())[0]
    data = bytearray(victim.read_bytes())
    first_len = int.from_bytes(data[HEADER_LEN + 7 : HEADER_LEN + 11], "big")
    data[HEADER_LEN + FRAME_LEN + first_len + FRAME_LEN + 10] ^= 1  # inside the second block
    victim.write_bytes(bytes(data))
    r = CliRunner().invoke(edge, ["buffer", "verify", "--dir", str(tmp_path / "b")])
    assert r.exit_code == 1
    assert "PROBLEM" in r.output and victim.name in r.output
    r = CliRunner().invoke(edge, ["buffer", "verify", "--dir", str(tmp_path / "nothing")])
    assert r.exit_code == 1


def test_stats(tmp_path: Path) -> None:
    make(tmp_path / "b")
    r = CliRunner().invoke(edge, ["buffer", "stats", "--dir", str(tmp_path / "b"), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["depth"] == 40 and d["durable_seq"] == 50 and d["dropped_total"] == 0
    assert d["bytes"] > 0 and d["oldest_ts_ms"] == reading(11).ts_ms and d["oldest_age_s"] > 0
    r = CliRunner().invoke(edge, ["buffer", "stats", "--dir", str(tmp_path / "b")])
    assert r.exit_code == 0 and "depth" in r.output
    r = CliRunner().invoke(edge, ["buffer", "stats", "--dir", str(tmp_path / "none")])
    assert r.exit_code != 0


def test_stats_take_the_paths_and_settings_of_the_configuration(tmp_path: Path) -> None:
    """The daemon's buffer, read as the technician reads it (issue 9: `stats --dir` read the
    wrong sequence file and showed the default quota instead of the configured one)."""
    from edge.config import load_config
    from edge.daemon._wiring import buffer_config

    data = tmp_path / "data"
    config = tmp_path / "edge.toml"
    config.write_text(
        f'[gateway]\nid = "gw-1"\ndata_dir = "{data}"\n[buffer]\nquota = "32 MiB"\n'
        'policy = "refuse_new"\n'
    )
    cfg = buffer_config(load_config(config))  # what the daemon opens
    Path(cfg.path).mkdir(parents=True)
    with SegmentLog.open(cfg) as log:
        log.append_many(reading(i) for i in range(1, 1065))
        log.commit()
        mark = log.stats().next_seq  # type: ignore[attr-defined]
    assert (
        Path(cfg.seq_file) == data / "buffer-seq.cbor" and not (data / "buffer/seq.cbor").exists()
    )
    for args in (
        ["--config", str(config)],
        ["--config", str(config), "--dir", str(data / "buffer")],
    ):
        r = CliRunner().invoke(edge, ["buffer", "stats", "--json", *args])
        assert r.exit_code == 0, r.output
        d = json.loads(r.output)
        assert (d["depth"], d["durable_seq"], d["next_seq"]) == (1064, 1064, mark)
        assert (d["quota_bytes"], d["policy"], d["settings"]) == (
            32 << 20,
            "refuse_new",
            "configuration",
        )
        assert d["seq_file"] == str(data / "buffer-seq.cbor")
        assert d["recovery_problems"] == []
    # --dir alone: the daemon's sequence file beside it is found; the settings are said to
    # be the defaults
    r = CliRunner().invoke(edge, ["buffer", "stats", "--dir", str(data / "buffer")])
    assert r.exit_code == 0, r.output
    assert "1,064 durable, next 1,065" in r.output  # closed cleanly: the exact mark
    assert "default settings shown (--config FILE)" in r.output
    r = CliRunner().invoke(edge, ["buffer", "verify", "--config", str(config)])
    assert r.exit_code == 0 and "sound: 1 segments" in r.output, r.output
