"""The key errors of wireless M-Bus: both are `RemoteProtocolError(DECRYPTION)`, so daemons
count them with the other protocol errors, and both name the meter whose key is at fault
(`meter`, e.g. ``"KAM-12345678"``) so that a technician knows which key to add or fix.
Neither ever carries key material."""

from protocols.errors import DECRYPTION, RemoteProtocolError


class MissingKeyError(RemoteProtocolError):
    """The telegram is encrypted and no key is known for its meter."""

    def __init__(self, meter: "str", mode: "int", message: "str") -> "None":
        super().__init__(DECRYPTION, message)
        self.meter = meter
        self.mode = mode


class WrongKeyError(RemoteProtocolError):
    """A key is known for the meter, but it does not decrypt or authenticate the telegram
    (wrong key, altered telegram, or a clear telegram where a key is configured)."""

    def __init__(self, meter: "str", mode: "int", message: "str") -> "None":
        super().__init__(DECRYPTION, message)
        self.meter = meter
        self.mode = mode


__all__ = ["MissingKeyError", "WrongKeyError"]
