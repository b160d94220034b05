"""The soak's judge (estran.rig._soak.SoakSeries): what it takes for a leak, what for a
warm-up. Memory in MB-sized numbers, sampled every 10 s for an hour."""

from __future__ import annotations

import math
from collections.abc import Sequence

from estran.rig._soak import SoakSeries

HOUR = 3600
MB = 1_000_000


def judged(values: Sequence[tuple[float, float]]) -> dict[str, object]:
    series = SoakSeries("hub.anon", "bytes")
    for t, v in values:
        series.add(t, v)
    return series.summary()


def wobble(t: float) -> float:
    """A deterministic noise of ±20 kB."""
    return 20_000 * math.sin(t / 37.0)


def test_a_leak_at_a_steady_rate_is_not_flat() -> None:
    out = judged([(t, 57 * MB + 1.0 * MB * t / HOUR + wobble(t)) for t in range(0, HOUR, 10)])
    assert out["flat"] is False, out
    assert abs(float(out["late_slope_per_hour"]) - 1.0 * MB) < 0.05 * MB  # type: ignore[arg-type]
    assert "whole run and second half" in str(out["reason"])


def test_a_warm_up_that_levels_off_is_flat_and_its_whole_slope_reported() -> None:
    # +1.5 MB, most of it in the first ten minutes, then nothing (allocators' pages)
    curve = [
        (t, 57 * MB + 1.5 * MB * (1 - math.exp(-t / 600)) + wobble(t)) for t in range(0, HOUR, 10)
    ]
    out = judged(curve)
    assert out["flat"] is True, out
    assert float(out["slope_per_hour"]) > 0.5 * MB  # type: ignore[arg-type]


def test_a_step_at_the_end_of_a_still_run_is_flat() -> None:
    """One allocation of 300 kB in the last minute: the second half's slope alone would
    make it a leak of +1.2 MB over the hour; the whole run's says what it is."""
    curve = [
        (t, 57 * MB + (300_000 if t > HOUR - 60 else 0) + wobble(t)) for t in range(0, HOUR, 10)
    ]
    assert judged(curve)["flat"] is True


def test_a_leak_that_starts_half_way_is_not_flat() -> None:
    curve = [
        (t, 57 * MB + max(0.0, t - HOUR / 2) * 1.5 * MB / HOUR + wobble(t))
        for t in range(0, HOUR, 10)
    ]
    assert judged(curve)["flat"] is False
