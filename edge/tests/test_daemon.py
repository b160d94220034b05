"""The daemon with scripted sources and an in-memory buffer: supervision isolates failures,
back-pressure bounds memory, SIGHUP applies only what changed, SIGTERM commits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from edge.config import SensorConfig, load_config
from edge.daemon import ApplyOutcome, Daemon, Intake, Supervisor, SystemdNotifier, TaskSpec
from edge.health import BufferStatus, HealthRegistry
from edge.tests.support.daemon import FakeWiring, Plan, port, wait_until, write_config
from protocols.reading import Reading

NO_SYSTEMD = SystemdNotifier({})


async def start(daemon: Daemon) -> asyncio.Task[None]:
    task = asyncio.create_task(daemon.run(), name="daemon-under-test")
    await asyncio.wait_for(daemon.ready.wait(), 5)
    return task


async def stop(daemon: Daemon, task: asyncio.Task[None]) -> None:
    daemon.request_stop()
    await asyncio.wait_for(task, 10)


async def test_a_crashing_source_is_restarted_with_backoff_and_never_stops_the_others(
    tmp_path: Path,
) -> None:
    fakes = FakeWiring({"/dev/steady": Plan(), "/dev/crashy": Plan(crash_after=2)})
    path = write_config(
        tmp_path / "edge.toml",
        tmp_path / "d",
        port("/dev/steady", "ok") + port("/dev/crashy", "bad"),
    )
    daemon = Daemon(load_config(path), fakes.wiring(), NO_SYSTEMD)
    task = await start(daemon)
    crashy = fakes.plans["/dev/crashy"]
    steady = fakes.plans["/dev/steady"]
    await wait_until(lambda: len(crashy.starts) >= 4)
    before = steady.delivered
    await asyncio.sleep(0.1)
    assert steady.delivered > before  # still reading while the other crashes
    assert len(steady.starts) == 1
    gaps = [b - a for a, b in zip(crashy.starts, crashy.starts[1:], strict=False)]
    # backoff 0.05, 0.1, 0.2 (+ the 0.01 s the source ran): never sooner
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2
    health = daemon.health.snapshot()
    source = health["sources"]["serial:/dev/crashy"]  # type: ignore[index]
    assert source["crashes"] >= 3
    assert "boom on /dev/crashy" in source["last_crash"]["error"]
    assert health["sources"]["serial:/dev/steady"]["crashes"] == 0  # type: ignore[index]
    await stop(daemon, task)
    assert fakes.log.closed


async def test_supervisor_restarts_a_source_that_returns() -> None:
    health = HealthRegistry("gw")
    supervisor = Supervisor(health, 0.01, 0.01)
    runs = 0

    async def returns() -> None:
        nonlocal runs
        runs += 1

    supervisor.start(TaskSpec("quitter", None, returns))
    await wait_until(lambda: runs >= 3)
    await supervisor.stop_all(1.0)
    assert health.sources["quitter"].crashes >= 2
    assert health.sources["quitter"].last_crash == {
        "error": "run() returned",
        "ts_ms": health.sources["quitter"].last_crash["ts_ms"],  # type: ignore[index]
    }


async def test_a_source_that_swallows_one_cancel_still_stops() -> None:
    supervisor = Supervisor(HealthRegistry("gw"))
    stopped = asyncio.Event()

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # as 3.11's wait_for may do
            await asyncio.sleep(10)
        try:
            await asyncio.sleep(10)
        finally:
            stopped.set()

    supervisor.start(TaskSpec("stubborn", None, stubborn))
    await asyncio.sleep(0.01)
    assert await supervisor.stop("stubborn", 2.0)
    assert stopped.is_set()


def reading(n: int) -> Reading:
    return Reading("s", "q", None, n, n)


async def test_back_pressure_a_full_queue_makes_sources_wait() -> None:
    health = HealthRegistry("gw")
    queue: asyncio.Queue[Reading] = asyncio.Queue(maxsize=16)
    intake = Intake(health, queue, put_timeout_s=5.0)
    intake.configure({"s": SensorConfig("s")})
    got: list[int] = []
    high = 0

    async def slow_consumer() -> None:
        nonlocal high
        while len(got) < 100:
            high = max(high, queue.qsize())
            got.append(int((await queue.get()).value))  # type: ignore[call-overload]
            await asyncio.sleep(0.001)

    consumer = asyncio.create_task(slow_consumer())
    for n in range(100):
        await intake.put(reading(n))
    await asyncio.wait_for(consumer, 5)
    assert got == list(range(100))  # nothing lost, in order
    assert high <= 16
    assert health.queue_waits > 0
    assert health.queue_dropped == 0


async def test_a_queue_that_stays_full_drops_and_counts_instead_of_hanging() -> None:
    health = HealthRegistry("gw")
    health.configure({"s": "src"}, ["src"])
    queue: asyncio.Queue[Reading] = asyncio.Queue(maxsize=16)
    intake = Intake(health, queue, put_timeout_s=0.05)
    for n in range(18):
        await asyncio.wait_for(intake.put(reading(n)), 1)
    assert queue.qsize() == 16
    assert health.queue_dropped == 2
    assert health.sensors["s"].errors.by_reason["queue_full"] == 2


async def test_sighup_restarts_only_the_changed_sources_and_leaves_the_buffer(
    tmp_path: Path,
) -> None:
    fakes = FakeWiring()
    data = tmp_path / "d"
    sensors = '[sensors.a]\nreport = { mode = "every" }\n'
    path = write_config(
        tmp_path / "edge.toml",
        data,
        port("/dev/a", "a") + port("/dev/b", "b") + port("/dev/gone", "g") + sensors,
    )
    daemon = Daemon(load_config(path), fakes.wiring(), NO_SYSTEMD)
    task = await start(daemon)
    await wait_until(lambda: fakes.log.commits >= 2)
    commits = fakes.log.commits
    write_config(
        path,
        data,
        port("/dev/a", "a")
        + port("/dev/b", "b", interval=5)  # changed
        + port("/dev/new", "n")  # added; /dev/gone removed
        + '[sensors.a]\nreport = { mode = "change", deadband = 1000 }\n',
    )
    os.kill(os.getpid(), signal.SIGHUP)
    await wait_until(lambda: daemon.reloads == 1)
    await wait_until(lambda: len(fakes.plans["/dev/new"].starts) == 1)
    assert len(fakes.plans["/dev/a"].starts) == 1  # untouched
    assert len(fakes.plans["/dev/b"].starts) == 2  # restarted
    assert sorted(daemon.supervisor.names) == ["serial:/dev/a", "serial:/dev/b", "serial:/dev/new"]
    assert fakes.opened == 1 and not fakes.log.closed  # the buffer was not reopened
    await wait_until(lambda: fakes.log.commits > commits)  # and keeps being written
    # sensor a now reports on change only: its counter grows by 1 per sample, so with a
    # deadband of 1000 at most its first sample under the new strategy is stored
    stored = sum(1 for r in fakes.log.durable + fakes.log.pending if r.sensor == "a")
    await asyncio.sleep(0.1)
    assert sum(1 for r in fakes.log.durable + fakes.log.pending if r.sensor == "a") <= stored + 1
    snapshot = daemon.health.snapshot()
    assert "serial:/dev/gone" not in snapshot["sources"]  # type: ignore[operator]
    assert "g" not in snapshot["sensors"]  # type: ignore[operator]
    await stop(daemon, task)


async def test_a_reload_with_errors_keeps_the_running_configuration(tmp_path: Path) -> None:
    fakes = FakeWiring()
    path = write_config(tmp_path / "edge.toml", tmp_path / "d", port("/dev/a", "a"))
    daemon = Daemon(load_config(path), fakes.wiring(), NO_SYSTEMD)
    task = await start(daemon)
    path.write_text(path.read_text() + "\n[sensors.nobody]\n")
    result = await daemon.reload()
    assert not result.ok
    assert "sensors.nobody: no [[serial.devices]]" in (result.error or "")
    assert daemon.supervisor.names == ["serial:/dev/a"]
    assert len(fakes.plans["/dev/a"].starts) == 1
    assert "sensors.nobody" in str(daemon.health.config["last_reload_error"])
    await stop(daemon, task)


async def test_buffer_changes_wait_for_a_restart(tmp_path: Path) -> None:
    fakes = FakeWiring()
    path = write_config(tmp_path / "edge.toml", tmp_path / "d", port("/dev/a", "a"))
    daemon = Daemon(load_config(path), fakes.wiring(), NO_SYSTEMD)
    task = await start(daemon)
    path.write_text(path.read_text().replace('commit_interval = "50ms"', 'commit_interval = "2s"'))
    result = await daemon.reload()
    assert result.ok and result.needs_restart == ["buffer"]
    assert result.unchanged == ["serial:/dev/a"] and not result.restarted
    assert daemon.config.buffer.commit_interval_s == 0.05
    await stop(daemon, task)


async def test_apply_takes_a_configuration_object_and_says_what_it_did(tmp_path: Path) -> None:
    """The daemon's public seam for pushed configurations (edge.config_apply uses it): no
    file read, the wiring untouched, a typed outcome."""
    fakes = FakeWiring()
    path = write_config(tmp_path / "edge.toml", tmp_path / "d", port("/dev/a", "a"))
    daemon = Daemon(load_config(path), fakes.wiring(), NO_SYSTEMD)
    wiring = daemon.wiring
    task = await start(daemon)
    other = tmp_path / "other.toml"
    write_config(other, tmp_path / "d", port("/dev/a", "a", interval=5) + port("/dev/n", "n"))
    text = path.read_text()
    outcome = await daemon.apply(load_config(other))
    assert isinstance(outcome, ApplyOutcome) and outcome.ok and outcome.error is None
    assert outcome.restarted == ["serial:/dev/a"] and outcome.started == ["serial:/dev/n"]
    assert outcome.summary() == "started serial:/dev/n; restarted serial:/dev/a"
    assert daemon.wiring is wiring and path.read_text() == text  # nothing swapped or written
    assert daemon.reloads == 1 and daemon.health.config["last_reload"]["ok"] is True  # type: ignore[index]
    await wait_until(lambda: len(fakes.plans["/dev/n"].starts) == 1)
    # the same again: nothing to do
    again = await daemon.apply(load_config(other))
    assert again.ok and again.unchanged == ["serial:/dev/a", "serial:/dev/n"]
    assert again.summary() == "nothing changed"
    await stop(daemon, task)


async def test_the_buffer_status_is_one_typed_section(tmp_path: Path) -> None:
    fakes = FakeWiring()
    path = write_config(tmp_path / "edge.toml", tmp_path / "d", port("/dev/a", "a"))
    daemon = Daemon(load_config(path), fakes.wiring(), NO_SYSTEMD)
    task = await start(daemon)
    await wait_until(lambda: fakes.log.commits >= 1)
    buffer = daemon.health.snapshot()["buffer"]
    assert isinstance(buffer, dict)
    stats = fakes.log.stats()
    assert set(buffer) == set(BufferStatus.__annotations__)  # every key, none guessed
    assert buffer["depth"] >= stats.depth - 10 and buffer["dropped"] == stats.dropped_total
    assert buffer["commits"] >= 1 and buffer["quota_bytes"] == daemon.config.buffer.quota_bytes
    await stop(daemon, task)


async def test_sigterm_commits_everything_the_sources_handed_over(tmp_path: Path) -> None:
    fakes = FakeWiring({"/dev/a": Plan(period_s=0.001), "/dev/b": Plan(period_s=0.001)})
    body = (
        port("/dev/a", "a")
        + port("/dev/b", "b")
        + '[sensors.b]\nreport = { mode = "aggregate", window = "1h", aggregates = ["count"] }\n'
    )
    path = write_config(tmp_path / "edge.toml", tmp_path / "d", body)
    daemon = Daemon(load_config(path), fakes.wiring(), NO_SYSTEMD)
    task = await start(daemon)
    await wait_until(lambda: fakes.plans["/dev/a"].delivered > 50)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 10)
    log = fakes.log
    assert log.closed and log.pending == []
    a = [r for r in log.durable if r.sensor == "a"]
    assert len(a) == fakes.plans["/dev/a"].delivered  # every sample handed over is committed
    assert [r.value for r in a] == list(range(len(a)))
    # b's hour-long window was still open: its aggregate is reported on stop
    (count,) = [r for r in log.durable if r.sensor == "b"]
    assert count.quantity == "value_count" and count.value == fakes.plans["/dev/b"].delivered
    assert not (tmp_path / "d" / "status.sock").exists()


async def test_a_failing_core_task_stops_the_daemon_and_still_commits(tmp_path: Path) -> None:
    fakes = FakeWiring()
    path = write_config(tmp_path / "edge.toml", tmp_path / "d", port("/dev/a", "a"))
    daemon = Daemon(load_config(path), fakes.wiring(), NO_SYSTEMD)
    task = await start(daemon)
    await wait_until(lambda: fakes.plans["/dev/a"].delivered > 5)

    def broken(readings: object) -> int:
        raise ValueError("disk on fire (a bug, not a BufferFailure)")

    fakes.log.append_many = broken  # type: ignore[method-assign, assignment]
    with pytest.raises(ExceptionGroup):
        await asyncio.wait_for(task, 10)
    assert fakes.log.closed
    assert daemon.supervisor.names == []


def test_reload_keys_compare_by_content_even_with_inline_register_maps() -> None:
    import tomllib

    from edge.config import parse_config
    from edge.daemon._wiring import config_key

    text = """
[gateway]
id = "gw"
[[serial]]
path = "/dev/ttyUSB0"
protocol = "modbus"
[[serial.devices]]
sensor = "custom"
address = 7
map = { name = "custom", registers = [{ name = "level", address = 0, type = "u16", scale = 0.01, unit = "m" }] }
"""
    first, second = (parse_config(tomllib.loads(text)) for _ in range(2))
    assert first.serial[0] != second.serial[0]  # RegisterMap compares by identity ...
    assert config_key(first.serial[0]) == config_key(second.serial[0])  # ... the key does not
    changed = parse_config(tomllib.loads(text.replace("0.01", "0.1")))
    assert config_key(changed.serial[0]) != config_key(first.serial[0])
