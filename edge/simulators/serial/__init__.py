"""Serial sensor simulators on pseudo-terminal pairs, speaking the real protocols.

    from edge.simulators.serial import LinkySimulator, Fault

    async with LinkySimulator("ttyLINKY0", directory="/tmp/estran-sim") as linky:
        linky.path                      # /tmp/estran-sim/ttyLINKY0 -> /dev/pts/N
        linky.port_config("linky-1")    # the gateway configuration for it (a mapping)
        linky.inject(Fault.unplug(seconds=2))

Every simulator holds the master side of a pty pair and talks at its line's pace; the
program under test opens `path` with pyserial as it would open /dev/ttyUSB0. Faults on
demand: noise, bad checksums, silence, unplug and replug (`Fault`). The runner,
``python -m edge.simulators.serial --spec KIND[,key=value]...``, starts several and takes
faults on a control socket. Imports only `protocols` (and the standard library).
"""

from edge.simulators.serial._base import (
    DEFAULT_DIRECTORY,
    FAULTS,
    Fault,
    SerialSimulator,
    SimOptions,
    StreamSimulator,
)
from edge.simulators.serial._control import ControlServer, send_request
from edge.simulators.serial._factory import KINDS, SpecError, create_simulator, parse_spec
from edge.simulators.serial._link import LineFormat
from edge.simulators.serial.air import (
    OttPlsSimulator,
    PmsSimulator,
    Sds011Simulator,
    Sps30Simulator,
    VegapulsSimulator,
)
from edge.simulators.serial.mbus import HeatMeter, MbusMeter, MbusSimulator, WaterMeter
from edge.simulators.serial.modbus import ModbusSimulator, ModbusSlave
from edge.simulators.serial.nmea import NmeaSimulator
from edge.simulators.serial.sdi12 import Sdi12Simulator
from edge.simulators.serial.tic import LinkySimulator
from edge.simulators.serial.ultrasonic import A02yyuwSimulator, MaxBotixSimulator
from edge.simulators.serial.wmbus import (
    RadioMeter,
    ReplayMeter,
    WmbusDongleSimulator,
    replay_meters,
)

__all__ = [
    "DEFAULT_DIRECTORY",
    "FAULTS",
    "KINDS",
    "A02yyuwSimulator",
    "ControlServer",
    "Fault",
    "HeatMeter",
    "LineFormat",
    "LinkySimulator",
    "MaxBotixSimulator",
    "MbusMeter",
    "MbusSimulator",
    "ModbusSimulator",
    "ModbusSlave",
    "NmeaSimulator",
    "OttPlsSimulator",
    "PmsSimulator",
    "RadioMeter",
    "ReplayMeter",
    "Sdi12Simulator",
    "Sds011Simulator",
    "SerialSimulator",
    "SimOptions",
    "SpecError",
    "Sps30Simulator",
    "StreamSimulator",
    "VegapulsSimulator",
    "WaterMeter",
    "WmbusDongleSimulator",
    "create_simulator",
    "parse_spec",
    "replay_meters",
    "send_request",
]
