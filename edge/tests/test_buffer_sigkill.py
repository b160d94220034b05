"""A writer process (`estran bench buffer --report-durable`) killed with SIGKILL at random
moments: every reading it reported durable is in the buffer afterwards, exact."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.buffer import BufferConfig, SegmentLog, verify_buffer
from edge.tests.support.buffer import exact, workload

N = 200_000


def writer(directory: Path) -> subprocess.Popen[str]:
    code = "import sys; from estran.cli import main; sys.argv[0] = 'estran'; main()"
    args = ["bench", "buffer", "--readings", str(N), "--dir", str(directory)]
    args += ["--report-durable", "--no-anchor", "--recover-mb", "0"]
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


@pytest.mark.slow
def test_everything_reported_durable_survives_kill_9(tmp_path: Path) -> None:
    expected = workload(N)
    rng = random.Random(os.getpid())
    for attempt in range(3):
        directory = tmp_path / f"buf{attempt}"
        proc = writer(directory)
        assert proc.stdout is not None
        stop_after = rng.randint(1, 80)  # of about 100 commits: well before the drain starts
        durable = 0
        lines = 0
        try:
            for line in proc.stdout:
                word, _, number = line.partition(" ")
                assert word == "durable", line
                seq = int(number)
                assert seq > durable  # strictly increasing
                durable = seq
                lines += 1
                if lines >= stop_after:
                    proc.send_signal(signal.SIGKILL)
                    break
        finally:
            proc.kill()
            proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        assert durable > 0
        cfg = BufferConfig(directory)
        report = verify_buffer(cfg)
        assert report.ok, report.problems
        with SegmentLog.open(cfg) as log:
            assert log.recovery.problems == []
            got = dict(log.iter_readings())
            for seq in range(1, durable + 1):
                assert seq in got, f"seq {seq} was reported durable and is missing"
                assert exact(got[seq], expected[seq - 1])
            # more may be there (written after the last report): exact as well
            assert all(exact(r, expected[s - 1]) for s, r in got.items())
            assert log.append(expected[0]) > max(got)
