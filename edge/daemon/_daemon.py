"""The gateway daemon: sources, strategies, buffer, uplink, status, systemd; reload and stop.

    sources (one supervised task each) ──▶ Intake ──▶ bounded queue ──▶ BufferWriter ──▶ SegmentLog
                                                                           uplink ◀──┘
The writer appends and alone commits (edge.buffer.ReadingLog); the uplink reads committed
blocks and acknowledges them (edge.buffer.BlockLog); the hub's configurations come in through
`Daemon.apply` (edge.config_apply, which does not import this package).
Tasks: `buffer-writer`, `report-ticker` (closes aggregate windows), `systemd-watchdog` (under
systemd), `control` (signals: SIGHUP reload, SIGTERM/SIGINT stop), and one supervised task per
source plus `uplink`. The core tasks run in a TaskGroup: if one of them fails the daemon
stops (committing the buffer) and systemd restarts it; a source or the uplink failing is
only logged, counted and restarted (edge.daemon.Supervisor).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from edge.buffer import BlockLog, Buffer, BufferStats
from edge.config import EdgeConfig, load_config, pending_restart
from edge.daemon._intake import Intake
from edge.daemon._notify import SystemdNotifier
from edge.daemon._supervisor import Supervisor, TaskSpec
from edge.daemon._writer import BufferWriter, WriterStats
from edge.health import BufferStatus, HealthRegistry, QueueStatus, StatusServer, UplinkStatus
from protocols.reading import Reading

log = logging.getLogger("estran.edge.daemon")

CORE_TASKS = ("uplink", "fleet")  # supervised, but not sources: shown under "tasks" in the status
TICK_S = 1.0  # aggregate windows close within a second of their end
STATUS_INTERVAL_S = 30.0  # STATUS= line for `systemctl status`
# What an enrollment leaves in the data directory (edge.identity.STATE_FILE and
# CREDENTIALS_FILE: a test keeps them equal). Looked for here, so that a daemon that is not
# enrolled never imports edge.config_apply, and with it aiomqtt and edge.identity's
# cryptography: about 12 MB of RSS (`estran bench edge`: 45.9 MB before, with 50 sensors).
ENROLLMENT_FILES = ("state.json", "credentials")
# Exit status of a clean stop asked for a restart (the hub's `reboot` command): systemd starts
# the daemon again (Restart=always; the unit lists it in SuccessExitStatus=). EX_TEMPFAIL.
EX_RESTART = os.EX_TEMPFAIL  # 75


class DaemonUplink(Protocol):
    """What the daemon needs of its uplink (edge.uplink.Uplink has it)."""

    async def run(self) -> None:
        """Drain the buffer to the hub until cancelled."""

    def attach(self, health: HealthRegistry) -> None:
        """Report `health` in its state messages; hear of sources going up or down."""

    def status(self) -> UplinkStatus:
        """The status' `uplink` section."""

    def drain_now(self) -> None:
        """Send the backlog now, without its rate limit (the hub's `flush`)."""

    def committed(self) -> None:
        """The buffer writer committed: send what is new now, not at the next poll."""


@dataclasses.dataclass(frozen=True, slots=True)
class Wiring:
    """How the daemon builds what it runs: the buffer, the sources of a configuration, the
    uplink (None: the configuration has none). `edge.daemon.default_wiring()` builds the real
    ones (edge.buffer, edge.sources, edge.uplink); tests and benchmarks give their own."""

    open_log: Callable[[EdgeConfig], Buffer]
    sources: Callable[[EdgeConfig, Intake], list[TaskSpec]]
    uplink: Callable[[EdgeConfig, BlockLog], DaemonUplink | None]
    software: str | None = None


@dataclasses.dataclass(slots=True)
class ApplyOutcome:
    """What applying a configuration did (`Daemon.apply`, `Daemon.reload`): refused (`ok`
    False, `error` says why, the running configuration stays), or which tasks started,
    stopped, restarted or stayed, which sensors' settings changed, which settings wait for
    a restart."""

    ok: bool
    error: str | None = None
    started: list[str] = dataclasses.field(default_factory=list)
    stopped: list[str] = dataclasses.field(default_factory=list)
    restarted: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    sensors: list[str] = dataclasses.field(default_factory=list)
    needs_restart: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (
                ("started", self.started),
                ("stopped", self.stopped),
                ("restarted", self.restarted),
                ("sensor settings changed:", self.sensors),
            )
            if names
        ]
        return "; ".join(parts) or "nothing changed"


