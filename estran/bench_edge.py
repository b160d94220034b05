"""`estran bench edge`: the gateway daemon's footprint, measured from outside the process.

The daemon runs as it does on a gateway (`python -m edge.daemon --config FILE`, its own
process) with `--sensors` sensors configured (default 50) producing about `--rate` readings
per second (default 100):

- `--source sim` (default): real serial sources on the serial simulators (pseudo-terminals,
  real line timing, another process whose CPU is not counted): Modbus RTU soil probes, ten to
  a bus, polled at the interval that makes up the rate; one Linky (TIC historique), one NMEA
  instrument, eight A02YYUW level sensors. The rate is what they actually deliver: measured.
- `--source synthetic`: a SYNTHETIC in-process source (no serial I/O, no codecs: readings
  made up by a timer in the daemon) at exactly `--rate`: the daemon's own cost, isolated.

Measured: RSS (peak and last, /proc/PID/statm), CPU % of one core over the soak
(/proc/PID/stat utime+stime / wall time), the RSS slope over the soak (least squares, MB/h;
the one-hour run is `--soak 3600`), readings per second (from the daemon's status), bytes
written to storage (/proc/PID/io write_bytes) per reading, the buffer's group-commit times
(the fsync that runs on the event loop: mean and max), and the status socket's answer time.

Anchor, in the same run: the RSS of a bare `python -c` interpreter, and of one that only
imports what the daemon imports: what the daemon adds on top is `rss_mb - anchor`.

Flash (`flash` in the JSON, estran/bench_flash.py): bytes written to storage per reading at 1,
10 and 100 readings/s, measured from each daemon's block I/O (/proc/PID/io write_bytes) with
a hub stand-in acknowledging, for the default buffer policy and, in the same run, the first
release's policy as the anchor; on a disk directory (`--flash-dir`, default /var/tmp: tmpfs
counts no block I/O). `--flash-soak 0` leaves it out.

The uplink is not configured (no broker): its cost is `estran bench sync`'s subject.
Progress goes to stderr; the JSON object is the last line of stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edge.health import io_write_bytes

if TYPE_CHECKING:
    from edge.daemon import Intake

TARGET_RSS_MB = 45.0
TARGET_CPU_PCT = 3.0  # of one core at 100 readings/s
SOIL_PER_BUS = 10
LEVEL_SENSORS = 8
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _log(message: str) -> None:
    click.echo(message, err=True)


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 1e6


def _slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 3600


def _anchor_rss(code: str, python: str = sys.executable) -> float | None:
    """RSS (MB) of a Python process (`python`) running `code` then sleeping."""
    proc = subprocess.Popen(
        [
            python,
            "-c",
            code + "\nimport sys, time\nprint('ready', flush=True)\ntime.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            return None
        return _rss_mb(proc.pid)
    finally:
        proc.kill()
        proc.wait(5)


# -- the configuration ----------------------------------------------------------------------


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def _config_text(data_dir: Path, ports: list[dict[str, Any]], extra: str = "") -> str:
    lines = [
        "[gateway]",
        'id = "bench-edge"',
        f"data_dir = {_toml(str(data_dir))}",
        'log_level = "warning"',
        "",
        "[buffer]",
        'commit_interval = "1s"',
        "",
    ]
    for port in ports:
        lines.append("[[serial]]")
        lines += [f"{k} = {_toml(v)}" for k, v in port.items() if k != "devices"]
        for device in port["devices"]:
            lines.append("[[serial.devices]]")
            lines += [f"{k} = {_toml(v)}" for k, v in device.items()]
        lines.append("")
    return "\n".join(lines) + extra


def _sim_specs(sensors: int) -> tuple[list[str], int]:
    """Simulator specs for `sensors` sensors: 1 Linky, 1 NMEA, 8 level sensors, the rest
    soil probes ten to a bus. Returns (specs, soil probes)."""
    soil = max(0, sensors - 2 - LEVEL_SENSORS)
    specs = ["linky-historique,name=ttyBLINKY", "nmea,name=ttyBNMEA"]
    specs += [f"a02yyuw,name=ttyBLVL{i}" for i in range(min(LEVEL_SENSORS, max(0, sensors - 2)))]
    for bus in range(math.ceil(soil / SOIL_PER_BUS)):
        count = min(SOIL_PER_BUS, soil - bus * SOIL_PER_BUS)
        devices = "+".join(f"soil@{address}" for address in range(1, count + 1))
        specs.append(f"modbus,name=ttyBBUS{bus},devices={devices}")
    return specs, soil


def _start_simulators(
    directory: Path, specs: list[str]
) -> tuple[subprocess.Popen[str], list[dict[str, Any]]]:
    argv = [sys.executable, "-m", "edge.simulators.serial", "--dir", str(directory), "--config"]
    for spec in specs:
        argv += ["--spec", spec]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    text = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if text or line.startswith("["):
            text += line
            try:
                return proc, list(json.loads(text))
            except ValueError:
                continue
    proc.kill()
    raise click.ClickException("the serial simulators did not start")


def _tune(ports: list[dict[str, Any]], rate: float, soil: int) -> None:
    """Device intervals that add up to about `rate` readings/s: streams as they come
    (ultrasonic one frame a second: distance and fill; NMEA and TIC every frame), soil
    probes (4 readings a poll) at the interval that makes up the rest."""
    streams = 2.0 * LEVEL_SENSORS + 12.0  # measured, not assumed: see `rate` in the result
    soil_interval = max(0.5, soil * 4 / max(1.0, rate - streams)) if soil else None
    for port in ports:
        for device in port["devices"]:
            if port["protocol"] == "ultrasonic":
                device["interval"] = 1.0
            elif port["protocol"] == "modbus" and soil_interval is not None:
                device["interval"] = round(soil_interval, 2)
            else:
                device["interval"] = 0


# -- running --------------------------------------------------------------------------------


def _status(socket_path: Path) -> dict[str, Any] | None:
    from edge.health import StatusUnavailable, read_status

    try:
        return read_status(socket_path, timeout=2.0)
    except StatusUnavailable:
        return None


def _samples(status: dict[str, Any] | None) -> int:
    return int(((status or {}).get("footprint") or {}).get("samples") or 0)


def _stop(proc: subprocess.Popen[Any], timeout: float = 30.0) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return None


def measure(
    sensors: int,
    rate: float,
    soak: float,
    warmup: float,
    source: str,
    interval: float,
    python: str = sys.executable,
) -> dict[str, Any]:
    """The daemon's figures; `python`: the interpreter that runs the daemon (another virtual
    environment's: `estran bench install`); the simulators run on this one."""
    root = Path(tempfile.mkdtemp(prefix="estran-bench-edge-"))
    data = root / "data"
    config_path = root / "edge.toml"
    sims: subprocess.Popen[str] | None = None
    daemon: subprocess.Popen[bytes] | None = None
    _log("anchor: a bare interpreter, and one with the daemon's imports")
    bare = _anchor_rss("pass", python)
    imports = _anchor_rss(
        "import asyncio, edge.daemon, edge.daemon._wiring, edge.sources.serial, edge.buffer",
        python,
    )
    try:
        if source == "sim":
            specs, soil = _sim_specs(sensors)
            _log(f"starting {len(specs)} serial simulators ({sensors} sensors)")
            sims, ports = _start_simulators(root / "sim", specs)
            _tune(ports, rate, soil)
            config_path.write_text(_config_text(data, ports))
            argv = [python, "-m", "edge.daemon", "--config", str(config_path)]
        else:
            config_path.write_text(_config_text(data, []))
            argv = [
                python,
                "-m",
                "estran.bench_edge",
                str(config_path),
                str(sensors),
                str(rate),
            ]
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        daemon = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
        socket_path = data / "status.sock"
        deadline = time.monotonic() + 30
        while _status(socket_path) is None:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise click.ClickException(f"the daemon did not start (exit {daemon.poll()})")
            time.sleep(0.2)
        _log(f"daemon pid {daemon.pid} up; warm-up {warmup:g} s")
        time.sleep(warmup)
        pid = daemon.pid
        first = _status(socket_path)
        t0, cpu0, written0 = time.monotonic(), _cpu_s(pid), io_write_bytes(pid)
        rss_points: list[tuple[float, float]] = [(0.0, _rss_mb(pid))]
        _log(f"soak {soak:g} s")
        next_report = 10.0
        while (elapsed := time.monotonic() - t0) < soak:
            time.sleep(min(interval, max(0.05, soak - elapsed)))
            rss_points.append((time.monotonic() - t0, _rss_mb(pid)))
            if time.monotonic() - t0 >= next_report:
                _log(f"  {time.monotonic() - t0:.0f} s: RSS {rss_points[-1][1]:.1f} MB")
                next_report += max(10.0, soak / 12)
        wall = time.monotonic() - t0
        cpu = _cpu_s(pid) - cpu0
        written1 = io_write_bytes(pid)
        started = time.perf_counter()
        last = _status(socket_path)
        status_ms = (time.perf_counter() - started) * 1000
        readings = _samples(last) - _samples(first)
        stored = int((last or {}).get("footprint", {}).get("reported") or 0) - int(
            (first or {}).get("footprint", {}).get("reported") or 0
        )
        buffer = (last or {}).get("buffer") or {}
        errors = {
            name: s.get("errors")
            for name, s in ((last or {}).get("sensors") or {}).items()
            if s.get("errors")
        }
        exit_code = _stop(daemon)
        daemon = None
    finally:
        if daemon is not None:
            _stop(daemon, 5)
        if sims is not None:
            _stop(sims, 5)
        with contextlib.suppress(OSError):
            subprocess.run(["rm", "-rf", str(root)], check=False)
    rss_values = [v for _, v in rss_points]
    rate_measured = readings / wall if wall > 0 else 0.0
    cpu_pct = cpu / wall * 100 if wall > 0 else 0.0
    cpu_at_100 = cpu_pct * 100 / rate_measured if rate_measured > 0 else None
    slope = _slope_per_hour(rss_points)
    write_per_reading = (
        (written1 - written0) / readings
        if readings and written0 is not None and written1 is not None
        else None
    )
    result: dict[str, Any] = {
        "bench": "edge",
        "source": source if source == "sim" else "synthetic (in-process timer, no serial I/O)",
        "sensors": sensors,
        "rate_target": rate,
        "rate_measured": round(rate_measured, 1),
        "soak_s": round(wall, 1),
        "warmup_s": warmup,
        "rss_mb": round(max(rss_values), 1),
        "rss_last_mb": round(rss_values[-1], 1),
        "rss_slope_mb_per_h": None if slope is None else round(slope, 2),
        "cpu_pct": round(cpu_pct, 2),
        "cpu_pct_at_100_per_s": None if cpu_at_100 is None else round(cpu_at_100, 2),
        "cpu_us_per_reading": round(cpu / readings * 1e6, 1) if readings else None,
        "readings": readings,
        "stored": stored,
        "write_bytes_per_reading": None
        if write_per_reading is None
        else round(write_per_reading, 1),
        "commit_mean_ms": buffer.get("commit_mean_ms"),
        "commit_max_ms": buffer.get("commit_max_ms"),
        "commits": buffer.get("commits"),
        "status_answer_ms": round(status_ms, 2),
        "sensor_errors": errors,
        "daemon_exit": exit_code,
        "anchor": {
            "bare_python_rss_mb": None if bare is None else round(bare, 1),
            "python_with_daemon_imports_rss_mb": None if imports is None else round(imports, 1),
        },
        "targets": {
            "rss_mb": TARGET_RSS_MB,
            "cpu_pct_at_100_per_s": TARGET_CPU_PCT,
            "rss_slope_mb_per_h": "about 0 (report)",
        },
    }
    result["pass"] = {
        "rss": result["rss_mb"] <= TARGET_RSS_MB,
        "cpu": cpu_at_100 is not None and cpu_at_100 <= TARGET_CPU_PCT,
        "clean_exit": exit_code == 0,
    }
    return result


