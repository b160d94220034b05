"""The MQTT version fallback policy (protocols.mqtt_versions), shared by the gateway's uplink
and the hub's clients: which versions, in which order, with which time limit, and which
failures mean "try the next one"."""

from __future__ import annotations

import pytest

from protocols.mqtt_versions import (
    CONNACK,
    MQTT_5,
    MQTT_311,
    NO_ANSWER,
    TLS,
    Attempt,
    VersionFallback,
)


def versions(fallback: VersionFallback, timeout_s: float = 10.0) -> list[tuple[int, float, bool]]:
    return [(a.version, a.timeout_s, a.last) for a in fallback.attempts(timeout_s)]


def test_auto_tries_5_as_a_short_probe_then_311_with_the_whole_timeout() -> None:
    fallback = VersionFallback("auto")
    assert versions(fallback) == [(MQTT_5, 3.0, False), (MQTT_311, 10.0, True)]
    assert versions(fallback, 1.0) == [(MQTT_5, 1.0, False), (MQTT_311, 1.0, True)]
    assert fallback.attempts(10.0)[0].probe and not fallback.attempts(10.0)[1].probe


@pytest.mark.parametrize(("preference", "version"), [("5", MQTT_5), ("3.1.1", MQTT_311)])
def test_a_fixed_version_is_tried_alone_and_its_failures_are_final(
    preference: str, version: int
) -> None:
    fallback = VersionFallback(preference)
    (attempt,) = fallback.attempts(10.0)
    assert attempt == Attempt(version, 10.0, True)
    for failure, code in ((CONNACK, 1), (CONNACK, 132), (NO_ANSWER, None), (TLS, None)):
        assert fallback.failed(attempt, failure, code) is False


@pytest.mark.parametrize("code", [1, 132])
def test_a_refused_version_falls_back_and_is_remembered(code: int) -> None:
    fallback = VersionFallback("auto")
    first, second = fallback.attempts(10.0)
    assert fallback.failed(first, CONNACK, code) is True
    assert fallback.known == MQTT_311  # the broker said so
    fallback.accepted(second)
    assert versions(fallback) == [(MQTT_311, 10.0, True)]  # no probe on the next connection


@pytest.mark.parametrize("code", [4, 5, 134, 135, 137])  # bad credentials, not authorised, busy
def test_other_refusals_do_not_fall_back(code: int) -> None:
    fallback = VersionFallback("auto")
    first, _ = fallback.attempts(10.0)
    assert fallback.failed(first, CONNACK, code) is False
    assert fallback.known is None


def test_silence_falls_back_this_time_only() -> None:
    fallback = VersionFallback("auto")
    first, second = fallback.attempts(10.0)
    assert fallback.failed(first, NO_ANSWER) is True
    fallback.accepted(second)  # reached after a silence: not learnt
    assert fallback.known is None
    assert [v for v, _, _ in versions(fallback)] == [MQTT_5, MQTT_311]  # asked again


def test_a_tls_refusal_never_falls_back() -> None:
    fallback = VersionFallback("auto")
    first, _ = fallback.attempts(10.0)
    assert fallback.failed(first, TLS) is False


def test_an_accepted_probe_is_remembered() -> None:
    fallback = VersionFallback("auto")
    first, _ = fallback.attempts(10.0)
    fallback.accepted(first)
    assert fallback.known == MQTT_5
    assert versions(fallback) == [(MQTT_5, 10.0, True)]


def test_a_silence_is_forgotten_on_the_next_connection() -> None:
    fallback = VersionFallback("auto")
    first, _ = fallback.attempts(10.0)
    fallback.failed(first, NO_ANSWER)
    first, _ = fallback.attempts(10.0)  # next connection: the broker answers now
    fallback.accepted(first)
    assert fallback.known == MQTT_5


def test_misuse_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"auto, 5 or 3\.1\.1"):
        VersionFallback("4")
    fallback = VersionFallback()
    with pytest.raises(ValueError, match="unknown failure"):
        fallback.failed(fallback.attempts(1.0)[0], "timeout")
