"""Soak: the demo's territory (hub, three gateway daemons on simulated serial and BLE sensors)
left running, the memory and open files of each process and the bytes of each gateway's
buffer sampled; each series must be flat within noise (least-squares slope after a warm-up,
estran.rig.swarm.Series): no leak of memory, descriptors or buffer space.

A few minutes in `make test`; the hour and the day are `long` (documented in docs/hil.md,
figures in docs/benchmarks.md): `pytest hil-tests/test_soak.py -m long -k hour`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from estran.bench_soak import run_soak


def judge(figures: dict[str, object]) -> None:
    series = figures["series"]
    assert isinstance(series, dict)
    names = set(series)
    assert "hub.rss" in names and "hub.fds" in names
    assert sum(n.endswith(".bytes") for n in names) == 3, names  # three gateways' buffers
    assert sum(n.startswith("gw-") and n.endswith(".rss") for n in names) == 3, names
    leaking = {n: s for n, s in series.items() if not s["flat"]}
    assert not leaking, json.dumps(leaking, indent=1)


def publish(name: str, figures: dict[str, object], tmp_path: Path) -> None:
    out = Path(os.environ.get("ESTRAN_FIGURES", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(figures, indent=2))
    print(f"\n{name}: {json.dumps(figures)}")


@pytest.mark.needs("serial.tic", "ble", "hub", "gateway")
async def test_soak_minutes(tmp_path: Path) -> None:
    figures = await run_soak(tmp_path / "territory", 90.0, period_s=2.0, warmup_s=30.0)
    publish("soak-minutes", figures, tmp_path)
    judge(figures)


@pytest.mark.long
@pytest.mark.needs("serial.tic", "ble", "hub", "gateway")
async def test_soak_hour(tmp_path: Path) -> None:
    figures = await run_soak(tmp_path / "territory", 3600.0, period_s=10.0, warmup_s=120.0)
    publish("soak-hour", figures, tmp_path)
    judge(figures)


@pytest.mark.long
@pytest.mark.needs("serial.tic", "ble", "hub", "gateway")
async def test_soak_day(tmp_path: Path) -> None:
    figures = await run_soak(tmp_path / "territory", 86400.0, period_s=60.0, warmup_s=600.0)
    publish("soak-day", figures, tmp_path)
    judge(figures)
