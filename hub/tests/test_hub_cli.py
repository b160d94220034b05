"""`estran hub run` refuses what it cannot do in one line, before anything starts."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hub.tests.services import free_port

ESTRAN = str(Path(sys.executable).with_name("estran"))


def hub_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ESTRAN, "hub", "run", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("which", ["--http", "--mqtt-listen"])
def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path, which: str) -> None:
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = f"127.0.0.1:{taken.getsockname()[1]}"
    ports = {"--http": f"127.0.0.1:{free_port()}", "--mqtt-listen": f"127.0.0.1:{free_port()}"}
    ports[which] = busy
    try:
        proc = hub_run("--data", str(tmp_path), *[x for kv in ports.items() for x in kv])
    finally:
        taken.close()
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"Error: {which} {busy}: cannot listen: Address already in use"


def test_an_unknown_database_is_refused_before_anything_starts(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    proc = hub_run("--data", str(data), "--db", "mysql://root:secret@db/estran")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "Error: unknown --db 'mysql://...': use sqlite, sqlite:///PATH or postgresql://..."
    )
    assert "secret" not in proc.stderr and not data.exists()
