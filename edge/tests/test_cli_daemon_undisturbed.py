"""`estran edge doctor` and `estran edge scan` never take the Bluetooth adapter from a running
daemon (issue 9: they knocked its adapter off, `adapter lost`). The daemon is represented by
its status socket (the real StatusServer answering a snapshot with a BLE source); its
adapter by a bumble HCI transport listener that counts who connects to it."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

from click.testing import CliRunner

from edge.cli import edge
from edge.health import StatusServer


class HciBridge:
    """A TCP listener standing for a bumble HCI bridge: one client at a time in real life."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def accepted(self, n: int, within: float = 5.0) -> int:
        """The connections accepted, once `n` have been or `within` seconds have passed: the
        kernel completes a client's connect before this thread gets round to accepting it."""
        deadline = time.monotonic() + within
        while self.connections < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.connections

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def gateway_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        f'[gateway]\nid = "gw-ble"\ndata_dir = "{tmp_path / "d"}"\n'
        f'[ble]\nbackend = "bumble"\ntransport = "tcp-client:127.0.0.1:{port}"\n'
        '[[ble.devices]]\nsensor = "berth-1"\naddress = "A4:C1:38:00:00:01"\nkind = "bthome"\n'
    )
    (tmp_path / "d").mkdir()
    return path


SNAPSHOT = {"pid": 4242, "sources": {"ble": {"state": "up", "detail": "bumble"}}}


async def test_doctor_reads_the_daemon_instead_of_opening_its_adapter(tmp_path: Path) -> None:
    bridge = HciBridge()
    try:
        path = gateway_config(tmp_path, bridge.port)
        # no daemon: the transport is checked by connecting to it
        result = await asyncio.to_thread(
            CliRunner().invoke, edge, ["doctor", "--json", "--config", str(path)]
        )
        ble = {c["check"]: c for c in json.loads(result.output)["checks"]}["ble"]
        assert ble["status"] == "ok" and bridge.accepted(1) == 1
        # the daemon runs and holds it: doctor reads its status, never connects
        async with StatusServer(tmp_path / "d" / "status.sock", lambda: SNAPSHOT):
            result = await asyncio.to_thread(
                CliRunner().invoke, edge, ["doctor", "--json", "--config", str(path)]
            )
            checks = {c["check"]: c for c in json.loads(result.output)["checks"]}
        # a second connection, if doctor made one, would be accepted within this wait
        assert bridge.accepted(2, within=0.5) == 1, "doctor opened the daemon's adapter"
        assert checks["ble"]["status"] == "ok" and "running daemon" in checks["ble"]["reason"]
        assert checks["daemon"]["status"] == "ok"
        down = {"pid": 4242, "sources": {"ble": {"state": "down", "detail": "adapter lost"}}}
        async with StatusServer(tmp_path / "d" / "status.sock", lambda: down):
            result = await asyncio.to_thread(
                CliRunner().invoke, edge, ["doctor", "--json", "--config", str(path)]
            )
        ble = {c["check"]: c for c in json.loads(result.output)["checks"]}["ble"]
        assert ble["status"] == "fail" and "adapter lost" in ble["reason"]
        assert bridge.accepted(2, within=0.5) == 1
    finally:
        bridge.close()


async def test_scan_refuses_while_the_daemon_uses_the_adapter(tmp_path: Path) -> None:
    bridge = HciBridge()
    try:
        path = gateway_config(tmp_path, bridge.port)
        async with StatusServer(tmp_path / "d" / "status.sock", lambda: SNAPSHOT):
            result = await asyncio.to_thread(
                CliRunner().invoke,
                edge,
                ["scan", "--config", str(path), "--seconds", "0.5", "--json"],
            )
        assert result.exit_code == 3, result.output
        assert "gateway daemon (pid 4242) uses the Bluetooth adapter (ble up)" in result.output
        assert "estran edge status" in result.output and "--force" in result.output
        assert bridge.accepted(1, within=0.5) == 0, "scan opened the daemon's adapter"
    finally:
        bridge.close()
