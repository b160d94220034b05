"""`estran bench decode`: the JSON shape, skip logic and sources of frames (no timing asserts)."""

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from estran import bench_decode
from estran.cli import cli
from protocols.describe import PROTOCOLS

VECTORS = bench_decode.default_vectors()
needs_vectors = pytest.mark.skipif(
    not VECTORS.is_dir(), reason=f"shared vectors not found at {VECTORS} (a plain clone has none)"
)


def run_cli(*args: str) -> dict[str, Any]:
    res = CliRunner().invoke(cli, ["bench", "decode", "--json", "--seconds", "0.01", *args])
    assert res.exit_code == 0, res.output
    last = res.output.strip().splitlines()[-1]
    report: dict[str, Any] = json.loads(last)
    return report


def check_measured(entry: dict[str, Any]) -> None:
    assert entry["frames"] > 0
    assert entry["frames_per_s"] > 0
    assert entry["bytes_per_s"] > 0
    assert entry["payloads"] > 0 and entry["passes"] >= 1
    assert 0 <= entry["valid"] <= entry["frames"]


def check_shape(report: dict[str, Any]) -> None:
    assert set(report) == {"protocols", "anchors"}
    assert set(report["protocols"]) == set(PROTOCOLS)
    for name, entry in report["protocols"].items():
        if "skipped" in entry:
            assert isinstance(entry["skipped"], str) and entry["skipped"], name
        else:
            check_measured(entry)
    (anchor,) = report["anchors"]
    assert anchor["name"] == "bthome-ble"


@needs_vectors
def test_json_shape_on_the_vectors() -> None:
    report = run_cli()
    check_shape(report)
    protocols = report["protocols"]
    # every codec that imports and has a describe() and vectors must have been measured
    for name, module in PROTOCOLS.items():
        samples, _ = bench_decode.samples_for(name, VECTORS)
        try:
            codec = __import__(module, None, None, ["describe"])
        except Exception:
            continue
        if samples and callable(getattr(codec, "describe", None)):
            entry = protocols[name]
            assert "skipped" not in entry or entry["skipped"].startswith("no frame decoded"), name
    # ours exists: the ultrasonic vectors are measured, all of them valid
    ultrasonic = protocols["ultrasonic"]
    check_measured(ultrasonic)
    assert ultrasonic["source"] == "vectors"
    assert ultrasonic["valid"] == ultrasonic["frames"] == ultrasonic["payloads"]
    # the peer is measured on the BTHome payloads, whatever the state of our codec
    anchor = report["anchors"][0]
    assert "skipped" not in anchor, anchor
    assert anchor["frames"] == len(bench_decode.samples_for("bthome", VECTORS)[0]) > 0
    assert anchor["frames_per_s"] > 0
    if "skipped" in protocols["bthome"]:
        assert anchor["ratio"] is None
    else:
        assert anchor["ratio"] == pytest.approx(
            protocols["bthome"]["payloads_per_s"] / anchor["frames_per_s"], rel=1e-2
        )


def test_without_vectors_builders_or_skip(tmp_path: Path) -> None:
    report = run_cli("--vectors", str(tmp_path / "absent"))
    check_shape(report)
    protocols = report["protocols"]
    check_measured(protocols["ultrasonic"])
    assert protocols["ultrasonic"]["source"] == "builders"
    for name in set(PROTOCOLS) - set(bench_decode.BUILDERS):
        assert "no vectors at" in protocols[name]["skipped"], name
    assert "skipped" in report["anchors"][0]


def test_a_codec_that_does_not_import_is_skipped() -> None:
    samples = bench_decode._built_ultrasonic()
    report, usable = bench_decode.bench_protocol(
        "ultrasonic", "protocols.no_such_codec", samples, 0.01
    )
    assert usable == []
    assert report["skipped"].startswith(
        "protocols.no_such_codec not importable: ModuleNotFoundError"
    )
    report, _ = bench_decode.bench_protocol("ultrasonic", "protocols.errors", samples, 0.01)
    assert report == {"skipped": "protocols.errors has no describe() yet"}


def test_a_protocol_without_frames_is_skipped(tmp_path: Path) -> None:
    report = bench_decode.run(tmp_path, 0.01, {"ghost": "protocols.ghost"})
    assert report == {
        "protocols": {"ghost": {"skipped": "no vector loader for ghost"}},
        "anchors": [],
    }
    (tmp_path / "ultrasonic").mkdir()
    (tmp_path / "ultrasonic" / "ultrasonic_vectors.json").write_text("{}")
    report = bench_decode.run(tmp_path, 0.01, {"ultrasonic": "protocols.ultrasonic"})
    assert report["protocols"]["ultrasonic"]["skipped"].startswith("no ultrasonic frames in")


def test_marked_bad_entries_are_left_out(tmp_path: Path) -> None:
    folder = tmp_path / "ultrasonic"
    folder.mkdir()
    doc = {
        "a02yyuw_me007ys_uart": {
            "vectors": [
                {"hex": "FF07A1A7", "checksum_ok": True},
                {"hex": "FF07A1A8", "checksum_ok": False},
            ]
        }
    }
    (folder / "ultrasonic_vectors.json").write_text(json.dumps(doc))
    samples, origin = bench_decode.samples_for("ultrasonic", tmp_path)
    assert origin == "vectors"
    assert [data for data, _ in samples] == [bytes.fromhex("ff07a1a7")]
    report = bench_decode.run(tmp_path, 0.01, {"ultrasonic": "protocols.ultrasonic"})
    entry = report["protocols"]["ultrasonic"]
    check_measured(entry)
    assert (entry["frames"], entry["valid"], entry["bytes_per_s"] > 0) == (1, 1, True)


def test_readable_table_without_json(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli, ["bench", "decode", "--seconds", "0.01", "--vectors", str(tmp_path / "absent")]
    )
    assert res.exit_code == 0, res.output
    assert "ultrasonic" in res.output and "skipped" in res.output
    assert not res.output.lstrip().startswith("{")


def test_seconds_must_be_positive() -> None:
    res = CliRunner().invoke(cli, ["bench", "decode", "--seconds", "0"])
    assert res.exit_code == 2
