"""`estran bench edge`: its command-line contract (the figures are the benchmark's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from estran.bench_edge import _sim_specs, _slope_per_hour
from estran.cli import cli


def test_bench_edge_json_contract_on_the_synthetic_source() -> None:
    args = ["bench", "edge", "--json", "--source", "synthetic", "--sensors", "5", "--rate", "50"]
    r = CliRunner().invoke(
        cli, [*args, "--soak", "2", "--warmup", "0.5", "--interval", "0.5", "--flash-soak", "0"]
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout.splitlines()[-1])
    assert d["source"].startswith("synthetic")
    assert d["daemon_exit"] == 0 and d["pass"]["clean_exit"]
    assert 40 <= d["rate_measured"] <= 60 and d["readings"] == d["stored"] > 0
    for key in ("rss_mb", "cpu_pct", "cpu_pct_at_100_per_s", "commit_mean_ms"):
        assert isinstance(d[key], int | float) and d[key] >= 0, key
    assert d["anchor"]["bare_python_rss_mb"] < d["rss_mb"]
    assert d["targets"] == {
        "rss_mb": 45.0,
        "cpu_pct_at_100_per_s": 3.0,
        "rss_slope_mb_per_h": "about 0 (report)",
    }


def test_bench_edge_flash_contract(tmp_path: Path) -> None:
    """The flash figures: default and anchor side by side at 1, 10, 100/s (a short soak:
    the contract, not the figures)."""
    args = ["bench", "edge", "--json", "--source", "synthetic", "--sensors", "2", "--rate", "5"]
    flash = ["--flash-soak", "3", "--flash-warmup", "1", "--flash-dir", str(tmp_path)]
    r = CliRunner().invoke(cli, [*args, "--soak", "1", "--warmup", "0", *flash])
    assert r.exit_code == 0, r.output
    flash = json.loads(r.stdout.splitlines()[-1])["flash"]
    assert flash["anchor"]["loss_window_s"] == 1.0 and flash["default"]["loss_window_s"] == 10.0
    for policy in ("anchor", "default"):
        for rate in ("1_per_s", "10_per_s", "100_per_s"):
            run = flash[policy][rate]
            assert run["readings"] > 0 and run["flash_write_bytes"] is not None, (policy, rate)
    assert flash["targets_bytes_per_reading"] == {"1_per_s": 512.0, "10_per_s": 64.0}
    assert set(flash["pass"]) == {"1_per_s", "10_per_s"}


def test_a_tmpfs_directory_is_refused() -> None:
    from estran.bench_flash import file_system, measure_flash

    if file_system(Path("/dev/shm")) != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm here")
    with pytest.raises(RuntimeError, match="tmpfs"):
        measure_flash(1, 0, Path("/dev/shm"))


def test_slope_and_layout() -> None:
    assert _slope_per_hour([(0, 30.0), (1800, 30.5), (3600, 31.0)]) == 1.0
    assert _slope_per_hour([(0, 30.0), (1, 30.0)]) is None
    specs, soil = _sim_specs(50)
    assert soil == 40 and len(specs) == 2 + 8 + 4
    assert specs[-1].endswith("soil@10")
