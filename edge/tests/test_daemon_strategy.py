"""Report strategies: every sample, on change beyond a deadband with a heartbeat, and
periodic aggregates over clock-aligned windows."""

from __future__ import annotations

from edge.config import ReportStrategy
from edge.daemon import AggregateReporter, ChangeReporter, EveryReporter, make_reporter
from protocols.reading import FLAG_ALARM, FLAG_ESTIMATED, Reading

S = "soil-1"


def r(
    value: object, ts: int, quantity: str = "moisture", unit: str | None = "%", flags: int = 0
) -> Reading:
    return Reading(S, quantity, unit, value, ts, flags)


def values(readings: list[Reading]) -> list[tuple[str, object, int]]:
    return [(x.quantity, x.value, x.ts_ms) for x in readings]


def test_every_sample_is_reported() -> None:
    reporter = make_reporter(ReportStrategy())
    assert isinstance(reporter, EveryReporter)
    assert reporter.offer(r(1, 0)) == [r(1, 0)]
    assert reporter.offer(r(1, 1)) == [r(1, 1)]
    assert reporter.flush(None) == []


def test_change_reports_beyond_the_deadband_only() -> None:
    reporter = ChangeReporter(ReportStrategy("change", deadband=1.0, heartbeat_s=3600))
    out = []
    for ts, value in enumerate([20.0, 20.5, 21.0, 21.01, 20.4, 19.9, 19.9]):
        out += reporter.offer(r(value, ts * 1000))
    # 20.0 first; 20.5 and 21.0 within 1.0 of 20.0; 21.01 beyond; 20.4 within; 19.9 beyond 21.01
    assert [x.value for x in out] == [20.0, 21.01, 19.9]


def test_change_without_deadband_reports_any_change() -> None:
    reporter = ChangeReporter(ReportStrategy("change", heartbeat_s=3600))
    out = []
    for ts, value in enumerate([1, 1, 2, 2, 1]):
        out += reporter.offer(r(value, ts))
    assert [x.value for x in out] == [1, 2, 1]


def test_change_deadband_per_quantity() -> None:
    strategy = ReportStrategy(
        "change", deadband=10, deadbands={"temperature": 0.2}, heartbeat_s=3600
    )
    reporter = ChangeReporter(strategy)
    out = reporter.offer(r(20.0, 0, "temperature", "Cel")) + reporter.offer(r(5, 0, "moisture"))
    out += reporter.offer(r(20.3, 1, "temperature", "Cel")) + reporter.offer(r(9, 1, "moisture"))
    assert values(out) == [("temperature", 20.0, 0), ("moisture", 5, 0), ("temperature", 20.3, 1)]


def test_change_heartbeat_reports_a_steady_value() -> None:
    reporter = ChangeReporter(ReportStrategy("change", deadband=5, heartbeat_s=60))
    out = []
    for ts in range(0, 200_000, 10_000):  # a sample every 10 s, value steady
        out += reporter.offer(r(42, ts))
    assert [x.ts_ms for x in out] == [0, 60_000, 120_000, 180_000]


def test_change_strings_booleans_units_alarms_and_clock_jumps() -> None:
    reporter = ChangeReporter(ReportStrategy("change", deadband=100, heartbeat_s=3600))
    assert reporter.offer(r("ok", 0, "status", None))
    assert not reporter.offer(r("ok", 1, "status", None))
    assert reporter.offer(r("fault", 2, "status", None))
    assert reporter.offer(r(True, 0, "occupied", None))
    assert reporter.offer(r(False, 1, "occupied", None))  # booleans are not numbers here
    assert reporter.offer(r(1.0, 0, "level", "m"))
    assert reporter.offer(r(1.0, 1, "level", "cm"))  # unit changed
    assert reporter.offer(r(1.0, 2, "level", "cm", FLAG_ALARM))  # alarm: always
    assert not reporter.offer(r(1.0, 3, "level", "cm"))
    assert reporter.offer(r(1.0, 1, "level", "cm"))  # the clock went back


def agg(
    window_s: float = 60, aggregates: tuple[str, ...] = ("mean", "min", "max", "last")
) -> AggregateReporter:
    return AggregateReporter(ReportStrategy("aggregate", window_s=window_s, aggregates=aggregates))  # type: ignore[arg-type]


def test_aggregate_windows_are_aligned_on_the_clock() -> None:
    reporter = agg(60)
    out = []
    for ts, value in [(59_000, 1), (60_000, 10), (61_000, 20), (119_999, 30), (120_000, 5)]:
        out += reporter.offer(r(value, ts))
    # [0, 60 s): one sample; [60, 120 s): 10, 20, 30; [120 s, ...) open
    assert values(out) == [
        ("moisture_mean", 1.0, 0),
        ("moisture_min", 1, 0),
        ("moisture_max", 1, 0),
        ("moisture", 1, 59_000),
        ("moisture_mean", 20.0, 60_000),
        ("moisture_min", 10, 60_000),
        ("moisture_max", 30, 60_000),
        ("moisture", 30, 119_999),
    ]
    assert all(x.flags & FLAG_ESTIMATED for x in out if x.quantity != "moisture")
    assert all(x.sensor == S and x.unit == "%" for x in out)
    assert not [x for x in out if x.quantity == "moisture" and x.flags & FLAG_ESTIMATED]


def test_aggregate_windows_close_on_time_and_on_stop() -> None:
    reporter = agg(10, ("mean", "count"))
    assert reporter.offer(r(1.5, 1_000)) == []
    assert reporter.offer(r(2.25, 2_000)) == []
    assert reporter.flush(9_999) == []
    assert values(reporter.flush(10_000)) == [("moisture_mean", 1.875, 0), ("moisture_count", 2, 0)]
    assert reporter.flush(20_000) == []
    reporter.offer(r(7, 25_000))
    assert values(reporter.flush(None)) == [
        ("moisture_mean", 7.0, 20_000),
        ("moisture_count", 1, 20_000),
    ]


def test_aggregate_mean_is_rounded_to_the_inputs_precision() -> None:
    reporter = agg(60, ("mean",))
    for ts, value in enumerate([20.1, 20.2, 20.2]):
        reporter.offer(r(value, ts))
    (mean,) = reporter.flush(None)
    assert mean.value == 20.167  # inputs have 1 decimal: mean kept to 3, no float noise


def test_aggregate_of_strings_keeps_the_last() -> None:
    reporter = agg(60, ("mean", "max"))
    reporter.offer(r("open", 0, "valve", None))
    reporter.offer(r("closed", 1, "valve", None))
    assert values(reporter.flush(None)) == [("valve", "closed", 1)]


def test_aggregate_alarm_goes_through_at_once() -> None:
    reporter = agg(60, ("max", "last"))
    assert values(reporter.offer(r(99, 5, flags=FLAG_ALARM))) == [("moisture", 99, 5)]
    reporter.offer(r(3, 6))
    out = reporter.flush(None)
    assert values(out) == [("moisture_max", 99, 0), ("moisture", 3, 6)]
    assert not out[0].flags & FLAG_ALARM


def test_aggregate_quantities_have_their_own_windows() -> None:
    reporter = agg(60, ("max",))
    reporter.offer(r(1, 0, "a"))
    reporter.offer(r(2, 0, "b"))
    out = reporter.offer(r(3, 60_000, "a"))
    assert values(out) == [("a_max", 1, 0)]
    assert values(reporter.flush(None)) == [("b_max", 2, 0), ("a_max", 3, 60_000)]
