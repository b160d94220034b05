"""`estran edge`: the group lists its commands explicitly and imports them only when used."""

import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from edge.cli import COMMANDS, edge

CLI_DIR = Path(__file__).resolve().parents[1] / "cli"


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(edge, ["--help"])
    assert result.exit_code == 0, result.output
    listed = [
        line.split()[0]
        for line in result.output.split("Commands:")[1].splitlines()
        if line.startswith("  ")
    ]
    assert listed == sorted(COMMANDS)


def test_one_module_per_command_named_for_it() -> None:
    """edge/cli/<name>.py holds the command <name>; no module is left out of the group."""
    modules = sorted(p.stem for p in CLI_DIR.glob("*.py") if not p.stem.startswith("_"))
    assert modules == sorted(COMMANDS)
    ctx = click.Context(edge)
    for name in COMMANDS:
        command = edge.get_command(ctx, name)
        assert isinstance(command, click.Command)
        assert command.name == name


def test_group_imports_no_command_until_used() -> None:
    code = (
        "import sys, edge.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith('edge.') and m != 'edge.cli'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "['edge.cli._lazy']"


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(edge, ["prob"])
    assert result.exit_code == 2
    assert "No such command 'prob'" in result.output
