"""Flash writes per reading of the gateway daemon, at 1, 10 and 100 readings/s, for the
default buffer policy and for the policy of the first release (the anchor), in the same run.

Each (policy, rate) is its own daemon process (`python -m estran.bench_flash ...`): the
daemon as it runs on a gateway (real buffer, real BufferWriter, real commits) with a
SYNTHETIC source (a timer making readings, no serial I/O) at exactly the rate, and a
stand-in for the hub that acknowledges what is committed once a second (as the hub's acks
come back), so that the buffer's state file is written as it is in the field. Flash writes
are the process's block I/O: `write_bytes` of /proc/PID/io, over the soak, divided by the
readings taken. All six run side by side on a disk directory (tmpfs counts no block I/O:
refused).

What /proc/PID/io counts is the pages the process dirtied and wrote back (data of the
segment files, the state file's temporary copy); the file system's own journal, written by
its kernel thread, is not in it: the policy's no-metadata-per-commit design (preallocated
segment files, written in place) is what keeps that part down (docs/buffer-format.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edge.health import io_write_bytes
from estran.bench_edge import _samples, _status, _stop, _synthetic

RATES = (1.0, 10.0, 100.0)
SENSORS = 10
TARGETS = {1.0: 512.0, 10.0: 64.0}  # bytes of flash writes per reading (issue 9)
# The first release's policy: a commit a second, the acked ranges rewritten at each commit,
# segment files growing with every commit.
ANCHOR = {
    "commit_interval_s": 1.0,
    "ack_save_interval_s": 1.0,
    "preallocate": False,
    "keep_acked_open": False,
}


def file_system(path: Path) -> str:
    """The file system type of the mount holding `path` (from /proc/mounts)."""
    best, kind = "", "?"
    real = os.path.realpath(path)
    with contextlib.suppress(OSError), open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3 or len(parts[1]) <= len(best):
                continue
            if real == parts[1] or real.startswith(parts[1].rstrip("/") + "/"):
                best, kind = parts[1], parts[2]
    return kind


def _config_text(data_dir: Path, commit_interval_s: float | None) -> str:
    lines = [
        "[gateway]",
        'id = "bench-flash"',
        f"data_dir = {json.dumps(str(data_dir))}",
        'log_level = "warning"',
        "",
        "[uplink]",  # never connected: the hub stand-in below acknowledges
        'broker = "mqtt://127.0.0.1:9"',
        "",
    ]
    if commit_interval_s is not None:
        lines += ["[buffer]", f'commit_interval = "{commit_interval_s:g}s"', ""]
    return "\n".join(lines)


def measure_flash(soak: float, warmup: float, directory: Path | None) -> dict[str, Any]:
    """Run the six daemons side by side and return the figures (see the module doc)."""
    base = directory or Path("/var/tmp")
    base.mkdir(parents=True, exist_ok=True)
    kind = file_system(base)
    if kind in ("tmpfs", "ramfs"):
        raise RuntimeError(f"{base} is on {kind}, which counts no block I/O: use a disk directory")
    root = Path(tempfile.mkdtemp(prefix="ebf-", dir=base))  # short: status.sock path ≤ 107
    runs: dict[tuple[str, float], tuple[subprocess.Popen[bytes], Path]] = {}
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    try:
        for policy in ("anchor", "default"):
            for rate in RATES:
                data = root / f"{policy[0]}{rate:g}"
                config = root / f"{policy[0]}{rate:g}.toml"
                interval = ANCHOR["commit_interval_s"] if policy == "anchor" else None
                config.write_text(_config_text(data, interval))
                argv = [sys.executable, "-m", "estran.bench_flash", str(config), policy, str(rate)]
                proc = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
                runs[(policy, rate)] = (proc, data / "status.sock")
        deadline = time.monotonic() + 90  # six interpreters starting at once on a loaded machine
        for (policy, rate), (proc, sock) in runs.items():
            while _status(sock) is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    how = (
                        f"exit {proc.returncode}"
                        if proc.poll() is not None
                        else "no status in 90 s"
                    )
                    raise RuntimeError(f"the {policy} daemon at {rate:g}/s did not start ({how})")
                time.sleep(0.2)
        time.sleep(warmup)
        first = {
            key: (_samples(_status(sock)), io_write_bytes(proc.pid))
            for key, (proc, sock) in runs.items()
        }
        t0 = time.monotonic()
        time.sleep(soak)
        wall = time.monotonic() - t0
        last = {
            key: (_status(sock), io_write_bytes(proc.pid)) for key, (proc, sock) in runs.items()
        }
        figures: dict[str, dict[str, Any]] = {"anchor": {}, "default": {}}
        for (policy, rate), (status, written) in last.items():
            readings = _samples(status) - first[(policy, rate)][0]
            before = first[(policy, rate)][1]
            flash = None if written is None or before is None else written - before
            buffer = (status or {}).get("buffer") or {}
            figures[policy][f"{rate:g}_per_s"] = {
                "readings": readings,
                "flash_write_bytes": flash,
                "bytes_per_reading": (
                    round(flash / readings, 1) if flash is not None and readings else None
                ),
                "commits": buffer.get("commits"),
            }
    finally:
        for proc, _sock in runs.values():
            _stop(proc, 15)
        shutil.rmtree(root, ignore_errors=True)
    from edge.config import BufferSection

    default_interval = BufferSection().commit_interval_s
    result: dict[str, Any] = {
        "soak_s": round(wall, 1),
        "directory_fs": kind,
        "anchor": {
            "policy": "first release: commit every 1 s, acks saved at each commit, growing files",
            "loss_window_s": ANCHOR["commit_interval_s"],
            **figures["anchor"],
        },
        "default": {
            "policy": (
                f"commit every {default_interval:g} s or {BufferSection().commit_readings}"
                " readings, alarms at once; acks saved with a segment's deletion or every 300 s;"
                " preallocated segment files written in place"
            ),
            "loss_window_s": default_interval,
            **figures["default"],
        },
        "targets_bytes_per_reading": {f"{r:g}_per_s": t for r, t in TARGETS.items()},
    }
    result["pass"] = {
        f"{r:g}_per_s": (
            (v := figures["default"][f"{r:g}_per_s"]["bytes_per_reading"]) is not None and v <= t
        )
        for r, t in TARGETS.items()
    }
    return result


# -- the daemon of one run -------------------------------------------------------------------


class _HubStandIn:
    """Acknowledges everything committed, once a second, as the hub's acks come back (the
    daemon's uplink, without a network: edge.daemon.DaemonUplink)."""

    def __init__(self, log: Any) -> None:
        self.log = log

    def attach(self, health: Any) -> None:
        pass

    def status(self) -> Any:
        return {"state": "connected"}

    def drain_now(self) -> None:
        pass

    def committed(self) -> None:
        pass

    async def run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            durable = int(self.log.durable_seq)
            if durable > 0:
                self.log.ack([(1, durable)])


