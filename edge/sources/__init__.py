"""Sources: one per serial port or BLE adapter, each run as a supervised task by the daemon.

A source turns bytes from a transport into `Reading`s through a `protocols` codec and hands
them to a `ReadingSink`. It never decides what to do with a peer's garbage beyond counting it:
codecs raise, sources count (`sink.count_error`) and carry on.
"""

from edge.sources._base import ReadingSink, Source, SourceState

__all__ = ["ReadingSink", "Source", "SourceState"]
