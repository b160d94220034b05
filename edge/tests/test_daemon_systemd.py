"""systemd integration: sd_notify datagrams received on a real socket, journald-style logs."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import load_config
from edge.daemon import Daemon, JournalFormatter, SystemdNotifier, setup_logging
from edge.tests.support.daemon import FakeWiring, port, wait_until, write_config


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    yield sock, path
    sock.close()


def received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


async def test_ready_watchdog_reloading_and_stopping_reach_the_socket(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, address = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"})
    assert notifier.watchdog_s == 0.1
    fakes = FakeWiring()
    path = write_config(tmp_path / "edge.toml", tmp_path / "d", port("/dev/a", "a"))
    daemon = Daemon(load_config(path), fakes.wiring(), notifier)
    task = asyncio.create_task(daemon.run())
    messages: list[str] = []

    def count(prefix: str) -> int:
        messages.extend(received(sock))
        return sum(1 for m in messages if m.startswith(prefix))

    await wait_until(lambda: count("WATCHDOG=1") >= 3)
    assert messages[0].startswith("READY=1\nSTATUS=")
    await daemon.reload()
    await wait_until(lambda: count("RELOADING=1\nMONOTONIC_USEC=") == 1)
    await wait_until(lambda: count("READY=1") == 2)
    daemon.request_stop()
    await asyncio.wait_for(task, 10)
    await wait_until(lambda: count("STOPPING=1") == 1)
    assert all(m.isprintable() or "\n" in m for m in messages)


async def test_watchdog_is_not_fed_while_the_buffer_writer_is_stalled(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, address = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"})
    fakes = FakeWiring()
    path = write_config(tmp_path / "edge.toml", tmp_path / "d", port("/dev/a", "a"))
    daemon = Daemon(load_config(path), fakes.wiring(), notifier)
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.ready.wait(), 5)
    await asyncio.sleep(0.15)
    received(sock)
    assert daemon.writer is not None
    daemon.writer.stop()  # its loop ends within a commit interval ...
    await asyncio.sleep(0.1)
    received(sock)
    daemon.writer.last_progress -= 3600  # ... and it last made progress an hour ago
    await asyncio.sleep(0.3)
    assert not [m for m in received(sock) if m.startswith("WATCHDOG=1")]
    daemon.request_stop()
    await asyncio.wait_for(task, 10)


def test_abstract_namespace_and_missing_socket() -> None:
    name = f"estran-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    try:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready("starting up")
        assert server.recv(100) == b"READY=1\nSTATUS=starting up"
        assert notifier.status("two\nlines")
        assert server.recv(100) == b"STATUS=two lines"
    finally:
        server.close()
    assert not SystemdNotifier({}).ready()  # not under systemd: nothing, no error
    gone = SystemdNotifier({"NOTIFY_SOCKET": "/nonexistent/notify"})
    assert not gone.ready()  # a vanished manager never raises
    other = SystemdNotifier(
        {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "1"}
    )
    assert other.watchdog_s is None  # the watchdog is for another process


def test_journald_lines_carry_priorities_and_no_timestamp() -> None:
    formatter = JournalFormatter()
    record = logging.LogRecord(
        "estran.edge.daemon", logging.WARNING, __file__, 1, "port %s lost", ("/dev/x",), None
    )
    assert formatter.format(record) == "<4>estran.edge.daemon: port /dev/x lost"
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "estran.edge.daemon", logging.ERROR, __file__, 1, "crashed", (), sys.exc_info()
        )
    lines = formatter.format(record).splitlines()
    assert len(lines) > 2 and all(line.startswith("<3>") for line in lines)
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "d", (), None)
    assert formatter.format(record).startswith("<7>")


def test_setup_logging_picks_the_format_from_journal_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    handler = setup_logging("info", stream)
    try:
        logging.getLogger("estran.edge.test").info("hello")
        logging.getLogger("estran.edge.test").debug("hidden")
        assert stream.getvalue() == "<6>estran.edge.test: hello\n"
        monkeypatch.delenv("JOURNAL_STREAM")
        stream2 = io.StringIO()
        handler = setup_logging("info", stream2)
        logging.getLogger("estran.edge.test").info("hello")
        line = stream2.getvalue()
        assert line.endswith(" INFO    estran.edge.test: hello\n") and line[:4].isdigit()
    finally:
        logging.getLogger().removeHandler(handler)


def test_the_unit_file_is_type_notify_with_a_watchdog() -> None:
    import configparser

    path = Path(__file__).resolve().parents[1] / "systemd" / "estran-edge.service"
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(path)
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "estran edge run --config" in service["ExecStart"]
    assert service["Restart"] == "always"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
