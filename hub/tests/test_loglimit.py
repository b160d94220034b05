"""LogLimiter: what a peer can trigger (rejected payloads, refused connections) cannot flood
the log: `burst` warnings a period, then one summary line when the next period starts."""

from __future__ import annotations

import logging

import pytest

from hub import _loglimit
from hub._loglimit import LogLimiter


def test_a_burst_then_a_summary(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    monkeypatch.setattr(_loglimit.time, "monotonic", lambda: now[0])
    limiter = LogLimiter(logging.getLogger("estran.test.loglimit"), "rejected payloads")
    with caplog.at_level(logging.WARNING, logger="estran.test.loglimit"):
        for i in range(12):
            limiter.warn("bad payload %d", i)
        assert [r.getMessage() for r in caplog.records] == [f"bad payload {i}" for i in range(5)]
        caplog.clear()
        now[0] += 10.5  # the next period
        limiter.warn("bad payload %d", 12)
    assert [r.getMessage() for r in caplog.records] == [
        "7 more rejected payloads not logged",
        "bad payload 12",
    ]
