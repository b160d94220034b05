"""`estran fleet` on a hub data directory."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fleet import Fleet
from fleet.cli import fleet


def run(data: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(fleet, ["--data", str(data), *args])
    return result.exit_code, result.output


def test_fleet_commands(tmp_path: Path) -> None:
    assert run(tmp_path, "group", "create", "marina")[0] == 0
    code, out = run(tmp_path, "token", "create", "--group", "marina", "--ttl", "30m", "--json")
    assert code == 0
    token = json.loads(out)["token"]
    assert token.startswith("et1.") and json.loads(out)["hub_fingerprint"] == token.split(".")[3]
    code, out = run(tmp_path, "token", "create", "--group", "nowhere")
    assert code == 1 and "no group 'nowhere'" in out
    code, out = run(tmp_path, "token", "create", "--group", "marina", "--ttl", "soon")
    assert code == 2

    code, out = run(
        tmp_path,
        "config",
        "set",
        "--group",
        "marina",
        'buffer.quota="2 GiB"',
        "daemon.queue_size=4096",
    )
    assert code == 0, out
    assert '+ buffer.quota = "2 GiB"' in out
    code, out = run(tmp_path, "config", "set", "--group", "marina", "buffer.policy=keep_all")
    assert code == 1 and 'buffer.policy: must be one of "drop_oldest", "refuse_new"' in out
    code, out = run(tmp_path, "config", "show", "--group", "marina")
    assert json.loads(out) == {"buffer": {"quota": "2 GiB"}, "daemon": {"queue_size": 4096}}
    code, out = run(tmp_path, "config", "set", "--group", "marina", "--unset", "daemon.queue_size")
    assert code == 0 and "- daemon.queue_size" in out
    code, out = run(tmp_path, "config", "diff", "--group", "marina")
    assert out.strip() == '+ buffer.quota = "2 GiB"'

    code, out = run(tmp_path, "gateways", "--json")
    assert code == 0 and json.loads(out) == []
    code, out = run(tmp_path, "audit", "--json")
    actions = [e["action"] for e in json.loads(out)]
    assert actions[0] == "group.create" and "config.set" in actions
    code, out = run(tmp_path, "revoke", "nobody")
    assert code == 1 and "no gateway 'nobody'" in out
    code, out = run(tmp_path, "keys", "add")
    assert code == 0
    with Fleet(tmp_path) as f:
        assert len(f.keys.active_ids()) == 2
    code, out = run(tmp_path, "broker", "sync", "--mosquitto-dir", str(tmp_path / "mq"))
    assert code == 0 and (tmp_path / "mq" / "acl").exists()


def test_missing_data_dir(tmp_path: Path) -> None:
    code, out = run(tmp_path / "nope", "gateways")
    assert code == 1 and "no hub data directory" in out


def test_fleet_cmd_names(tmp_path: Path) -> None:
    code, out = run(tmp_path, "cmd", "--help")
    assert code == 0
    for name in ("reload", "status", "rescan", "flush", "reboot"):
        assert name in out
    code, out = run(tmp_path, "cmd", "marina-001", "rebot")
    assert code == 2 and "rebot" in out
    for name in ("rescan", "flush", "reboot"):  # accepted: only the gateway is unknown
        code, out = run(tmp_path, "cmd", "marina-001", name)
        assert code == 1 and "no gateway 'marina-001'" in out, out


def test_config_set_names_its_layer(tmp_path: Path) -> None:
    """A change without --fleet/--group/--gateway used to edit the fleet-wide layer silently."""
    code, out = run(tmp_path, "config", "set", "daemon.queue_size=4096")
    assert code == 2 and "--fleet (every gateway), --group NAME or --gateway ID" in out
    assert json.loads(run(tmp_path, "config", "show", "--layer")[1]) == {}
    code, out = run(tmp_path, "config", "set", "--fleet", "--group", "g", "daemon.queue_size=1")
    assert code == 2 and "one of --fleet, --group or --gateway" in out
    code, out = run(tmp_path, "config", "set", "--fleet", "daemon.queue_size=4096")
    assert code == 0, out
    assert json.loads(run(tmp_path, "config", "show", "--layer")[1]) == {
        "daemon": {"queue_size": 4096}
    }
