"""`estran hub run --no-fleet`: an extra process beside the hub that runs the fleet.

The three-process run itself (two `--no-fleet` processes on the shared subscription, each
taking a share of 1,000 gateways' readings) is hil-tests/test_fleet_scale.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hub._errors import ConfigError
from hub._service import HubConfig
from hub.cli import hub


def test_an_extra_process_needs_an_external_broker(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--no-fleet"):
        HubConfig(data_dir=tmp_path, fleet=False).validate()  # the embedded broker


def test_an_extra_process_keeps_no_mosquitto_files(tmp_path: Path) -> None:
    config = HubConfig(
        data_dir=tmp_path,
        broker="mqtt://127.0.0.1:1883",
        fleet=False,
        mosquitto_dir=tmp_path / "mosquitto",
    )
    with pytest.raises(ConfigError, match="--mosquitto-dir"):
        config.validate()


def test_an_extra_process_on_an_external_broker_is_valid(tmp_path: Path) -> None:
    HubConfig(data_dir=tmp_path, broker="mqtt://127.0.0.1:1883", fleet=False).validate()


def test_the_cli_says_why_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        hub, ["run", "--data", str(tmp_path), "--no-fleet", "--http", "none"]
    )
    assert result.exit_code != 0
    assert "--no-fleet is for an extra process" in result.output
    assert "Traceback" not in result.output
