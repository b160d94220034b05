"""What the BLE source is told: the devices it reads and how patiently it reads them.

`BleDeviceConfig` is one configured device; the daemon builds it from the configuration
file with `BleDeviceConfig.from_mapping`, whose errors name the field. `BleOptions` holds
the timings (absence, GATT time limits, retries, adapter backoff), all with defaults.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, cast

from edge.sources.ble._errors import BleConfigError
from protocols import bthome
from protocols.errors import LocalProtocolError

Kind = Literal["bthome", "miflora"]
KINDS: tuple[Kind, ...] = ("bthome", "miflora")


def normalize_address(address: str) -> str:
    """``aa-bb-cc-dd-ee-ff``, ``aabbccddeeff`` ... -> ``AA:BB:CC:DD:EE:FF``.

    Raises ValueError for anything that is not 6 bytes of hex.
    """
    try:
        return bthome.format_mac(bthome.parse_mac(address))
    except LocalProtocolError as e:
        raise ValueError(f"not a Bluetooth address: {address!r}") from e


@dataclass(frozen=True, slots=True)
class BleDeviceConfig:
    """One BLE device the gateway reads.

    - `address`: the device's Bluetooth address (any usual spelling; kept as
      ``AA:BB:CC:DD:EE:FF``).
    - `kind`: ``bthome`` (BTHome v2 service data) or ``miflora`` (MiBeacon, and GATT polls).
    - `sensor`: the sensor id its readings carry.
    - `bind_key`: the 16-byte AES key of an encrypted BTHome device (32 hex digits in the
      configuration file). A device with a key must encrypt: plaintext is refused.
    - `poll_interval`: seconds between GATT polls (Mi Flora only); None reads the
      advertisements only.
    - `quantities`: measurement name -> quantity name. Empty: every measurement is a
      reading under its own name (``temperature``, ``moisture``...); otherwise only the
      listed measurements are kept, renamed.
    """

    address: str
    kind: Kind
    sensor: str
    bind_key: bytes | None = None
    poll_interval: float | None = None
    quantities: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "address", normalize_address(self.address))
        except ValueError as e:
            raise BleConfigError("address", str(e)) from e
        if self.kind not in KINDS:
            raise BleConfigError("kind", f"must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not self.sensor:
            raise BleConfigError("sensor", "a sensor id is required")
        if self.bind_key is not None:
            if self.kind != "bthome":
                raise BleConfigError("bind_key", "only BTHome devices take a bind key")
            if len(self.bind_key) != 16:
                raise BleConfigError("bind_key", "must be 16 bytes (32 hex digits)")
        if self.poll_interval is not None:
            if self.kind != "miflora":
                raise BleConfigError("poll_interval", "only Mi Flora devices are polled")
            if not self.poll_interval > 0:
                raise BleConfigError("poll_interval", "must be a positive number of seconds")
        object.__setattr__(self, "quantities", MappingProxyType(dict(self.quantities)))

    def quantity(self, measurement: str) -> str | None:
        """The quantity a measurement is reported as, or None when it is not kept."""
        if not self.quantities:
            return measurement
        return self.quantities.get(measurement)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, object], where: str = "ble.devices[]"
    ) -> "BleDeviceConfig":
        """Build from a parsed configuration table; errors name ``where.field``.

        Keys: address, kind, sensor (required); bind_key (hex), poll_interval (seconds),
        quantities (table of measurement = quantity). Unknown keys are refused.
        """
        known = {"address", "kind", "sensor", "bind_key", "poll_interval", "quantities"}
        for key in data:
            if key not in known:
                raise BleConfigError(f"{where}.{key}", "unknown setting")
        for key in ("address", "kind", "sensor"):
            if not isinstance(data.get(key), str):
                raise BleConfigError(f"{where}.{key}", "required, a string")
        key_text = data.get("bind_key")
        bind_key: bytes | None = None
        if key_text is not None:
            if not isinstance(key_text, str):
                raise BleConfigError(f"{where}.bind_key", "must be 32 hex digits")
            try:
                bind_key = bthome.parse_key(key_text)
            except LocalProtocolError as e:
                raise BleConfigError(f"{where}.bind_key", str(e)) from e
        interval = data.get("poll_interval")
        if interval is not None and (
            isinstance(interval, bool) or not isinstance(interval, int | float)
        ):
            raise BleConfigError(f"{where}.poll_interval", "must be a number of seconds")
        quantities = data.get("quantities", {})
        if not isinstance(quantities, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in quantities.items()
        ):
            raise BleConfigError(f"{where}.quantities", "must map measurement names to names")
        try:
            return cls(
                address=cast(str, data["address"]),
                kind=cast(Kind, data["kind"]),
                sensor=cast(str, data["sensor"]),
                bind_key=bind_key,
                poll_interval=None if interval is None else float(interval),
                quantities=cast(Mapping[str, str], quantities),
            )
        except BleConfigError as e:
            raise BleConfigError(f"{where}.{e.field}", e.message) from e


@dataclass(frozen=True, slots=True)
class BleOptions:
    """Timings of the BLE source, in seconds. The defaults suit real devices."""

    passive: bool = True  # passive scanning where the platform allows it
    absent_after: float = 300.0  # a configured device unheard this long is reported absent
    connect_timeout: float = 10.0  # one GATT connection attempt
    poll_timeout: float = 20.0  # one whole GATT poll: connect, write, reads, disconnect
    poll_attempts: int = 3  # connection attempts per poll
    retry_delay: float = 2.0  # before the 2nd attempt; doubles after each failure
    adapter_backoff: float = 1.0  # first wait after the adapter is lost; doubles
    adapter_backoff_max: float = 60.0
    queue_size: int = 256  # advertisements waiting to be decoded; beyond: dropped, counted

    def __post_init__(self) -> None:
        for name in (
            "absent_after",
            "connect_timeout",
            "poll_timeout",
            "retry_delay",
            "adapter_backoff",
            "adapter_backoff_max",
        ):
            if not getattr(self, name) > 0:
                raise BleConfigError(f"ble.{name}", "must be a positive number of seconds")
        if self.poll_attempts < 1:
            raise BleConfigError("ble.poll_attempts", "must be at least 1")
        if self.queue_size < 1:
            raise BleConfigError("ble.queue_size", "must be at least 1")
