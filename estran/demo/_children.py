"""Child processes of the demo: the hub, the gateways, the radio world.

Each child runs in its own session, so that a Ctrl-C in the terminal reaches the demo only and
the demo stops its children in order (gateways first, so that they hand their last readings
to a hub still running; the hub last). On Linux each child also asks the kernel for a SIGTERM
when the demo dies (PR_SET_PDEATHSIG): even a demo killed with SIGKILL leaves no orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1
START_S = 15.0  # fork and exec


def _death_signal_hook() -> Callable[[], None] | None:
    """A preexec hook asking for SIGTERM when the parent dies (Linux), or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:  # runs in the child between fork and exec: no allocation-heavy work
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl: go at once
            os._exit(1)

    return hook


def estran_argv(*args: str) -> list[str]:
    """`estran ARGS...` with this interpreter (works from a venv that is not activated)."""
    script = Path(sys.executable).with_name("estran")
    if script.exists():
        return [sys.executable, str(script), *args]
    return [sys.executable, "-c", "from estran.cli import main; main()", *args]


class Child:
    """A child process, its output in a log file (stdout piped when `pipe_stdout`)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        pipe_stdout: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.pipe_stdout = pipe_stdout
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.stopping = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self.starts += 1
        self.stopping = False
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})}
        out: IO[str]
        with open(self.log, "a") as out:
            out.write(f"--- start {self.starts}: {' '.join(self.argv)}\n")
            out.flush()
            self.proc = await asyncio.wait_for(
                asyncio.create_subprocess_exec(
                    *self.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE if self.pipe_stdout else out,
                    stderr=out,
                    env=env,
                    start_new_session=True,
                    preexec_fn=_death_signal_hook(),
                ),
                START_S,
            )

    async def readline(self, timeout: float) -> str:
        """The next stdout line (`pipe_stdout`), within `timeout` seconds."""
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        return line.decode("utf-8", "replace")

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        self.stopping = True
        if not self.alive():
            return
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 5.0)

    def kill(self) -> None:
        self.stopping = True
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


__all__ = ["Child", "estran_argv"]
