"""Helpers of the alert tests: batches as ingest commits them, a running engine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from hub.alerts import AlertEngine, AlertService, AlertSettings, Notification, parse_rule
from hub.storage import IngestBatch, SeriesKey, StorageThread, Value, open_storage

T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z (01:00 in Paris)
MIN = 60_000


def batch(
    gateway: str, rows: Sequence[tuple[str, str, str | None, int, Value]], first_seq: int = 1
) -> IngestBatch:
    series: list[SeriesKey] = []
    index: dict[SeriesKey, int] = {}
    series_index: list[int] = []
    for sensor, quantity, unit, _ts, _v in rows:
        key = (sensor, quantity, unit)
        if key not in index:
            index[key] = len(series)
            series.append(key)
        series_index.append(index[key])
    n = len(rows)
    return IngestBatch(
        gateway=gateway,
        session=1,
        batch_no=first_seq,
        historical=False,
        backlog=0,
        ranges=[(first_seq, first_seq + n - 1)],
        series=series,
        series_index=series_index,
        seqs=list(range(first_seq, first_seq + n)),
        ts_ms=[r[3] for r in rows],
        values=[r[4] for r in rows],
        flags=[0] * n,
    )


@contextlib.asynccontextmanager
async def running_engine(
    spec: str,
    tmp_path: Path,
    rules: Sequence[dict[str, object]] = (),
    groups: dict[str, str] | None = None,
    **settings: object,
) -> AsyncIterator[tuple[AlertEngine, list[Notification], AlertService]]:
    """An engine on its own storage (event clock unless told), with `rules` created."""
    storage = open_storage(spec, tmp_path)
    api = open_storage(spec, tmp_path)
    thread = StorageThread(storage, name="alerts-test")
    notes: list[Notification] = []
    opts: dict[str, object] = {"clock": "event", "tick_s": 3600.0}
    opts.update(settings)
    engine = AlertEngine(
        thread,
        AlertSettings(**opts),  # type: ignore[arg-type]
        notify=notes.append,
        gateway_group=None if groups is None else (lambda: groups),
    )
    service = AlertService(api, engine)
    for doc in rules:
        service.store.save_rule(parse_rule(doc), "test", 1, create=True)
    task = asyncio.create_task(engine.run())
    try:
        await asyncio.wait_for(engine.ready.wait(), 10)
        yield engine, notes, service
        await engine.drain()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        engine.save_sync()
        thread.close()
        api.close()
