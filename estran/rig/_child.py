"""One child process of a rig: the hub, a gateway, a broker, a radio world.

Its output goes to a log file (appended, one `--- start N` line per start, so restarts read in
order); it can be stopped (SIGTERM, then SIGKILL after a bounded wait), killed (SIGKILL: the
power cut of a process) and started again. Every wait is bounded.

Each child runs in its own session, so that a Ctrl-C in a terminal reaches the parent only and
the parent stops its children in order. On Linux each child also asks the kernel for a SIGTERM
when the parent dies (PR_SET_PDEATHSIG): even a parent killed with SIGKILL leaves no orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from estran.rig._errors import RigError

PR_SET_PDEATHSIG = 1
START_S = 15.0  # fork and exec
KILL_WAIT_S = 10.0  # a SIGKILLed process is reaped within this


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
    """A child process, its stdout and stderr in `log` (stdout piped instead when
    `pipe_stdout`, for `readline`); `log` may be an existing directory: NAME.log in it.
    `env` is added to this process's environment."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        pipe_stdout: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log / f"{name}.log" if log.is_dir() else log
        self.pipe_stdout = pipe_stdout
        self.env = dict(env or {})
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.stopping = False  # asked to stop or killed on purpose: an exit is not a failure

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        """Start (again); RigError when the program cannot be started within START_S."""
        if self.alive():
            raise RigError(f"{self.name} is already running (pid {self.pid})")
        self.starts += 1
        self.stopping = False
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out: IO[str]
        with open(self.log, "a") as out:
            out.write(f"--- start {self.starts}: {' '.join(self.argv)}\n")
            out.flush()
            try:
                self.proc = await asyncio.wait_for(
                    asyncio.create_subprocess_exec(
                        *self.argv,
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=asyncio.subprocess.PIPE if self.pipe_stdout else out,
                        stderr=out,
                        env=env,
                        cwd=self.cwd,
                        start_new_session=True,
                        preexec_fn=_death_signal_hook(),
                    ),
                    START_S,
                )
            except (OSError, TimeoutError) as e:
                raise RigError(f"{self.name}: cannot start {self.argv[0]}: {e}") from e

    async def readline(self, timeout: float) -> str:
        """The next stdout line (`pipe_stdout`), within `timeout` seconds ("" at its end)."""
        if self.proc is None or self.proc.stdout is None:
            raise RigError(f"{self.name}: no piped stdout (pipe_stdout=False or not started)")
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        return line.decode("utf-8", "replace")

    async def wait(self, timeout: float) -> int:
        """Its exit status, within `timeout` seconds (TimeoutError otherwise)."""
        if self.proc is None:
            raise RigError(f"{self.name} was never started")
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def send_signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL now, without waiting (safe from a signal handler): no goodbye, no flush."""
        self.stopping = True
        self.send_signal(signal.SIGKILL)

    async def kill_and_wait(self, timeout: float = KILL_WAIT_S) -> int | None:
        """SIGKILL, and its exit status once reaped (None when not reaped within `timeout`)."""
        self.kill()
        if self.proc is None:
            return None
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self.proc.wait(), timeout)
        return None

    async def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` seconds; the exit status (None: never ran)."""
        self.stopping = True
        if not self.alive():
            return self.returncode
        assert self.proc is not None
        self.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            return await self.kill_and_wait(5.0)

    def tail(self, lines: int = 15) -> str:
        """The last lines of its log (for an error message)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


__all__ = ["Child", "estran_argv"]
