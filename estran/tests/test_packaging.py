"""What a gateway installs: `estran[edge]` from the wheel, into a fresh virtual environment,
runs the technician's commands and the daemon without anything of the hub's extras.

Builds the wheel from this tree, downloads the dependency wheels of the `edge` extra (pip's
cache makes it cheap after the first run), installs with `--no-index` as a gateway does from
a release's wheelhouse, then runs `estran edge --help`, `estran decode` and `estran edge run`
(ready, status answers, SIGTERM: exit 0).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from estran.tests.wheels import built_wheels

HUB_ONLY = {"fastapi", "uvicorn", "starlette", "psycopg", "amqtt", "jinja2", "prometheus-client",
            "httpx", "pwdlib", "bumble", "python-multipart"}  # fmt: skip
EDGE = {
    "estran",
    "cbor2",
    "click",
    "rich",
    "pyserial",
    "aiomqtt",
    "tinydb",
    "cryptography",
    "bleak",
}


@pytest.fixture(scope="module")
def edge_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("packaging")
    wheels, house = built_wheels([("1.0.0", None)])
    wheel = wheels["1.0.0"]
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--no-index", "--find-links", str(house), f"{wheel}[edge]"],
        check=True, timeout=600, capture_output=True,
    )  # fmt: skip
    return venv


def installed(venv: Path) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "list",
         "--format", "json"],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    return {str(p["name"]).lower().replace("_", "-") for p in json.loads(out)}


def estran(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "estran"), *args], capture_output=True, text=True, timeout=60
    )


def test_edge_extra_pulls_nothing_of_the_hub(edge_venv: Path) -> None:
    names = installed(edge_venv)
    assert names >= EDGE, EDGE - names
    assert not names & HUB_ONLY, names & HUB_ONLY


def test_technician_commands_run_on_the_edge_install(edge_venv: Path) -> None:
    help_ = estran(edge_venv, "edge", "--help")
    assert help_.returncode == 0, help_.stderr
    assert "status" in help_.stdout and "run" in help_.stdout
    decoded = estran(edge_venv, "decode", "tic", "ADCO 021875456585 O", "--json")
    assert decoded.returncode == 0, decoded.stderr
    assert "021875456585" in decoded.stdout
    version = estran(edge_venv, "--version")
    assert version.returncode == 0 and "estran" in version.stdout
    # The hub's commands say what is missing instead of a traceback (they are not installed).
    hub = estran(edge_venv, "hub", "--help")
    assert hub.returncode == 1
    assert "estran[hub]" in hub.stderr and "Traceback" not in hub.stderr, hub.stderr


def test_daemon_runs_on_the_edge_install(edge_venv: Path, tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    data = tmp_path / "data"
    config.write_text(f'[gateway]\nid = "gw-pkg"\ndata_dir = "{data}"\n')
    proc = subprocess.Popen(
        [str(edge_venv / "bin" / "estran"), "edge", "run", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            status = estran(edge_venv, "edge", "status", "--json", "--data", str(data))
            if status.returncode == 0:
                break
            time.sleep(0.3)
        assert status is not None and status.returncode == 0, (status, proc.poll())
        snapshot = json.loads(status.stdout)
        assert "gw-pkg" in json.dumps(snapshot)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
