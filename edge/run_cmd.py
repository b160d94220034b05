"""`estran edge run --config FILE`: the gateway process, first version: the uplink draining
the buffer to the hub. (The daemon issue adds the sources that fill the buffer.)

The configuration is TOML, in the layout of the gateway configuration file::

    [gateway]
    id = "gw-017"
    data_dir = "/var/lib/estran"        # the buffer lives in <data_dir>/buffer

    [uplink]
    broker = "mqtt://hub.example.org:1883"
    # protocol = "auto"                 # auto (MQTT 5, else 3.1.1), "5" or "3.1.1"
    # backlog_rate = 2000               # readings/s when draining a backlog (0: unlimited)
    # backlog_burst = 8192
    # state_interval_s = 60
    # keepalive_s = 30
    # compress = 6                      # zlib level of data batches (0: off)
    # credentials_file = "credentials"  # "username:password" (what `estran edge enroll` writes)

    [buffer]
    # quota_bytes = 268435456
    # policy = "drop_oldest"            # or "refuse_new"
"""

from __future__ import annotations

import asyncio
import logging
import signal
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from edge.cli import edge

_UPLINK_KEYS = {
    "protocol": str,
    "backlog_rate": float,
    "backlog_burst": int,
    "state_interval_s": float,
    "keepalive_s": int,
    "compress": int,
    "window": int,
}
_BUFFER_KEYS = {
    "quota_bytes": int,
    "policy": str,
    "commit_interval_s": float,
    "commit_readings": int,
    "segment_bytes": int,
    "max_age_s": float,
}


@dataclass(frozen=True, slots=True)
class RunConfig:
    gateway_id: str
    data_dir: Path
    broker: str
    uplink: dict[str, Any] = field(default_factory=dict)
    buffer: dict[str, Any] = field(default_factory=dict)
    log_level: str = "info"
    credentials_file: Path | None = None

    @property
    def buffer_dir(self) -> Path:
        return self.data_dir / "buffer"


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise click.ClickException(f"[{name}] must be a table")
    return value


def _typed(section: dict[str, Any], name: str, keys: dict[str, type]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in section.items():
        if key not in keys:
            continue
        kind = keys[key]
        ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if not ok or isinstance(value, bool):
            raise click.ClickException(f"{name}.{key}: expected {kind.__name__}")
        out[key] = kind(value)
    return out


def load_run_config(path: Path) -> RunConfig:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise click.ClickException(f"{path}: {e}") from e
    gateway = _section(data, "gateway")
    uplink = _section(data, "uplink")
    gateway_id = gateway.get("id")
    data_dir = gateway.get("data_dir")
    broker = uplink.get("broker")
    for key, value in (
        ("gateway.id", gateway_id),
        ("gateway.data_dir", data_dir),
        ("uplink.broker", broker),
    ):
        if not isinstance(value, str) or not value:
            raise click.ClickException(f"{path}: {key} is required (a string)")
    assert isinstance(gateway_id, str) and isinstance(data_dir, str) and isinstance(broker, str)
    base = path.parent
    credentials = uplink.get("credentials_file")
    if credentials is not None and not isinstance(credentials, str):
        raise click.ClickException(f"{path}: uplink.credentials_file must be a path (a string)")
    return RunConfig(
        gateway_id=gateway_id,
        data_dir=(base / data_dir) if not Path(data_dir).is_absolute() else Path(data_dir),
        broker=broker,
        uplink=_typed(uplink, "uplink", _UPLINK_KEYS),
        buffer=_typed(_section(data, "buffer"), "buffer", _BUFFER_KEYS),
        log_level=str(gateway.get("log_level", "info")),
        credentials_file=None if credentials is None else base / credentials,
    )


def read_credentials(path: Path) -> tuple[str, str | None]:
    """`username:password` on one line."""
    try:
        text = path.read_text().strip()
    except OSError as e:
        raise click.ClickException(f"{path}: {e.strerror or e}") from e
    username, sep, password = text.partition(":")
    if not username or "\n" in text:
        raise click.ClickException(f"{path}: expected username:password on one line")
    return username, password if sep else None


async def run_gateway(config: RunConfig) -> None:
    """Open the buffer and drain it until cancelled."""
    from edge.buffer import BufferConfig, SegmentLog
    from edge.uplink import Uplink, UplinkConfig

    config.buffer_dir.mkdir(parents=True, exist_ok=True)
    username = password = None
    if config.credentials_file is not None:
        username, password = read_credentials(config.credentials_file)
    buffer = SegmentLog.open(BufferConfig(directory=config.buffer_dir, **config.buffer))
    try:
        uplink = Uplink(
            buffer,
            UplinkConfig(
                gateway_id=config.gateway_id,
                broker=config.broker,
                state_dir=config.data_dir,
                software=_version(),
                username=username,
                password=password,
                **config.uplink,
            ),
        )
        await uplink.run()
    finally:
        buffer.close()


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("estran")
    except PackageNotFoundError:
        return None


@edge.command("run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The gateway configuration file (TOML).",
)
@click.option("--log-level", default=None, help="debug, info, warning (default: the file's).")
def run(config_path: Path, log_level: str | None) -> None:
    """Run the gateway: drain the buffer to the hub, acknowledged end to end."""
    from edge.uplink import UplinkError

    config = load_run_config(config_path)
    logging.basicConfig(
        level=getattr(logging, (log_level or config.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(_serve(config))
    except UplinkError as e:
        raise click.ClickException(str(e)) from e


async def _serve(config: RunConfig) -> None:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main.cancel)
    try:
        await run_gateway(config)
    except asyncio.CancelledError:
        logging.getLogger("estran.edge").info("gateway stopped")


__all__ = ["RunConfig", "load_run_config", "read_credentials", "run", "run_gateway"]
