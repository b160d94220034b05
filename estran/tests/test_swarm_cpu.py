"""The CPU seconds a fleet-scale run gives per phase and process (estran.rig.swarm)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from estran.rig.swarm import CpuMeter, cpu_seconds


def test_cpu_seconds_count_work_not_waiting() -> None:
    spin = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\ntime.sleep(30)",
        ]
    )
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        meter = CpuMeter()
        meter.start({"idle": idle.pid})  # `spin` not yet known: counted from its start
        deadline = time.monotonic() + 60
        while cpu_seconds(spin.pid) < 0.4 and time.monotonic() < deadline:
            time.sleep(0.1)
        used = meter.read({"spin": spin.pid, "idle": idle.pid})
        assert used["spin"] >= 0.4
        assert used["idle"] < 0.2
        assert used["total"] == round(used["spin"] + used["idle"], 2)
        assert cpu_seconds(os.getpid()) > 0
        assert cpu_seconds(2**22 + 7) == 0.0  # no such process
    finally:
        for p in (spin, idle):
            p.kill()
            p.wait()
