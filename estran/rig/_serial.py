"""Serial ports of a rig: a simulator on a pseudo-terminal, or a real adapter.

`simulator` runs ``python -m edge.simulators.serial --spec SPEC --config`` (the simulators'
own command line) in its own process and takes the gateway configuration it prints; faults go
through its control socket (``... inject``), as a technician would send them. `device` is a
real adapter (``/dev/serial/by-id/...``): the environment file gives its path and the
gateway's ``[[serial]]`` table for what is wired to it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from estran.rig._child import Child
from estran.rig._env import EnvError, Resource
from estran.rig._errors import RigError, Unavailable
from estran.rig._toml import toml_table

READY_S = 20.0


@dataclass(frozen=True, slots=True)
class SerialPort:
    """A serial port a gateway reads: its `[[serial]]` table (path included)."""

    capability: str
    port: Mapping[str, object]

    @property
    def path(self) -> str:
        return str(self.port["path"])

    @property
    def sensors(self) -> list[str]:
        devices = self.port.get("devices", [])
        assert isinstance(devices, list)
        return [str(d["sensor"]) for d in devices if isinstance(d, Mapping)]

    def polled_every(self, seconds: float) -> SerialPort:
        """The same port, its devices polled every `seconds` (a TIC meter talks on its own:
        its interval stays 0)."""
        table = dict(self.port)
        devices = table.get("devices", [])
        assert isinstance(devices, list)
        interval = 0 if table.get("protocol") == "tic" else seconds
        table["devices"] = [{**d, "interval": interval} for d in devices if isinstance(d, Mapping)]
        return SerialPort(self.capability, table)

    def toml(self, **extra: object) -> str:
        """The port as the gateway's configuration file has it: a `[[serial]]` table (with
        `extra` keys such as `reconnect_min`) and its `[[serial.devices]]`."""
        table = {**self.port, **extra}
        devices = table.pop("devices", [])
        assert isinstance(devices, list)
        lines = toml_table("[[serial]]", table)
        for device in devices:
            lines += toml_table("[[serial.devices]]", device)
        return "\n".join(lines)


class SimulatedSerial:
    """A simulator process; `port` once started."""

    def __init__(self, resource: Resource, workdir: Path) -> None:
        self.resource = resource
        self.spec = resource.text("spec")
        self.directory = workdir / f"serial-{resource.capability.replace('.', '-')}"
        self.child = Child(
            resource.capability,
            [
                sys.executable, "-m", "edge.simulators.serial", "--spec", self.spec,
                "--dir", str(self.directory), "--config",
            ],
            self.directory.with_suffix(".log"),
            pipe_stdout=True,
        )  # fmt: skip
        self._port: SerialPort | None = None
        self._name = ""

    @property
    def port(self) -> SerialPort:
        if self._port is None:
            raise RigError(f"{self.resource.capability}: not started")
        return self._port

    async def start(self) -> SerialPort:
        self.directory.mkdir(parents=True, exist_ok=True)
        await self.child.start()
        lines: list[str] = []
        try:
            while True:
                line = await self.child.readline(READY_S)
                if not line:
                    raise RigError(f"simulator {self.spec!r} exited:\n{self.child.tail()}")
                if not lines and not line.startswith("["):
                    if not self._name and " on " in line:
                        self._name = line.split()[0]
                    continue
                lines.append(line)
                if line.startswith("]"):
                    break
        except TimeoutError:
            await self.child.stop(2)
            raise RigError(f"simulator {self.spec!r} printed no configuration") from None
        ports = json.loads("".join(lines))
        self._port = SerialPort(self.resource.capability, ports[0])
        return self._port

    async def inject(self, fault: str, *, seconds: float | None = None, count: int = 1) -> None:
        """A fault on the line (noise, bad-checksum, silence, resume, unplug, replug)."""
        argv = [
            sys.executable, "-m", "edge.simulators.serial", "inject", self._name, fault,
            "--count", str(count), "--control", str(self.directory / "control.sock"),
        ]  # fmt: skip
        if seconds is not None:
            argv += ["--seconds", str(seconds)]
        injector = Child(f"{self.resource.capability}-inject", argv, self.child.log)
        await injector.start()
        if await injector.wait(10) != 0:
            raise RigError(f"inject {fault} into {self._name} failed:\n{injector.tail(3)}")

    async def stop(self) -> None:
        await self.child.stop(5)

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


def serial_simulator(spec: str, workdir: Path, capability: str = "serial.sim") -> SimulatedSerial:
    """A simulator on a pseudo-terminal outside any environment file (`spec`: the `--spec`
    of ``python -m edge.simulators.serial``, e.g. ``nmea,pace=1``); an async context manager:

        async with serial_simulator("nmea,name=ttyA", tmp_path) as sim:
            config = sim.port.toml(reconnect_min=0.1)
    """
    return SimulatedSerial(Resource(capability, "simulator", {"spec": spec}), workdir)


class DeviceSerial:
    """A real adapter: nothing to start; its path must exist."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        path = resource.text("path")
        table = dict(resource.table("port"))
        if "protocol" not in table or not table.get("devices"):
            raise EnvError(f"{resource.capability}: `port` needs a protocol and devices")
        self._port = SerialPort(resource.capability, {"path": path, **table})

    @property
    def port(self) -> SerialPort:
        return self._port

    async def start(self) -> SerialPort:
        if not Path(self._port.path).exists():
            raise Unavailable(f"{self.resource.capability}: {self._port.path} is not plugged in")
        return self._port

    async def inject(self, fault: str, *, seconds: float | None = None, count: int = 1) -> None:
        raise Unavailable(f"{self.resource.capability}: a real line takes no injected {fault}")

    async def stop(self) -> None:
        return None


SerialDriver = SimulatedSerial | DeviceSerial


def serial_driver(resource: Resource, workdir: Path) -> SerialDriver:
    if resource.driver == "simulator":
        return SimulatedSerial(resource, workdir)
    return DeviceSerial(resource)


__all__ = [
    "DeviceSerial",
    "SerialDriver",
    "SerialPort",
    "SimulatedSerial",
    "serial_driver",
    "serial_simulator",
]
