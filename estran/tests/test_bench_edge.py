"""`estran bench edge`: its command-line contract (the figures are the benchmark's)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from estran.bench_edge import _sim_specs, _slope_per_hour
from estran.cli import cli


def test_bench_edge_json_contract_on_the_synthetic_source() -> None:
    args = ["bench", "edge", "--json", "--source", "synthetic", "--sensors", "5", "--rate", "50"]
    r = CliRunner().invoke(cli, [*args, "--soak", "2", "--warmup", "0.5", "--interval", "0.5"])
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


def test_slope_and_layout() -> None:
    assert _slope_per_hour([(0, 30.0), (1800, 30.5), (3600, 31.0)]) == 1.0
    assert _slope_per_hour([(0, 30.0), (1, 30.0)]) is None
    specs, soil = _sim_specs(50)
    assert soil == 40 and len(specs) == 2 + 8 + 4
    assert specs[-1].endswith("soil@10")
