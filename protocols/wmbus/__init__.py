"""Wireless M-Bus (EN 13757-4 link layer, EN 13757-3/-7 and OMS upper layers), sans-IO."""

from protocols.wmbus._describe import describe, split
from protocols.wmbus._errors import MissingKeyError, WrongKeyError
from protocols.wmbus._link import crc16, frame_format_a, frame_format_b, strip_crcs
from protocols.wmbus._telegram import ALARMS, Decoder, WmbusTelegram, decode

__all__ = [
    "ALARMS",
    "Decoder",
    "MissingKeyError",
    "WmbusTelegram",
    "WrongKeyError",
    "crc16",
    "decode",
    "describe",
    "frame_format_a",
    "frame_format_b",
    "split",
    "strip_crcs",
]
