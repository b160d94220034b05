"""The errors of protocols/: one root, split as h11 does.

- `LocalProtocolError`: the caller misused the API (a register count out of range, an
  address that cannot be encoded). A bug on our side.
- `RemoteProtocolError`: the peer sent garbage. Carries a machine-readable `reason`
  (one of the REASON_* constants) so that daemons can count errors by reason.
"""

CHECKSUM = "checksum"
TRUNCATED = "truncated"
UNSUPPORTED = "unsupported"
MALFORMED = "malformed"
OVERFLOW = "overflow"
EXCEPTION = "exception"  # a well-formed frame that reports an error from the device
REPLAY = "replay"
DECRYPTION = "decryption"

REASONS = (CHECKSUM, TRUNCATED, UNSUPPORTED, MALFORMED, OVERFLOW, EXCEPTION, REPLAY, DECRYPTION)


class ProtocolError(Exception):
    """Root of every error raised by protocols/."""


class LocalProtocolError(ProtocolError):
    """The API was misused by the caller."""


class RemoteProtocolError(ProtocolError):
    """The bytes received break the protocol. `reason` is one of REASONS."""

    def __init__(self, reason: "str", message: "str") -> "None":
        super().__init__(reason + ": " + message)
        self.reason = reason
        self.message = message


__all__ = [
    "CHECKSUM",
    "DECRYPTION",
    "EXCEPTION",
    "MALFORMED",
    "OVERFLOW",
    "REASONS",
    "REPLAY",
    "TRUNCATED",
    "UNSUPPORTED",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
]
