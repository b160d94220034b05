"""`estran bench buffer`: its command-line contract (the figures are the benchmark's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from estran.bench_buffer import bench_dir
from estran.cli import cli


def test_bench_buffer_json_contract(tmp_path: Path) -> None:
    if bench_dir() is None:  # as the vector tests: a plain clone has no ../shared
        pytest.skip("the reference workload (../shared/bench/workload.py) is not here")
    args = ["bench", "buffer", "--readings", "3000", "--no-anchor", "--recover-mb", "8", "--json"]
    r = CliRunner().invoke(cli, [*args, "--dir", str(tmp_path / "b"), "--report-durable"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "durable 2000"
    assert lines[-2] == "durable 3000"
    d = json.loads(lines[-1])
    assert d["readings"] == 3000 and d["lost"] == 0
    for key in ("append_per_s", "drain_per_s", "bytes_per_reading"):
        assert isinstance(d[key], int | float) and d[key] > 0
    assert d["anchors"] == [] and d["anchor_skipped"] == "--no-anchor"
    assert d["recover_s"] >= 0 and d["recover_bytes"] >= 8 << 20
