"""The demo territory's BLE sensors, by zone, with the configuration a gateway needs.

Zones: ``marina`` (two berths, one encrypted) and ``park`` (a soil probe, a Mi Flora, a
waste bin on the street beside it). `TerritorySensor.config()` is the ``ble.devices``
entry a gateway of that zone needs (`edge.sources.ble.BleDeviceConfig.from_mapping` reads it).
"""

from typing import Any, NamedTuple

from edge.simulators.ble._bthome import berth, bin_level, soil_probe
from edge.simulators.ble._miflora import MiFloraSensor
from edge.simulators.ble._sensor import EmulatedSensor

# The bind key of the encrypted demo berth (a demo key: public, never for a real device).
DEMO_BIND_KEY = "231d39c1d7cc1ab1aee224cd096db932"


class TerritorySensor(NamedTuple):
    sensor_id: str
    zone: str
    sensor: EmulatedSensor
    bind_key: str | None = None
    poll_interval: float | None = None

    def config(self) -> dict[str, object]:
        """This sensor's ``ble.devices`` entry."""
        entry: dict[str, object] = {
            "address": self.sensor.address,
            "kind": self.sensor.kind,
            "sensor": self.sensor_id,
        }
        if self.bind_key is not None:
            entry["bind_key"] = self.bind_key
        if self.poll_interval is not None:
            entry["poll_interval"] = self.poll_interval
        return entry


def territory(
    *,
    advertising_interval: float = 1.0,
    update_interval: float = 5.0,
    poll_interval: float = 60.0,
    seed: int = 7,
) -> list[TerritorySensor]:
    """Fresh sensors for the demo territory (add them to a `RadioWorld`)."""
    timing: dict[str, Any] = {
        "advertising_interval": advertising_interval,
        "update_interval": update_interval,
    }
    return [
        TerritorySensor(
            "marina-berth-01",
            "marina",
            berth("F0:E1:D2:00:01:01", zone="marina", rssi=-58, seed=seed, **timing),
        ),
        TerritorySensor(
            "marina-berth-02",
            "marina",
            berth(
                "F0:E1:D2:00:01:02",
                bind_key=DEMO_BIND_KEY,
                zone="marina",
                rssi=-71,
                seed=seed + 1,
                **timing,
            ),
            bind_key=DEMO_BIND_KEY,
        ),
        TerritorySensor(
            "park-soil-01",
            "park",
            soil_probe("F0:E1:D2:00:02:01", zone="park", rssi=-66, seed=seed + 2, **timing),
        ),
        TerritorySensor(
            "street-bin-01",
            "park",
            bin_level("F0:E1:D2:00:03:01", zone="park", rssi=-74, seed=seed + 3, **timing),
        ),
        TerritorySensor(
            "park-miflora-01",
            "park",
            MiFloraSensor("C4:7C:8D:6A:04:01", zone="park", rssi=-69, seed=seed + 4, **timing),
            poll_interval=poll_interval,
        ),
    ]
