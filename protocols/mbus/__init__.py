"""Wired M-Bus (EN 13757-2 link layer, EN 13757-3 application layer), sans-IO.

- `FrameParser`: frames from bytes fed in pieces (ACK, short, control, long), checksums,
  resynchronisation after garbage, bounded buffer.
- `decode_response(frame)`: a slave's RSP_UD as a `Telegram` (header fields and `Record`s
  with values normalised to base units).
- Builders: `snd_nke`, `req_ud2`, `select_secondary`, ...; `MultiTelegramReader` drives
  the FCB through a multi-telegram read.
- `describe(data, options)`: the `estran decode mbus --json` contract.
"""

from protocols.mbus._describe import describe, describe_frame
from protocols.mbus.frames import (
    NEED_DATA,
    Frame,
    FrameParser,
    NeedData,
    ack,
    checksum,
    long_frame,
    parse_frame,
    short_frame,
)
from protocols.mbus.master import (
    MultiTelegramReader,
    application_reset,
    req_ud1,
    req_ud2,
    select_secondary,
    set_primary_address,
    snd_nke,
    snd_ud,
)
from protocols.mbus.records import Record, iter_records
from protocols.mbus.telegram import Telegram, decode_response

__all__ = [
    "NEED_DATA",
    "Frame",
    "FrameParser",
    "MultiTelegramReader",
    "NeedData",
    "Record",
    "Telegram",
    "ack",
    "application_reset",
    "checksum",
    "decode_response",
    "describe",
    "describe_frame",
    "iter_records",
    "long_frame",
    "parse_frame",
    "req_ud1",
    "req_ud2",
    "select_secondary",
    "set_primary_address",
    "short_frame",
    "snd_nke",
    "snd_ud",
]