def _child(config_path: str, policy: str, rate: float) -> int:
    from edge.buffer import BufferConfig, SegmentLog
    from edge.config import EdgeConfig
    from edge.daemon import Intake, TaskSpec, Wiring, run_daemon
    from edge.daemon._wiring import default_wiring

    def sources(config: EdgeConfig, intake: Intake) -> list[TaskSpec]:
        state = f"{rate:g} readings/s"
        return [TaskSpec("synthetic", (rate,), lambda: _synthetic(intake, SENSORS, rate, state))]

    def open_log(config: EdgeConfig) -> Any:
        b = config.buffer
        config.gateway.buffer_dir.mkdir(parents=True, exist_ok=True)
        knobs: dict[str, Any] = dict(ANCHOR) if policy == "anchor" else {"preallocate": True}
        knobs.pop("commit_interval_s", None)
        return SegmentLog.open(
            BufferConfig(
                directory=config.gateway.buffer_dir,
                quota_bytes=b.quota_bytes,
                commit_interval_s=b.commit_interval_s,
                commit_readings=b.commit_readings,
                segment_bytes=b.segment_bytes,
                seq_path=config.gateway.buffer_seq_file,
                **knobs,
            )
        )

    base = default_wiring()
    wiring = Wiring(
        open_log, sources, lambda _config, log: _HubStandIn(log), software=base.software
    )
    return run_daemon(Path(config_path), "warning", wiring)


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2], float(sys.argv[3])))
