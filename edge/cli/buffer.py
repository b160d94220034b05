"""`estran edge buffer dump|verify|stats`: look into a buffer without changing it (safe while
the daemon runs: read-only, no lock taken, nothing repaired). The paths and settings come
from the configuration, as `status` and `doctor` take them: the buffer directory
(DATA_DIR/buffer), the sequence high-water mark beside it (DATA_DIR/buffer-seq.cbor), the
quota and policy; `--dir` and `--seq-path` point elsewhere."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from edge.buffer import BufferConfig

dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="the buffer directory (default: the configuration's, DATA_DIR/buffer)",
)
seq_option = click.option(
    "--seq-path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="the sequence high-water mark (default: DATA_DIR/buffer-seq.cbor beside the buffer)",
)
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="the configuration file (default /etc/estran/edge.toml): paths and settings",
)


def _options(f: Callable[..., None]) -> Callable[..., None]:
    return dir_option(seq_option(config_option(f)))


def _config(
    directory: Path | None, seq_path: Path | None, config_path: Path | None
) -> tuple[BufferConfig, str | None]:
    """The buffer as the daemon opens it: the paths and settings of the configuration
    (`--config`, else /etc/estran/edge.toml when it exists), `--dir`/`--seq-path` over them.
    Returns it and, when no configuration describes that directory, why the settings shown
    are the defaults."""
    from edge.buffer import BufferConfig
    from edge.config import DEFAULT_CONFIG, DEFAULT_DATA_DIR, ConfigError, load_config
    from edge.daemon._wiring import buffer_config

    config = None
    path = config_path if config_path is not None else DEFAULT_CONFIG
    if config_path is not None or path.exists():
        try:
            config = load_config(path)
        except ConfigError as e:
            if directory is None:
                raise click.ClickException(f"{e}\n(use --dir DIR to read the buffer anyway)") from e
    if directory is None:
        directory = config.gateway.buffer_dir if config else DEFAULT_DATA_DIR / "buffer"
    if config is not None and config.gateway.buffer_dir.resolve() == directory.resolve():
        base, note = buffer_config(config), None
    else:
        base = BufferConfig(directory)
        note = f"no configuration names {directory}: default settings shown (--config FILE)"
    if seq_path is None:
        # the daemon's layout: DATA_DIR/buffer and DATA_DIR/buffer-seq.cbor beside it
        beside = directory.parent / f"{directory.name}-seq.cbor"
        seq_path = beside if beside.exists() else Path(base.seq_file)
    return dataclasses.replace(base, directory=directory, seq_path=seq_path), note


@click.group("buffer")
def buffer() -> None:
    """Inspect the durable buffer of readings (read-only)."""


@buffer.command("dump")
@_options
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def dump(
    directory: Path | None, seq_path: Path | None, config_path: Path | None, as_json: bool
) -> None:
    """Every reading still in the buffer (committed, not yet acknowledged), in order."""
    from edge.buffer import BufferFailure, SegmentLog

    try:
        log = SegmentLog.open(_config(directory, seq_path, config_path)[0], read_only=True)
    except BufferFailure as e:
        raise click.ClickException(str(e)) from e
    try:
        for seq, r in log.iter_readings():
            if as_json:
                row = {
                    "seq": seq,
                    "sensor": r.sensor,
                    "quantity": r.quantity,
                    "unit": r.unit,
                    "ts_ms": r.ts_ms,
                    "value": r.value,
                }
                click.echo(json.dumps(row, separators=(",", ":")))
            else:
                when = datetime.fromtimestamp(r.ts_ms / 1000, UTC).isoformat(
                    timespec="milliseconds"
                )
                unit = f" {r.unit}" if r.unit else ""
                alarm = "  ALARM" if r.flags & 2 else ""
                click.echo(
                    f"{seq:>10}  {when}  {r.sensor}  {r.quantity} = {r.value!r}{unit}{alarm}"
                )
    except BufferFailure as e:
        raise click.ClickException(str(e)) from e
    finally:
        log.close()


@buffer.command("verify")
@_options
def verify(directory: Path | None, seq_path: Path | None, config_path: Path | None) -> None:
    """Read and check every byte: exit 0 if the buffer is sound, 1 with the problems listed."""
    from edge.buffer import verify_buffer

    report = verify_buffer(_config(directory, seq_path, config_path)[0])
    for note in report.notes:
        click.echo(f"note: {note}")
    for problem in report.problems:
        click.echo(f"PROBLEM: {problem}")
    summary = f"{report.segments} segments, {report.blocks} blocks, {report.readings} readings"
    if report.ok:
        click.echo(f"sound: {summary}")
        return
    click.echo(f"NOT SOUND ({len(report.problems)} problems): {summary}")
    raise SystemExit(1)


@buffer.command("stats")
@_options
@click.option("--json", "as_json", is_flag=True)
def stats(
    directory: Path | None, seq_path: Path | None, config_path: Path | None, as_json: bool
) -> None:
    """Depth, oldest age, bytes, dropped counts."""
    from edge.buffer import BufferFailure, SegmentLog

    cfg, settings_note = _config(directory, seq_path, config_path)
    try:
        log = SegmentLog.open(cfg, read_only=True)
    except BufferFailure as e:
        raise click.ClickException(str(e)) from e
    st = log.stats()
    recovery = log.recovery
    log.close()
    now_ms = int(time.time() * 1000)
    d = st.as_dict(now_ms)
    d["recovery_notes"] = recovery.notes
    d["recovery_problems"] = recovery.problems
    d["directory"] = cfg.path
    d["seq_file"] = cfg.seq_file
    d["settings"] = "defaults" if settings_note else "configuration"
    if as_json:
        click.echo(json.dumps(d))
        return
    age = st.oldest_age_s(now_ms)
    click.echo(f"depth          {st.depth:,} readings not yet acknowledged")
    if st.oldest_ts_ms is not None:
        when = datetime.fromtimestamp(st.oldest_ts_ms / 1000, UTC).isoformat(timespec="seconds")
        click.echo(f"oldest         {when} ({_age(age)} ago)")
    click.echo(
        f"bytes          {st.bytes:,} in {st.segments} segments (quota {st.quota_bytes:,}, {st.policy})"
    )
    click.echo(f"sequence       {st.durable_seq:,} durable, next {st.next_seq:,}")
    click.echo(f"dropped        {st.dropped_total:,}")
    for sensor, n in sorted(st.dropped_by_sensor.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {sensor:<24} {n:,}")
    if st.quarantined_readings or st.quarantined_files:
        click.echo(
            f"quarantined    {st.quarantined_readings:,} readings lost, {st.quarantined_files} files set aside"
        )
    if settings_note:
        click.echo(f"note: {settings_note}")
    for note in recovery.notes:
        click.echo(f"note: {note}")
    for problem in recovery.problems:
        click.echo(f"PROBLEM: {problem}")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


__all__ = ["buffer"]
