"""The rig layer: what the demo, the benchmarks and the tests run things with.

One child process (`Child`), one free port (`free_port`), one private Mosquitto
(`PrivateMosquitto`), one network link with faults (`LinkProxy`). Standard library only at
import time: edge and hub tests use it without pulling the rest of Estran.
"""

from estran.rig._child import Child, estran_argv
from estran.rig._errors import RigError, Unavailable
from estran.rig._mosquitto import MOSQUITTO, PrivateMosquitto, mosquitto_binary
from estran.rig._ports import LOOPBACK, free_port, wait_port, wait_port_blocking
from estran.rig._proxy import LinkProxy, LinkState

__all__ = [
    "LOOPBACK",
    "MOSQUITTO",
    "Child",
    "LinkProxy",
    "LinkState",
    "PrivateMosquitto",
    "RigError",
    "Unavailable",
    "estran_argv",
    "free_port",
    "mosquitto_binary",
    "wait_port",
    "wait_port_blocking",
]
