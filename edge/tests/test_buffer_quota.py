"""The quota with each policy, and the age limit: bounded, explicit, and every reading that
is dropped is counted per sensor (never silent)."""

from __future__ import annotations

from collections import Counter

import pytest

from edge.buffer import BufferConfig, BufferFull, SegmentLog
from edge.tests.support.buffer import FakeClock, exact, reading
from edge.tests.support.memfs import MemoryFileLayer

QUOTA = 64 * 1024


def open_log(layer: MemoryFileLayer, **kw: object) -> SegmentLog:
    cfg = BufferConfig("/buf", quota_bytes=QUOTA, segment_bytes=8192, commit_readings=50, **kw)  # type: ignore[arg-type]
    return SegmentLog.open(cfg, layer=layer, clock=FakeClock(), wall_clock=lambda: 1_764_600_000.0)


def segment_bytes(layer: MemoryFileLayer) -> int:
    return sum(len(f.data) for p, f in layer.files.items() if "/segments/" in p)


def test_drop_oldest_keeps_the_newest_and_counts_every_drop_per_sensor() -> None:
    layer = MemoryFileLayer()
    log = open_log(layer)
    n = 20_000
    log.append_many(reading(i) for i in range(1, n + 1))
    log.commit()
    assert segment_bytes(layer) <= QUOTA
    kept = dict(log.iter_readings())
    assert kept, "something is kept"
    first_kept = min(kept)
    assert sorted(kept) == list(range(first_kept, n + 1))  # the newest, contiguous
    assert all(exact(r, reading(s)) for s, r in kept.items())
    dropped = Counter(reading(s).sensor for s in range(1, first_kept))
    st = log.stats()
    assert st.dropped_by_sensor == dict(dropped)
    assert st.dropped_total == first_kept - 1
    log.close()
    log = open_log(layer)  # the counts are persisted
    assert log.stats().dropped_by_sensor == dict(dropped)


def test_drop_oldest_counts_only_what_the_hub_had_not_acknowledged() -> None:
    layer = MemoryFileLayer()
    log = open_log(layer)
    log.append_many(reading(i) for i in range(1, 3001))
    log.commit()
    first = log._segments[0]
    log.ack([(first.lo, first.lo + 9)])  # ten readings of the oldest segment acknowledged
    log.append_many(reading(i) for i in range(3001, 20_001))
    log.commit()
    kept = dict(log.iter_readings(include_acked=True))
    first_kept = min(kept)
    st = log.stats()
    assert st.dropped_total == first_kept - 1 - 10


def test_refuse_new_refuses_and_keeps_what_it_took() -> None:
    layer = MemoryFileLayer()
    log = open_log(layer, policy="refuse_new")
    taken = 0
    with pytest.raises(BufferFull) as e:
        for i in range(1, 100_000):
            log.append(reading(i))
            taken = i
    log.commit()
    assert segment_bytes(layer) <= QUOTA
    kept = dict(log.iter_readings())
    assert sorted(kept) == list(range(1, taken + 1))  # nothing dropped, nothing missing
    assert log.stats().dropped_total == 0
    # append_many says how many it took before refusing (a few: sealing compacted)
    with pytest.raises(BufferFull) as e:
        log.append_many(reading(i) for i in range(taken + 1, taken + 2001))
    more = e.value.accepted
    assert more < 2000
    log.commit()
    assert segment_bytes(layer) <= QUOTA
    assert [s for s, _ in log.iter_readings()] == list(range(1, taken + more + 1))
    # the hub acknowledges: room again
    log.ack([(1, taken + more)])
    assert log.append(reading(7)) == taken + more + 1


def test_refuse_new_append_many_reports_a_partial_take() -> None:
    layer = MemoryFileLayer()
    log = open_log(layer, policy="refuse_new")
    with pytest.raises(BufferFull) as e:
        log.append_many(reading(i) for i in range(1, 100_000))
    log.commit()
    assert e.value.accepted > 0
    assert [s for s, _ in log.iter_readings()] == list(range(1, e.value.accepted + 1))


def test_the_age_limit_drops_old_segments_and_counts_them() -> None:
    layer = MemoryFileLayer()
    now = 1_764_600_000.0
    # readings from reading(i) are stamped T0 + i * 250 ms, T0 = 1_764_547_200 s
    cfg = BufferConfig(
        "/buf", segment_bytes=4096, commit_readings=50, max_age_s=now - 1_764_547_200 - 100
    )
    clock = FakeClock()
    log = SegmentLog.open(cfg, layer=layer, clock=clock, wall_clock=lambda: now)
    log.append_many(reading(i) for i in range(1, 2001))  # 0 .. 500 s after T0
    log.commit()
    clock.advance(2)
    log.append(reading(2001))
    log.commit()  # the age check runs at most once a second, on commit
    kept = dict(log.iter_readings())
    st = log.stats()
    assert st.dropped_total > 0
    assert min(kept) == st.dropped_total + 1
    # the limit is T0 + 100 s: only whole segments of readings older than that (i < 400) go
    assert st.dropped_total < 400


def test_a_quota_smaller_than_a_segment_still_works() -> None:
    layer = MemoryFileLayer()
    cfg = BufferConfig("/buf", quota_bytes=64 * 1024, segment_bytes=1 << 20, commit_readings=200)
    log = SegmentLog.open(cfg, layer=layer, clock=FakeClock())
    log.append_many(reading(i) for i in range(1, 50_001))
    log.commit()
    assert segment_bytes(layer) <= 64 * 1024
    assert log.stats().dropped_total + log.stats().depth == 50_000
