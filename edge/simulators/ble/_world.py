"""The radio world: emulated sensors and the gateways' Bluetooth controllers on one link.

One `RadioWorld` (one process, or one task in the demo's process) holds a bumble
`LocalLink`, the air. Each emulated sensor runs its own controller and host on it. Each
gateway gets an HCI controller on the same link, exposed like a USB dongle:

- over TCP (`add_gateway`): the world listens on a port per gateway; the gateway daemon,
  in another process, opens ``bumble:tcp-client:HOST:PORT`` and drives the controller with
  its own bumble host, as it would drive a dongle. Each TCP connection gets a fresh
  controller (plugging a dongle in resets it); one host at a time per gateway, the newest
  one wins (a restarted daemon takes the controller over from its dead predecessor).
- in this process (`hci_opener`): a transport factory for
  `edge.sources.ble.register_local_transport`, then ``bumble:local:NAME``.

bumble's `tcp-server` transport could not serve here: it keeps one controller across
reconnections (its HCI Reset resets nothing) and ignores a second client's framing. So
the world runs its own small server with bumble's HCI packet parser.

What the world adds to bumble's emulated controller, on the gateways' controllers only:
- radio reach: a sensor with a `zone` is heard only by gateways listening to that zone
  (advertisements and connections alike); each report carries the sensor's `rssi`,
  jittered by a few dB (bumble reports -50 for everything);
- LE Create Connection Cancel answers as the spec says (a Connection Complete with
  status Unknown Connection Identifier), so that a connection attempt to a device that
  is gone times out cleanly instead of hanging;
- `unplug()` / `replug()`: the dongle goes away (the host sees its transport close) and
  comes back; sensors connected to it see the link drop (supervision timeout).
"""

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Self

from bumble import hci, ll
from bumble.controller import Controller
from bumble.core import InvalidPacketError
from bumble.link import LocalLink
from bumble.transport.common import BaseSource, PacketParser, Transport

from edge.simulators.ble._sensor import EmulatedSensor

log = logging.getLogger(__name__)

HciOpener = Callable[[], Awaitable[Transport]]


class GatewayPort:
    """Where one gateway's emulated controller is plugged.

    `backend` is the ``ble.backend`` value for the gateway's configuration (TCP);
    `zones` the zones it hears (None: every sensor).
    """

    def __init__(self, name: str, zones: frozenset[str] | None, host: str, port: int) -> None:
        self.name = name
        self.zones = zones
        self.host = host
        self.port = port
        self.unplugged = False
        self.connects = 0  # hosts that plugged in (TCP connections or local opens)
        self.controller: "GatewayController | None" = None
        self.server: asyncio.Server | None = None
        self.close_host: Callable[[], None] | None = None

    @property
    def transport(self) -> str:
        """The bumble transport spec a gateway opens: ``tcp-client:HOST:PORT``."""
        return f"tcp-client:{self.host}:{self.port}"

    @property
    def backend(self) -> str:
        """The ``ble.backend`` configuration value: ``bumble:tcp-client:HOST:PORT``."""
        return f"bumble:{self.transport}"

    @property
    def plugged(self) -> bool:
        """A host drives this controller now."""
        return self.controller is not None


class GatewayController(Controller):
    """bumble's emulated controller, with radio reach, RSSI and a proper connect cancel."""

    def __init__(self, world: "RadioWorld", gateway: GatewayPort, host_sink: object) -> None:
        super().__init__(gateway.name, host_sink=host_sink, link=world.link)  # type: ignore[arg-type]
        self._world = world
        self._gateway = gateway

    def on_ll_advertising_pdu(self, packet: ll.AdvertisingPdu) -> None:
        if isinstance(packet, ll.AdvInd | ll.AdvExtInd) and not self._world.audible(
            self._gateway, packet.advertiser_address
        ):
            return
        super().on_ll_advertising_pdu(packet)

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if isinstance(packet, hci.HCI_LE_Extended_Advertising_Report_Event):
            packet = hci.HCI_LE_Extended_Advertising_Report_Event(
                [dataclasses.replace(r, rssi=self._world.rssi(r.address)) for r in packet.reports]
            )
        elif isinstance(packet, hci.HCI_LE_Advertising_Report_Event):
            packet = hci.HCI_LE_Advertising_Report_Event(
                [dataclasses.replace(r, rssi=self._world.rssi(r.address)) for r in packet.reports]
            )
        super().send_hci_packet(packet)

    def on_hci_le_create_connection_cancel_command(
        self, _command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        pending, self.pending_le_connection = self.pending_le_connection, None
        if pending is not None:
            failure = hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
                connection_handle=0,
                role=hci.Role.CENTRAL,
                peer_address_type=pending.peer_address.address_type,
                peer_address=pending.peer_address,
                connection_interval=0,
                peripheral_latency=0,
                supervision_timeout=0,
                central_clock_accuracy=0,
            )
            # after the Command Complete of this command, as a real controller sends it
            asyncio.get_running_loop().call_soon(self.send_hci_packet, failure)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)

    def detach(self) -> None:
        """Unplugged: leave the air; peers connected through it lose their link."""
        for connection in list(self.le_connections.values()):
            try:
                self.link.send_ll_control_pdu(
                    connection.self_address,
                    connection.peer_address,
                    ll.TerminateInd(hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR),
                )
            except Exception as e:  # the peer is gone too
                log.debug("%s: dropping link to %s: %r", self.name, connection.peer_address, e)
        self.le_connections.clear()
        self.pending_le_connection = None
        self.host = None
        if self in self.link.controllers:
            self.link.remove_controller(self)


