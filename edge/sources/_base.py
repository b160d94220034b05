"""The interface between sources and the daemon (see edge/sources/__init__.py)."""

from typing import Protocol

from protocols.reading import Reading


class SourceState:
    """What a source reports about its transport (shown by `estran edge status`)."""

    UP = "up"  # transport open, frames flowing or expected
    CONNECTING = "connecting"
    DOWN = "down"  # transport lost (port unplugged, adapter gone); retried with backoff


class ReadingSink(Protocol):
    """Where a source delivers readings and reports its health. Implemented by the daemon."""

    async def put(self, reading: Reading) -> None:
        """Hand over one reading. Waits (back-pressure) when the daemon's bounded queue is full."""
        ...

    def count_error(self, sensor: str, reason: str, detail: str = "") -> None:
        """Count one error for `sensor` (or the source name when no sensor is known).

        `reason` is a `protocols.errors` reason (checksum, truncated, ...) or a transport one
        (timeout, unplugged, no_response, ...).
        """
        ...

    def set_state(self, source: str, state: str, detail: str = "") -> None:
        """Report the transport state of the source named `source` (a SourceState value)."""
        ...


class Source(Protocol):
    """A supervised reader. `run` returns only when cancelled; transient failures (a port
    that disappears, a device that stops answering) are handled inside with backoff and
    reported through the sink; an exception escaping `run` is a bug the supervisor logs,
    counts and restarts after a delay."""

    name: str

    async def run(self, sink: ReadingSink) -> None: ...
