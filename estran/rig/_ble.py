"""The BLE radio of a rig: emulated sensors and controllers, a bumble-driven dongle, or BlueZ.

`radio-world` runs ``python -m edge.simulators.ble`` (bumble's virtual controllers: the real
BLE stack, emulated radios) and takes the transport and the sensors it prints for one
gateway; `bumble-hci` lets the gateway's bumble stack drive a dongle itself (`transport`:
``usb:0``, ``serial:/dev/ttyACM0,1000000``); `bluez` is bleak on BlueZ (`adapter`: ``hci0``).
The last two take the sensors in range from the environment file (`devices`: the gateway's
``[[ble.devices]]`` entries).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from estran.rig._child import Child
from estran.rig._env import EnvError, Resource
from estran.rig._errors import RigError, Unavailable

READY_S = 30.0


@dataclass(frozen=True, slots=True)
class BleRadio:
    """What a gateway's configuration needs: its `[ble]` table and `[[ble.devices]]`."""

    capability: str
    table: Mapping[str, object]
    devices: list[Mapping[str, object]] = field(default_factory=list)

    @property
    def sensors(self) -> list[str]:
        return [str(d["sensor"]) for d in self.devices]


class RadioWorld:
    """The radio world process, one gateway controller in it (`gateway`, default marina)."""

    def __init__(self, resource: Resource, workdir: Path) -> None:
        self.resource = resource
        self.gateway = resource.text("gateway", "marina")
        zone = resource.text("zone", self.gateway)
        self.child = Child(
            resource.capability,
            [sys.executable, "-m", "edge.simulators.ble", "--gateway", f"{self.gateway}@{zone}"],
            workdir / f"{resource.capability}.log",
            pipe_stdout=True,
        )
        self.zone = zone

    async def start(self) -> BleRadio:
        await self.child.start()
        try:
            line = await self.child.readline(READY_S)
        except TimeoutError:
            await self.child.stop(2)
            raise RigError(f"the radio world did not start:\n{self.child.tail()}") from None
        if not line:
            raise RigError(f"the radio world exited:\n{self.child.tail()}")
        ready = json.loads(line)
        controller = ready["gateways"][self.gateway]
        devices: list[Mapping[str, object]] = [
            dict(s["config"]) for s in ready["sensors"] if s["zone"] == self.zone
        ]
        table = {"backend": "bumble", "transport": controller["transport"]}
        return BleRadio(self.resource.capability, table, devices)

    async def stop(self) -> None:
        await self.child.stop(10)


class HardwareRadio:
    """A dongle (bumble-hci) or a BlueZ adapter, and the sensors the environment file names."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        devices = resource.tables("devices")
        if not devices:
            raise EnvError(f"{resource.capability}: `devices` (the sensors in range) is empty")
        if resource.driver == "bluez":
            self.adapter = resource.text("adapter", "hci0")
            table: dict[str, object] = {"backend": "bluez", "adapter": self.adapter}
        else:
            table = {"backend": "bumble", "transport": resource.text("transport")}
        self.radio = BleRadio(resource.capability, table, devices)

    async def start(self) -> BleRadio:
        if (
            self.resource.driver == "bluez"
            and not Path("/sys/class/bluetooth", self.adapter).exists()
        ):
            raise Unavailable(f"{self.resource.capability}: no BlueZ adapter {self.adapter}")
        return self.radio

    async def stop(self) -> None:
        return None


RadioDriver = RadioWorld | HardwareRadio


def radio_driver(resource: Resource, workdir: Path) -> RadioDriver:
    if resource.driver == "radio-world":
        return RadioWorld(resource, workdir)
    return HardwareRadio(resource)


__all__ = ["BleRadio", "HardwareRadio", "RadioDriver", "RadioWorld", "radio_driver"]
