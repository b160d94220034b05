"""Sensor simulators, shipped with the package: `estran demo`, technicians training on a
bench and the HIL rigs use them. They speak the real protocols (built with the
`protocols` codecs) over the real transports' stand-ins: BLE sensors on bumble's emulated
radio (`edge.simulators.ble`). They import nothing of the daemon.
"""

__all__: list[str] = []
