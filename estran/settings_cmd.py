"""`estran settings`: the configuration schema (`protocols.settings`) for people and tools.

estran settings docs --write     regenerate docs/configuration.md's tables
estran settings docs --check     exit 1 when the page is stale (CI runs the same check)
estran settings schema [--gateway]   the JSON Schema (the hub's document by default)
"""

import json
from pathlib import Path

import click

from protocols import settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


@click.group("settings")
def settings_group() -> None:
    """The one configuration schema: generated docs and JSON Schema."""


@settings_group.command("docs")
@click.option("--write", "mode", flag_value="write", help="Rewrite the page's tables.")
@click.option("--check", "mode", flag_value="check", default=True, help="Fail if stale.")
@click.option(
    "--page",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DOC,
    show_default=True,
    help="The page whose generated tables are checked or written.",
)
def docs(mode: str, page: Path) -> None:
    """docs/configuration.md's tables, generated from the schema."""
    try:
        text = page.read_text(encoding="utf-8")
        fresh = settings.render_docs(text)
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if mode == "write":
        if fresh != text:
            page.write_text(fresh, encoding="utf-8")
            click.echo(f"{page}: tables regenerated")
        else:
            click.echo(f"{page}: up to date")
    elif fresh != text:
        raise click.ClickException(
            f"{page} is stale: run `estran settings docs --write` and commit the page"
        )
    else:
        click.echo(f"{page}: up to date")


@settings_group.command("schema")
@click.option("--gateway", is_flag=True, help="The gateway's file (else the hub's document).")
def schema(gateway: bool) -> None:
    """The JSON Schema of a configuration document."""
    click.echo(json.dumps(settings.json_schema(hub=not gateway), indent=2))


__all__ = ["settings_group"]
