"""`estran edge doctor`: is this gateway fit to run? Clock and time sync, disk and quota,
broker reachable (TCP, the TLS handshake for mqtts:// with the hub's CA, and an MQTT CONNECT
with the gateway's credentials), serial ports and their permissions, BlueZ or the bumble
transport, and the daemon itself.

Each check is ok, warn, fail or skip, with a reason and a hint for the technician.
"""

from edge.doctor._checks import (
    Check,
    Environment,
    Status,
    check_ble,
    check_broker,
    check_clock,
    check_config,
    check_daemon,
    check_disk,
    check_serial,
    run_checks,
)
from edge.doctor._mqtt import CONNACK_REASONS, MqttProbeError, connect_packet, probe_broker

__all__ = [
    "CONNACK_REASONS",
    "Check",
    "Environment",
    "MqttProbeError",
    "Status",
    "check_ble",
    "check_broker",
    "check_clock",
    "check_config",
    "check_daemon",
    "check_disk",
    "check_serial",
    "connect_packet",
    "probe_broker",
    "run_checks",
]
