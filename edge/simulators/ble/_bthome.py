"""Emulated BTHome v2 beacons: service data 0xFCD2, plain or encrypted with a bind key.

A beacon carries a few channels (an object id and a random walk of values, quantized to
the object's resolution so that what `history` records is exactly what a receiver
decodes), a packet id (object 0x00) that changes with every measurement and, when
encrypted, a counter that increases with every measurement.

Profiles for the territory: `soil_probe` (moisture, temperature), `bin_level` (distance
from the lid to the waste), `berth` (occupancy and shore-power energy).
"""

import random
from collections.abc import Sequence

from edge.simulators.ble._sensor import FLAGS_AD, Advertised, EmulatedSensor
from protocols import bthome


class Channel:
    """One measured value: BTHome object id, start value, and its random walk.

    `step`: the largest change per measurement. `low`/`high` bound it. `kind` ``walk``
    (wanders), ``fill`` (decreases by up to `step` and jumps back to `high` below `low`:
    a bin's distance as it fills and is emptied), ``counter`` (increases: an energy meter),
    ``toggle`` (a boolean that flips with probability `step`).
    """

    __slots__ = ("high", "kind", "low", "name", "object_id", "step", "value")

    def __init__(
        self,
        object_id: int,
        start: float | bool,
        step: float,
        low: float = float("-inf"),
        high: float = float("inf"),
        kind: str = "walk",
    ) -> None:
        entry = bthome.OBJECTS.get(object_id)
        if entry is None:
            raise ValueError(f"unknown BTHome object 0x{object_id:02x}")
        if kind not in ("walk", "fill", "counter", "toggle"):
            raise ValueError(f"unknown channel kind {kind!r}")
        self.object_id = object_id
        self.name = entry[0]
        self.step = step
        self.low = low
        self.high = high
        self.kind = kind
        self.value: float | bool = quantize(object_id, start)

    def advance(self, rng: random.Random) -> None:
        if self.kind == "toggle":
            if rng.random() < self.step:
                self.value = not self.value
            return
        value = float(self.value)
        if self.kind == "walk":
            value += rng.uniform(-self.step, self.step)
        elif self.kind == "fill":
            value -= rng.uniform(0, self.step)
            if value < self.low:
                value = self.high
        else:  # counter
            value += rng.uniform(0, self.step)
        self.value = quantize(self.object_id, min(max(value, self.low), self.high))


def quantize(object_id: int, value: float | bool) -> float | bool:
    """`value` at the resolution of BTHome object `object_id`, as a receiver decodes it."""
    _name, _size, _signed, mult, power, _unit, kind = bthome.OBJECTS[object_id]
    if kind == bthome.BINARY:
        return bool(value)
    scale = mult * 10**power if power >= 0 else mult / 10**-power
    raw = round(float(value) / scale)
    exact: float = raw * mult * 10**power if power >= 0 else (raw * mult) / 10**-power
    return exact


class BTHomeBeacon(EmulatedSensor):
    """A BTHome v2 beacon. `bind_key` (16 bytes or 32 hex digits) encrypts it."""

    kind = "bthome"

    def __init__(
        self,
        address: str,
        channels: Sequence[Channel],
        *,
        bind_key: bytes | str | None = None,
        counter_start: int = 1,
        name: str | None = None,
        advertising_interval: float = 1.0,
        update_interval: float = 10.0,
        rssi: int = -62,
        zone: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            address,
            name=name,
            advertising_interval=advertising_interval,
            update_interval=update_interval,
            rssi=rssi,
            zone=zone,
            seed=seed,
        )
        self.channels = sorted(channels, key=lambda c: c.object_id)
        self.bind_key = bthome.parse_key(bind_key) if bind_key is not None else None
        self.packet_id = self.random.randrange(256)
        self.counter = counter_start - 1
        self._first = True

    @property
    def encrypted(self) -> bool:
        return self.bind_key is not None

    def measure(self) -> bytes:
        if not self._first:
            for channel in self.channels:
                channel.advance(self.random)
        self._first = False
        self.packet_id = (self.packet_id + 1) % 256
        self.counter += 1
        objects: list[tuple[int, object]] = [(0x00, self.packet_id)]
        objects += [(c.object_id, c.value) for c in self.channels]
        payload = bthome.encode(
            objects,
            key=self.bind_key,
            mac=self.address if self.bind_key is not None else None,
            counter=self.counter,
        )
        values: dict[str, object] = {}
        for c in self.channels:
            values[c.name if c.name not in values else f"{c.name}_2"] = c.value
        sequence = self.counter if self.bind_key is not None else self.packet_id
        self.history.append(Advertised(sequence, values))
        return FLAGS_AD + bthome.ad_structure(payload)


def soil_probe(address: str, **options: object) -> BTHomeBeacon:
    """A park soil probe: moisture (%) and soil temperature (Cel), battery (%)."""
    return BTHomeBeacon(
        address,
        [
            Channel(0x01, 92, 0.2, 0, 100),
            Channel(0x02, 14.0, 0.15, -5, 35),
            Channel(0x14, 31.0, 0.6, 2, 60),
        ],
        **options,  # type: ignore[arg-type]
    )


def bin_level(address: str, **options: object) -> BTHomeBeacon:
    """A waste-bin level sensor: distance from the lid to the waste (m), battery (%)."""
    return BTHomeBeacon(
        address,
        [Channel(0x01, 88, 0.2, 0, 100), Channel(0x40, 1.1, 0.03, 0.12, 1.25, kind="fill")],
        **options,  # type: ignore[arg-type]
    )


def berth(address: str, **options: object) -> BTHomeBeacon:
    """A marina berth: occupancy (boat moored) and shore-power energy (Wh), battery (%)."""
    return BTHomeBeacon(
        address,
        [
            Channel(0x01, 97, 0.1, 0, 100),
            Channel(0x23, True, 0.05, kind="toggle"),
            Channel(0x4D, 125_000, 40.0, 0, 4_000_000_000, kind="counter"),
        ],
        **options,  # type: ignore[arg-type]
    )
