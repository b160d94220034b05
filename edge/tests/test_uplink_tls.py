"""The uplink over TLS (mqtts://): an amqtt broker with a TLS listener whose certificate a
test CA signed. The CA enrollment kept (DATA/hub-ca.crt) or `ca_file` is trusted, the host
name is checked, and a refused handshake is counted and reported, never a crash."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from amqtt.broker import Broker

from edge.identity import HUB_CA_FILE
from edge.tests.support.tls import Pki, make_pki
from edge.tests.support.uplink import FakeHub, MemoryLog, readings, running, until
from edge.uplink import BrokerUrl, Uplink, UplinkConfig, UplinkConfigError
from estran.rig import free_port


def test_broker_urls() -> None:
    assert BrokerUrl.parse("mqtts://hub.example") == BrokerUrl("hub.example", 8883, True)
    assert BrokerUrl.parse("mqtts://hub.example:9883") == BrokerUrl("hub.example", 9883, True)
    assert BrokerUrl.parse("ssl://hub.example").tls
    assert BrokerUrl.parse("mqtt://hub.example") == BrokerUrl("hub.example", 1883, False)
    assert BrokerUrl.parse("hub.example:1884") == BrokerUrl("hub.example", 1884, False)
    with pytest.raises(UplinkConfigError, match="mqtts://"):
        BrokerUrl.parse("https://hub.example")


@contextlib.asynccontextmanager
async def tls_broker(pki: Pki) -> AsyncIterator[tuple[int, int]]:
    """(plain port, TLS port) of an anonymous amqtt broker."""
    plain, secure = free_port(), free_port()
    broker = Broker(
        {
            "listeners": {
                "default": {"type": "tcp", "bind": f"127.0.0.1:{plain}"},
                "tls": {
                    "type": "tcp",
                    "bind": f"127.0.0.1:{secure}",
                    "ssl": True,
                    "certfile": str(pki.server_cert),
                    "keyfile": str(pki.server_key),
                },
            },
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        yield plain, secure
    finally:
        await broker.shutdown()


def tls_config(state: Path, url: str, **kw: object) -> UplinkConfig:
    settings: dict[str, object] = {
        "poll_interval_s": 0.02,
        "ack_flush_interval_s": 0.05,
        # the uplink's former own defaults (the file's are 2,000/s, 8,192, 60 s)
        "backlog_rate": 200_000.0,
        "backlog_burst": 65536,
        "state_interval_s": 30.0,
        "ack_timeout_min_s": 0.5,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        "protocol": "3.1.1",
    }
    settings.update(kw)
    return UplinkConfig("gw-1", url, state, **settings)  # type: ignore[arg-type]


async def test_drains_over_tls_with_the_enrolled_ca(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "hub")
    state = tmp_path / "data"
    state.mkdir()
    (state / HUB_CA_FILE).write_bytes(pki.ca_cert.read_bytes())  # estran edge enroll --ca
    log = MemoryLog()
    log.append_many(readings(500))
    log.commit()
    async with tls_broker(pki) as (plain, secure):
        hub = FakeHub(plain)
        uplink = Uplink(log, tls_config(state, f"mqtts://127.0.0.1:{secure}", protocol="auto"))
        async with running((hub.run(), "hub")):
            await asyncio.wait_for(hub.ready.wait(), 10)
            async with running((uplink.run(), "uplink")):
                await until(lambda: log.all_acked())
    assert sorted(hub.stored) == list(range(1, 501))
    assert uplink.stats.tls and uplink.stats.tls_errors == 0 and uplink.stats.last_error is None
    assert uplink.stats.mqtt5 is False  # the probe went over TLS too


async def test_a_given_ca_file_wins(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "hub")
    state = tmp_path / "data"
    state.mkdir()
    (state / HUB_CA_FILE).write_bytes(make_pki(tmp_path / "old").ca_cert.read_bytes())
    async with tls_broker(pki) as (_plain, secure):
        url = f"mqtts://127.0.0.1:{secure}"
        uplink = Uplink(MemoryLog(), tls_config(state, url, ca_file=pki.ca_cert))
        async with running((uplink.run(), "uplink")):
            await asyncio.wait_for(uplink.connected.wait(), 10)


@pytest.mark.parametrize("case", ["wrong CA", "no CA", "host name", "bad CA file"])
async def test_a_refused_handshake_is_counted_and_reported(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    pki = make_pki(tmp_path / "hub")
    state = tmp_path / "data"
    state.mkdir()
    ca: Path | None = pki.ca_cert
    host = "127.0.0.1"
    if case == "wrong CA":
        ca = make_pki(tmp_path / "other").ca_cert
    elif case == "no CA":
        ca = None  # nothing enrolled: the system's CAs, which do not know the demo CA
    elif case == "host name":
        host = "localhost"  # the certificate names 127.0.0.1 only
    else:
        ca = tmp_path / "garbage.crt"
        ca.write_text("-----BEGIN CERTIFICATE-----\nnot one\n")
    log = MemoryLog()
    log.append_many(readings(10))
    log.commit()
    caplog.set_level(logging.INFO, "estran.edge.uplink")
    async with tls_broker(pki) as (_plain, secure):
        uplink = Uplink(log, tls_config(state, f"mqtts://{host}:{secure}", ca_file=ca))
        async with running((uplink.run(), "uplink")):
            await until(lambda: uplink.stats.tls_errors >= 3, timeout=10)
            assert not uplink.connected.is_set() and uplink.stats.connects == 0
    error = uplink.stats.last_error or ""
    if case == "bad CA file":
        assert "not a CA certificate" in error and str(ca) in error, error
    else:
        assert "TLS handshake" in error and "ca_file" in error, error
    if case == "host name":
        assert "mismatch" in error, error
    elif case != "bad CA file":
        assert "unable to get local issuer certificate" in error, error
    assert uplink.stats.as_dict()["tls_errors"] == uplink.stats.tls_errors
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # said once, then counted
    assert not log.all_acked()
