"""`estran hub alert` on a hub's data directory, as an admin types it: rules versioned and
audited, channels with their secrets hidden, every mistake one line and exit 1."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fleet import Fleet
from hub.cli import hub as hub_cli


def cli(data: Path, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(hub_cli, ["alert", "--data", str(data), *args], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.output


def test_rules_channels_and_mistakes(tmp_path: Path) -> None:
    rule = {
        "id": "bin-full",
        "kind": "threshold",
        "scope": {"kind": "bin"},
        "params": {"quantity": "fill", "value": 80, "clear": 70, "for": "10 min"},
    }
    assert cli(tmp_path, "rule", "add", "-", input=json.dumps(rule)) == (
        0,
        "rule bin-full created (version 1)\n",
    )
    code, out = cli(tmp_path, "rule", "add", "-", input=json.dumps(rule))
    assert (code, out) == (1, "Error: id: rule 'bin-full' exists (update it instead)\n")
    rule["params"]["value"] = 85  # type: ignore[index]
    path = tmp_path / "rule.json"
    path.write_text(json.dumps(rule))
    assert cli(tmp_path, "rule", "update", "bin-full", str(path))[1] == (
        "rule bin-full updated (version 2)\n"
    )
    assert cli(tmp_path, "rule", "disable", "bin-full")[1] == "rule bin-full disabled (version 3)\n"
    assert cli(tmp_path, "rule", "list")[1] == "bin-full  v3  threshold       kind=bin (disabled)\n"
    versions = json.loads(cli(tmp_path, "rule", "show", "bin-full", "--versions")[1])
    assert [(v["version"], v["action"]) for v in versions] == [
        (1, "created"),
        (2, "updated"),
        (3, "disabled"),
    ]
    assert versions[1]["doc"]["params"]["value"] == 85
    # mistakes: one line each, exit 1, nothing written
    for args, stdin, message in [
        (("rule", "add", "-"), "{not json", "Error: -: not JSON: "),
        (
            ("rule", "add", "-"),
            json.dumps({"id": "x", "kind": "silence"}),
            "Error: after: required",
        ),
        (
            ("rule", "add", "-"),
            json.dumps(
                {
                    "id": "x",
                    "kind": "threshold",
                    "params": {"quantity": "q", "value": 1, "op": "=="},
                }
            ),
            "Error: op: expected one of",
        ),
        (("rule", "delete", "nope"), None, "Error: not_found: no rule 'nope'"),
        (
            ("channel", "set", "hook", "--type", "webhook", "-"),
            json.dumps({"url": "ftp://x"}),
            "Error: url: expected an http:// or https:// URL",
        ),
        (
            ("channel", "set", "hook", "--type", "webhook", "-"),
            json.dumps({"url": "http://127.0.0.1:9/x", "secret": "short"}),
            "Error: secret: at least 16",
        ),
    ]:
        code, out = cli(tmp_path, *args, input=stdin)
        assert code == 1 and out.startswith(message), out
        assert out.count("\n") == 1 and "Traceback" not in out
    secret = "s3cret-s3cret-s3cret"
    assert (
        cli(
            tmp_path,
            "channel",
            "set",
            "hook",
            "--type",
            "webhook",
            "-",
            input=json.dumps({"url": "https://ops.example/h", "secret": secret}),
        )[0]
        == 0
    )
    listed = cli(tmp_path, "channel", "list")[1]
    assert secret not in listed and json.loads(listed)[0]["config"]["secret"] == "***"
    assert cli(tmp_path, "rule", "delete", "bin-full")[1] == "rule bin-full deleted\n"
    assert cli(tmp_path, "rule", "list")[1] == ""
    assert cli(tmp_path, "dead-letters")[1] == ""
    assert cli(tmp_path / "nowhere", "rule", "list")[1].startswith(
        "Error: " + str(tmp_path / "nowhere") + ": no hub data directory here"
    )
    # the audit log has every change, by the operating-system user, from the CLI
    with Fleet(tmp_path) as fleet:
        actions = [(e.action, e.target) for e in fleet.audit(limit=50)]
    assert ("alert_rule.create", "bin-full") in actions
    assert ("alert_rule.delete", "bin-full") in actions
    assert ("alert_channel.save", "hook") in actions
