"""Sans-IO codecs for every sensor protocol, and the wire schema. Pure: bytes in, values out.

Firmware-style: only the part of the standard library MicroPython has (no dataclasses, no
run-time `typing`), so the same codecs run on a microcontroller bridge.
"""

from protocols.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from protocols.reading import Measurement, Reading

__all__ = ["LocalProtocolError", "Measurement", "ProtocolError", "Reading", "RemoteProtocolError"]
