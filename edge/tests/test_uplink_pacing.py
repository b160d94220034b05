"""Token bucket, reconnect backoff, session counter and config checks of the uplink."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge.uplink import (
    Backoff,
    SessionCounter,
    TokenBucket,
    UplinkConfig,
    UplinkConfigError,
    publish_wire_size,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket_rate_and_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1000, burst=500, clock=clock)
    assert bucket.take(500)  # starts full
    assert not bucket.take(1)
    assert bucket.delay(100) == pytest.approx(0.1)
    clock.t += 0.1
    assert bucket.take(100)
    clock.t += 10  # never more than the burst saved up
    assert bucket.take(500) and not bucket.take(1)


def test_token_bucket_lets_big_requests_through_at_the_average_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1000, burst=500, clock=clock)
    assert bucket.take(2000)  # larger than the burst: granted once full, leaves a debt
    assert bucket.delay(2000) == pytest.approx(2.0)  # 1500 of debt + 500 to refill
    clock.t += 2.0
    assert bucket.take(2000)


def test_unlimited_bucket() -> None:
    bucket = TokenBucket(rate=0, burst=1)
    assert all(bucket.take(10**9) for _ in range(3))
    assert bucket.delay(10**9) == 0


def test_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    b = Backoff(0.5, 8.0, random.Random(1))
    delays = [b.next() for _ in range(8)]
    bases = [0.5, 1, 2, 4, 8, 8, 8, 8]
    assert all(base / 2 <= d <= base for d, base in zip(delays, bases, strict=True))
    assert len(set(delays)) == len(delays)  # jittered
    b.reset()
    assert 0.25 <= b.next() <= 0.5


def test_session_counter_only_grows_even_when_wiped(tmp_path: Path) -> None:
    counter = SessionCounter(tmp_path)
    first = counter.next()
    assert first >= 1_700_000_000  # a new gateway starts above the wall clock seconds
    assert counter.next() == first + 1
    assert SessionCounter(tmp_path).current() == first + 1
    (tmp_path / SessionCounter.FILE).write_text("garbage")
    assert SessionCounter(tmp_path).next() >= first  # wiped: back above the clock


def test_config_is_checked(tmp_path: Path) -> None:
    good = UplinkConfig("gw-1", "mqtt://127.0.0.1:1883", tmp_path)
    good.validate()
    for bad in [
        UplinkConfig("gw/1", "mqtt://h", tmp_path),
        UplinkConfig("gw-1", "http://h", tmp_path),
        UplinkConfig("gw-1", "mqtt://h", tmp_path, window=1),
        UplinkConfig("gw-1", "mqtt://h", tmp_path, batch_min=10, batch_initial=5),
        UplinkConfig("gw-1", "mqtt://h", tmp_path, batch_max=10**7),
    ]:
        with pytest.raises(UplinkConfigError):
            bad.validate()


def test_publish_wire_size_counts_mqtt_framing() -> None:
    # PUBLISH: 1 header byte, 1 length byte, 2 + 5 topic, 2 packet id, 3 payload; PUBACK: 4
    assert publish_wire_size("a/b/c", 3, v5=False) == 1 + 1 + 7 + 2 + 3 + 4
    assert publish_wire_size("a/b/c", 3, v5=True) == 1 + 1 + 7 + 2 + 1 + 3 + 4
    assert publish_wire_size("t", 200, v5=False) == 1 + 2 + 3 + 2 + 200 + 4
