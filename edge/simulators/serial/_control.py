"""The control channel of the simulator runner: JSON lines on a Unix socket.

Requests, one JSON object per line::

    {"sim": "ttyLINKY0", "fault": "unplug", "seconds": 3}
    {"sim": "ttyRS485-0", "fault": "noise", "count": 32}
    {"list": true}

Each gets one JSON line back: ``{"ok": true}``, ``{"ok": true, "simulators": [...]}`` or
``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Mapping

from edge.simulators.serial._base import Fault, SerialSimulator

MAX_REQUEST = 4096
TIMEOUT = 10.0


def _status(sim: SerialSimulator) -> dict[str, object]:
    return {
        "name": sim.name,
        "kind": sim.kind,
        "path": sim.path,
        "line": str(sim.line),
        "plugged": sim.plugged,
        "silent": sim.silent,
        "stats": dict(sim.stats),
    }


def handle_request(request: object, simulators: Mapping[str, SerialSimulator]) -> dict[str, object]:
    """Apply one control request; never raises for a bad request."""
    if not isinstance(request, dict):
        return {"ok": False, "error": "a request is a JSON object"}
    if request.get("list"):
        return {"ok": True, "simulators": [_status(s) for s in simulators.values()]}
    name = request.get("sim")
    sim = simulators.get(name) if isinstance(name, str) else None
    if sim is None:
        return {"ok": False, "error": f"no simulator {name!r} (known: {', '.join(simulators)})"}
    kind = request.get("fault")
    count = request.get("count", 1)
    seconds = request.get("seconds")
    try:
        if not isinstance(kind, str) or not isinstance(count, int):
            raise ValueError("fault is a string and count an integer")
        if seconds is not None and not isinstance(seconds, (int, float)):
            raise ValueError("seconds is a number")
        fault = Fault(kind, count, float(seconds) if seconds is not None else None)
    except ValueError as e:
        return {"ok": False, "error": str(e)}
    sim.inject(fault)
    return {"ok": True, "simulator": _status(sim)}


class ControlServer:
    """Serves control requests for `simulators` on the Unix socket `path`."""

    def __init__(self, path: str, simulators: Mapping[str, SerialSimulator]) -> None:
        self.path = path
        self.simulators = simulators
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._server = await asyncio.start_unix_server(self._client, self.path, limit=MAX_REQUEST)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            task.set_name("sim-control:client")
        try:
            while True:
                async with asyncio.timeout(TIMEOUT * 30):
                    line = await reader.readline()
                if not line:
                    break
                try:
                    request = json.loads(line)
                except ValueError:
                    reply: dict[str, object] = {"ok": False, "error": "not JSON"}
                else:
                    reply = handle_request(request, self.simulators)
                writer.write(json.dumps(reply).encode() + b"\n")
                async with asyncio.timeout(TIMEOUT):
                    await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(TIMEOUT):
                    await writer.wait_closed()


async def send_request(path: str, request: dict[str, object]) -> dict[str, object]:
    """One request to a running runner's control socket."""
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_unix_connection(path, limit=1 << 20)
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise ValueError("bad reply from the control socket")
    return reply


__all__ = ["ControlServer", "handle_request", "send_request"]
