"""The serial simulator runner (`python -m edge.simulators.serial`) and the `estran` command,
as the probe tests run them: a technician's two terminals."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ESTRAN = os.path.join(os.path.dirname(sys.executable), "estran")


@contextmanager
def serial_runner(
    directory: Path, spec: str, duration: float, first_port: str
) -> Iterator[subprocess.Popen[str]]:
    """The runner with one `--spec`, its ports in `directory`; ready once its first line names
    `first_port`. Terminated on the way out."""
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge.simulators.serial",
            "--dir",
            str(directory),
            "--spec",
            spec,
            "--duration",
            str(duration),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert runner.stdout is not None
        assert first_port in runner.stdout.readline()
        yield runner
    finally:
        runner.terminate()
        runner.wait(timeout=10)


__all__ = ["ESTRAN", "serial_runner"]
