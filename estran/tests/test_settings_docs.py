"""docs/configuration.md's tables are generated from the schema and must not be stale; the
JSON Schema says what the loader says about the page's examples."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import jsonschema
from click.testing import CliRunner

from estran.cli import cli
from protocols import settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_page_is_generated_from_the_schema() -> None:
    """Fails when a setting changed without `estran settings docs --write`."""
    page = DOC.read_text(encoding="utf-8")
    assert settings.render_docs(page) == page, "run: estran settings docs --write"
    for name, _ in settings.SECTIONS:
        assert f"<!-- settings:{name} " in page


def test_the_command_checks_and_writes(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    stale = DOC.read_text(encoding="utf-8").replace("| `quota` |", "| `quota_old` |", 1)
    page.write_text(stale, encoding="utf-8")
    runner = CliRunner()
    checked = runner.invoke(cli, ["settings", "docs", "--check", "--page", str(page)])
    assert checked.exit_code == 1 and "stale" in checked.output
    written = runner.invoke(cli, ["settings", "docs", "--write", "--page", str(page)])
    assert written.exit_code == 0, written.output
    assert page.read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")
    again = runner.invoke(cli, ["settings", "docs", "--check", "--page", str(page)])
    assert again.exit_code == 0 and "up to date" in again.output
    page.write_text("no markers here", encoding="utf-8")
    broken = runner.invoke(cli, ["settings", "docs", "--check", "--page", str(page)])
    assert broken.exit_code == 1 and "markers" in broken.output and "Traceback" not in broken.output


def _examples() -> list[dict[str, object]]:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 10
    return [tomllib.loads(block) for block in blocks]


def test_the_page_examples_pass_the_gateway_json_schema() -> None:
    validator = jsonschema.Draft202012Validator(settings.json_schema(hub=False))
    for example in _examples():
        assert not list(validator.iter_errors(example)), example


def test_the_hub_json_schema_refuses_what_the_hub_refuses() -> None:
    validator = jsonschema.Draft202012Validator(settings.json_schema(hub=True))
    jsonschema.Draft202012Validator.check_schema(validator.schema)
    for example in _examples():
        hub_part = settings.for_gateway(copy.deepcopy(example))
        assert not list(validator.iter_errors(hub_part)), hub_part
    for wrong in (
        {"gateway": {"id": "gw-1"}},  # the gateway's own
        {"uplink": {"broker": "mqtt://elsewhere"}},
        {"buffer": {"quota": "lots"}},
        {"buffer": {"commit_interval": 120}},
        {"bufer": {}},
        {"serial": [{"path": "/dev/x"}]},
        {"daemon": {"queue_size": 8}},
    ):
        assert list(validator.iter_errors(wrong)), wrong
        assert settings.check(wrong, settings.HUB), wrong
