"""`estran bench`: benchmarks that print JSON and measure the peer in the same run."""

import click

from edge.cli import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy={
        "alerts": "estran.bench_alerts:bench_alerts",
        "api": "estran.bench_api:bench_api",
        "buffer": "estran.bench_buffer:bench_buffer",
        "decode": "estran.bench_decode:bench_decode",
        "edge": "estran.bench_edge:bench_edge",
        "fleet": "estran.bench_fleet:bench_fleet",
        "install": "estran.bench_install:bench_install",
        "rollout": "estran.bench_rollout:bench_rollout",
        "soak": "estran.bench_soak:bench_soak",
        "territory": "estran.bench_territory:bench_territory",
        "sync": "estran.bench_sync:bench_sync",
    },
)
def bench() -> None:
    """Benchmarks: figures as JSON, the peer measured side by side."""
