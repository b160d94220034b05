"""`estran edge doctor`: each check on a staged environment (commands, /proc, /sys, access)
and against real local sockets (an MQTT broker stand-in, the daemon's status socket)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import edge
from edge.config import EdgeConfig, parse_config
from edge.doctor import (
    Environment,
    check_ble,
    check_broker,
    check_clock,
    check_daemon,
    check_disk,
    check_serial,
    connect_packet,
    run_checks,
)
from edge.health import StatusServer
from edge.tests.support.tls import make_pki

NOW = 1_790_000_000.0


def env(commands: dict[str, tuple[int, str]] | None = None, **kwargs: object) -> Environment:
    table = commands or {}

    def run(argv: list[str], timeout: float) -> tuple[int, str] | None:
        return table.get(argv[0])

    return Environment(run=run, now=lambda: NOW, http_date=lambda h, p, t: None, **kwargs)  # type: ignore[arg-type]


def config(body: str = "", data: Path | None = None) -> EdgeConfig:
    import tomllib

    head = '[gateway]\nid = "gw-doc"\n' + (f'data_dir = "{data}"\n' if data else "")
    return parse_config(tomllib.loads(head + body))


# -- clock -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("commands", "status", "words"),
    [
        ({"timedatectl": (0, "yes\n")}, "ok", "NTPSynchronized=yes"),
        ({"timedatectl": (0, "no\n")}, "warn", "not synchronized"),
        (
            {
                "timedatectl": (1, ""),
                "chronyc": (
                    0,
                    "Leap status     : Normal\nSystem time     : 0.000012 seconds fast\n",
                ),
            },
            "ok",
            "chrony; system time 0.000012 seconds fast",
        ),
        ({"chronyc": (0, "Leap status     : Not synchronised\n")}, "warn", "Not synchronised"),
        ({"ntpstat": (0, "synchronised to NTP server")}, "ok", "ntpstat"),
        ({"ntpstat": (1, "unsynchronised")}, "warn", "ntpstat"),
        ({}, "warn", "cannot tell"),
    ],
)
def test_clock_from_the_time_sync_services(
    commands: dict[str, tuple[int, str]], status: str, words: str
) -> None:
    check = check_clock(None, env(commands))
    assert (check.status, words in check.reason) == (status, True), check


def test_a_clock_that_was_never_set_fails() -> None:
    check = check_clock(None, Environment(now=lambda: 86400.0 * 3))
    assert check.status == "fail" and "1970-01-04" in check.reason and "timesyncd" in check.hint


@pytest.mark.parametrize(("offset", "status"), [(0.4, "ok"), (-12.0, "warn"), (3600.0, "fail")])
def test_clock_against_an_http_date_when_nothing_else_answers(offset: float, status: str) -> None:
    asked: list[tuple[str, int]] = []

    def http_date(host: str, port: int, timeout: float) -> float:
        asked.append((host, port))
        return NOW - offset

    e = Environment(run=lambda a, t: None, now=lambda: NOW, http_date=http_date)
    check = check_clock(config('[uplink]\nbroker = "mqtt://hub.example:1883"\n'), e)
    assert asked == [("hub.example", 80)]
    assert check.status == status and "HTTP Date" in check.reason and "best effort" in check.reason


def test_http_date_is_read_from_a_real_server() -> None:
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from edge.doctor._checks import _http_date

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        theirs = _http_date("127.0.0.1", server.server_address[1], 5.0)
    finally:
        thread.join(5)
        server.server_close()
    assert theirs is not None and abs(theirs - time.time()) < 1.5


# -- disk ------------------------------------------------------------------------------------


def test_disk_free_space_against_the_quota(tmp_path: Path) -> None:
    (tmp_path / "buffer").mkdir()
    (tmp_path / "buffer" / "seg").write_bytes(b"x" * 5000)
    check = check_disk(config('[buffer]\nquota = "1 MiB"\n', tmp_path), env())
    assert check.status == "ok" and "buffer uses 4.9 KiB of its 1.0 MiB quota" in check.reason
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    huge = config(f"[buffer]\nquota = {free * 4}\n", tmp_path)
    check = check_disk(huge, env())
    assert check.status == "warn" and "more than is free" in check.reason
    assert "lower buffer.quota" in check.hint


def test_disk_not_writable(tmp_path: Path) -> None:
    check = check_disk(config("", tmp_path), env(access=lambda p, m: False, user=lambda: "estran"))
    assert check.status == "fail" and "not writable by estran" in check.reason
    assert check.hint == f"sudo chown -R estran {tmp_path}"
    missing = tmp_path / "sub" / "data"
    check = check_disk(config("", missing), env(access=lambda p, m: False, user=lambda: "estran"))
    assert check.status == "fail" and "cannot create it" in check.reason


# -- broker ----------------------------------------------------------------------------------


class FakeBroker:
    """Reads one CONNECT and answers CONNACK with `code` (or with garbage)."""

    def __init__(
        self, code: int = 0, answer: bytes | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.tls = tls  # a TLS listener (mqtts://)
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.code = code
        self.answer = answer
        self.connect: bytes = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        if self.tls is not None:
            conn.settimeout(5)
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()
                return
        with conn:
            conn.settimeout(5)
            head = conn.recv(2)
            body = b""
            while len(body) < head[1]:
                body += conn.recv(head[1] - len(body))
            self.connect = head + body
            conn.sendall(self.answer if self.answer is not None else bytes([0x20, 2, 0, self.code]))
            conn.recv(2)  # DISCONNECT, or EOF

    def close(self) -> None:
        self.thread.join(5)
        self.server.close()


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    path = tmp_path / "broker.cred"
    path.write_text("gw-doc:s3cret\n")
    return path


def test_the_broker_accepts_our_credentials(credentials: Path) -> None:
    broker = FakeBroker(0)
    c = config(
        f'[uplink]\nbroker = "mqtt://127.0.0.1:{broker.port}"\ncredentials_file = "{credentials}"\n'
    )
    check = check_broker(c, env())
    broker.close()
    assert check.status == "ok" and "accepted an MQTT 3.1.1 CONNECT as gw-doc" in check.reason
    packet = broker.connect
    assert packet[2:8] == b"\x00\x04MQTT" and packet[8] == 4  # MQTT 3.1.1
    assert packet[9] == 0xC2  # user name, password, clean session
    assert b"estran-doctor-gw-doc" in packet and b"s3cret" in packet


@pytest.mark.parametrize(
    ("code", "words"), [(4, "bad user name or password"), (5, "not authorized")]
)
def test_the_broker_refuses(code: int, words: str) -> None:
    broker = FakeBroker(code)
    check = check_broker(config(f'[uplink]\nbroker = "127.0.0.1:{broker.port}"\n'), env())
    broker.close()
    assert check.status == "fail" and words in check.reason and "enroll" in check.hint


def test_no_broker_listening_and_not_mqtt() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    check = check_broker(config(f'[uplink]\nbroker = "127.0.0.1:{port}"\n'), env())
    assert check.status == "fail" and "cannot reach" in check.reason and str(port) in check.hint
    broker = FakeBroker(answer=b"HTTP")
    check = check_broker(config(f'[uplink]\nbroker = "127.0.0.1:{broker.port}"\n'), env())
    broker.close()
    assert check.status == "fail" and "not MQTT" in check.reason


def tls_broker(tmp_path: Path) -> tuple[FakeBroker, Path]:
    pki = make_pki(tmp_path / "hub-tls")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    return FakeBroker(0, tls=server), pki.ca_cert


def test_a_tls_broker_is_checked_with_the_enrolled_ca(tmp_path: Path, credentials: Path) -> None:
    broker, ca = tls_broker(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "hub-ca.crt").write_bytes(ca.read_bytes())  # what `estran edge enroll --ca` keeps
    c = config(
        f'[uplink]\nbroker = "mqtts://127.0.0.1:{broker.port}"\n'
        f'credentials_file = "{credentials}"\n',
        data,
    )
    check = check_broker(c, env())
    broker.close()
    assert check.status == "ok", check
    assert "over TLS" in check.reason and "hub-ca.crt" in check.reason
    assert b"s3cret" in broker.connect  # the CONNECT went through the handshake


def test_a_tls_broker_with_a_given_ca_file(tmp_path: Path) -> None:
    broker, ca = tls_broker(tmp_path)
    c = config(f'[uplink]\nbroker = "mqtts://127.0.0.1:{broker.port}"\nca_file = "{ca}"\n')
    check = check_broker(c, env())
    broker.close()
    assert check.status == "ok" and str(ca) in check.reason


def test_a_tls_broker_signed_by_another_ca_is_refused(tmp_path: Path) -> None:
    broker, _ = tls_broker(tmp_path)
    other = make_pki(tmp_path / "other").ca_cert
    c = config(f'[uplink]\nbroker = "mqtts://127.0.0.1:{broker.port}"\nca_file = "{other}"\n')
    check = check_broker(c, env())
    broker.close()
    assert check.status == "fail" and "refused the TLS handshake" in check.reason
    assert "certificate" in check.reason and "ca_file" in check.hint
    assert broker.connect == b""  # no credentials sent to an untrusted server


def test_a_tls_broker_without_a_usable_ca_file(tmp_path: Path) -> None:
    bad = tmp_path / "ca.crt"
    bad.write_text("not a certificate")
    c = config(f'[uplink]\nbroker = "mqtts://127.0.0.1:1"\nca_file = "{bad}"\n')
    check = check_broker(c, env())
    assert check.status == "fail" and "not a CA certificate" in check.reason


def test_unreadable_credentials_and_no_uplink(tmp_path: Path) -> None:
    c = config(f'[uplink]\nbroker = "127.0.0.1:1"\ncredentials_file = "{tmp_path / "none"}"\n')
    check = check_broker(c, env())
    assert check.status == "fail" and "credentials file" in check.reason
    assert check_broker(config(), env()).status == "skip"


def test_connect_packet_without_credentials() -> None:
    packet = connect_packet("abc")
    assert packet == b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x0a\x00\x03abc"
    long = connect_packet("x" * 200)
    assert long[1] & 0x80 and struct.unpack("!H", long[3:5]) == (4,)


# -- serial ----------------------------------------------------------------------------------


def serial_config(path: str) -> EdgeConfig:
    return config(
        f'[[serial]]\npath = "{path}"\nprotocol = "nmea"\n[[serial.devices]]\nsensor = "n"\n'
    )


def test_serial_port_present_and_usable() -> None:
    master, slave = os.openpty()
    try:
        name = os.ttyname(slave)
        (check,) = check_serial(serial_config(name), env(user=lambda: "estran"))
        assert check.status == "ok" and "readable and writable by estran" in check.reason
    finally:
        os.close(master)
        os.close(slave)


def test_serial_port_missing_or_forbidden(tmp_path: Path) -> None:
    (check,) = check_serial(serial_config(str(tmp_path / "ttyUSB9")), env())
    assert check.status == "fail" and "does not exist" in check.reason and "by-id" in check.hint
    device = tmp_path / "ttyUSB0"
    device.write_text("")
    link = tmp_path / "by-id"
    link.symlink_to(device)
    (check,) = check_serial(
        serial_config(str(link)), env(access=lambda p, m: False, user=lambda: "estran")
    )
    assert check.status == "fail" and f"-> {device}" in check.reason
    assert check.hint.startswith("sudo usermod -aG ") and check.hint.endswith(
        "estran, then restart the service"
    )
    assert check_serial(config(), env())[0].status == "skip"


# -- BLE -------------------------------------------------------------------------------------


BLE = '[ble]\nbackend = "bleak"\nadapter = "hci0"\n[[ble.devices]]\nsensor = "b"\naddress = "A4:C1:38:00:00:01"\nkind = "bthome"\n'


def fake_system(
    tmp_path: Path, adapter: bool = True, bluetoothd: bool = True, blocked: bool = False
) -> dict[str, object]:
    bt = tmp_path / "sys" / "bluetooth"
    bt.mkdir(parents=True)
    if adapter:
        (bt / "hci0").mkdir()
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "1" / "comm").write_text("systemd\n")
    if bluetoothd:
        (proc / "412").mkdir()
        (proc / "412" / "comm").write_text("bluetoothd\n")
    rfkill = tmp_path / "sys" / "rfkill"
    (rfkill / "rfkill0").mkdir(parents=True)
    (rfkill / "rfkill0" / "type").write_text("bluetooth\n")
    (rfkill / "rfkill0" / "soft").write_text("1\n" if blocked else "0\n")
    return {"sys_bluetooth": bt, "proc": proc, "sys_rfkill": rfkill}


@pytest.mark.parametrize(
    ("system", "busctl", "status", "words"),
    [
        ({}, (0, ""), "ok", "adapter hci0 present, bluetoothd running, org.bluez on D-Bus"),
        ({}, None, "ok", "bluetoothd running"),
        ({"adapter": False}, None, "fail", "no Bluetooth adapter hci0"),
        ({"bluetoothd": False}, None, "fail", "bluetoothd is not running"),
        ({"blocked": True}, None, "fail", "rfkill"),
        ({}, (1, ""), "fail", "org.bluez is not on the system D-Bus"),
    ],
)
def test_bluez(
    tmp_path: Path, system: dict[str, bool], busctl: tuple[int, str] | None, status: str, words: str
) -> None:
    commands = {"busctl": busctl} if busctl else {}
    check = check_ble(config(BLE), env(commands, **fake_system(tmp_path, **system)))  # type: ignore[arg-type]
    assert check.status == status and words in check.reason, check


def test_bumble_transports() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    bumble = BLE.replace(
        'backend = "bleak"\nadapter = "hci0"',
        f'backend = "bumble"\ntransport = "tcp-client:127.0.0.1:{port}"',
    )
    assert check_ble(config(bumble), env()).status == "ok"
    listener.close()
    check = check_ble(config(bumble), env())
    assert check.status == "fail" and "cannot connect" in check.reason
    local = BLE.replace('backend = "bleak"\nadapter = "hci0"', 'backend = "bumble:local:world"')
    assert check_ble(config(local), env()).status == "warn"
    assert check_ble(config(), env()).status == "skip"


# -- the daemon, and the command -------------------------------------------------------------


async def test_the_daemon_check_reads_the_status_socket(tmp_path: Path) -> None:
    c = config("", tmp_path)
    check = await asyncio.to_thread(check_daemon, c)
    assert check.status == "warn" and "not running" in check.reason
    snapshot = {
        "pid": 42,
        "sources": {"serial:/dev/a": {"state": "up"}, "ble:hci0": {"state": "down"}},
    }
    async with StatusServer(c.gateway.status_socket, lambda: snapshot):
        check = await asyncio.to_thread(check_daemon, c)
    assert (
        check.status == "warn"
        and "running (pid 42): 1/2 sources up; not up: ble:hci0" in check.reason
    )


def test_doctor_command_json_and_exit_status(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(f'[gateway]\nid = "gw-doc"\ndata_dir = "{tmp_path / "d"}"\n')
    result = CliRunner().invoke(edge, ["doctor", "--json", "--config", str(path)])
    report = json.loads(result.output)
    names = [c["check"] for c in report["checks"]]
    assert names == ["config", "clock", "disk", "broker", "serial", "ble", "daemon"]
    assert all(set(c) == {"check", "status", "reason", "hint"} for c in report["checks"])
    assert report["ok"] == (result.exit_code == 0)
    path.write_text('[gateway]\nid = "bad id"\n')
    result = CliRunner().invoke(edge, ["doctor", "--config", str(path)])
    assert result.exit_code == 1
    assert "gateway.id" in result.output and "fail" in result.output


def test_run_checks_stops_after_a_bad_configuration(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text("[gateway\n")
    checks = run_checks(path, env())
    assert [c.name for c in checks] == ["config", "clock"]
    assert checks[0].status == "fail" and "not valid TOML" in checks[0].reason


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    yield
