"""The rig layer: what the demo, the benchmarks and the tests run things with.

The core: one child process (`Child`), one free port (`free_port`), one private Mosquitto
(`PrivateMosquitto`), one network link with faults (`LinkProxy`).

On top, in labgrid's manner: an environment file (`load_env`: YAML) names the resources of a
rig by capability (serial.tic, ble, broker, database, hub, gateway, power.*, link, clock) and
the driver of each (simulator or adapter, bumble or BlueZ, embedded or private or external
broker...); a `Rig` starts them when a test asks; the pytest plugin (`--rig`,
`@pytest.mark.needs`) selects tests by what the rig has. docs/hil.md tells the whole story.

Standard library only at import time (PyYAML when an environment file is read): edge and
hub tests use it without pulling the rest of Estran.
"""

from estran.rig._available import (
    need_program,
    temporary_postgresql,
    unavailable,
)
from estran.rig._ble import BleRadio
from estran.rig._child import Child, estran_argv
from estran.rig._env import DRIVERS, EnvError, Resource, RigEnv, load_env, parse_env
from estran.rig._errors import RigError, Unavailable
from estran.rig._faults import FakeClock, PowerSwitch, power_cycle
from estran.rig._mosquitto import MOSQUITTO, PrivateMosquitto, mosquitto_binary
from estran.rig._mqtt import messages_within, next_message
from estran.rig._ports import LOOPBACK, free_port, until, wait_port, wait_port_blocking
from estran.rig._proxy import LinkProxy, LinkState
from estran.rig._rig import Link, Rig
from estran.rig._serial import SerialPort, SimulatedSerial, serial_simulator
from estran.rig._services import (
    Broker,
    Database,
    EnrolledGateway,
    GatewayProcess,
    HubProcess,
    enroll_gateway,
    estran_run,
    http_json,
    hub_ready,
    stored_twice,
)
from estran.rig._soak import SoakSampler, SoakSeries, gateway_status, not_flat, run_demo_soak

__all__ = [
    "DRIVERS",
    "LOOPBACK",
    "MOSQUITTO",
    "BleRadio",
    "Broker",
    "Child",
    "Database",
    "EnrolledGateway",
    "EnvError",
    "FakeClock",
    "GatewayProcess",
    "HubProcess",
    "Link",
    "LinkProxy",
    "LinkState",
    "PowerSwitch",
    "PrivateMosquitto",
    "Resource",
    "Rig",
    "RigEnv",
    "RigError",
    "SerialPort",
    "SimulatedSerial",
    "SoakSampler",
    "SoakSeries",
    "Unavailable",
    "enroll_gateway",
    "estran_argv",
    "estran_run",
    "free_port",
    "gateway_status",
    "http_json",
    "hub_ready",
    "load_env",
    "messages_within",
    "mosquitto_binary",
    "need_program",
    "next_message",
    "not_flat",
    "parse_env",
    "power_cycle",
    "run_demo_soak",
    "serial_simulator",
    "stored_twice",
    "temporary_postgresql",
    "unavailable",
    "until",
    "wait_port",
    "wait_port_blocking",
]
