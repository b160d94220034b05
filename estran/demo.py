"""`estran demo`: the territory on one machine (grown issue by issue)."""

import click


@click.command()
@click.option(
    "--duration", type=float, default=None, help="Stop after S seconds (default: Ctrl-C)."
)
def demo(duration: float | None) -> None:
    """Run the territory on one machine: simulated sensors through the codecs."""
    click.echo("demo: codecs not wired yet")
