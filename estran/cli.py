"""`estran`: one command for the technician, the fleet admin and the test rig."""

import click

from edge.cli import LazyGroup
from estran import __version__


@click.group(
    cls=LazyGroup,
    lazy={
        "decode": "estran.decode_cmd:decode",
        "edge": "edge.cli:edge",
        "hub": "hub.cli:hub",
        "fleet": "fleet.cli:fleet",
        "bench": "estran.bench_cmd:bench",
        "demo": "estran.demo:demo",
        "settings": "estran.settings_cmd:settings_group",
    },
    extras={"edge": "edge", "hub": "hub", "fleet": "hub", "bench": "dev", "demo": "dev"},
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="estran")
def cli() -> None:
    """Estran: edge gateways that read sensors over serial and BLE, keep every reading in a
    crash-safe CBOR buffer, and sync to a hub.

    \b
    Technicians:  estran decode tic 0a41444353...   paste a frame, read the values
                  estran edge ...                    the gateway daemon and its tools
    Fleet admins: estran hub ..., estran fleet ...
    Everyone:     estran demo                        the whole territory on one machine
    """


def main() -> None:
    cli(prog_name="estran")
