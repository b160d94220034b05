"""`estran edge status [--json] [--data DIR] [--config FILE]`: the running daemon's health.

Reads the daemon's status socket (DATA_DIR/status.sock) and shows it as tables: sources and
their state, sensors with their last values and error counts, the buffer, the uplink, the
footprint. `--json` prints the daemon's snapshot as it is (the same object the hub gets a
summary of). Exit status 1 when the daemon cannot be reached.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import click

Snapshot = dict[str, Any]


def status_socket(data: Path | None, config: Path | None) -> Path:
    """DATA/status.sock: --data, else the configuration's data_dir, else the default."""
    from edge.config import DEFAULT_CONFIG, DEFAULT_DATA_DIR, ConfigError, load_config

    if data is not None:
        return data / "status.sock"
    path = config if config is not None else DEFAULT_CONFIG
    if config is not None or path.exists():
        try:
            return load_config(path).gateway.status_socket
        except ConfigError as e:
            raise click.ClickException(f"{e}\n(use --data DIR to read the status anyway)") from e
    return DEFAULT_DATA_DIR / "status.sock"


def _natural(name: str) -> list[object]:
    """ "soil-2" before "soil-10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _age(ts_ms: object, now_ms: int) -> str:
    if not isinstance(ts_ms, int):
        return "never"
    seconds = max(0.0, (now_ms - ts_ms) / 1000)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} d ago"


def _bytes(n: object) -> str:
    if not isinstance(n, int | float):
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _errors(errors: object) -> str:
    if not isinstance(errors, dict) or not errors:
        return ""
    return ", ".join(f"{reason} {count}" for reason, count in sorted(errors.items()))


def _value(entry: dict[str, Any]) -> str:
    value = entry.get("value")
    unit = entry.get("unit")
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}" if unit else text


_STATE_STYLE = {"up": "green", "connected": "green", "connecting": "yellow", "starting": "yellow"}


def _state(state: object) -> str:
    from rich.markup import escape

    style = _STATE_STYLE.get(str(state), "red")
    return f"[{style}]{escape(str(state))}[/{style}]"


def render(snapshot: Snapshot, values: int = 4) -> list[Any]:
    """The snapshot as rich renderables (header, tables), for a console or a test."""
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    now = int(snapshot.get("now_ms") or time.time() * 1000)
    fp = snapshot.get("footprint") or {}
    header = Text.from_markup(
        f"[bold]gateway {snapshot.get('gateway')}[/bold]  "
        f"software {snapshot.get('software') or '?'}  pid {snapshot.get('pid')}  "
        f"up {_age(snapshot.get('started_ms'), now).removesuffix(' ago')}  "
        f"reloads {(snapshot.get('config') or {}).get('reloads', 0)}"
    )
    out: list[Any] = [header]
    reload_error = (snapshot.get("config") or {}).get("last_reload_error")
    if reload_error:
        out.append(Text(f"last reload refused: {reload_error}", style="red"))  # Text: no markup

    sources = Table(title="sources", title_justify="left", expand=False)
    for column in ("source", "state", "since", "detail", "crashes", "errors"):
        sources.add_column(column)
    source_items = (snapshot.get("sources") or {}).items()
    for name, s in sorted(source_items, key=lambda item: _natural(item[0])):
        sources.add_row(
            escape(name),
            _state(s.get("state")),
            _age(s.get("since_ms"), now),
            escape(str(s.get("detail") or "")),
            str(s.get("crashes") or ""),
            escape(_errors(s.get("errors"))),
        )
    out.append(sources)

    sensors = Table(title="sensors", title_justify="left", expand=False)
    for column in ("sensor", "last seen", "samples", "stored", "values", "errors"):
        sensors.add_column(column)
    sensor_items = (snapshot.get("sensors") or {}).items()
    for name, s in sorted(sensor_items, key=lambda item: _natural(item[0])):
        entries = list((s.get("values") or {}).items())
        shown = ", ".join(f"{q}={_value(v)}" for q, v in entries[:values])
        if len(entries) > values:
            shown += f" (+{len(entries) - values})"
        seen = _age(s.get("last_seen_ms"), now)
        sensors.add_row(
            escape(name),
            seen if s.get("last_seen_ms") else "[red]never[/red]",
            str(s.get("samples", 0)),
            str(s.get("reported", 0)),
            escape(shown),
            escape(_errors(s.get("errors"))),
        )
    out.append(sensors)

    buffer = snapshot.get("buffer") or {}
    queue = snapshot.get("queue") or {}
    uplink = snapshot.get("uplink") or {}
    summary = Table(title="buffer, uplink, footprint", title_justify="left", show_header=False)
    summary.add_column("what")
    summary.add_column("value")
    oldest = buffer.get("oldest_age_s")
    summary.add_row(
        "buffer",
        f"{buffer.get('depth', '?')} readings not yet acknowledged, "
        f"oldest {'-' if oldest is None else f'{oldest:.0f} s'}, "
        f"{_bytes(buffer.get('bytes'))} of {_bytes(buffer.get('quota_bytes'))}",
    )
    summary.add_row(
        "dropped",
        f"{buffer.get('dropped', 0)} by the buffer, {queue.get('dropped', 0)} on a full queue",
    )
    summary.add_row(
        "commits",
        f"{buffer.get('commits', 0)}, mean {buffer.get('commit_mean_ms') or '-'} ms, "
        f"max {buffer.get('commit_max_ms') or '-'} ms",
    )
    summary.add_row("queue", f"{queue.get('depth', '?')} / {queue.get('capacity', '?')}")
    uplink_line = _state(uplink.get("state", "?"))
    if uplink.get("broker"):
        uplink_line += f" to {uplink['broker']}, session {uplink.get('session')}"
        uplink_line += f", {uplink.get('acked_readings', 0)} readings acknowledged"
    if uplink.get("crashes"):
        crash = uplink.get("last_crash") or {}
        uplink_line += (
            f", [red]{uplink['crashes']} crashes[/red] (last: {escape(str(crash.get('error')))})"
        )
    summary.add_row("uplink", uplink_line)
    summary.add_row(
        "footprint",
        f"RSS {_bytes(fp.get('rss_bytes'))}, CPU {fp.get('cpu_s', '?')} s, "
        f"flash writes {_bytes(fp.get('flash_write_bytes'))}, sent {_bytes(fp.get('bytes_sent'))}",
    )
    out.append(summary)
    return out


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the daemon's snapshot as JSON.")
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    help="The daemon's data directory (default: from the configuration).",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The configuration file (default /etc/estran/edge.toml), for its data directory.",
)
@click.option("--timeout", default=3.0, show_default=True, help="Seconds to wait for an answer.")
def status(as_json: bool, data: Path | None, config: Path | None, timeout: float) -> None:
    """The running daemon's health: sources, sensors, buffer, uplink, footprint."""
    from edge.health import StatusUnavailable, read_status

    path = status_socket(data, config)
    try:
        snapshot = read_status(path, timeout)
    except StatusUnavailable as e:
        raise click.ClickException(
            f"cannot read the daemon's status: {e}\n"
            "  systemctl status estran-edge;  journalctl -u estran-edge -e"
        ) from e
    if as_json:
        click.echo(json.dumps(snapshot, indent=2))
        return
    from rich.console import Console

    console = Console()
    for part in render(snapshot):
        console.print(part)


__all__ = ["render", "status", "status_socket"]
