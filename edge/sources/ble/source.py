"""The BLE source: configured BLE sensors -> Readings, through plain bleak.

One `BleSource` per adapter. While the adapter is up it runs, in one task group:

- a scanner (passive where the platform allows), whose callback only queues the BTHome
  and MiBeacon service data of configured devices (a bounded queue; an overflow is
  dropped and counted);
- the decoder, which turns queued advertisements into readings through the `protocols`
  codecs, drops repeats (packet id, encryption counter, frame counter), counts codec
  errors by reason (``decryption`` for a wrong bind key, ``replay``...), and reports a
  device unheard for `absent_after` seconds (reason ``absent``, once, until it is heard
  again);
- the GATT poller (Mi Flora with a `poll_interval`): one connection at a time,
  `connect_timeout` per connection and `poll_timeout` per poll, `poll_attempts` attempts
  with a doubling delay, disconnecting as soon as the reads are done; each failed
  attempt is counted (``timeout``, ``connect_failed``, ``gatt_error`` or a codec reason);
- a watcher that ends the group when the adapter is lost.

Adapter lost, or unavailable at start: the source reports DOWN (and counts
``adapter_lost``), waits (`adapter_backoff`, doubling up to `adapter_backoff_max`, reset
after a minute up) and opens it again.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError, BleakGATTProtocolError

from edge.sources import ReadingSink, SourceState
from edge.sources.ble._backend import BleBackend, open_backend
from edge.sources.ble._config import BleDeviceConfig, BleOptions
from edge.sources.ble._decode import SERVICE_DATA_UUIDS, AdvertisementDecoder
from edge.sources.ble._errors import AdapterLostError, BleConfigError
from edge.sources.ble._spec import BackendSpec, parse_backend
from protocols import miflora
from protocols.errors import RemoteProtocolError
from protocols.reading import Measurement, Reading

log = logging.getLogger(__name__)

# Transport reasons counted by this source (codec reasons come from protocols.errors).
ABSENT = "absent"
ADAPTER_LOST = "adapter_lost"
CONNECT_FAILED = "connect_failed"
DROPPED = "dropped"
GATT_ERROR = "gatt_error"
TIMEOUT = "timeout"

_UP_RESETS_BACKOFF = 60.0  # seconds up after which the adapter backoff starts over
_PRESENCE_CHECK = 5.0  # at most this long between absence checks
# Scanning restarts this often: bleak remembers every address it ever saw while a scan
# runs (a street sees thousands of rotating phone addresses a day); a restart forgets them.
RESCAN_INTERVAL = 3600.0


def utc_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class BleDeviceStatus:
    """What the source knows of one configured device (for `estran edge status`)."""

    sensor: str
    address: str
    kind: str
    last_seen_ms: int | None = None  # last advertisement heard (UTC ms)
    rssi: int | None = None
    absent: bool = False
    readings: int = 0
    last_poll_ms: int | None = None  # last successful GATT poll (UTC ms)
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Heard:
    address: str
    rssi: int
    service_data: dict[str, bytes]
    ts_ms: int
    at: float  # monotonic


@dataclass(slots=True)
class _Device:
    config: BleDeviceConfig
    status: BleDeviceStatus
    heard_at: float = 0.0  # monotonic; the start of the watch until first heard
    next_poll: float = 0.0  # monotonic


class BleSource:
    """Reads the configured BLE devices through the backend ``ble.backend`` names.

    `devices`: the configured devices (only they produce readings). `backend`: a
    ``ble.backend`` value (``bluez``, ``bumble:<transport>``). `name`: the source name
    (state and adapter-level errors are reported under it); `adapter_name` seeds the
    bumble adapter's own address and must differ between gateways sharing a radio world
    (default: ``estran-<name>``). `clock`: UTC milliseconds for the readings.
    """

    def __init__(
        self,
        devices: Iterable[BleDeviceConfig],
        *,
        backend: str | BackendSpec = "bluez",
        name: str = "ble",
        adapter_name: str | None = None,
        options: BleOptions | None = None,
        clock: Callable[[], int] = utc_ms,
    ) -> None:
        self.name = name
        self.backend = parse_backend(backend) if isinstance(backend, str) else backend
        self.adapter_name = adapter_name or f"estran-{name}"
        self.options = options or BleOptions()
        self._clock = clock
        self._devices: dict[str, _Device] = {}
        for config in devices:
            if config.address in self._devices:
                raise BleConfigError(
                    f"ble.devices[{config.sensor}].address", f"{config.address} is configured twice"
                )
            status = BleDeviceStatus(config.sensor, config.address, config.kind)
            self._devices[config.address] = _Device(config, status)
        keys = {
            d.config.address: d.config.bind_key
            for d in self._devices.values()
            if d.config.bind_key is not None
        }
        self._decoder = AdvertisementDecoder(keys, max_devices=max(16, len(self._devices)))
        self._state = SourceState.DOWN

    @property
    def state(self) -> str:
        return self._state

    def status(self) -> list[BleDeviceStatus]:
        """Per configured device: last seen, RSSI, absence, readings and errors."""
        return [d.status for d in self._devices.values()]

    # -- supervision -------------------------------------------------------------------

    async def run(self, sink: ReadingSink) -> None:
        """Read until cancelled; the adapter is reopened with backoff when lost."""
        options = self.options
        backoff = options.adapter_backoff
        while True:
            self._set_state(sink, SourceState.CONNECTING, str(self.backend))
            started = time.monotonic()
            try:
                async with open_backend(
                    self.backend, name=self.adapter_name, timeout=options.connect_timeout
                ) as backend:
                    await self._run_on(backend, sink)
            except* (AdapterLostError, BleakError, OSError, TimeoutError) as group:
                detail = "; ".join(str(e) or type(e).__name__ for e in group.exceptions)
                log.warning(
                    "%s: adapter %s lost or unavailable: %s", self.name, self.backend, detail
                )
                sink.count_error(self.name, ADAPTER_LOST, detail)
            self._set_state(sink, SourceState.DOWN, f"retrying in {backoff:.0f} s")
            if time.monotonic() - started > _UP_RESETS_BACKOFF:
                backoff = options.adapter_backoff
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, options.adapter_backoff_max)

    def _set_state(self, sink: ReadingSink, state: str, detail: str = "") -> None:
        self._state = state
        sink.set_state(self.name, state, detail)

    async def _run_on(self, backend: BleBackend, sink: ReadingSink) -> None:
        queue: asyncio.Queue[_Heard] = asyncio.Queue(maxsize=self.options.queue_size)
        callback = self._callback(queue, sink)
        scanner = [await self._start_scanner(backend, callback)]
        self._set_state(sink, SourceState.UP, str(backend.spec))
        now = time.monotonic()
        for device in self._devices.values():
            device.heard_at = now
            device.next_poll = now
        try:
            async with asyncio.TaskGroup() as group:
                loops: list[tuple[str, Coroutine[Any, Any, None]]] = [
                    ("decode", self._decode_loop(queue, sink)),
                    ("adapter", self._watch_adapter(backend)),
                    ("rescan", self._rescan_loop(backend, callback, scanner)),
                ]
                if any(d.config.poll_interval for d in self._devices.values()):
                    loops.append(("gatt", self._poll_loop(backend, sink)))
                for role, loop in loops:
                    name = f"{self.name}:{role}"
                    group.create_task(_supervised(name, loop), name=name)
        finally:
            await self._stop_scanner(scanner[0])

    async def _start_scanner(
        self, backend: BleBackend, callback: Callable[[BLEDevice, AdvertisementData], None]
    ) -> BleakScanner:
        return await backend.start_scanner(
            callback, passive=self.options.passive, timeout=self.options.connect_timeout
        )

    async def _rescan_loop(
        self,
        backend: BleBackend,
        callback: Callable[[BLEDevice, AdvertisementData], None],
        scanner: list[BleakScanner],
    ) -> None:
        while True:
            await asyncio.sleep(RESCAN_INTERVAL)
            await self._stop_scanner(scanner[0])
            scanner[0] = await self._start_scanner(backend, callback)

    async def _stop_scanner(self, scanner: BleakScanner) -> None:
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                await scanner.stop()
        except Exception as e:  # the adapter is gone anyway
            log.debug("%s: stopping the scanner: %r", self.name, e)

    async def _watch_adapter(self, backend: BleBackend) -> None:
        await backend.wait_lost()
        raise AdapterLostError(f"adapter {backend.spec} lost")

    # -- advertisements ----------------------------------------------------------------

    def _callback(
        self, queue: "asyncio.Queue[_Heard]", sink: ReadingSink
    ) -> Callable[[BLEDevice, AdvertisementData], None]:
        devices = self._devices

        def on_advertisement(device: BLEDevice, data: AdvertisementData) -> None:
            address = device.address.upper()
            if address not in devices:
                return  # not configured: `estran edge scan` shows it
            service_data = {
                u: data.service_data[u] for u in SERVICE_DATA_UUIDS if u in data.service_data
            }
            if not service_data:
                return
            try:
                queue.put_nowait(
                    _Heard(address, data.rssi, service_data, self._clock(), time.monotonic())
                )
            except asyncio.QueueFull:
                sink.count_error(
                    devices[address].config.sensor, DROPPED, "advertisement queue full"
                )

        return on_advertisement

    async def _decode_loop(self, queue: "asyncio.Queue[_Heard]", sink: ReadingSink) -> None:
        check_every = min(_PRESENCE_CHECK, self.options.absent_after / 4)
        next_check = time.monotonic() + check_every
        while True:
            timeout = max(0.0, next_check - time.monotonic())
            try:
                async with asyncio.timeout(timeout):
                    heard = await queue.get()
            except TimeoutError:
                pass
            else:
                await self._on_heard(heard, sink)
            now = time.monotonic()
            if now >= next_check:
                self._check_presence(now, sink)
                next_check = now + check_every

    async def _on_heard(self, heard: _Heard, sink: ReadingSink) -> None:
        device = self._devices[heard.address]
        status = device.status
        device.heard_at = heard.at
        status.last_seen_ms = heard.ts_ms
        status.rssi = heard.rssi
        if status.absent:
            status.absent = False
            log.info("%s: %s (%s) is heard again", self.name, status.sensor, status.address)
        decoded = self._decoder.decode(heard.address, heard.service_data)
        if decoded is None:
            return
        if decoded.kind != device.config.kind:
            self._count(
                sink,
                device,
                "unsupported",
                f"configured as {device.config.kind}, advertises {decoded.kind}",
            )
            return
        if decoded.error is not None:
            self._count(sink, device, decoded.error.reason, decoded.error.message)
        if decoded.duplicate:
            return
        await self._emit(sink, device, decoded.measurements, heard.ts_ms)

    def _check_presence(self, now: float, sink: ReadingSink) -> None:
        for device in self._devices.values():
            status = device.status
            silent = now - device.heard_at
            if not status.absent and silent >= self.options.absent_after:
                status.absent = True
                log.warning(
                    "%s: %s (%s) unheard for %.0f s",
                    self.name,
                    status.sensor,
                    status.address,
                    silent,
                )
                self._count(sink, device, ABSENT, f"no advertisement for {silent:.0f} s")

    async def _emit(
        self, sink: ReadingSink, device: _Device, measurements: Iterable[Measurement], ts_ms: int
    ) -> None:
        config = device.config
        for m in measurements:
            quantity = config.quantity(m.name)
            if quantity is None:
                continue
            await sink.put(Reading(config.sensor, quantity, m.unit, m.value, ts_ms))
            device.status.readings += 1

    def _count(self, sink: ReadingSink, device: _Device, reason: str, detail: str) -> None:
        errors = device.status.errors
        errors[reason] = errors.get(reason, 0) + 1
        sink.count_error(device.config.sensor, reason, detail)

    # -- GATT polls --------------------------------------------------------------------

    async def _poll_loop(self, backend: BleBackend, sink: ReadingSink) -> None:
        polled = [d for d in self._devices.values() if d.config.poll_interval]
        while True:
            device = min(polled, key=lambda d: d.next_poll)
            wait = device.next_poll - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._poll(backend, device, sink)
            assert device.config.poll_interval is not None
            device.next_poll = time.monotonic() + device.config.poll_interval

    async def _poll(self, backend: BleBackend, device: _Device, sink: ReadingSink) -> None:
        options = self.options
        delay = options.retry_delay
        for attempt in range(1, options.poll_attempts + 1):
            try:
                async with asyncio.timeout(options.poll_timeout):
                    realtime, firmware = await self._read_miflora(backend, device.config.address)
                ts_ms = self._clock()
                measurements = miflora.decode_realtime(realtime)
                battery, _version = miflora.decode_firmware(firmware)
                measurements.append(Measurement("battery", battery, "%"))
            except TimeoutError:
                reason, detail = TIMEOUT, f"GATT poll took over {options.poll_timeout:g} s"
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                # a library cancelled one of its own futures: an error, not our end
                reason, detail = GATT_ERROR, "aborted by the BLE stack"
            except BleakGATTProtocolError as e:
                reason, detail = GATT_ERROR, str(e)
            except _ConnectError as e:
                reason, detail = CONNECT_FAILED, str(e.__cause__ or e)
            except BleakError as e:
                reason, detail = GATT_ERROR, str(e)
            except RemoteProtocolError as e:
                reason, detail = e.reason, e.message
            else:
                device.status.last_poll_ms = ts_ms
                await self._emit(sink, device, measurements, ts_ms)
                return
            log.info(
                "%s: polling %s, attempt %d/%d: %s: %s",
                self.name,
                device.config.sensor,
                attempt,
                options.poll_attempts,
                reason,
                detail,
            )
            self._count(sink, device, reason, f"attempt {attempt}: {detail}")
            if attempt < options.poll_attempts:
                await asyncio.sleep(delay)
                delay *= 2

    async def _read_miflora(self, backend: BleBackend, address: str) -> tuple[bytes, bytes]:
        """Connect, enable real-time data, read it and the firmware value, disconnect."""
        client = backend.client(address, timeout=self.options.connect_timeout)
        try:
            await client.connect()
        except TimeoutError:
            raise
        except (BleakError, OSError) as e:
            raise _ConnectError(str(e)) from e
        try:
            await client.write_gatt_char(
                miflora.MODE_CHANGE_CHAR_UUID, miflora.MODE_CHANGE, response=True
            )
            realtime = await client.read_gatt_char(miflora.REALTIME_CHAR_UUID)
            firmware = await client.read_gatt_char(miflora.FIRMWARE_CHAR_UUID)
        finally:
            await asyncio.shield(self._disconnect(client))
        return bytes(realtime), bytes(firmware)

    async def _disconnect(self, client: BleakClient) -> None:
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                await client.disconnect()
        except Exception as e:
            log.debug("%s: disconnecting: %r", self.name, e)


async def _supervised(name: str, loop: Coroutine[Any, Any, None]) -> None:
    """Run a loop that only ends by raising. A task group forgets a child that ends by a
    CancelledError it did not send (a library cancelling its own future): turn that, and
    a return, into errors that end the group."""
    try:
        await loop
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise
        raise RuntimeError(f"{name}: cancelled from inside") from None
    raise RuntimeError(f"{name}: ended")


class _ConnectError(Exception):
    """Connecting failed (not timed out)."""


def device_configs(entries: Iterable[Mapping[str, object]]) -> list[BleDeviceConfig]:
    """``ble.devices`` entries of a configuration file -> configs (errors name the entry)."""
    return [
        BleDeviceConfig.from_mapping(entry, f"ble.devices[{i}]") for i, entry in enumerate(entries)
    ]
