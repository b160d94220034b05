"""What the BLE source is told: the devices it reads and how patiently it reads them.

`BleDeviceConfig` is one configured device; the daemon builds it from a `[[ble.devices]]`
table the schema (`protocols.settings`, the hub's too) checked (`from_values`), or checks
one with the schema first (`from_mapping`, whose errors name the field). `BleOptions` holds
the timings (absence, GATT time limits, retries, adapter backoff), the schema's defaults.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from edge.sources.ble._errors import BleConfigError
from protocols import bthome, settings
from protocols.errors import LocalProtocolError

_OPTIONS: dict[str, Any] = settings.defaults("ble")

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
        object.__setattr__(self, "quantities", MappingProxyType(dict(self.quantities)))

    def quantity(self, measurement: str) -> str | None:
        """The quantity a measurement is reported as, or None when it is not kept."""
        if not self.quantities:
            return measurement
        return self.quantities.get(measurement)

    @classmethod
    def from_values(cls, d: Mapping[str, Any]) -> "BleDeviceConfig":
        """From a `[[ble.devices]]` table the schema checked and filled in."""
        return cls(
            address=d["address"],
            kind=d["kind"],
            sensor=d["sensor"],
            bind_key=None if d["bind_key"] is None else bthome.parse_key(d["bind_key"]),
            poll_interval=d["poll_interval"],
            quantities=d["quantities"] or {},
        )

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, object], where: str = "ble.devices[]"
    ) -> "BleDeviceConfig":
        """Check a configuration table with the schema and build; the error names the first
        wrong field (`where.bind_key`). Keys: address, kind, sensor (required); bind_key
        (hex), poll_interval (seconds), quantities (table of measurement = quantity)."""
        values, issues = settings.resolve_table("ble.devices", dict(data), where)
        if issues:
            raise BleConfigError(issues[0].path, issues[0].message)
        return cls.from_values(values)


@dataclass(frozen=True, slots=True)
class BleOptions:
    """Timings of the BLE source, in seconds: the schema's defaults (`[ble]`), which suit
    real devices; the schema checks what a configuration sets."""

    passive: bool = _OPTIONS["passive"]  # passive scanning where the platform allows it
    absent_after: float = _OPTIONS["absent_after"]  # a device unheard this long is absent
    connect_timeout: float = _OPTIONS["connect_timeout"]  # one GATT connection attempt
    poll_timeout: float = _OPTIONS["poll_timeout"]  # one whole GATT poll
    poll_attempts: int = _OPTIONS["poll_attempts"]  # connection attempts per poll
    retry_delay: float = _OPTIONS["retry_delay"]  # before the 2nd attempt; doubles
    adapter_backoff: float = _OPTIONS["adapter_backoff"]  # after the adapter is lost; doubles
    adapter_backoff_max: float = _OPTIONS["adapter_backoff_max"]
    queue_size: int = _OPTIONS["queue_size"]  # advertisements waiting; beyond: dropped

    @classmethod
    def from_values(cls, t: Mapping[str, Any]) -> "BleOptions":
        """From a `[ble]` table the schema checked and filled in."""
        return cls(**{f: t[f] for f in cls.__dataclass_fields__})
