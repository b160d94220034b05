"""The real daemon's parts, built from the configuration: the one place that maps the
configuration onto the buffer (edge.buffer), the sources (edge.sources.serial,
edge.sources.ble) and the uplink (edge.uplink). Imports are lazy: a source or an uplink
is imported when the configuration has one (a gateway without an uplink never loads
aiomqtt, one without BLE never loads bleak; edge/tests/test_daemon_imports.py checks it)."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from edge.config import EdgeConfig
from edge.daemon._daemon import DaemonUplink, Wiring
from edge.daemon._intake import Intake
from edge.daemon._supervisor import TaskSpec

if TYPE_CHECKING:
    from edge.buffer import BlockLog, Buffer, BufferConfig
    from edge.sources.ble import BackendSpec, BleDeviceConfig, BleOptions
    from edge.sources.serial import SerialPortConfig

log = logging.getLogger("estran.edge.daemon")


def software_version(distribution: str = "estran") -> str | None:
    """The installed version of `distribution` (None when it is not installed): the
    ``Version:`` of the first ``NAME-*.dist-info/METADATA`` on `sys.path`, as
    `importlib.metadata.version` finds it, without importing importlib.metadata (its email
    parser, zipfile, csv...: ~2.7 MB of the daemon's RSS, docs/benchmarks.md)."""
    prefix = distribution.replace("-", "_").lower() + "-"
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in names:
            if not (name.lower().startswith(prefix) and name.endswith(".dist-info")):
                continue
            try:
                with open(os.path.join(entry or ".", name, "METADATA"), encoding="utf-8") as f:
                    for line in f:
                        if not line.strip():
                            break  # the end of the headers
                        if line.startswith("Version:"):
                            return line.partition(":")[2].strip()
            except OSError:
                continue
    return None


def buffer_config(config: EdgeConfig) -> BufferConfig:
    """The buffer the configuration describes: its paths and settings, as the daemon opens
    it (and `estran edge buffer` inspects it)."""
    from edge.buffer import BufferConfig

    b = config.buffer
    return BufferConfig(
        directory=config.gateway.buffer_dir,
        quota_bytes=b.quota_bytes,
        max_age_s=b.max_age_s,
        policy=b.policy,
        commit_interval_s=b.commit_interval_s,
        commit_readings=b.commit_readings,
        segment_bytes=b.segment_bytes,
        seq_path=config.gateway.buffer_seq_file,
        preallocate=True,  # a commit writes in place: no journal write per commit
    )


def open_log(config: EdgeConfig) -> Buffer:
    from edge.buffer import SegmentLog

    config.gateway.buffer_dir.mkdir(parents=True, exist_ok=True)
    return SegmentLog.open(buffer_config(config))


def config_key(value: object) -> object:
    """A value that compares by content, for deciding on reload whether a source changed.
    Dataclasses compare by content already, but not every value inside them does (a Modbus
    `RegisterMap` built from an inline table compares by identity): those with `as_dict`
    are compared by it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            tuple((f.name, config_key(getattr(value, f.name))) for f in dataclasses.fields(value)),
        )
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), config_key(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(config_key(v) for v in value)
    as_dict = getattr(value, "as_dict", None)
    if callable(as_dict):
        return (type(value).__name__, config_key(as_dict()))
    return value


def _serial_runner(port: SerialPortConfig, intake: Intake) -> TaskSpec:
    async def run() -> None:
        from edge.sources.serial import SerialSource

        await SerialSource(port).run(intake)

    return TaskSpec(port.source_name, config_key(port), run)


def _ble_runner(
    name: str,
    backend: BackendSpec,
    devices: tuple[BleDeviceConfig, ...],
    options: BleOptions,
    adapter_name: str,
    intake: Intake,
) -> TaskSpec:
    async def run() -> None:
        from edge.sources.ble import BleSource

        source = BleSource(
            devices, backend=backend, name=name, adapter_name=adapter_name, options=options
        )
        await source.run(intake)

    return TaskSpec(name, config_key((backend, devices, options, adapter_name)), run)


def sources(config: EdgeConfig, intake: Intake) -> list[TaskSpec]:
    specs = [_serial_runner(port, intake) for port in config.serial]
    ble = config.ble
    if ble is not None and ble.devices:
        specs.append(
            _ble_runner(
                ble.source_name,
                ble.backend,
                ble.devices,
                ble.options,
                f"estran-{config.gateway.id}",  # seeds a bumble adapter's address
                intake,
            )
        )
    return specs


def read_credentials(path: Path) -> tuple[str, str | None]:
    """`username:password` on one line (what `estran edge enroll` writes, mode 0600)."""
    text = path.read_text().strip()
    username, sep, password = text.partition(":")
    if not username or "\n" in text:
        raise ValueError(f"{path}: expected username:password on one line")
    return username, password if sep else None


def uplink(config: EdgeConfig, buffer: BlockLog) -> DaemonUplink | None:
    from edge.uplink import Uplink, UplinkConfig

    u = config.uplink
    if u is None:
        return None
    username = password = None
    if u.credentials_file is not None:  # read at each start: a re-enrollment is picked up
        username, password = read_credentials(u.credentials_file)
    return Uplink(
        buffer,
        UplinkConfig(
            gateway_id=config.gateway.id,
            broker=u.broker,
            state_dir=config.gateway.data_dir,
            protocol=u.protocol,
            backlog_rate=u.backlog_rate,
            backlog_burst=u.backlog_burst,
            state_interval_s=u.state_interval_s,
            keepalive_s=u.keepalive_s,
            compress=u.compress,
            # the buffer writer tells the uplink of each commit (Daemon: writer.on_commit):
            # the poll is a fallback, once a second rather than ten times
            poll_interval_s=1.0,
            software=software_version(),
            username=username,
            password=password,
            ca_file=u.ca_file,  # mqtts://; None: the CA enrollment kept in data_dir
        ),
    )


def default_wiring() -> Wiring:
    return Wiring(open_log=open_log, sources=sources, uplink=uplink, software=software_version())


__all__ = [
    "buffer_config",
    "config_key",
    "default_wiring",
    "open_log",
    "read_credentials",
    "software_version",
    "sources",
    "uplink",
]