# -- the synthetic source (the `--source synthetic` daemon) ---------------------------------


async def _synthetic(intake: Intake, sensors: int, rate: float, state: str) -> None:
    """The SYNTHETIC source: `sensors` sensors, `rate` readings/s in total, evenly paced
    (also the flash benchmark's daemons' source)."""
    from protocols.reading import Reading

    names = [f"synthetic-{i:03d}" for i in range(sensors)]
    period = 1.0 / rate
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    n = 0
    intake.set_state("synthetic", "up", state)
    while True:
        now_ms = time.time_ns() // 1_000_000
        sensor = names[n % sensors]
        await intake.put(Reading(sensor, "value", "Cel", 20 + (n % 50) / 10, now_ms))
        n += 1
        next_at += period
        await asyncio.sleep(max(0.0, next_at - loop.time()))


def _synthetic_child(config_path: str, sensors: int, rate: float) -> int:
    """The daemon with a SYNTHETIC source: `sensors` sensors, `rate` readings/s in total."""
    from edge.config import EdgeConfig
    from edge.daemon import TaskSpec, Wiring, run_daemon
    from edge.daemon._wiring import default_wiring

    state = f"{rate:g} readings/s, {sensors} sensors"

    def sources(config: EdgeConfig, intake: Intake) -> list[TaskSpec]:
        return [
            TaskSpec("synthetic", (sensors, rate), lambda: _synthetic(intake, sensors, rate, state))
        ]

    base = default_wiring()
    wiring = Wiring(base.open_log, sources, base.uplink, software=base.software)
    return run_daemon(Path(config_path), "warning", wiring)


