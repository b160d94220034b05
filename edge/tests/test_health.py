"""Health: the status endpoint over a real Unix socket, counters, footprint."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path

import pytest

from edge.config import load_config
from edge.daemon import Daemon, SystemdNotifier
from edge.health import (
    HealthRegistry,
    StatusServer,
    StatusUnavailable,
    io_write_bytes,
    read_status,
    rss_bytes,
)
from edge.tests.support.daemon import FakeWiring, Plan, port, wait_until, write_config
from protocols.reading import Reading


async def test_the_running_daemon_answers_on_its_status_socket(tmp_path: Path) -> None:
    fakes = FakeWiring({"/dev/bad": Plan(crash_after=1)})
    path = write_config(
        tmp_path / "edge.toml",
        tmp_path / "d",
        port("/dev/a", "a") + port("/dev/bad", "b") + '[sensors.a]\nrename = { value = "level" }\n'
        'units = { level = "m" }\n',
    )
    daemon = Daemon(load_config(path), fakes.wiring(), SystemdNotifier({}))
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.ready.wait(), 5)
    await wait_until(
        lambda: fakes.log.commits > 1 and daemon.health.sources["serial:/dev/bad"].crashes
    )
    daemon.intake.count_error("a", "checksum", "bad CRC 0x1234")
    daemon.intake.count_error("a", "checksum")
    daemon.intake.count_error("serial:/dev/a", "unplugged", "EIO")
    sock = tmp_path / "d" / "status.sock"
    assert (os.stat(sock).st_mode & 0o777) == 0o660
    status = await asyncio.to_thread(read_status, sock)  # the client blocks: not on the loop
    assert status["version"] == 1 and status["gateway"] == "gw-test"
    a = status["sensors"]["a"]  # type: ignore[index]
    assert a["source"] == "serial:/dev/a"
    assert a["values"]["level"]["unit"] == "m"  # renamed and unit set, as published
    assert isinstance(a["values"]["level"]["value"], int)
    assert a["errors"] == {"checksum": 2}
    assert a["last_error"]["detail"] == ""
    assert a["samples"] >= 1 and a["last_seen_ms"] > 0
    sources = status["sources"]  # type: ignore[index]
    assert sources["serial:/dev/a"]["state"] == "up"
    assert sources["serial:/dev/a"]["errors"] == {"unplugged": 1}
    assert sources["serial:/dev/bad"]["crashes"] >= 1
    buffer = status["buffer"]  # type: ignore[index]
    assert buffer["depth"] >= 1 and buffer["commits"] >= 1 and buffer["quota_bytes"] > 0
    assert isinstance(buffer["oldest_age_s"], float)
    assert status["queue"]["capacity"] == 2048  # type: ignore[index]
    assert status["uplink"] == {"state": "disabled"}
    footprint = status["footprint"]  # type: ignore[index]
    assert footprint["rss_bytes"] > 1 << 20 and footprint["cpu_s"] >= 0
    assert footprint["samples"] >= 1
    daemon.request_stop()
    await asyncio.wait_for(task, 10)
    assert not sock.exists()


async def test_a_second_daemon_on_the_same_data_dir_is_refused_and_stale_sockets_are_replaced(
    tmp_path: Path,
) -> None:
    path = tmp_path / "status.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on: a daemon killed with -9
    async with StatusServer(path, lambda: {"n": 1}):
        assert await asyncio.to_thread(read_status, path) == {"n": 1}
        with pytest.raises(OSError, match="another daemon"):
            async with StatusServer(path, lambda: {"n": 2}):
                pass
    with pytest.raises(StatusUnavailable, match="is the daemon running"):
        read_status(path)


async def test_read_status_says_why_it_cannot(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    with pytest.raises(StatusUnavailable, match="nobody listens"):
        read_status(path)
    server.listen()
    with pytest.raises(StatusUnavailable, match="no answer within"):
        read_status(path, timeout=0.1)  # accepted by the kernel, never answered
    server.close()


def test_snapshot_is_json_even_with_odd_values() -> None:
    health = HealthRegistry("gw")
    health.configure({"s": "src"}, ["src"])
    for n, value in enumerate((float("nan"), b"\x01", 1.5, True, "x")):
        health.sample(Reading("s", f"q{n}", None, value, 1))
    health.sample(Reading("unknown", "q", None, 1, 1))  # a sensor no table names
    health.count_error("nobody", "timeout")  # neither sensor nor source: a source bucket
    text = json.dumps(health.snapshot(), allow_nan=False)
    assert '"value": "nan"' in text
    assert "unknown" in health.snapshot()["sensors"]  # type: ignore[operator]
    assert health.sources["nobody"].errors.by_reason["timeout"] == 1


def test_configure_keeps_counters_of_sensors_that_stay() -> None:
    health = HealthRegistry("gw")
    health.configure({"a": "s1", "b": "s1"}, ["s1"])
    health.count_error("a", "checksum")
    health.count_error("b", "checksum")
    health.configure({"a": "s2"}, ["s2"])
    assert health.sensors["a"].errors.by_reason == {"checksum": 1}
    assert health.sensors["a"].source == "s2"
    assert "b" not in health.sensors and "s1" not in health.sources


def test_process_figures() -> None:
    rss = rss_bytes()
    assert rss is not None and rss > 1 << 20
    written = io_write_bytes()
    assert written is None or written >= 0
