"""Advertisements to measurements: BTHome and MiBeacon service data through the codecs,
with the per-device memory that de-duplicates them (shared by the source and `scan`).

Each device repeats an advertisement several times (and a scanner may hear it on three
channels): the BTHome packet id or encryption counter, and the MiBeacon frame counter,
tell a new measurement from a repeat. An encrypted BTHome counter that goes backwards is
a replay (``replay``). A payload that failed to decode is reported once, not once per
repetition.
"""

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from edge.sources.ble._config import Kind
from protocols import bthome, miflora
from protocols.errors import RemoteProtocolError
from protocols.reading import Measurement

BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
MIBEACON_UUID = "0000fe95-0000-1000-8000-00805f9b34fb"
SERVICE_DATA_UUIDS = (BTHOME_UUID, MIBEACON_UUID)


@dataclass(slots=True)
class Decoded:
    """What one advertisement said.

    `duplicate`: a repeat of the previous measurement (or of a payload that already
    failed): nothing new. `error`: the codec's error (its `reason` is what to count);
    `measurements` may still hold what came before an unknown BTHome object.
    """

    kind: Kind
    measurements: list[Measurement] = field(default_factory=list)
    sequence: int | None = None
    encrypted: bool = False
    duplicate: bool = False
    error: RemoteProtocolError | None = None


class _DeviceMemory:
    __slots__ = ("bthome", "failed", "miflora")

    def __init__(self) -> None:
        self.bthome = bthome.DeviceState()
        self.miflora = miflora.DeviceState()
        self.failed: bytes | None = None  # the last payload that failed to decode


class AdvertisementDecoder:
    """Decodes service data per device address, remembering each device's counters.

    `keys`: bind keys by address (``AA:BB:..``). At most `max_devices` devices are
    remembered (least recently heard forgotten first).
    """

    def __init__(self, keys: Mapping[str, bytes] | None = None, max_devices: int = 1024) -> None:
        self._keys = {address.upper(): key for address, key in (keys or {}).items()}
        self._memory: OrderedDict[str, _DeviceMemory] = OrderedDict()
        self._max_devices = max_devices

    def _memory_of(self, address: str) -> _DeviceMemory:
        memory = self._memory.pop(address, None)
        if memory is None:
            memory = _DeviceMemory()
            if len(self._memory) >= self._max_devices:
                self._memory.popitem(last=False)
        self._memory[address] = memory
        return memory

    def decode(self, address: str, service_data: Mapping[str, bytes]) -> Decoded | None:
        """Decode the BTHome or MiBeacon service data of one advertisement from `address`.

        None when it carries neither.
        """
        address = address.upper()
        payload = service_data.get(BTHOME_UUID)
        if payload is not None:
            return self._bthome(address, bytes(payload))
        payload = service_data.get(MIBEACON_UUID)
        if payload is not None:
            return self._mibeacon(address, bytes(payload))
        return None

    def _bthome(self, address: str, payload: bytes) -> Decoded:
        memory = self._memory_of(address)
        encrypted = bool(payload[:1]) and bool(payload[0] & bthome.INFO_ENCRYPTED)
        result = Decoded("bthome", encrypted=encrypted)
        if payload == memory.failed:
            result.duplicate = True
            return result
        try:
            packet = bthome.decode(
                payload, key=self._keys.get(address), mac=address, state=memory.bthome
            )
        except bthome.UnknownObjectError as e:
            memory.failed = payload
            result.error = e
            if e.packet is not None:
                result.measurements = e.packet.measurements()
                result.sequence = _sequence(e.packet)
                result.duplicate = e.packet.duplicate
            return result
        except RemoteProtocolError as e:
            memory.failed = payload
            result.error = e
            return result
        memory.failed = None
        result.sequence = _sequence(packet)
        result.duplicate = packet.duplicate
        result.measurements = packet.measurements()
        return result

    def _mibeacon(self, address: str, payload: bytes) -> Decoded:
        memory = self._memory_of(address)
        result = Decoded("miflora")
        if payload == memory.failed:
            result.duplicate = True
            return result
        try:
            beacon = miflora.decode_mibeacon(payload, mac=address)
        except RemoteProtocolError as e:
            memory.failed = payload
            result.error = e
            return result
        memory.failed = None
        result.encrypted = beacon.encrypted
        result.sequence = beacon.frame_counter
        result.duplicate = not memory.miflora.check(beacon)
        result.measurements = list(beacon.measurements)
        return result


def _sequence(packet: bthome.BTHomePacket) -> int | None:
    return packet.counter if packet.counter is not None else packet.packet_id
