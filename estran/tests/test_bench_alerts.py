"""`estran bench alerts`: its command-line contract (the figures are the benchmark's)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from estran.bench_sync import load_workload
from estran.cli import cli


def test_bench_alerts_json_contract_on_two_hours() -> None:
    try:
        load_workload()
    except Exception as e:
        pytest.skip(f"reference workload not found: {e}")
    r = CliRunner().invoke(cli, ["bench", "alerts", "--json", "--hours", "2"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout.splitlines()[-1])
    assert d["hours"] == 2 and d["rules"] == 6
    assert 10_000 < d["readings"] < 20_000  # about 7,700 readings an hour
    assert 0 < d["readings_evaluated"] < d["readings"]
    for key in ("anchor_decode_s", "anchor_commit_sqlite_s", "evaluate_s", "overhead_vs_ingest"):
        assert isinstance(d[key], int | float) and d[key] > 0, key
    assert set(d["alerts_fired"]) <= {"berths"}  # the workload's berths change; nothing else