class Daemon:
    def __init__(
        self,
        config: EdgeConfig,
        wiring: Wiring,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self.config = config
        self.wiring = wiring
        self.notifier = notifier if notifier is not None else SystemdNotifier()
        self.health = HealthRegistry(config.gateway.id, wiring.software)
        d = config.daemon
        self.queue: asyncio.Queue[Reading] = asyncio.Queue(maxsize=d.queue_size)
        self.intake = Intake(self.health, self.queue, d.put_timeout_s)
        self.supervisor = Supervisor(self.health, d.restart_min_s, d.restart_max_s)
        self.writer: BufferWriter | None = None
        self.log: Buffer | None = None
        self.uplink: DaemonUplink | None = None
        self.reloads = 0
        self.exit_status = 0  # EX_RESTART after request_restart()
        self.ready = asyncio.Event()
        self.stopped = asyncio.Event()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._reload_requested = False
        self._sources_lock = asyncio.Lock()  # reload and rescan, one at a time
        self._signals: list[signal.Signals] = []

    # -- control -------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    def request_restart(self) -> None:
        """A clean stop that exits with EX_RESTART, so that systemd starts the daemon again
        (the hub's `reboot`: the daemon restarts, never the machine)."""
        log.warning("restart requested: stopping, exit status %d", EX_RESTART)
        self.exit_status = EX_RESTART
        self.request_stop()

    async def rescan(self) -> list[str]:
        """Restart every source (serial ports reopened, the BLE scan started again); the
        buffer, the uplink and the fleet link keep running. Returns the sources restarted."""
        async with self._sources_lock:
            timeout = self.config.daemon.stop_timeout_s
            names = [n for n in self.supervisor.names if n not in CORE_TASKS]
            for name in names:
                spec = self.supervisor.specs[name]
                await self.supervisor.stop(name, timeout)
                self.health.set_state(name, "starting", "rescan")
                self.supervisor.start(spec)
            log.info("rescan: restarted %s", ", ".join(names) or "no sources")
            return names

    async def flush(self) -> str:
        """Commit the buffer now (what is queued included) and ask the uplink to send its
        backlog now."""
        writer = self.writer
        if writer is None:
            raise RuntimeError("the buffer is not open")
        count = writer.drain()
        if self.uplink is None:
            sent = "no uplink"
        else:
            self.uplink.drain_now()
            sent = "uplink sending its backlog now"
        log.info("flush: buffer committed (%d queued readings), %s", count, sent)
        return f"buffer committed ({count} queued readings); {sent}"

    # -- run -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT (or `request_stop`); the buffer is committed on the way out."""
        config = self.config
        self._install_signals()
        self.log = self.wiring.open_log(config)
        writer = self.writer = BufferWriter(
            self.log, self.queue, self.health, config.buffer.commit_interval_s
        )
        self._wire_health()
        try:
            async with (
                StatusServer(config.gateway.status_socket, self.health.snapshot),
                asyncio.TaskGroup() as tg,
            ):
                core = [
                    tg.create_task(writer.run(), name="buffer-writer"),
                    tg.create_task(self._tick_loop(), name="report-ticker"),
                ]
                if self.notifier.watchdog_s:
                    core.append(tg.create_task(self._watchdog_loop(), name="systemd-watchdog"))
                self._start_all(config)
                self.ready.set()
                self.notifier.ready(self._status_line())
                log.info(
                    "running: gateway %s, %d sources, %d sensors, status on %s",
                    config.gateway.id,
                    len(self.supervisor.names),
                    len(self.health.sensors),
                    config.gateway.status_socket,
                )
                await self._control_loop()
                self.notifier.stopping()
                log.info("stopping")
                await self._stop_producers()
                writer.stop()
                for task in core:
                    task.cancel()
        finally:
            await self._stop_producers()
            self._close_buffer()
            self._remove_signals()
            self.notifier.close()
            self.stopped.set()

    async def _control_loop(self) -> None:
        last_status = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STATUS_INTERVAL_S):  # not wait_for: see _supervisor
                    await self._wake.wait()
            self._wake.clear()
            if self._reload_requested and not self._stop.is_set():
                self._reload_requested = False
                await self.reload()
            if time.monotonic() - last_status >= STATUS_INTERVAL_S:
                last_status = time.monotonic()
                self.notifier.status(self._status_line())

    async def _stop_producers(self) -> None:
        """Sources and uplink cancelled, strategies flushed (open windows are reported)."""
        await self.supervisor.stop_all(self.config.daemon.stop_timeout_s)
        self.intake.enqueue_nowait(self.intake.due(None))

    def _close_buffer(self) -> None:
        writer, self.writer = self.writer, None
        log_, self.log = self.log, None
        if writer is not None:
            try:
                count = writer.drain()
                log.info("buffer committed (%d queued readings written)", count)
            except Exception:
                log.exception("could not write the queued readings to the buffer")
        if log_ is not None:
            try:
                log_.close()
            except Exception:
                log.exception("buffer close failed")

    # -- sources, uplink -----------------------------------------------------------------

    def _specs(self, config: EdgeConfig) -> dict[str, TaskSpec]:
        specs = {spec.name: spec for spec in self.wiring.sources(config, self.intake)}
        if self.log is not None and config.uplink is not None:
            uplink_config = config.uplink
            log_ = self.log

            async def run_uplink() -> None:
                uplink = self.wiring.uplink(config, log_)
                if uplink is None:
                    await asyncio.Event().wait()  # nothing to send to: idle until cancelled
                    return
                self.uplink = uplink
                uplink.attach(self.health)
                if self.writer is not None:
                    self.writer.on_commit = uplink.committed
                await uplink.run()

            specs["uplink"] = TaskSpec("uplink", (uplink_config, config.gateway), run_uplink)
        if config.path is not None and enrolled(config.gateway.data_dir):
            from edge.config_apply import JobHandler, fleet_link  # signed hub documents

            def updates(gateway_id: str) -> JobHandler:
                """Pull-mode update jobs, on the same link."""
                from edge.update import UpdateAgent

                assert config.path is not None
                return UpdateAgent(config.gateway.data_dir, config.path, gateway_id)

            if (link := fleet_link(self, config, updates=updates)) is not None:
                specs["fleet"] = TaskSpec("fleet", (config.gateway, config.path), link)
        return specs

    def _start_all(self, config: EdgeConfig) -> None:
        _, pending = self.intake.configure(config.sensors)
        self.intake.enqueue_nowait(pending)
        specs = self._specs(config)
        self._configure_health(config, specs)
        for spec in specs.values():
            self.supervisor.start(spec)

    def _configure_health(self, config: EdgeConfig, specs: dict[str, TaskSpec]) -> None:
        sensors: dict[str, str | None] = {}
        for port in config.serial:
            for device in port.devices:
                sensors[device.sensor] = port.source_name
        if config.ble is not None:
            for bdevice in config.ble.devices:
                sensors[bdevice.sensor] = config.ble.source_name
        for spec in specs.values():  # sources given by the wiring that the file does not name
            for sensor in spec.sensors:
                sensors.setdefault(sensor, spec.name)
        tasks = [name for name in specs if name in CORE_TASKS]
        self.health.configure(sensors, [n for n in specs if n not in CORE_TASKS], tasks)
        self.health.config = {
            "path": str(config.path) if config.path else None,
            "loaded_ms": int(time.time() * 1000),
            "reloads": self.reloads,
        }

    async def reload(self) -> ApplyOutcome:
        """Read the configuration file again and apply it (SIGHUP, the hub's `reload`)."""
        async with self._sources_lock:
            self.notifier.reloading()
            path = self.config.path
            try:
                if path is None:
                    raise ValueError("the daemon was not started from a file")
                new = load_config(path)
            except Exception as e:
                return self._refused(str(e))
            return await self._apply(new)

    async def apply(self, config: EdgeConfig) -> ApplyOutcome:
        """Run `config` from now on, changing only what changed: sources whose settings
        changed are restarted, new ones started, removed ones stopped; sensor settings are
        swapped in place; the buffer is never touched (the settings the schema flags
        ``restart`` -- the buffer's, the gateway's, the queue size -- wait for a restart:
        `needs_restart`). What a configuration pushed by the
        hub goes through (edge.config_apply), as a reload does with the file."""
        async with self._sources_lock:
            self.notifier.reloading()
            return await self._apply(config)

    def _refused(self, error: str) -> ApplyOutcome:
        log.error("reload refused, the running configuration stays:\n%s", error)
        self.health.config["last_reload_error"] = error
        self.notifier.ready(self._status_line())
        return ApplyOutcome(False, error)

    async def _apply(self, new: EdgeConfig) -> ApplyOutcome:
        result = ApplyOutcome(True)
        # what the schema flags `restart` keeps its running value (edge.config.pending_restart)
        result.needs_restart, new = pending_restart(self.config, new)
        self.intake.put_timeout_s = new.daemon.put_timeout_s
        self.supervisor.restart_min_s = new.daemon.restart_min_s
        self.supervisor.restart_max_s = new.daemon.restart_max_s

        result.sensors, pending = self.intake.configure(new.sensors)
        self.intake.enqueue_nowait(pending)
        running = dict(self.supervisor.specs)
        specs = self._specs(new)
        timeout = new.daemon.stop_timeout_s
        for name, spec in running.items():
            if name not in specs:
                await self.supervisor.stop(name, timeout)
                result.stopped.append(name)
            elif specs[name].key != spec.key:
                await self.supervisor.stop(name, timeout)
                result.restarted.append(name)
            else:
                result.unchanged.append(name)
        self.config = new
        self.reloads += 1
        self._configure_health(new, specs)
        for name, spec in specs.items():
            if name not in self.supervisor:
                self.supervisor.start(spec)
                if name not in result.restarted:
                    result.started.append(name)
        log.info("configuration reloaded: %s", result.summary())
        if result.needs_restart:
            log.warning(
                "changes to %s take effect at the next restart (the buffer is never reopened "
                "on reload)",
                ", ".join(result.needs_restart),
            )
        self.health.set_restart_pending(result.needs_restart)
        self.health.config["last_reload"] = {
            "ok": True,
            "summary": result.summary(),
            "needs_restart": result.needs_restart,
        }
        self.notifier.ready(self._status_line())
        return result

    # -- periodic ------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            for reading in self.intake.due(int(time.time() * 1000)):
                await self.intake.enqueue(reading)

    async def _watchdog_loop(self) -> None:
        """WATCHDOG=1 at half the systemd period, only while the buffer writer progresses: a
        writer stuck on a dead disk lets systemd restart us."""
        period = self.notifier.watchdog_s or 0.0
        stale_after = max(period, 3 * self.config.buffer.commit_interval_s + 1.0)
        while True:
            writer = self.writer
            if writer is not None and time.monotonic() - writer.last_progress < stale_after:
                self.notifier.watchdog()
            else:
                log.error("buffer writer stalled: not feeding the systemd watchdog")
            await asyncio.sleep(period / 2)

    # -- health ----------------------------------------------------------------------------

    def _wire_health(self) -> None:
        def queue() -> QueueStatus:
            return {"depth": self.queue.qsize(), "capacity": self.queue.maxsize}

        def buffer() -> BufferStatus:
            stats = self.log.stats() if self.log is not None else None
            writer = self.writer.stats() if self.writer is not None else None
            return buffer_status(stats, writer, self.config.buffer.quota_bytes, time.time())

        def uplink() -> UplinkStatus:
            if self.config.uplink is None:
                return {"state": "disabled"}
            out: UplinkStatus = {"state": "starting"}
            if self.uplink is not None:
                out = self.uplink.status()
            task = self.health.tasks.get("uplink")
            if task is not None:
                out["crashes"] = task.crashes
                out["last_crash"] = task.last_crash
            return out

        self.health.queue = queue
        self.health.buffer = buffer
        self.health.uplink = uplink

    def _status_line(self) -> str:
        states = [s.state for s in self.health.sources.values()]
        up = sum(1 for s in states if s == "up")
        depth = self.queue.qsize()
        return f"{up}/{len(states)} sources up, {len(self.health.sensors)} sensors, queue {depth}"

    # -- signals ---------------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGTERM: self.request_stop,
            signal.SIGINT: self.request_stop,
            signal.SIGHUP: self.request_reload,
        }
        for sig, handler in handlers.items():
            try:
                loop.add_signal_handler(sig, handler)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread (tests), or no signals on this platform
            self._signals.append(sig)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals.clear()


