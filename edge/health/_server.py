"""The local status endpoint: a Unix socket that answers every connection with one JSON
object (the health snapshot) and closes. `socat - UNIX-CONNECT:/var/lib/estran/status.sock`
reads it as well as `estran edge status` does.

Local only, and guarded by file permissions (0660: the daemon's user and group).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from edge.errors import EdgeError

log = logging.getLogger("estran.edge.status")

WRITE_TIMEOUT_S = 5.0
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with its NUL


class StatusUnavailable(EdgeError):
    """The status socket cannot be read; `reason` says why and what to do."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


class StatusServer:
    """Serves `snapshot()` on a Unix socket at `path` while entered."""

    def __init__(self, path: Path, snapshot: Callable[[], Mapping[str, object]]) -> None:
        self.path = Path(path)
        self._snapshot = snapshot
        self._server: asyncio.Server | None = None
        self.served = 0

    async def __aenter__(self) -> StatusServer:
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise OSError(f"status socket path too long for a Unix socket: {self.path}")
        if self.path.exists() or self.path.is_symlink():
            if _alive(self.path):
                raise OSError(f"{self.path} answers: another daemon is running on this data dir")
            self.path.unlink()  # stale, from a daemon that did not stop cleanly
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.start_unix_server(self._answer, path=str(self.path))
        os.chmod(self.path, 0o660)
        log.debug("status on %s", self.path)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            body = json.dumps(self._snapshot(), separators=(",", ":"), default=str)
            writer.write(body.encode() + b"\n")
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                await writer.drain()
            self.served += 1
        except (OSError, TimeoutError) as e:
            log.debug("status client went away: %r", e)
        except Exception:
            log.exception("status snapshot failed")
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()


def read_status(path: Path, timeout: float = 3.0, max_bytes: int = 64 << 20) -> dict[str, object]:
    """The running daemon's snapshot (blocking; for the CLI). `StatusUnavailable` says why not."""
    path = Path(path)
    chunks: list[bytes] = []
    size = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise StatusUnavailable(path, f"answer larger than {max_bytes} bytes")
                chunks.append(chunk)
        except FileNotFoundError as e:
            raise StatusUnavailable(path, "no such socket: is the daemon running?") from e
        except ConnectionRefusedError as e:
            raise StatusUnavailable(path, "nobody listens: the daemon is not running") from e
        except PermissionError as e:
            raise StatusUnavailable(
                path, "permission denied: run as the daemon's user, its group, or root"
            ) from e
        except TimeoutError as e:
            raise StatusUnavailable(path, f"no answer within {timeout:g} s") from e
        except OSError as e:
            raise StatusUnavailable(path, e.strerror or str(e)) from e
    try:
        value = json.loads(b"".join(chunks))
    except ValueError as e:
        raise StatusUnavailable(path, f"the answer is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise StatusUnavailable(path, "the answer is not a JSON object")
    return value


def ble_sources(snapshot: dict[str, object]) -> dict[str, dict[str, object]]:
    """The BLE sources of a daemon's snapshot (named `ble`, or `ble:...`), by name."""
    sources = snapshot.get("sources")
    if not isinstance(sources, dict):
        return {}
    return {
        str(name): state
        for name, state in sources.items()
        if isinstance(state, dict) and (name == "ble" or str(name).startswith("ble:"))
    }


def daemon_using_ble(path: Path, timeout: float = 2.0) -> str | None:
    """When a daemon answers on the status socket `path` and has a BLE source: a short
    description of it (pid, each BLE source's state), else None. For the commands that must
    not take the adapter from under a running daemon (`scan`, `doctor`)."""
    try:
        snapshot = read_status(path, timeout=timeout)
    except StatusUnavailable:
        return None
    ble = ble_sources(snapshot)
    if not ble:
        return None
    states = ", ".join(f"{name} {state.get('state')}" for name, state in sorted(ble.items()))
    return f"the gateway daemon (pid {snapshot.get('pid')}) uses the Bluetooth adapter ({states})"


__all__ = ["StatusServer", "StatusUnavailable", "ble_sources", "daemon_using_ble", "read_status"]
