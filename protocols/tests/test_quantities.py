"""The configuration grammar for durations and sizes shared by the hub and the gateway."""

import pytest

from protocols.quantities import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30.0),
        ("30s", 30.0),
        (" 500 ms ", 0.5),
        ("5min", 300.0),
        ("1.5 h", 5400.0),
        ("7d", 604800.0),
        ("2 sec", 2.0),
        ("3m", 180.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("268435456", 268435456),
        ("256 MiB", 256 << 20),
        ("1 GB", 10**9),
        ("1.5 KiB", 1536),
        ("2kB", 2000),
        ("3 TiB", 3 << 40),
        ("7B", 7),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "s", "-1s", "1 week", "1e3", "30 s s", "1,5h"])
def test_not_a_duration(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize("text", ["", "MiB", "-1 MiB", "1 mb", "1 Mib", "1e9", "1 GB x"])
def test_not_a_size(text: str) -> None:
    assert parse_size(text) is None
