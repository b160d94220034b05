"""Emulated BLE sensors on bumble virtual controllers, and the radio world that hosts them.

    async with RadioWorld() as world:
        await world.add(soil_probe("F0:12:34:56:78:01", zone="park"))
        park = await world.add_gateway("park", zones={"park"})
        # the gateway daemon: ble.backend = park.backend ("bumble:tcp-client:127.0.0.1:PORT")

See docs/ble.md for the architecture and `python -m edge.simulators.ble --help` to run a
world in its own process.
"""

from edge.simulators.ble._bthome import (
    BTHomeBeacon,
    Channel,
    berth,
    bin_level,
    quantize,
    soil_probe,
)
from edge.simulators.ble._miflora import MiFloraSensor
from edge.simulators.ble._sensor import Advertised, EmulatedSensor
from edge.simulators.ble._territory import DEMO_BIND_KEY, TerritorySensor, territory
from edge.simulators.ble._world import GatewayController, GatewayPort, RadioWorld

__all__ = [
    "DEMO_BIND_KEY",
    "Advertised",
    "BTHomeBeacon",
    "Channel",
    "EmulatedSensor",
    "GatewayController",
    "GatewayPort",
    "MiFloraSensor",
    "RadioWorld",
    "TerritorySensor",
    "berth",
    "bin_level",
    "quantize",
    "soil_probe",
    "territory",
]
