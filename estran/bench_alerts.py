"""`estran bench alerts`: what evaluating alert rules on ingest costs, beside what ingest
costs anyway, in the same run.

A day of the reference workload (../shared/bench/workload.py, 200 sensors) is cut into data
messages of 4,000 readings as a gateway sends them. Timed, in one process:

- anchor: the hub's decoding of those messages (hub._decode.decode_data) and their commit
  into a fresh SQLite database (Storage.ingest, synchronous=FULL) — the work of ingest;
- the alert engine's evaluation of the same committed batches (AlertEngine.committed, event
  clock, its timers included) with a realistic rule set: bins full for 10 min, soil too dry
  for 30 min, silent soil probes, silent bins, berth occupancy changes, the building meters'
  power (every minute: most of the day's readings).

Readings the rules do not concern cost a dictionary lookup per series per batch; the others
an evaluation each. Timing is a benchmark, never a pass/fail test.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import click

RULES: list[dict[str, Any]] = [
    {
        "id": "bin-full",
        "kind": "threshold",
        "scope": {"kind": "bin"},
        "params": {"quantity": "fill", "op": ">=", "value": 80, "clear": 70, "for": "10 min"},
    },
    {
        "id": "soil-dry",
        "kind": "threshold",
        "scope": {"kind": "soil"},
        "params": {"quantity": "moisture", "op": "<", "value": 5, "for": "30 min"},
    },
    {"id": "soil-silent", "kind": "silence", "scope": {"kind": "soil"}, "params": {"after": "1h"}},
    {"id": "bin-silent", "kind": "silence", "scope": {"kind": "bin"}, "params": {"after": "2h"}},
    {
        "id": "berths",
        "kind": "change",
        "scope": {"kind": "berth"},
        "params": {"quantity": "occupied"},
    },
    {  # every building meter's power, every minute: most readings of the day are evaluated
        "id": "power-high",
        "kind": "threshold",
        "scope": {"kind": "meter"},
        "params": {"quantity": "power", "op": ">", "value": 5000, "clear": 4500, "for": "15 min"},
    },
]


def run(hours: float = 24.0, readings_per_message: int = 4000) -> dict[str, Any]:
    from estran.bench_sync import load_workload
    from hub._decode import decode_data
    from hub.alerts import AlertEngine, AlertSettings, parse_rule
    from hub.storage import StorageThread, open_storage
    from protocols import wire
    from protocols.block import encode_block
    from protocols.reading import Reading

    workload = load_workload()
    day: list[Reading] = []
    for r in workload.readings(10**7):
        if r.ts_ms >= workload.T0_MS + hours * 3_600_000:
            break
        day.append(Reading(r.sensor, r.quantity, r.unit, r.value, r.ts_ms))
    messages: list[bytes] = []
    seq = 1
    for i, start in enumerate(range(0, len(day), readings_per_message), start=1):
        chunk = day[start : start + readings_per_message]
        blocks = [encode_block(seq + k, chunk[k : k + 1000]) for k in range(0, len(chunk), 1000)]
        messages.append(
            wire.encode_data(wire.DataBatch(1, i, seq, seq + len(chunk) - 1, len(chunk), blocks))
        )
        seq += len(chunk)

    with tempfile.TemporaryDirectory(prefix="estran-bench-alerts-") as tmp:
        t0 = time.perf_counter()
        batches = [decode_data("gw-bench", m) for m in messages]
        decode_s = time.perf_counter() - t0
        storage = open_storage("sqlite", Path(tmp))
        t0 = time.perf_counter()
        for b in batches:
            storage.ingest([b], 0)
        commit_s = time.perf_counter() - t0
        storage.close()

        async def evaluate() -> tuple[float, dict[str, int]]:
            thread = StorageThread(open_storage("sqlite", Path(tmp)))
            try:
                engine = AlertEngine(thread, AlertSettings(clock="event"))
                engine.set_rules([parse_rule(doc) for doc in RULES])
                t0 = time.perf_counter()
                for b in batches:
                    engine.committed([b], 0.0)
                seconds = time.perf_counter() - t0
                return seconds, dict(engine.stats.by_rule) | {"observed": engine.stats.observed}
            finally:
                thread.close()

        evaluate_s, fired = asyncio.run(evaluate())
    n = len(day)
    ingest_s = decode_s + commit_s
    return {
        "hours": hours,
        "readings": n,
        "messages": len(messages),
        "rules": len(RULES),
        "anchor_decode_s": round(decode_s, 3),
        "anchor_commit_sqlite_s": round(commit_s, 3),
        "anchor_ingest_readings_per_s": round(n / ingest_s),
        "evaluate_s": round(evaluate_s, 3),
        "evaluate_readings_per_s": round(n / evaluate_s),
        "evaluate_us_per_reading": round(evaluate_s * 1e6 / n, 3),
        "overhead_vs_ingest": round(evaluate_s / ingest_s, 4),
        "readings_evaluated": fired.pop("observed"),
        "alerts_fired": fired,
    }


@click.command("alerts")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--hours",
    type=click.FloatRange(min=0.1, max=24.0),
    default=24.0,
    show_default=True,
    help="Hours of the workload's day.",
)
def bench_alerts(as_json: bool, hours: float) -> None:
    """What alert evaluation on ingest costs, beside decoding and committing the same day."""
    report = run(hours)
    if as_json:
        click.echo(json.dumps(report))
        return
    for key, value in report.items():
        click.echo(f"{key:32} {value}")


__all__ = ["bench_alerts", "run"]