# -- the command ----------------------------------------------------------------------------


@click.command("edge")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON object (last line).")
@click.option("--sensors", default=50, show_default=True, help="Sensors configured.")
@click.option("--rate", default=100.0, show_default=True, help="Readings per second to aim at.")
@click.option("--soak", default=60.0, show_default=True, help="Seconds measured (3600: the hour).")
@click.option("--warmup", default=10.0, show_default=True, help="Seconds before measuring.")
@click.option(
    "--source",
    type=click.Choice(["sim", "synthetic"]),
    default="sim",
    show_default=True,
    help="Serial simulators, or a synthetic in-process source.",
)
@click.option("--interval", default=1.0, show_default=True, help="Seconds between RSS samples.")
@click.option(
    "--flash-soak",
    default=120.0,
    show_default=True,
    help="Seconds the flash writes are measured at 1, 10 and 100 readings/s (0: not measured).",
)
@click.option(
    "--flash-warmup",
    default=None,
    type=float,
    help="Seconds before measuring them [default: the commit interval + 5: past the first "
    "commit, which preallocates].",
)
@click.option(
    "--flash-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="A directory on the disk to measure [default: /var/tmp].",
)
def bench_edge(
    as_json: bool,
    sensors: int,
    rate: float,
    soak: float,
    warmup: float,
    source: str,
    interval: float,
    flash_soak: float,
    flash_warmup: float | None,
    flash_dir: Path | None,
) -> None:
    """The daemon's RSS, CPU at ~100 readings/s and memory slope over a soak; its flash
    writes per reading at 1, 10 and 100 readings/s beside the first release's policy."""
    if sys.platform != "linux":
        raise click.ClickException("this bench reads /proc: Linux only")
    result = measure(sensors, rate, soak, warmup, source, interval)
    if flash_soak > 0:
        from edge.config import BufferSection
        from estran.bench_flash import measure_flash

        _log(f"flash writes: 6 daemons (anchor and default at 1, 10, 100/s), {flash_soak:g} s")
        if flash_warmup is None:
            flash_warmup = BufferSection().commit_interval_s + 5.0
        try:
            result["flash"] = measure_flash(flash_soak, flash_warmup, flash_dir)
        except RuntimeError as e:
            raise click.ClickException(str(e)) from e
    if not as_json:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"estran bench edge ({result['source']})", show_header=False)
        table.add_column("figure")
        table.add_column("value")
        anchor = result["anchor"]
        rows = [
            ("sensors, readings/s", f"{sensors}, {result['rate_measured']} (aimed {rate:g})"),
            (
                "RSS peak / last",
                f"{result['rss_mb']} / {result['rss_last_mb']} MB (target ≤ {TARGET_RSS_MB:g})",
            ),
            (
                "anchor RSS",
                f"bare python {anchor['bare_python_rss_mb']} MB, with the daemon's imports {anchor['python_with_daemon_imports_rss_mb']} MB",
            ),
            (
                "CPU",
                f"{result['cpu_pct']} % of one core; {result['cpu_pct_at_100_per_s']} % at 100/s (target ≤ {TARGET_CPU_PCT:g})",
            ),
            ("RSS slope", f"{result['rss_slope_mb_per_h']} MB/h over {result['soak_s']} s"),
            (
                "per reading",
                f"{result['cpu_us_per_reading']} µs CPU, {result['write_bytes_per_reading']} bytes written",
            ),
            (
                "group commit (fsync on the loop)",
                f"mean {result['commit_mean_ms']} ms, max {result['commit_max_ms']} ms, {result['commits']} commits",
            ),
        ]
        flash = result.get("flash")
        if flash:
            for rate_key in ("1_per_s", "10_per_s", "100_per_s"):
                anchor_v = flash["anchor"][rate_key]["bytes_per_reading"]
                default_v = flash["default"][rate_key]["bytes_per_reading"]
                target = flash["targets_bytes_per_reading"].get(rate_key)
                rows.append(
                    (
                        f"flash bytes/reading at {rate_key.split('_')[0]}/s",
                        f"{default_v} (anchor: first release {anchor_v})"
                        + (f", target ≤ {target:g}" if target else ""),
                    )
                )
        for row in rows:
            table.add_row(*row)
        Console(stderr=True).print(table)
    click.echo(json.dumps(result))


if __name__ == "__main__":
    sys.exit(_synthetic_child(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