def enrolled(data_dir: Path) -> bool:
    """Whether `data_dir` holds an enrollment (`estran edge enroll`): the fleet link runs."""
    return all((data_dir / name).exists() for name in ENROLLMENT_FILES)


def buffer_status(
    stats: BufferStats | None, writer: WriterStats | None, quota_bytes: int, now_s: float
) -> BufferStatus:
    """The status' `buffer` section: the buffer's figures and its writer's."""
    out: BufferStatus = {}
    if stats is not None:
        out = {
            "depth": stats.depth,
            "pending": stats.pending,
            "oldest_ts_ms": stats.oldest_ts_ms,
            "bytes": stats.bytes,
            "segments": stats.segments,
            "quota_bytes": stats.quota_bytes,
            "policy": stats.policy,
            "durable_seq": stats.durable_seq,
            "next_seq": stats.next_seq,
            "acked_ranges": stats.acked_ranges,
            "dropped_by_sensor": dict(stats.dropped_by_sensor),
            "dropped_total": stats.dropped_total,
            "dropped": stats.dropped_total,
            "quarantined_readings": stats.quarantined_readings,
            "quarantined_files": stats.quarantined_files,
        }
    if writer is not None:
        out["appended"] = writer.appended
        out["commits"] = writer.commits
        out["commit_max_ms"] = writer.commit_max_ms
        out["commit_mean_ms"] = writer.commit_mean_ms
        out["refused"] = dict(writer.refused)
        out["errors"] = writer.errors
        out["last_error"] = writer.last_error
    out["quota_bytes"] = quota_bytes  # the configured one, also before the buffer is open
    oldest = out.get("oldest_ts_ms")
    if oldest is not None:
        out["oldest_age_s"] = round(now_s - oldest / 1000, 1)
    return out


__all__ = [
    "EX_RESTART",
    "ApplyOutcome",
    "Daemon",
    "DaemonUplink",
    "Wiring",
    "buffer_status",
]