class _HostSide(BaseSource):
    """In-process transport, host side: what the controller sends reaches the host."""

    def on_packet(self, packet: bytes) -> None:
        if self.sink is not None and not self.terminated.done():
            asyncio.get_running_loop().call_soon(self.sink.on_packet, packet)


class _ControllerSide:
    """In-process transport, controller side: what the host sends reaches the controller."""

    def __init__(self, on_close: Callable[[], None]) -> None:
        self.controller: Controller | None = None
        self._on_close = on_close

    def on_packet(self, packet: bytes) -> None:
        if self.controller is not None:
            asyncio.get_running_loop().call_soon(self.controller.on_packet, packet)

    def close(self) -> None:
        self._on_close()


class _TcpSink:
    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def on_packet(self, packet: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.write(packet)


class _HciServerProtocol(asyncio.Protocol):
    """One TCP connection from a gateway's host: a fresh controller on the link."""

    def __init__(self, world: "RadioWorld", gateway: GatewayPort) -> None:
        self._world = world
        self._gateway = gateway
        self._transport: asyncio.Transport | None = None
        self._controller: GatewayController | None = None
        self._parser: PacketParser | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        gateway = self._gateway
        if gateway.unplugged:
            log.info("gateway %s: refusing a host: unplugged", gateway.name)
            transport.close()
            return
        self._world._take_over(gateway)
        controller = GatewayController(self._world, gateway, _TcpSink(transport))
        self._controller = controller
        self._parser = PacketParser(controller)
        gateway.controller = controller
        gateway.connects += 1
        gateway.close_host = transport.close
        log.info("gateway %s: host connected", gateway.name)

    def data_received(self, data: bytes) -> None:
        if self._parser is None:
            return
        try:
            self._parser.feed_data(data)
        except InvalidPacketError as e:
            log.warning("gateway %s: bad HCI data from the host: %r", self._gateway.name, e)
            if self._transport is not None:
                self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            self._world._detach(self._gateway, controller)
            log.info("gateway %s: host disconnected", self._gateway.name)


class RadioWorld:
    """Emulated BLE sensors and gateway controllers on one link. An async context manager.

    `seed` makes the RSSI jitter reproducible. `name` prefixes the local transport names.
    """

    def __init__(self, *, name: str = "world", seed: int | None = None) -> None:
        self.name = name
        self.link = LocalLink()  # type: ignore[no-untyped-call]
        self.sensors: dict[str, EmulatedSensor] = {}  # by address
        self.gateways: dict[str, GatewayPort] = {}
        self._random = random.Random(seed)
        self._running = False

    async def __aenter__(self) -> Self:
        self._running = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._running = False
        for gateway in self.gateways.values():
            if gateway.server is not None:
                gateway.server.close()
            if gateway.close_host is not None:
                gateway.close_host()
            if gateway.controller is not None:
                self._detach(gateway, gateway.controller)
        for gateway in self.gateways.values():
            if gateway.server is not None:
                try:
                    async with asyncio.timeout(2.0):
                        await gateway.server.wait_closed()
                except TimeoutError:
                    log.warning("gateway %s: server did not close in time", gateway.name)
        for sensor in list(self.sensors.values()):
            await sensor.stop()
        self.sensors.clear()

    # -- sensors -----------------------------------------------------------------------

    async def add(self, sensor: EmulatedSensor) -> EmulatedSensor:
        """Power `sensor` on in this world."""
        if sensor.address in self.sensors:
            raise ValueError(f"a sensor at {sensor.address} is already in the world")
        self.sensors[sensor.address] = sensor
        await sensor.start(self.link)
        return sensor

    async def add_all(self, sensors: Iterable[EmulatedSensor]) -> None:
        for sensor in sensors:
            await self.add(sensor)

    async def remove(self, sensor: EmulatedSensor) -> None:
        self.sensors.pop(sensor.address, None)
        await sensor.stop()

    def audible(self, gateway: GatewayPort, address: hci.Address) -> bool:
        sensor = self.sensors.get(address.to_string(False))
        if sensor is None or sensor.zone is None or gateway.zones is None:
            return True
        return sensor.zone in gateway.zones

    def rssi(self, address: hci.Address) -> int:
        sensor = self.sensors.get(address.to_string(False))
        base = sensor.rssi if sensor is not None else -80
        return max(-127, min(20, base + self._random.randint(-3, 3)))

    # -- gateways ----------------------------------------------------------------------

    async def add_gateway(
        self,
        name: str,
        *,
        zones: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> GatewayPort:
        """Expose a controller for gateway `name` on TCP `host:port` (0: a free port)."""
        gateway = self._new_gateway(name, zones, host)
        loop = asyncio.get_running_loop()
        gateway.server = await loop.create_server(
            lambda: _HciServerProtocol(self, gateway), host=host, port=port
        )
        gateway.port = gateway.server.sockets[0].getsockname()[1]
        log.info("gateway %s: HCI controller on %s", name, gateway.transport)
        return gateway

    def add_local_gateway(self, name: str, *, zones: Iterable[str] | None = None) -> GatewayPort:
        """A gateway plugged in this process: pass `hci_opener(name)` to
        `edge.sources.ble.register_local_transport`, then use ``bumble:local:<that name>``."""
        return self._new_gateway(name, zones, "local")

    def _new_gateway(self, name: str, zones: Iterable[str] | None, host: str) -> GatewayPort:
        if name in self.gateways:
            raise ValueError(f"gateway {name!r} is already in the world")
        gateway = GatewayPort(name, frozenset(zones) if zones is not None else None, host, 0)
        self.gateways[name] = gateway
        return gateway

    def hci_opener(self, name: str) -> HciOpener:
        """A transport factory for gateway `name`, for `edge.sources.ble.register_local_transport`."""
        gateway = self.gateways[name]

        async def open_local() -> Transport:
            if gateway.unplugged:
                raise ConnectionRefusedError(f"gateway {name}: the controller is unplugged")
            self._take_over(gateway)
            host_side = _HostSide()
            controller_side = _ControllerSide(lambda: self._detach(gateway, controller))
            controller = GatewayController(self, gateway, host_side)
            controller_side.controller = controller
            gateway.controller = controller
            gateway.connects += 1

            def close_host() -> None:
                self._detach(gateway, controller)
                host_side.on_transport_lost()

            gateway.close_host = close_host
            return Transport(host_side, controller_side)

        return open_local

    def _take_over(self, gateway: GatewayPort) -> None:
        """A new host opens the controller: the previous one (a gateway process that died
        or restarted, its connection not yet closed) loses it, and the newcomer gets a
        fresh controller."""
        if gateway.close_host is not None:
            log.info("gateway %s: a new host replaces the previous one", gateway.name)
            gateway.close_host()
        if gateway.controller is not None:
            self._detach(gateway, gateway.controller)

    def _detach(self, gateway: GatewayPort, controller: GatewayController) -> None:
        controller.detach()
        if gateway.controller is controller:
            gateway.controller = None
            gateway.close_host = None

    async def unplug(self, name: str) -> None:
        """Pull gateway `name`'s dongle out: its host loses the transport; reconnections
        are refused until `replug`."""
        gateway = self.gateways[name]
        gateway.unplugged = True
        if gateway.close_host is not None:
            gateway.close_host()
        if gateway.controller is not None:
            self._detach(gateway, gateway.controller)
        await asyncio.sleep(0)

    def replug(self, name: str) -> None:
        """Put gateway `name`'s dongle back: its host may open it again."""
        self.gateways[name].unplugged = False
