"""`estran bench decode`: frames per second per codec (filled by the codecs issue)."""

import click


@click.command("decode")
@click.option("--json", "as_json", is_flag=True)
def bench_decode(as_json: bool) -> None:
    """Frames per second per protocol; the BTHome peer parser side by side."""
    click.echo("{}")
