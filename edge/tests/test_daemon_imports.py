"""What a running daemon loads: the wiring imports lazily (one without an uplink never loads
aiomqtt, one without a BLE source never loads bleak), the fleet link (edge.config_apply,
with aiomqtt and edge.identity's cryptography, about 12 MB of RSS) only once the gateway is
enrolled, and the software version is read without importlib.metadata. Checked in a fresh
interpreter: this test process has imported everything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge.daemon._daemon import ENROLLMENT_FILES, enrolled
from edge.daemon._wiring import software_version
from edge.identity import CREDENTIALS_FILE, STATE_FILE
from edge.tests.support.daemon import port, write_config

HEAVY = (
    "aiomqtt",
    "paho",
    "cryptography",
    "edge.config_apply",
    "edge.uplink",
    "bleak",
    "bumble",
    "edge.sources.ble.source",
    "importlib.metadata",
)

SCRIPT = """
import asyncio, sys
from pathlib import Path
from edge.config import load_config
from edge.daemon import Daemon, SystemdNotifier, default_wiring

async def main() -> None:
    daemon = Daemon(load_config(Path(sys.argv[1])), default_wiring(), SystemdNotifier({}))
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.ready.wait(), 30)
    await asyncio.sleep(0.5)
    print(sorted(daemon.supervisor.names))
    daemon.request_stop()
    await asyncio.wait_for(task, 30)

asyncio.run(main())
print(sorted(m for m in sys.argv[2].split(",") if m in sys.modules))
"""


def run_daemon(config: Path) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(config), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()


def test_a_daemon_neither_enrolled_nor_uplinked_loads_no_mqtt_nor_crypto(tmp_path: Path) -> None:
    config = write_config(tmp_path / "edge.toml", tmp_path / "d", port("/dev/null-a", "a"))
    names, loaded = run_daemon(config)
    assert names == "['serial:/dev/null-a']"
    assert loaded == "[]"


def test_a_daemon_with_a_ble_source_loads_bleak_for_it(tmp_path: Path) -> None:
    # BlueZ on a machine without it: the source fails and is retried, but it was imported
    ble = '[ble]\nbackend = "bluez"\n[[ble.devices]]\naddress = "A4:C1:38:00:00:01"\n'
    ble += 'kind = "bthome"\nsensor = "t1"\n'
    config = write_config(tmp_path / "edge.toml", tmp_path / "d", port("/dev/null-a", "a") + ble)
    names, loaded = run_daemon(config)
    assert names == "['ble:bluez', 'serial:/dev/null-a']"
    assert "'bleak'" in loaded and "'edge.sources.ble.source'" in loaded
    assert "bumble" not in loaded  # only a bumble backend imports it


def test_the_software_version_is_the_installed_distribution_s() -> None:
    from importlib.metadata import version

    assert software_version() == version("estran")
    assert software_version("estran-no-such-distribution") is None


def test_an_enrolled_daemon_runs_its_fleet_link(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    for name in ENROLLMENT_FILES:
        (data / name).write_text("")
    assert enrolled(data)
    config = write_config(tmp_path / "edge.toml", data, port("/dev/null-a", "a"))
    names, loaded = run_daemon(config)
    assert names == "['fleet', 'serial:/dev/null-a']"
    assert "edge.config_apply" in loaded


def test_the_enrollment_files_are_the_identity_s() -> None:
    assert ENROLLMENT_FILES == (STATE_FILE, CREDENTIALS_FILE)
