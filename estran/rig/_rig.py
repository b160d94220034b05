"""A rig, opened: the resources of an environment file, started when a test asks for them and
stopped (in reverse order) when it is done — labgrid's target, in asyncio.

    async with Rig(load_env(Path("hil-tests/sim.yaml")), workdir) as rig:
        tic = await rig.serial("serial.tic")           # simulator or adapter: same call
        hub = await rig.hub()                          # its broker and database from the rig
        link = await rig.link(hub.broker)              # the gateway dials the link
        gw = await rig.gateway("gw-1", link.url, serial=[tic.port])
        await rig.power("power.gateway", gw).off()     # kill -9

A Rig made with `allowed` (the pytest plugin passes a test's `needs`) refuses a capability
the test did not declare: a test cannot use what its marker does not say, so a rig without
it reports the test not applicable instead of letting it pass on something else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from estran.rig._ble import BleRadio, radio_driver
from estran.rig._env import EnvError, Resource, RigEnv, check_capability
from estran.rig._errors import RigError
from estran.rig._faults import CommandPower, FakeClock, PowerSwitch, ProcessPower, UnplugPower
from estran.rig._proxy import LinkProxy
from estran.rig._serial import SerialDriver, SerialPort, SimulatedSerial, serial_driver
from estran.rig._services import Broker, Database, GatewayProcess, HubProcess


class Link:
    """The network between gateways and their broker: `url` is what a gateway dials."""

    def __init__(self, proxy: LinkProxy) -> None:
        self.proxy = proxy

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.proxy.port}"


class Rig:
    def __init__(self, env: RigEnv, workdir: Path, *, allowed: Sequence[str] | None = None) -> None:
        self.env = env
        self.workdir = workdir
        self.allowed = None if allowed is None else frozenset(allowed)
        self._stack = contextlib.AsyncExitStack()
        self._serial: dict[str, SerialDriver] = {}
        self._brokers: dict[str, Broker] = {}
        self._databases: dict[str, Database] = {}
        self._clock: FakeClock | None = None

    @property
    def name(self) -> str:
        return self.env.name

    def resource(self, capability: str) -> Resource:
        """The resource of `capability`; RigError if the test did not declare it."""
        check_capability(capability)
        if self.allowed is not None and not any(
            capability == a or capability.startswith(a + ".") for a in self.allowed
        ):
            raise RigError(
                f"{capability!r} is not in this test's needs ({', '.join(sorted(self.allowed))})"
                ": add it to @pytest.mark.needs"
            )
        return self.env.resource(capability)

    async def __aenter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        await self._stack.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    # -- resources --------------------------------------------------------------------------

    async def serial(self, capability: str) -> SerialDriver:
        """A started serial driver (`.port`: the gateway's [[serial]] table; `.inject`)."""
        if capability not in self._serial:
            driver = serial_driver(self.resource(capability), self.workdir)
            await driver.start()
            self._stack.push_async_callback(driver.stop)
            self._serial[capability] = driver
        return self._serial[capability]

    async def radio(self, capability: str = "ble") -> BleRadio:
        driver = radio_driver(self.resource(capability), self.workdir)
        radio = await driver.start()
        self._stack.push_async_callback(driver.stop)
        return radio

    async def broker(self, capability: str = "broker") -> Broker:
        if capability not in self._brokers:
            broker = Broker(self.resource(capability), self.workdir)
            await broker.start()
            self._stack.push_async_callback(broker.stop)
            self._brokers[capability] = broker
        return self._brokers[capability]

    async def database(self, capability: str = "database") -> Database:
        if capability not in self._databases:
            database = Database(self.resource(capability), self.workdir)
            await database.start()
            self._stack.push_async_callback(database.stop)
            self._databases[capability] = database
        return self._databases[capability]

    async def hub(
        self,
        *,
        broker: str = "broker",
        database: str = "database",
        access: str = "open",
        extra: Sequence[str] = (),
    ) -> HubProcess:
        """The hub, started and ready, on the rig's broker and database."""
        self.resource("hub")
        hub = HubProcess(
            self.workdir,
            await self.broker(broker),
            await self.database(database),
            access=access,
            extra=extra,
        )
        self._stack.push_async_callback(hub.stop)
        await hub.start()
        return hub

    async def link(self, broker: Broker, capability: str = "link", *, mqtt: bool = True) -> Link:
        """A link in front of `broker`; gateways given `link.url` go through it."""
        self.resource(capability)
        proxy = LinkProxy(broker.port, upstream_host=broker.host, mqtt=mqtt)
        await self._stack.enter_async_context(proxy)
        return Link(proxy)

    def clock(self, capability: str = "clock") -> FakeClock:
        """The clock that gateways started with `clock=` live on."""
        self.resource(capability)
        if self._clock is None:
            self._clock = FakeClock(self.workdir / "clock")
        return self._clock

    async def gateway(
        self,
        gateway_id: str,
        broker_url: str,
        *,
        serial: Sequence[SerialPort] = (),
        ble: BleRadio | None = None,
        clock: FakeClock | None = None,
        extra: Mapping[str, Mapping[str, object]] | None = None,
    ) -> GatewayProcess:
        """A gateway daemon reading `serial` and `ble`, syncing to `broker_url`, started."""
        self.resource("gateway")
        gateway = GatewayProcess(
            self.workdir,
            gateway_id,
            broker_url,
            serial=serial,
            ble=ble,
            extra=extra,
            env=clock.env if clock is not None else None,
        )
        self._stack.push_async_callback(gateway.stop)
        await gateway.start()
        return gateway

    def power(
        self,
        capability: str,
        of: GatewayProcess | HubProcess | Broker | SerialDriver | None = None,
    ) -> PowerSwitch:
        """The power switch of `capability`: for `process-kill` the process `of` (a gateway,
        the hub, a broker the rig started), for `serial-unplug` the serial driver `of` (or
        the resource's `serial`); `command` switches what the bench wired to it."""
        resource = self.resource(capability)
        if resource.driver == "process-kill":
            if isinstance(of, Broker):
                if of.mosquitto is None:
                    raise EnvError(
                        f"{capability}: a {of.kind} broker is not a process of the rig "
                        "(process-kill needs `broker: {driver: mosquitto}`)"
                    )
                return ProcessPower(of.mosquitto, of.start)
            if not isinstance(of, GatewayProcess | HubProcess):
                raise EnvError(f"{capability}: process-kill needs the process it cuts")
            return ProcessPower(of.child, of.start)
        if resource.driver == "serial-unplug":
            driver = of if of is not None else self._serial.get(resource.text("serial"))
            if not isinstance(driver, SimulatedSerial):
                raise EnvError(f"{capability}: serial-unplug needs a started simulated port")
            return UnplugPower(driver.inject)
        return CommandPower(resource, self.workdir)


__all__ = ["Link", "Rig"]
